//! Object identifiers Sigil puts in or reads from certificates: Sigstore's Fulcio extensions under
//! 1.3.6.1.4.1.57264.1 (docs/oid-info.md of Fulcio), the CT precertificate extensions, and the
//! X.509 algorithm and usage OIDs the CA writes.

use der::asn1::ObjectIdentifier;

/// Sigstore private enterprise arc.
pub const SIGSTORE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264");
/// RFC 3161 timestamp policy of the Sigstore TSA.
pub const TSA_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.2");

// Fulcio extensions. .1–.6 hold raw bytes (no DER); .8 onwards hold a DER UTF8String.
pub const ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
pub const GITHUB_WORKFLOW_TRIGGER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.2");
pub const GITHUB_WORKFLOW_SHA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.3");
pub const GITHUB_WORKFLOW_NAME: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.4");
pub const GITHUB_WORKFLOW_REPOSITORY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.5");
pub const GITHUB_WORKFLOW_REF: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.6");
/// OtherName SAN type for `username` identities (`user!domain`).
pub const OTHERNAME_SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.7");
pub const ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
pub const BUILD_SIGNER_URI: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.9");
pub const BUILD_SIGNER_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.10");
pub const RUNNER_ENVIRONMENT: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.11");
pub const SOURCE_REPOSITORY_URI: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.12");
pub const SOURCE_REPOSITORY_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.13");
pub const SOURCE_REPOSITORY_REF: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.14");
pub const SOURCE_REPOSITORY_IDENTIFIER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.15");
pub const SOURCE_REPOSITORY_OWNER_URI: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.16");
pub const SOURCE_REPOSITORY_OWNER_IDENTIFIER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.17");
pub const BUILD_CONFIG_URI: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.18");
pub const BUILD_CONFIG_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.19");
pub const BUILD_TRIGGER: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.20");
pub const RUN_INVOCATION_URI: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.21");
pub const SOURCE_REPOSITORY_VISIBILITY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.22");
pub const DEPLOYMENT_ENVIRONMENT: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.23");
pub const TOKEN_SUBJECT: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.24");

/// RFC 6962 precertificate poison (critical, value ASN.1 NULL).
pub const CT_PRECERT_POISON: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.3");
/// RFC 6962 embedded SignedCertificateTimestampList (OCTET STRING of the TLS list).
pub const CT_PRECERT_SCTS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

// X.509 extensions and usages.
pub const SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
pub const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
pub const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
pub const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
pub const AUTHORITY_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
pub const EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
pub const KP_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
pub const KP_TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");

// Signature and key algorithms.
pub const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
pub const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
pub const ECDSA_WITH_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
pub const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
pub const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
pub const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
pub const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
pub const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
pub const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
pub const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// Fulcio extensions with the name oid-info.md gives them, in OID order.
pub const FULCIO_EXTENSIONS: &[(ObjectIdentifier, &str)] = &[
    (ISSUER_V1, "Issuer (deprecated)"),
    (
        GITHUB_WORKFLOW_TRIGGER,
        "GitHub Workflow Trigger (deprecated)",
    ),
    (GITHUB_WORKFLOW_SHA, "GitHub Workflow SHA (deprecated)"),
    (GITHUB_WORKFLOW_NAME, "GitHub Workflow Name (deprecated)"),
    (
        GITHUB_WORKFLOW_REPOSITORY,
        "GitHub Workflow Repository (deprecated)",
    ),
    (GITHUB_WORKFLOW_REF, "GitHub Workflow Ref (deprecated)"),
    (ISSUER_V2, "Issuer"),
    (BUILD_SIGNER_URI, "Build Signer URI"),
    (BUILD_SIGNER_DIGEST, "Build Signer Digest"),
    (RUNNER_ENVIRONMENT, "Runner Environment"),
    (SOURCE_REPOSITORY_URI, "Source Repository URI"),
    (SOURCE_REPOSITORY_DIGEST, "Source Repository Digest"),
    (SOURCE_REPOSITORY_REF, "Source Repository Ref"),
    (SOURCE_REPOSITORY_IDENTIFIER, "Source Repository Identifier"),
    (SOURCE_REPOSITORY_OWNER_URI, "Source Repository Owner URI"),
    (
        SOURCE_REPOSITORY_OWNER_IDENTIFIER,
        "Source Repository Owner Identifier",
    ),
    (BUILD_CONFIG_URI, "Build Config URI"),
    (BUILD_CONFIG_DIGEST, "Build Config Digest"),
    (BUILD_TRIGGER, "Build Trigger"),
    (RUN_INVOCATION_URI, "Run Invocation URI"),
    (
        SOURCE_REPOSITORY_VISIBILITY,
        "Source Repository Visibility At Signing",
    ),
    (DEPLOYMENT_ENVIRONMENT, "Deployment Environment"),
    (TOKEN_SUBJECT, "Token Subject"),
];

/// Whether a Fulcio extension stores its value as raw bytes (.1–.6) rather than a DER UTF8String.
pub fn is_raw_fulcio_extension(oid: &ObjectIdentifier) -> bool {
    [
        ISSUER_V1,
        GITHUB_WORKFLOW_TRIGGER,
        GITHUB_WORKFLOW_SHA,
        GITHUB_WORKFLOW_NAME,
        GITHUB_WORKFLOW_REPOSITORY,
        GITHUB_WORKFLOW_REF,
    ]
    .contains(oid)
}

/// The string a Fulcio extension carries: raw UTF-8 for .1–.6, the DER UTF8String from .8 on.
/// `None` when the bytes are not in the form the OID requires.
pub fn fulcio_extension_string(oid: &ObjectIdentifier, value: &[u8]) -> Option<String> {
    if is_raw_fulcio_extension(oid) {
        return String::from_utf8(value.to_vec()).ok();
    }
    use der::Decode;
    der::asn1::Utf8StringRef::from_der(value)
        .ok()
        .map(|s| s.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;

    #[test]
    fn names_cover_every_fulcio_oid_in_order() {
        let arcs: Vec<u32> = FULCIO_EXTENSIONS
            .iter()
            .map(|(o, _)| o.arcs().last().unwrap())
            .collect();
        let want: Vec<u32> = (1..=6).chain(8..=24).collect();
        assert_eq!(arcs, want);
        for (o, _) in FULCIO_EXTENSIONS {
            assert!(o.to_string().starts_with("1.3.6.1.4.1.57264.1."));
        }
    }

    #[test]
    fn extension_string_forms() {
        assert_eq!(
            fulcio_extension_string(&ISSUER_V1, b"https://issuer").as_deref(),
            Some("https://issuer")
        );
        let der = der::asn1::Utf8StringRef::new("https://issuer")
            .unwrap()
            .to_der()
            .unwrap();
        assert_eq!(der[0], 0x0c);
        assert_eq!(
            fulcio_extension_string(&ISSUER_V2, &der).as_deref(),
            Some("https://issuer")
        );
        // raw bytes where DER is required are refused
        assert_eq!(fulcio_extension_string(&ISSUER_V2, b"https://issuer"), None);
    }
}
