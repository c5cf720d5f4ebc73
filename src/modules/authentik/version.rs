//! Which Authentik release the API belongs to, and what differs between the releases orch supports
//! (2024.12 through 2026.5; /work/shared/reference/authentik-api.md §4, §6, §7 and the 2026.5.6
//! schema).

use std::fmt;

/// The oldest release whose API these modules speak: list-shaped `redirect_uris` (CVE-2024-52289 fix),
/// required `invalidation_flow`, `/propertymappings/provider/scope/`, `alg` on `generate/`.
pub const OLDEST_SUPPORTED: (u32, u32) = (2024, 12);
/// The newest release the reference describes; newer ones are used as if they were this one.
pub const NEWEST_KNOWN: (u32, u32) = (2026, 5);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthentikVersion {
    pub year: u32,
    pub minor: u32,
    pub patch: u32,
    /// As the API reported it (`version_current`), e.g. "2025.12.3" or "2026.5.0-rc1".
    pub text: String,
}

impl AuthentikVersion {
    /// Reads `version_current`: the first three numbers, missing ones are 0.
    pub fn parse(text: &str) -> Option<AuthentikVersion> {
        let numbers: Vec<u32> = text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|part| !part.is_empty())
            .take(3)
            .map(|part| part.parse().ok())
            .collect::<Option<Vec<u32>>>()?;
        let year = *numbers.first()?;
        if year < 2000 {
            return None;
        }
        Some(AuthentikVersion {
            year,
            minor: numbers.get(1).copied().unwrap_or(0),
            patch: numbers.get(2).copied().unwrap_or(0),
            text: text.trim().to_string(),
        })
    }

    fn at_least(&self, year: u32, minor: u32) -> bool {
        (self.year, self.minor) >= (year, minor)
    }
}

impl fmt::Display for AuthentikVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The API differences the modules act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    /// Field of `CertificateKeyPair` naming the key algorithm: `private_key_type` (≤2025.10, from the
    /// private key, null without one) or `key_type` (≥2025.12, from the certificate).
    pub key_type_field: &'static str,
    /// Redirect URI entries carry `redirect_uri_type` (`authorization` | `logout`) from 2026.5.
    pub redirect_uri_type: bool,
    /// `generate/` accepts `alg` (since 2024.4.2/2024.6; always true in the supported range, kept so
    /// that the request is built from one place).
    pub generate_alg: bool,
    /// `generate/` refuses a `common_name` equal to an existing pair's name (since 2024.10.2).
    pub generate_name_unique: bool,
    /// A release newer than the reference describes: used as `NEWEST_KNOWN`, with a warning.
    pub newer_than_known: bool,
}

impl Features {
    pub fn for_version(version: &AuthentikVersion) -> Result<Features, String> {
        let (year, minor) = OLDEST_SUPPORTED;
        if !version.at_least(year, minor) {
            return Err(format!(
                "Authentik {version} is older than {year}.{minor}, the oldest release orch's authentik modules support \
                 (before it redirect URIs were a regex string and the provider API differs); upgrade Authentik"
            ));
        }
        Ok(Features {
            key_type_field: if version.at_least(2025, 12) {
                "key_type"
            } else {
                "private_key_type"
            },
            redirect_uri_type: version.at_least(2026, 5),
            generate_alg: version.at_least(2024, 6),
            generate_name_unique: true,
            newer_than_known: version.at_least(NEWEST_KNOWN.0, NEWEST_KNOWN.1 + 1),
        })
    }

    /// A warning for releases newer than the reference, else None.
    pub fn warning(&self, version: &AuthentikVersion) -> Option<String> {
        self.newer_than_known.then(|| {
            format!(
                "Authentik {version} is newer than {}.{}, the newest release these modules were written for; \
                 its API is used as if it were {}.{}",
                NEWEST_KNOWN.0, NEWEST_KNOWN.1, NEWEST_KNOWN.0, NEWEST_KNOWN.1
            )
        })
    }
}

/// The key algorithm of a key pair as one vocabulary (`rsa`, `ec`, `dsa`, `ed25519`, `ed448`),
/// whichever field and spelling the release uses (`ellipticcurve`/`ec` before 2025.12).
pub fn key_type_of(pair: &serde_json::Value, features: &Features) -> Option<String> {
    let raw = pair.get(features.key_type_field)?.as_str()?;
    let lower = raw.to_ascii_lowercase();
    let normal = match lower.as_str() {
        "rsa" | "rsaprivatekey" => "rsa",
        "ec" | "ellipticcurve" | "ecdsa" | "ellipticcurveprivatekey" => "ec",
        "dsa" | "dsaprivatekey" => "dsa",
        "ed25519" | "ed25519privatekey" => "ed25519",
        "ed448" | "ed448privatekey" => "ed448",
        other => return Some(other.to_string()),
    };
    Some(normal.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn features(text: &str) -> Features {
        Features::for_version(&AuthentikVersion::parse(text).unwrap()).unwrap()
    }

    #[test]
    fn parses_release_strings() {
        let v = AuthentikVersion::parse("2025.12.3").unwrap();
        assert_eq!((v.year, v.minor, v.patch), (2025, 12, 3));
        let rc = AuthentikVersion::parse("2026.5.0-rc1").unwrap();
        assert_eq!((rc.year, rc.minor, rc.patch), (2026, 5, 0));
        assert_eq!(AuthentikVersion::parse("2024.12").unwrap().patch, 0);
        assert!(AuthentikVersion::parse("").is_none());
        assert!(AuthentikVersion::parse("dev").is_none());
        assert!(AuthentikVersion::parse("7.1").is_none());
    }

    #[test]
    fn key_type_field_changes_at_2025_12() {
        assert_eq!(features("2024.12.3").key_type_field, "private_key_type");
        assert_eq!(features("2025.10.4").key_type_field, "private_key_type");
        assert_eq!(features("2025.12.0").key_type_field, "key_type");
        assert_eq!(features("2026.5.6").key_type_field, "key_type");
    }

    #[test]
    fn redirect_uri_type_from_2026_5() {
        assert!(!features("2024.12.3").redirect_uri_type);
        assert!(!features("2026.2.2").redirect_uri_type);
        assert!(features("2026.5.6").redirect_uri_type);
    }

    #[test]
    fn old_releases_are_refused_and_new_ones_warned_about() {
        let old = Features::for_version(&AuthentikVersion::parse("2024.10.5").unwrap());
        assert!(old.unwrap_err().contains("older than 2024.12"));
        let current = features("2026.5.6");
        assert!(!current.newer_than_known);
        assert!(current
            .warning(&AuthentikVersion::parse("2026.5.6").unwrap())
            .is_none());
        let future_version = AuthentikVersion::parse("2026.8.1").unwrap();
        let future = Features::for_version(&future_version).unwrap();
        assert!(future.newer_than_known);
        assert!(future
            .warning(&future_version)
            .unwrap()
            .contains("2026.8.1"));
    }

    #[test]
    fn key_types_are_read_from_the_release_specific_field() {
        let old = features("2025.10.4");
        let new = features("2026.5.6");
        let legacy_ec = json!({"private_key_type": "ellipticcurve"});
        assert_eq!(key_type_of(&legacy_ec, &old).as_deref(), Some("ec"));
        assert_eq!(key_type_of(&legacy_ec, &new), None);
        let rsa = json!({"key_type": "rsa", "private_key_type": "ec"});
        assert_eq!(key_type_of(&rsa, &new).as_deref(), Some("rsa"));
        assert_eq!(key_type_of(&rsa, &old).as_deref(), Some("ec"));
        assert_eq!(key_type_of(&json!({"private_key_type": null}), &old), None);
    }
}
