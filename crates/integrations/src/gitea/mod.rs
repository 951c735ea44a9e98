//! Gitea and Forgejo: the REST client and the `Forge` port.

pub mod client;
pub mod forge;

pub use client::GiteaClient;
pub use forge::{GiteaForge, full_name_from_remote};
