//! Asking a timestamp authority for an RFC 3161 timestamp over a signature, as bundles carry it
//! (verifying one is [`crate::verify::timestamp`]).

use anyhow::{Context, Result, anyhow, bail};
use der::asn1::{Int, OctetString};
use der::{Decode, Encode};
use sigil_core::crypto::DigestAlgorithm;
use sigil_core::rfc3161::{MessageImprint, SHA256, TimeStampReq, TimeStampResp, status_granted};
use x509_cert::spki::AlgorithmIdentifierOwned;

use crate::verify::timestamp::tst_imprint_and_nonce;

/// Asks the TSA at `url` (the full timestamp endpoint) to timestamp the SHA-256 of `signature`;
/// returns the DER `TimeStampResp`, as bundles carry it, after checking that it granted the
/// request over this imprint and nonce.
pub fn request_timestamp(url: &str, signature: &[u8]) -> Result<Vec<u8>> {
    // Positive and at most 63 bits, so its DER INTEGER needs no sign byte games.
    let nonce = rand::random::<u64>() >> 1;
    let req = TimeStampReq {
        version: 1,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: SHA256,
                parameters: None,
            },
            hashed_message: OctetString::new(DigestAlgorithm::Sha256.digest(signature))?,
        },
        req_policy: None,
        nonce: Some(der_int(nonce)?),
        cert_req: Some(true),
        extensions: None,
    }
    .to_der()?;
    let resp = crate::http::http()?
        .post(url)
        .header("Content-Type", "application/timestamp-query")
        .body(req)
        .send()
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .with_context(|| format!("reading the answer of {url}"))?;
    if !status.is_success() {
        bail!(
            "timestamp authority {url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let resp = TimeStampResp::from_der(&body)
        .map_err(|e| anyhow!("timestamp authority {url}: not a TimeStampResp: {e}"))?;
    if !status_granted(resp.status.status) {
        bail!(
            "timestamp authority {url} refused the request (status {}{})",
            resp.status.status,
            resp.status
                .status_string
                .map(|s| format!(": {}", s.join("; ")))
                .unwrap_or_default()
        );
    }
    let (imprint, got_nonce) = tst_imprint_and_nonce(&body).map_err(|e| anyhow!("{e}"))?;
    if imprint != DigestAlgorithm::Sha256.digest(signature) {
        bail!("timestamp authority {url} timestamped another message imprint");
    }
    if got_nonce != Some(nonce) {
        bail!("timestamp authority {url} did not echo the request's nonce");
    }
    Ok(body.to_vec())
}

/// A non-negative INTEGER in minimal DER: no leading zero byte unless the next has its top bit.
fn der_int(v: u64) -> der::Result<Int> {
    let bytes = v.to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(7);
    let mut out = bytes.get(first..).unwrap_or(&[0]).to_vec();
    if out.first().is_some_and(|b| b & 0x80 != 0) {
        out.insert(0, 0);
    }
    Int::new(&out)
}
