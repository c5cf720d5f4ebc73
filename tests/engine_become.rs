//! Acceptance 4: become through sudo as a password-protected user; the password shows up nowhere.

mod support;

use support::Fleet;

const PASSWORD: &str = "deploy-sudo-pw";

#[test]
fn sudo_with_password_works_and_password_stays_secret() {
    let fleet = Fleet::start("become", 1);
    let ip = fleet.host(0).ip.clone();
    let key = fleet.private_key().display().to_string();
    fleet.write(
        "deploy.ini",
        &format!(
            "[targets]\nh1 ansible_host={ip} ansible_user=deploy ansible_ssh_private_key_file={key} ansible_become_password={PASSWORD}\n"
        ),
    );
    fleet.write(
        "site.yml",
        r#"
- hosts: targets
  gather_facts: no
  become: yes
  tasks:
    - name: who am i
      command: id -u
      register: who
      changed_when: false
    - name: a root-owned file
      copy: {content: "secret place\n", dest: /root/owned, mode: "0600"}
    - name: slow enough to be seen in ps
      shell: sleep 4
      changed_when: false
    - debug: {var: who.stdout}
"#,
    );
    let child = fleet
        .orch_cmd(&["run", "site.yml", "-i", "deploy.ini", "-vvv"])
        .spawn();
    // While the run is in its sleep, look at every process's command line on the target.
    let mut seen = String::new();
    for _ in 0..10 {
        std::thread::sleep(std::time::Duration::from_millis(400));
        seen.push_str(&fleet.exec(0, "ps -eo args").stdout);
    }
    let out = child.wait();
    out.assert_code(0);
    assert!(out.stdout.contains("\"who.stdout\": \"0\""), "{out}");
    assert_eq!(
        fleet.exec_ok(0, "stat -c '%U %a' /root/owned").trim(),
        "root 600"
    );
    assert!(
        seen.contains("sleep 4"),
        "the process list sample missed the run:\n{seen}"
    );
    assert!(
        !seen.contains(PASSWORD),
        "password visible in the process list:\n{seen}"
    );
    assert!(
        !out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD),
        "password in output\n{out}"
    );
}
