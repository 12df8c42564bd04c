//! Sigil client library: obtain certificates, sign, log and verify Sigstore bundles.
