//! Fake Proxmox VE nodes: fleet hosts with the fake `pveum`/`pvesh`/`pveversion` of
//! tests/support/fake_pve installed, whose /etc/pve is one docker volume per cluster (pmxcfs
//! shares it between the nodes of a cluster) and a volume of its own for a standalone node.
//!
//! ```ignore
//! let pve = Fleet::start_pve("realm", &PveLayout::new().cluster("lab", 2).standalone());
//! let lab = &pve.clusters()[0]; // hosts 0 and 1 (h1, h2); the standalone node is host 2 (h3)
//! pve.exec_ok(lab.hosts[0], "pveum realm list --output-format json");
//! ```

use super::docker::docker_ok;
use super::fleet::{Fleet, HostOptions};
use std::ops::Deref;

const FAKE_PVE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/fake_pve");

/// The libpve-access-control version a node pretends to be unless the layout says otherwise.
pub const DEFAULT_ACCESS_CONTROL: &str = "8.2.2";

#[derive(Debug, Clone)]
struct ClusterSpec {
    /// None for a standalone node.
    name: Option<String>,
    /// libpve-access-control version of each node.
    versions: Vec<String>,
}

/// Which clusters to start, in host order: `PveLayout::new().cluster("lab", 2).standalone()`
/// gives h1+h2 in cluster "lab" and h3 standalone.
#[derive(Debug, Clone)]
pub struct PveLayout {
    version: String,
    clusters: Vec<ClusterSpec>,
    lock_timeout: Option<u32>,
}

impl Default for PveLayout {
    fn default() -> Self {
        PveLayout::new()
    }
}

impl PveLayout {
    pub fn new() -> PveLayout {
        PveLayout {
            version: DEFAULT_ACCESS_CONTROL.to_string(),
            clusters: Vec::new(),
            lock_timeout: None,
        }
    }

    /// The libpve-access-control version of the clusters added after this call.
    pub fn version(mut self, version: &str) -> PveLayout {
        self.version = version.to_string();
        self
    }

    /// A cluster of `nodes` nodes sharing one /etc/pve.
    pub fn cluster(mut self, name: &str, nodes: usize) -> PveLayout {
        self.clusters.push(ClusterSpec {
            name: Some(name.to_string()),
            versions: vec![self.version.clone(); nodes],
        });
        self
    }

    /// A cluster whose nodes run different libpve-access-control versions (a cluster mid-upgrade).
    pub fn cluster_versions(mut self, name: &str, versions: &[&str]) -> PveLayout {
        self.clusters.push(ClusterSpec {
            name: Some(name.to_string()),
            versions: versions.iter().map(|version| version.to_string()).collect(),
        });
        self
    }

    /// One node that is its own cluster (no `cluster` key in its .members).
    pub fn standalone(mut self) -> PveLayout {
        self.clusters.push(ClusterSpec {
            name: None,
            versions: vec![self.version.clone()],
        });
        self
    }

    /// Seconds a write waits for the cluster lock (real PVE: 10) before "no quorum!" or
    /// "got lock request timeout"; shorter keeps no-quorum tests quick.
    pub fn lock_timeout(mut self, seconds: u32) -> PveLayout {
        self.lock_timeout = Some(seconds);
        self
    }
}

/// The fleet hosts (0-based indexes) that form one cluster, or one standalone node.
#[derive(Debug, Clone)]
pub struct PveCluster {
    /// The cluster name; None for a standalone node.
    pub name: Option<String>,
    pub hosts: Vec<usize>,
    /// The docker volume mounted at /etc/pve on these hosts.
    pub volume: String,
}

/// A [`Fleet`] of fake PVE nodes; derefs to the fleet for `exec`, `orch`, `inventory`, ...
pub struct PveFleet {
    fleet: Fleet,
    clusters: Vec<PveCluster>,
}

impl Deref for PveFleet {
    type Target = Fleet;

    fn deref(&self) -> &Fleet {
        &self.fleet
    }
}

impl Fleet {
    /// Starts the hosts of `layout` and makes each a fake PVE node of its cluster.
    #[track_caller]
    pub fn start_pve(test_name: &str, layout: &PveLayout) -> PveFleet {
        let mut options = Vec::new();
        let mut keys = Vec::new();
        for spec in &layout.clusters {
            let key = match &spec.name {
                Some(name) => format!("pve-{name}"),
                None => format!("pve-solo-h{}", options.len() + 1),
            };
            for _ in &spec.versions {
                options.push(HostOptions {
                    volumes: vec![(key.clone(), "/etc/pve".to_string())],
                    ..HostOptions::default()
                });
            }
            keys.push(key);
        }
        let fleet = Fleet::start_with(test_name, &options);

        let mut clusters = Vec::new();
        let mut next_host = 0;
        for (spec, key) in layout.clusters.iter().zip(keys) {
            let hosts: Vec<usize> = (next_host..next_host + spec.versions.len()).collect();
            next_host += spec.versions.len();
            let nodes: Vec<String> = hosts
                .iter()
                .map(|&index| format!("{}={}", fleet.host(index).name, fleet.host(index).ip))
                .collect();
            // One after the other: the first node of a cluster creates the shared files.
            for (&index, version) in hosts.iter().zip(&spec.versions) {
                let host = fleet.host(index);
                docker_ok(&[
                    "cp",
                    &format!("{FAKE_PVE_DIR}/."),
                    &format!("{}:/tmp/fake_pve", host.container),
                ]);
                let mut command = format!(
                    "sh /tmp/fake_pve/install.sh --node {} --ip {} --version {version}",
                    host.name, host.ip
                );
                if let Some(name) = &spec.name {
                    command.push_str(&format!(" --cluster {name} --nodes {}", nodes.join(",")));
                }
                if let Some(seconds) = layout.lock_timeout {
                    command.push_str(&format!(" --lock-timeout {seconds}"));
                }
                fleet.exec_ok(index, &command);
            }
            clusters.push(PveCluster {
                name: spec.name.clone(),
                hosts,
                volume: fleet.volume(&key),
            });
        }
        PveFleet { fleet, clusters }
    }
}

impl PveFleet {
    /// The clusters in layout order; together they cover every host once.
    pub fn clusters(&self) -> &[PveCluster] {
        &self.clusters
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// Sets what `host`'s /etc/pve/.members reports as quorum. Without quorum the fake's writes
    /// fail like pmxcfs's (`cfs-lock 'file-domains_cfg' error: no quorum!`, after the lock timeout).
    #[track_caller]
    pub fn set_quorate(&self, host: usize, quorate: bool) {
        let flag = u8::from(quorate);
        self.exec_ok(
            host,
            &format!("sed -i 's/\"quorate\": [01]/\"quorate\": {flag}/' /var/lib/fake-pve/members"),
        );
    }

    /// `/etc/pve/domains.cfg` as `host` sees it.
    #[track_caller]
    pub fn domains_cfg(&self, host: usize) -> String {
        self.exec_ok(host, "cat /etc/pve/domains.cfg")
    }

    /// `/etc/pve/user.cfg` as `host` sees it.
    #[track_caller]
    pub fn user_cfg(&self, host: usize) -> String {
        self.exec_ok(host, "cat /etc/pve/user.cfg")
    }
}
