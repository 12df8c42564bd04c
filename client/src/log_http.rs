//! Requests to transparency logs: every one carries the log credential (`--log-token`), and a
//! log that asks for one (401) is asked again with the token `sigil login` stored.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::http::http;

static LOG_TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the credential every request to a transparency log carries (`--log-token`).
pub fn set_log_token(token: String) {
    let _ = LOG_TOKEN.set(token);
}

/// Sending to a transparency log, with the log credential.
pub trait SendToLog {
    /// Sends with `--log-token` when given. Without one, a 401 is answered by asking once
    /// more with the token `sigil login` stored: an identity token goes only to a log that
    /// asked for a credential. A final 401 or 403 is an error that says what to pass.
    fn send_to_log(self) -> Result<reqwest::blocking::Response>;
}

impl SendToLog for reqwest::blocking::RequestBuilder {
    fn send_to_log(self) -> Result<reqwest::blocking::Response> {
        let explicit = LOG_TOKEN.get();
        let again = self.try_clone();
        let first = match explicit {
            Some(t) => self.bearer_auth(t),
            None => self,
        };
        let mut resp = first.send()?;
        let mut stored_tried = false;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED
            && explicit.is_none()
            && let Some(again) = again
            && let Some(t) = crate::oidc::stored_token().ok().flatten()
        {
            stored_tried = true;
            resp = again.bearer_auth(t).send()?;
        }
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            let url = resp.url().clone();
            let text = resp.text().unwrap_or_default();
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or(text);
            let hint = match (explicit.is_some(), stored_tried) {
                (true, _) => "the --log-token given was not accepted",
                (false, true) => {
                    "the identity stored by `sigil login` was not accepted; pass --log-token \
                     (or SIGIL_LOG_TOKEN) with a credential this log accepts"
                }
                (false, false) => {
                    "pass --log-token (or SIGIL_LOG_TOKEN), or run `sigil login` first"
                }
            };
            bail!("{url} answered {status}: {message} ({hint})");
        }
        Ok(resp)
    }
}

/// GET (or POST `body` to) a transparency log's `url` (with the log credential) and return its JSON; `None` when the server answers 404 (no
/// such entry). A 5xx answer is a network error: the server, not the request, failed.
pub fn fetch_json(url: &str, body: Option<&Value>) -> Result<Option<Value>> {
    let client = http()?;
    let (req, method) = match body {
        Some(b) => (client.post(url).json(b), "POST"),
        None => (client.get(url), "GET"),
    };
    let resp = req
        .send_to_log()
        .with_context(|| format!("{method} {url}"))?;
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if status.is_server_error() {
        return Err(crate::exit::network(format!(
            "{url} answered {status}: {text}"
        )));
    }
    if !status.is_success() {
        bail!("{url} answered {status}: {text}");
    }
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{url}: the answer is not JSON: {text}"))
}
