//! A certificate and private key given as PEM (`authentik_certificate`'s `certificate_data` and
//! `key_data`), checked on the controller before anything is sent: the certificate (or chain, leaf
//! first) parses, the key parses, the key belongs to the leaf, and the leaf's SHA-256 fingerprint
//! is given exactly as Authentik reports it (`authentik/crypto/models.py`:
//! `hexlify(cert.fingerprint(SHA256), ":")`, lowercase colon-separated hex), so that an unchanged
//! pair is recognised without reading its key back. The reading itself is `tls/x509.rs`'s; this
//! file holds Authentik's rules, messages and diff views.
//!
//! Nothing here puts key material into a message, a view or a result: errors name the argument and
//! what is wrong, never the text.

use serde_json::{json, Map, Value};

use crate::modules::tls::x509::{self, CertInfo};
use crate::modules::{ModuleError, SECRETS_KEY};

/// A fingerprint in Authentik's form (lowercase colon-separated hex).
pub fn authentik_fingerprint(fingerprint: &str) -> String {
    fingerprint.to_ascii_lowercase()
}

/// What the diff and the result show of a certificate (public data only).
fn leaf_view(leaf: &CertInfo) -> Map<String, Value> {
    let mut view = Map::new();
    view.insert("subject".into(), json!(leaf.subject));
    view.insert("issuer".into(), json!(leaf.issuer));
    view.insert("subject_alt_names".into(), json!(leaf.alt_names));
    view.insert(
        "not_after".into(),
        json!(crate::state::format_utc(leaf.not_after)),
    );
    view.insert(
        "fingerprint_sha256".into(),
        json!(authentik_fingerprint(&leaf.fingerprint_sha256)),
    );
    view.insert("key_type".into(), json!(leaf.key_type));
    view
}

/// A checked pair, ready to be sent.
#[derive(Clone, Debug)]
pub struct GivenPair {
    /// The chain as sent (lines trimmed, as Authentik itself does for keys).
    pub certificate_pem: String,
    pub key_pem: String,
    /// The leaf certificate.
    pub leaf: CertInfo,
    pub chain_length: usize,
    /// The key as given, as sent, and each line of its body: everything output masking must cover.
    pub secrets: Vec<String>,
}

impl GivenPair {
    /// Checks `certificate_data` and `key_data`. Failures carry the key's secrets in their result, so
    /// that output masking covers the key even when the task fails.
    pub fn parse(
        certificate_data: &str,
        key_data: &str,
        require_rsa: bool,
        name: &str,
    ) -> Result<GivenPair, ModuleError> {
        let key_pem = normalize(key_data);
        let secrets = secrets_of(key_data, &key_pem);
        let fail = |msg: String| {
            let mut result = Map::new();
            result.insert(SECRETS_KEY.into(), json!(secrets));
            ModuleError::with_result(msg, result)
        };
        let certificate_pem = normalize(certificate_data);
        let chain = read_chain(&certificate_pem).map_err(&fail)?;
        let key = read_key(&key_pem).map_err(&fail)?;
        let parsed: Vec<CertInfo> = chain
            .iter()
            .map(|der| CertInfo::from_der(der))
            .collect::<Result<_, _>>()
            .map_err(|e| {
                fail(format!(
                    "certificate_data: a certificate does not parse: {e}"
                ))
            })?;
        let Some(leaf) = parsed.first() else {
            return Err(fail("certificate_data holds no certificate".into()));
        };
        if !x509::key_matches(&key, leaf) {
            let hint = match parsed.iter().position(|c| x509::key_matches(&key, c)) {
                Some(i) => format!(
                    " It belongs to certificate {} of the chain ({}): put the server certificate first.",
                    i + 1,
                    parsed[i].subject
                ),
                None => " Give the key that was made with this certificate.".into(),
            };
            return Err(fail(format!(
                "key_data does not belong to the certificate in certificate_data (subject {}, fingerprint {}): \
                 their public keys differ.{hint}",
                leaf.subject,
                authentik_fingerprint(&leaf.fingerprint_sha256)
            )));
        }
        if require_rsa && leaf.key_type != "rsa" {
            return Err(fail(super::not_rsa_message(
                name,
                &leaf.key_type,
                "give an RSA key and certificate in certificate_data and key_data, or set require_rsa: false \
                 when this pair does not sign ID tokens (a web certificate may be ECDSA)",
            )));
        }
        Ok(GivenPair {
            certificate_pem,
            key_pem,
            leaf: leaf.clone(),
            chain_length: chain.len(),
            secrets,
        })
    }

    /// The leaf's fingerprint as Authentik reports it.
    pub fn fingerprint_sha256(&self) -> String {
        authentik_fingerprint(&self.leaf.fingerprint_sha256)
    }

    /// What the diff shows for the pair as it will be.
    pub fn view(&self, name: &str) -> Value {
        pair_view(name, &self.leaf, self.chain_length, "given (not shown)")
    }
}

/// A pair as diffs show it: its name, the leaf's public details, the chain length, and only
/// whether there is a private key.
pub fn pair_view(name: &str, leaf: &CertInfo, chain_length: usize, private_key: &str) -> Value {
    let mut view = Map::new();
    view.insert("name".into(), json!(name));
    view.extend(leaf_view(leaf));
    view.insert("chain_length".into(), json!(chain_length));
    view.insert("private_key".into(), json!(private_key));
    Value::Object(view)
}

/// Each line trimmed, blank lines dropped, one final newline: what Authentik does to keys before
/// loading them, and what the PEM reader needs (an indented YAML block would not parse).
pub fn normalize(text: &str) -> String {
    let mut out: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// The strings that must be masked wherever they would appear: the key as given and as sent, and
/// every line of its base64 body (a line is enough to identify part of a key).
fn secrets_of(given: &str, normalized: &str) -> Vec<String> {
    let mut secrets = vec![given.to_string(), normalized.to_string()];
    for line in normalized.lines() {
        if !line.starts_with("-----") && line.len() >= 16 && !secrets.iter().any(|s| s == line) {
            secrets.push(line.to_string());
        }
    }
    secrets.retain(|s| !s.trim().is_empty());
    secrets
}

/// The DER of every certificate of `certificate_data`, leaf first.
fn read_chain(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let blocks = x509::pem_blocks(text, "certificate_data")?;
    if blocks.iter().any(|b| b.label.ends_with("PRIVATE KEY")) {
        // Authentik would store it as certificate text, shown to anyone who may view certificates.
        return Err(
            "certificate_data holds a private key block; give the key in key_data only".into(),
        );
    }
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.contents)
        .collect();
    if certs.is_empty() {
        return Err(
            "certificate_data holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        );
    }
    Ok(certs)
}

/// The private key of `key_data` (PKCS#8, PKCS#1 or SEC1).
fn read_key(text: &str) -> Result<rcgen::KeyPair, String> {
    if text.contains("ENCRYPTED") {
        return Err(
            "key_data is an encrypted private key; Authentik needs it unencrypted (it answers \
             \"Unable to load private key (possibly encrypted?)\")"
                .into(),
        );
    }
    let blocks = x509::pem_blocks(text, "key_data")?;
    let Some(block) = blocks.iter().find(|b| b.label.ends_with("PRIVATE KEY")) else {
        return Err(
            "key_data holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY \
                    or EC PRIVATE KEY)"
                .into(),
        );
    };
    // rcgen tells PKCS#8, PKCS#1 and SEC1 apart by their structure.
    rcgen::KeyPair::try_from(block.contents.as_slice()).map_err(|_| {
        format!(
            "key_data ({}) cannot be read: orch checks keys with rcgen, which reads RSA, ECDSA P-256/P-384/P-521 \
             and Ed25519 keys",
            block.label
        )
    })
}

/// The leaf details and chain length of a certificate Authentik already holds (from
/// `view_certificate/`), for the diff's "before"; None when it does not parse.
pub fn describe(certificate_pem: &str) -> Option<(CertInfo, usize)> {
    let chain = read_chain(&normalize(certificate_pem)).ok()?;
    let leaf = CertInfo::from_der(chain.first()?).ok()?;
    Some((leaf, chain.len()))
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use x509_parser::der_parser::ber::BerObjectContent;
    use x509_parser::pem::Pem;

    /// A self-signed certificate for `names` (the first is also the CN) and its key as PKCS#8 PEM.
    pub fn pair(alg: &'static rcgen::SignatureAlgorithm, names: &[&str]) -> (String, String) {
        let key = if alg == &rcgen::PKCS_RSA_SHA256 {
            x509::new_rsa_key(2048).unwrap()
        } else {
            rcgen::KeyPair::generate_for(alg).unwrap()
        };
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let cert = x509::make_self_signed(&key, &names[0], &names, 30).unwrap();
        (cert, key.serialize_pem())
    }

    /// The PKCS#1 (RSA) or SEC1 (EC) form of a PKCS#8 key: the inner privateKey OCTET STRING.
    fn inner_key_pem(pkcs8_pem: &str, label: &str) -> String {
        use base64::Engine;
        let pem = Pem::iter_from_buffer(pkcs8_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (_, info) = x509_parser::der_parser::parse_der(&pem.contents).unwrap();
        let BerObjectContent::Sequence(items) = &info.content else {
            panic!("not a sequence")
        };
        let BerObjectContent::OctetString(inner) = &items[2].content else {
            panic!("no private key octet string")
        };
        let body = base64::engine::general_purpose::STANDARD.encode(inner);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    fn failure(r: Result<GivenPair, ModuleError>) -> (String, Map<String, Value>) {
        match r {
            Err(ModuleError::Failed { msg, result }) => (msg, result),
            Err(ModuleError::Transport(e)) => panic!("transport error: {e}"),
            Ok(given) => panic!("expected a failure, got {}", given.leaf.subject),
        }
    }

    fn der_of(pem: &str) -> Vec<u8> {
        read_chain(pem).unwrap().remove(0)
    }

    #[test]
    fn fingerprints_are_lowercase_colon_hex_of_the_leaf_der() {
        assert_eq!(
            authentik_fingerprint(&x509::fingerprint_sha256(b"abc")),
            "ba:78:16:bf:8f:01:cf:ea:41:41:40:de:5d:ae:22:23:b0:03:61:a3:96:17:7a:9c:b4:10:ff:61:f2:00:15:ad"
        );
        let (cert, key) = pair(&rcgen::PKCS_ECDSA_P256_SHA256, &["auth.example.test"]);
        let given = GivenPair::parse(&cert, &key, false, "web").unwrap();
        assert_eq!(
            given.fingerprint_sha256(),
            authentik_fingerprint(&x509::fingerprint_sha256(&der_of(&cert)))
        );
        assert_eq!(given.fingerprint_sha256().len(), 32 * 3 - 1);
        assert!(!given
            .fingerprint_sha256()
            .contains(|c: char| c.is_ascii_uppercase()));
        assert_eq!(
            given.view("web")["fingerprint_sha256"],
            json!(given.fingerprint_sha256())
        );
    }

    #[test]
    fn an_rsa_pair_is_read_in_pkcs8_and_pkcs1() {
        let (cert, key) = pair(&rcgen::PKCS_RSA_SHA256, &["auth.example.test", "10.0.0.5"]);
        let given = GivenPair::parse(&cert, &key, true, "web").unwrap();
        assert_eq!(given.leaf.key_type, "rsa");
        assert_eq!(
            given.leaf.alt_names,
            vec!["DNS:auth.example.test", "IP:10.0.0.5"]
        );
        assert!(given.leaf.subject.contains("CN=auth.example.test"));
        assert_eq!(given.chain_length, 1);
        let pkcs1 = inner_key_pem(&key, "RSA PRIVATE KEY");
        let given = GivenPair::parse(&cert, &pkcs1, true, "web").unwrap();
        assert!(given.key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        // Indented (a YAML block) and with CRLF line ends: still the same pair.
        let indented: String = key.lines().map(|l| format!("    {l}\r\n")).collect();
        assert!(GivenPair::parse(&cert, &indented, true, "web").is_ok());
    }

    #[test]
    fn ecdsa_needs_require_rsa_false_and_sec1_is_read() {
        let (cert, key) = pair(&rcgen::PKCS_ECDSA_P256_SHA256, &["auth.example.test"]);
        let (msg, result) = failure(GivenPair::parse(&cert, &key, true, "web"));
        assert!(
            msg.contains("ECDSA") && msg.contains("401") && msg.contains("require_rsa: false"),
            "{msg}"
        );
        assert!(result.contains_key(SECRETS_KEY));
        let sec1 = inner_key_pem(&key, "EC PRIVATE KEY");
        let given = GivenPair::parse(&cert, &sec1, false, "web").unwrap();
        assert_eq!(given.leaf.key_type, "ec");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_without_showing_it() {
        let (cert, _) = pair(&rcgen::PKCS_ECDSA_P256_SHA256, &["auth.example.test"]);
        let (_, other_key) = pair(&rcgen::PKCS_ECDSA_P256_SHA256, &["auth.example.test"]);
        let (msg, result) = failure(GivenPair::parse(&cert, &other_key, false, "web"));
        assert!(msg.contains("does not belong"), "{msg}");
        let body_line = other_key.lines().nth(1).unwrap();
        assert!(!msg.contains(body_line));
        let secrets: Vec<&str> = result[SECRETS_KEY]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(secrets.contains(&other_key.as_str()));
        assert!(secrets.contains(&body_line));
        assert!(!secrets
            .iter()
            .any(|s| s.starts_with("-----BEGIN") && !s.contains('\n')));
    }

    #[test]
    fn a_chain_must_start_with_the_leaf() {
        let (leaf, leaf_key) = pair(&rcgen::PKCS_ECDSA_P256_SHA256, &["auth.example.test"]);
        let (ca, _) = pair(&rcgen::PKCS_ECDSA_P256_SHA256, &["orch CA"]);
        let chain = format!("{leaf}{ca}");
        let given = GivenPair::parse(&chain, &leaf_key, false, "web").unwrap();
        assert_eq!(given.chain_length, 2);
        assert_eq!(
            given.fingerprint_sha256(),
            authentik_fingerprint(&x509::fingerprint_sha256(&der_of(&leaf)))
        );
        let reversed = format!("{ca}{leaf}");
        let (msg, _) = failure(GivenPair::parse(&reversed, &leaf_key, false, "web"));
        assert!(msg.contains("certificate 2 of the chain"), "{msg}");
    }

    #[test]
    fn bad_inputs_get_clear_errors() {
        let (cert, key) = pair(&rcgen::PKCS_ECDSA_P256_SHA256, &["auth.example.test"]);
        let cases = [
            ("not pem", key.as_str(), "no PEM certificate"),
            (cert.as_str(), "not pem", "no PEM private key"),
            (cert.as_str(), cert.as_str(), "no PEM private key"),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
                key.as_str(),
                "private key block",
            ),
            (
                cert.as_str(),
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "encrypted",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n",
                key.as_str(),
                "does not parse",
            ),
            (
                cert.as_str(),
                "-----BEGIN PRIVATE KEY-----\nMIIBAA==\n-----END PRIVATE KEY-----\n",
                "cannot be read",
            ),
        ];
        for (c, k, expected) in cases {
            let (msg, _) = failure(GivenPair::parse(c, k, false, "web"));
            assert!(msg.contains(expected), "{expected:?} not in {msg:?}");
        }
    }

    #[test]
    fn views_show_public_data_only() {
        let (cert, key) = pair(&rcgen::PKCS_ECDSA_P256_SHA256, &["auth.example.test"]);
        let given = GivenPair::parse(&cert, &key, false, "web").unwrap();
        let view = given.view("web").to_string();
        assert!(view.contains("auth.example.test") && view.contains("fingerprint_sha256"));
        for line in key.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!view.contains(line));
        }
        assert!(view.contains("not_after"));
        let (described, chain_length) = describe(&cert).unwrap();
        assert_eq!(described, given.leaf);
        assert_eq!(chain_length, 1);
        assert!(!described.expired(0));
        assert!(describe("garbage").is_none());
    }
}
