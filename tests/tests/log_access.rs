//! Access to the logs, in process: with `[read_access]` on, every route the router serves is
//! either on the public list below (trust files, TUF, CA, TSA, health), a log write, or
//! answers 401 without a credential and 403 with one the claim rule refuses; a read route
//! added to a log later is protected by the layer on the log's router, and any other new
//! route fails this test until it is classified. Bad reader credentials (expired, wrong
//! audience, wrong issuer, `alg: none`, HMAC, forged signature, unknown static token) are each
//! refused. Write admission: an allow-listed key is admitted, another key or a certificate of
//! another CA is refused with 403 naming the rule, and a writer token admits by itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{Value, json};
use sigil_core::crypto::{KeyAlgorithm, SigningKey};
use sigil_tests::ca::{MockIdp, TestKey, email_claims, raw_jwt};
use sigil_tests::log::{Signer, hashedrekord, test_certificate};

/// Routes readable without a credential whatever `[read_access]` says: what a client needs
/// before it has anything (trust, TUF, the CA and TSA), and the operator's endpoints.
const PUBLIC: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/openapi.json",
    "/api/v1/trust/",
    "/tuf/",
    "/api/v1/signingCert",
    "/api/v2/signingCert",
    "/api/v2/trustBundle",
    "/api/v2/configuration",
    "/api/v1/rootCert",
    "/api/v1/timestamp",
    "/oidc/",
    // The explorer's page: no log data in it; it reads the logs through the protected routes.
    "/ui",
];

/// Public routes matched exactly (a prefix would match everything).
const PUBLIC_EXACT: &[&str] = &["/"];

/// The logs' write routes: governed by admission, not by read access.
const WRITES: &[(&str, &str)] = &[
    ("POST", "/api/v1/log/entries"),
    ("POST", "/api/v2/log/entries"),
    ("POST", "/ct/v1/add-chain"),
    ("POST", "/ct/v1/add-pre-chain"),
];

const READER_TOKEN: &str = "reader-0123456789abcdef0123456789";
const WRITER_TOKEN: &str = "writer-0123456789abcdef0123456789";
const READER: &str = "reader@example.com";

struct Served {
    url: String,
    http: reqwest::Client,
}

impl Served {
    async fn call(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        let url = format!("{}{path}", self.url);
        let mut req = match method {
            "POST" => self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body("{}"),
            _ => self.http.get(&url),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    async fn post_entry(&self, entry: &Value, token: Option<&str>) -> (u16, String) {
        let mut req = self
            .http
            .post(format!("{}/api/v1/log/entries", self.url))
            .json(entry);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

/// A concrete path for a route pattern.
fn concrete(path: &str) -> String {
    path.replace("{id}", &"0".repeat(64))
        .replace("{*path}", "0/000")
        .replace("{shard}", "no-such-shard")
        .replace("{file}", "root.json")
}

async fn start(idp: &MockIdp, allowed: &SigningKey) -> (Served, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    sigil_server::init::init(dir.path(), &url, true).unwrap();
    std::fs::write(
        dir.path().join("readers.txt"),
        format!("# who may read\n{READER_TOKEN}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("writers.txt"), format!("{WRITER_TOKEN}\n")).unwrap();
    std::fs::write(
        dir.path().join("allowed.pem"),
        allowed.public_key().to_pem(),
    )
    .unwrap();
    let mut cfg = sigil_server::config::Config::load(Some(&dir.path().join("sigil.toml"))).unwrap();
    cfg.log.enabled = true;
    cfg.ct.enabled = true;
    cfg.ca.enabled = true;
    cfg.rekor_v2.enabled = true;
    cfg.tsa.enabled = true;
    cfg.dev_oidc.enabled = true;
    cfg.read_access.enabled = true;
    cfg.read_access.readers.tokens_file = "readers.txt".into();
    cfg.read_access.readers.oidc_issuer = Some(idp.issuer("readers"));
    cfg.read_access.readers.claim_values = vec![READER.into(), "*@readers.example.com".into()];
    cfg.log.admission.enabled = true;
    cfg.log.admission.allowed_keys = "allowed.pem".into();
    cfg.log.admission.writers.tokens_file = "writers.txt".into();
    cfg.validate().unwrap();
    let service = sigil_server::app::build(&cfg, dir.path()).await.unwrap();
    let router = service.router;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let served = Served {
        url,
        http: reqwest::Client::new(),
    };
    // Keep the route list for the table.
    ROUTES
        .set(
            service
                .routes
                .iter()
                .map(|r| (r.method.to_string(), r.path.to_string()))
                .collect(),
        )
        .ok();
    (served, dir)
}

static ROUTES: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

#[tokio::test(flavor = "multi_thread")]
async fn every_read_route_needs_a_reader_and_writes_pass_admission() {
    sigil_tests::install_crypto_provider();
    let key = TestKey::new("k1", KeyAlgorithm::EcdsaP256);
    let idp = MockIdp::start(&[&key]).await;
    let iss = idp.issuer("readers");
    let allowed = Signer::new(KeyAlgorithm::EcdsaP256).unwrap();
    let (s, _dir) = start(&idp, &allowed.key).await;
    let routes = ROUTES.get().unwrap().clone();

    let good = key.sign(&email_claims(&iss, READER));
    let pattern_good = key.sign(&email_claims(&iss, "ops@readers.example.com"));
    let outsider = key.sign(&email_claims(&iss, "someone@elsewhere.example"));

    // The route table.
    let (mut protected, mut public, mut writes) = (0, 0, 0);
    for (method, path) in &routes {
        let p = concrete(path);
        let (anon, body) = s.call(method, &p, None).await;
        if WRITES.iter().any(|(m, w)| m == method && w == path) {
            assert_ne!(
                anon, 401,
                "{method} {path} is a write: admission decides, not read access"
            );
            writes += 1;
            continue;
        }
        if PUBLIC.iter().any(|pre| path.starts_with(pre)) || PUBLIC_EXACT.contains(&path.as_str()) {
            assert!(
                anon != 401 && anon != 403,
                "{method} {path} must stay public, got {anon}: {body}"
            );
            public += 1;
            continue;
        }
        assert_eq!(
            anon, 401,
            "{method} {path} answered {anon} without a credential; a log read route must need \
             a reader credential (or, if it is public by design, be listed in PUBLIC): {body}"
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], 401, "{body}");
        assert!(v["message"].as_str().unwrap().contains("reader credential"));
        let (denied, body) = s.call(method, &p, Some(&outsider)).await;
        assert_eq!(
            denied, 403,
            "{method} {path} with a refused identity: {body}"
        );
        for t in [READER_TOKEN, good.as_str(), pattern_good.as_str()] {
            let (ok, body) = s.call(method, &p, Some(t)).await;
            assert!(
                ok != 401 && ok != 403,
                "{method} {path} refused a good reader credential: {ok} {body}"
            );
        }
        protected += 1;
    }
    println!("{protected} protected read routes, {public} public, {writes} writes");
    assert!(
        protected >= 20,
        "only {protected} protected routes: {routes:?}"
    );
    assert_eq!(writes, WRITES.len());

    // Bad reader credentials, each refused with 401.
    let t = sigil_tests::ca::now();
    let other = TestKey::new("k1", KeyAlgorithm::EcdsaP256);
    let mut expired = email_claims(&iss, READER);
    expired["iat"] = json!(t - 7200);
    expired["nbf"] = json!(t - 7200);
    expired["exp"] = json!(t - 3600);
    let mut wrong_aud = email_claims(&iss, READER);
    wrong_aud["aud"] = json!("someone-else");
    let wrong_iss = email_claims(&idp.issuer("elsewhere"), READER);
    let claims = email_claims(&iss, READER);
    let alg_none = raw_jwt(&json!({"alg": "none", "kid": "k1"}), &claims, b"");
    let hmac = {
        let h = jsonwebtoken::Header {
            kid: Some("k1".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        };
        jsonwebtoken::encode(
            &h,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key.public_pem().as_bytes()),
        )
        .unwrap()
    };
    let mut unverified = email_claims(&iss, READER);
    unverified["email_verified"] = json!(false);
    let cases: Vec<(&str, String, u16)> = vec![
        ("expired", key.sign(&expired), 401),
        ("wrong audience", key.sign(&wrong_aud), 401),
        ("wrong issuer", key.sign(&wrong_iss), 401),
        ("alg none", alg_none, 401),
        ("HMAC with the public key", hmac, 401),
        ("forged signature", other.sign(&claims), 401),
        (
            "unknown static token",
            "reader-not-a-token-0123456789".into(),
            401,
        ),
        ("unverified e-mail", key.sign(&unverified), 403),
        ("not an allowed identity", outsider.clone(), 403),
        ("good ID token", good.clone(), 200),
        ("good static token", READER_TOKEN.into(), 200),
    ];
    for (name, token, want) in &cases {
        let (got, body) = s.call("GET", "/api/v1/log", Some(token)).await;
        assert_eq!(got, *want, "{name}: {body}");
        assert!(
            !body.contains(token.as_str()) || token.is_empty(),
            "{name}: the answer echoes the token"
        );
    }
    println!(
        "{} credential cases refused or accepted as expected",
        cases.len()
    );

    // Write admission on the Rekor v1 log.
    let (entry, _) = allowed.hashedrekord(b"allowed key").unwrap();
    let (st, body) = s.post_entry(&entry, None).await;
    assert_eq!(st, 201, "an allow-listed key: {body}");
    let stranger = Signer::new(KeyAlgorithm::EcdsaP256).unwrap();
    let (entry, _) = stranger.hashedrekord(b"other key").unwrap();
    let (st, body) = s.post_entry(&entry, None).await;
    assert_eq!(st, 403, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let m = v["message"].as_str().unwrap();
    assert!(
        m.contains("admission policy") && m.contains("not in the allow list"),
        "{m}"
    );
    let (st, body) = s
        .post_entry(&entry, Some("writer-wrong-0123456789abcdef"))
        .await;
    assert_eq!(st, 403, "a wrong writer token: {body}");
    assert!(body.contains("writer credential"), "{body}");
    let (st, body) = s.post_entry(&entry, Some(WRITER_TOKEN)).await;
    assert_eq!(st, 201, "a writer token admits any signer: {body}");

    // A certificate this deployment's CA did not issue (self-signed here).
    let cert_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let cert = test_certificate(&cert_key, "someone@elsewhere.example").unwrap();
    let pem = sigil_core::certs::pem_encode("CERTIFICATE", &cert);
    let alg = sigil_core::crypto::DigestAlgorithm::Sha256;
    let d = alg.digest(b"foreign certificate");
    let sig = cert_key.sign_prehashed(alg, &d).unwrap();
    let (st, body) = s.post_entry(&hashedrekord(alg, &d, &sig, &pem), None).await;
    assert_eq!(st, 403, "{body}");
    assert!(
        body.contains("was not issued by this deployment's CA"),
        "{body}"
    );

    // Decisions are counted by rule, and no token reaches the metrics.
    let (_, metrics) = s.call("GET", "/metrics", None).await;
    for needle in [
        r#"sigil_access_decisions_total{kind="read",outcome="refused",rule="no-credential"}"#,
        r#"sigil_access_decisions_total{kind="read",outcome="refused",rule="oidc"}"#,
        r#"sigil_access_decisions_total{kind="read",outcome="admitted",rule="static-token"}"#,
        r#"sigil_access_decisions_total{kind="write",outcome="refused",rule="allowed-keys"}"#,
        r#"sigil_access_decisions_total{kind="write",outcome="admitted",rule="static-token"}"#,
    ] {
        assert!(metrics.contains(needle), "no {needle} in /metrics");
    }
    assert!(!metrics.contains(READER_TOKEN) && !metrics.contains(WRITER_TOKEN));
}

/// Runs openssl in `dir`; panics with its output when it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package openssl) is needed to make test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`<name>-ca.pem`/`.key`) and a certificate it issued (`<name>.pem`/`.key`) with these
/// extensions.
fn issue(dir: &std::path::Path, ca: &str, name: &str, ext: &str) {
    if !dir.join(format!("{ca}.pem")).exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        );
    }
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn readers_with_a_client_certificate_over_tls() {
    sigil_tests::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    sigil_server::init::init(d, &url, true).unwrap();
    issue(
        d,
        "server-ca",
        "server",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    issue(d, "reader-ca", "reader", "extendedKeyUsage=clientAuth\n");
    issue(d, "other-ca", "intruder", "extendedKeyUsage=clientAuth\n");
    let mut cfg = sigil_server::config::Config::load(Some(&d.join("sigil.toml"))).unwrap();
    cfg.server.tls_cert = "server.pem".into();
    cfg.server.tls_key = "server.key".into();
    cfg.read_access.enabled = true;
    cfg.read_access.client_ca = "reader-ca.pem".into();
    cfg.validate().unwrap();
    let service = sigil_server::app::build(&cfg, d).await.unwrap();
    let tls = sigil_server::tls::server_config(
        &d.join("server.pem"),
        &d.join("server.key"),
        Some(&d.join("reader-ca.pem")),
    )
    .unwrap();
    let router = service
        .router
        .into_make_service_with_connect_info::<sigil_server::tls::Peer>();
    let tls_listener = sigil_server::tls::listen(listener, tls).unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(tls_listener, router).await;
    });

    let root =
        reqwest::Certificate::from_pem(&std::fs::read(d.join("server-ca.pem")).unwrap()).unwrap();
    let client = |identity: Option<&str>| {
        let mut b = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(root.clone());
        if let Some(name) = identity {
            let mut pem = std::fs::read(d.join(format!("{name}.key"))).unwrap();
            pem.extend(std::fs::read(d.join(format!("{name}.pem"))).unwrap());
            b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    };
    let get = |c: reqwest::Client, path: &'static str| {
        let url = format!("{url}{path}");
        async move { c.get(url).send().await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(
        get(client(Some("reader")), "/api/v1/log").await.unwrap(),
        200
    );
    assert_eq!(
        get(client(Some("reader")), "/api/v2/checkpoint")
            .await
            .unwrap(),
        200
    );
    assert_eq!(get(client(None), "/api/v1/log").await.unwrap(), 401);
    assert_eq!(
        get(client(None), "/api/v1/trust/trusted_root.json")
            .await
            .unwrap(),
        200,
        "trust files stay public"
    );
    // A certificate of another CA: the handshake itself is refused.
    let intruder = get(client(Some("intruder")), "/api/v1/log").await;
    assert!(
        intruder.is_err() || intruder.as_ref().is_ok_and(|s| *s == 401),
        "a client certificate of another CA was accepted: {intruder:?}"
    );
}
