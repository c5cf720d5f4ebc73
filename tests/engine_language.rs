//! Playbook language semantics on real hosts: blocks, includes, tags, loops, retries, conditions,
//! delegation, handlers and meta, variable precedence, secrets, JSON output, the free strategy.

mod support;

use support::Fleet;

const PLAYBOOK: &str = r#"
- name: language
  hosts: targets
  gather_facts: no
  vars:
    where: play
    color: blue
    secret_token: s3cr3t-t0ken-value
  tasks:
    - name: a block that fails and is rescued
      block:
        - name: step one
          copy: {content: "one\n", dest: /tmp/block-one}
        - name: broken step
          command: /bin/false
        - name: never reached
          copy: {content: "no\n", dest: /tmp/block-never}
      rescue:
        - name: rescue
          copy: {content: "rescued {{ ansible_failed_task | default('x') is defined }}\n", dest: /tmp/block-rescue}
      always:
        - name: always
          copy: {content: "always\n", dest: /tmp/block-always}

    - name: include per item
      include_tasks: item.yml
      loop: [a, b]
      loop_control: {loop_var: letter}
      vars: {suffix: "-inc"}

    - import_tasks: imported.yml
      tags: [imported]

    - name: tagged never
      copy: {content: "never\n", dest: /tmp/tag-never}
      tags: [never, special]

    - name: loop with index and label
      lineinfile: {path: /tmp/loop, line: "{{ idx }}={{ item.name }}", create: yes}
      loop: [{name: x}, {name: y}]
      loop_control: {index_var: idx, label: "{{ item.name }}"}

    - name: until retries
      shell: n=$(cat /tmp/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/count; echo $n
      register: counter
      until: counter.stdout | int >= 3
      retries: 5
      delay: 0
      changed_when: false

    - name: failed_when and ignore_errors
      command: echo fine
      register: fw
      failed_when: "'fine' in fw.stdout"
      ignore_errors: yes

    - name: runs on the controller
      command: hostname
      delegate_to: localhost
      register: controller
      changed_when: false

    - name: precedence, hostvars and group_names
      copy:
        dest: /tmp/vars
        content: |
          where={{ where }}
          color={{ color }}
          other={{ hostvars[groups['targets'][0]]['inventory_hostname'] }}
          groups={{ group_names | join(',') }}
          retries={{ counter.attempts }}
          ignored={{ fw is failed }}
          controller={{ controller.stdout | length > 0 }}
      vars: {where: task}

    - name: secret handling
      set_fact: {hidden: "{{ secret_token }}"}
      no_log: true

    - name: mention the secret
      debug: {msg: "token is {{ hidden }}"}

    - name: notify
      copy: {content: "h\n", dest: /tmp/handler-trigger}
      notify: the handler

    - meta: flush_handlers

    - name: after flush
      shell: cat /tmp/handled > /tmp/after-flush

    - name: end one host
      meta: end_host
      when: inventory_hostname == 'h2'

    - name: only h1 gets here
      copy: {content: "end\n", dest: /tmp/after-end}

  handlers:
    - name: the handler
      shell: echo handled > /tmp/handled
"#;

const ITEM: &str = r#"
- name: item file
  copy: {content: "{{ letter }}{{ suffix }}\n", dest: "/tmp/item-{{ letter }}"}
"#;

const IMPORTED: &str = r#"
- name: imported task
  copy: {content: "imported\n", dest: /tmp/imported}
"#;

fn setup(name: &str) -> Fleet {
    let fleet = Fleet::start(name, 2);
    fleet.write("site.yml", PLAYBOOK);
    fleet.write("item.yml", ITEM);
    fleet.write("imported.yml", IMPORTED);
    fleet.write("group_vars/targets.yml", "color: green\nwhere: group\n");
    fleet
}

#[test]
fn language_features_behave_as_ansible() {
    let fleet = setup("lang");
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");
    let out = fleet.orch(&["run", "site.yml", "-i", inv, "-e", "color=red"]);
    // The rescued block does not fail the host; ignore_errors does not either.
    out.assert_code(0);
    let r1 = out.recap("h1");
    assert_eq!((r1.failed, r1.rescued, r1.ignored), (0, 1, 1), "{out}");

    for i in 0..2 {
        assert_eq!(
            fleet.exec_ok(i, "cat /tmp/block-one /tmp/block-rescue /tmp/block-always"),
            "one\nrescued True\nalways\n"
        );
        assert_ne!(fleet.exec(i, "test -e /tmp/block-never").code, 0);
        assert_eq!(
            fleet.exec_ok(i, "cat /tmp/item-a /tmp/item-b"),
            "a-inc\nb-inc\n"
        );
        assert_eq!(fleet.exec_ok(i, "cat /tmp/imported"), "imported\n");
        assert_ne!(
            fleet.exec(i, "test -e /tmp/tag-never").code,
            0,
            "a 'never' task ran untagged"
        );
        assert_eq!(fleet.exec_ok(i, "cat /tmp/loop"), "0=x\n1=y\n");
        assert_eq!(fleet.exec_ok(i, "cat /tmp/count"), "3\n");
        assert_eq!(
            fleet.exec_ok(i, "cat /tmp/after-flush"),
            "handled\n",
            "handlers must run at flush_handlers"
        );
    }
    let name0 = &fleet.host(0).name;
    assert_eq!(
        fleet.exec_ok(0, "cat /tmp/vars"),
        format!("where=task\ncolor=red\nother={name0}\ngroups=targets\nretries=3\nignored=True\ncontroller=True\n")
    );
    // meta: end_host stopped h2 only.
    assert_eq!(fleet.exec_ok(0, "cat /tmp/after-end"), "end\n");
    assert_ne!(fleet.exec(1, "test -e /tmp/after-end").code, 0);
    // Loop labels as given by loop_control.label.
    assert!(
        out.stdout.contains("(item=x)") && out.stdout.contains("(item=y)"),
        "{out}"
    );
    // A no_log value stays masked, even where another task prints it.
    assert!(
        !out.stdout.contains("s3cr3t-t0ken-value"),
        "secret leaked:\n{out}"
    );
    assert!(out.stdout.contains("token is ********"), "{out}");
}

#[test]
fn tags_select_and_skip_tasks() {
    let fleet = setup("tags");
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");
    let out = fleet.orch(&["run", "site.yml", "-i", inv, "--tags", "imported,special"]);
    out.assert_code(0);
    assert_eq!(
        fleet.exec_ok(0, "cat /tmp/imported /tmp/tag-never"),
        "imported\nnever\n"
    );
    assert_ne!(
        fleet.exec(0, "test -e /tmp/block-one").code,
        0,
        "untagged task ran under --tags"
    );

    let out = fleet.orch(&[
        "run",
        "site.yml",
        "-i",
        inv,
        "--skip-tags",
        "imported",
        "--list-tasks",
    ]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("imported task\tTAGS: [imported]"),
        "{out}"
    );
}

#[test]
fn json_output_is_one_event_per_line_and_masks_secrets() {
    let fleet = setup("json");
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");
    let out = fleet.orch(&["run", "site.yml", "-i", inv, "--output", "json", "-vvv"]);
    out.assert_code(0);
    let mut kinds = std::collections::BTreeSet::new();
    for line in out.stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        kinds.insert(v["event"].as_str().unwrap_or_default().to_string());
    }
    for k in [
        "playbook_start",
        "play_start",
        "task_start",
        "host_result",
        "recap",
    ] {
        assert!(kinds.contains(k), "no {k} event in {kinds:?}");
    }
    assert!(
        !out.stdout.contains("s3cr3t-t0ken-value") && !out.stderr.contains("s3cr3t-t0ken-value"),
        "secret leaked"
    );
    let recap = out.stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(recap).expect("recap json");
    assert_eq!(v["stats"]["h1"]["rescued"], 1);
}

#[test]
fn free_strategy_lets_hosts_run_ahead() {
    let fleet = Fleet::start("free", 2);
    fleet.write(
        "site.yml",
        r#"
- hosts: targets
  gather_facts: no
  strategy: free
  tasks:
    - shell: "if [ {{ inventory_hostname }} = h1 ]; then sleep 4; fi; date +%s.%N > /tmp/t1"
    - shell: date +%s.%N > /tmp/t2
"#,
    );
    let inv = fleet.inventory();
    let out = fleet.orch(&["run", "site.yml", "-i", inv.to_str().expect("path")]);
    out.assert_code(0);
    let t = |i: usize, f: &str| -> f64 {
        fleet
            .exec_ok(i, &format!("cat {f}"))
            .trim()
            .parse()
            .expect("time")
    };
    // h2 finished its second task before h1 finished its first.
    assert!(
        t(1, "/tmp/t2") < t(0, "/tmp/t1"),
        "h2 waited for h1 under the free strategy"
    );
}

/// `set_fact` in a loop sets each item's facts before the next item (the accumulate idiom), and
/// the `connection: local` keyword runs a task on the controller unless a variable says otherwise.
#[test]
fn looped_set_fact_accumulates_and_connection_keyword_applies() {
    let fleet = Fleet::start("lang-loopfact", 2);
    fleet.write(
        "site.yml",
        r#"
- hosts: targets
  gather_facts: no
  tasks:
    - set_fact:
        acc: "{{ (acc | default([])) + [item] }}"
      loop: [a, b, c]
    - copy:
        content: "{{ acc | join(',') }}\n"
        dest: /tmp/acc
    - set_fact:
        shared: "{{ (shared | default([])) + [item ~ '@' ~ inventory_hostname] }}"
      loop: [x, y]
      run_once: true
    - copy:
        content: "{{ shared | join(',') }}\n"
        dest: /tmp/shared
    - name: on the controller
      command: cat /proc/sys/kernel/hostname
      connection: local
      register: here
    - name: on the target
      command: cat /proc/sys/kernel/hostname
      register: there
    - copy:
        content: "{{ here.stdout }} {{ there.stdout }}\n"
        dest: /tmp/where
"#,
    );
    let run = fleet.orch(&["run", "-i", "inventory.ini", "site.yml"]);
    run.assert_code(0);
    assert_eq!(fleet.exec_ok(0, "cat /tmp/acc"), "a,b,c\n");
    // run_once: the first host's looped facts are every host's.
    for h in 0..2 {
        assert_eq!(fleet.exec_ok(h, "cat /tmp/shared"), "x@h1,y@h1\n");
    }
    let controller = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("controller hostname")
        .trim()
        .to_string();
    let target = fleet
        .exec_ok(0, "cat /proc/sys/kernel/hostname")
        .trim()
        .to_string();
    assert_ne!(controller, target);
    assert_eq!(
        fleet.exec_ok(0, "cat /tmp/where"),
        format!("{controller} {target}\n")
    );
}
