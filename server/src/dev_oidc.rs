//! A development OpenID issuer: discovery, JWKS and a token endpoint that hands an ID token for
//! the configured identity to anyone who asks. For laptops and tests only; `up` enables it and
//! the server warns loudly whenever it is on.
//!
//! It also runs the authorization code flow with PKCE for `sigil login --browser` and other
//! clients' browser sign-ins: the authorization endpoint approves at once (there is no user to
//! ask) and only ever redirects to a loopback URI, so it is no open redirector.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::routes::Api;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Value, json};
use sigil_core::crypto::SigningKey;

use crate::error::AppError;

/// The audience of every dev token, and the one client of the code flow.
const CLIENT_ID: &str = "sigstore";
/// How long an authorization code may wait for its exchange.
const CODE_TTL_SECS: u64 = 60;
/// Codes pending at once; a dev issuer needs few, and the map must not grow without bound.
const MAX_PENDING_CODES: usize = 1024;

/// The dev issuer's state.
pub struct DevOidc {
    pub issuer: String,
    pub subject: String,
    kid: String,
    encoding: EncodingKey,
    x: String,
    y: String,
    codes: Mutex<HashMap<String, PendingCode>>,
}

/// An issued, not yet exchanged authorization code.
struct PendingCode {
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    expires: u64,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    email: &'a str,
    email_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    iat: u64,
    nbf: u64,
    exp: u64,
}

impl DevOidc {
    /// `key` must be an ECDSA P-256 key (ES256).
    pub fn new(issuer: String, subject: String, key: &SigningKey) -> Result<Self, String> {
        let pem = key.to_pkcs8_pem().map_err(|e| e.to_string())?;
        let encoding =
            EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| format!("dev OIDC key: {e}"))?;
        let spki = key.public_key().spki_der().to_vec();
        // The uncompressed point 0x04 || X || Y closes a P-256 SPKI.
        let point = spki
            .len()
            .checked_sub(65)
            .and_then(|start| spki.get(start..))
            .filter(|p| p.first() == Some(&4))
            .ok_or("dev OIDC key must be ECDSA P-256")?;
        let x = URL_SAFE_NO_PAD.encode(point.get(1..33).unwrap_or_default());
        let y = URL_SAFE_NO_PAD.encode(point.get(33..65).unwrap_or_default());
        let kid = hex::encode(
            sigil_core::crypto::sha256(&spki)
                .get(..8)
                .unwrap_or_default(),
        );
        Ok(Self {
            issuer,
            subject,
            kid,
            encoding,
            x,
            y,
            codes: Mutex::new(HashMap::new()),
        })
    }

    /// An ID token for the configured identity, valid 10 minutes.
    pub fn token(&self) -> Result<String, AppError> {
        self.token_with_nonce(None)
    }

    /// An ID token carrying the client's `nonce` (code flow).
    fn token_with_nonce(&self, nonce: Option<&str>) -> Result<String, AppError> {
        let now = now();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let claims = Claims {
            iss: &self.issuer,
            sub: &self.subject,
            aud: "sigstore",
            email: &self.subject,
            email_verified: true,
            nonce,
            iat: now,
            nbf: now,
            exp: now + 600,
        };
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(AppError::internal)
    }
}

/// Routes under `/oidc`.
pub fn router(state: Arc<DevOidc>) -> Api {
    Api::new()
        .get("/oidc/.well-known/openid-configuration", discovery)
        .get("/oidc/jwks", jwks)
        .post("/oidc/token", token)
        .get("/oidc/authorize", authorize)
        .with_state(state)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

async fn discovery(State(s): State<Arc<DevOidc>>) -> Json<Value> {
    Json(json!({
        "issuer": s.issuer,
        "jwks_uri": format!("{}/jwks", s.issuer),
        "token_endpoint": format!("{}/token", s.issuer),
        "authorization_endpoint": format!("{}/authorize", s.issuer),
        "response_types_supported": ["code", "id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["openid", "email"],
        "authorization_response_iss_parameter_supported": true,
        "claims_supported": ["iss", "sub", "aud", "email", "email_verified", "iat", "exp"],
    }))
}

async fn jwks(State(s): State<Arc<DevOidc>>) -> Json<Value> {
    Json(json!({"keys": [{
        "kty": "EC", "crv": "P-256", "x": s.x, "y": s.y, "kid": s.kid, "use": "sig", "alg": "ES256",
    }]}))
}

/// Approves at once: checks the request, then redirects to the loopback `redirect_uri` with a
/// single-use code bound to the PKCE challenge.
async fn authorize(
    State(s): State<Arc<DevOidc>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Redirect, AppError> {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let redirect_uri = get("redirect_uri").ok_or_else(|| {
        AppError::bad_request("redirect_uri is required (http://127.0.0.1:<port>/<path>)")
    })?;
    let mut target = reqwest::Url::parse(redirect_uri)
        .map_err(|e| AppError::bad_request(format!("redirect_uri is not a URL: {e}")))?;
    if target.scheme() != "http"
        || !matches!(target.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
        || target.fragment().is_some()
    {
        return Err(AppError::bad_request(
            "the development issuer only redirects to loopback URIs (http://127.0.0.1:<port>/<path>)",
        ));
    }
    if get("client_id") != Some(CLIENT_ID) {
        return Err(AppError::bad_request(format!(
            "unknown client_id: the development issuer's only client is {CLIENT_ID}"
        )));
    }
    if get("response_type") != Some("code") {
        return Err(AppError::bad_request("response_type must be code"));
    }
    if get("code_challenge_method") != Some("S256") {
        return Err(AppError::bad_request(
            "PKCE is required: code_challenge_method=S256 and a code_challenge",
        ));
    }
    let challenge = get("code_challenge")
        .filter(|c| (43..=128).contains(&c.len()))
        .ok_or_else(|| AppError::bad_request("code_challenge must be 43 to 128 characters"))?;
    let code = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    {
        let now = now();
        let mut codes = s.codes.lock().map_err(AppError::internal)?;
        codes.retain(|_, c| c.expires > now);
        if codes.len() >= MAX_PENDING_CODES {
            return Err(AppError::Unavailable {
                message: "too many sign-ins in progress; retry in a minute".into(),
                retry_after_secs: 60,
            });
        }
        codes.insert(
            code.clone(),
            PendingCode {
                redirect_uri: redirect_uri.to_owned(),
                code_challenge: challenge.to_owned(),
                nonce: get("nonce").map(str::to_owned),
                expires: now + CODE_TTL_SECS,
            },
        );
    }
    {
        let mut pairs = target.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(state) = get("state") {
            pairs.append_pair("state", state);
        }
        pairs.append_pair("iss", &s.issuer);
    }
    Ok(Redirect::to(target.as_str()))
}

/// A token endpoint failure: an OAuth error answer (RFC 6749 §5.2, which clients parse) that
/// also carries the server's `{code, message}`, or a server error.
enum TokenError {
    OAuth(&'static str, &'static str),
    App(AppError),
}

impl From<AppError> for TokenError {
    fn from(e: AppError) -> Self {
        TokenError::App(e)
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        match self {
            TokenError::OAuth(error, description) => (
                StatusCode::BAD_REQUEST,
                Json(json!({
                    "error": error,
                    "error_description": description,
                    "code": 400,
                    "message": description,
                })),
            )
                .into_response(),
            TokenError::App(e) => e.into_response(),
        }
    }
}

/// The code exchange: the code is used up whatever the outcome.
fn exchange_code(s: &DevOidc, form: &HashMap<String, String>) -> Result<String, TokenError> {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != CLIENT_ID {
        return Err(TokenError::OAuth(
            "invalid_client",
            "the development issuer's only client is sigstore",
        ));
    }
    let pending = s
        .codes
        .lock()
        .map_err(AppError::internal)?
        .remove(get("code"));
    let Some(p) = pending.filter(|p| p.expires > now()) else {
        return Err(TokenError::OAuth(
            "invalid_grant",
            "unknown, used or expired authorization code",
        ));
    };
    if get("redirect_uri") != p.redirect_uri {
        return Err(TokenError::OAuth(
            "invalid_grant",
            "redirect_uri differs from the authorization request's",
        ));
    }
    let verifier = get("code_verifier");
    if URL_SAFE_NO_PAD.encode(sigil_core::crypto::sha256(verifier.as_bytes())) != p.code_challenge {
        return Err(TokenError::OAuth(
            "invalid_grant",
            "code_verifier does not match the code_challenge (PKCE)",
        ));
    }
    Ok(s.token_with_nonce(p.nonce.as_deref())?)
}

async fn token(State(s): State<Arc<DevOidc>>, body: Bytes) -> Result<Json<Value>, TokenError> {
    // Anyone may POST for a token; a form with grant_type=authorization_code is the code flow.
    let form: HashMap<String, String> = std::str::from_utf8(&body)
        .ok()
        .and_then(|b| format!("/?{b}").parse::<Uri>().ok())
        .and_then(|u| Query::try_from_uri(&u).ok())
        .map(|Query(f)| f)
        .unwrap_or_default();
    let id_token = if form.get("grant_type").map(String::as_str) == Some("authorization_code") {
        exchange_code(&s, &form)?
    } else {
        s.token()?
    };
    Ok(Json(json!({
        "access_token": id_token,
        "id_token": id_token,
        "token_type": "Bearer",
        "expires_in": 600,
    })))
}
