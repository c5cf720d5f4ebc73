//! Reading X.509 material (PEM and DER certificates, chains, private keys in PKCS#8, PKCS#1 or
//! SEC1) and making it with rcgen (an RSA CA, server certificates, self-signed certificates).
//! Used by `internal_ca` and `ca_trust`, and by the Authentik modules, which check a given pair
//! with these readers (`authentik/given_pair.rs`).
//!
//! Only public facts leave this module's readers (subject, names, dates, fingerprints, key type);
//! private keys are passed through as PEM text or rcgen key pairs and never formatted into messages.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::{parse_x509_pem, Pem};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// The public facts of one certificate.
#[derive(Clone, Debug, PartialEq)]
pub struct CertInfo {
    pub der: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    pub common_name: Option<String>,
    /// Every subject alternative name as openssl prints it: `DNS:…`, `IP:…`, `email:…`, `URI:…`
    /// (other kinds in the parser's words). `host_names` gives the DNS names and addresses alone.
    pub alt_names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
    /// The DER SubjectPublicKeyInfo, to match a private key and check signatures.
    pub public_key: Vec<u8>,
    /// The public key's algorithm: rsa, ec, dsa, ed25519 or ed448 (the words Authentik uses too),
    /// else its OID.
    pub key_type: String,
    /// `AB:CD:…`, as `openssl x509 -fingerprint -sha256` prints it (see `fingerprint_sha256`).
    pub fingerprint_sha256: String,
}

impl CertInfo {
    /// The first certificate of a PEM text.
    pub fn from_pem(pem: &str) -> Result<CertInfo, String> {
        let (_, block) =
            parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not a PEM certificate ({e})"))?;
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "expected a PEM CERTIFICATE block, found {}",
                block.label
            ));
        }
        CertInfo::from_der(&block.contents).map_err(|e| format!("not an X.509 certificate ({e})"))
    }

    /// A DER certificate; the error is the parser's reason alone, for the caller to frame.
    pub fn from_der(der: &[u8]) -> Result<CertInfo, String> {
        let (_, cert) =
            x509_parser::certificate::X509Certificate::from_der(der).map_err(|e| e.to_string())?;
        let alt_names = match cert.subject_alternative_name() {
            Ok(Some(ext)) => ext.value.general_names.iter().map(alt_name).collect(),
            _ => vec![],
        };
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        Ok(CertInfo {
            der: der.to_vec(),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            common_name,
            alt_names,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            is_ca: cert.is_ca(),
            public_key: cert.public_key().raw.to_vec(),
            key_type: key_type(&cert.public_key().algorithm.algorithm.to_id_string()),
            fingerprint_sha256: fingerprint_sha256(der),
        })
    }

    /// The DNS names and IP addresses among the subject alternative names, without their labels.
    pub fn host_names(&self) -> Vec<String> {
        self.alt_names
            .iter()
            .filter_map(|name| {
                name.strip_prefix("DNS:").or_else(|| {
                    name.strip_prefix("IP:")
                        .filter(|ip| ip.parse::<IpAddr>().is_ok())
                })
            })
            .map(str::to_string)
            .collect()
    }

    /// Whether `issuer`'s key signed this certificate.
    pub fn is_signed_by(&self, issuer: &CertInfo) -> bool {
        let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(&self.der) else {
            return false;
        };
        let Ok((_, spki)) = SubjectPublicKeyInfo::from_der(&issuer.public_key) else {
            return false;
        };
        cert.verify_signature(Some(&spki)).is_ok()
    }

    /// `not_after` as `2036-11-26 17:18:03 UTC`.
    pub fn not_after_text(&self) -> String {
        format_time(self.not_after)
    }

    /// Seconds until expiry (negative when expired).
    pub fn seconds_left(&self) -> i64 {
        self.not_after - now_unix()
    }

    pub fn expired(&self, now: i64) -> bool {
        self.not_after < now
    }
}

fn alt_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(dns) => format!("DNS:{dns}"),
        GeneralName::IPAddress(bytes) => format!("IP:{}", ip_text(bytes)),
        GeneralName::RFC822Name(mail) => format!("email:{mail}"),
        GeneralName::URI(uri) => format!("URI:{uri}"),
        other => format!("{other:?}"),
    }
}

/// An address as text; hex when it has neither 4 nor 16 bytes.
fn ip_text(bytes: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return IpAddr::from(v4).to_string();
    }
    if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        return IpAddr::from(v6).to_string();
    }
    hex::encode(bytes)
}

fn key_type(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => "rsa".into(),
        "1.2.840.10045.2.1" => "ec".into(),
        "1.2.840.10040.4.1" => "dsa".into(),
        "1.3.101.112" => "ed25519".into(),
        "1.3.101.113" => "ed448".into(),
        other => other.to_string(),
    }
}

/// SHA-256 over a certificate's DER as colon-separated upper-case hex, as openssl prints it.
/// Authentik reports the same digits in lower case; `same_fingerprint` compares either form.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Two fingerprints are the same whatever their case and separators.
pub fn same_fingerprint(a: &str, b: &str) -> bool {
    let plain = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_hexdigit)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let (a, b) = (plain(a), plain(b));
    !a.is_empty() && a == b
}

/// Every PEM block of a text; `what` names the text in the error.
pub fn pem_blocks(text: &str, what: &str) -> Result<Vec<Pem>, String> {
    Pem::iter_from_buffer(text.as_bytes())
        .collect::<Result<Vec<Pem>, _>>()
        .map_err(|e| format!("{what} is not valid PEM ({e})"))
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

pub fn format_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// The private key of a PEM text (PKCS#8, PKCS#1 or SEC1: rcgen tells them apart by structure).
pub fn read_key_pem(key_pem: &str) -> Result<rcgen::KeyPair, String> {
    rcgen::KeyPair::from_pem(key_pem)
        .map_err(|_| "not a PEM private key rcgen can read (PKCS#8 RSA or ECDSA)".to_string())
}

/// Whether the private key is the one the certificate's SubjectPublicKeyInfo names. The public key
/// bits are compared, not the whole SPKI, because the AlgorithmIdentifier may be encoded
/// differently (RSA's NULL parameters, RSA-PSS certificates over an rsaEncryption key) for the same
/// key.
pub fn key_matches(key: &rcgen::KeyPair, cert: &CertInfo) -> bool {
    SubjectPublicKeyInfo::from_der(&cert.public_key)
        .is_ok_and(|(_, spki)| spki.subject_public_key.data.as_ref() == key.public_key_raw())
}

/// `key_matches` for a PEM key; false when the key cannot be read.
pub fn pem_key_matches(key_pem: &str, cert: &CertInfo) -> bool {
    read_key_pem(key_pem).is_ok_and(|key| key_matches(&key, cert))
}

fn rsa_size(bits: u32) -> Result<rcgen::RsaKeySize, String> {
    match bits {
        2048 => Ok(rcgen::RsaKeySize::_2048),
        3072 => Ok(rcgen::RsaKeySize::_3072),
        4096 => Ok(rcgen::RsaKeySize::_4096),
        other => Err(format!("key_size must be 2048, 3072 or 4096, got {other}")),
    }
}

/// A new RSA key of 2048, 3072 or 4096 bits, for SHA-256 signatures.
pub fn new_rsa_key(bits: u32) -> Result<rcgen::KeyPair, String> {
    rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rsa_size(bits)?)
        .map_err(|e| format!("cannot make an RSA key: {e}"))
}

/// Valid from a day ago (clock skew between hosts does not matter) for `days`.
fn validity(params: &mut rcgen::CertificateParams, days: u32) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let day = Duration::from_secs(86_400);
    params.not_before = epoch + now.saturating_sub(day);
    params.not_after = epoch + now + day * days;
}

/// `CN=common_name, O=orch`.
fn orch_name(common_name: &str) -> rcgen::DistinguishedName {
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, common_name);
    name.push(rcgen::DnType::OrganizationName, "orch");
    name
}

/// A certificate and its private key, as PEM.
#[derive(Clone)]
pub struct PemPair {
    pub certificate: String,
    pub private_key: String,
}

/// A self-signed RSA CA that may only sign server certificates below it (path length 0).
pub fn make_ca(common_name: &str, days: u32, key_bits: u32) -> Result<PemPair, String> {
    let fail = |e: rcgen::Error| format!("cannot make the CA certificate: {e}");
    let key = new_rsa_key(key_bits)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    params.distinguished_name = orch_name(common_name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = false;
    validity(&mut params, days);
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok(PemPair {
        certificate: cert.pem(),
        private_key: key.serialize_pem(),
    })
}

/// An RSA server certificate for `names` (DNS names or IP addresses), signed by the CA.
pub fn make_server_cert(
    ca: &PemPair,
    common_name: &str,
    names: &[String],
    days: u32,
    key_bits: u32,
) -> Result<PemPair, String> {
    let fail = |e: rcgen::Error| format!("cannot make the server certificate: {e}");
    let ca_key = rcgen::KeyPair::from_pem(&ca.private_key)
        .map_err(|_| "the CA private key cannot be read".to_string())?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.certificate, ca_key).map_err(fail)?;
    let key = new_rsa_key(key_bits)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(fail)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, days);
    let cert = params.signed_by(&key, &issuer).map_err(fail)?;
    Ok(PemPair {
        certificate: cert.pem(),
        private_key: key.serialize_pem(),
    })
}

/// A self-signed certificate of `key` (not a CA) for `names` (DNS names or IP addresses), named
/// `CN=common_name, O=orch`, as PEM. The error is rcgen's, for the caller to frame.
pub fn make_self_signed(
    key: &rcgen::KeyPair,
    common_name: &str,
    names: &[String],
    days: u32,
) -> Result<String, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params.distinguished_name = orch_name(common_name);
    validity(&mut params, days);
    Ok(params.self_signed(key)?.pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_certificate_chains_to_its_ca_and_names_the_host() {
        let ca = make_ca("orch test CA", 30, 2048).unwrap();
        let server = make_server_cert(
            &ca,
            "auth.example.test",
            &["auth.example.test".into(), "192.0.2.10".into()],
            10,
            2048,
        )
        .unwrap();
        let ca_info = CertInfo::from_pem(&ca.certificate).unwrap();
        let info = CertInfo::from_pem(&server.certificate).unwrap();
        assert!(ca_info.is_ca && !info.is_ca);
        assert_eq!(info.common_name.as_deref(), Some("auth.example.test"));
        assert_eq!(info.host_names(), vec!["auth.example.test", "192.0.2.10"]);
        assert_eq!(
            info.alt_names,
            vec!["DNS:auth.example.test", "IP:192.0.2.10"]
        );
        assert_eq!(info.key_type, "rsa");
        assert_eq!(info.issuer, ca_info.subject);
        assert!(info.is_signed_by(&ca_info));
        assert!(ca_info.is_signed_by(&ca_info));
        let other = make_ca("another CA", 30, 2048).unwrap();
        assert!(!info.is_signed_by(&CertInfo::from_pem(&other.certificate).unwrap()));
        assert!(pem_key_matches(&server.private_key, &info));
        assert!(!pem_key_matches(&ca.private_key, &info));
        let days_left = info.seconds_left() / 86_400;
        assert!((9..=10).contains(&days_left), "{days_left}");
        assert!(!info.expired(now_unix()) && info.expired(info.not_after + 1));
        assert_eq!(info.fingerprint_sha256.len(), 32 * 3 - 1);
        assert_eq!(CertInfo::from_der(&info.der).unwrap(), info);
    }

    #[test]
    fn fingerprints_are_openssl_style_and_compare_in_any_case() {
        assert_eq!(
            fingerprint_sha256(b"abc"),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
        assert!(same_fingerprint("BA:78:16:BF", "ba7816bf"));
        assert!(!same_fingerprint("", ""));
        assert!(!same_fingerprint("aa:bb", "aa:bc"));
    }

    #[test]
    fn a_self_signed_certificate_names_its_key_and_hosts() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let names = ["auth.example.test".to_string(), "2001:db8::1".to_string()];
        let pem = make_self_signed(&key, "auth.example.test", &names, 5).unwrap();
        let info = CertInfo::from_pem(&pem).unwrap();
        assert!(!info.is_ca && info.is_signed_by(&info));
        assert_eq!(info.subject, "CN=auth.example.test, O=orch");
        assert_eq!(info.host_names(), names);
        assert_eq!(info.key_type, "ec");
        assert!(key_matches(&key, &info));
        assert!(key_matches(
            &read_key_pem(&key.serialize_pem()).unwrap(),
            &info
        ));
        let days_left = info.seconds_left() / 86_400;
        assert!((4..=5).contains(&days_left), "{days_left}");
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(CertInfo::from_pem("hello").is_err());
        let ca = make_ca("orch test CA", 30, 2048).unwrap();
        assert!(CertInfo::from_pem(&ca.private_key)
            .unwrap_err()
            .contains("PRIVATE KEY"));
        assert!(CertInfo::from_pem(
            "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n"
        )
        .unwrap_err()
        .starts_with("not an X.509 certificate ("));
        assert!(
            read_key_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
        assert!(pem_blocks("-----BEGIN X-----\n", "key_data")
            .unwrap_err()
            .starts_with("key_data is not valid PEM"));
        assert!(make_ca("x", 1, 1024).is_err());
    }
}
