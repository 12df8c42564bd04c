//! Real public trusted roots, signing configs and client trust configs round-trip.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
use sigil_core::trust::{ClientTrustConfig, SigningConfig, TrustedRoot, select_services};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn same_json(raw: &[u8], out: &str, name: &str) {
    let a: serde_json::Value = serde_json::from_slice(raw).unwrap();
    let b: serde_json::Value = serde_json::from_str(out).unwrap();
    if let Some(d) = first_diff(&a, &b, String::new()) {
        panic!("{name} changed on re-serialisation at {d}");
    }
}

fn first_diff(a: &serde_json::Value, b: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value::{Array, Object};
    match (a, b) {
        (Object(x), Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (va, vb) = (
                    x.get(k).unwrap_or(&serde_json::Value::Null),
                    y.get(k).unwrap_or(&serde_json::Value::Null),
                );
                if let Some(d) = first_diff(va, vb, format!("{path}.{k}")) {
                    return Some(d);
                }
            }
            None
        }
        (Array(x), Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_diff(p, q, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

#[test]
fn public_trusted_roots_round_trip() {
    for name in [
        "trusted_root.public.json",
        "trusted_root.staging.json",
        "trusted_root.public-good-sigstore-go.json",
    ] {
        let raw = data(name);
        let r = TrustedRoot::from_json(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        same_json(&raw, &r.to_json().unwrap(), name);
        assert!(
            !r.tlogs.is_empty() && !r.ctlogs.is_empty() && !r.certificate_authorities.is_empty()
        );
    }
    let r = TrustedRoot::from_json(&data("trusted_root.public.json")).unwrap();
    let rekor = &r.tlogs[0];
    assert_eq!(rekor.base_url, "https://rekor.sigstore.dev");
    // The public Rekor log ID is the SHA-256 of its SPKI.
    use sha2::Digest;
    assert_eq!(
        sha2::Sha256::digest(&rekor.public_key.raw_bytes).as_slice(),
        rekor.log_id.key_id
    );
    assert_eq!(r.tlogs_by_id(&rekor.log_id.key_id).count(), 1);
    assert!(rekor.public_key.valid_at(1_710_888_076));
    assert!(!rekor.public_key.valid_at(1_600_000_000));
}

#[test]
fn signing_config_v02_round_trips_and_selects() {
    let raw = data("signing_config.v0.2.json");
    let c = SigningConfig::from_json(&raw).unwrap();
    same_json(&raw, &c.to_json().unwrap(), "signing_config");
    let now = 1_750_000_000;
    let ca = select_services(&c.ca_urls, now, &[1]);
    assert_eq!(ca.len(), 1);
    assert_eq!(ca[0].url, "https://fulcio.example.com");
    assert_eq!(
        select_services(&c.rekor_tlog_urls, now, &[2])[0].url,
        "https://rekor-v2.example.com"
    );
}

#[test]
fn client_trust_config_round_trips() {
    let raw = data("trust_config.v0.1.json");
    let c = ClientTrustConfig::from_json(&raw).unwrap();
    // The file spells one field by its proto name; the output uses the JSON name.
    let raw = String::from_utf8(raw)
        .unwrap()
        .replace("\"signing_config\"", "\"signingConfig\"");
    same_json(raw.as_bytes(), &c.to_json().unwrap(), "trust_config");
    assert!(!c.trusted_root.tlogs.is_empty());
}
