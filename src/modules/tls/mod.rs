//! TLS for the hosts orch manages: a private CA with a server certificate (`internal_ca`) and the
//! system trust store (`ca_trust`).

pub mod ca_trust;
pub mod internal_ca;
pub mod x509;
