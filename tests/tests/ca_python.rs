//! sigstore-python's own Fulcio client obtains a certificate from Sigil's CA (a CSR built exactly
//! as `sigstore sign` builds it, Bearer token, `Accept: application/pem-certificate-chain`) and
//! sigstore-python's own SCT verification accepts the embedded SCT against the CT log key. The
//! full `sigstore sign` flow (with the transparency log) is the interop tests' job.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sigil_tests::ca as support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sigil_server::ca::{CaConfig, IssuerConfig, IssuerType};
use support::*;

const SCRIPT: &str = r#"
import base64, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore_models.common import v1 as common_v1
from sigstore._internal.fulcio.client import FulcioClient, FulcioClientError
from sigstore._internal.sct import verify_sct
from sigstore._internal.trust import Keyring
from sigstore.oidc import IdentityToken

ca_url, token, ct_key_b64, expect = sys.argv[1:5]
key = ec.generate_private_key(ec.SECP256R1())
csr = (
    x509.CertificateSigningRequestBuilder()
    .subject_name(x509.Name([]))
    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    .sign(key, hashes.SHA256())
)
client = FulcioClient(ca_url)
try:
    resp = client.signing_cert.post(csr, IdentityToken(token))
except FulcioClientError as e:
    print("REFUSED:", e)
    sys.exit(0 if expect == "refused" else 1)
assert resp.cert.public_key().public_numbers() == key.public_key().public_numbers()
ring = Keyring([common_v1.PublicKey(raw_bytes=ct_key_b64,
                                    key_details=common_v1.PublicKeyDetails.PKIX_ECDSA_P256_SHA_256)])
verify_sct(resp.cert, resp.chain, ring)
san = resp.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
print("ISSUED", san.get_values_for_type(x509.RFC822Name))
sys.exit(0 if expect == "issued" else 1)
"#;

async fn run_script(ca: &TestCa, token: &str, expect: &str) -> (bool, String) {
    let python = sigil_tests::venv_tool("python")
        .unwrap_or_else(|e| panic!("sigstore-python is needed for this test: {e:#}"));
    let ct_key = STANDARD.encode(ca.ct.as_ref().unwrap().public_key().spki_der());
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg("-c")
        .arg(SCRIPT)
        .args([&ca.url, token, &ct_key, expect]);
    let out = sigil_tests::run(cmd, Duration::from_secs(120))
        .await
        .unwrap();
    (out.success(), format!("{out}"))
}

#[tokio::test]
async fn sigstore_python_fulcio_client_gets_a_certificate_with_a_valid_sct() {
    let idp = sigil_tests::OidcProvider::start()
        .await
        .unwrap_or_else(|e| panic!("the test OpenID Provider must start: {e:#}"));
    let config = CaConfig {
        issuers: vec![IssuerConfig::exact(idp.issuer(), IssuerType::Email)],
        ..CaConfig::default()
    };
    let ca = TestCa::start(config, true).await;
    let token = idp.token("alice", Some("alice@example.com")).await.unwrap();
    let (ok, out) = run_script(&ca, &token, "issued").await;
    assert!(
        ok,
        "sigstore-python could not get a verified certificate:\n{out}"
    );
    assert!(out.contains("ISSUED ['alice@example.com']"), "{out}");

    // An e-mail the provider did not verify: refused. (sigstore-python 4.5 drops the message of
    // a 4xx: `if http_error.response` is false for an error response.)
    let resp = reqwest::Client::new()
        .post(format!("{}/token", idp.issuer()))
        .form(&[
            ("grant_type", sigil_tests::ID_TOKEN_GRANT),
            ("client_id", "sigstore"),
            ("subject", "bob"),
            ("email", "bob@example.com"),
            ("email_verified", "false"),
        ])
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    let (ok, out) = run_script(&ca, v["id_token"].as_str().unwrap(), "refused").await;
    assert!(ok, "sigstore-python must be refused:\n{out}");
    assert!(out.contains("REFUSED"), "{out}");
}
