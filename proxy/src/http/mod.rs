//! HTTP plumbing shared by the listeners.

pub mod body;
pub mod forward;
