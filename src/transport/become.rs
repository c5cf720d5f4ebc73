//! Privilege escalation (Ansible `become`) as a command rewrite.
//!
//! sudo with a password: the command becomes
//! `sudo -k -S -p '' -H -u USER -- sh -c WRAPPER orch-become SENTINEL CMD` and stdin becomes
//! `PASSWORD\n PAD\n PAD\n SENTINEL\n` followed by the caller's stdin. `-k` makes sudo ignore
//! cached credentials, so it reads the password line exactly when its policy wants one; under a
//! NOPASSWD rule it reads nothing. Either way WRAPPER (running as USER) discards every line up
//! to the random SENTINEL and then execs CMD with the rest of stdin, so the password never
//! reaches CMD and never appears in any argv. The two PAD lines are what sudo reads as its 2nd
//! and 3rd attempt after a wrong password (default passwd_tries=3), so the caller's data is
//! never offered to sudo as a password.
//!
//! sudo without a password uses `-n`: it fails at once with "a password is required" instead
//! of reading the caller's stdin.
//!
//! su reads passwords only from a terminal in common builds (util-linux, shadow), which an exec
//! channel without a pty does not have; su is therefore supported only without a password
//! (e.g. root switching to another user).

use rand::distr::{Alphanumeric, SampleString};

use super::{ExecOutput, TransportError, C_LOCALE_PREFIX};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BecomeMethod {
    Sudo,
    Su,
}

#[derive(Clone, PartialEq, Eq)]
pub struct BecomeSpec {
    pub method: BecomeMethod,
    pub user: String,
    pub password: Option<String>,
    /// Replaces the default flags (`-H` for sudo, none for su), like Ansible's become_flags.
    pub flags: Option<String>,
}

impl std::fmt::Debug for BecomeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BecomeSpec")
            .field("method", &self.method)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("flags", &self.flags)
            .finish()
    }
}

/// Exit status of the wrapper when stdin ended before the sentinel line (protocol breakage).
pub const SENTINEL_MISSING_RC: i32 = 97;

/// Discards stdin lines up to the sentinel ($1), then runs the command ($2) on the rest.
/// `read` in POSIX shells consumes a pipe byte by byte, so nothing past the sentinel is lost.
const SUDO_WRAPPER: &str = "while IFS= read -r orch_line; do \
if [ \"$orch_line\" = \"$1\" ]; then exec sh -c \"export LANG=C LC_ALL=C; $2\"; fi; done; \
echo 'orch: become: stdin marker missing' >&2; exit 97";

/// Wraps a command for privilege escalation. The password travels on stdin, never in argv.
pub fn wrap_become(
    command: &str,
    stdin: Option<Vec<u8>>,
    spec: &BecomeSpec,
) -> Result<(String, Option<Vec<u8>>), TransportError> {
    if spec.user.is_empty() {
        return Err(TransportError::Other("become_user is empty".into()));
    }
    match spec.method {
        BecomeMethod::Sudo => wrap_sudo(command, stdin, spec),
        BecomeMethod::Su => wrap_su(command, stdin, spec),
    }
}

use super::shell_quote as quote;

fn wrap_sudo(
    command: &str,
    stdin: Option<Vec<u8>>,
    spec: &BecomeSpec,
) -> Result<(String, Option<Vec<u8>>), TransportError> {
    let user_flags = spec.flags.as_deref().unwrap_or("-H");
    // Our own mechanics need -n or -S; a user-supplied copy of either would fight them.
    let user_flags: Vec<&str> = user_flags
        .split_whitespace()
        .filter(|flag| !matches!(*flag, "-n" | "-S" | "--non-interactive" | "--stdin"))
        .collect();
    let user_flags: String = user_flags.iter().map(|flag| format!("{flag} ")).collect();
    let Some(password) = &spec.password else {
        let wrapped = format!(
            "sudo -n {user_flags}-u {} -- sh -c {}",
            quote(&spec.user),
            quote(&format!("{C_LOCALE_PREFIX}{command}"))
        );
        return Ok((wrapped, stdin));
    };
    if password.contains('\n') || password.contains('\r') {
        return Err(TransportError::Other(
            "the become password contains a line break, which sudo -S cannot read".into(),
        ));
    }
    let sentinel = random_token("orch-become-");
    let pad = random_token("orch-become-pad-");
    let wrapped = format!(
        "sudo -k -S -p '' {user_flags}-u {} -- sh -c {} orch-become {} {}",
        quote(&spec.user),
        quote(SUDO_WRAPPER),
        quote(&sentinel),
        quote(command)
    );
    let data = stdin.unwrap_or_default();
    let mut feed = Vec::with_capacity(password.len() + 3 * sentinel.len() + data.len() + 8);
    feed.extend_from_slice(password.as_bytes());
    feed.push(b'\n');
    for _ in 0..2 {
        feed.extend_from_slice(pad.as_bytes());
        feed.push(b'\n');
    }
    feed.extend_from_slice(sentinel.as_bytes());
    feed.push(b'\n');
    feed.extend_from_slice(&data);
    Ok((wrapped, Some(feed)))
}

fn wrap_su(
    command: &str,
    stdin: Option<Vec<u8>>,
    spec: &BecomeSpec,
) -> Result<(String, Option<Vec<u8>>), TransportError> {
    if spec.password.is_some() {
        return Err(TransportError::Other(
            "become_method su with a password is not supported: su reads passwords only from a \
             terminal; use become_method sudo, or connect as root"
                .into(),
        ));
    }
    let flags: String = spec
        .flags
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(|flag| format!("{flag} "))
        .collect();
    let wrapped = format!(
        "su {flags}-s /bin/sh -c {} {}",
        quote(&format!("{C_LOCALE_PREFIX}{command}")),
        quote(&spec.user)
    );
    Ok((wrapped, stdin))
}

fn random_token(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 24)
    )
}

/// Recognises a failed escalation in a wrapped command's output, with Ansible's wording.
pub fn become_failure(spec: &BecomeSpec, output: &ExecOutput) -> Option<String> {
    if output.rc == 0 {
        return None;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    match spec.method {
        BecomeMethod::Sudo => {
            if stderr.contains("incorrect password attempt") || stderr.contains("Sorry, try again")
            {
                Some("Incorrect sudo password".into())
            } else if stderr.contains("a password is required")
                || stderr.contains("no password was provided")
            {
                Some("Missing sudo password".into())
            } else if stderr.contains("is not in the sudoers file")
                || stderr.contains("is not allowed to execute")
            {
                Some(format!(
                    "sudo refused: {}",
                    stderr
                        .lines()
                        .find(|l| l.contains("sudo"))
                        .unwrap_or("")
                        .trim()
                ))
            } else if output.rc == SENTINEL_MISSING_RC
                && stderr.contains("orch: become: stdin marker missing")
            {
                Some("become wrapper did not receive its input (sudo consumed it?)".into())
            } else if stderr.contains("sudo: command not found")
                || stderr.contains("sudo: not found")
            {
                Some("sudo is not installed on the target".into())
            } else {
                None
            }
        }
        BecomeMethod::Su => {
            if stderr.contains("Authentication failure")
                || stderr.contains("must be run from a terminal")
            {
                Some(format!("su failed: {}", stderr.trim()))
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::local;
    use std::time::Duration;

    fn sudo(password: Option<&str>) -> BecomeSpec {
        BecomeSpec {
            method: BecomeMethod::Sudo,
            user: "root".into(),
            password: password.map(str::to_string),
            flags: None,
        }
    }

    #[test]
    fn password_is_on_stdin_not_in_argv() {
        let (command, stdin) =
            wrap_become("id -u", Some(b"payload".to_vec()), &sudo(Some("s3cret pw"))).unwrap();
        assert!(!command.contains("s3cret"));
        assert!(command.starts_with("sudo -k -S -p '' -H -u root -- sh -c "));
        let stdin = String::from_utf8(stdin.unwrap()).unwrap();
        let lines: Vec<&str> = stdin.split('\n').collect();
        assert_eq!(lines[0], "s3cret pw");
        assert!(lines[1].starts_with("orch-become-pad-"));
        assert_eq!(lines[1], lines[2]);
        assert!(command.contains(lines[3]), "sentinel is passed as $1");
        assert_eq!(lines[4], "payload");
    }

    #[test]
    fn without_password_sudo_is_non_interactive() {
        let (command, stdin) = wrap_become("echo 'a b'", None, &sudo(None)).unwrap();
        assert_eq!(
            command,
            "sudo -n -H -u root -- sh -c 'export LANG=C LC_ALL=C; echo '\\''a b'\\'''"
        );
        assert_eq!(stdin, None);
    }

    #[test]
    fn su_with_password_is_refused_and_without_is_wrapped() {
        let mut spec = sudo(Some("x"));
        spec.method = BecomeMethod::Su;
        assert!(wrap_become("id", None, &spec).is_err());
        spec.password = None;
        spec.user = "deploy".into();
        let (command, _) = wrap_become("id", None, &spec).unwrap();
        assert_eq!(
            command,
            "su -s /bin/sh -c 'export LANG=C LC_ALL=C; id' deploy"
        );
    }

    /// Runs the wrapper script (without sudo) through a real shell: lines up to the sentinel
    /// are dropped whatever comes before it, the rest reaches the command byte for byte.
    #[tokio::test]
    async fn wrapper_discards_up_to_sentinel() {
        let (command, stdin) = wrap_become(
            "cat; printf '[%s]' \"$LC_ALL\"",
            Some(b"line1\nno newline at end".to_vec()),
            &sudo(Some("pw")),
        )
        .unwrap();
        let stdin = stdin.unwrap();
        // Strip the sudo part, keep `sh -c WRAPPER orch-become SENTINEL CMD`.
        let without_sudo = &command[command.find("sh -c").unwrap()..];
        let transport = local::local();
        // As if sudo consumed the password line...
        let after_password = stdin[stdin.iter().position(|b| *b == b'\n').unwrap() + 1..].to_vec();
        let out = transport
            .exec(without_sudo, Some(after_password), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(out.stdout_lossy(), "line1\nno newline at end[C]");
        // ...and as if a NOPASSWD rule left the password for the wrapper.
        let out = transport
            .exec(without_sudo, Some(stdin), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(out.stdout_lossy(), "line1\nno newline at end[C]");
        // A missing sentinel is an error, not a silent run with empty input.
        let out = transport
            .exec(
                without_sudo,
                Some(b"pw\n".to_vec()),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(out.rc, SENTINEL_MISSING_RC);
        assert!(become_failure(&sudo(Some("pw")), &out).is_some());
    }

    #[test]
    fn recognises_sudo_failures() {
        let failed = |stderr: &str| ExecOutput {
            rc: 1,
            stdout: vec![],
            stderr: stderr.as_bytes().to_vec(),
        };
        let spec = sudo(Some("x"));
        assert_eq!(
            become_failure(
                &spec,
                &failed("Sorry, try again.\nsudo: 3 incorrect password attempts\n")
            ),
            Some("Incorrect sudo password".into())
        );
        assert_eq!(
            become_failure(&spec, &failed("sudo: a password is required\n")),
            Some("Missing sudo password".into())
        );
        assert_eq!(become_failure(&spec, &failed("grep: no match\n")), None);
    }
}
