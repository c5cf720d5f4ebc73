//! orch: an agentless push orchestrator that runs Ansible-style playbooks over SSH.

mod cli;
mod error;
mod executor;
mod facts;
mod inventory;
mod modules;
mod playbook;
mod report;
mod state;
mod template;
mod transport;
mod yaml;

fn main() {
    std::process::exit(cli::main());
}
