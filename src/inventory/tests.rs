//! Whole-inventory tests. Fixtures under `testdata/` were run through ansible-core 2.19.14's
//! `ansible-inventory` / `ansible --list-hosts`; `testdata/expected/` holds what it printed.

use super::*;
use serde_json::json;

fn testdata(rel: &str) -> String {
    format!(
        "{}/src/inventory/testdata/{rel}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn expected(name: &str) -> String {
    let text = std::fs::read_to_string(testdata(&format!("expected/{name}")))
        .expect("expected output exists");
    text.trim_end_matches('\n').to_string()
}

fn load(rel: &str) -> Inventory {
    Inventory::load(&[testdata(rel)]).unwrap_or_else(|e| panic!("{rel} loads: {e}"))
}

/// Writes files (path → content) into a fresh temporary directory.
fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (rel, content) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }
    dir
}

fn load_in(dir: &tempfile::TempDir, rel: &str) -> Result<Inventory, Diagnostic> {
    Inventory::load(&[dir.path().join(rel).to_string_lossy().into_owned()])
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// ----- exports compared with ansible-inventory -----

#[test]
fn ini_inventory_exports_match_ansible() {
    let inv = load("ini_basic/hosts.ini");
    assert_eq!(
        to_ansible_json(&inv.list_json()),
        expected("ini_basic.list.json")
    );
    assert_eq!(inv.graph(None).unwrap(), expected("ini_basic.graph"));
    assert_eq!(
        to_ansible_json(&inv.host_json("dbx").unwrap()),
        expected("ini_basic.dbx.json")
    );
    assert!(inv.host_json("nope").is_none());
}

#[test]
fn yaml_inventory_exports_match_ansible() {
    let inv = load("yaml_basic/inv.yml");
    assert_eq!(
        to_ansible_json(&inv.list_json()),
        expected("yaml_basic.list.json")
    );
    assert_eq!(inv.graph(None).unwrap(), expected("yaml_basic.graph"));
}

#[test]
fn directory_source_exports_match_ansible() {
    let inv = load("dir_source");
    assert_eq!(
        to_ansible_json(&inv.list_json()),
        expected("dir_source.list.json")
    );
    assert_eq!(inv.graph(None).unwrap(), expected("dir_source.graph"));
    assert_eq!(
        inv.graph(Some("gamma")).unwrap(),
        expected("dir_source.gamma.graph")
    );
    assert!(inv
        .graph(Some("gama"))
        .unwrap_err()
        .hint
        .unwrap()
        .contains("gamma"));
    // README.md, hosts.retry and .hidden are skipped; sub/nested is read.
    assert_eq!(inv.host_names(), names(&["m1", "m2", "m3", "m4"]));
}

#[test]
fn nine_precedence_levels_match_ansible() {
    let mut inv = load("precedence/inv/hosts");
    inv.add_vars_dir(Path::new(&testdata("precedence/pb")))
        .unwrap();
    assert_eq!(
        to_ansible_json(&inv.host_json("h1").unwrap()),
        expected("precedence.h1.json")
    );
    let vars = inv.vars_for_host("h1");
    for level in 1..=9 {
        assert_eq!(
            vars[&format!("p{level}")],
            json!(format!("L{level}")),
            "level {level}"
        );
    }
}

#[test]
fn to_ansible_json_sorts_indents_and_escapes() {
    let value = json!({"b": [1, {"z": "é", "a": []}], "a": {}});
    assert_eq!(
        to_ansible_json(&value),
        "{\n    \"a\": {},\n    \"b\": [\n        1,\n        {\n            \"a\": [],\n            \"z\": \"\\u00e9\"\n        }\n    ]\n}"
    );
}

// ----- INI semantics -----

#[test]
fn ini_values_follow_literal_eval() {
    let inv = load("ini_basic/hosts.ini");
    let pve = inv.vars_for_host("pve02.lab");
    assert_eq!(pve["x"], json!("a b"));
    assert_eq!(pve["n"], json!(5));
    assert_eq!(pve["b"], json!(true));
    assert_eq!(pve["l"], json!([1, 2]));
    assert_eq!(pve["d"], json!({"k": "v"}));
    assert_eq!(pve["s"], json!("yes"));
    assert_eq!(pve["wv"], json!("hello world"));
    assert_eq!(pve["q"], json!("quoted"));
    assert_eq!(inv.vars_for_host("loose2")["ansible_port"], json!(2200));
    assert_eq!(
        inv.host("pve01.lab").unwrap().span.as_ref().unwrap().line,
        6
    );
}

#[test]
fn ini_membership_and_magic_vars() {
    let inv = load("ini_basic/hosts.ini");
    let order = [
        "loose1",
        "loose2",
        "pve01.lab",
        "pve02.lab",
        "pve03.lab",
        "db-a",
        "db-b",
        "db-c",
        "dbx",
        "l1",
    ];
    assert_eq!(inv.host_names(), names(&order));
    assert_eq!(inv.group_names("db-a"), names(&["db", "prod", "web"]));
    assert_eq!(inv.group_names("loose1"), names(&["ungrouped"]));
    let groups = inv.groups_value();
    assert_eq!(
        groups["prod"],
        json!([
            "pve01.lab",
            "pve02.lab",
            "pve03.lab",
            "db-a",
            "db-b",
            "db-c",
            "dbx",
            "l1"
        ])
    );
    assert_eq!(groups["ungrouped"], json!(["loose1", "loose2"]));
    assert_eq!(groups["all"], json!(order));
    let file = inv.inventory_file("dbx").unwrap();
    assert!(file.ends_with("ini_basic/hosts.ini"), "{file}");
    assert!(inv.inventory_dir("dbx").unwrap().ends_with("ini_basic"));
    assert_eq!(inv.vars_for_host("dbx")["inventory_file"], json!(file));
}

#[test]
fn ini_children_before_and_after_declaration() {
    let dir = fixture(&[(
        "hosts",
        "[top:children]\nmid\n\n[mid:children]\nleaf\n\n[leaf]\nh1\n[mid]\nh2\n[top:vars]\nv=top\n[leaf:vars]\nv=leaf\n",
    )]);
    let inv = load_in(&dir, "hosts").unwrap();
    assert_eq!(inv.group("top").unwrap().children, names(&["mid"]));
    assert_eq!(
        inv.group("all").unwrap().children,
        names(&["ungrouped", "top"])
    );
    assert_eq!(inv.group_names("h1"), names(&["leaf", "mid", "top"]));
    assert_eq!(inv.vars_for_host("h1")["v"], json!("leaf"));
    assert_eq!(inv.vars_for_host("h2")["v"], json!("top"));
    assert_eq!(inv.select("top").unwrap().hosts, names(&["h2", "h1"]));
}

#[test]
fn ungrouped_host_listed_in_a_group_leaves_ungrouped() {
    let dir = fixture(&[("hosts", "a\nb\n[g]\nb\n")]);
    let inv = load_in(&dir, "hosts").unwrap();
    assert_eq!(inv.group("ungrouped").unwrap().hosts, names(&["a"]));
    assert_eq!(inv.group_names("b"), names(&["g"]));
}

#[test]
fn host_port_is_fixed_by_the_first_definition() {
    let dir = fixture(&[("hosts", "[a]\nh:2201\n[b]\nh:2202 x=1\n")]);
    let inv = load_in(&dir, "hosts").unwrap();
    assert_eq!(inv.vars_for_host("h")["ansible_port"], json!(2201));
    assert_eq!(inv.vars_for_host("h")["x"], json!(1));
}

fn ini_error(content: &str) -> Diagnostic {
    let dir = fixture(&[("hosts", content)]);
    load_in(&dir, "hosts").expect_err("must fail")
}

#[test]
fn ini_errors_have_positions() {
    let e = ini_error("[a:children]\nb\n[b:children]\nc\n[c:children]\na\n");
    assert_eq!(e.span.as_ref().unwrap().line, 6);
    assert!(e.message.contains("c -> a -> b -> c"), "{}", e.message);

    let e = ini_error("[g]\nh\n[g:bogus]\n");
    assert_eq!(e.span.as_ref().unwrap().line, 3);
    assert!(e.message.contains("unknown type: bogus"));

    let e = ini_error("[g]\nh\n[g:vars]\nnoequals\n");
    assert_eq!(e.span.as_ref().unwrap().line, 4);
    assert!(e.message.contains("expected key=value"));

    let e = ini_error("[g]\nok\n  h[1:]\n");
    assert_eq!(
        (e.span.as_ref().unwrap().line, e.span.as_ref().unwrap().col),
        (3, 3)
    );
    assert!(e.message.contains("must specify end value"));

    let e = ini_error("[g]\nh x=1 ; comment\n");
    assert!(e.message.contains("got: ;"));

    let e = ini_error("[g:children]\nnope\n[nopf]\n");
    assert_eq!(e.span.as_ref().unwrap().line, 2);
    assert!(e.message.contains("includes undefined group `nope`"));
    assert!(e.hint.unwrap().contains("nopf"));

    let e = ini_error("[g:vars]\na=1\n");
    assert!(e.message.contains("not valid for undefined group"));

    let e = ini_error("[g]\n[g:children]\ng\n");
    assert!(e.message.contains("child of itself"));

    let e = ini_error("[g with space]\n");
    assert!(e.message.contains("invalid section"));
}

// ----- YAML semantics -----

#[test]
fn yaml_hosts_ranges_ports_and_priority() {
    let inv = load("yaml_basic/inv.yml");
    assert_eq!(
        inv.vars_for_host("2001:db8::1")["ansible_port"],
        json!(2222)
    );
    assert_eq!(inv.vars_for_host("pve1")["gp"], json!("ceph"));
    assert_eq!(inv.group("pve_ceph").unwrap().priority, 10);
    assert!(!inv
        .group("pve_ceph")
        .unwrap()
        .vars
        .contains_key("ansible_group_priority"));
    assert_eq!(inv.group_names("top1"), names(&["standalone"]));
    assert_eq!(inv.group_names("top2"), names(&["ungrouped"]));
    assert!(inv.warnings.is_empty(), "{:?}", inv.warnings);
}

fn yaml_error(content: &str) -> Diagnostic {
    let dir = fixture(&[("inv.yml", content)]);
    load_in(&dir, "inv.yml").expect_err("must fail")
}

#[test]
fn yaml_errors_have_positions() {
    let e = yaml_error("g:\n  hosts:\n    - h1\n");
    assert!(
        e.message.contains("requires a mapping, found a list"),
        "{}",
        e.message
    );
    assert_eq!(e.span.as_ref().unwrap().line, 3);

    let e = yaml_error("all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n");
    assert!(e.message.contains("a -> b -> a"), "{}", e.message);
    // Like Ansible, the loop is found when `b` is attached to `a` (after b's own subtree is read).
    assert_eq!(e.span.as_ref().unwrap().line, 5);

    let e = yaml_error("g:\n  hosts:\n    h[3:]:\n");
    assert_eq!(e.span.as_ref().unwrap().line, 3);

    let e = yaml_error("g:\n  hosts:\n    h1: just-a-string\n");
    assert!(e.message.contains("must be a mapping"));

    let e = yaml_error("plugin: aws_ec2\n");
    assert!(e.message.contains("plugin"));

    let e = yaml_error("all: [unclosed\n");
    assert!(e.message.contains("YAML"), "{}", e.message);
}

#[test]
fn yaml_oddities_warn_like_ansible() {
    let dir = fixture(&[(
        "inv.yaml",
        "g:\n  hosts: h1\n  extra: {}\n  bad: 3\nnot_a_group: 5\n",
    )]);
    let inv = load_in(&dir, "inv.yaml").unwrap();
    assert_eq!(inv.group("g").unwrap().hosts, names(&["h1"]));
    assert_eq!(inv.warnings.len(), 3, "{:?}", inv.warnings);
    assert!(inv.group("not_a_group").is_none());
}

#[test]
fn format_detection_without_extension() {
    let dir = fixture(&[
        ("yaml_hosts", "web:\n  hosts:\n    w1:\n"),
        ("ini_hosts", "w2\n[db]\nd1\n"),
        ("scalar.yml", "h9\n"),
    ]);
    assert_eq!(
        load_in(&dir, "yaml_hosts").unwrap().group_names("w1"),
        names(&["web"])
    );
    assert_eq!(
        load_in(&dir, "ini_hosts").unwrap().host_names(),
        names(&["w2", "d1"])
    );
    // Ansible falls back to INI when a .yml file is not a YAML mapping.
    assert_eq!(
        load_in(&dir, "scalar.yml").unwrap().host_names(),
        names(&["h9"])
    );
}

// ----- sources -----

#[test]
fn comma_separated_host_list() {
    let inv = Inventory::load(&["h1, h2:2222 ,[::1]:22,".to_string()]).unwrap();
    assert_eq!(inv.host_names(), names(&["h1", "h2", "::1"]));
    assert_eq!(inv.vars_for_host("h2")["ansible_port"], json!(2222));
    assert_eq!(inv.inventory_file("h1"), Some("h1, h2:2222 ,[::1]:22,"));
    assert_eq!(inv.vars_for_host("h1")["inventory_dir"], Value::Null);
}

#[test]
fn missing_source_is_an_error() {
    let e = Inventory::load(&["/nonexistent/orch/inventory".to_string()]).unwrap_err();
    assert!(e.message.contains("does not exist"));
}

#[test]
fn several_sources_merge_and_each_has_its_vars_dir() {
    let dir = fixture(&[
        ("a/hosts", "[web]\nw1 x=a\n"),
        ("a/group_vars/web.yml", "from_a: 1\n"),
        ("b/hosts.yml", "web:\n  hosts:\n    w1: {x: b}\n    w2:\n"),
        ("b/group_vars/web.yml", "from_b: 2\nfrom_a: overridden\n"),
    ]);
    let sources = [dir.path().join("a/hosts"), dir.path().join("b/hosts.yml")]
        .map(|p| p.to_string_lossy().into_owned());
    let inv = Inventory::load(&sources).unwrap();
    assert_eq!(inv.group("web").unwrap().hosts, names(&["w1", "w2"]));
    let vars = inv.vars_for_host("w1");
    assert_eq!(
        (
            vars["x"].clone(),
            vars["from_b"].clone(),
            vars["from_a"].clone()
        ),
        (json!("b"), json!(2), json!("overridden"))
    );
    assert!(inv.inventory_file("w1").unwrap().ends_with("a/hosts"));
    assert!(inv.inventory_file("w2").unwrap().ends_with("b/hosts.yml"));
}

#[test]
fn playbook_group_vars_all_ranks_below_inventory_group_vars() {
    let dir = fixture(&[
        ("inv/hosts", "[g]\nh\n"),
        ("inv/group_vars/g.yml", "v: inv_group\n"),
        ("pb/group_vars/all.yml", "v: pb_all\nonly_pb: 1\n"),
        ("pb2/group_vars/g", "w: pb2\n"),
        ("pb/group_vars/g", "w: pb\n"),
    ]);
    let mut inv = load_in(&dir, "inv/hosts").unwrap();
    inv.add_vars_dir(&dir.path().join("pb")).unwrap();
    inv.add_vars_dir(&dir.path().join("pb2")).unwrap();
    let vars = inv.vars_for_host("h");
    assert_eq!(vars["v"], json!("inv_group"));
    assert_eq!(vars["only_pb"], json!(1));
    assert_eq!(vars["w"], json!("pb2"));
}

#[test]
fn no_sources_gives_only_implicit_localhost() {
    let inv = Inventory::load(&[]).unwrap();
    assert!(inv.host_names().is_empty());
    let all = inv.select("all").unwrap();
    assert!(all.hosts.is_empty());
    assert!(all.warnings[0].contains("provided hosts list is empty"));
    assert_eq!(
        inv.select("localhost").unwrap().hosts,
        names(&["localhost"])
    );
    assert_eq!(
        inv.vars_for_host("localhost")["ansible_connection"],
        json!("local")
    );
    assert!(inv.group_names("localhost").is_empty());
}

// ----- patterns (expected hosts from `ansible -i ini_basic/hosts.ini PATTERN --list-hosts`) -----

#[test]
fn patterns_match_ansible_list_hosts() {
    let inv = load("ini_basic/hosts.ini");
    let cases: &[(&str, &[&str])] = &[
        (
            "web:!db",
            &["pve01.lab", "pve02.lab", "pve03.lab", "db-b", "db-c"],
        ),
        ("web:&db", &["db-a"]),
        (
            "db,web",
            &[
                "db-a",
                "dbx",
                "pve01.lab",
                "pve02.lab",
                "pve03.lab",
                "db-b",
                "db-c",
            ],
        ),
        (
            "!db",
            &[
                "loose1",
                "loose2",
                "pve01.lab",
                "pve02.lab",
                "pve03.lab",
                "db-b",
                "db-c",
                "l1",
            ],
        ),
        ("pve*", &["pve01.lab", "pve02.lab", "pve03.lab"]),
        ("~pve0[12].*", &["pve01.lab", "pve02.lab"]),
        ("web[0]", &["pve01.lab"]),
        ("web[1:2]", &["pve02.lab", "pve03.lab"]),
        ("web[-1]", &["db-c"]),
        ("web[4:]", &["db-b", "db-c"]),
        ("localhost,web[0]", &["localhost", "pve01.lab"]),
        (
            "*",
            &[
                "loose1",
                "loose2",
                "pve01.lab",
                "pve02.lab",
                "pve03.lab",
                "db-a",
                "db-b",
                "db-c",
                "dbx",
                "l1",
            ],
        ),
        ("ungrouped", &["loose1", "loose2"]),
        (
            "prod:!web[0]",
            &[
                "pve02.lab",
                "pve03.lab",
                "db-a",
                "db-b",
                "db-c",
                "dbx",
                "l1",
            ],
        ),
        (
            "&web",
            &[
                "pve01.lab",
                "pve02.lab",
                "pve03.lab",
                "db-a",
                "db-b",
                "db-c",
            ],
        ),
        (
            "web:db-a:!pve02.lab",
            &["pve01.lab", "pve03.lab", "db-a", "db-b", "db-c"],
        ),
        ("dbx:dbx", &["dbx"]),
        ("l*", &["l1", "loose1", "loose2"]),
        ("web[2-3]", &["pve03.lab", "db-a"]),
        ("db-[a:b]", &["db-a", "db-b"]),
        ("*.lab", &["pve01.lab", "pve02.lab", "pve03.lab"]),
        ("web[3:1]", &[]),
        (
            "web[0:100]",
            &[
                "pve01.lab",
                "pve02.lab",
                "pve03.lab",
                "db-a",
                "db-b",
                "db-c",
            ],
        ),
        (
            "nope:web",
            &[
                "pve01.lab",
                "pve02.lab",
                "pve03.lab",
                "db-a",
                "db-b",
                "db-c",
            ],
        ),
    ];
    for (pattern, hosts) in cases {
        assert_eq!(
            inv.select(pattern).unwrap().hosts,
            names(hosts),
            "pattern {pattern}"
        );
    }
}

#[test]
fn yaml_patterns_match_ansible_list_hosts() {
    let inv = load("yaml_basic/inv.yml");
    let cases: &[(&str, &[&str])] = &[
        (
            "all",
            &[
                "top1",
                "top2",
                "pve1",
                "pve3",
                "pve5",
                "2001:db8::1",
                "10.0.0.1",
                "10.0.0.2",
                "s1",
            ],
        ),
        ("pve:&standalone", &[]),
        (
            "pve*:!pve_zfs",
            &["pve1", "pve5", "2001:db8::1", "10.0.0.1", "10.0.0.2"],
        ),
        (
            "pve[1:]",
            &["pve3", "pve5", "2001:db8::1", "10.0.0.1", "10.0.0.2"],
        ),
        ("top*,s1", &["top1", "top2", "s1"]),
        ("2001:db8::1", &["2001:db8::1"]),
        ("~^10\\.", &["10.0.0.1", "10.0.0.2"]),
        ("empty", &[]),
        ("*[3]", &["pve3"]),
    ];
    for (pattern, hosts) in cases {
        assert_eq!(
            inv.select(pattern).unwrap().hosts,
            names(hosts),
            "pattern {pattern}"
        );
    }
}

#[test]
fn pattern_warnings_and_errors() {
    let inv = load("ini_basic/hosts.ini");
    let sel = inv.select("nope,web[0]").unwrap();
    assert_eq!(
        sel.warnings,
        ["Could not match supplied host pattern, ignoring: nope"]
    );
    assert!(inv
        .select("empty_group_does_not_exist:&web")
        .unwrap()
        .hosts
        .is_empty());
    assert!(inv.select("web").unwrap().warnings.is_empty());
    assert!(inv.select("web[2-3]").unwrap().warnings[0].contains("inclusive subscripts"));
    assert!(inv
        .select("~(")
        .unwrap_err()
        .message
        .contains("Invalid host list pattern"));
    assert!(inv
        .select("web[10]")
        .unwrap_err()
        .message
        .contains("subscripted pattern 'web[10]'"));
    assert!(inv.select("web[-10]").is_err());
    // Implicit localhost is selectable but never part of `all`.
    assert_eq!(
        inv.select("localhost").unwrap().hosts,
        names(&["localhost"])
    );
    assert!(!inv
        .select("all")
        .unwrap()
        .hosts
        .contains(&"localhost".to_string()));
    assert!(inv.is_implicit_localhost("127.0.0.1"));
}

#[test]
fn explicit_localhost_stands_for_other_localhost_names() {
    let dir = fixture(&[("hosts", "[local]\nlocalhost ansible_connection=local\n")]);
    let inv = load_in(&dir, "hosts").unwrap();
    assert_eq!(
        inv.select("127.0.0.1").unwrap().hosts,
        names(&["localhost"])
    );
    assert!(!inv.is_implicit_localhost("localhost"));
}

#[test]
fn many_hosts_stay_fast() {
    let mut text =
        String::from("[edge]\nn[0001:1000] role=edge\n[edge:vars]\nx=1\n[region:children]\nedge\n");
    text.push_str("[region:vars]\ny=2\n");
    let dir = fixture(&[("hosts", &text), ("group_vars/edge.yml", "z: 3\n")]);
    let inv = load_in(&dir, "hosts").unwrap();
    assert_eq!(inv.host_names().len(), 1000);
    let started = std::time::Instant::now();
    for host in inv.host_names() {
        assert_eq!(inv.vars_for_host(&host).len(), 6);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(inv.select("edge[999]").unwrap().hosts, names(&["n1000"]));
}

#[test]
fn group_priority_orders_groups_of_equal_depth() {
    // ansible-inventory --host h: {"v": "a"} with the priority, {"v": "b"} without.
    let with_priority = fixture(&[(
        "hosts",
        "[a]\nh\n[b]\nh\n[a:vars]\nv=a\nansible_group_priority=5\n[b:vars]\nv=b\n",
    )]);
    assert_eq!(
        load_in(&with_priority, "hosts").unwrap().vars_for_host("h")["v"],
        json!("a")
    );
    let without = fixture(&[("hosts", "[a]\nh\n[b]\nh\n[a:vars]\nv=a\n[b:vars]\nv=b\n")]);
    assert_eq!(
        load_in(&without, "hosts").unwrap().vars_for_host("h")["v"],
        json!("b")
    );
    let bad = fixture(&[("hosts", "[a]\nh\n[a:vars]\nansible_group_priority=high\n")]);
    assert_eq!(load_in(&bad, "hosts").unwrap_err().span.unwrap().line, 4);
}

#[test]
fn unparsable_file_in_inventory_directory_is_an_error_with_a_hint() {
    let dir = fixture(&[
        ("inv/hosts.yml", "web:\n  hosts:\n    w1:\n"),
        ("inv/NOTES", "these are notes\n"),
    ]);
    let e = load_in(&dir, "inv").unwrap_err();
    assert!(e.span.as_ref().unwrap().file.ends_with("NOTES"));
    assert!(e.hint.unwrap().contains("rename"));
}
