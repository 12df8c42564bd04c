//! A real, independent OpenID Provider for tests: npm `oidc-provider` run by
//! `tests/oidc/provider.mjs` on loopback (see that script for the custom grant it adds), and a
//! stand-in for a user's browser that signs in on its development login and consent pages.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::process::{ServerProcess, workspace_root};

/// The grant type the test provider adds for browserless ID tokens.
pub const ID_TOKEN_GRANT: &str = "urn:sigil:test:id-token";
/// The provider's one client; ID tokens carry it as `aud`.
pub const CLIENT_ID: &str = "sigstore";

const INSTALL_HINT: &str =
    "run `scripts/test` (installs everything) or `npm ci --prefix tests/oidc`";

/// A running `oidc-provider` instance; killed on drop.
pub struct OidcProvider {
    process: ServerProcess,
    issuer: String,
    http: reqwest::Client,
}

impl OidcProvider {
    /// Starts the provider on a free loopback port and waits until it serves discovery.
    pub async fn start() -> Result<OidcProvider> {
        crate::install_crypto_provider();
        let dir = oidc_dir();
        let script = dir.join("provider.mjs");
        if !dir.join("node_modules").join("oidc-provider").is_dir() {
            bail!(
                "npm package oidc-provider is not installed in {}: {INSTALL_HINT}",
                dir.display()
            );
        }
        if Command::new("node").arg("--version").output().is_err() {
            bail!("`node` (Node.js) not found: apt-get install nodejs npm, then {INSTALL_HINT}");
        }
        let mut cmd = Command::new("node");
        cmd.arg(&script).current_dir(&dir);
        let mut process = ServerProcess::spawn_command(cmd)?;
        let line = process
            // Generous: an RSA key is generated first, and the suite may load both cores.
            .wait_for_line("listening ", Duration::from_secs(120))
            .await?;
        let issuer = line
            .trim()
            .strip_prefix("listening ")
            .ok_or_else(|| anyhow!("unexpected provider output: {line}"))?
            .to_string();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // Never reuse a connection the server may be closing.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()?;
        let provider = OidcProvider {
            process,
            issuer,
            http,
        };
        provider.discovery().await?;
        Ok(provider)
    }

    /// The issuer URL (`http://127.0.0.1:<port>`), exactly as in the tokens' `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The provider's OpenID discovery document.
    pub async fn discovery(&self) -> Result<Value> {
        self.get_json(&format!("{}/.well-known/openid-configuration", self.issuer))
            .await
    }

    /// The provider's published JWKS (fetched from `jwks_uri` of discovery).
    pub async fn jwks(&self) -> Result<Value> {
        let discovery = self.discovery().await?;
        let uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("discovery has no jwks_uri: {discovery}"))?;
        self.get_json(uri).await
    }

    /// The `kid`s currently published in the JWKS.
    pub async fn published_kids(&self) -> Result<Vec<String>> {
        let jwks = self.jwks().await?;
        Ok(jwks
            .get("keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.get("kid").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// An RS256 ID token (`aud: sigstore`) for `sub`, with `email` and `email_verified: true`
    /// when an e-mail is given.
    pub async fn token(&self, sub: &str, email: Option<&str>) -> Result<String> {
        let mut form = vec![
            ("grant_type", ID_TOKEN_GRANT),
            ("client_id", CLIENT_ID),
            ("subject", sub),
        ];
        if let Some(email) = email {
            form.push(("email", email));
        }
        let resp = self
            .http
            .post(format!("{}/token", self.issuer))
            .form(&form)
            .send()
            .await
            .context("token request to the OIDC provider")?;
        let status = resp.status();
        let body: Value = resp.json().await.context("token response is not JSON")?;
        if !status.is_success() {
            bail!("OIDC provider token endpoint answered {status}: {body}");
        }
        body.get("id_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("token response has no id_token: {body}"))
    }

    /// Makes the provider sign with a new key (new `kid`), which it returns. With `keep_old` the
    /// previous keys stay published in the JWKS; without, only the new key is.
    pub async fn rotate_keys(&self, keep_old: bool) -> Result<String> {
        let resp = self
            .http
            .post(format!("{}/__test/rotate?keep_old={keep_old}", self.issuer))
            .send()
            .await
            .context("key rotation request")?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!("key rotation answered {status}: {body}");
        }
        body.get("kid")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("rotation response has no kid: {body}"))
    }

    /// The provider's output so far, for failure messages.
    pub fn output(&self) -> String {
        self.process.output()
    }

    async fn get_json(&self, url: &str) -> Result<Value> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            bail!("GET {url} answered {status}");
        }
        resp.json()
            .await
            .with_context(|| format!("GET {url}: not JSON"))
    }
}

/// What the user answers on the provider's consent page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consent {
    Approve,
    Deny,
}

impl OidcProvider {
    /// Plays the user's browser for an authorization code flow: opens `authorization_url`,
    /// follows the provider's redirects with its cookies, signs in as `login` (any password) and
    /// answers the consent page. Returns the URL the provider finally redirects the browser to
    /// (the client's `redirect_uri` with `code`/`state` or `error`), without opening it.
    pub async fn browser_sign_in(
        &self,
        authorization_url: &str,
        login: &str,
        consent: Consent,
    ) -> Result<String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mut cookies = BTreeMap::new();
        let own = format!("{}/", self.issuer);
        let mut url = reqwest::Url::parse(authorization_url)
            .with_context(|| format!("authorization URL {authorization_url}"))?;
        // Login and consent take a handful of hops; more means the provider is looping.
        for _ in 0..20 {
            if !url.as_str().starts_with(&own) {
                return Ok(url.to_string());
            }
            let resp = with_cookies(http.get(url.clone()), &cookies)
                .send()
                .await
                .with_context(|| format!("GET {url}"))?;
            keep_cookies(&resp, &mut cookies);
            if let Some(next) = location(&resp, &url)? {
                url = next;
                continue;
            }
            let status = resp.status();
            let page = resp.text().await?;
            if !status.is_success() {
                bail!("GET {url} answered {status}: {page}");
            }
            let action = form_action(&page)
                .ok_or_else(|| anyhow!("{url} shows no login or consent form: {page}"))?;
            let request = if page.contains(r#"name="prompt" value="login""#) {
                http.post(&action).form(&[
                    ("prompt", "login"),
                    ("login", login),
                    ("password", "any"),
                ])
            } else if consent == Consent::Approve {
                http.post(&action).form(&[("prompt", "consent")])
            } else {
                http.get(format!("{action}/abort"))
            };
            let resp = with_cookies(request, &cookies)
                .send()
                .await
                .with_context(|| format!("submitting the form of {url}"))?;
            keep_cookies(&resp, &mut cookies);
            url = match location(&resp, &url)? {
                Some(next) => next,
                None => bail!(
                    "submitting the form of {url} answered {} without a redirect: {}",
                    resp.status(),
                    resp.text().await.unwrap_or_default()
                ),
            };
        }
        bail!("the provider kept redirecting (last: {url})")
    }
}

fn with_cookies(
    req: reqwest::RequestBuilder,
    cookies: &BTreeMap<String, String>,
) -> reqwest::RequestBuilder {
    if cookies.is_empty() {
        return req;
    }
    let header = cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    req.header(reqwest::header::COOKIE, header)
}

/// A cookie jar good enough for one provider on one host: names and values, latest wins.
fn keep_cookies(resp: &reqwest::Response, cookies: &mut BTreeMap<String, String>) {
    for v in resp.headers().get_all(reqwest::header::SET_COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        let pair = v.split(';').next().unwrap_or_default();
        if let Some((k, val)) = pair.split_once('=') {
            cookies.insert(k.trim().to_string(), val.trim().to_string());
        }
    }
}

fn location(resp: &reqwest::Response, base: &reqwest::Url) -> Result<Option<reqwest::Url>> {
    if !resp.status().is_redirection() {
        return Ok(None);
    }
    let loc = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("{base} redirected without a Location"))?;
    Ok(Some(
        base.join(loc).with_context(|| format!("Location {loc}"))?,
    ))
}

/// The `action` of the page's form, HTML entities undone.
fn form_action(page: &str) -> Option<String> {
    let start = page.find("<form")?;
    let rest = page.get(start..)?;
    let at = rest.find("action=\"")? + "action=\"".len();
    let value = rest.get(at..)?;
    let end = value.find('"')?;
    Some(
        value
            .get(..end)?
            .replace("&#x2F;", "/")
            .replace("&#x3D;", "=")
            .replace("&amp;", "&"),
    )
}

/// `tests/oidc` in the workspace.
pub fn oidc_dir() -> PathBuf {
    workspace_root().join("tests").join("oidc")
}

/// The decoded header and claims of a JWT, without checking its signature.
pub fn jwt_parts(token: &str) -> Result<(Value, Value)> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("not a compact JWS (three dot-separated parts)");
    };
    let decode = |part: &str| -> Result<Value> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .context("JWT part is not base64url")?;
        serde_json::from_slice(&bytes).context("JWT part is not JSON")
    };
    Ok((decode(header)?, decode(claims)?))
}
