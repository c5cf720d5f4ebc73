//! The flagship's test lab: one Authentik host (the fake Authentik behind the `docker` stand-in, a
//! real signed apt repository for Docker's packages) and Proxmox VE nodes from a `PveLayout`, under
//! one inventory. The playbooks and templates are the repository's own.
//!
//! Inventory names: `auth.example.test` for the Authentik host, `pve<N>.example.test` for node N
//! (1-based), in one child group per cluster of `pve`.

use std::path::Path;

use serde_json::Value;

pub use super::fake_authentik_host::FAKE_STATE;
use super::fake_authentik_host::{FakeAuthentik, FakeAuthentikOptions, ENV_FILE};
use super::{AptRepo, Fleet, PveFleet, PveLayout};

const PLAYBOOK: &str = include_str!("../../playbooks/authentik-proxmox.yml");
const DOCKER: &str = include_str!("../../playbooks/docker.yml");
const COMPOSE: &str = include_str!("../../templates/authentik/compose.yml.j2");
pub const AUTHENTIK_NAME: &str = "auth.example.test";

/// How the fake Authentik is started.
#[derive(Clone, Debug)]
pub struct AuthentikOptions {
    /// `2024.12.3`, `2026.5.6`, …
    pub version: String,
    /// Also serve HTTPS (with the brand's web certificate) on this port, as Authentik does on 9443.
    pub https_port: Option<u16>,
    /// Seconds before a new brand certificate is served (Authentik reloads them on a timer).
    pub tls_reload_seconds: u32,
}

impl AuthentikOptions {
    pub fn new(version: &str) -> AuthentikOptions {
        AuthentikOptions {
            version: version.into(),
            https_port: None,
            tls_reload_seconds: 0,
        }
    }

    pub fn https(mut self, port: u16) -> AuthentikOptions {
        self.https_port = Some(port);
        self
    }

    pub fn tls_reload(mut self, seconds: u32) -> AuthentikOptions {
        self.tls_reload_seconds = seconds;
        self
    }
}

/// Field order matters: the Authentik fleet is dropped first, since its host may be attached to
/// the PVE fleet's network.
pub struct FlagshipLab {
    pub auth: Fleet,
    pub pve: PveFleet,
    pub repo: AptRepo,
}

impl FlagshipLab {
    /// Starts both fleets, the apt repository and the fake Authentik; writes inventory `hosts`,
    /// the playbooks, and `vars.yml` pointing Docker's repository at the local one.
    pub fn start(name: &str, authentik: &AuthentikOptions, layout: &PveLayout) -> FlagshipLab {
        let mut auth = Fleet::start(&format!("{name}-auth"), 1);
        let repo = AptRepo::serve(&mut auth);
        let pve = Fleet::start_pve(&format!("{name}-pve"), layout);
        let lab = FlagshipLab { auth, pve, repo };
        lab.start_fake_authentik(authentik);

        // orch runs with the PVE fleet's HOME, which must know both fleets' host keys.
        let known = std::fs::read_to_string(lab.auth.known_hosts()).expect("auth known_hosts");
        let mut all_known = std::fs::read_to_string(lab.pve.known_hosts()).expect("known_hosts");
        all_known.push_str(&known);
        std::fs::write(lab.pve.known_hosts(), all_known).expect("known_hosts");

        let line = |name: &str, ip: &str, key: &Path| {
            format!(
                "{name} ansible_host={ip} ansible_user=root ansible_ssh_private_key_file={}\n",
                key.display()
            )
        };
        let mut inventory = String::from("[authentik]\n");
        inventory.push_str(&line(
            AUTHENTIK_NAME,
            &lab.auth.host(0).ip,
            lab.auth.private_key(),
        ));
        let mut children = String::from("\n[pve:children]\n");
        for cluster in lab.pve.clusters() {
            let group = match &cluster.name {
                Some(name) => format!("pve_{}", name.replace('-', "_")),
                None => format!("pve_solo{}", cluster.hosts[0] + 1),
            };
            inventory.push_str(&format!("\n[{group}]\n"));
            for &h in &cluster.hosts {
                inventory.push_str(&line(
                    &Self::pve_name(h),
                    &lab.pve.host(h).ip,
                    lab.pve.private_key(),
                ));
            }
            children.push_str(&format!("{group}\n"));
        }
        inventory.push_str(&children);
        lab.pve.write("hosts", &inventory);
        lab.pve.write("playbooks/authentik-proxmox.yml", PLAYBOOK);
        lab.pve.write("playbooks/docker.yml", DOCKER);
        lab.pve.write("templates/authentik/compose.yml.j2", COMPOSE);
        lab.write_vars("");
        lab
    }

    /// The inventory name of PVE fleet host `index`.
    pub fn pve_name(index: usize) -> String {
        format!("pve{}.example.test", index + 1)
    }

    /// `vars.yml`: the local apt repository plus `extra` (YAML lines).
    pub fn write_vars(&self, extra: &str) {
        self.pve.write(
            "vars.yml",
            &format!(
                "docker_apt_url: {}\ndocker_apt_key_url: {}\ndocker_manage_service: false\n{extra}",
                self.repo.url, self.repo.key_url
            ),
        );
    }

    /// `run playbooks/authentik-proxmox.yml -i hosts -e @vars.yml` plus `extra`.
    pub fn run(&self, extra: &[&str]) -> super::RunOutput {
        let mut args = vec![
            "run",
            "playbooks/authentik-proxmox.yml",
            "-i",
            "hosts",
            "-e",
            "@vars.yml",
        ];
        args.extend_from_slice(extra);
        self.pve.orch(&args)
    }

    /// Lets every PVE node reach the Authentik host (on the PVE network) and resolve its name, as
    /// DNS would.
    pub fn resolve_authentik_on_pve(&self) {
        let ip = self.pve.connect_foreign(&self.auth.host(0).container, 0);
        for h in 0..self.pve.hosts().len() {
            self.pve
                .exec_ok(h, &format!("echo '{ip} {AUTHENTIK_NAME}' >> /etc/hosts"));
        }
    }

    fn start_fake_authentik(&self, options: &AuthentikOptions) {
        let fake = FakeAuthentikOptions::new()
            .version(&options.version)
            .delays(2, 2)
            .docker_standin();
        // Bound to all addresses when HTTPS is served: the PVE nodes fetch the issuer from there.
        let fake = match options.https_port {
            Some(port) => fake
                .bind("0.0.0.0")
                .https(port)
                .tls_reload(options.tls_reload_seconds),
            None => fake.bind("127.0.0.1"),
        };
        FakeAuthentik::start(&self.auth, 0, &fake);
    }

    /// The fake Authentik's objects.
    pub fn authentik_state(&self) -> Value {
        FakeAuthentik::on(&self.auth, 0).state()
    }

    /// A value of the Authentik host's `.env`.
    pub fn env_value(&self, key: &str) -> String {
        self.auth
            .exec_ok(0, &format!("sed -n 's/^{key}=//p' {ENV_FILE} | tail -n 1"))
            .trim()
            .to_string()
    }
}

/// Each result line of a human run (`changed: [h1]`, `skipping: [h2]`, …) with its task's name.
fn result_lines(stdout: &str) -> Vec<(String, &str)> {
    let mut task = String::new();
    let mut out = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("TASK [") {
            task = rest.split(']').next().unwrap_or_default().to_string();
        } else {
            out.push((task.clone(), line));
        }
    }
    out
}

/// The tasks that reported `changed` in a human run, as `<task> @ <host>`, sorted.
pub fn changed_tasks(stdout: &str) -> Vec<String> {
    let mut out: Vec<String> = result_lines(stdout)
        .into_iter()
        .filter_map(|(task, line)| {
            let host = line.strip_prefix("changed: [")?;
            Some(format!(
                "{task} @ {}",
                host.split(']').next().unwrap_or_default()
            ))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The names of the tasks reported with `status` (`changed`, `skipping`, …) in a human run, in
/// order, once per host.
pub fn tasks_with(stdout: &str, status: &str) -> Vec<String> {
    let prefix = format!("{status}: ");
    result_lines(stdout)
        .into_iter()
        .filter(|(_, line)| line.starts_with(&prefix))
        .map(|(task, _)| task)
        .collect()
}
