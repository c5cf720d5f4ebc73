//! Sends every event to several reporters (the console or JSON output, and the history collector).

use std::sync::Arc;

use super::{Event, Reporter};

pub struct Tee {
    reporters: Vec<Arc<dyn Reporter>>,
}

impl Tee {
    pub fn new(reporters: Vec<Arc<dyn Reporter>>) -> Tee {
        Tee { reporters }
    }
}

impl Reporter for Tee {
    fn event(&self, event: &Event) {
        for r in &self.reporters {
            r.event(event);
        }
    }
}
