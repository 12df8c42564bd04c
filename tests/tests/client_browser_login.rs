//! The `sigil` CLI's browser sign-in (authorization code + PKCE, loopback redirect) against a
//! real OpenID Provider (`oidc-provider`, its development login and consent pages driven over
//! HTTP as a browser would): the token it gets signs a blob keylessly on a Sigil stack and the
//! bundle verifies; a refused consent, a forged state and no answer at all each end the CLI with
//! a clear message, never a hang. A forging provider checks that ID tokens with the wrong
//! nonce, audience or signature are refused.

// Test code: a panic is the failing test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use sigil_tests::ca;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sigil_tests::{
    Consent, ExtraIssuer, OidcProvider, SigilStack, StackOptions, jwt_parts, workspace_bin,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// Upper bound for any one CLI run: the flows under test answer within seconds.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// A `sigil` process whose stderr is collected as it comes.
struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Box<dyn AsyncRead + Unpin + Send>,
    /// The authorization URL the CLI printed.
    auth_url: String,
}

/// Starts `sigil args…` with a clean environment and waits for it to print the authorization URL.
async fn start(home: &Path, args: &[&str]) -> Running {
    start_with(home, args, false).await
}

/// As [`start`]; with `terminal`, on a pseudo-terminal (util-linux `script`), as a user at a
/// terminal runs it. The terminal's output (stderr included) is then what is collected.
async fn start_with(home: &Path, args: &[&str], terminal: bool) -> Running {
    let bin = workspace_bin("sigil").expect("sigil binary");
    let mut cmd = if terminal {
        assert!(
            std::process::Command::new("script")
                .arg("--version")
                .output()
                .is_ok(),
            "`script` not found: apt-get install bsdutils (util-linux)"
        );
        let line = std::iter::once(bin.to_str().unwrap())
            .chain(args.iter().copied())
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut c = Command::new("script");
        c.args(["-qfec", &line, "/dev/null"]);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    };
    let mut child = cmd
        .env("SIGIL_HOME", home)
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
        .env_remove("SIGIL_TRUSTED_ROOT")
        .env_remove("SIGIL_SIGNING_CONFIG")
        .env_remove("SIGIL_TRUST_CONFIG")
        // A browser must never start from a test run, whatever the flags say.
        .env("BROWSER", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sigil");
    let (stdout, log): (
        Box<dyn AsyncRead + Unpin + Send>,
        Box<dyn AsyncRead + Unpin + Send>,
    ) = if terminal {
        (
            Box::new(child.stderr.take().unwrap()),
            Box::new(child.stdout.take().unwrap()),
        )
    } else {
        (
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        )
    };
    let mut lines = BufReader::new(log).lines();
    let stderr = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let collected = stderr.clone();
    tokio::spawn(async move {
        let mut tx = Some(tx);
        while let Ok(Some(line)) = lines.next_line().await {
            let t = line.trim();
            if t.starts_with("http")
                && t.contains("code_challenge=")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(t.to_string());
            }
            let mut s = collected.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let auth_url = match tokio::time::timeout(Duration::from_secs(30), rx).await {
        Ok(Ok(url)) => url,
        _ => panic!(
            "sigil {args:?} printed no authorization URL:\n{}",
            stderr.lock().unwrap()
        ),
    };
    Running {
        child,
        stderr,
        stdout,
        auth_url,
    }
}

impl Running {
    /// Waits (bounded) for the CLI to exit; returns its status, stdout and stderr.
    async fn finish(mut self) -> (ExitStatus, String, String) {
        let started = Instant::now();
        let status = match tokio::time::timeout(RUN_LIMIT, self.child.wait()).await {
            Ok(s) => s.unwrap(),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!(
                    "sigil hung for {:?}:\n{}",
                    started.elapsed(),
                    self.stderr.lock().unwrap()
                );
            }
        };
        let mut out = String::new();
        self.stdout.read_to_string(&mut out).await.unwrap();
        // Let the reader task drain the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let err = self.stderr.lock().unwrap().clone();
        (status, out, err)
    }
}

/// The query parameter `name` of `url`.
fn param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Opens the redirect as the browser would; returns the status and page of the CLI's listener.
async fn deliver(redirect: &str) -> (u16, String) {
    sigil_tests::install_crypto_provider();
    let resp = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get(redirect)
        .send()
        .await
        .expect("the CLI's loopback listener answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs a `sigil` command to completion (no sign-in involved).
async fn sigil(home: &Path, args: &[&str]) -> (bool, String) {
    let bin = workspace_bin("sigil").unwrap();
    let out = tokio::time::timeout(
        RUN_LIMIT,
        Command::new(bin)
            .args(args)
            .env("SIGIL_HOME", home)
            .env_remove("SIGSTORE_ID_TOKEN")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("sigil finished in time")
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_sign_in_signs_a_blob_that_verifies() {
    let idp = OidcProvider::start().await.expect("OIDC provider");
    let stack = SigilStack::up_with(StackOptions {
        extra_issuers: vec![ExtraIssuer::email(idp.issuer())],
        ..StackOptions::default()
    })
    .await
    .expect("sigil-server up");
    let dir = stack.scratch();
    let home: PathBuf = dir.join("home");
    let trust = stack.fetch_trust_files(dir).await.expect("trust files");
    let file = dir.join("artifact.txt");
    std::fs::write(&file, b"signed after a browser sign-in\n").unwrap();
    let bundle = dir.join("artifact.sigstore.json");
    let identity = "alice@example.com";

    // sign-blob with no token: --browser picks the browser flow in a non-interactive run.
    let run = start(
        &home,
        &[
            "sign-blob",
            s(&file),
            "--bundle",
            s(&bundle),
            "--browser",
            "--no-launch-browser",
            "--oidc-issuer",
            idp.issuer(),
            "--oidc-timeout",
            "60",
            "--trusted-root",
            s(&trust.trusted_root),
            "--signing-config",
            s(&trust.signing_config),
        ],
    )
    .await;
    let url = run.auth_url.clone();
    assert!(
        url.starts_with(&format!("{}/", idp.issuer())),
        "authorization URL is not the provider's: {url}"
    );
    assert_eq!(param(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&url, "client_id").as_deref(), Some("sigstore"));
    assert_eq!(
        param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(param(&url, "nonce").is_some_and(|n| n.len() >= 16), "{url}");
    assert!(param(&url, "state").is_some_and(|n| n.len() >= 16), "{url}");
    let scope = param(&url, "scope").unwrap_or_default();
    assert!(scope.contains("openid") && scope.contains("email"), "{url}");
    let redirect_uri = param(&url, "redirect_uri").unwrap();
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:") && redirect_uri.ends_with("/auth/callback"),
        "redirect URI is not a loopback callback: {redirect_uri}"
    );

    let redirect = idp
        .browser_sign_in(&url, identity, Consent::Approve)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\nprovider:\n{}", idp.output()));
    assert!(redirect.starts_with(&redirect_uri), "{redirect}");
    assert!(param(&redirect, "code").is_some(), "{redirect}");
    let (status, page) = deliver(&redirect).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("close this window"), "{page}");

    let (status, out, err) = run.finish().await;
    assert!(
        status.success(),
        "sign-blob failed:\n{out}\n{err}\nserver:\n{}",
        stack.output()
    );
    assert!(bundle.exists(), "no bundle written:\n{out}\n{err}");
    // The token is never shown (a JWT starts with `eyJ`).
    assert!(
        !out.contains("eyJ") && !err.contains("eyJ"),
        "a token was printed:\n{out}\n{err}"
    );

    let verify = |id: &'static str| {
        let (home, bundle, file, trust) = (
            home.clone(),
            bundle.clone(),
            file.clone(),
            trust.trusted_root.clone(),
        );
        let issuer = idp.issuer().to_string();
        async move {
            sigil(
                &home,
                &[
                    "verify-blob",
                    s(&file),
                    "--bundle",
                    s(&bundle),
                    "--certificate-identity",
                    id,
                    "--certificate-oidc-issuer",
                    &issuer,
                    "--trusted-root",
                    s(&trust),
                ],
            )
            .await
        }
    };
    let (ok, text) = verify(identity).await;
    assert!(ok && text.contains("Verified OK"), "verify-blob:\n{text}");
    let (ok, text) = verify("mallory@example.com").await;
    assert!(!ok, "verify-blob accepted the wrong identity:\n{text}");

    // `sigil login --browser --print-token`: the one place a token may be shown.
    let run = start(
        &home,
        &[
            "login",
            "--browser",
            "--no-launch-browser",
            "--issuer",
            idp.issuer(),
            "--print-token",
        ],
    )
    .await;
    let nonce = param(&run.auth_url, "nonce").unwrap();
    let redirect = idp
        .browser_sign_in(&run.auth_url, "bob", Consent::Approve)
        .await
        .unwrap();
    assert_eq!(deliver(&redirect).await.0, 200);
    let (status, out, err) = run.finish().await;
    assert!(status.success(), "login --browser failed:\n{out}\n{err}");
    let (header, claims) = jwt_parts(out.trim()).expect("a JWT on stdout");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], Value::String(idp.issuer().into()));
    assert_eq!(claims["aud"], "sigstore");
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["email"], "bob@example.com");
    assert_eq!(claims["nonce"], Value::String(nonce));
}

/// `sigil login --browser` against the provider alone, with the given wait.
async fn login(idp: &OidcProvider, home: &Path, timeout_secs: &str) -> Running {
    start(
        home,
        &[
            "login",
            "--browser",
            "--no-launch-browser",
            "--issuer",
            idp.issuer(),
            "--timeout",
            timeout_secs,
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_consent_forged_state_and_no_answer_fail_clearly() {
    let idp = OidcProvider::start().await.expect("OIDC provider");
    let home = tempfile::tempdir().unwrap();
    let stored = home.path().join("id_token");

    // The user denies consent: the provider redirects with error=access_denied.
    let run = login(&idp, home.path(), "60").await;
    let redirect = idp
        .browser_sign_in(&run.auth_url, "carol", Consent::Deny)
        .await
        .unwrap();
    assert_eq!(
        param(&redirect, "error").as_deref(),
        Some("access_denied"),
        "{redirect}"
    );
    let (status, page) = deliver(&redirect).await;
    assert_eq!(status, 200);
    assert!(page.contains("Sign-in failed"), "{page}");
    let (status, out, err) = run.finish().await;
    assert!(!status.success(), "a denied sign-in succeeded:\n{out}");
    assert!(
        err.contains("refused the sign-in: access_denied"),
        "unclear error for a denied consent:\n{err}"
    );
    assert!(!stored.exists(), "a token was stored after a denial");

    // A redirect whose state is not the one the CLI sent is refused, code or not.
    let run = login(&idp, home.path(), "60").await;
    let redirect = idp
        .browser_sign_in(&run.auth_url, "carol", Consent::Approve)
        .await
        .unwrap();
    let sent = param(&run.auth_url, "state").unwrap();
    assert_eq!(param(&redirect, "state").as_deref(), Some(sent.as_str()));
    let forged = redirect.replace(&format!("state={sent}"), "state=forged");
    assert_ne!(forged, redirect);
    let (status, page) = deliver(&forged).await;
    assert_eq!(status, 400, "{page}");
    let (status, out, err) = run.finish().await;
    assert!(!status.success(), "a forged state was accepted:\n{out}");
    assert!(
        err.contains("wrong state"),
        "unclear error for a state mismatch:\n{err}"
    );
    assert!(!stored.exists(), "a token was stored after a forged state");

    // Nobody completes the sign-in: the CLI gives up after its timeout instead of hanging.
    let run = login(&idp, home.path(), "2").await;
    let started = Instant::now();
    let (status, _, err) = run.finish().await;
    let waited = started.elapsed();
    assert!(!status.success());
    assert!(
        err.contains("timed out after 2s"),
        "unclear timeout error:\n{err}"
    );
    assert!(
        waited < Duration::from_secs(20),
        "gave up only after {waited:?}"
    );

    // A request for another path (a browser's favicon) does not end the wait; the real
    // callback still completes the sign-in and the token is stored.
    let run = login(&idp, home.path(), "60").await;
    let redirect_uri = param(&run.auth_url, "redirect_uri").unwrap();
    let favicon = redirect_uri.replace("/auth/callback", "/favicon.ico");
    assert_eq!(deliver(&favicon).await.0, 404);
    let redirect = idp
        .browser_sign_in(&run.auth_url, "dave@example.org", Consent::Approve)
        .await
        .unwrap();
    assert_eq!(deliver(&redirect).await.0, 200);
    let (status, out, err) = run.finish().await;
    assert!(status.success(), "login --browser failed:\n{out}\n{err}");
    assert!(out.contains("Logged in as dave@example.org"), "{out}");
    assert!(
        !out.contains("eyJ") && !err.contains("eyJ"),
        "a token was printed"
    );
    let (_, claims) = jwt_parts(std::fs::read_to_string(&stored).unwrap().trim()).unwrap();
    assert_eq!(claims["email"], "dave@example.org");
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_sign_in_with_the_dev_issuer_of_sigil_server_up() {
    let stack = SigilStack::up().await.expect("sigil-server up");
    let dir = stack.scratch();
    let home = dir.join("home");
    let trust = stack.fetch_trust_files(dir).await.expect("trust files");
    let issuer = stack.dev_issuer();
    let disc = stack
        .get_json("/oidc/.well-known/openid-configuration")
        .await
        .unwrap();
    assert_eq!(
        disc["authorization_endpoint"],
        Value::String(format!("{issuer}/authorize"))
    );

    // The dev issuer approves at once: opening the URL lands on the CLI's listener.
    let run = start(
        &home,
        &[
            "login",
            "--browser",
            "--no-launch-browser",
            "--timeout",
            "60",
            "--signing-config",
            s(&trust.signing_config),
        ],
    )
    .await;
    assert!(run.auth_url.starts_with(&format!("{issuer}/authorize?")));
    let (status, page) = deliver(&run.auth_url).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("close this window"), "{page}");
    let (status, out, err) = run.finish().await;
    assert!(
        status.success(),
        "login --browser failed:\n{out}\n{err}\nserver:\n{}",
        stack.output()
    );
    assert!(
        out.contains("Logged in as developer@sigil.localhost"),
        "{out}"
    );

    // The stored token signs; the bundle verifies for the dev identity.
    let file = dir.join("f.txt");
    std::fs::write(&file, b"dev issuer, browser flow\n").unwrap();
    let bundle = dir.join("f.sigstore.json");
    let (ok, text) = sigil(
        &home,
        &[
            "sign-blob",
            s(&file),
            "--bundle",
            s(&bundle),
            "--trusted-root",
            s(&trust.trusted_root),
            "--signing-config",
            s(&trust.signing_config),
        ],
    )
    .await;
    assert!(ok, "sign-blob with the stored token:\n{text}");
    let (ok, text) = sigil(
        &home,
        &[
            "verify-blob",
            s(&file),
            "--bundle",
            s(&bundle),
            "--certificate-identity",
            "developer@sigil.localhost",
            "--certificate-oidc-issuer",
            &issuer,
            "--trusted-root",
            s(&trust.trusted_root),
        ],
    )
    .await;
    assert!(ok && text.contains("Verified OK"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_issuer_authorization_endpoint_refuses_what_it_must() {
    let stack = SigilStack::up().await.expect("sigil-server up");
    let issuer = stack.dev_issuer();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let verifier = "a".repeat(43);
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&verifier))
    };
    let loopback = "http://127.0.0.1:9/auth/callback";
    let authorize = |redirect: &str, method: Option<&str>| {
        let mut q = vec![
            ("response_type", "code".to_string()),
            ("client_id", "sigstore".to_string()),
            ("redirect_uri", redirect.to_string()),
            ("state", "s1".to_string()),
            ("nonce", "n1".to_string()),
        ];
        if let Some(m) = method {
            q.push(("code_challenge_method", m.to_string()));
            q.push(("code_challenge", challenge.clone()));
        }
        http.get(format!("{issuer}/authorize")).query(&q).send()
    };

    // Never an open redirector, never without PKCE: 400 with {code, message}.
    for (redirect, method, what) in [
        ("https://evil.example/cb", Some("S256"), "loopback"),
        ("http://10.0.0.1:8080/cb", Some("S256"), "loopback"),
        (loopback, None, "PKCE"),
        (loopback, Some("plain"), "PKCE"),
    ] {
        let resp = authorize(redirect, method).await.unwrap();
        assert_eq!(resp.status(), 400, "{redirect} {method:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], 400);
        assert!(
            body["message"].as_str().unwrap().contains(what),
            "{redirect} {method:?}: {body}"
        );
    }

    // A good request redirects to the loopback URI with code, state and iss.
    let resp = authorize(loopback, Some("S256")).await.unwrap();
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(loopback), "{location}");
    assert_eq!(param(&location, "state").as_deref(), Some("s1"));
    assert_eq!(param(&location, "iss"), Some(issuer.clone()));
    let code = param(&location, "code").unwrap();

    let exchange = |code: String, verifier: String| {
        http.post(format!("{issuer}/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", "sigstore"),
                ("code", code.as_str()),
                ("code_verifier", verifier.as_str()),
                ("redirect_uri", loopback),
            ])
            .send()
    };
    // A wrong verifier uses the code up.
    let resp = exchange(code.clone(), "b".repeat(43)).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let resp = exchange(code, verifier.clone()).await.unwrap();
    assert_eq!(resp.status(), 400, "a refused code was accepted later");

    // The right verifier gets an ID token with the nonce, once.
    let resp = authorize(loopback, Some("S256")).await.unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let code = param(&location, "code").unwrap();
    let resp = exchange(code.clone(), verifier.clone()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let (_, claims) = jwt_parts(body["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["nonce"], "n1");
    assert_eq!(claims["aud"], "sigstore");
    let resp = exchange(code, verifier).await.unwrap();
    assert_eq!(resp.status(), 400, "a code was accepted twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn at_a_terminal_signing_signs_in_through_the_browser_and_without_one_it_does_not() {
    let idp = OidcProvider::start().await.expect("OIDC provider");
    let stack = SigilStack::up_with(StackOptions {
        extra_issuers: vec![ExtraIssuer::email(idp.issuer())],
        ..StackOptions::default()
    })
    .await
    .expect("sigil-server up");
    let dir = stack.scratch();
    let home = dir.join("home");
    let trust = stack.fetch_trust_files(dir).await.expect("trust files");
    let file = dir.join("t.txt");
    std::fs::write(&file, b"signed at a terminal\n").unwrap();
    let bundle = dir.join("t.sigstore.json");
    let args = [
        "sign-blob",
        s(&file),
        "--bundle",
        s(&bundle),
        "--oidc-issuer",
        idp.issuer(),
        "--trusted-root",
        s(&trust.trusted_root),
        "--signing-config",
        s(&trust.signing_config),
    ];

    // No terminal, no --browser, no token: the device flow is tried, which this provider does
    // not offer; the command fails at once and says what to do.
    let started = Instant::now();
    let (ok, text) = sigil(&home, &args).await;
    assert!(!ok, "signed without any identity:\n{text}");
    assert!(
        text.contains("device flow") && text.contains("--browser"),
        "unclear error without a terminal:\n{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // At a terminal the same command opens the browser sign-in by itself.
    let run = start_with(&home, &args, true).await;
    let redirect = idp
        .browser_sign_in(&run.auth_url, "erin@example.com", Consent::Approve)
        .await
        .unwrap();
    assert_eq!(deliver(&redirect).await.0, 200);
    let (status, _, log) = run.finish().await;
    assert!(
        status.success(),
        "sign-blob at a terminal failed:\n{log}\nserver:\n{}",
        stack.output()
    );
    assert!(!log.contains("eyJ"), "a token was printed:\n{log}");
    let (ok, text) = sigil(
        &home,
        &[
            "verify-blob",
            s(&file),
            "--bundle",
            s(&bundle),
            "--certificate-identity",
            "erin@example.com",
            "--certificate-oidc-issuer",
            idp.issuer(),
            "--trusted-root",
            s(&trust.trusted_root),
        ],
    )
    .await;
    assert!(ok && text.contains("Verified OK"), "{text}");
}

/// What the forging provider's token endpoint does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Forgery {
    Nothing,
    WrongNonce,
    WrongAudience,
    SignedByAnotherKey,
}

#[derive(Clone)]
struct Forger {
    issuer: Arc<Mutex<String>>,
    nonce: Arc<Mutex<String>>,
    forgery: Arc<Mutex<Forgery>>,
    key: Arc<ca::TestKey>,
    other: Arc<ca::TestKey>,
}

/// A provider that approves at once and answers the code exchange with a token forged as told.
async fn forging_provider(forgery: Forgery) -> (String, Forger) {
    sigil_tests::install_crypto_provider();
    use axum::extract::{Query, State};
    use axum::routing::{get, post};
    use sigil_core::crypto::KeyAlgorithm;
    let key = ca::TestKey::new("k1", KeyAlgorithm::EcdsaP256);
    // Same kid, other key: only the signature tells them apart.
    let other = ca::TestKey::new("k1", KeyAlgorithm::EcdsaP256);
    let st = Forger {
        issuer: Arc::default(),
        nonce: Arc::default(),
        forgery: Arc::new(Mutex::new(forgery)),
        key: Arc::new(key),
        other: Arc::new(other),
    };
    let router = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(|State(f): State<Forger>| async move {
                let iss = f.issuer.lock().unwrap().clone();
                axum::Json(serde_json::json!({
                    "issuer": iss,
                    "authorization_endpoint": format!("{iss}/authorize"),
                    "token_endpoint": format!("{iss}/token"),
                    "jwks_uri": format!("{iss}/jwks"),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["ES256"],
                }))
            }),
        )
        .route(
            "/jwks",
            get(|State(f): State<Forger>| async move {
                axum::Json(serde_json::json!({"keys": [f.key.jwk]}))
            }),
        )
        .route(
            "/authorize",
            get(
                |State(f): State<Forger>, Query(q): Query<HashMap<String, String>>| async move {
                    *f.nonce.lock().unwrap() = q["nonce"].clone();
                    let mut to = reqwest::Url::parse(&q["redirect_uri"]).unwrap();
                    to.query_pairs_mut()
                        .append_pair("code", "c0de")
                        .append_pair("state", &q["state"]);
                    axum::response::Redirect::to(to.as_str())
                },
            ),
        )
        .route(
            "/token",
            post(|State(f): State<Forger>| async move {
                let iss = f.issuer.lock().unwrap().clone();
                let forgery = *f.forgery.lock().unwrap();
                let mut claims = ca::email_claims(&iss, "frank@example.com");
                claims["nonce"] = serde_json::json!(*f.nonce.lock().unwrap());
                match forgery {
                    Forgery::WrongNonce => claims["nonce"] = serde_json::json!("not-the-nonce"),
                    Forgery::WrongAudience => claims["aud"] = serde_json::json!("someone-else"),
                    _ => {}
                }
                let signer = if forgery == Forgery::SignedByAnotherKey {
                    &f.other
                } else {
                    &f.key
                };
                let token = signer.sign(&claims);
                axum::Json(serde_json::json!({
                    "access_token": "opaque",
                    "token_type": "Bearer",
                    "id_token": token,
                    "expires_in": 600,
                }))
            }),
        )
        .with_state(st.clone());
    let base = ca::serve(router).await;
    *st.issuer.lock().unwrap() = base.clone();
    (base, st)
}

#[tokio::test(flavor = "multi_thread")]
async fn id_tokens_with_a_wrong_nonce_audience_or_signature_are_refused() {
    let (issuer, forger) = forging_provider(Forgery::Nothing).await;
    let home = tempfile::tempdir().unwrap();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (forgery, needle) in [
        (Forgery::Nothing, ""),
        (Forgery::WrongNonce, "nonce"),
        (Forgery::WrongAudience, "audience"),
        (Forgery::SignedByAnotherKey, "signature"),
    ] {
        *forger.forgery.lock().unwrap() = forgery;
        let run = start(
            home.path(),
            &[
                "login",
                "--browser",
                "--no-launch-browser",
                "--issuer",
                &issuer,
                "--timeout",
                "60",
                "--print-token",
            ],
        )
        .await;
        let resp = no_redirects.get(&run.auth_url).send().await.unwrap();
        let redirect = resp.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(deliver(&redirect).await.0, 200);
        let (status, out, err) = run.finish().await;
        if forgery == Forgery::Nothing {
            // The forger is a working provider when it forges nothing.
            assert!(status.success(), "{out}\n{err}");
            let (_, claims) = jwt_parts(out.trim()).unwrap();
            assert_eq!(claims["email"], "frank@example.com");
            continue;
        }
        assert!(!status.success(), "{forgery:?} was accepted:\n{out}");
        assert!(
            out.trim().is_empty(),
            "{forgery:?}: something was printed:\n{out}"
        );
        assert!(
            err.contains("does not verify") && err.to_lowercase().contains(needle),
            "{forgery:?}: unclear error:\n{err}"
        );
    }
}
