//! RFC 3161 timestamps in bundles: requesting one over a signature from a TSA, and verifying one
//! (the TSA's CMS signature, its chain to a trusted timestamp authority, and the message imprint
//! over the bundle's signature). Yields a trusted signing time for logs that have none (Rekor v2).

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::asn1::{GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Tagged};
use sigil_core::crypto::DigestAlgorithm;
use sigil_core::oid;
use sigil_core::trust::TrustedRoot;
use spki_alg::AlgorithmIdentifierOwned;

use crate::verify::VerifyError;
use crate::x509::{ParsedCert, fmt_time};

use x509_cert::spki as spki_alg;

const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const SHA256_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");

#[derive(der::Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

/// `TimeStampReq` (RFC 3161 §2.4.1), without policy or extensions.
#[derive(der::Sequence)]
struct TimeStampReq {
    version: u8,
    message_imprint: MessageImprint,
    nonce: u64,
    cert_req: bool,
}

/// Asks the TSA at `url` (the full timestamp endpoint) to timestamp the SHA-256 of `signature`;
/// returns the DER `TimeStampResp`, as bundles carry it, after checking that it granted the
/// request over this imprint and nonce.
pub fn request_timestamp(url: &str, signature: &[u8]) -> anyhow::Result<Vec<u8>> {
    use anyhow::{Context, bail};
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
        nonce,
        cert_req: true,
    }
    .to_der()?;
    let resp = crate::sign::http()?
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
    let parts: Vec<Any> = Vec::from_der(&body)
        .map_err(|e| anyhow::anyhow!("timestamp authority {url}: not a TimeStampResp: {e}"))?;
    let granted = parts
        .first()
        .and_then(|s| s.decode_as::<Vec<Any>>().ok())
        .and_then(|s| s.first().and_then(|v| v.decode_as::<u8>().ok()));
    // 0 granted, 1 grantedWithMods; anything else is a refusal.
    if !matches!(granted, Some(0 | 1)) {
        bail!("timestamp authority {url} refused the request (status {granted:?})");
    }
    let (imprint, got_nonce) = tst_imprint_and_nonce(&body).map_err(|e| anyhow::anyhow!("{e}"))?;
    if imprint != DigestAlgorithm::Sha256.digest(signature) {
        bail!("timestamp authority {url} timestamped another message imprint");
    }
    if got_nonce != Some(nonce) {
        bail!("timestamp authority {url} did not echo the request's nonce");
    }
    Ok(body.to_vec())
}

/// The message imprint and nonce of a timestamp response's TSTInfo.
fn tst_imprint_and_nonce(ts: &[u8]) -> Result<(Vec<u8>, Option<u64>), VerifyError> {
    let tst = tst_info(&signed_data(&token(ts)?)?)?;
    let parts: Vec<Any> = Vec::from_der(&tst).map_err(|e| err(format!("TSTInfo: {e}")))?;
    let imprint = message_imprint(&parts)?;
    // After genTime: accuracy (SEQUENCE), ordering (BOOLEAN), then nonce, the only INTEGER.
    let nonce = parts
        .iter()
        .skip(5)
        .find(|a| a.tag() == der::Tag::Integer)
        .and_then(|a| a.decode_as::<u64>().ok());
    Ok((imprint.hashed_message.as_bytes().to_vec(), nonce))
}

fn signed_data(ci: &ContentInfo) -> Result<SignedData, VerifyError> {
    ci.content
        .decode_as()
        .map_err(|e| err(format!("SignedData: {e}")))
}

fn message_imprint(tst_parts: &[Any]) -> Result<MessageImprint, VerifyError> {
    tst_parts
        .get(2)
        .ok_or_else(|| err("TSTInfo has no messageImprint"))?
        .decode_as()
        .map_err(|e| err(format!("messageImprint: {e}")))
}

/// The DER TSTInfo inside a timestamp token's SignedData.
fn tst_info(sd: &SignedData) -> Result<Vec<u8>, VerifyError> {
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| err("token has no TSTInfo"))?;
    Ok(econtent
        .decode_as::<OctetString>()
        .map_err(|e| err(format!("TSTInfo wrapper: {e}")))?
        .as_bytes()
        .to_vec())
}

fn err(s: impl Into<String>) -> VerifyError {
    VerifyError::Timestamp(s.into())
}

fn digest_for(oid: &ObjectIdentifier) -> Option<DigestAlgorithm> {
    if [SHA256, oid::ECDSA_WITH_SHA256, SHA256_RSA].contains(oid) {
        Some(DigestAlgorithm::Sha256)
    } else if [SHA384, oid::ECDSA_WITH_SHA384, SHA384_RSA].contains(oid) {
        Some(DigestAlgorithm::Sha384)
    } else if [SHA512, oid::ECDSA_WITH_SHA512, SHA512_RSA].contains(oid) {
        Some(DigestAlgorithm::Sha512)
    } else {
        None
    }
}

/// The timestamp token inside a `TimeStampResp`, or the token itself.
fn token(der_bytes: &[u8]) -> Result<ContentInfo, VerifyError> {
    if let Ok(ci) = ContentInfo::from_der(der_bytes)
        && ci.content_type == SIGNED_DATA
    {
        return Ok(ci);
    }
    let resp: Vec<Any> =
        Vec::from_der(der_bytes).map_err(|e| err(format!("not a TimeStampResp: {e}")))?;
    let tok = resp
        .get(1)
        .ok_or_else(|| err("TimeStampResp has no timeStampToken (the TSA refused?)"))?;
    tok.decode_as::<ContentInfo>()
        .map_err(|e| err(format!("timeStampToken: {e}")))
}

/// Verifies one RFC 3161 timestamp over `signature` against the trusted root's timestamp
/// authorities; returns the time it attests (Unix seconds).
pub fn verify_timestamp(
    ts: &[u8],
    signature: &[u8],
    root: &TrustedRoot,
) -> Result<i64, VerifyError> {
    let ci = token(ts)?;
    let sd = signed_data(&ci)?;
    let tst_der = tst_info(&sd)?;
    let tst: Vec<Any> = Vec::from_der(&tst_der).map_err(|e| err(format!("TSTInfo: {e}")))?;
    let imprint = message_imprint(&tst)?;
    let gen_time: GeneralizedTime = tst
        .get(4)
        .ok_or_else(|| err("TSTInfo has no genTime"))?
        .decode_as()
        .map_err(|e| err(format!("genTime: {e}")))?;
    let t = i64::try_from(gen_time.to_unix_duration().as_secs()).unwrap_or(i64::MAX);

    // The imprint must be the digest of the bundle's signature.
    let alg = digest_for(&imprint.hash_algorithm.oid).ok_or_else(|| {
        err(format!(
            "unsupported imprint algorithm {}",
            imprint.hash_algorithm.oid
        ))
    })?;
    let want = alg.digest(signature);
    if imprint.hashed_message.as_bytes() != want.as_slice() {
        return Err(err(format!(
            "message imprint {} is not the {} of the bundle's signature ({})",
            hex::encode(imprint.hashed_message.as_bytes()),
            alg.name(),
            hex::encode(&want)
        )));
    }

    let si = sd
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or_else(|| err("token has no signer"))?;
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| err("signer has no signed attributes"))?;
    let md_alg = digest_for(&si.digest_alg.oid)
        .ok_or_else(|| err(format!("unsupported digest {}", si.digest_alg.oid)))?;
    let md = attrs
        .iter()
        .find(|a| a.oid == MESSAGE_DIGEST)
        .and_then(|a| a.values.iter().next())
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or_else(|| err("signed attributes lack messageDigest"))?;
    if md.as_bytes() != md_alg.digest(&tst_der).as_slice() {
        return Err(err("messageDigest attribute does not match the TSTInfo"));
    }
    // The signature covers the attributes exactly as the TSA encoded them; re-encoding could
    // reorder the SET.
    let signed = signed_attrs_der(&ci.content)?;
    let sig = si.signature.as_bytes();
    let sig_alg = digest_for(&si.signature_algorithm.oid).unwrap_or(md_alg);

    // Some trusted timestamp authority, valid at genTime, must have signed it.
    let mut reasons = Vec::new();
    for (i, ta) in root.timestamp_authorities.iter().enumerate() {
        let label = if ta.uri.is_empty() {
            format!("TSA #{i}")
        } else {
            ta.uri.clone()
        };
        if !ta.valid_for.contains(t) {
            reasons.push(format!("{label}: not valid at {}", fmt_time(t)));
            continue;
        }
        let chain: Result<Vec<ParsedCert>, _> = ta
            .cert_chain
            .certificates
            .iter()
            .map(|c| ParsedCert::from_der(&c.raw_bytes))
            .collect();
        let chain = match chain {
            Ok(c) => c,
            Err(e) => {
                reasons.push(format!("{label}: {e}"));
                continue;
            }
        };
        let Some(leaf) = chain.first() else { continue };
        // The signer's digest algorithm applies to RSA too (TSAs often sign SHA-512 with RSA).
        let ok = match leaf.key.algorithm() {
            sigil_core::crypto::KeyAlgorithm::Ed25519 => leaf.key.verify(&signed, sig),
            _ => leaf
                .key
                .verify_prehashed(sig_alg, &sig_alg.digest(&signed), sig),
        };
        if let Err(e) = ok {
            reasons.push(format!(
                "{label}: signature does not verify with its key: {e}"
            ));
            continue;
        }
        if let Err(r) = check_tsa_chain(&chain, t) {
            reasons.push(format!("{label}: {r}"));
            continue;
        }
        return Ok(t);
    }
    Err(err(format!(
        "not signed by a trusted timestamp authority ({})",
        if reasons.is_empty() {
            "the trusted root lists none".into()
        } else {
            reasons.join("; ")
        }
    )))
}

/// The DER of the first signer's signed attributes as they appear in `signed_data`, retagged
/// from `[0] IMPLICIT` to `SET OF` as RFC 5652 §5.4 prescribes for the signature input.
fn signed_attrs_der(signed_data: &Any) -> Result<Vec<u8>, VerifyError> {
    let parts: Vec<Any> = signed_data
        .decode_as()
        .map_err(|e| err(format!("SignedData: {e}")))?;
    let infos = parts
        .last()
        .filter(|a| a.tag() == der::Tag::Set)
        .ok_or_else(|| err("SignedData has no signerInfos"))?;
    let mut r = der::SliceReader::new(infos.value()).map_err(|e| err(e.to_string()))?;
    let info = Any::decode(&mut r).map_err(|e| err(format!("SignerInfo: {e}")))?;
    let mut r = der::SliceReader::new(info.value()).map_err(|e| err(e.to_string()))?;
    let attrs_tag = der::Tag::ContextSpecific {
        constructed: true,
        number: der::TagNumber::N0,
    };
    while !der::Reader::is_finished(&r) {
        let field = Any::decode(&mut r).map_err(|e| err(format!("SignerInfo: {e}")))?;
        if field.tag() == attrs_tag {
            let mut out = field.to_der().map_err(|e| err(e.to_string()))?;
            if let Some(first) = out.first_mut() {
                *first = 0x31;
            }
            return Ok(out);
        }
    }
    Err(err("signer has no signed attributes"))
}

fn check_tsa_chain(chain: &[ParsedCert], t: i64) -> Result<(), String> {
    for (i, c) in chain.iter().enumerate() {
        if !c.valid_at(t) {
            return Err(format!("{:?} is not valid at {}", c.subject(), fmt_time(t)));
        }
        let issuer = chain.get(i + 1).unwrap_or(c);
        c.check_issued_by(issuer)?;
    }
    let leaf = chain.first().ok_or("empty chain")?;
    match leaf
        .cert
        .tbs_certificate
        .get::<x509_cert::ext::pkix::ExtendedKeyUsage>()
    {
        Ok(Some((_, eku))) if eku.0.contains(&oid::KP_TIME_STAMPING) => Ok(()),
        _ => Err("TSA certificate lacks the timeStamping extended key usage".into()),
    }
}
