//! The controller itself as a target: `sh -c command` through tokio::process.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{ExecOutput, Transport, TransportError, Tunnel};

struct LocalTransport;

pub fn local() -> Arc<dyn Transport> {
    Arc::new(LocalTransport)
}

#[async_trait::async_trait]
impl Transport for LocalTransport {
    async fn exec(
        &self,
        command: &str,
        stdin: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("LANG", "C")
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| TransportError::Other(format!("cannot start sh: {err}")))?;
        let mut child_stdin = child.stdin.take();
        let mut child_stdout = child.stdout.take();
        let mut child_stderr = child.stderr.take();
        let feed = async move {
            if let (Some(pipe), Some(bytes)) = (child_stdin.as_mut(), stdin) {
                // A command that exits without reading its input closes the pipe: not an error.
                let _ = pipe.write_all(&bytes).await;
            }
            drop(child_stdin); // EOF
        };
        let read_out = async {
            let mut buf = Vec::new();
            if let Some(pipe) = child_stdout.as_mut() {
                let _ = pipe.read_to_end(&mut buf).await;
            }
            buf
        };
        let read_err = async {
            let mut buf = Vec::new();
            if let Some(pipe) = child_stderr.as_mut() {
                let _ = pipe.read_to_end(&mut buf).await;
            }
            buf
        };
        let run = async {
            let ((), stdout, stderr) = tokio::join!(feed, read_out, read_err);
            let status = child.wait().await;
            (status, stdout, stderr)
        };
        match tokio::time::timeout(timeout, run).await {
            Ok((Ok(status), stdout, stderr)) => Ok(ExecOutput {
                rc: exit_code(status),
                stdout,
                stderr,
            }),
            Ok((Err(err), _, _)) => Err(TransportError::Other(format!(
                "waiting for local command failed: {err}"
            ))),
            // kill_on_drop reaps the child once `run` is dropped.
            Err(_) => Err(TransportError::Timeout(format!(
                "command timed out after {}s on the controller",
                timeout.as_secs_f64()
            ))),
        }
    }

    async fn open_tunnel(&self, host: &str, port: u16) -> Result<Box<dyn Tunnel>, TransportError> {
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|err| {
                TransportError::Other(format!("cannot connect to {host}:{port}: {err}"))
            })?;
        Ok(Box::new(stream))
    }

    async fn close(&self) {}
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    status.code().unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const T: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn separates_streams_and_status() {
        let out = local()
            .exec("echo out; echo err >&2; exit 3", None, T)
            .await
            .unwrap();
        assert_eq!(out.rc, 3);
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[tokio::test]
    async fn stdin_and_locale() {
        let out = local()
            .exec("cat; echo \"$LANG/$LC_ALL\"", Some(b"abc\n".to_vec()), T)
            .await
            .unwrap();
        assert_eq!(out.stdout_lossy(), "abc\nC/C\n");
        // Unread stdin must not make exec fail.
        let big = vec![b'x'; 4 << 20];
        let out = local().exec("true", Some(big), T).await.unwrap();
        assert_eq!(out.rc, 0);
    }

    #[tokio::test]
    async fn timeout_and_signal() {
        let err = local()
            .exec("sleep 5", None, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Timeout(_)), "{err:?}");
        let out = local().exec("kill -TERM $$", None, T).await.unwrap();
        assert_eq!(out.rc, 128 + 15);
    }

    #[tokio::test]
    async fn tunnel_is_a_tcp_stream() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut sock, b"hello")
                .await
                .unwrap();
        });
        let mut tunnel = local().open_tunnel("127.0.0.1", port).await.unwrap();
        let mut buf = Vec::new();
        tunnel.read_to_end(&mut buf).await.unwrap();
        assert_eq!(buf, b"hello");
        server.await.unwrap();
    }
}
