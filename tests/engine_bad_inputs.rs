//! Acceptance 6: bad input gets a clear error naming file:line(:column), a non-zero exit, and no host
//! is contacted (a TCP listener stands in for the host and must see no connection).

mod support;

use std::net::TcpListener;
use std::path::Path;

use support::OrchCommand;

struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    code: i32,
    expect: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "yaml syntax",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - debug: {msg: [1, 2}\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:3:", "YAML syntax error"],
    },
    Case {
        name: "unknown module",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - comand: echo hi\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:3:7", "couldn't resolve module/action 'comand'", "did you mean 'command'?"],
    },
    Case {
        name: "unknown argument",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - command:\n        cmd: ls\n        chdri: /\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:4:", "Unsupported parameters for (command) module: chdri", "did you mean 'chdir'?"],
    },
    Case {
        name: "an argument Ansible has and orch does not implement",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - copy:\n        content: x\n        dest: /tmp/x\n        attributes: +i\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:4:", "copy: argument 'attributes' is not supported by orch"],
    },
    Case {
        name: "mistyped task keyword",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - command: ls\n      whn: false\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:4:7", "'whn' is not a valid attribute for a task", "did you mean 'when'?"],
    },
    Case {
        name: "mistyped play keyword",
        files: &[("site.yml", "- hosts: all\n  taks:\n    - command: ls\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:2:3", "'taks' is not a valid attribute for a play", "did you mean 'tasks'?"],
    },
    Case {
        name: "undefined variable",
        files: &[("site.yml", "- hosts: all\n  gather_facts: no\n  tasks:\n    - debug:\n        msg: \"{{ nope }}\"\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:4:7", "undefined variable 'nope'"],
    },
    Case {
        name: "bad regex pattern",
        files: &[("site.yml", "- hosts: \"~(broken\"\n  tasks:\n    - command: ls\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:1:3", "(broken"],
    },
    Case {
        name: "missing playbook",
        files: &[],
        args: &[],
        code: 4,
        expect: &["missing.yml could not be found"],
    },
    Case {
        name: "missing imported tasks file",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - import_tasks: nothere.yml\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:3:", "could not find the tasks file"],
    },
    Case {
        name: "bad serial",
        files: &[("site.yml", "- hosts: all\n  serial: abc\n  tasks:\n    - command: ls\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:2:11", "serial value 'abc'"],
    },
    Case {
        name: "serial over 100%",
        files: &[("site.yml", "- hosts: all\n  serial: [1, \"150%\"]\n  tasks:\n    - command: ls\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:2:", "between 0% and 100%"],
    },
    Case {
        name: "play without hosts",
        files: &[("site.yml", "- name: nothing\n  tasks:\n    - command: ls\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:1:3", "no 'hosts'"],
    },
    Case {
        name: "condition syntax",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - command: ls\n      when: x ==\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:4:13", "template error in condition"],
    },
    Case {
        name: "unsupported become method",
        files: &[("site.yml", "- hosts: all\n  become: yes\n  become_method: doas\n  tasks:\n    - command: ls\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:3:18", "become_method 'doas'"],
    },
    Case {
        name: "invalid register name",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - command: ls\n      register: my-var\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:4:17", "invalid variable name 'my-var'"],
    },
    Case {
        name: "handler not found",
        files: &[(
            "site.yml",
            "- hosts: all\n  tasks:\n    - command: ls\n      notify: restart nginix\n  handlers:\n    - name: restart nginx\n      command: ls\n",
        )],
        args: &[],
        code: 4,
        expect: &["site.yml:3:7", "handler 'restart nginix' was not found", "did you mean 'restart nginx'?"],
    },
    Case {
        name: "loop of a number",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - command: echo {{ item }}\n      loop: 5\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:4:13", "'loop' must be a list"],
    },
    Case {
        name: "missing extra vars file",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - command: ls\n")],
        args: &["-e", "@missing-vars.yml"],
        code: 5,
        expect: &["extra vars file missing-vars.yml was not found"],
    },
    Case {
        name: "duplicate key",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - command: ls\n      command: pwd\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:4:7", "duplicate key `command`"],
    },
    Case {
        name: "playbook is a mapping",
        files: &[("site.yml", "hosts: all\ntasks: []\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:1:1", "a playbook must be a list of plays"],
    },
    Case {
        name: "bad meta action",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - meta: flush_handler\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:3:13", "meta expects one of"],
    },
    Case {
        name: "template syntax in arguments",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - debug:\n        msg: \"{{ foo \"\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:3:7", "template error in the module's arguments"],
    },
    Case {
        name: "unknown strategy",
        files: &[("site.yml", "- hosts: all\n  strategy: parallel\n  tasks:\n    - command: ls\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:2:13", "strategy must be 'linear' or 'free'"],
    },
    Case {
        name: "two modules in one task",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - command: ls\n      shell: pwd\n")],
        args: &[],
        code: 4,
        expect: &["site.yml:4:7", "conflicting action statements: command, shell"],
    },
    Case {
        name: "inventory cycle",
        files: &[
            ("site.yml", "- hosts: all\n  tasks:\n    - command: ls\n"),
            ("cyclic.ini", "[a:children]\nb\n\n[b:children]\na\n\n[a]\nh1\n"),
        ],
        args: &["-i", "cyclic.ini"],
        code: 4,
        expect: &["cyclic.ini:", "cycle"],
    },
    Case {
        name: "bad inventory section",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - command: ls\n"), ("bad.ini", "[web:bogus]\nh1\n")],
        args: &["-i", "bad.ini"],
        code: 4,
        expect: &["bad.ini:1"],
    },
    Case {
        name: "bad option value",
        files: &[("site.yml", "- hosts: all\n  tasks:\n    - command: ls\n")],
        args: &["--forks", "many"],
        code: 5,
        expect: &["invalid value 'many'"],
    },
];

#[test]
fn bad_inputs_are_reported_with_positions_and_touch_no_host() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a stand-in host");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let mut failures = Vec::new();
    for case in CASES {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = tempfile::tempdir().expect("home");
        std::fs::write(
            dir.path().join("hosts.ini"),
            format!(
                "[all]\nstandin ansible_host=127.0.0.1 ansible_port={port} ansible_user=root\n"
            ),
        )
        .expect("inventory");
        for (name, content) in case.files {
            std::fs::write(dir.path().join(name), content).expect("write case file");
        }
        let playbook = if case.name == "missing playbook" {
            "missing.yml"
        } else {
            "site.yml"
        };
        let mut args: Vec<&str> = vec!["run", playbook];
        if !case.args.contains(&"-i") {
            args.extend(["-i", "hosts.ini"]);
        }
        args.extend(case.args.iter().copied());
        let out = OrchCommand::new(&args, dir.path(), home.path()).run();
        let text = format!("{}{}", out.stdout, out.stderr);
        let mut problems = Vec::new();
        if out.code != case.code {
            problems.push(format!("exit code {} (expected {})", out.code, case.code));
        }
        for needle in case.expect {
            if !text.contains(needle) {
                problems.push(format!("missing {needle:?}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "case '{}': {}\n{}",
                case.name,
                problems.join(", "),
                text
            ));
        }
        let _ = Path::new(playbook);
    }
    // No case may have reached the host.
    let contacted = listener.accept().is_ok();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
    assert!(!contacted, "a bad input contacted the host");
    assert!(CASES.len() >= 20);
}
