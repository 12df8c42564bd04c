//! A development OpenID issuer: discovery, JWKS and a token endpoint that hands an ID token for
//! the configured identity to anyone who asks. For laptops and tests only; `up` enables it and
//! the server warns loudly whenever it is on.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Value, json};
use sigil_core::crypto::SigningKey;

use crate::error::AppError;

/// The dev issuer's state.
pub struct DevOidc {
    pub issuer: String,
    pub subject: String,
    kid: String,
    encoding: EncodingKey,
    x: String,
    y: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    email: &'a str,
    email_verified: bool,
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
        })
    }

    /// An ID token for the configured identity, valid 10 minutes.
    pub fn token(&self) -> Result<String, AppError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let claims = Claims {
            iss: &self.issuer,
            sub: &self.subject,
            aud: "sigstore",
            email: &self.subject,
            email_verified: true,
            iat: now,
            nbf: now,
            exp: now + 600,
        };
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(AppError::internal)
    }
}

/// Routes under `/oidc`.
pub fn router(state: Arc<DevOidc>) -> Router {
    Router::new()
        .route("/oidc/.well-known/openid-configuration", get(discovery))
        .route("/oidc/jwks", get(jwks))
        .route("/oidc/token", post(token))
        .with_state(state)
}

async fn discovery(State(s): State<Arc<DevOidc>>) -> Json<Value> {
    Json(json!({
        "issuer": s.issuer,
        "jwks_uri": format!("{}/jwks", s.issuer),
        "token_endpoint": format!("{}/token", s.issuer),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "grant_types_supported": ["client_credentials"],
        "claims_supported": ["iss", "sub", "aud", "email", "email_verified", "iat", "exp"],
    }))
}

async fn jwks(State(s): State<Arc<DevOidc>>) -> Json<Value> {
    Json(json!({"keys": [{
        "kty": "EC", "crv": "P-256", "x": s.x, "y": s.y, "kid": s.kid, "use": "sig", "alg": "ES256",
    }]}))
}

async fn token(State(s): State<Arc<DevOidc>>, _body: Bytes) -> Result<Json<Value>, AppError> {
    let id_token = s.token()?;
    Ok(Json(json!({
        "access_token": id_token,
        "id_token": id_token,
        "token_type": "Bearer",
        "expires_in": 600,
    })))
}
