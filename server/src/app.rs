//! Assembles the configured roles into one HTTP service: path-routed log, CT log, CA, dev OIDC
//! issuer and trust files, plus health, readiness and metrics, behind the common middleware.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::access::protect_reads;
use crate::config::{Config, resolve};
use crate::keyfile::{read_certs, read_key, read_public_key};
use crate::log::engine::{LogEngine, ReadRouting};
use crate::routes::{Api, Route};
use crate::storage::Store;
use crate::trust::TrustInputs;

/// A built service: the router and what `up` prints.
pub struct Service {
    pub router: Router,
    /// Every route `router` serves (what `/api/openapi.json` documents).
    pub routes: Vec<Route>,
    pub trust: Arc<TrustInputs>,
    pub engines: Vec<LogEngine>,
    pub db: Store,
}

/// Build every enabled role.
pub async fn build(cfg: &Config, data_dir: &Path) -> anyhow::Result<Service> {
    let db_url = database_url(&cfg.database.url, data_dir);
    let db = crate::storage::connect_serving(&db_url, cfg.database.pool_size, false)
        .await
        .with_context(|| format!("cannot open database {}", redact(&db_url)))?;
    let mut engine_cfg = crate::log::setup::engine_config(cfg, data_dir)?;
    let routing = match &cfg.database.read_url {
        Some(url) => {
            let replica = crate::storage::connect_serving(url, cfg.database.pool_size, true)
                .await
                .with_context(|| format!("cannot open the read replica {}", redact(url)))?;
            let r = ReadRouting::new(
                replica,
                Duration::from_millis(cfg.database.replica_max_lag_ms),
                cfg.database.replica_fallback,
            );
            engine_cfg.replica = Some(r.clone());
            Some(r)
        }
        None => None,
    };
    let readers = crate::access::ReadAccess::load(&cfg.read_access, data_dir)?;
    let mut router = Api::new();
    let mut engines = Vec::new();
    let mut trust = TrustInputs {
        base_url: cfg.server.public_url.clone(),
        log_url: cfg.trust_log_url(),
        ct_url: cfg.trust_ct_url(),
        ca_url: cfg.trust_ca_url(),
        valid_from: "2020-01-01T00:00:00Z".into(),
        log_key: None,
        ct_key: None,
        log_v2_key: None,
        ca_chain: Vec::new(),
        tsa_chain: Vec::new(),
        tsa_url: cfg.trust_tsa_url(),
        oidc_url: cfg.trust_oidc_url(),
        operator: "sigil".into(),
        history: crate::trust_history::History::load(data_dir)?,
        witnessing: Vec::new(),
    };
    // Split deployments share the keys volume: describe the roles this process does not run too.
    if !cfg.log.enabled {
        let log_key = resolve(data_dir, &cfg.log.key);
        if log_key.exists() {
            trust.log_key = Some(read_key(&log_key)?.public_key());
        }
    }

    if cfg.log.enabled {
        let admission = admission("rekor", &cfg.log.admission, cfg, data_dir, &trust.history)?;
        let log =
            crate::log::setup::rekor_v1(cfg, data_dir, &db, engine_cfg.clone(), admission).await?;
        router = router.merge(protect_reads(log.api, &readers));
        engines.push(log.engine);
        trust
            .witnessing
            .push((log.public_key.clone(), cfg.log.witnessing.clone()));
        trust.log_key = Some(log.public_key);
    }
    // Rekor v2: its own log (`rekor-v2`, own key) on the same database and engine.
    let v2_key_path = resolve(data_dir, &cfg.rekor_v2.key);
    if cfg.log.enabled && cfg.rekor_v2.enabled {
        let admission = admission(
            "rekor-v2",
            &cfg.rekor_v2.admission,
            cfg,
            data_dir,
            &trust.history,
        )?;
        let log =
            crate::log::setup::rekor_v2(cfg, data_dir, &db, engine_cfg.clone(), admission).await?;
        router = router.merge(protect_reads(log.api, &readers));
        engines.push(log.engine);
        trust
            .witnessing
            .push((log.public_key.clone(), cfg.rekor_v2.witnessing.clone()));
        trust.log_v2_key = Some(log.public_key);
    } else if cfg.rekor_v2.enabled && v2_key_path.exists() {
        trust.log_v2_key = Some(read_key(&v2_key_path)?.public_key());
    }

    let tsa_chain_path = resolve(data_dir, &cfg.tsa.cert_chain);
    if cfg.tsa.enabled {
        let tsa = crate::tsa::setup::load(&resolve(data_dir, &cfg.tsa.key), &tsa_chain_path)?;
        trust.tsa_chain = tsa.chain().to_vec();
        router = router.merge(crate::tsa::router(Arc::new(tsa)));
    } else if tsa_chain_path.exists() {
        trust.tsa_chain = read_certs(&tsa_chain_path)?;
    }

    let ca_root = resolve(data_dir, &cfg.ca.root_cert);
    if cfg.ct.enabled {
        let log = crate::log::setup::ct(cfg, data_dir, &db, engine_cfg).await?;
        router = router.merge(protect_reads(log.api, &readers));
        engines.push(log.engine);
        trust
            .witnessing
            .push((log.public_key.clone(), cfg.ct.witnessing.clone()));
        trust.ct_key = Some(log.public_key);
    } else if cfg.ca.enabled {
        trust.ct_key = Some(read_public_key(&resolve(
            data_dir,
            &cfg.ca.ct_log_public_key,
        ))?);
    }

    if cfg.dev_oidc.enabled {
        tracing::warn!(
            issuer = %cfg.dev_issuer_url(),
            subject = %cfg.dev_oidc.subject,
            "the development OIDC issuer is ON: anyone who can reach this server can get a certificate for {}. Never enable it in production.",
            cfg.dev_oidc.subject
        );
        let key = read_key(&resolve(data_dir, &cfg.dev_oidc.key))?;
        let dev =
            crate::dev_oidc::DevOidc::new(cfg.dev_issuer_url(), cfg.dev_oidc.subject.clone(), &key)
                .map_err(anyhow::Error::msg)?;
        router = router.merge(crate::dev_oidc::router(Arc::new(dev)));
    }

    if cfg.ca.enabled {
        let (ca_router, chain) = crate::ca::setup::build(
            &cfg.ca,
            data_dir,
            &crate::ca::setup::Wiring {
                dev_issuer: cfg.dev_oidc.enabled.then(|| cfg.dev_issuer_url()),
                ct_log_url: cfg.ct_log_url(),
                max_body_bytes: cfg.server.max_body_bytes,
            },
        )
        .await?;
        router = router.merge(ca_router);
        trust.ca_chain = chain;
    } else if ca_root.exists() {
        trust.ca_chain = crate::ca::setup::ca_chain(&cfg.ca, data_dir)?;
    }

    let trust = Arc::new(trust);
    router = router.merge(crate::trust::router(trust.clone()));
    if cfg.log.enabled || cfg.rekor_v2.enabled || cfg.ct.enabled {
        router = router.merge(crate::explorer::router());
    }
    if cfg.tuf.enabled {
        let repo = crate::tuf::open(cfg, data_dir)?;
        crate::tuf::publish(&repo, &trust).context("cannot publish the TUF targets")?;
        router = router.merge(crate::tuf::router(repo.dir().to_path_buf()));
        crate::tuf::spawn_resigner(Arc::new(repo));
    }
    let (router, routes) = router
        .get("/healthz", || async { "ok" })
        .merge(Api::new().get("/readyz", readyz).with_state(db.clone()))
        .get("/metrics", metrics)
        .get("/api/openapi.json", crate::openapi::serve)
        .into_parts();
    // One layer of the whole stack: each `Router::layer` call wraps (and clones, per request)
    // every route once more. Outermost first.
    let common = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(RequestIds::default()))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(cfg.server.request_timeout_secs),
        ))
        .layer(DefaultBodyLimit::max(cfg.server.max_body_bytes))
        .layer(middleware::from_fn(track))
        .layer(middleware::from_fn_with_state(routing, route_reads));
    let router = router.fallback(no_route).layer(common);
    Ok(Service {
        router,
        routes,
        trust,
        engines,
        db,
    })
}

/// `x-request-id` values: a random per-process prefix and a counter, unique without a call to
/// the system's random source per request (a UUID each cost a `getrandom` system call).
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        let seed: u64 = rand::random();
        RequestIds {
            prefix: format!("{seed:016x}").into(),
            next: Arc::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// A log's write admission policy, judged against this deployment's CA chains (the current
/// one and every rotated one): wired here, where the CA and the logs meet.
fn admission(
    log: &'static str,
    policy: &crate::access::AdmissionConfig,
    cfg: &Config,
    data_dir: &Path,
    history: &crate::trust_history::History,
) -> anyhow::Result<Option<Arc<crate::access::Admission>>> {
    if !policy.enabled {
        return Ok(None);
    }
    let mut chains = Vec::new();
    if policy.this_ca && resolve(data_dir, &cfg.ca.root_cert).exists() {
        chains.push(crate::ca::setup::ca_chain(&cfg.ca, data_dir)?);
        chains.extend(history.retired("ca").map(|r| r.chain_der()));
    }
    Ok(crate::access::Admission::load(log, policy, data_dir, &chains)?.map(Arc::new))
}

/// `sqlite://relative.db` is relative to the data dir.
pub fn database_url(url: &str, data_dir: &Path) -> String {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let p = PathBuf::from(path);
        if p.is_relative() {
            return format!("sqlite://{}", data_dir.join(p).display());
        }
    }
    url.to_string()
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = url.get(s + 3..at).unwrap_or_default();
            match creds.split_once(':') {
                Some((user, _)) => format!(
                    "{}{user}:***{}",
                    url.get(..s + 3).unwrap_or_default(),
                    url.get(at..).unwrap_or_default()
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Unknown paths get the same JSON error as everything else.
async fn no_route(uri: axum::http::Uri) -> crate::error::AppError {
    crate::error::AppError::not_found(format!(
        "no such endpoint: {}; /api/openapi.json lists them",
        uri.path()
    ))
}

async fn readyz(State(db): State<Store>) -> Response {
    match db.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
        .into_response()
}

/// With a read replica: decides, once per read request, which database serves it (the
/// standby while it is within the lag bound), says which in `X-Sigil-Read-Source`, and answers
/// 503 when the standby lags and falling back to the primary is turned off. Writes and requests
/// that write as they read always use the primary.
async fn route_reads(
    State(routing): State<Option<Arc<ReadRouting>>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(routing) = routing.filter(|_| is_read(&req)) else {
        return next.run(req).await;
    };
    let source = match routing.decide() {
        Ok(s) => s,
        Err(message) => {
            crate::metrics::read_from("refused");
            let mut resp = crate::error::AppError::Unavailable {
                message,
                retry_after_secs: 1,
            }
            .into_response();
            resp.headers_mut()
                .insert("x-sigil-read-source", HeaderValue::from_static("none"));
            return resp;
        }
    };
    crate::metrics::read_from(source.as_str());
    let mut resp = crate::log::engine::replica::with_source(source, next.run(req)).await;
    resp.headers_mut().insert(
        "x-sigil-read-source",
        HeaderValue::from_static(source.as_str()),
    );
    resp
}

/// The logs' GETs, and the POSTs that only search (`…/retrieve`). The CA's `/api/v2/…` routes
/// are not the log's: a lagging standby must not refuse them.
fn is_read(req: &Request) -> bool {
    let path = req.uri().path();
    let log = [
        "/api/v1/log",
        "/api/v1/index",
        "/api/v2/log/",
        "/api/v2/checkpoint",
        "/api/v2/tile/",
        "/api/v2/sigil/",
        "/ct/v1/",
        "/shards/",
    ]
    .iter()
    .any(|p| path.starts_with(p));
    log && crate::access::read::is_log_read(req.method(), path)
}

/// Per-route request counts, latencies and error categories.
async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status();
    crate::metrics::observe_request(&route, status.as_u16(), start.elapsed().as_secs_f64());
    if status.is_client_error() || status.is_server_error() {
        crate::metrics::error(status.canonical_reason().unwrap_or("error"));
    }
    resp
}
