//! PostgreSQL connections for the hot paths, without a round trip around each use.
//!
//! sqlx's pool pings a connection when it hands it out and again when it takes it back: three
//! round trips to PostgreSQL for a one-query entry read. Here a connection is leased from the
//! idle list and goes back only when its query was answered ([`Lease::settle`]); a lease dropped
//! after a failure, or mid-query when its request went away, closes the connection, so one
//! left mid-protocol is never reused. Only a connection idle for over [`PING_AFTER`] is pinged
//! before use (a database restart while the server was quiet costs no request), and a read that
//! still meets a closed connection is retried once on a fresh one (`read!`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::StorageError;

/// How long a connection may sit idle before it is pinged on its next lease.
const PING_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct Conns {
    opts: PgConnectOptions,
    /// Each with the time it was given back.
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    permits: Semaphore,
}

impl std::fmt::Debug for Conns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conns")
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

impl Conns {
    /// At most `max` connections open at once, each opened on first need.
    pub(crate) fn new(opts: PgConnectOptions, max: u32) -> Conns {
        Conns {
            opts,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max.max(1) as usize),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<(PgConnection, Instant)>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection of its own until the lease is settled or dropped.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>, StorageError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let mut reused = self.idle().pop();
        if let Some((c, since)) = &mut reused
            && since.elapsed() > PING_AFTER
            && c.ping().await.is_err()
        {
            // The database went away meanwhile: the other idle connections are as old.
            reused = None;
            self.idle().clear();
        }
        let was_reused = reused.is_some();
        let conn = match reused {
            Some((c, _)) => c,
            None => PgConnection::connect_with(&self.opts).await?,
        };
        Ok(Lease {
            conns: self,
            conn,
            reused: was_reused,
            _permit: permit,
        })
    }
}

pub(crate) struct Lease<'a> {
    conns: &'a Conns,
    conn: PgConnection,
    reused: bool,
    _permit: SemaphorePermit<'a>,
}

impl Lease<'_> {
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// The query completed, or PostgreSQL answered it with an error: the connection goes back
    /// for the next lease. Any other failure closes it, as does dropping the lease.
    pub(crate) fn settle<T>(self, result: &Result<T, sqlx::Error>) {
        if matches!(result, Ok(_) | Err(sqlx::Error::Database(_))) {
            let Lease { conns, conn, .. } = self;
            conns.idle().push((conn, Instant::now()));
        }
    }

    /// Whether `e` says a reused connection was already closed (as after a database restart),
    /// so a read may be retried on a fresh one. The other idle connections date from the same
    /// time, so they are closed too.
    pub(crate) fn stale(&self, e: &sqlx::Error) -> bool {
        let broken = matches!(
            e,
            sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_)
        );
        if self.reused && broken {
            self.conns.idle().clear();
            return true;
        }
        false
    }
}

/// `read!(conns, c => query.fetch_…(c))`: run a read on a leased connection, once more on a
/// fresh connection if the leased one was stale; `?`s a failure out of the enclosing function.
macro_rules! read {
    ($conns:expr, $c:ident => $query:expr) => {{
        let mut retried = false;
        loop {
            let mut lease = $conns.lease().await?;
            let result = {
                let $c = lease.conn();
                $query.await
            };
            match result {
                Err(e) if !retried && lease.stale(&e) => retried = true,
                result => {
                    lease.settle(&result);
                    break result?;
                }
            }
        }
    }};
}
pub(crate) use read;
