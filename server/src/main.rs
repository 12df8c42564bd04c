//! `sigil-server`: a private Sigstore — CA, transparency log, CT log and a dev OIDC issuer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sigil_server::config::Config;
use sigil_server::{app, init};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sigil-server",
    version,
    about = "A private, self-hostable Sigstore: CA, transparency log, CT log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Data directory: keys, the SQLite database, trust files and sigil.toml.
    #[arg(long, env = "SIGIL_DATA_DIR", default_value = ".sigil")]
    data_dir: PathBuf,
    /// Configuration file (default: <data-dir>/sigil.toml if it exists).
    #[arg(long, env = "SIGIL_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process on one port, with a development OIDC issuer: creates the data dir,
    /// keys, database and config on first run, reuses them afterwards.
    Up {
        #[command(flatten)]
        common: Common,
        /// Listen address (overrides the config).
        #[arg(long)]
        listen: Option<String>,
        /// Do not run the development OIDC issuer (use a real IdP from the config).
        #[arg(long)]
        no_dev_oidc: bool,
    },
    /// Generate keys, the CA and a config file in the data dir (idempotent).
    Init {
        #[command(flatten)]
        common: Common,
        /// Base URL clients will use.
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        public_url: String,
    },
    /// Run the transparency log and the CT log only.
    Log {
        #[command(flatten)]
        common: Common,
    },
    /// Run the certificate authority only (it reaches the CT log over HTTP).
    Ca {
        #[command(flatten)]
        common: Common,
    },
    /// Run the RFC 3161 timestamp authority only.
    Tsa {
        #[command(flatten)]
        common: Common,
    },
    /// Run whatever roles the config enables.
    Serve {
        #[command(flatten)]
        common: Common,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        common: Common,
    },
    /// Write a consistent backup of the database (SQLite online backup or pg_dump, while the
    /// server runs) and of the data dir's keys, config and trust files into DIR (new or empty).
    /// The checkpoint journal is not included: it is what detects a restored old backup.
    Backup {
        /// Where to write the backup.
        dir: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Restore a backup written by `backup` into the data dir and the configured database
    /// (replacing it). Stop every server of the data dir first. If the server then refuses to
    /// start because the backup is older than what it published, run `recover`.
    Restore {
        /// The backup directory.
        dir: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Re-append to the database, from the checkpoint journal, every batch this server
    /// published that the database lacks (after restoring an old backup); the same entries,
    /// timestamps and signed checkpoints, so the log is the one clients saw. Stop every server
    /// of the log first.
    Recover {
        #[command(flatten)]
        common: Common,
    },
    /// Recompute every log of the database from its stored entries (leaf hashes, tiles,
    /// checkpoints and their signatures, the head) and report the first mismatch of each.
    /// Only reads: safe on a live log or a hot standby. Exits 1 if anything does not match.
    Fsck {
        #[command(flatten)]
        common: Common,
        /// Check this database instead of the configured one (e.g. a read replica).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Run a C2SP tlog-witness for the logs of `[witness]` (its own key, database and port):
    /// `POST /add-checkpoint` cosigns a checkpoint consistent with the last one it cosigned.
    Witness {
        #[command(flatten)]
        common: Common,
        /// Listen address (overrides witness.listen).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Trust material for clients.
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
    /// Rotate a trust component: `ca` (a new CA hierarchy), `tsa` (a new timestamping chain),
    /// `rekor`, `rekor-v2` or `ct` (a new log shard; the old one stays readable). The old one
    /// stays in the trusted root, valid until now; the TUF repository publishes the change.
    /// Restart the server afterwards.
    Rotate {
        /// ca, tsa, rekor, rekor-v2 or ct.
        role: String,
        #[command(flatten)]
        common: Common,
    },
    /// The TUF repository's root role, signed offline.
    Tuf {
        #[command(subcommand)]
        command: TufCommand,
    },
}

#[derive(Subcommand)]
enum TufCommand {
    /// Sign a new root version: new root keys and threshold, renewed expiry, the configured
    /// online keys. Published once it is signed by a threshold of the old and of the new root
    /// keys; until then staged for `tuf sign-root`.
    RotateRoot {
        #[command(flatten)]
        common: Common,
        /// A root key of the new version (PEM, public or private); repeat for several.
        /// Default: the current root keys.
        #[arg(long = "root-key")]
        root_keys: Vec<PathBuf>,
        /// Signatures the new root role needs (default: the current threshold).
        #[arg(long)]
        threshold: Option<u64>,
        /// A private root key (PKCS#8 PEM) to sign with; repeat for several. Default: the
        /// configured `tuf.root_key`.
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
    },
    /// Add signatures to the staged root version; publish it once it has enough.
    SignRoot {
        #[command(flatten)]
        common: Common,
        /// A private root key (PKCS#8 PEM); repeat for several.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TrustCommand {
    /// Print trusted_root.json, signing_config.json and the cosign/Kyverno inputs.
    Export {
        #[command(flatten)]
        common: Common,
        /// Print only this: trusted-root, signing-config, client-trust-config, fulcio-root, rekor-key, ctlog-key.
        #[arg(long, conflicts_with = "tuf")]
        only: Option<String>,
        /// Instead, write the whole TUF repository (brought up to date first) into this
        /// directory as static files: serve it with any web server, or copy it and use it as
        /// `file://DIR`.
        #[arg(long, value_name = "DIR")]
        tuf: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(common: &Common) -> anyhow::Result<Config> {
    let default_path = common.data_dir.join("sigil.toml");
    let path = match &common.config {
        Some(p) => Some(p.clone()),
        None if default_path.exists() => Some(default_path),
        None => None,
    };
    Ok(Config::load(path.as_deref())?)
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { common, public_url } => {
            let created = init::init(&common.data_dir, &public_url, false)?;
            println!(
                "{} {}",
                if created {
                    "initialised"
                } else {
                    "already initialised:"
                },
                common.data_dir.display()
            );
            Ok(())
        }
        Command::Up {
            common,
            listen,
            no_dev_oidc,
        } => {
            let url_hint = listen
                .as_deref()
                .map(|l| format!("http://{l}"))
                .unwrap_or_else(|| "http://127.0.0.1:3000".into());
            init::init(&common.data_dir, &url_hint, !no_dev_oidc)?;
            let mut cfg = load_config(&common)?;
            if let Some(l) = listen {
                // On a laptop the listen address is the URL clients use.
                cfg.server.public_url = format!("http://{l}");
                cfg.server.listen = l;
            }
            // `up` is the laptop setup: the dev issuer is on unless asked otherwise, whatever
            // `init` wrote.
            cfg.dev_oidc.enabled = !no_dev_oidc;
            serve(cfg, &common.data_dir, true).await
        }
        Command::Log { common } => {
            let mut cfg = load_config(&common)?;
            cfg.ca.enabled = false;
            cfg.log.enabled = true;
            serve(cfg, &common.data_dir, false).await
        }
        Command::Ca { common } => {
            let mut cfg = load_config(&common)?;
            cfg.ca.enabled = true;
            cfg.log.enabled = false;
            cfg.ct.enabled = false;
            cfg.tsa.enabled = false;
            // One process keeps the TUF repository: `log`, `serve` or `up`.
            cfg.tuf.enabled = false;
            serve(cfg, &common.data_dir, false).await
        }
        Command::Tsa { common } => {
            let mut cfg = load_config(&common)?;
            cfg.tsa.enabled = true;
            cfg.ca.enabled = false;
            cfg.log.enabled = false;
            cfg.ct.enabled = false;
            cfg.tuf.enabled = false;
            serve(cfg, &common.data_dir, false).await
        }
        Command::Serve { common } => {
            let cfg = load_config(&common)?;
            serve(cfg, &common.data_dir, false).await
        }
        Command::Migrate { common } => {
            let cfg = load_config(&common)?;
            let url = app::database_url(&cfg.database.url, &common.data_dir);
            sigil_server::storage::connect(&url)
                .await
                .with_context(|| format!("cannot migrate {}", app::redact(&url)))?;
            println!("migrations applied to {}", app::redact(&url));
            Ok(())
        }
        Command::Fsck {
            common,
            database_url,
        } => fsck(&common, database_url).await,
        Command::Witness { common, listen } => witness(&common, listen).await,
        Command::Backup { dir, common } => {
            let cfg = load_config(&common)?;
            let url = app::database_url(&cfg.database.url, &common.data_dir);
            let m = sigil_server::backup::backup(&cfg, &common.data_dir, &url, &dir).await?;
            for l in &m.logs {
                println!("{}: at least {} entries", l.name, l.size);
            }
            println!(
                "backup of the {} database and the data dir written to {}",
                m.database,
                dir.display()
            );
            Ok(())
        }
        Command::Restore { dir, common } => {
            let cfg = load_config(&common)?;
            let url = app::database_url(&cfg.database.url, &common.data_dir);
            let m = sigil_server::backup::restore(&dir, &common.data_dir, &url).await?;
            println!(
                "restored the backup of {} into {} and {}; start the server: if it refuses \
                 because the backup is older than what it published, run `sigil-server recover`",
                m.created,
                common.data_dir.display(),
                app::redact(&url)
            );
            Ok(())
        }
        Command::Recover { common } => recover(&common).await,
        Command::Tuf { command } => tuf_command(command),
        Command::Rotate { role, common } => {
            let cfg = load_config(&common)?;
            let msg = sigil_server::rotate::rotate(
                &cfg,
                &common.data_dir,
                &role,
                sigil_server::tuf::now(),
            )?;
            println!("{msg}");
            Ok(())
        }
        Command::Trust {
            command: TrustCommand::Export { common, only, tuf },
        } => {
            let cfg = load_config(&common)?;
            if let Some(dir) = tuf {
                let trust = init::trust_inputs(&cfg, &common.data_dir)?;
                let repo = sigil_server::tuf::open(&cfg, &common.data_dir)?;
                sigil_server::tuf::publish(&repo, &trust)?;
                let files = sigil_server::tuf::export(&repo, &dir)?;
                println!(
                    "wrote the TUF repository ({files} files) to {}; bootstrap clients with {}",
                    dir.display(),
                    dir.join("1.root.json").display()
                );
                return Ok(());
            }
            let out = init::export(&cfg, &common.data_dir, only.as_deref())?;
            print!("{out}");
            Ok(())
        }
    }
}

async fn recover(common: &Common) -> anyhow::Result<()> {
    let cfg = load_config(common)?;
    let url = app::database_url(&cfg.database.url, &common.data_dir);
    let dir = sigil_server::log::setup::journal_dir(&cfg, &common.data_dir)
        .context("the journal is turned off (log.journal_dir = \"\"): nothing to recover from")?;
    let store = sigil_server::storage::connect(&url)
        .await
        .with_context(|| format!("cannot open {}", app::redact(&url)))?;
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading the journal directory {}", dir.display()))?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".journal").map(str::to_string)
        })
        .collect();
    names.sort();
    if names.is_empty() {
        anyhow::bail!("{} holds no journal", dir.display());
    }
    for name in names {
        let added = sigil_server::log::engine::recover(&store, &name, &dir)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("{name}: re-appended {added} entries from the journal");
    }
    Ok(())
}

async fn fsck(common: &Common, database_url: Option<String>) -> anyhow::Result<()> {
    let cfg = load_config(common)?;
    let url =
        database_url.unwrap_or_else(|| app::database_url(&cfg.database.url, &common.data_dir));
    // The logs' keys, current and retired, as clients trust them.
    let root: sigil_core::trust::TrustedRoot =
        serde_json::from_str(&init::export(&cfg, &common.data_dir, Some("trusted-root"))?)
            .context("reading the trusted root")?;
    let keys: Vec<sigil_core::crypto::PublicKey> = root
        .tlogs
        .iter()
        .chain(&root.ctlogs)
        .filter_map(|l| sigil_core::crypto::PublicKey::from_spki_der(&l.public_key.raw_bytes).ok())
        .collect();
    let store = sigil_server::storage::connect_existing(&url)
        .await
        .with_context(|| format!("cannot open {}", app::redact(&url)))?;
    eprintln!(
        "checking {} against {} trusted log keys",
        app::redact(&url),
        keys.len()
    );
    let progress = |log: &str, done: u64, size: u64| {
        eprintln!("  {log}: {done} of {size} entries checked");
    };
    let reports = sigil_server::fsck::check_all(&store, &keys, &progress).await?;
    let mut bad = 0;
    for r in &reports {
        match &r.problem {
            None => println!(
                "{}: OK: {} entries, {} tiles, {} checkpoints ({:.1} s)",
                r.log_name, r.size, r.tiles, r.checkpoints, r.seconds
            ),
            Some(p) => {
                bad += 1;
                println!("{}: MISMATCH: {p}", r.log_name);
            }
        }
    }
    if reports.is_empty() {
        println!("the database holds no log");
    }
    if bad > 0 {
        eprintln!(
            "{bad} of {} logs do not match their entries; stop writing to them, keep this \
             database for investigation and restore from a backup that fsck accepts",
            reports.len()
        );
        std::process::exit(1);
    }
    Ok(())
}

fn read_signing_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<sigil_core::crypto::SigningKey>> {
    paths
        .iter()
        .map(|p| sigil_server::keyfile::read_key(p))
        .collect()
}

fn tuf_command(command: TufCommand) -> anyhow::Result<()> {
    use sigil_server::tuf::{self, root::RootState};
    let state = match command {
        TufCommand::RotateRoot {
            common,
            root_keys,
            threshold,
            keys,
        } => {
            let cfg = load_config(&common)?;
            let data = &common.data_dir;
            let root_keys = if root_keys.is_empty() {
                None
            } else {
                Some(
                    root_keys
                        .iter()
                        .map(|p| {
                            sigil_server::keyfile::read_key(p)
                                .map(|k| k.public_key())
                                .or_else(|_| sigil_server::keyfile::read_public_key(p))
                                .with_context(|| {
                                    format!("--root-key {}: not a PEM key", p.display())
                                })
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?,
                )
            };
            let keys = if keys.is_empty() {
                vec![sigil_server::config::resolve(data, &cfg.tuf.root_key)]
            } else {
                keys
            };
            tuf::root::new_root(
                &tuf::repo_dir(&cfg, data),
                &tuf::staging_dir(&cfg, data),
                root_keys,
                threshold,
                &tuf::online_public_keys(&cfg, data)?,
                &read_signing_keys(&keys)?,
                i64::try_from(cfg.tuf.root_expiry_secs).unwrap_or(i64::MAX),
                tuf::now(),
            )?
        }
        TufCommand::SignRoot { common, keys } => {
            let cfg = load_config(&common)?;
            let data = &common.data_dir;
            tuf::root::sign_staged(
                &tuf::repo_dir(&cfg, data),
                &tuf::staging_dir(&cfg, data),
                &read_signing_keys(&keys)?,
            )?
        }
    };
    match state {
        RootState::Published(path) => println!("published {}", path.display()),
        RootState::Staged { path, missing } => println!(
            "staged {} (not served yet): it still needs signatures from {missing}; add them with `sigil-server tuf sign-root --key <root key>`",
            path.display()
        ),
    }
    Ok(())
}

async fn serve(cfg: Config, data_dir: &Path, print_banner: bool) -> anyhow::Result<()> {
    init_tracing(cfg.server.json_logs);
    if !data_dir.is_dir() {
        bail!(
            "data dir {} does not exist or is not a directory (run `sigil-server init`)",
            data_dir.display()
        );
    }
    let addr: SocketAddr = cfg
        .server
        .listen
        .parse()
        .with_context(|| format!("server.listen {:?} is not host:port", cfg.server.listen))?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (is the port in use? set server.listen or --listen)")
    })?;
    let service = app::build(&cfg, data_dir).await?;
    init::write_trust_files(&service.trust, data_dir)?;
    if print_banner {
        let sigil = init::client_command();
        println!("{}", init::banner(&cfg, data_dir, &service.trust, &sigil));
    }
    if cfg.server.tls_cert.as_os_str().is_empty() {
        tracing::info!(%addr, "sigil-server listening");
        println!("listening on {addr}");
        axum::serve(listener, service.router)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("server error")?;
    } else {
        let client_ca = &cfg.read_access.client_ca;
        let tls = sigil_server::tls::server_config(
            &sigil_server::config::resolve(data_dir, &cfg.server.tls_cert),
            &sigil_server::config::resolve(data_dir, &cfg.server.tls_key),
            (!client_ca.as_os_str().is_empty())
                .then(|| sigil_server::config::resolve(data_dir, client_ca))
                .as_deref(),
        )?;
        tracing::info!(%addr, client_certificates = !client_ca.as_os_str().is_empty(), "sigil-server listening (TLS)");
        println!("listening on {addr} (TLS)");
        let router = service
            .router
            .clone()
            .into_make_service_with_connect_info::<sigil_server::tls::Peer>();
        axum::serve(sigil_server::tls::listen(listener, tls)?, router)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("server error")?;
    }
    // Dropping the routers closes the sequencer queues; in-flight batches finish first.
    drop(service.engines);
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn witness(common: &Common, listen: Option<String>) -> anyhow::Result<()> {
    let cfg = load_config(common)?;
    init_tracing(cfg.server.json_logs);
    let data_dir = &common.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let url = app::database_url(&cfg.witness.database_url, data_dir);
    let store = sigil_server::storage::connect(&url)
        .await
        .with_context(|| format!("cannot open the witness database {}", app::redact(&url)))?;
    let w = sigil_server::witness::Witness::open(&cfg.witness, data_dir, store)?;
    let vkey = w.vkey();
    let addr = listen.unwrap_or_else(|| cfg.witness.listen.clone());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (set witness.listen or --listen)"))?;
    let (router, _) = sigil_server::witness::router(std::sync::Arc::new(w))
        .get("/healthz", || async { "ok" })
        .into_parts();
    let router = router.layer(tower_http::trace::TraceLayer::new_for_http());
    println!("witness {} listening on {addr}", cfg.witness.name);
    println!("witness verifier key: {vkey}");
    tracing::info!(%addr, logs = cfg.witness.logs.len(), "witness listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server error")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}
