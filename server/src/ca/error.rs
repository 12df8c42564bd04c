//! Errors of the CA, rendered as Fulcio renders them: JSON `{"code": <gRPC code>, "message"}` with
//! the HTTP status grpc-gateway maps that code to. Clients (cosign, sigstore-python, sigstore-js)
//! show `message`, so it says what to fix.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// gRPC status codes Fulcio answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcCode {
    InvalidArgument = 3,
    NotFound = 5,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

/// A failure of the CA. `Internal` details are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The identity token is missing, invalid or not acceptable.
    #[error("{0}")]
    Token(String),
    /// No token was presented.
    #[error("{0}")]
    MissingToken(String),
    /// The request (key, CSR, proof of possession, JSON) is malformed or fails a check.
    #[error("{0}")]
    BadRequest(String),
    /// The body exceeds the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The content type is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A dependency (OIDC provider, CT log) failed; retrying may help.
    #[error("{0}")]
    Unavailable(String),
    /// A configuration error found at start-up.
    #[error("{0}")]
    Config(String),
    /// A bug or an infrastructure failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CaError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
    pub fn bad_request(e: impl Into<String>) -> Self {
        Self::BadRequest(e.into())
    }
    pub fn token(e: impl Into<String>) -> Self {
        Self::Token(e.into())
    }

    pub fn grpc_code(&self) -> GrpcCode {
        match self {
            // Fulcio answers InvalidArgument for every identity-token failure.
            Self::Token(_) | Self::BadRequest(_) => GrpcCode::InvalidArgument,
            Self::MissingToken(_) => GrpcCode::Unauthenticated,
            Self::TooLarge(_) => GrpcCode::ResourceExhausted,
            Self::UnsupportedMediaType(_) => GrpcCode::InvalidArgument,
            Self::Unavailable(_) => GrpcCode::Unavailable,
            Self::Config(_) => GrpcCode::FailedPrecondition,
            Self::Internal(_) => GrpcCode::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Token(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::MissingToken(_) => StatusCode::UNAUTHORIZED,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Config(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Token(_) => "invalid_token",
            Self::MissingToken(_) => "missing_token",
            Self::BadRequest(_) => "bad_request",
            Self::TooLarge(_) => "too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Unavailable(_) => "unavailable",
            Self::Config(_) => "config",
            Self::Internal(_) => "internal",
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    code: u8,
    message: &'a str,
}

impl IntoResponse for CaError {
    fn into_response(self) -> Response {
        let message = match &self {
            Self::Internal(detail) | Self::Config(detail) => {
                tracing::error!(error = %detail, "CA internal error");
                "internal server error".to_string()
            }
            Self::Unavailable(detail) => {
                tracing::warn!(error = %detail, "CA dependency unavailable");
                detail.clone()
            }
            other => other.to_string(),
        };
        (
            self.status(),
            Json(Body {
                code: self.grpc_code() as u8,
                message: &message,
            }),
        )
            .into_response()
    }
}

impl From<CaError> for crate::error::AppError {
    fn from(e: CaError) -> Self {
        use crate::error::AppError;
        match e {
            CaError::Token(m) | CaError::BadRequest(m) => AppError::BadRequest(m),
            CaError::MissingToken(m) => AppError::Unauthorized(m),
            CaError::TooLarge(m) => AppError::TooLarge(m),
            CaError::UnsupportedMediaType(m) => AppError::UnsupportedMediaType(m),
            CaError::Unavailable(m) => AppError::Unavailable {
                message: m,
                retry_after_secs: 1,
            },
            CaError::Config(m) | CaError::Internal(m) => AppError::Internal(m),
        }
    }
}
