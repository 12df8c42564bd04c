//! Interactive sign-in in a browser: the OAuth 2.0 authorization code flow with PKCE (S256) and a
//! loopback redirect (RFC 8252), as cosign and sigstore-python do it. The ID token is verified
//! against the issuer's published keys, our client id and the nonce we sent before it is used.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::url::Url;
use openidconnect::{
    AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge, RedirectUrl,
    RequestTokenError, Scope,
};

/// The path the provider redirects the browser to on our loopback listener.
pub const CALLBACK_PATH: &str = "/auth/callback";

/// How to run the browser sign-in.
#[derive(Clone, Debug)]
pub struct BrowserLogin<'a> {
    /// The OpenID Provider (its discovery document must list an authorization endpoint).
    pub issuer: &'a str,
    /// A public client registered for loopback redirects, e.g. `sigstore`.
    pub client_id: &'a str,
    /// Launch the system browser on the authorization URL (it is always printed too).
    pub launch_browser: bool,
    /// How long to wait for the browser to come back.
    pub timeout: Duration,
}

/// What the redirect carried.
enum Callback {
    Code(String),
    Refused(String),
}

/// Runs the flow and returns the verified ID token (compact JWS).
pub fn browser_login(opts: &BrowserLogin<'_>) -> Result<String> {
    // Following redirects on the back channel would let a provider steer us anywhere (SSRF).
    let http = crate::http::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let issuer_url = IssuerUrl::new(opts.issuer.to_owned())
        .with_context(|| format!("{} is not an issuer URL", opts.issuer))?;
    let metadata = CoreProviderMetadata::discover(&issuer_url, &http).with_context(|| {
        format!(
            "discovering the OpenID Provider {} (the browser sign-in needs its \
             authorization_endpoint, token_endpoint and jwks_uri)",
            opts.issuer
        )
    })?;

    // Loopback only: nothing off this machine can reach the listener that receives the code.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("opening a loopback port for the sign-in redirect")?;
    let port = listener.local_addr()?.port();
    let redirect = format!("http://127.0.0.1:{port}{CALLBACK_PATH}");

    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(opts.client_id.to_owned()),
        None,
    )
    .set_redirect_uri(RedirectUrl::new(redirect)?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();

    eprintln!("To sign in, open this URL in a browser:\n\n    {auth_url}\n");
    if opts.launch_browser && !launch(auth_url.as_str()) {
        eprintln!("(no browser could be started: open the URL above by hand)");
    }
    eprintln!(
        "Waiting up to {}s for the sign-in to finish…",
        opts.timeout.as_secs()
    );

    let code = match wait_for_callback(&listener, opts, state.secret())? {
        Callback::Code(c) => c,
        Callback::Refused(why) => bail!("{why}"),
    };
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .context("the provider's discovery document lists no token_endpoint")?
        .set_pkce_verifier(verifier)
        .request(&http)
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => anyhow!(
                "the token endpoint of {} refused the authorization code: {}{}",
                opts.issuer,
                r.error(),
                r.error_description()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
            other => anyhow::Error::new(other).context(format!(
                "exchanging the authorization code at {}",
                opts.issuer
            )),
        })?;
    let id_token = openidconnect::TokenResponse::id_token(&response).ok_or_else(|| {
        anyhow!(
            "{} answered the code exchange without an ID token",
            opts.issuer
        )
    })?;
    // Any asymmetric algorithm the provider may use; a public client has no secret for HMAC.
    let verifier = client.id_token_verifier().set_allowed_algs([
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
        CoreJwsSigningAlgorithm::RsaSsaPssSha256,
        CoreJwsSigningAlgorithm::RsaSsaPssSha384,
        CoreJwsSigningAlgorithm::RsaSsaPssSha512,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        CoreJwsSigningAlgorithm::EcdsaP384Sha384,
        CoreJwsSigningAlgorithm::EdDsa,
    ]);
    id_token
        .claims(&verifier, &nonce)
        .with_context(|| format!("the ID token from {} does not verify", opts.issuer))?;
    Ok(id_token.to_string())
}

/// Accepts loopback connections until the callback arrives or the time is up. Requests for other
/// paths (a browser's favicon) get a 404 and the wait goes on.
fn wait_for_callback(
    listener: &TcpListener,
    opts: &BrowserLogin<'_>,
    state: &str,
) -> Result<Callback> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + opts.timeout;
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                if !peer.ip().is_loopback() {
                    continue;
                }
                if let Some(cb) = handle(stream, opts.issuer, state)? {
                    return Ok(cb);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    bail!(
                        "the browser sign-in timed out after {}s: no redirect reached \
                         127.0.0.1:{}{CALLBACK_PATH} (run the command again, or pass \
                         --identity-token)",
                        opts.timeout.as_secs(),
                        listener.local_addr().map(|a| a.port()).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e).context("waiting for the sign-in redirect"),
        }
    }
}

/// Reads one request; `None` when it was not the callback.
fn handle(mut stream: TcpStream, issuer: &str, state: &str) -> Result<Option<Callback>> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let Some(target) = request_target(&mut stream) else {
        return Ok(None);
    };
    let Ok(url) = Url::parse(&format!("http://127.0.0.1{target}")) else {
        respond(&mut stream, "400 Bad Request", "Not a sign-in redirect.");
        return Ok(None);
    };
    if url.path() != CALLBACK_PATH {
        respond(&mut stream, "404 Not Found", "Not found.");
        return Ok(None);
    }
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    // The page never echoes the parameters: they come from whoever sent the browser here.
    if let Some(err) = param("error") {
        respond(
            &mut stream,
            "200 OK",
            "Sign-in failed. Return to the terminal for details; you can close this window.",
        );
        let desc = param("error_description")
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return Ok(Some(Callback::Refused(format!(
            "the OpenID Provider {issuer} refused the sign-in: {err}{desc}"
        ))));
    }
    if param("state").as_deref() != Some(state) {
        respond(
            &mut stream,
            "400 Bad Request",
            "Sign-in failed: this redirect does not belong to the running sign-in.",
        );
        return Ok(Some(Callback::Refused(
            "the sign-in redirect carried the wrong state (a stale browser tab or a forged \
             redirect); nothing was accepted, run the command again"
                .into(),
        )));
    }
    // RFC 9207: a provider that names itself must be the one we asked (mix-up defence).
    if let Some(iss) = param("iss")
        && iss.trim_end_matches('/') != issuer.trim_end_matches('/')
    {
        respond(
            &mut stream,
            "400 Bad Request",
            "Sign-in failed: wrong issuer.",
        );
        return Ok(Some(Callback::Refused(format!(
            "the sign-in redirect came from issuer {iss}, not {issuer}"
        ))));
    }
    let Some(code) = param("code") else {
        respond(&mut stream, "400 Bad Request", "Sign-in failed: no code.");
        return Ok(Some(Callback::Refused(
            "the sign-in redirect carried neither a code nor an error".into(),
        )));
    };
    respond(
        &mut stream,
        "200 OK",
        "Signed in to Sigil. You can close this window and return to the terminal.",
    );
    Ok(Some(Callback::Code(code)))
}

/// The target of a `GET` request line, reading no more than the head of the request.
fn request_target(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(chunk.get(..n)?),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next()?.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) if target.starts_with('/') => Some(target.to_owned()),
        _ => None,
    }
}

fn respond(stream: &mut TcpStream, status: &str, message: &str) {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sigil sign-in</title></head>\
         <body><p>{message}</p></body></html>"
    );
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // The browser may already be gone; the outcome stands either way.
    let _ = stream.write_all(resp.as_bytes());
    let _ = stream.flush();
}

/// Starts the system browser; false when none could be started.
fn launch(url: &str) -> bool {
    use std::process::{Command, Stdio};
    let mut cmd = if let Some(b) = std::env::var_os("BROWSER").filter(|b| !b.is_empty()) {
        Command::new(b)
    } else if cfg!(target_os = "macos") {
        Command::new("open")
    } else if cfg!(windows) {
        let mut c = Command::new("rundll32");
        c.arg("url.dll,FileProtocolHandler");
        c
    } else {
        Command::new("xdg-open")
    };
    cmd.arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .is_ok()
}
