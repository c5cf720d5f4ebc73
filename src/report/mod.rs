//! Reporting: the executor emits events; reporters (console, JSON lines) render them.
//! Every string passes the redactor first, so secrets cannot leak through any reporter.

pub mod console;
pub mod event;
pub mod history;
pub mod json;
pub mod redact;
pub mod stats;
pub mod tee;

pub use event::{Event, HostStatus, ResultEvent};
pub use redact::Redactor;
pub use stats::Stats;

/// Something that shows events to a person or a machine.
pub trait Reporter: Send + Sync {
    fn event(&self, event: &Event);
}
