//! `orch inventory` prints exactly what ansible-inventory printed for the same inventories
//! (the expected files were produced by ansible-core 2.19's ansible-inventory).

mod support;

use std::path::{Path, PathBuf};

use support::OrchCommand;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/inventory/testdata")
}

fn orch_inventory(args: &[&str]) -> String {
    let home = tempfile::tempdir().expect("home");
    let out = OrchCommand::new(args, &testdata(), home.path()).run();
    out.assert_code(0);
    out.stdout
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(testdata().join("expected").join(name)).expect("expected output")
}

#[test]
fn list_graph_and_host_match_ansible_inventory() {
    let ini = testdata().join("ini_basic/hosts.ini");
    let ini = ini.to_str().expect("path");
    assert_eq!(
        orch_inventory(&["inventory", "-i", ini, "--list"]).trim_end(),
        expected("ini_basic.list.json").trim_end()
    );
    assert_eq!(
        orch_inventory(&["inventory", "-i", ini, "--graph"]).trim_end(),
        expected("ini_basic.graph").trim_end()
    );
    assert_eq!(
        orch_inventory(&["inventory", "-i", ini, "--host", "dbx"]).trim_end(),
        expected("ini_basic.dbx.json").trim_end()
    );
    let yaml = testdata().join("yaml_basic/inv.yml");
    let yaml = yaml.to_str().expect("path");
    assert_eq!(
        orch_inventory(&["inventory", "-i", yaml, "--list"]).trim_end(),
        expected("yaml_basic.list.json").trim_end()
    );
}

#[test]
fn completions_are_printed() {
    let home = tempfile::tempdir().expect("home");
    let out = OrchCommand::new(&["completions", "bash"], home.path(), home.path()).run();
    out.assert_code(0);
    assert!(
        out.stdout.contains("complete -F") && out.stdout.contains("orch"),
        "{out}"
    );
}

#[test]
fn unknown_option_exits_5() {
    let home = tempfile::tempdir().expect("home");
    let out = OrchCommand::new(&["run", "x.yml", "--bogus"], home.path(), home.path()).run();
    out.assert_code(5);
}

#[test]
fn import_playbook_vars_reach_the_imported_plays_hosts() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("hosts"), "[web]\na\n\n[db]\nb\n").expect("inventory");
    std::fs::write(
        dir.path().join("sub.yml"),
        "- hosts: \"{{ grp | default('db') }}\"\n  gather_facts: no\n  tasks:\n    - debug: {msg: hi}\n",
    )
    .expect("sub");
    std::fs::write(
        dir.path().join("main.yml"),
        "- import_playbook: sub.yml\n  vars: {grp: web}\n- import_playbook: sub.yml\n",
    )
    .expect("main");
    let home = tempfile::tempdir().expect("home");
    let out = OrchCommand::new(
        &["run", "main.yml", "-i", "hosts", "--list-hosts"],
        dir.path(),
        home.path(),
    )
    .run();
    out.assert_code(0);
    let plays: Vec<&str> = out.stdout.split("play #").skip(1).collect();
    assert_eq!(plays.len(), 2, "{out}");
    assert!(plays[0].contains("hosts (1):\n      a\n"), "{out}");
    assert!(plays[1].contains("hosts (1):\n      b\n"), "{out}");
}
