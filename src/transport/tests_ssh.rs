//! SSH integration tests (docker test hosts).
