//! The modules orch knows, by short name and by fully qualified collection name.

use super::apt::Apt;
use super::apt_repository::AptRepository;
use super::authentik::{
    AuthentikApplication, AuthentikBrand, AuthentikCertificate, AuthentikProviderOauth2,
};
use super::authentik_wait::AuthentikWait;
use super::blockinfile::BlockInFile;
use super::command::{Command, Raw, Shell};
use super::control::{Assert, Debug, Fail, Pause, SetFact};
use super::copy::Copy;
use super::deb822_repository::Deb822Repository;
use super::docker_compose_v2::DockerComposeV2;
use super::docker_compose_v2_pull::DockerComposeV2Pull;
use super::env_file::EnvFile;
use super::file::File;
use super::get_url::GetUrl;
use super::group::Group;
use super::lineinfile::LineInFile;
use super::pve::acl::PveAcl;
use super::pve::group::PveGroup;
use super::pve::preflight::PveOidcPreflight;
use super::pve::realm::PveRealm;
use super::service::Service;
use super::setup::Setup;
use super::slurp::Slurp;
use super::stat::Stat;
use super::systemd_service::SystemdService;
use super::template::Template;
use super::tls::ca_trust::CaTrust;
use super::tls::internal_ca::InternalCa;
use super::uri::Uri;
use super::user::User;
use super::wait_for::WaitFor;
use super::Module;

static MODULES: &[&(dyn Module + 'static)] = &[
    &Command,
    &Shell,
    &Raw,
    &SetFact,
    &Debug,
    &Assert,
    &Fail,
    &Pause,
    &Copy,
    &Template,
    &File,
    &LineInFile,
    &BlockInFile,
    &Stat,
    &Slurp,
    &WaitFor,
    &Setup,
    &DockerComposeV2,
    &DockerComposeV2Pull,
    &SystemdService,
    &Service,
    &GetUrl,
    &Uri,
    &User,
    &Group,
    &Apt,
    &Deb822Repository,
    &AptRepository,
    &AuthentikCertificate,
    &AuthentikProviderOauth2,
    &AuthentikApplication,
    &AuthentikBrand,
    &EnvFile,
    &AuthentikWait,
    &PveRealm,
    &PveGroup,
    &PveAcl,
    &PveOidcPreflight,
    &InternalCa,
    &CaTrust,
];

/// Collection prefixes under which the built-in modules are also known.
const PREFIXES: &[&str] = &[
    "ansible.builtin.",
    "ansible.legacy.",
    "ansible.posix.",
    "community.general.",
    "community.docker.",
];

/// Other names a module answers to (`systemd` is `systemd_service`).
const ALIASES: &[(&str, &str)] = &[("systemd", "systemd_service"), ("gather_facts", "setup")];

pub fn find(name: &str) -> Option<&'static dyn Module> {
    let short = PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    let short = ALIASES
        .iter()
        .find(|(alias, _)| *alias == short)
        .map(|(_, real)| *real)
        .unwrap_or(short);
    MODULES.iter().find(|m| m.name() == short).copied()
}

pub fn names() -> impl Iterator<Item = &'static str> {
    MODULES.iter().map(|m| m.name())
}
