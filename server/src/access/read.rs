//! Authenticated reads: with `[read_access]` on, every read route of the logs (Rekor v1 and v2,
//! their shards, Sigil's search, CT) answers 401 without a reader credential and 403 with one
//! the claim rule does not allow. The layer wraps each log's whole router, so a read route
//! added to a log later is protected without being listed anywhere; only the logs' write
//! routes pass through (they have their own admission policy). Trust files, the TUF
//! repository, the CA and the TSA stay public: clients need them before they have anything.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::credentials::{CredentialConfig, Credentials, Principal, Refusal};
use crate::error::AppError;
use crate::routes::Api;
use crate::tls::Peer;

/// `[read_access]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReadAccessConfig {
    /// Off (the default, and in `up`): the logs are readable by anyone who reaches them.
    #[serde(default)]
    pub enabled: bool,
    /// Who may read.
    #[serde(default)]
    pub readers: CredentialConfig,
    /// Readers may also present a client certificate issued by this CA (PEM, relative to the
    /// data dir); the server must terminate TLS (`server.tls_cert`). Empty: none.
    #[serde(default)]
    pub client_ca: PathBuf,
}

impl ReadAccessConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.readers.validate("read_access.readers")?;
        if self.enabled && !self.readers.any() && self.client_ca.as_os_str().is_empty() {
            return Err(
                "read_access: reads are restricted but no reader credential is configured: set \
                 read_access.readers.tokens_file, read_access.readers.oidc_issuer or \
                 read_access.client_ca"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The readers' credentials.
pub struct ReadAccess {
    readers: Option<Credentials>,
}

impl ReadAccess {
    /// `None` when reads are open.
    pub fn load(cfg: &ReadAccessConfig, data_dir: &Path) -> anyhow::Result<Option<Arc<Self>>> {
        if !cfg.enabled {
            return Ok(None);
        }
        let readers = Credentials::load(&cfg.readers, data_dir)?;
        Ok(Some(Arc::new(Self { readers })))
    }

    /// A client certificate the TLS handshake verified admits by itself; else the bearer
    /// credential decides.
    async fn check(
        &self,
        peer: Option<&Peer>,
        headers: &axum::http::HeaderMap,
    ) -> Result<Principal, Refusal> {
        if let Some(der) = peer.and_then(|p| p.client_cert.as_ref()) {
            use der::Decode;
            let who = x509_cert::Certificate::from_der(der)
                .map(|c| c.tbs_certificate.subject.to_string())
                .unwrap_or_else(|_| "a verified client certificate".into());
            return Ok(Principal {
                rule: "client-certificate",
                who,
            });
        }
        match &self.readers {
            Some(r) => r.check(headers).await,
            None => Err(Refusal::Missing),
        }
    }
}

/// Puts the reader check in front of every read route of a log's router (a no-op when reads
/// are open).
pub fn protect_reads(api: Api, access: &Option<Arc<ReadAccess>>) -> Api {
    match access {
        Some(a) => {
            let a = a.clone();
            api.map_router(|r| r.layer(middleware::from_fn_with_state(a, require_reader)))
        }
        None => api,
    }
}

/// A log request that only reads: GET/HEAD, and the POSTs that search (`…/retrieve`).
pub fn is_log_read(method: &Method, path: &str) -> bool {
    method == Method::GET
        || method == Method::HEAD
        || method == Method::POST && (path.ends_with("/retrieve") || path.ends_with("/retrieve/"))
}

async fn require_reader(
    State(access): State<Arc<ReadAccess>>,
    req: Request,
    next: Next,
) -> Response {
    if !is_log_read(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    // The headers alone cross the await: a request body is not Sync.
    let headers = req.headers().clone();
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<Peer>>()
        .map(|c| c.0.clone());
    match access.check(peer.as_ref(), &headers).await {
        Ok(p) => {
            crate::metrics::access("read", "admitted", p.rule);
            next.run(req).await
        }
        Err(refusal) => {
            crate::metrics::access("read", "refused", refusal.rule());
            tracing::warn!(
                rule = refusal.rule(),
                path = req.uri().path(),
                reason = %refusal.message(),
                "read refused"
            );
            let message = format!(
                "reading this log needs a reader credential: {}",
                refusal.message()
            );
            match refusal {
                Refusal::NotAllowed { .. } => AppError::Forbidden(message).into_response(),
                Refusal::Missing | Refusal::Invalid { .. } => {
                    let mut resp = AppError::Unauthorized(message).into_response();
                    resp.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"sigil-log\""),
                    );
                    resp
                }
            }
        }
    }
}
