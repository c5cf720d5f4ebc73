//! pve_realm, pve_group, pve_acl and pve_oidc_preflight against the fake PVE tools
//! (tests/support/fake_pve): a two-node cluster plus a standalone node. End states are read with
//! docker exec (domains.cfg, user.cfg), never from orch's output alone.

mod support;

use support::{Fleet, PveFleet, PveLayout, RunOutput};

const CLIENT_KEY: &str = "Zk3-pve-client-secret-8e1f0c";

/// Realm, group and ACLs, once per cluster: h1 for cluster "lab" (h1+h2), h3 standalone.
const SITE: &str = r#"
- hosts: h1,h3
  gather_facts: no
  vars:
    realm_comment: Authentik SSO
    username_claim: preferred_username
  tasks:
    - name: realm
      pve_realm:
        name: authentik
        type: openid
        issuer_url: https://auth.example.test/application/o/pve/
        client_id: pve-client
        client_key: "{{ client_key }}"
        username_claim: "{{ username_claim }}"
        autocreate: true
        default: true
        comment: "{{ realm_comment }}"
        scopes: [openid, email, profile]
        groups_claim: groups
        groups_autocreate: false
        query_userinfo: true
      register: realm
    - name: group
      pve_group:
        name: admins-authentik
        comment: authentik group admins
    - name: admins are administrators
      pve_acl:
        path: /
        roles: [PVEAdmin]
        groups: [admins-authentik]
    - name: admins audit the VMs without propagation
      pve_acl:
        path: /vms
        roles: PVEAuditor,PVEVMUser
        groups: admins-authentik
        propagate: false
"#;

/// A PVE::CLI::pveum stand-in for h1: it records how it was started (its /proc cmdline) and how
/// many arguments Perl's @ARGV holds, then hands @ARGV to the fake pveum. With it, pve_realm
/// takes its in-process path (client key from stdin into @ARGV) as on a real node.
const PERL_SHIM: &str = r#"package PVE::CLI::pveum;
use strict;
use warnings;
sub run_cli_handler {
    open(my $fh, '<', "/proc/$$/cmdline") or die "cmdline: $!";
    my $cmdline = do { local $/; <$fh> };
    $cmdline =~ s/\0/ /g;
    open(my $log, '>>', '/tmp/pveum-inprocess.log') or die "log: $!";
    print $log "cmdline=$cmdline\nargv=" . join(' ', @ARGV) . "\n";
    close $log;
    $ENV{PYTHONCOERCECLOCALE} = '0';
    exec '/usr/bin/python3', '/usr/lib/fake-pve/fakepve.py', 'pveum', @ARGV;
}
1;
"#;

fn orch(pve: &PveFleet, extra: &[&str]) -> RunOutput {
    let inventory = pve.inventory();
    let key_var = format!("client_key={CLIENT_KEY}");
    let mut args = vec![
        "run",
        "site.yml",
        "-i",
        inventory.to_str().expect("utf-8"),
        "-e",
        &key_var,
    ];
    args.extend_from_slice(extra);
    pve.orch(&args)
}

#[track_caller]
fn assert_no_secret(run: &RunOutput) {
    assert!(
        !run.stdout.contains(CLIENT_KEY) && !run.stderr.contains(CLIENT_KEY),
        "the client key leaked into orch's output:\n{run}"
    );
}

/// The `openid: authentik` section of a domains.cfg.
fn realm_section(cfg: &str) -> String {
    let start = cfg
        .find("openid: authentik\n")
        .unwrap_or_else(|| panic!("no authentik realm in:\n{cfg}"));
    let rest = &cfg[start..];
    rest[..rest.find("\n\n").map(|i| i + 1).unwrap_or(rest.len())].to_string()
}

const EXPECTED_SECTION: &str =
    "openid: authentik\n\tcomment Authentik SSO\n\tclient-id pve-client\n\
\tissuer-url https://auth.example.test/application/o/pve/\n\tautocreate 1\n\
\tclient-key Zk3-pve-client-secret-8e1f0c\n\tdefault 1\n\tgroups-claim groups\n\
\tscopes openid email profile\n\tusername-claim preferred_username\n";

#[track_caller]
fn assert_user_cfg(pve: &PveFleet, host: usize) {
    let user_cfg = pve.user_cfg(host);
    for line in [
        "group:admins-authentik::authentik group admins:",
        "acl:1:/:@admins-authentik:PVEAdmin:",
        "acl:0:/vms:@admins-authentik:PVEAuditor,PVEVMUser:",
    ] {
        assert!(
            user_cfg.lines().any(|l| l == line),
            "{line:?} missing from user.cfg on h{}:\n{user_cfg}",
            host + 1
        );
    }
}

#[test]
fn realm_groups_and_acls_converge_once_per_cluster_and_drift_is_restored() {
    let layout = PveLayout::new()
        .version("8.2.2")
        .cluster("lab", 2)
        .standalone()
        .lock_timeout(2);
    let pve = Fleet::start_pve("pve-modules", &layout);
    let (h1, h2, h3) = (0, 1, 2);
    pve.write("site.yml", SITE);
    pve.exec_ok(
        h1,
        &format!("mkdir -p /etc/perl/PVE/CLI && cat > /etc/perl/PVE/CLI/pveum.pm <<'EOF'\n{PERL_SHIM}EOF"),
    );

    // First run: everything is created, once per cluster.
    let first = orch(&pve, &["-vvv"]);
    first.assert_code(0);
    assert_no_secret(&first);
    assert_eq!(first.recap("h1").changed, 4, "{first}");
    assert_eq!(first.recap("h3").changed, 4, "{first}");
    for host in [h1, h2, h3] {
        assert_eq!(realm_section(&pve.domains_cfg(host)), EXPECTED_SECTION);
        assert_user_cfg(&pve, host);
    }
    // h1 passed the key in-process: not in perl's argv, but in @ARGV inside Perl.
    let inprocess = pve.exec_ok(h1, "cat /tmp/pveum-inprocess.log");
    let cmdline = inprocess
        .lines()
        .find(|l| l.starts_with("cmdline="))
        .expect("the shim ran");
    assert!(cmdline.contains("realm add authentik"), "{inprocess}");
    assert!(
        !cmdline.contains(CLIENT_KEY),
        "client key in argv: {inprocess}"
    );
    assert!(
        inprocess.contains(&format!("--client-key {CLIENT_KEY}")),
        "{inprocess}"
    );
    // h3 has no PVE::CLI::pveum: the command-line fallback, and orch says so.
    assert!(
        first
            .stdout
            .contains("client_key was passed on pveum's command line"),
        "{first}"
    );

    // Second run: nothing to do.
    let second = orch(&pve, &["--output", "json"]);
    second.assert_code(0);
    assert_no_secret(&second);
    let again = orch(&pve, &[]);
    again.assert_code(0);
    assert_eq!(again.recap("h1").changed, 0, "{again}");
    assert_eq!(again.recap("h3").changed, 0, "{again}");

    // Drift by hand: the realm comment on the cluster (edited on h2, shared with h1), an ACL on
    // the standalone node.
    pve.exec_ok(
        h2,
        "sed -i 's/^\tcomment Authentik SSO$/\tcomment edited by hand/' /etc/pve/domains.cfg",
    );
    pve.exec_ok(
        h3,
        "pveum acl delete / --roles PVEAdmin --groups admins-authentik",
    );
    let check = orch(&pve, &["--check", "--diff"]);
    check.assert_code(0);
    assert_no_secret(&check);
    assert_eq!(check.recap("h1").changed, 1, "{check}");
    assert_eq!(check.recap("h3").changed, 1, "{check}");
    assert!(check.stdout.contains("comment edited by hand"), "{check}");
    assert!(check.stdout.contains("comment Authentik SSO"), "{check}");
    assert!(
        check.stdout.contains("acl:1:/:@admins-authentik:PVEAdmin:"),
        "{check}"
    );
    assert!(
        pve.domains_cfg(h1).contains("\tcomment edited by hand\n"),
        "check mode changed nothing"
    );
    let restore = orch(&pve, &[]);
    restore.assert_code(0);
    assert_eq!(restore.recap("h1").changed, 1, "{restore}");
    assert_eq!(restore.recap("h3").changed, 1, "{restore}");
    assert_eq!(realm_section(&pve.domains_cfg(h2)), EXPECTED_SECTION);
    assert_user_cfg(&pve, h3);

    // username-claim is fixed after creation: a clear failure, nothing written.
    let before = pve.domains_cfg(h1);
    let claim = orch(&pve, &["-e", "username_claim=email"]);
    claim.assert_code(2);
    assert_no_secret(&claim);
    assert!(
        claim.stdout.contains(
            "username-claim of realm 'authentik' is 'preferred_username' and Proxmox VE cannot \
             change it after creation"
        ),
        "{claim}"
    );
    assert!(claim.stdout.contains("Set recreate: true"), "{claim}");
    assert_eq!(pve.domains_cfg(h1), before);

    // A node that lost quorum refuses at once instead of waiting for pmxcfs's lock.
    pve.set_quorate(h1, false);
    let quorum = orch(&pve, &["-e", "realm_comment=changed", "-l", "h1"]);
    quorum.assert_code(2);
    assert!(
        quorum
            .stdout
            .contains("node h1 of cluster 'lab' is not quorate"),
        "{quorum}"
    );
    assert_eq!(pve.domains_cfg(h1), before);
    pve.set_quorate(h1, true);

    // An older libpve-access-control: groups-claim is refused, naming the version needed.
    pve.exec_ok(
        h3,
        &format!(
            "sh /tmp/fake_pve/install.sh --node h3 --ip {} --version 8.1.4",
            pve.host(h3).ip
        ),
    );
    let solo_before = pve.domains_cfg(h3);
    let old = orch(&pve, &["-l", "h3"]);
    old.assert_code(2);
    assert!(
        old.stdout.contains(
            "this node has libpve-access-control 8.1.4: groups_claim needs \
             libpve-access-control >= 8.2.2 (Proxmox VE 8.4)"
        ),
        "{old}"
    );
    assert_eq!(pve.domains_cfg(h3), solo_before);
}

#[test]
fn recreate_keeps_other_keys_and_an_older_node_refuses_to_drop_newer_ones() {
    let pve = Fleet::start_pve(
        "pve-recreate",
        &PveLayout::new().version("9.1.1").standalone(),
    );
    pve.write(
        "site.yml",
        r#"
- hosts: h1
  gather_facts: no
  tasks:
    - pve_realm:
        name: oidc
        issuer_url: https://kc.example.test/realms/lab
        client_id: pve
        client_key: "{{ client_key }}"
        username_claim: "{{ claim | default(omit) }}"
        audiences: "{{ audiences | default(omit) }}"
        comment: "{{ comment | default(omit) }}"
        recreate: "{{ recreate | default(false) }}"
        state: "{{ state | default('present') }}"
"#,
    );
    let created = orch(&pve, &["-e", "audiences=zitadel-project"]);
    created.assert_code(0);
    assert!(!pve.domains_cfg(0).contains("username-claim"));
    assert!(pve.domains_cfg(0).contains("\taudiences zitadel-project\n"));

    // A new claim with recreate: delete + add, the keys the task does not name carried over.
    let recreated = orch(&pve, &["-e", "claim=email", "-e", "recreate=true"]);
    recreated.assert_code(0);
    assert_no_secret(&recreated);
    assert_eq!(recreated.recap("h1").changed, 1);
    let cfg = pve.domains_cfg(0);
    assert!(cfg.contains("\tusername-claim email\n"), "{cfg}");
    assert!(
        cfg.contains(&format!("\tclient-key {CLIENT_KEY}\n")),
        "{cfg}"
    );
    assert!(cfg.contains("\taudiences zitadel-project\n"), "{cfg}");

    // The node is downgraded (think: the one node of a cluster not yet upgraded): its parser
    // cannot read `audiences`, and any write from it would drop the key.
    let reinstall = |version: &str| {
        pve.exec_ok(
            0,
            &format!(
                "sh /tmp/fake_pve/install.sh --node h1 --ip {} --version {version}",
                pve.host(0).ip
            ),
        )
    };
    reinstall("8.2.2");
    let before = pve.domains_cfg(0);
    let refused = orch(&pve, &["-e", "claim=email", "-e", "comment=changed"]);
    refused.assert_code(2);
    assert!(
        refused.stdout.contains(
            "this node's libpve-access-control (8.2.2) cannot read oidc.audiences in \
             /etc/pve/domains.cfg"
        ),
        "{refused}"
    );
    assert_eq!(pve.domains_cfg(0), before);
    reinstall("9.1.1");

    let removed = orch(&pve, &["-e", "state=absent"]);
    removed.assert_code(0);
    assert_eq!(removed.recap("h1").changed, 1);
    assert!(!pve.domains_cfg(0).contains("oidc"));
    let absent_again = orch(&pve, &["-e", "state=absent"]);
    absent_again.assert_code(0);
    assert_eq!(absent_again.recap("h1").changed, 0);
}

/// A discovery server on h2: plain HTTP on 8080 and HTTPS (self-signed, for h2's address) on
/// 8443. `/good/` is RS256 with a matching issuer, `/slash/` announces its issuer with the
/// trailing slash, `/es/` signs with ES256 only.
const DISCOVERY_SERVER: &str = r#"
import json, ssl, threading
from http.server import HTTPServer, BaseHTTPRequestHandler

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        base = "%s://%s" % (scheme, self.headers["Host"])
        docs = {"/good/": ["RS256"], "/slash/": ["RS256"], "/es/": ["ES256"]}
        for prefix, algs in docs.items():
            if self.path == prefix + ".well-known/openid-configuration":
                body = json.dumps({
                    "issuer": base + prefix,
                    "authorization_endpoint": base + "/authorize/",
                    "id_token_signing_alg_values_supported": algs,
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        self.send_error(404)

    def log_message(self, *args):
        pass

plain = HTTPServer(("0.0.0.0", 8080), Handler)
tls = HTTPServer(("0.0.0.0", 8443), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/srv/idp/cert.pem", "/srv/idp/key.pem")
tls.socket = context.wrap_socket(tls.socket, server_side=True)
threading.Thread(target=tls.serve_forever, daemon=True).start()
plain.serve_forever()
"#;

#[test]
fn preflight_reports_issuer_mismatch_ecdsa_untrusted_tls_and_unreachable() {
    let fleet = Fleet::start("pve-preflight", 2);
    let idp = fleet.host(1).ip.clone();
    fleet.exec_ok(
        1,
        &format!(
            "mkdir -p /srv/idp && cat > /srv/idp/server.py <<'EOF'\n{DISCOVERY_SERVER}EOF\n\
             openssl req -x509 -newkey rsa:2048 -nodes -keyout /srv/idp/key.pem \
             -out /srv/idp/cert.pem -days 2 -subj /CN={idp} -addext subjectAltName=IP:{idp} 2>/dev/null"
        ),
    );
    let status = std::process::Command::new("docker")
        .args([
            "exec",
            "-d",
            &fleet.host(1).container,
            "python3",
            "/srv/idp/server.py",
        ])
        .status()
        .expect("docker exec -d");
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while fleet
        .exec(0, &format!("curl -sk -o /dev/null https://{idp}:8443/"))
        .code
        != 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "discovery server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    fleet.write(
        "site.yml",
        r#"
- hosts: h1
  gather_facts: no
  tasks:
    - name: good over http
      pve_oidc_preflight:
        issuer_url: "http://{{ idp }}:8080/good/"
      register: good
    - name: no trailing slash
      pve_oidc_preflight:
        issuer_url: "http://{{ idp }}:8080/slash"
      ignore_errors: true
    - name: ecdsa
      pve_oidc_preflight:
        issuer_url: "http://{{ idp }}:8080/es/"
      ignore_errors: true
    - name: self-signed
      pve_oidc_preflight:
        issuer_url: "https://{{ idp }}:8443/good/"
      ignore_errors: true
    - name: nothing listens
      pve_oidc_preflight:
        issuer_url: "https://{{ idp }}:9443/good/"
        timeout: 3
      ignore_errors: true
    - name: unknown name
      pve_oidc_preflight:
        issuer_url: "https://idp.invalid/application/o/pve/"
        timeout: 3
      ignore_errors: true
    - name: keep what the good check saw
      copy:
        content: "{{ good.signing_algs | join(',') }} {{ good.provider_issuer }}\n"
        dest: /tmp/preflight-good
"#,
    );
    let inventory = fleet.inventory();
    let idp_var = format!("idp={idp}");
    let run = fleet.orch(&[
        "run",
        "site.yml",
        "-i",
        inventory.to_str().expect("utf-8"),
        "-e",
        &idp_var,
    ]);
    run.assert_code(0);
    let recap = run.recap("h1");
    assert_eq!(recap.ignored, 5, "{run}");
    assert_eq!(
        fleet.exec_ok(0, "cat /tmp/preflight-good"),
        format!("RS256 http://{idp}:8080/good/\n")
    );
    for expected in [
        format!(
            "issuer mismatch: configured http://{idp}:8080/slash (no trailing slash) but the \
             provider says http://{idp}:8080/slash/ — add the trailing slash"
        ),
        "ES256 only: the signing key is ECDSA — Proxmox rejects it with 401".to_string(),
        "TLS: certificate not trusted by this node".to_string(),
        "install the CA (authentik_tls: internal_ca) or use a public certificate".to_string(),
        format!("unreachable: route — {idp}:9443 refused or no route"),
        "unreachable: DNS — this node cannot resolve idp.invalid".to_string(),
    ] {
        assert!(
            run.stdout.contains(&expected),
            "{expected:?} missing:\n{run}"
        );
    }

    // Once the node trusts the certificate, the HTTPS issuer passes.
    let cert = fleet.exec_ok(1, "cat /srv/idp/cert.pem");
    fleet.exec_ok(
        0,
        &format!(
            "cat > /usr/local/share/ca-certificates/test-idp.crt <<'EOF'\n{cert}EOF\n\
             update-ca-certificates >/dev/null 2>&1"
        ),
    );
    fleet.write(
        "trusted.yml",
        r#"
- hosts: h1
  gather_facts: no
  tasks:
    - pve_oidc_preflight:
        issuer_url: "https://{{ idp }}:8443/good/"
      register: tls
    - copy:
        content: "{{ tls.tls_verified }}\n"
        dest: /tmp/preflight-tls
"#,
    );
    let trusted = fleet.orch(&[
        "run",
        "trusted.yml",
        "-i",
        inventory.to_str().expect("utf-8"),
        "-e",
        &idp_var,
    ]);
    trusted.assert_code(0);
    assert_eq!(fleet.exec_ok(0, "cat /tmp/preflight-tls"), "True\n");
}
