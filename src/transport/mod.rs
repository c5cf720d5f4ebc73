//! Transport contract (placeholder until the SSH transport lands; the real file replaces this one).
#![allow(dead_code)]

use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct ExecOutput {
    pub rc: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("Failed to connect to the host via ssh: {0}")]
    Unreachable(String),
    #[error("{0}")]
    HostKey(String),
    #[error("{0}")]
    Auth(String),
    #[error("timeout: {0}")]
    Timeout(String),
    #[error("{0}")]
    Other(String),
}

#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    async fn exec(&self, command: &str, stdin: Option<Vec<u8>>, timeout: Duration) -> Result<ExecOutput, TransportError>;
    async fn close(&self);
}
