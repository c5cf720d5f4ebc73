//! Building blocks for the shell scripts modules send to targets (POSIX sh + coreutils only).

pub use crate::transport::shell_quote as quote;
