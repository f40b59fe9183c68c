//! Use cases of Cloud Images, written against the domain's ports only.

pub mod access;
pub mod containers;
pub mod events;
pub mod identity;
pub mod image_data;
pub mod images;
pub mod imports;
pub mod link_sealing;
pub mod members;
pub mod metadefs;
pub mod revocation;
pub mod secrets;
pub mod staging;
pub mod stores;
pub mod task_runner;
pub mod tasks;
pub mod tokens;

pub use access::{ImageAccess, ImageSettings};
pub use containers::{ContainerService, ContainerSettings, Links};
pub use events::EventDelivery;
pub use identity::{
    Actor, Credentials, IdentityService, NewUser, Principal, Session, TenantHoldings, UserChanges,
};
pub use image_data::{Download, ImageDataService};
pub use images::{ImagePage, ImageService};
pub use imports::ImportService;
pub use link_sealing::LinkSealer;
pub use members::MemberService;
pub use metadefs::{ContentKind, MetadefService, TagQuery};
pub use revocation::TokenVerifier;
pub use staging::{StagedUploadOffer, StagingService};
pub use stores::ImageStores;
pub use task_runner::{Outcome, TaskRunner};
pub use tasks::{TaskService, TaskSettings};
pub use tokens::{SigningKey, TokenSigner};
