//! `hostvars`: every host's variables, computed only when a template looks one up.

use std::sync::{Arc, RwLock};

use minijinja::value::{Enumerator, Object};

use super::state::{lock, HostTable};
use super::vars::{self, PlayVars, VarSources};

#[derive(Debug)]
pub struct HostVars {
    sources: Arc<VarSources>,
    hosts: Arc<RwLock<HostTable>>,
    play: Arc<PlayVars>,
}

impl std::fmt::Debug for VarSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VarSources")
    }
}

impl std::fmt::Debug for PlayVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlayVars")
    }
}

impl std::fmt::Debug for HostTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostTable")
    }
}

impl HostVars {
    pub fn value(
        sources: Arc<VarSources>,
        hosts: Arc<RwLock<HostTable>>,
        play: Arc<PlayVars>,
    ) -> minijinja::Value {
        minijinja::Value::from_object(HostVars {
            sources,
            hosts,
            play,
        })
    }
}

impl Object for HostVars {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let name = key.as_str()?;
        let state = self.hosts.read().ok()?.get(name);
        let mut map = match state {
            Some(state) => {
                let s = lock(&state);
                vars::host_level(&s, Some(&self.play))
            }
            None if self.sources.inventory.host(name).is_some() => {
                self.sources.inventory.vars_for_host(name)
            }
            None => return None,
        };
        vars::add_magic(&mut map, &self.sources, name, Some(&self.play));
        Some(
            self.sources
                .templar
                .lazy_vars_tracking(Arc::new(map), vec![], &self.sources.unknowns),
        )
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let names: Vec<minijinja::Value> = self
            .sources
            .inventory
            .host_names()
            .into_iter()
            .map(minijinja::Value::from)
            .collect();
        Enumerator::Values(names)
    }
}
