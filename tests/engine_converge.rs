//! Acceptance 1: a playbook using every engine module converges 5 real hosts, then a rerun changes nothing.

mod support;

use support::Fleet;

const PLAYBOOK: &str = r#"
- name: converge every module
  hosts: targets
  gather_facts: yes
  vars:
    app_dir: /opt/app
    greeting: hello
  tasks:
    - name: app directory
      file: {path: "{{ app_dir }}", state: directory, mode: "0755"}
    - name: config from content
      copy:
        content: "greeting={{ greeting }}\n"
        dest: "{{ app_dir }}/app.conf"
        mode: "0640"
      notify: restart app
    - name: motd from a template
      template: {src: motd.j2, dest: /etc/motd, mode: "0644"}
    - name: a setting line
      lineinfile: {path: "{{ app_dir }}/settings.conf", line: "port=8080", create: yes}
    - name: a managed block
      blockinfile:
        path: /etc/hosts.extra
        block: "10.0.0.1 db"
        create: yes
    - name: a marker made once
      command: touch {{ app_dir }}/marker creates={{ app_dir }}/marker
    - name: a log line appended once
      shell: echo done >> {{ app_dir }}/log
      args:
        unless: grep -q done {{ app_dir }}/log
    - name: stat the config
      stat: {path: "{{ app_dir }}/app.conf"}
      register: conf
    - name: read it back
      slurp: {src: "{{ app_dir }}/settings.conf"}
      register: slurped
    - name: remember its size
      set_fact:
        conf_size: "{{ conf.stat.size }}"
    - name: check what we built
      assert:
        that:
          - conf.stat.exists
          - "'port=8080' in (slurped.content | b64decode)"
          - ansible_distribution == 'Debian'
          - conf_size | int > 0
    - name: say it
      debug: {msg: "{{ inventory_hostname }} has {{ conf_size }} bytes"}
    - name: sshd listens
      wait_for: {port: 22, timeout: 10}
    - name: raw probe
      raw: "true"
      changed_when: false
    - name: a short pause
      pause: {seconds: 1}
    - name: never fails
      fail: {msg: "should not run"}
      when: ansible_distribution != 'Debian'
    - name: facts on demand
      setup: {gather_subset: [min]}
  handlers:
    - name: restart app
      shell: date > {{ app_dir }}/restarted
"#;

const MOTD: &str = "Welcome to {{ inventory_hostname }} ({{ ansible_distribution }} {{ ansible_distribution_release }})\n";

#[test]
fn every_module_converges_and_second_run_changes_nothing() {
    let fleet = Fleet::start("converge", 5);
    fleet.write("site.yml", PLAYBOOK);
    fleet.write("templates/motd.j2", MOTD);
    let inventory = fleet.inventory();
    let inv = inventory.to_str().expect("utf-8 path");

    let first = fleet.orch(&["run", "site.yml", "-i", inv]);
    first.assert_code(0);
    for host in fleet.hosts() {
        let recap = first.recap(&host.name);
        assert!(
            recap.changed >= 8,
            "first run should change {}: {recap:?}\n{first}",
            host.name
        );
        assert_eq!(recap.failed, 0);
    }

    // The end state, read independently of orch.
    for (i, host) in fleet.hosts().iter().enumerate() {
        assert_eq!(
            fleet.exec_ok(i, "cat /opt/app/app.conf"),
            "greeting=hello\n"
        );
        assert_eq!(
            fleet.exec_ok(i, "cat /opt/app/settings.conf"),
            "port=8080\n"
        );
        assert_eq!(
            fleet.exec_ok(i, "stat -c %a /opt/app/app.conf").trim(),
            "640"
        );
        assert_eq!(fleet.exec_ok(i, "stat -c %a /opt/app").trim(), "755");
        assert_eq!(
            fleet.exec_ok(i, "cat /etc/motd"),
            format!("Welcome to {} (Debian bookworm)\n", host.name)
        );
        assert_eq!(
            fleet.exec_ok(i, "cat /etc/hosts.extra"),
            "# BEGIN ANSIBLE MANAGED BLOCK\n10.0.0.1 db\n# END ANSIBLE MANAGED BLOCK\n"
        );
        assert_eq!(fleet.exec_ok(i, "cat /opt/app/log"), "done\n");
        fleet.exec_ok(i, "test -f /opt/app/marker");
        fleet.exec_ok(i, "test -f /opt/app/restarted");
    }
    let restarted_before = fleet.exec_ok(0, "cat /opt/app/restarted");

    let second = fleet.orch(&["run", "site.yml", "-i", inv]);
    second.assert_code(0);
    for host in fleet.hosts() {
        let recap = second.recap(&host.name);
        assert_eq!(
            recap.changed, 0,
            "second run must change nothing on {}\n{second}",
            host.name
        );
        assert_eq!(recap.failed, 0);
    }
    // The handler did not run again.
    assert_eq!(fleet.exec_ok(0, "cat /opt/app/restarted"), restarted_before);
    assert_eq!(fleet.exec_ok(0, "cat /opt/app/log"), "done\n");
}
