//! Identity tokens: explicit, environment, GitHub Actions ambient credentials, a token stored by
//! `sigil login`, or the OAuth 2.0 device flow.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// The claims of a JWT, decoded without verifying (the CA verifies; the client only reads them).
pub fn unverified_claims(token: &str) -> Result<Value> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| anyhow!("identity token is not a JWT"))?;
    let raw = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .context("identity token payload is not base64url")?;
    serde_json::from_slice(&raw).context("identity token payload is not JSON")
}

/// The proof-of-possession challenge Fulcio expects: the e-mail for e-mail identities, else `sub`.
pub fn challenge_claim(claims: &Value) -> Result<String> {
    claims
        .get("email")
        .and_then(Value::as_str)
        .or_else(|| claims.get("sub").and_then(Value::as_str))
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("identity token has neither an email nor a sub claim"))
}

fn http() -> Result<reqwest::blocking::Client> {
    Ok(crate::http::builder()
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// GitHub Actions ambient credentials (`id-token: write` permission).
pub fn github_actions_token(audience: &str) -> Result<Option<String>> {
    let (Ok(url), Ok(bearer)) = (
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL"),
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ) else {
        return Ok(None);
    };
    let resp: Value = http()?
        .get(&url)
        .query(&[("audience", audience)])
        .bearer_auth(bearer)
        .send()
        .context("requesting the GitHub Actions ID token")?
        .error_for_status()?
        .json()?;
    let v = resp
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("GitHub Actions token response lacks value"))?;
    Ok(Some(v.to_owned()))
}

fn stored_token_path() -> Result<std::path::PathBuf> {
    Ok(crate::config::config_dir()?.join("id_token"))
}

/// A token saved by `sigil login`, if still valid for a minute.
pub fn stored_token() -> Result<Option<String>> {
    let p = stored_token_path()?;
    let Ok(t) = std::fs::read_to_string(&p) else {
        return Ok(None);
    };
    let t = t.trim().to_owned();
    let exp = unverified_claims(&t)
        .ok()
        .and_then(|c| c.get("exp").and_then(Value::as_i64))
        .unwrap_or(0);
    Ok((exp > crate::config::now() + 60).then_some(t))
}

/// Saves a token for later commands.
pub fn store_token(token: &str) -> Result<std::path::PathBuf> {
    let p = stored_token_path()?;
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&p, token)?;
    Ok(p)
}

/// Sigil's development issuer hands out a token on `POST <issuer>/token`.
pub fn dev_issuer_token(issuer: &str) -> Result<String> {
    let url = format!("{}/token", issuer.trim_end_matches('/'));
    let resp = http()?
        .post(&url)
        .send()
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .with_context(|| format!("{url}: answer is not JSON"))?;
    if !status.is_success() {
        bail!("{url} answered {status}: {body}");
    }
    body.get("id_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{url}: no id_token in {body}"))
}

/// OAuth 2.0 device authorization grant (RFC 8628) against the issuer's discovery document.
pub fn device_flow(issuer: &str, client_id: &str) -> Result<String> {
    let client = http()?;
    let disc_url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let disc: Value = client.get(&disc_url).send()?.error_for_status()?.json()?;
    let device_ep = disc
        .get("device_authorization_endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            anyhow!("{issuer} does not offer the device flow (no device_authorization_endpoint)")
        })?;
    let token_ep = disc
        .get("token_endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no token_endpoint"))?;
    let start: Value = client
        .post(device_ep)
        .form(&[("client_id", client_id), ("scope", "openid email")])
        .send()?
        .error_for_status()?
        .json()?;
    let device_code = start
        .get("device_code")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no device_code"))?;
    let uri = start
        .get("verification_uri_complete")
        .or_else(|| start.get("verification_uri"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let code = start.get("user_code").and_then(Value::as_str).unwrap_or("");
    eprintln!("To sign in, open {uri} and enter the code {code}");
    let mut interval = start.get("interval").and_then(Value::as_u64).unwrap_or(5);
    let deadline = std::time::Instant::now()
        + Duration::from_secs(
            start
                .get("expires_in")
                .and_then(Value::as_u64)
                .unwrap_or(600),
        );
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(interval));
        let resp: Value = client
            .post(token_ep)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code),
                ("client_id", client_id),
            ])
            .send()?
            .json()?;
        if let Some(t) = resp.get("id_token").and_then(Value::as_str) {
            return Ok(t.to_owned());
        }
        match resp.get("error").and_then(Value::as_str) {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += 5,
            Some(e) => bail!("device flow failed: {e}"),
            None => bail!("device flow: unexpected answer {resp}"),
        }
    }
    bail!("device flow timed out")
}

/// Picks a token: explicit, `SIGSTORE_ID_TOKEN`, GitHub Actions, stored by `sigil login`.
pub fn ambient_token(explicit: Option<&str>) -> Result<Option<String>> {
    if let Some(t) = explicit.filter(|t| !t.is_empty()) {
        return Ok(Some(t.trim().to_owned()));
    }
    if let Ok(t) = std::env::var("SIGSTORE_ID_TOKEN")
        && !t.is_empty()
    {
        return Ok(Some(t.trim().to_owned()));
    }
    if let Some(t) = github_actions_token("sigstore")? {
        return Ok(Some(t));
    }
    stored_token()
}
