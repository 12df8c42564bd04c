//! Where a signing command's identity token comes from: an explicit or ambient token first, else
//! an interactive sign-in (the browser flow when someone is at the terminal or `--browser` asks
//! for it, the device flow otherwise).

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Args;

use crate::browser_login::{BrowserLogin, browser_login};

/// The OAuth client id Sigstore issuers register for command-line clients.
pub const DEFAULT_CLIENT_ID: &str = "sigstore";

/// Options for signing in when no token is at hand.
#[derive(Args, Clone, Debug)]
pub struct SignInArgs {
    /// OpenID Provider to sign in with (default: the signing config's OIDC URL).
    #[arg(long)]
    pub oidc_issuer: Option<String>,
    /// OAuth client id for the sign-in [default: sigstore].
    #[arg(long)]
    pub oidc_client_id: Option<String>,
    /// Sign in through the browser even when the terminal is not interactive.
    #[arg(long)]
    pub browser: bool,
    /// Only print the sign-in URL; do not start a browser.
    #[arg(long, env = "SIGIL_NO_LAUNCH_BROWSER")]
    pub no_launch_browser: bool,
    /// Seconds to wait for the browser sign-in.
    #[arg(long, default_value_t = 300)]
    pub oidc_timeout: u64,
}

impl Default for SignInArgs {
    fn default() -> Self {
        SignInArgs {
            oidc_issuer: None,
            oidc_client_id: None,
            browser: false,
            no_launch_browser: false,
            oidc_timeout: 300,
        }
    }
}

impl SignInArgs {
    /// The token for keyless signing: `explicit`, `SIGSTORE_ID_TOKEN`, GitHub Actions, a token
    /// stored by `sigil login`, else an interactive sign-in with `default_issuer` (the signing
    /// config's).
    pub fn token(&self, explicit: Option<&str>, default_issuer: Option<&str>) -> Result<String> {
        if let Some(t) = explicit.filter(|t| !t.is_empty()) {
            return Ok(t.trim().to_owned());
        }
        // `--browser` asks for a fresh sign-in: ambient and stored tokens are passed over.
        if !self.browser
            && let Some(t) = crate::oidc::ambient_token(None)?
        {
            return Ok(t);
        }
        let issuer = self
            .oidc_issuer
            .as_deref()
            .or(default_issuer)
            .ok_or_else(|| {
                anyhow!(
                    "no identity token: pass --identity-token, set SIGSTORE_ID_TOKEN, or name an \
                     issuer with --oidc-issuer"
                )
            })?;
        let client_id = self.oidc_client_id.as_deref().unwrap_or(DEFAULT_CLIENT_ID);
        if self.browser || interactive() {
            return browser_login(&self.browser_login(issuer, client_id));
        }
        crate::oidc::device_flow(issuer, client_id).context(
            "no identity token (pass --identity-token, set SIGSTORE_ID_TOKEN, run `sigil login`, \
             or pass --browser to sign in through a browser)",
        )
    }

    /// The browser flow's settings for `issuer`.
    pub fn browser_login<'a>(&self, issuer: &'a str, client_id: &'a str) -> BrowserLogin<'a> {
        BrowserLogin {
            issuer,
            client_id,
            launch_browser: !self.no_launch_browser,
            timeout: Duration::from_secs(self.oidc_timeout),
        }
    }
}

/// Someone is at the terminal to use a browser (as cosign and sigstore-python decide).
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}
