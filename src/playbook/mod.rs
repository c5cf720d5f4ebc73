//! Playbooks: the model, the loader and static validation.

pub mod load;
pub mod model;
pub mod undefined;
pub mod validate;

pub use load::{load_playbook, load_tasks_file};
pub use model::*;
