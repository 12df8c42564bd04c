//! RFC 3161 timestamps in bundles: the TSA's CMS signature, its chain to a trusted timestamp
//! authority, and the message imprint over the bundle's signature. Yields a trusted signing time
//! for logs that have none (Rekor v2).

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::asn1::{GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode};
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

#[derive(der::Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

fn err(s: impl Into<String>) -> VerifyError {
    VerifyError::Timestamp(s.into())
}

fn digest_for(oid: &ObjectIdentifier) -> Option<DigestAlgorithm> {
    if *oid == SHA256 || *oid == oid::ECDSA_WITH_SHA256 {
        Some(DigestAlgorithm::Sha256)
    } else if *oid == SHA384 || *oid == oid::ECDSA_WITH_SHA384 {
        Some(DigestAlgorithm::Sha384)
    } else if *oid == SHA512 || *oid == oid::ECDSA_WITH_SHA512 {
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
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| err(format!("SignedData: {e}")))?;
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| err("token has no TSTInfo"))?;
    let tst_der = econtent
        .decode_as::<OctetString>()
        .map_err(|e| err(format!("TSTInfo wrapper: {e}")))?
        .as_bytes()
        .to_vec();
    let tst: Vec<Any> = Vec::from_der(&tst_der).map_err(|e| err(format!("TSTInfo: {e}")))?;
    let imprint: MessageImprint = tst
        .get(2)
        .ok_or_else(|| err("TSTInfo has no messageImprint"))?
        .decode_as()
        .map_err(|e| err(format!("messageImprint: {e}")))?;
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
    let signed = attrs.to_der().map_err(|e| err(e.to_string()))?;
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
        let ok = match leaf.key.algorithm() {
            sigil_core::crypto::KeyAlgorithm::EcdsaP256
            | sigil_core::crypto::KeyAlgorithm::EcdsaP384 => {
                leaf.key
                    .verify_prehashed(sig_alg, &sig_alg.digest(&signed), sig)
            }
            _ => leaf.key.verify(&signed, sig),
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
