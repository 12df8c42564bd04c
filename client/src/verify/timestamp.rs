//! Verifying an RFC 3161 timestamp from a bundle: the TSA's CMS signature, its chain to a trusted
//! timestamp authority, and the message imprint over the bundle's signature. Yields a trusted
//! signing time for logs that have none (Rekor v2).

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Tagged};
use sigil_core::crypto::DigestAlgorithm;
use sigil_core::oid;
use sigil_core::rfc3161::{
    ATTR_CONTENT_TYPE as CONTENT_TYPE, ATTR_MESSAGE_DIGEST as MESSAGE_DIGEST,
    ATTR_SIGNING_CERTIFICATE as SIGNING_CERTIFICATE,
    ATTR_SIGNING_CERTIFICATE_V2 as SIGNING_CERTIFICATE_V2, ID_CT_TST_INFO as TST_INFO,
    ID_SIGNED_DATA as SIGNED_DATA, SHA256, SHA384, SHA512, TimeStampResp, TstInfo, status_granted,
};
use sigil_core::trust::TrustedRoot;
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::error::VerifyError;
use super::x509::{ParsedCert, fmt_time};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");

/// The message imprint and nonce of a timestamp response's TSTInfo.
pub fn tst_imprint_and_nonce(ts: &[u8]) -> Result<(Vec<u8>, Option<u64>), VerifyError> {
    let tst = parse_tst_info(&tst_info(&signed_data(&token(ts)?)?)?)?;
    let nonce = tst.nonce.and_then(|n| {
        let b = n.as_bytes();
        let b = b.strip_prefix(&[0]).unwrap_or(b);
        let mut v = [0u8; 8];
        let start = 8usize.checked_sub(b.len())?;
        v.get_mut(start..)?.copy_from_slice(b);
        Some(u64::from_be_bytes(v))
    });
    Ok((
        tst.message_imprint.hashed_message.as_bytes().to_vec(),
        nonce,
    ))
}

fn parse_tst_info(der_bytes: &[u8]) -> Result<TstInfo, VerifyError> {
    TstInfo::from_der(der_bytes).map_err(|e| err(format!("TSTInfo: {e}")))
}

fn signed_data(ci: &ContentInfo) -> Result<SignedData, VerifyError> {
    ci.content
        .decode_as()
        .map_err(|e| err(format!("SignedData: {e}")))
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
    let resp =
        TimeStampResp::from_der(der_bytes).map_err(|e| err(format!("not a TimeStampResp: {e}")))?;
    // 0 granted, 1 grantedWithMods; anything else is a refusal whatever else it carries.
    if !status_granted(resp.status.status) {
        return Err(err(format!(
            "TimeStampResp status is {}, not granted",
            resp.status.status
        )));
    }
    let ci = resp
        .time_stamp_token
        .ok_or_else(|| err("TimeStampResp has no timeStampToken (the TSA refused?)"))?
        .decode_as::<ContentInfo>()
        .map_err(|e| err(format!("timeStampToken: {e}")))?;
    if ci.content_type != SIGNED_DATA {
        return Err(err(format!(
            "timeStampToken content type is {}, not SignedData",
            ci.content_type
        )));
    }
    Ok(ci)
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
    if sd.encap_content_info.econtent_type != TST_INFO {
        return Err(err(format!(
            "token content type is {}, not TSTInfo",
            sd.encap_content_info.econtent_type
        )));
    }
    let tst_der = tst_info(&sd)?;
    let tst = parse_tst_info(&tst_der)?;
    if tst.version != 1 {
        return Err(err("TSTInfo version is not 1"));
    }
    let imprint = &tst.message_imprint;
    let t = tst.gen_time_unix();

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

    if sd.signer_infos.0.len() != 1 {
        return Err(err(format!(
            "token has {} signers; exactly one is expected",
            sd.signer_infos.0.len()
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
    let content_type = attrs
        .iter()
        .find(|a| a.oid == CONTENT_TYPE)
        .and_then(|a| a.values.iter().next())
        .and_then(|v| v.decode_as::<ObjectIdentifier>().ok());
    if content_type != Some(TST_INFO) {
        return Err(err("signed contentType attribute is not TSTInfo"));
    }
    let ess = ess_cert_hash(attrs)?;
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
    check_unsigned_parts(&sd, si, md_alg)?;
    // The signature algorithm names its digest, or (rsaEncryption, Ed25519) leaves it to the
    // signer's digest algorithm; any other is refused rather than guessed.
    let sig_alg = match digest_for(&si.signature_algorithm.oid) {
        Some(d) => d,
        None if si.signature_algorithm.oid == RSA_ENCRYPTION
            || si.signature_algorithm.oid == oid::ED25519 =>
        {
            md_alg
        }
        None => {
            return Err(err(format!(
                "unsupported signature algorithm {}",
                si.signature_algorithm.oid
            )));
        }
    };

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
        if !signer_is(&si.sid, leaf) {
            reasons.push(format!(
                "{label}: the token's signer identifier names another certificate"
            ));
            continue;
        }
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
        let leaf_hash = match ess.0 {
            EssHash::Sha1 => sigil_core::crypto::sha1_for_legacy_ids(&leaf.der),
            EssHash::Sha2(a) => a.digest(&leaf.der),
        };
        if leaf_hash != ess.1 {
            reasons.push(format!(
                "{label}: the signing-certificate attribute names another certificate"
            ));
            continue;
        }
        if let Err(r) = check_embedded_certs(&sd, &chain) {
            reasons.push(format!("{label}: {r}"));
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

enum EssHash {
    Sha1,
    Sha2(DigestAlgorithm),
}

/// The certificate hash of the signed ESS signing-certificate attribute (v2, RFC 5035, or v1,
/// RFC 2634), which binds the signature to the TSA's certificate; RFC 3161 requires one.
fn ess_cert_hash(
    attrs: &cms::signed_data::SignedAttributes,
) -> Result<(EssHash, Vec<u8>), VerifyError> {
    let bad = |w: &str| err(format!("signing-certificate attribute: {w}"));
    let (v2, attr) = match (
        attrs.iter().find(|a| a.oid == SIGNING_CERTIFICATE_V2),
        attrs.iter().find(|a| a.oid == SIGNING_CERTIFICATE),
    ) {
        (Some(a), _) => (true, a),
        (None, Some(a)) => (false, a),
        (None, None) => {
            return Err(err(
                "signer has no signing-certificate attribute (RFC 3161 requires it)",
            ));
        }
    };
    let value = attr.values.iter().next().ok_or_else(|| bad("empty"))?;
    let outer: Vec<Any> = value.decode_as().map_err(|e| bad(&e.to_string()))?;
    let certs: Vec<Any> = outer
        .first()
        .ok_or_else(|| bad("no certificate IDs"))?
        .decode_as()
        .map_err(|e| bad(&e.to_string()))?;
    let id: Vec<Any> = certs
        .first()
        .ok_or_else(|| bad("no certificate IDs"))?
        .decode_as()
        .map_err(|e| bad(&e.to_string()))?;
    let (alg, hash) = match (v2, id.first()) {
        (true, Some(a)) if a.tag() == der::Tag::Sequence => {
            let alg: AlgorithmIdentifierOwned = a.decode_as().map_err(|e| bad(&e.to_string()))?;
            let d = digest_for(&alg.oid)
                .ok_or_else(|| bad(&format!("unsupported hash {}", alg.oid)))?;
            (EssHash::Sha2(d), id.get(1))
        }
        (true, first) => (EssHash::Sha2(DigestAlgorithm::Sha256), first),
        (false, first) => (EssHash::Sha1, first),
    };
    let hash: OctetString = hash
        .ok_or_else(|| bad("no certificate hash"))?
        .decode_as()
        .map_err(|e| bad(&e.to_string()))?;
    Ok((alg, hash.as_bytes().to_vec()))
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

/// The parts of the token outside the signature must say what the signature does: SignedData
/// version 3 (RFC 5652 §5.1, TSTInfo content), a digestAlgorithms set naming only the signer's
/// digest, no revocation data or unsigned attributes this verifier would ignore.
fn check_unsigned_parts(
    sd: &SignedData,
    si: &cms::signed_data::SignerInfo,
    md_alg: DigestAlgorithm,
) -> Result<(), VerifyError> {
    if sd.version != cms::content_info::CmsVersion::V3 {
        return Err(err(format!(
            "SignedData version is {:?}, not 3",
            sd.version
        )));
    }
    if sd.digest_algorithms.len() != 1
        || sd
            .digest_algorithms
            .iter()
            .any(|a| digest_for(&a.oid) != Some(md_alg))
    {
        return Err(err(
            "SignedData digestAlgorithms does not name exactly the signer's digest",
        ));
    }
    if sd.crls.is_some() {
        return Err(err(
            "the token carries revocation data, which is not checked",
        ));
    }
    if si.unsigned_attrs.is_some() {
        return Err(err(
            "the signer has unsigned attributes, which are not checked",
        ));
    }
    let want_version = match si.sid {
        cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(_) => {
            cms::content_info::CmsVersion::V1
        }
        cms::signed_data::SignerIdentifier::SubjectKeyIdentifier(_) => {
            cms::content_info::CmsVersion::V3
        }
    };
    if si.version != want_version {
        return Err(err(format!(
            "SignerInfo version {:?} does not fit its signer identifier",
            si.version
        )));
    }
    Ok(())
}

/// Whether the signer identifier names `cert` (issuer and serial, or subject key identifier).
fn signer_is(sid: &cms::signed_data::SignerIdentifier, cert: &ParsedCert) -> bool {
    let tbs = &cert.cert.tbs_certificate;
    match sid {
        cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(ias) => {
            ias.issuer == tbs.issuer && ias.serial_number == tbs.serial_number
        }
        cms::signed_data::SignerIdentifier::SubjectKeyIdentifier(ski) => matches!(
            tbs.get::<x509_cert::ext::pkix::SubjectKeyIdentifier>(),
            Ok(Some((_, own))) if own.0 == ski.0
        ),
    }
}

/// Certificates the token carries are not trusted on their own; each must be one of the trusted
/// TSA chain's, byte for byte, or the token is refused rather than carrying unchecked data.
fn check_embedded_certs(sd: &SignedData, chain: &[ParsedCert]) -> Result<(), String> {
    let Some(set) = &sd.certificates else {
        return Ok(());
    };
    for c in set.0.iter() {
        let der = match c {
            cms::cert::CertificateChoices::Certificate(cert) => cert
                .to_der()
                .map_err(|e| format!("embedded certificate: {e}"))?,
            _ => return Err("the token embeds a certificate of an unsupported kind".into()),
        };
        if !chain.iter().any(|t| t.der == der) {
            return Err(
                "the token embeds a certificate that is not in the trusted TSA chain".into(),
            );
        }
    }
    Ok(())
}

fn check_tsa_chain(chain: &[ParsedCert], t: i64) -> Result<(), String> {
    for (i, c) in chain.iter().enumerate() {
        super::x509::check_extensions(c)?;
        if !c.valid_at(t) {
            return Err(format!("{:?} is not valid at {}", c.subject(), fmt_time(t)));
        }
        // The last certificate is the trust anchor, trusted for being in the trusted root
        // rather than for its self-signature (see `x509::chain_to`).
        match chain.get(i + 1) {
            Some(issuer) => c.check_trusted_link(issuer)?,
            None => c.check_self_issued()?,
        }
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
