//! The timestamp authority role: RFC 3161 time-stamp tokens over HTTP, with the request forms of
//! Sigstore's timestamp-authority API.
//!
//! - `POST /api/v1/timestamp`: a DER `application/timestamp-query` (sigstore-python, openssl,
//!   rfc3161-client) or the JSON form `{"artifactHash", "hashAlgorithm", "nonce", "certificates"}`
//!   (sigstore-js); answers a DER `application/timestamp-reply` either way. A refused DER query
//!   gets 400 with a DER rejection (status 2, the PKIFailureInfo bit and the reason as
//!   statusString) so RFC 3161 clients can read why; a refused JSON request gets 400 with the
//!   usual `{code, message}` JSON.
//! - `GET /api/v1/timestamp/certchain`: the PEM chain, leaf first.

pub mod setup;
pub mod token;

use std::sync::Arc;
use std::time::SystemTime;

use crate::routes::Api;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

pub use token::{TimestampAuthority, TimestampRequest, TsaError};

use crate::error::AppError;

pub const QUERY_CONTENT_TYPE: &str = "application/timestamp-query";
pub const REPLY_CONTENT_TYPE: &str = "application/timestamp-reply";

/// Routes of the TSA.
pub fn router(tsa: Arc<TimestampAuthority>) -> Api {
    Api::new()
        .method_router(
            "POST",
            "/api/v1/timestamp",
            post(timestamp).layer(DefaultBodyLimit::max(token::MAX_QUERY_BYTES)),
        )
        .get("/api/v1/timestamp/certchain", certchain)
        .with_state(tsa)
}

async fn certchain(State(tsa): State<Arc<TimestampAuthority>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
        tsa.chain_pem(),
    )
        .into_response()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Der,
    Json,
}

fn form(headers: &HeaderMap, body: &[u8]) -> Result<Form, AppError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match ct.as_deref() {
        Some(QUERY_CONTENT_TYPE) => Ok(Form::Der),
        Some("application/json") => Ok(Form::Json),
        // No or a generic type (curl --data-binary): a DER query starts with a SEQUENCE tag.
        None | Some("application/octet-stream") | Some("application/x-www-form-urlencoded") => {
            Ok(if body.first() == Some(&b'{') {
                Form::Json
            } else {
                Form::Der
            })
        }
        Some(other) => Err(AppError::UnsupportedMediaType(format!(
            "Content-Type {other} is not accepted: send {QUERY_CONTENT_TYPE} (DER) or application/json"
        ))),
    }
}

fn reply(status: StatusCode, der: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, REPLY_CONTENT_TYPE)], der).into_response()
}

async fn timestamp(
    State(tsa): State<Arc<TimestampAuthority>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return AppError::TooLarge(format!(
                "time-stamp queries are at most {} bytes",
                token::MAX_QUERY_BYTES
            ))
            .into_response();
        }
        Err(e) => {
            return AppError::bad_request(format!("could not read the request body: {e}"))
                .into_response();
        }
    };
    let form = match form(&headers, &body) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let parsed = match form {
        Form::Der => token::parse_der_request(&body),
        Form::Json => token::parse_json_request(&body),
    };
    let issued = parsed.and_then(|req| {
        let serial: [u8; 20] = rand::random();
        tsa.issue(&req, SystemTime::now(), &serial)
    });
    match issued {
        Ok(der) => reply(StatusCode::OK, der),
        Err(e) => {
            let status = if e.is_client_error() {
                StatusCode::BAD_REQUEST
            } else {
                tracing::error!(error = %e, "time-stamp token not issued");
                StatusCode::INTERNAL_SERVER_ERROR
            };
            match form {
                Form::Der => reply(status, token::rejection(&e)),
                Form::Json if e.is_client_error() => {
                    AppError::BadRequest(e.to_string()).into_response()
                }
                Form::Json => AppError::Internal(e.to_string()).into_response(),
            }
        }
    }
}
