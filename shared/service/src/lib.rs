//! Use cases of Cloud Images, written against the domain's ports only.

pub mod identity;
pub mod image_data;
pub mod images;
pub mod members;
pub mod secrets;
pub mod staging;
pub mod tasks;
pub mod tokens;

pub use identity::{Credentials, IdentityService, NewUser, Principal, Session};
pub use images::{ImagePage, ImageService, ImageSettings};
pub use tasks::{Outcome, TaskService, TaskSettings};
pub use tokens::{SigningKey, TokenSigner};
