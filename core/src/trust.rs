//! Trust distribution documents: `trusted_root.json` (v0.1), `signing_config.json` (v0.2) and the
//! client trust config that bundles both (sigstore-python's `--trust-config`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bundle::protojson::bytes as b64;
use crate::bundle::{HashAlgorithm, LogId, X509CertificateChain};

/// Media type of a trusted root; clients compare it exactly.
pub const TRUSTED_ROOT_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1";
/// Media type of a v0.2 signing config.
pub const SIGNING_CONFIG_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.signingconfig.v0.2+json";
/// Media type of a client trust config.
pub const CLIENT_TRUST_CONFIG_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json";

/// `keyDetails` names used for log keys.
pub mod key_details {
    pub const PKIX_ECDSA_P256_SHA_256: &str = "PKIX_ECDSA_P256_SHA_256";
    pub const PKIX_ECDSA_P384_SHA_384: &str = "PKIX_ECDSA_P384_SHA_384";
    pub const PKIX_ECDSA_P521_SHA_512: &str = "PKIX_ECDSA_P521_SHA_512";
    pub const PKIX_ED25519: &str = "PKIX_ED25519";
}

/// Errors from reading trust documents.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("trust document is not valid JSON for its schema: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unexpected mediaType {found:?}, expected {expected:?}")]
    MediaType {
        found: String,
        expected: &'static str,
    },
    #[error("invalid RFC 3339 timestamp {0:?}")]
    Timestamp(String),
}

/// A protobuf `Timestamp` in its JSON (RFC 3339) form. The original text is kept so documents
/// re-serialise unchanged; comparisons use the whole seconds.
#[derive(Debug, Clone)]
pub struct Timestamp {
    raw: String,
    secs: i64,
}

impl Timestamp {
    /// A timestamp at `secs` seconds after the Unix epoch, written as `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn from_unix(secs: i64) -> Self {
        Self {
            raw: format_rfc3339(secs),
            secs,
        }
    }

    /// Parses RFC 3339 text.
    pub fn parse(s: &str) -> Result<Self, TrustError> {
        Ok(Self {
            raw: s.to_owned(),
            secs: parse_rfc3339(s)?,
        })
    }

    /// Seconds after the Unix epoch (fractions dropped).
    pub fn unix(&self) -> i64 {
        self.secs
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl PartialEq for Timestamp {
    fn eq(&self, o: &Self) -> bool {
        self.secs == o.secs
    }
}
impl Eq for Timestamp {}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`) to Unix seconds, dropping fractions.
pub fn parse_rfc3339(s: &str) -> Result<i64, TrustError> {
    let err = || TrustError::Timestamp(s.to_owned());
    let b = s.as_bytes();
    let num = |from: usize, to: usize| -> Result<i64, TrustError> {
        let part = s.get(from..to).ok_or_else(err)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(err());
        }
        part.parse::<i64>().map_err(|_| err())
    };
    let sep = |i: usize, cs: &[u8]| b.get(i).is_some_and(|c| cs.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return Err(err());
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(err());
    }
    let mut i = 19;
    if sep(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(err());
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(c @ (b'+' | b'-')) if i + 6 == b.len() && sep(i + 3, b":") => {
            let off = num(i + 1, i + 3)? * 3600 + num(i + 4, i + 6)? * 60;
            if *c == b'+' { off } else { -off }
        }
        _ => return Err(err()),
    };
    Ok(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// A validity window; `end` absent means still valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    pub start: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
}

impl TimeRange {
    /// Whether `t` (Unix seconds) lies in `[start, end]`.
    pub fn contains(&self, t: i64) -> bool {
        t >= self.start.unix() && self.end.as_ref().is_none_or(|e| t <= e.unix())
    }
}

/// A public key in a trust root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKey {
    /// SPKI DER.
    #[serde(with = "b64", default)]
    pub raw_bytes: Vec<u8>,
    pub key_details: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_for: Option<TimeRange>,
}

impl PublicKey {
    /// Whether the key may be used at `t` (Unix seconds); a key without a window always may.
    pub fn valid_at(&self, t: i64) -> bool {
        self.valid_for.as_ref().is_none_or(|r| r.contains(t))
    }
}

/// A transparency log (Rekor) or CT log the client trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransparencyLogInstance {
    pub base_url: String,
    pub hash_algorithm: HashAlgorithm,
    pub public_key: PublicKey,
    pub log_id: LogId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_key_id: Option<LogId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

/// An X.509 distinguished name as the trust root abbreviates it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DistinguishedName {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub organization: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub common_name: String,
}

/// A certificate authority or timestamp authority: its chain (issuing cert first, root last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAuthority {
    #[serde(default)]
    pub subject: DistinguishedName,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
    pub cert_chain: X509CertificateChain,
    pub valid_for: TimeRange,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

/// `trusted_root.json`: the keys and certificates a verifier trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustedRoot {
    pub media_type: String,
    #[serde(default)]
    pub tlogs: Vec<TransparencyLogInstance>,
    #[serde(default)]
    pub certificate_authorities: Vec<CertificateAuthority>,
    #[serde(default)]
    pub ctlogs: Vec<TransparencyLogInstance>,
    #[serde(default)]
    pub timestamp_authorities: Vec<CertificateAuthority>,
}

fn check_media_type(found: &str, expected: &'static str) -> Result<(), TrustError> {
    if found == expected {
        Ok(())
    } else {
        Err(TrustError::MediaType {
            found: found.to_owned(),
            expected,
        })
    }
}

impl TrustedRoot {
    /// An empty trusted root with the right media type.
    pub fn new() -> Self {
        Self {
            media_type: TRUSTED_ROOT_MEDIA_TYPE.to_owned(),
            tlogs: Vec::new(),
            certificate_authorities: Vec::new(),
            ctlogs: Vec::new(),
            timestamp_authorities: Vec::new(),
        }
    }

    /// Parses a trusted root, checking the media type exactly.
    pub fn from_json(json: &[u8]) -> Result<Self, TrustError> {
        let r: Self = serde_json::from_slice(json)?;
        check_media_type(&r.media_type, TRUSTED_ROOT_MEDIA_TYPE)?;
        Ok(r)
    }

    /// Serialises as pretty JSON.
    pub fn to_json(&self) -> Result<String, TrustError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The transparency logs whose log ID is `key_id`.
    pub fn tlogs_by_id<'a>(
        &'a self,
        key_id: &'a [u8],
    ) -> impl Iterator<Item = &'a TransparencyLogInstance> {
        self.tlogs.iter().filter(move |l| l.log_id.key_id == key_id)
    }

    /// The CT logs whose log ID is `key_id`.
    pub fn ctlogs_by_id<'a>(
        &'a self,
        key_id: &'a [u8],
    ) -> impl Iterator<Item = &'a TransparencyLogInstance> {
        self.ctlogs
            .iter()
            .filter(move |l| l.log_id.key_id == key_id)
    }
}

impl Default for TrustedRoot {
    fn default() -> Self {
        Self::new()
    }
}

/// A service endpoint in a signing config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub url: String,
    pub major_api_version: u32,
    pub valid_for: TimeRange,
    #[serde(default)]
    pub operator: String,
}

/// How many of the listed services a client should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceSelector {
    #[serde(rename = "SERVICE_SELECTOR_UNDEFINED")]
    Undefined,
    #[serde(rename = "ALL")]
    All,
    #[serde(rename = "ANY")]
    Any,
    #[serde(rename = "EXACT")]
    Exact,
}

/// Selector plus count (for `EXACT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceConfiguration {
    pub selector: ServiceSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// `signing_config.json` v0.2: where a signer finds the CA, OIDC provider, logs and TSAs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningConfig {
    pub media_type: String,
    #[serde(default)]
    pub ca_urls: Vec<Service>,
    #[serde(default)]
    pub oidc_urls: Vec<Service>,
    #[serde(default)]
    pub rekor_tlog_urls: Vec<Service>,
    #[serde(default)]
    pub tsa_urls: Vec<Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor_tlog_config: Option<ServiceConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_config: Option<ServiceConfiguration>,
}

impl SigningConfig {
    /// An empty signing config with the right media type.
    pub fn new() -> Self {
        Self {
            media_type: SIGNING_CONFIG_MEDIA_TYPE.to_owned(),
            ca_urls: Vec::new(),
            oidc_urls: Vec::new(),
            rekor_tlog_urls: Vec::new(),
            tsa_urls: Vec::new(),
            rekor_tlog_config: None,
            tsa_config: None,
        }
    }

    /// Parses a signing config, checking the media type exactly.
    pub fn from_json(json: &[u8]) -> Result<Self, TrustError> {
        let c: Self = serde_json::from_slice(json)?;
        check_media_type(&c.media_type, SIGNING_CONFIG_MEDIA_TYPE)?;
        Ok(c)
    }

    /// Serialises as pretty JSON.
    pub fn to_json(&self) -> Result<String, TrustError> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// The services of `list` valid at `now` whose major API version is in `versions`, newest
/// (latest `validFor.start`) first, as clients pick them.
pub fn select_services<'a>(list: &'a [Service], now: i64, versions: &[u32]) -> Vec<&'a Service> {
    let mut v: Vec<&Service> = list
        .iter()
        .filter(|s| s.valid_for.contains(now) && versions.contains(&s.major_api_version))
        .collect();
    v.sort_by_key(|s| std::cmp::Reverse(s.valid_for.start.unix()));
    v
}

/// sigstore-python's client trust config: trusted root plus signing config in one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientTrustConfig {
    pub media_type: String,
    // Protobuf-JSON parsers also accept the proto field names; sigstore-python's own files use them.
    #[serde(alias = "trusted_root")]
    pub trusted_root: TrustedRoot,
    #[serde(alias = "signing_config")]
    pub signing_config: SigningConfig,
}

impl ClientTrustConfig {
    /// Bundles a trusted root and a signing config.
    pub fn new(trusted_root: TrustedRoot, signing_config: SigningConfig) -> Self {
        Self {
            media_type: CLIENT_TRUST_CONFIG_MEDIA_TYPE.to_owned(),
            trusted_root,
            signing_config,
        }
    }

    /// Parses a client trust config, checking all three media types.
    pub fn from_json(json: &[u8]) -> Result<Self, TrustError> {
        let c: Self = serde_json::from_slice(json)?;
        check_media_type(&c.media_type, CLIENT_TRUST_CONFIG_MEDIA_TYPE)?;
        check_media_type(&c.trusted_root.media_type, TRUSTED_ROOT_MEDIA_TYPE)?;
        check_media_type(&c.signing_config.media_type, SIGNING_CONFIG_MEDIA_TYPE)?;
        Ok(c)
    }

    /// Serialises as pretty JSON.
    pub fn to_json(&self) -> Result<String, TrustError> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_handles_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_rfc3339("2021-01-12T11:53:27Z").unwrap(),
            1_610_452_407
        );
        assert_eq!(
            parse_rfc3339("2021-01-12T11:53:27.123Z").unwrap(),
            1_610_452_407
        );
        assert_eq!(
            parse_rfc3339("2021-01-12T12:53:27+01:00").unwrap(),
            1_610_452_407
        );
        assert_eq!(format_rfc3339(1_610_452_407), "2021-01-12T11:53:27Z");
        for t in [0, 951_782_400, 4_102_444_800, 1_709_164_800] {
            assert_eq!(parse_rfc3339(&format_rfc3339(t)).unwrap(), t);
        }
        for bad in [
            "",
            "2021-01-12",
            "2021-13-01T00:00:00Z",
            "2021-01-12T11:53:27",
            "x021-01-12T11:53:27Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_range_bounds() {
        let r = TimeRange {
            start: Timestamp::from_unix(10),
            end: Some(Timestamp::from_unix(20)),
        };
        assert!(!r.contains(9) && r.contains(10) && r.contains(20) && !r.contains(21));
        let open = TimeRange {
            start: Timestamp::from_unix(10),
            end: None,
        };
        assert!(open.contains(i64::MAX));
    }

    #[test]
    fn media_type_is_exact() {
        let j = r#"{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.2"}"#;
        assert!(matches!(
            TrustedRoot::from_json(j.as_bytes()),
            Err(TrustError::MediaType { .. })
        ));
    }
}
