//! Byte streams to a TCP endpoint as seen from the target (SSH direct-tcpip on the host's
//! session, or a plain TCP connection for the local transport). Used e.g. for an HTTP client
//! talking to an API bound to the target's 127.0.0.1.

use tokio::io::{AsyncRead, AsyncWrite};

/// A bidirectional stream; dropping it closes the forwarded connection.
pub trait Tunnel: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Tunnel for T {}

/// Originator address reported to sshd for direct-tcpip channels (informational only).
pub(crate) const ORIGINATOR_ADDRESS: &str = "127.0.0.1";
pub(crate) const ORIGINATOR_PORT: u32 = 0;
