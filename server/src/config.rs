//! Configuration: one TOML file, every key overridable by a `SIGIL_<SECTION>_<KEY>` environment
//! variable (e.g. `SIGIL_SERVER_LISTEN`, `SIGIL_DATABASE_URL`), validated at start with messages
//! that name the bad key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Configuration errors: each names the key and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[derive(Default)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub ct: CtConfig,
    #[serde(default)]
    pub ca: CaSection,
    #[serde(default)]
    pub dev_oidc: DevOidcConfig,
    #[serde(default)]
    pub trust: TrustConfig,
    #[serde(default)]
    pub tsa: TsaConfig,
    #[serde(default)]
    pub rekor_v2: RekorV2Config,
    #[serde(default)]
    pub tuf: TufConfig,
    /// Who may read the logs (off: anyone who reaches them).
    #[serde(default)]
    pub read_access: crate::access::ReadAccessConfig,
    /// `sigil-server witness`: the logs it cosigns, its key and database.
    #[serde(default)]
    pub witness: crate::witness::WitnessConfig,
}

/// The TUF repository that distributes `trusted_root.json` and `signing_config.v0.2.json`
/// (served at `<public_url>/tuf/`). `init` writes the keys and the first root; the root key is
/// needed only offline (`sigil-server tuf rotate-root`, `tuf sign-root`), the server signs
/// targets, snapshot and timestamp with the online keys and re-signs them before they expire.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TufConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The repository: metadata at its top, target files in `targets/` (as served).
    #[serde(default = "default_tuf_dir")]
    pub dir: PathBuf,
    /// The root key `init` writes: not read at run time, keep it offline.
    #[serde(default = "default_tuf_root_key")]
    pub root_key: PathBuf,
    #[serde(default = "default_tuf_targets_key")]
    pub targets_key: PathBuf,
    #[serde(default = "default_tuf_snapshot_key")]
    pub snapshot_key: PathBuf,
    #[serde(default = "default_tuf_timestamp_key")]
    pub timestamp_key: PathBuf,
    /// How long each role's metadata stays valid once signed, in seconds. The server re-signs
    /// targets, snapshot and timestamp when half of that time is left; the root is re-signed
    /// offline (`sigil-server tuf rotate-root`).
    #[serde(default = "default_tuf_root_expiry")]
    pub root_expiry_secs: u64,
    #[serde(default = "default_tuf_targets_expiry")]
    pub targets_expiry_secs: u64,
    #[serde(default = "default_tuf_snapshot_expiry")]
    pub snapshot_expiry_secs: u64,
    #[serde(default = "default_tuf_timestamp_expiry")]
    pub timestamp_expiry_secs: u64,
}

/// The RFC 3161 timestamp authority. `init` generates the key and a chain to the TSA's own root.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TsaConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// PKCS#8 PEM signing key (ECDSA P-256 or P-384).
    #[serde(default = "default_tsa_key")]
    pub key: PathBuf,
    /// PEM chain, the time-stamping certificate first, the root last.
    #[serde(default = "default_tsa_chain")]
    pub cert_chain: PathBuf,
    /// The root's key, written by `init` (not read at run time).
    #[serde(default = "default_tsa_root_key")]
    pub root_key: PathBuf,
}

/// The Rekor v2 (tile-served) log: a second log on the same engine and database, with its own key.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RekorV2Config {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// PKCS#8 PEM checkpoint signing key (ECDSA P-256).
    #[serde(default = "default_rekor_v2_key")]
    pub key: PathBuf,
    /// Checkpoint origin prefix and note key name; the origin is `<prefix> - <tree id>`.
    /// Default: the log URL's host, as for `[log]`; Sigstore clients (sigstore-js) look a
    /// checkpoint's key name up in the log's URL. Deployments created before this default set
    /// it to `sigil-v2` to keep their log's origin.
    #[serde(default)]
    pub origin: Option<String>,
    /// Who may append (off: anyone who reaches the log).
    #[serde(default)]
    pub admission: crate::access::AdmissionConfig,
    /// Witnesses that cosign each checkpoint before it is published.
    #[serde(default)]
    pub witnessing: crate::witness::WitnessingConfig,
}

/// Where clients reach each role, for the trust files (default: `server.public_url`). Set these
/// when the log and the CA run as separate services.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ct_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_url: Option<String>,
    /// Base URL of the timestamp authority (its endpoint is `<tsa_url>/api/v1/timestamp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_url: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Base URL clients reach this server at (written into the trust files).
    #[serde(default = "default_public_url")]
    pub public_url: String,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Per-request timeout, in seconds.
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// Log lines as JSON.
    #[serde(default)]
    pub json_logs: bool,
    /// Serve HTTPS with this certificate chain (PEM, relative to the data dir). Empty: plain
    /// HTTP (put a TLS proxy in front). Needed for client certificates (`read_access.client_ca`).
    #[serde(default)]
    pub tls_cert: PathBuf,
    /// The TLS certificate's private key (PEM).
    #[serde(default)]
    pub tls_key: PathBuf,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` or `sqlite://path` (relative paths are under the data dir).
    #[serde(default = "default_db")]
    pub url: String,
    /// A PostgreSQL hot standby of `url` to serve the logs' reads from (entries, proofs,
    /// checkpoints, tiles, search); writes stay on `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_url: Option<String>,
    /// Reads go to the standby only while it is at most this far behind the primary (ms).
    #[serde(default = "default_replica_lag")]
    pub replica_max_lag_ms: u64,
    /// When the standby is further behind: serve from the primary (true) or answer 503 (false).
    #[serde(default = "yes")]
    pub replica_fallback: bool,
    /// PostgreSQL connections the request handlers share (each log's sequencer has its own;
    /// a standby gets as many). More than about twice the database's cores only queue inside
    /// PostgreSQL; SQLite ignores it.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// PKCS#8 PEM signing key (ECDSA P-256 or Ed25519).
    #[serde(default = "default_log_key")]
    pub key: PathBuf,
    /// Checkpoint origin prefix and note key name; the origin is `<prefix> - <tree id>`.
    /// Default: the host[:port] of `server.public_url`, as Rekor uses its hostname (clients such
    /// as sigstore-js match the key name against the log's URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    #[serde(default = "default_max_wait")]
    pub max_wait_ms: u64,
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// How often an idle log process takes up what other processes writing to the same
    /// database committed (milliseconds; 0: only when it commits itself).
    #[serde(default = "default_head_refresh")]
    pub head_refresh_ms: u64,
    /// The checkpoint journal's directory (relative to the data dir): every checkpoint this
    /// process publishes, kept outside the database so that a database restored from an old
    /// backup is refused rather than served (which would fork the log). Empty: no journal.
    #[serde(default = "default_journal_dir")]
    pub journal_dir: PathBuf,
    /// Journal each batch's entries too, so that `sigil-server recover` can re-append what a
    /// restored database lacks (about the size of the entries again on disk).
    #[serde(default = "yes")]
    pub journal_entries: bool,
    /// Identities (e-mails, subjects) in the search index: `keyed` stores an HMAC of each under
    /// `search_key` (a search names the identity it looks for), `off` stores none and refuses
    /// identity searches.
    #[serde(default = "default_identity_search")]
    pub identity_search: String,
    /// The secret of the keyed identity index (32 random bytes, created on first start). Every
    /// process of a deployment needs the same one; it is never stored in the database.
    #[serde(default = "default_search_key")]
    pub search_key: PathBuf,
    /// Who may append (off: anyone who reaches the log).
    #[serde(default)]
    pub admission: crate::access::AdmissionConfig,
    /// Witnesses that cosign each checkpoint before it is published.
    #[serde(default)]
    pub witnessing: crate::witness::WitnessingConfig,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CtConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_ct_key")]
    pub key: PathBuf,
    /// PEM roots the CT log accepts chains to (default: the CA's root).
    #[serde(default = "default_ca_root_cert")]
    pub roots: PathBuf,
    /// Witnesses that cosign each checkpoint (signed tree head) before it is published.
    #[serde(default)]
    pub witnessing: crate::witness::WitnessingConfig,
}

pub use crate::ca::IssuerConfig;
pub use crate::ca::setup::{CaBackend, CaSection};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DevOidcConfig {
    /// Development issuer: hands out ID tokens to anyone who asks. Never enable in production.
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_dev_subject")]
    pub subject: String,
    #[serde(default = "default_dev_key")]
    pub key: PathBuf,
}

fn yes() -> bool {
    true
}
fn default_listen() -> String {
    "127.0.0.1:3000".into()
}
fn default_public_url() -> String {
    "http://127.0.0.1:3000".into()
}
fn default_max_body() -> usize {
    4 * 1024 * 1024
}
fn default_timeout() -> u64 {
    30
}
fn default_db() -> String {
    "sqlite://sigil.db".into()
}
fn default_log_key() -> PathBuf {
    "keys/log.pem".into()
}
fn default_max_batch() -> usize {
    1024
}
fn default_max_wait() -> u64 {
    2
}
fn default_identity_search() -> String {
    "keyed".into()
}
fn default_search_key() -> PathBuf {
    "keys/search-index.key".into()
}
fn default_pool_size() -> u32 {
    16
}
fn default_replica_lag() -> u64 {
    1000
}
fn default_journal_dir() -> PathBuf {
    "journal".into()
}
fn default_head_refresh() -> u64 {
    500
}
fn default_queue() -> usize {
    8192
}
fn default_ct_key() -> PathBuf {
    "keys/ctlog.pem".into()
}
fn default_ca_root_cert() -> PathBuf {
    "keys/ca-root.crt.pem".into()
}
fn default_dev_subject() -> String {
    "developer@sigil.localhost".into()
}
fn default_tsa_key() -> PathBuf {
    "keys/tsa.pem".into()
}
fn default_tsa_chain() -> PathBuf {
    "keys/tsa-chain.crt.pem".into()
}
fn default_tsa_root_key() -> PathBuf {
    "keys/tsa-root.pem".into()
}
fn default_rekor_v2_key() -> PathBuf {
    "keys/log-v2.pem".into()
}
fn default_tuf_dir() -> PathBuf {
    "tuf".into()
}
fn default_tuf_root_key() -> PathBuf {
    "keys/tuf-root.pem".into()
}
fn default_tuf_targets_key() -> PathBuf {
    "keys/tuf-targets.pem".into()
}
fn default_tuf_snapshot_key() -> PathBuf {
    "keys/tuf-snapshot.pem".into()
}
fn default_tuf_timestamp_key() -> PathBuf {
    "keys/tuf-timestamp.pem".into()
}
const DAY: u64 = 86_400;
fn default_tuf_root_expiry() -> u64 {
    365 * DAY
}
fn default_tuf_targets_expiry() -> u64 {
    90 * DAY
}
fn default_tuf_snapshot_expiry() -> u64 {
    7 * DAY
}
fn default_tuf_timestamp_expiry() -> u64 {
    DAY
}
fn default_dev_key() -> PathBuf {
    "keys/dev-oidc.pem".into()
}

macro_rules! default_from_empty {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                toml::from_str("").unwrap_or_else(|_| unreachable!())
            }
        }
    )*};
}
default_from_empty!(
    ServerConfig,
    DatabaseConfig,
    LogConfig,
    CtConfig,
    CaSection,
    DevOidcConfig
);
default_from_empty!(TsaConfig, RekorV2Config, TufConfig);

impl Config {
    /// Read a TOML file (if it exists), then apply `SIGIL_*` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::Parse {
                    path: p.to_path_buf(),
                    message: e.message().to_string(),
                })?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, std::env::vars())?;
        let cfg: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: path
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| "(environment)".into()),
                message: e.message().to_string(),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.listen.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "server.listen",
                format!("{:?} is not host:port: {e}", self.server.listen),
            )
        })?;
        let url = &self.server.public_url;
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.ends_with('/') {
            return Err(invalid(
                "server.public_url",
                format!("{url:?} must be an http(s) base URL without a trailing slash"),
            ));
        }
        let db = &self.database.url;
        if !(db.starts_with("postgres://")
            || db.starts_with("postgresql://")
            || db.starts_with("sqlite:"))
        {
            return Err(invalid(
                "database.url",
                format!("{db:?} must start with postgres:// or sqlite://"),
            ));
        }
        if !matches!(self.log.identity_search.as_str(), "keyed" | "off") {
            return Err(invalid(
                "log.identity_search",
                "must be \"keyed\" (HMAC of each identity) or \"off\" (no identity search)",
            ));
        }
        if !(1..=1000).contains(&self.database.pool_size) {
            return Err(invalid(
                "database.pool_size",
                format!("{} is not between 1 and 1000", self.database.pool_size),
            ));
        }
        if self.log.max_batch == 0 || self.log.queue_capacity == 0 {
            return Err(invalid(
                "log.max_batch",
                "max_batch and queue_capacity must be at least 1",
            ));
        }
        crate::ca::setup::validate(&self.ca).map_err(|e| invalid(e.key, e.message))?;
        for (key, a) in [
            ("log.admission", &self.log.admission),
            ("rekor_v2.admission", &self.rekor_v2.admission),
        ] {
            a.validate(key).map_err(|m| invalid(key, m))?;
        }
        self.read_access
            .validate()
            .map_err(|m| invalid("read_access", m))?;
        for (key, w) in [
            ("log.witnessing", &self.log.witnessing),
            ("rekor_v2.witnessing", &self.rekor_v2.witnessing),
            ("ct.witnessing", &self.ct.witnessing),
        ] {
            w.validate(key).map_err(|m| invalid(key, m))?;
        }
        let tls = !self.server.tls_cert.as_os_str().is_empty();
        if tls == self.server.tls_key.as_os_str().is_empty() {
            return Err(invalid(
                "server.tls_cert",
                "set both server.tls_cert and server.tls_key, or neither",
            ));
        }
        if !tls && !self.read_access.client_ca.as_os_str().is_empty() {
            return Err(invalid(
                "read_access.client_ca",
                "client certificates need the server to terminate TLS: set server.tls_cert and \
                 server.tls_key",
            ));
        }
        let t = &self.tuf;
        for (key, secs) in [
            ("tuf.root_expiry_secs", t.root_expiry_secs),
            ("tuf.targets_expiry_secs", t.targets_expiry_secs),
            ("tuf.snapshot_expiry_secs", t.snapshot_expiry_secs),
            ("tuf.timestamp_expiry_secs", t.timestamp_expiry_secs),
        ] {
            // At least 2 s: the server re-signs at half-life and checks every quarter.
            if !(2..=100 * 365 * DAY).contains(&secs) {
                return Err(invalid(
                    key,
                    format!("{secs}: use a number of seconds from 2 to 100 years"),
                ));
            }
        }
        Ok(())
    }

    /// The CT log URL the CA submits to.
    pub fn ct_log_url(&self) -> String {
        self.ca
            .ct_log_url
            .clone()
            .unwrap_or_else(|| self.server.public_url.clone())
    }

    pub fn trust_log_url(&self) -> String {
        self.trust
            .log_url
            .clone()
            .unwrap_or_else(|| self.server.public_url.clone())
    }
    pub fn trust_ct_url(&self) -> String {
        self.trust
            .ct_url
            .clone()
            .or_else(|| self.ca.ct_log_url.clone())
            .unwrap_or_else(|| self.trust_log_url())
    }
    pub fn trust_ca_url(&self) -> String {
        self.trust
            .ca_url
            .clone()
            .unwrap_or_else(|| self.server.public_url.clone())
    }
    /// Where clients reach the timestamp authority, if anywhere: `trust.tsa_url`, else this
    /// server when it runs the TSA, else the log's URL when the log runs elsewhere (the `log`
    /// role serves the TSA unless `tsa.enabled = false`).
    pub fn trust_tsa_url(&self) -> Option<String> {
        if let Some(u) = &self.trust.tsa_url {
            return Some(u.clone());
        }
        if self.tsa.enabled {
            return Some(self.server.public_url.clone());
        }
        let log = self.trust_log_url();
        (log != self.server.public_url).then_some(log)
    }

    /// The OIDC issuer clients should use, if any.
    pub fn trust_oidc_url(&self) -> Option<String> {
        self.trust
            .oidc_url
            .clone()
            .or_else(|| self.dev_oidc.enabled.then(|| self.dev_issuer_url()))
    }

    /// The log's checkpoint origin prefix (see `log.origin`).
    pub fn log_origin(&self) -> String {
        self.log.origin.clone().unwrap_or_else(|| {
            let url = self.trust_log_url();
            let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            rest.split('/').next().unwrap_or(rest).to_string()
        })
    }

    /// The Rekor v2 log's checkpoint origin prefix (see `rekor_v2.origin`).
    pub fn rekor_v2_origin(&self) -> String {
        self.rekor_v2
            .origin
            .clone()
            .unwrap_or_else(|| self.log_origin())
    }

    /// The dev issuer's URL.
    pub fn dev_issuer_url(&self) -> String {
        format!("{}/oidc", self.server.public_url)
    }
}

pub use crate::keyfile::resolve;

/// `SIGIL_SERVER_LISTEN=…` → `[server] listen = …`; `SIGIL_DATABASE_URL` → `[database] url`.
/// Values parse as TOML when they can (numbers, booleans, arrays), else as strings.
fn apply_env(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    const SECTIONS: &[&str] = &[
        "server", "database", "log", "ct", "ca", "dev_oidc", "trust", "tsa", "rekor_v2", "tuf",
    ];
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("SIGIL_") else {
            continue;
        };
        let rest = rest.to_lowercase();
        let Some(section) = SECTIONS
            .iter()
            .filter(|s| rest.starts_with(&format!("{s}_")))
            .max_by_key(|s| s.len())
        else {
            continue; // SIGIL_DATA_DIR etc. belong to the CLI.
        };
        let key = rest
            .get(section.len() + 1..)
            .unwrap_or_default()
            .to_string();
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(value));
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(t) = entry else {
            return Err(invalid(section, "must be a table"));
        };
        t.insert(key, parsed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_configuration_parses_and_validates() {
        let text = include_str!("../../config/sigil.toml");
        let table: toml::Table = toml::from_str(text).unwrap();
        let cfg: Config = table.try_into().unwrap();
        cfg.validate().unwrap();
        assert!(!cfg.log.admission.enabled && !cfg.read_access.enabled);
    }

    #[test]
    fn env_overrides_and_validation() {
        let mut t = toml::Table::new();
        apply_env(
            &mut t,
            vec![
                (
                    "SIGIL_SERVER_LISTEN".to_string(),
                    "0.0.0.0:8080".to_string(),
                ),
                ("SIGIL_LOG_MAX_BATCH".to_string(), "64".to_string()),
                ("SIGIL_DEV_OIDC_ENABLED".to_string(), "true".to_string()),
                (
                    "SIGIL_DATABASE_URL".to_string(),
                    "postgres://x@y/z".to_string(),
                ),
                ("SIGIL_DATABASE_POOL_SIZE".to_string(), "4".to_string()),
            ]
            .into_iter(),
        )
        .unwrap();
        let cfg: Config = t.try_into().unwrap();
        assert_eq!(cfg.server.listen, "0.0.0.0:8080");
        assert_eq!(cfg.log.max_batch, 64);
        assert!(cfg.dev_oidc.enabled);
        assert_eq!(cfg.database.url, "postgres://x@y/z");
        assert_eq!(cfg.database.pool_size, 4);
        cfg.validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut cfg = Config::default();
        cfg.server.public_url = "ftp://x".into();
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("server.public_url")
        );
        let mut cfg = Config::default();
        cfg.server.listen = "nope".into();
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("server.listen")
        );
        let mut cfg = Config::default();
        cfg.database.pool_size = 0;
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("database.pool_size")
        );
        let err = toml::from_str::<Config>("[server]\nlisen = 1").unwrap_err();
        assert!(err.to_string().contains("lisen"));
    }
}
