//! A throwaway PostgreSQL for tests.
//!
//! Without `DATABASE_URL`, a private cluster is created from the system binaries (`initdb`,
//! `pg_ctl`) in a temp dir, reachable only through a unix socket in that dir. When running as
//! root the cluster runs as the `postgres` user (PostgreSQL refuses to run as root). Within one
//! test process the cluster is shared and every [`Postgres`] gets its own fresh database; the
//! cluster is stopped and its directory removed when the last handle is dropped.
//!
//! With `DATABASE_URL` set, each [`Postgres`] is a fresh database on that server, dropped again
//! on `Drop` (best effort).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

use anyhow::{Context, Result, anyhow, bail};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tempfile::TempDir;

use crate::random_suffix;

/// Where Debian installs the server binaries; `initdb`/`pg_ctl` are not always on `PATH`.
const PG_LIB_DIR: &str = "/usr/lib/postgresql";

const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, pg_ctl) not found: install them with \
    `apt-get install postgresql` (scripts/test does this), or set DATABASE_URL to a server whose user \
    may CREATE DATABASE";

/// The port number only names the socket file; nothing listens on TCP.
const SOCKET_PORT: u16 = 5432;

/// One database of a running PostgreSQL server.
pub struct Postgres {
    url: String,
    database: String,
    /// Keeps the shared cluster alive; `None` when `DATABASE_URL` is used.
    cluster: Option<Arc<Cluster>>,
    /// Admin URL (a database to connect to for `DROP DATABASE`) when `DATABASE_URL` is used.
    external_admin_url: Option<String>,
}

impl Postgres {
    /// A fresh database on the shared per-process cluster, or on `DATABASE_URL` when set.
    pub async fn start() -> Result<Postgres> {
        crate::install_crypto_provider();
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.is_empty()
        {
            return Self::on_external(&url).await;
        }
        let cluster = shared_cluster()?;
        Self::on_cluster(cluster).await
    }

    /// A fresh database on a cluster of its own (never `DATABASE_URL`), for tests that stop,
    /// crash or inspect the cluster itself.
    pub async fn start_dedicated() -> Result<Postgres> {
        crate::install_crypto_provider();
        let cluster = Arc::new(Cluster::init()?);
        Self::on_cluster(cluster).await
    }

    async fn on_cluster(cluster: Arc<Cluster>) -> Result<Postgres> {
        let database = format!("sigil_test_{}", random_suffix());
        let admin_url = cluster.url_for("postgres");
        create_database(&admin_url, &database).await?;
        Ok(Postgres {
            url: cluster.url_for(&database),
            database,
            cluster: Some(cluster),
            external_admin_url: None,
        })
    }

    async fn on_external(url: &str) -> Result<Postgres> {
        let database = format!("sigil_test_{}", random_suffix());
        create_database(url, &database)
            .await
            .context("DATABASE_URL is set: creating a test database on it")?;
        Ok(Postgres {
            url: replace_database(url, &database)?,
            database,
            cluster: None,
            external_admin_url: Some(url.to_string()),
        })
    }

    /// A sqlx-compatible URL of this test's database.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The cluster's directory (data dir, socket, server log), if the harness started it.
    pub fn cluster_dir(&self) -> Option<PathBuf> {
        self.cluster.as_ref().map(|c| c.dir.path().to_path_buf())
    }

    /// The cluster's server log, for error messages.
    pub fn server_log(&self) -> Option<String> {
        self.cluster
            .as_ref()
            .and_then(|c| std::fs::read_to_string(c.log_file()).ok())
    }

    /// Stops the server (`pg_ctl stop -m fast`); only for a cluster the harness started.
    pub fn stop_server(&self) -> Result<()> {
        self.cluster
            .as_ref()
            .ok_or_else(|| anyhow!("stop_server needs a harness-started cluster"))?
            .stop("fast")
    }

    /// Starts the server again after [`Postgres::stop_server`].
    pub fn start_server(&self) -> Result<()> {
        self.cluster
            .as_ref()
            .ok_or_else(|| anyhow!("start_server needs a harness-started cluster"))?
            .start()
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`) and starts it again;
    /// only for a cluster the harness started.
    pub fn crash_restart(&self) -> Result<()> {
        let cluster = self.cluster.as_ref().ok_or_else(|| {
            anyhow!("crash_restart needs a harness-started cluster, not DATABASE_URL")
        })?;
        cluster.stop("immediate")?;
        cluster.start()
    }
}

/// A streaming-replication hot standby of a harness-started cluster (`pg_basebackup -R`), as a
/// cluster of its own; see [`Postgres::start_standby`].
pub struct Standby {
    cluster: Cluster,
    database: String,
}

impl Postgres {
    /// Starts a hot standby of this database's cluster, streaming from it (the primary must be
    /// a harness-started cluster, e.g. [`Postgres::start_dedicated`]); returns once the
    /// standby accepts read-only connections.
    pub async fn start_standby(&self) -> Result<Standby> {
        let primary = self.cluster.as_ref().ok_or_else(|| {
            anyhow!("a standby needs a harness-started primary, not DATABASE_URL")
        })?;
        let cluster = Cluster::empty()?;
        let data = cluster.data_dir();
        cluster.run(
            "pg_basebackup",
            &[
                "-D",
                path_str(&data)?,
                "-h",
                path_str(primary.dir.path())?,
                "-p",
                &SOCKET_PORT.to_string(),
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        )?;
        cluster.start()?;
        let standby = Standby {
            cluster,
            database: self.database.clone(),
        };
        // Hot standby: connections are accepted once it reached a consistent state.
        let since = std::time::Instant::now();
        loop {
            match PgConnection::connect(&standby.url()).await {
                Ok(c) => {
                    c.close().await.ok();
                    break;
                }
                Err(e) if since.elapsed() > std::time::Duration::from_secs(60) => {
                    bail!("the standby does not accept connections: {e}");
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        Ok(standby)
    }
}

impl Standby {
    /// The same database, on the standby.
    pub fn url(&self) -> String {
        self.cluster.url_for(&self.database)
    }

    /// Stops applying the primary's WAL (`pg_wal_replay_pause()`): the standby falls behind.
    pub async fn pause_replay(&self) -> Result<()> {
        self.admin("SELECT pg_wal_replay_pause()").await
    }

    /// Applies the primary's WAL again.
    pub async fn resume_replay(&self) -> Result<()> {
        self.admin("SELECT pg_wal_replay_resume()").await
    }

    async fn admin(&self, sql: &str) -> Result<()> {
        let mut c = PgConnection::connect(&self.cluster.url_for("postgres")).await?;
        sqlx::query(sql).execute(&mut c).await?;
        c.close().await.ok();
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The harness's own cluster is removed whole when its last user goes; only an external
        // server needs the database dropped.
        let Some(admin_url) = self.external_admin_url.take() else {
            return;
        };
        let database = self.database.clone();
        // Drop may run inside a tokio runtime, where blocking on a future is not allowed: use a
        // thread with its own runtime.
        let worker = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");
                    let _ = sqlx::query(&sql).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = worker.join();
    }
}

async fn create_database(admin_url: &str, database: &str) -> Result<()> {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
    // The name is ours (letters, digits, underscore), so quoting is enough.
    sqlx::query(&format!("CREATE DATABASE \"{database}\""))
        .execute(&mut conn)
        .await
        .with_context(|| format!("CREATE DATABASE {database}"))?;
    conn.close().await.ok();
    Ok(())
}

/// Replaces the path (database name) of a `postgres://` URL, keeping its query.
fn replace_database(url: &str, database: &str) -> Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base
        .find("://")
        .ok_or_else(|| anyhow!("DATABASE_URL is not a URL: {url}"))?
        + 3;
    let authority_end = base
        .get(scheme_end..)
        .and_then(|rest| rest.find('/'))
        .map_or(base.len(), |i| i + scheme_end);
    let authority = base.get(..authority_end).unwrap_or(base);
    Ok(match query {
        Some(q) => format!("{authority}/{database}?{q}"),
        None => format!("{authority}/{database}"),
    })
}

static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());

fn shared_cluster() -> Result<Arc<Cluster>> {
    let mut slot = SHARED
        .lock()
        .map_err(|_| anyhow!("shared PostgreSQL cluster lock poisoned"))?;
    if let Some(cluster) = slot.upgrade() {
        return Ok(cluster);
    }
    let cluster = Arc::new(Cluster::init()?);
    *slot = Arc::downgrade(&cluster);
    Ok(cluster)
}

/// Where a cluster lives: a temp dir removed with it, or a kept one (benchmarks that resume).
enum ClusterDir {
    Temp(TempDir),
    Kept(PathBuf),
}

impl ClusterDir {
    fn path(&self) -> &Path {
        match self {
            ClusterDir::Temp(t) => t.path(),
            ClusterDir::Kept(p) => p,
        }
    }
}

/// A cluster kept in a directory across runs (created on first use), stopped when dropped.
pub struct KeptPostgres {
    cluster: Cluster,
    database: String,
}

impl KeptPostgres {
    /// Starts (initialising if needed) the cluster in `dir`, with a database `database`.
    pub async fn start(dir: &Path, database: &str) -> Result<KeptPostgres> {
        crate::install_crypto_provider();
        std::fs::create_dir_all(dir)?;
        let cluster = Cluster {
            dir: ClusterDir::Kept(dir.canonicalize()?),
            bin_dir: find_bin_dir()?,
            as_postgres: running_as_root(),
        };
        if cluster.as_postgres {
            let (uid, gid) = postgres_user_ids()?;
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .context("giving the cluster dir to the postgres user")?;
        }
        let fresh = !cluster.data_dir().join("PG_VERSION").exists();
        if fresh {
            cluster.initdb()?;
        }
        cluster.start()?;
        if fresh {
            create_database(&cluster.url_for("postgres"), database).await?;
        }
        Ok(KeptPostgres {
            cluster,
            database: database.to_string(),
        })
    }

    pub fn url(&self) -> String {
        self.cluster.url_for(&self.database)
    }
}

/// A running cluster: `<dir>/data`, the socket in `<dir>`, the log `<dir>/server.log`.
struct Cluster {
    dir: ClusterDir,
    bin_dir: PathBuf,
    /// Run the binaries as the `postgres` user (we are root).
    as_postgres: bool,
}

impl Cluster {
    fn init() -> Result<Cluster> {
        let cluster = Self::empty()?;
        cluster.initdb()?;
        cluster.start()?;
        Ok(cluster)
    }

    fn initdb(&self) -> Result<()> {
        let cluster = self;
        let data = cluster.data_dir();
        // -N: initdb's own fsyncs only protect a cluster we throw away; the running server keeps
        // fsync on, so durability tests see real commits.
        cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ],
        )
    }

    /// A temp dir for a cluster, owned by the user the server will run as; nothing in it yet.
    fn empty() -> Result<Cluster> {
        let bin_dir = find_bin_dir()?;
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("sigil-pg-")
            .tempdir()
            .context("creating a temp dir for PostgreSQL")?;
        if as_postgres {
            let (uid, gid) = postgres_user_ids()?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .context("giving the cluster dir to the postgres user")?;
        }
        Ok(Cluster {
            dir: ClusterDir::Temp(dir),
            bin_dir,
            as_postgres,
        })
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn start(&self) -> Result<()> {
        let options = format!(
            "-c listen_addresses='' -k {} -p {SOCKET_PORT} -c fsync=on -c max_connections=200",
            path_str(self.dir.path())?
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&self.data_dir())?,
                "-l",
                path_str(&self.log_file())?,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .map_err(|e| {
            let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
            anyhow!("{e:#}\nserver log:\n{log}")
        })
    }

    fn stop(&self, mode: &str) -> Result<()> {
        self.run(
            "pg_ctl",
            &["-D", path_str(&self.data_dir())?, "-m", mode, "-w", "stop"],
        )
    }

    fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost/{database}?host={}&port={SOCKET_PORT}",
            self.dir.path().display()
        )
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<()> {
        let exe = self.bin_dir.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.arg("-u").arg("postgres").arg("--").arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir(self.dir.path());
        let out = cmd
            .output()
            .with_context(|| format!("running {}", exe.display()))?;
        if !out.status.success() {
            bail!(
                "{program} {} failed ({}):\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        match self.dir {
            // Immediate: nothing to flush for a throwaway cluster. The TempDir removes the files.
            ClusterDir::Temp(_) => {
                let _ = self.stop("immediate");
            }
            ClusterDir::Kept(_) => {
                let _ = self.stop("fast");
            }
        }
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path: {}", p.display()))
}

/// The newest `/usr/lib/postgresql/<v>/bin` holding initdb, else the directory of `initdb` on PATH.
fn find_bin_dir() -> Result<PathBuf> {
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(entries) = std::fs::read_dir(PG_LIB_DIR) {
        for entry in entries.flatten() {
            let Ok(version) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let bin = entry.path().join("bin");
            if bin.join("initdb").is_file()
                && bin.join("pg_ctl").is_file()
                && best.as_ref().is_none_or(|(v, _)| version > *v)
            {
                best = Some((version, bin));
            }
        }
    }
    if let Some((_, bin)) = best {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return Ok(dir);
        }
    }
    bail!("{INSTALL_HINT}")
}

fn running_as_root() -> bool {
    // /proc/self belongs to the process's effective user; avoids unsafe libc calls.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn postgres_user_ids() -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    for line in passwd.lines() {
        let mut fields = line.split(':');
        if fields.next() != Some("postgres") {
            continue;
        }
        let uid = fields.nth(1).and_then(|s| s.parse().ok());
        let gid = fields.next().and_then(|s| s.parse().ok());
        if let (Some(uid), Some(gid)) = (uid, gid) {
            return Ok((uid, gid));
        }
    }
    bail!(
        "running as root but there is no `postgres` user to run the cluster as: install \
         `apt-get install postgresql` (creates it), or run the tests as a normal user"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_keeping_query() {
        assert_eq!(
            replace_database("postgres://u:p@h:5/old?sslmode=disable", "new").unwrap(),
            "postgres://u:p@h:5/new?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://u@h", "new").unwrap(),
            "postgres://u@h/new"
        );
    }
}
