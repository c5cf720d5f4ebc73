//! apt, deb822_repository and apt_repository against a signed local repository (tests/support/aptrepo.rs).

mod support;

use support::aptrepo::{marker_path, COMPOSE_NEW, COMPOSE_OLD, DOCKER_PACKAGES};
use support::{AptRepo, Fleet};

#[test]
fn fixture_repository_verifies_with_signed_by() {
    let mut fleet = Fleet::start("apt_fixture", 1);
    let repo = AptRepo::serve(&mut fleet);
    fleet.exec_ok(
        0,
        &format!(
            "mkdir -p /etc/apt/keyrings && curl -fsS {} -o /etc/apt/keyrings/t.asc",
            repo.key_url
        ),
    );
    fleet.exec_ok(
        0,
        &format!(
            "echo '{}' > /etc/apt/sources.list.d/t.list",
            repo.list_line("/etc/apt/keyrings/t.asc")
        ),
    );
    let update = fleet.exec(0, "apt-get update --error-on=any 2>&1");
    assert_eq!(update.code, 0, "{update}");
    let policy = fleet.exec_ok(0, "apt-cache policy docker-compose-plugin");
    assert!(
        policy.contains(&format!("Candidate: {COMPOSE_NEW}")),
        "{policy}"
    );
    assert!(policy.contains(COMPOSE_OLD), "{policy}");
    fleet.exec_ok(
        0,
        "DEBIAN_FRONTEND=noninteractive apt-get install -y docker-ce >/dev/null",
    );
    for package in DOCKER_PACKAGES.iter().take(3) {
        fleet.exec_ok(0, &format!("test -x {}", marker_path(package)));
    }
    // A wrong key makes the signature check fail: verification is real.
    fleet.exec_ok(0, "rm -rf /var/lib/apt/lists/*; gpg --batch --quick-gen-key --passphrase '' other@x ed25519 sign never 2>/dev/null; gpg --armor --export other@x > /etc/apt/keyrings/t.asc");
    let bad = fleet.exec(0, "apt-get update --error-on=any 2>&1");
    assert_ne!(bad.code, 0, "{bad}");
    assert!(
        bad.stdout.contains("NO_PUBKEY") || bad.stdout.contains("not signed"),
        "{bad}"
    );
}
