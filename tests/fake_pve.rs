//! The fake Proxmox VE tools (tests/support/fake_pve) behave like the real ones where orch's
//! PVE modules depend on it: cluster-wide /etc/pve, the exact domains.cfg format, the real
//! error texts and exit status, version-gated options and quorum. Checked with docker exec only.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use support::{ExecResult, Fleet, PveFleet, PveLayout};

/// What pveum writes for the reference's example realm (proxmox-realm.md §3.1), byte for byte.
const REFERENCE_DOMAINS_CFG: &str = "pam: pam\n\tcomment Linux PAM standard authentication\n\n\
pve: pve\n\tcomment Proxmox VE authentication server\n\n\
openid: authentik\n\tcomment Authentik SSO\n\tclient-id pve\n\
\tissuer-url https://auth.example.com/application/o/pve/\n\tautocreate 1\n\tclient-key s3cr3t\n\
\tdefault 1\n\tgroups-claim groups\n\tscopes openid email profile\n\
\tusername-claim preferred_username\n\n";

const ADD_REFERENCE_REALM: &str = "pveum realm add authentik --type openid \
--issuer-url https://auth.example.com/application/o/pve/ --client-id pve --client-key s3cr3t \
--username-claim preferred_username --autocreate 1 --scopes 'openid email profile' \
--groups-claim groups --comment 'Authentik SSO' --default 1";

fn json_of(pve: &PveFleet, host: usize, cmd: &str) -> Value {
    let out = pve.exec_ok(host, cmd);
    serde_json::from_str(&out).unwrap_or_else(|error| panic!("{cmd}: not JSON ({error}): {out}"))
}

/// JSON arrays from Perl hashes come in random order: compare them as sets of compact strings.
fn as_set(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(Value::to_string)
        .collect()
}

#[track_caller]
fn assert_refused(result: &ExecResult, first_lines: &str) {
    assert_eq!(result.code, 255, "expected exit 255: {result}");
    assert!(
        result.stderr.starts_with(first_lines),
        "stderr should start with {first_lines:?}: {result}"
    );
    assert_eq!(result.stdout, "", "nothing on stdout: {result}");
}

#[test]
fn a_two_node_cluster_shares_one_realm_config_and_pveum_answers_like_the_real_one() {
    let layout = PveLayout::new()
        .version("8.2.2")
        .cluster("lab", 2)
        .version("9.1.1")
        .standalone()
        .lock_timeout(2);
    let pve = Fleet::start_pve("fake-pve", &layout);
    let clusters = pve.clusters();
    assert_eq!(clusters.len(), 2);
    assert_eq!(clusters[0].name.as_deref(), Some("lab"));
    assert_eq!(clusters[0].hosts, vec![0, 1]);
    assert_eq!(clusters[1].name, None);
    assert_eq!(clusters[1].hosts, vec![2]);
    let (node1, node2, solo) = (0, 1, 2);

    // Identity: each node sees its own .members, the cluster CA is shared, the standalone's differs.
    let members: Value =
        serde_json::from_str(&pve.exec_ok(node2, "cat /etc/pve/.members")).unwrap();
    assert_eq!(members["nodename"], "h2");
    assert_eq!(members["cluster"]["name"], "lab");
    assert_eq!(members["cluster"]["quorate"], 1);
    assert_eq!(members["nodelist"]["h1"]["ip"], pve.host(node1).ip.as_str());
    let solo_members: Value =
        serde_json::from_str(&pve.exec_ok(solo, "cat /etc/pve/.members")).unwrap();
    assert_eq!(solo_members, json!({"nodename": "h3", "version": 0}));
    let fingerprint = "openssl x509 -in /etc/pve/pve-root-ca.pem -noout -fingerprint -sha256";
    assert_eq!(
        pve.exec_ok(node1, fingerprint),
        pve.exec_ok(node2, fingerprint)
    );
    assert_ne!(
        pve.exec_ok(node1, fingerprint),
        pve.exec_ok(solo, fingerprint)
    );
    let status = json_of(
        &pve,
        node1,
        "pvesh get /cluster/status --output-format json",
    );
    assert_eq!(status[0]["type"], "cluster");
    assert_eq!(
        status.as_array().unwrap().len(),
        3,
        "cluster entry + 2 nodes: {status}"
    );

    // Versions: pveversion and dpkg agree with what the node pretends to be.
    assert!(pve
        .exec_ok(node1, "pveversion")
        .starts_with("pve-manager/8.4.1/"));
    let dpkg = "dpkg-query -W -f '${Version}' libpve-access-control";
    assert_eq!(pve.exec_ok(node1, dpkg), "8.2.2");
    assert_eq!(pve.exec_ok(solo, dpkg), "9.1.1");

    // A realm added on node 1 is there on node 2, written exactly like pveum writes it.
    let add = pve.exec(node1, ADD_REFERENCE_REALM);
    assert_eq!((add.code, add.stdout.as_str()), (0, ""), "{add}");
    assert_eq!(pve.domains_cfg(node2), REFERENCE_DOMAINS_CFG);
    let realm = json_of(
        &pve,
        node2,
        "pvesh get /access/domains/authentik --output-format json",
    );
    let digest = pve.exec_ok(node2, "sha1sum /etc/pve/domains.cfg | cut -d' ' -f1");
    assert_eq!(realm["digest"], digest.trim());
    assert_eq!(realm["autocreate"], 1, "booleans are JSON numbers");
    assert_eq!(realm["client-key"], "s3cr3t");
    assert!(
        realm.get("realm").is_none() && realm.get("query-userinfo").is_none(),
        "{realm}"
    );
    let realms = json_of(&pve, node2, "pveum realm list --output-format json");
    assert!(as_set(&realms).contains(
        r#"{"comment":"Authentik SSO","default":1,"realm":"authentik","type":"openid"}"#
    ));
    // ... and not on the standalone node, which has its own /etc/pve.
    assert!(!pve.domains_cfg(solo).contains("authentik"));

    // modify: only the given keys change, --delete removes keys, the digest guards the write.
    let stale = pve.exec(
        node2,
        "pveum realm modify authentik --comment x --digest 0123abcd",
    );
    assert_refused(
        &stale,
        "update auth server failed: detected modified configuration - file changed by other user? Try again.\n",
    );
    let modify = format!(
        "pveum realm modify authentik --delete groups-claim,default --client-key n3w --digest {}",
        digest.trim()
    );
    pve.exec_ok(node2, &modify);
    assert_eq!(
        pve.domains_cfg(node1),
        REFERENCE_DOMAINS_CFG
            .replace("\tdefault 1\n\tgroups-claim groups\n", "")
            .replace("client-key s3cr3t", "client-key n3w")
    );

    // username-claim is fixed after creation: Getopt does not know it on modify.
    let claim = pve.exec(node1, "pveum realm modify authentik --username-claim email");
    assert_refused(
        &claim,
        "Unknown option: username-claim\n400 unable to parse option\npveum realm modify <realm> [OPTIONS]\n",
    );

    // Options newer than the node's libpve-access-control are unknown to it.
    let audiences = pve.exec(node1, "pveum realm modify authentik --audiences extra");
    assert_refused(
        &audiences,
        "Unknown option: audiences\n400 unable to parse option\n",
    );
    pve.exec_ok(
        solo,
        "pveum realm add sso --type openid --issuer-url https://idp/ --client-id pve --audiences a,b",
    );
    assert!(pve.domains_cfg(solo).contains("\n\taudiences a,b\n"));

    // Without quorum every write fails after the lock timeout; the file stays as it was.
    let before = pve.domains_cfg(node1);
    pve.set_quorate(node2, false);
    let no_quorum = pve.exec(node2, "pveum realm modify authentik --comment 'lost'");
    assert_eq!(no_quorum.code, 255, "{no_quorum}");
    assert!(
        no_quorum.stderr.ends_with(
            "update auth server failed: cfs-lock 'file-domains_cfg' error: no quorum!\n"
        ),
        "{no_quorum}"
    );
    assert_eq!(pve.domains_cfg(node1), before);
    pve.exec_ok(node2, "pveum realm list --output-format json"); // reads still work
    pve.set_quorate(node2, true);
    pve.exec_ok(node2, "pveum realm modify authentik --comment 'back'");
    assert!(pve.domains_cfg(node1).contains("\tcomment back\n"));

    // Groups and ACLs round-trip through user.cfg and pvesh's JSON.
    pve.exec_ok(
        node1,
        "pveum group add admins-authentik --comment 'IdP admins'",
    );
    pve.exec_ok(
        node2,
        "pveum acl modify / --groups admins-authentik --roles PVEAdmin",
    );
    pve.exec_ok(
        node2,
        "pveum acl modify /vms --groups admins-authentik --roles PVEVMUser --propagate 0",
    );
    let again = pve.exec(node2, "pveum group add admins-authentik");
    assert_refused(
        &again,
        "create group failed: group 'admins-authentik' already exists\n",
    );
    let missing = pve.exec(node1, "pveum acl modify / --groups nobody --roles PVEAdmin");
    assert_refused(
        &missing,
        "ACL update failed: group 'nobody' does not exist\n",
    );
    assert_eq!(
        pve.user_cfg(node1),
        "user:root@pam:1:0:::admin@example.invalid:::\n\n\
         group:admins-authentik::IdP admins:\n\n\n\n\
         acl:1:/:@admins-authentik:PVEAdmin:\nacl:0:/vms:@admins-authentik:PVEVMUser:\n"
    );
    let acl = json_of(&pve, node1, "pvesh get /access/acl --output-format json");
    assert_eq!(
        as_set(&acl),
        as_set(&json!([
            {"path": "/", "propagate": 1, "roleid": "PVEAdmin", "type": "group", "ugid": "admins-authentik"},
            {"path": "/vms", "propagate": 0, "roleid": "PVEVMUser", "type": "group", "ugid": "admins-authentik"}
        ]))
    );
    assert_eq!(
        json_of(&pve, node2, "pveum acl list --output-format json")
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let groups = json_of(&pve, node2, "pvesh get /access/groups --output-format json");
    assert_eq!(
        groups,
        json!([{"comment": "IdP admins", "groupid": "admins-authentik", "users": ""}])
    );
    pve.exec_ok(
        node1,
        "pveum acl delete /vms --groups admins-authentik --roles PVEVMUser",
    );
    let acl = json_of(&pve, node2, "pvesh get /access/acl --output-format json");
    assert_eq!(acl.as_array().map(Vec::len), Some(1), "{acl}");
}
