//! orch: an agentless push orchestrator that runs Ansible-style playbooks over SSH.

mod error;
mod facts;
mod inventory;
mod modules;
mod template;
mod transport;
mod yaml;

fn main() {
    std::process::exit(0);
}
