//! Runs a child process with a deadline, capturing stdout and stderr separately.
//! std's `Command::output` has no timeout; a hung orch or docker must fail the test, not hang it.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a bounded run produced.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Exit code; 128+N when killed by signal N (as a shell reports it), -1 if unknown.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// True when the deadline passed and the process group was killed.
    pub timed_out: bool,
    pub elapsed: Duration,
}

/// Spawns `cmd` in its own process group, feeds it `stdin` (or /dev/null), and waits at most `timeout`.
/// On timeout the whole group is killed so that grandchildren holding the pipes cannot block us.
pub fn run_bounded(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<Finished> {
    let started = Instant::now();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let mut child = cmd.spawn()?;

    let stdin_writer = match (stdin, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => {
            let bytes = bytes.to_vec();
            // A child that exits without reading its stdin makes write fail with EPIPE: not our error.
            Some(thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let stdout_reader = spawn_reader(child.stdout.take());
    let stderr_reader = spawn_reader(child.stderr.take());

    let mut timed_out = false;
    let mut poll = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= timeout {
            timed_out = true;
            kill_process_group(child.id());
            let _ = child.kill();
            break child.wait()?;
        }
        thread::sleep(poll);
        poll = (poll * 2).min(Duration::from_millis(20));
    };
    if let Some(writer) = stdin_writer {
        let _ = writer.join();
    }
    let stdout = stdout_reader.join().unwrap_or_default();
    let stderr = stderr_reader.join().unwrap_or_default();
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1);
    Ok(Finished {
        code,
        stdout,
        stderr,
        timed_out,
        elapsed: started.elapsed(),
    })
}

fn spawn_reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn kill_process_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
