//! Prometheus metrics: one registry for the process, families named `sigil_*`.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    log_size: IntGaugeVec,
    summarised: IntGaugeVec,
    batch_size: HistogramVec,
    read_batch: HistogramVec,
    queue_depth: IntGaugeVec,
    certs_issued: IntCounterVec,
    errors: IntCounterVec,
    tuf_signed: IntCounterVec,
    tuf_expires: IntGaugeVec,
    tuf_failures: IntCounterVec,
    reads: IntCounterVec,
    replica_lag: prometheus::Gauge,
    access: IntCounterVec,
    witness: IntCounterVec,
    cosign_failures: prometheus::IntCounter,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(
            "sigil_http_requests_total",
            "HTTP requests by route and status",
        ),
        &["route", "status"],
    )?;
    let latency = HistogramVec::new(
        HistogramOpts::new(
            "sigil_http_request_duration_seconds",
            "HTTP request latency by route",
        )
        .buckets(vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]),
        &["route"],
    )?;
    let log_size = IntGaugeVec::new(
        Opts::new("sigil_log_tree_size", "Entries in each log"),
        &["log"],
    )?;
    let summarised = IntGaugeVec::new(
        Opts::new(
            "sigil_log_summarised_tiles",
            "Full level-0 tiles whose proof nodes each log holds in memory",
        ),
        &["log"],
    )?;
    let batch_size = HistogramVec::new(
        HistogramOpts::new("sigil_sequencer_batch_size", "Entries per sequencer batch").buckets(
            vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ],
        ),
        &["log"],
    )?;
    let read_batch = HistogramVec::new(
        HistogramOpts::new(
            "sigil_db_entry_read_batch_size",
            "Entry reads answered by each PostgreSQL query (concurrent reads share one)",
        )
        .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        &["log"],
    )?;
    let queue_depth = IntGaugeVec::new(
        Opts::new(
            "sigil_sequencer_queue_depth",
            "Submissions waiting for the sequencer",
        ),
        &["log"],
    )?;
    let certs_issued = IntCounterVec::new(
        Opts::new(
            "sigil_ca_certificates_issued_total",
            "Certificates issued by OIDC issuer",
        ),
        &["issuer"],
    )?;
    let errors = IntCounterVec::new(
        Opts::new("sigil_errors_total", "Errors answered, by category"),
        &["category"],
    )?;
    let tuf_signed = IntCounterVec::new(
        Opts::new(
            "sigil_tuf_signatures_total",
            "TUF metadata versions signed by this process, by role",
        ),
        &["role"],
    )?;
    let tuf_expires = IntGaugeVec::new(
        Opts::new(
            "sigil_tuf_expires_timestamp_seconds",
            "Expiry (Unix time) of the published TUF metadata, by role",
        ),
        &["role"],
    )?;
    let tuf_failures = IntCounterVec::new(
        Opts::new(
            "sigil_tuf_resign_failures_total",
            "Failed attempts to re-sign TUF metadata",
        ),
        &["reason"],
    )?;
    let reads = IntCounterVec::new(
        Opts::new(
            "sigil_log_reads_total",
            "Read requests by the database that served them (replica or primary)",
        ),
        &["source"],
    )?;
    let replica_lag = prometheus::Gauge::new(
        "sigil_replica_lag_seconds",
        "How far the read replica is behind the primary, as last measured",
    )?;
    let access = IntCounterVec::new(
        Opts::new(
            "sigil_access_decisions_total",
            "Write admissions and reads with credentials, by kind (write, read), outcome \
             (admitted, refused) and the rule that decided",
        ),
        &["kind", "outcome", "rule"],
    )?;
    registry.register(Box::new(access.clone()))?;
    let witness = IntCounterVec::new(
        Opts::new(
            "sigil_witness_requests_total",
            "add-checkpoint requests by outcome (cosigned, conflict, inconsistent, bad-signature, \
             unknown-origin, malformed, error)",
        ),
        &["outcome"],
    )?;
    registry.register(Box::new(witness.clone()))?;
    let cosign_failures = prometheus::IntCounter::new(
        "sigil_witness_cosign_failures_total",
        "Checkpoints fewer witnesses cosigned than the log's threshold",
    )?;
    registry.register(Box::new(cosign_failures.clone()))?;
    registry.register(Box::new(reads.clone()))?;
    registry.register(Box::new(replica_lag.clone()))?;
    registry.register(Box::new(tuf_signed.clone()))?;
    registry.register(Box::new(tuf_expires.clone()))?;
    registry.register(Box::new(tuf_failures.clone()))?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(latency.clone()))?;
    registry.register(Box::new(log_size.clone()))?;
    registry.register(Box::new(summarised.clone()))?;
    registry.register(Box::new(batch_size.clone()))?;
    registry.register(Box::new(read_batch.clone()))?;
    registry.register(Box::new(queue_depth.clone()))?;
    registry.register(Box::new(certs_issued.clone()))?;
    registry.register(Box::new(errors.clone()))?;
    Ok(Metrics {
        registry,
        requests,
        latency,
        log_size,
        summarised,
        batch_size,
        read_batch,
        queue_depth,
        certs_issued,
        errors,
        tuf_signed,
        tuf_expires,
        tuf_failures,
        reads,
        replica_lag,
        access,
        witness,
        cosign_failures,
    })
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| build().ok());

pub fn observe_request(route: &str, status: u16, seconds: f64) {
    if let Some(m) = METRICS.as_ref() {
        m.requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
        m.latency.with_label_values(&[route]).observe(seconds);
    }
}

pub fn set_log_size(log: &str, size: u64) {
    if let Some(m) = METRICS.as_ref() {
        m.log_size
            .with_label_values(&[log])
            .set(i64::try_from(size).unwrap_or(i64::MAX));
    }
}

pub fn set_summarised_tiles(log: &str, tiles: usize) {
    if let Some(m) = METRICS.as_ref() {
        m.summarised
            .with_label_values(&[log])
            .set(i64::try_from(tiles).unwrap_or(i64::MAX));
    }
}

pub fn observe_batch(log: &str, entries: usize) {
    if let Some(m) = METRICS.as_ref() {
        m.batch_size
            .with_label_values(&[log])
            .observe(entries as f64);
    }
}

pub fn observe_read_batch(log: &str, reads: usize) {
    if let Some(m) = METRICS.as_ref() {
        m.read_batch.with_label_values(&[log]).observe(reads as f64);
    }
}

pub fn set_queue_depth(log: &str, depth: usize) {
    if let Some(m) = METRICS.as_ref() {
        m.queue_depth
            .with_label_values(&[log])
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
}

pub fn read_from(source: &str) {
    if let Some(m) = METRICS.as_ref() {
        m.reads.with_label_values(&[source]).inc();
    }
}

/// A checkpoint too few witnesses cosigned.
pub fn witness_cosign_failure() {
    if let Some(m) = METRICS.as_ref() {
        m.cosign_failures.inc();
    }
}

/// A witness request's outcome.
pub fn witness(outcome: &str) {
    if let Some(m) = METRICS.as_ref() {
        m.witness.with_label_values(&[outcome]).inc();
    }
}

/// An access decision: `kind` write or read, `outcome` admitted or refused, the deciding rule.
pub fn access(kind: &str, outcome: &str, rule: &str) {
    if let Some(m) = METRICS.as_ref() {
        m.access.with_label_values(&[kind, outcome, rule]).inc();
    }
}

pub fn set_replica_lag(seconds: f64) {
    if let Some(m) = METRICS.as_ref() {
        // A replica with no known lag (`Duration::MAX`) is shown as very far behind.
        m.replica_lag.set(seconds.min(1e9));
    }
}

pub fn cert_issued(issuer: &str) {
    if let Some(m) = METRICS.as_ref() {
        m.certs_issued.with_label_values(&[issuer]).inc();
    }
}

pub fn error(category: &str) {
    if let Some(m) = METRICS.as_ref() {
        m.errors.with_label_values(&[category]).inc();
    }
}

pub fn tuf_signed(role: &str) {
    if let Some(m) = METRICS.as_ref() {
        m.tuf_signed.with_label_values(&[role]).inc();
    }
}

pub fn set_tuf_expiry(role: &str, unix: i64) {
    if let Some(m) = METRICS.as_ref() {
        m.tuf_expires.with_label_values(&[role]).set(unix);
    }
}

pub fn tuf_failure(reason: &str) {
    if let Some(m) = METRICS.as_ref() {
        m.tuf_failures.with_label_values(&[reason]).inc();
    }
}

/// The text exposition of every family.
pub fn render() -> String {
    let Some(m) = METRICS.as_ref() else {
        return String::new();
    };
    let mut buf = Vec::new();
    if TextEncoder::new()
        .encode(&m.registry.gather(), &mut buf)
        .is_err()
    {
        return String::new();
    }
    String::from_utf8(buf).unwrap_or_default()
}
