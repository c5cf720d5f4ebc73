//! Integration-test harness: throw-away sshd hosts in Docker and a hermetic way to run orch
//! against them. Use with `mod support;` at the top of a tests/*.rs file:
//!
//! ```ignore
//! let fleet = support::Fleet::start("copy_idempotent", 2);
//! fleet.write("site.yml", "- hosts: targets\n  tasks: [...]\n");
//! let run = fleet.orch(&["-i", "inventory.ini", "site.yml"]);
//! run.assert_code(0);
//! assert_eq!(run.recap("h1").changed, 1);
//! assert_eq!(fleet.exec_ok(0, "cat /etc/motd"), "hello\n");
//! ```
//! Every test binary compiles all of this but uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod aptrepo;
mod docker;
mod fake_authentik_host;
pub mod flagship;
mod fleet;
mod image;
mod network;
mod orch_command;
mod process;
mod pve;
mod recap;
mod run_output;

pub use aptrepo::AptRepo;
pub use fake_authentik_host::{
    docker_cp, FakeAuthentik, FakeAuthentikOptions, ENV_FILE, FAKE_REQUESTS, FAKE_STATE,
};
pub use fleet::{count_authentications, ExecResult, Fleet, HostOptions, TestHost};
pub use image::Image;
pub use orch_command::{OrchCommand, RunningOrch};
pub use process::{run_bounded, Finished};
pub use pve::{PveCluster, PveFleet, PveLayout, DEFAULT_ACCESS_CONTROL};
pub use recap::{parse_recap, strip_ansi, Recap};
pub use run_output::RunOutput;
