//! Per-host counters for the PLAY RECAP, counted the way Ansible counts them.

use indexmap::IndexMap;
use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HostStats {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub hosts: IndexMap<String, HostStats>,
}

impl Stats {
    pub fn entry(&mut self, host: &str) -> &mut HostStats {
        self.hosts.entry(host.to_string()).or_default()
    }

    pub fn any_failed(&self) -> bool {
        self.hosts.values().any(|s| s.failed > 0)
    }

    pub fn any_unreachable(&self) -> bool {
        self.hosts.values().any(|s| s.unreachable > 0)
    }
}
