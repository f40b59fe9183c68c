//! The core of Cloud Images: what an image service *is*, independent of how it is hosted.
//!
//! Nothing here knows about HTTP, SQL or AWS; adapters implement the [`ports`] and the
//! service crate composes them into use cases.

pub mod base64_bytes;
pub mod containers;
pub mod error;
pub mod events;
pub mod identity;
pub mod image;
pub mod image_patch;
pub mod image_rules;
pub mod import;
pub mod inspection;
pub mod lifecycle;
pub mod links;
pub mod listing;
pub mod member;
pub mod metadefs;
pub mod ports;
pub mod quota;
pub mod staging;
pub mod task;
pub mod vhd;
pub mod visibility;

pub use error::{DomainError, DomainResult};
