//! The harness itself works: real PostgreSQL, SQLite, processes.

use std::time::Duration;

use sigil_tests::{Postgres, ServerProcess, free_port, temp_sqlite, workspace_bin};
use sqlx::{Connection, Row};

#[tokio::test]
async fn postgres_runs_queries_and_is_removed_afterwards() {
    let pg = Postgres::start_dedicated().await.expect("start PostgreSQL");
    let dir = pg.cluster_dir().expect("harness-started cluster has a dir");
    assert!(dir.join("data").join("PG_VERSION").is_file());

    let mut conn = sqlx::PgConnection::connect(&pg.url())
        .await
        .expect("connect");
    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    let db: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(db, pg.database());
    // The server must keep durability semantics: tests of crash safety rely on it.
    let fsync: String = sqlx::query_scalar("show fsync")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(fsync, "on");

    sqlx::query("create table t (id bigint primary key, v text not null)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("insert into t values (1, 'a'), (2, 'b')")
        .execute(&mut conn)
        .await
        .unwrap();
    let rows = sqlx::query("select id, v from t order by id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(1, "a".to_string()), (2, "b".to_string())]);
    conn.close().await.unwrap();

    drop(pg);
    assert!(!dir.exists(), "cluster dir {} still exists", dir.display());
}

#[tokio::test]
async fn postgres_databases_are_isolated() {
    let a = Postgres::start().await.expect("start PostgreSQL");
    let b = Postgres::start().await.expect("start PostgreSQL");
    assert_ne!(a.database(), b.database());
    let mut ca = sqlx::PgConnection::connect(&a.url()).await.unwrap();
    let mut cb = sqlx::PgConnection::connect(&b.url()).await.unwrap();
    sqlx::query("create table only_in_a (x int)")
        .execute(&mut ca)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(
        "select count(*) from information_schema.tables where table_name = 'only_in_a'",
    )
    .fetch_one(&mut cb)
    .await
    .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn postgres_survives_a_crash_restart_with_committed_rows() {
    let pg = Postgres::start_dedicated().await.expect("start PostgreSQL");
    let mut conn = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    sqlx::query("create table t (id int)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("insert into t values (7)")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    pg.crash_restart().expect("crash and restart");
    let mut conn = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    let v: i32 = sqlx::query_scalar("select id from t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, 7);
}

#[tokio::test]
async fn sqlite_temp_database_works_and_is_removed() {
    let (dir, url) = temp_sqlite().unwrap();
    let path = dir.path().to_path_buf();
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    sqlx::query("create table t (id integer primary key, v text)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("insert into t (v) values ('x')")
        .execute(&mut conn)
        .await
        .unwrap();
    let v: String = sqlx::query_scalar("select v from t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, "x");
    conn.close().await.unwrap();
    assert!(path.join("sigil.db").is_file());
    drop(dir);
    assert!(!path.exists());
}

#[test]
fn free_ports_are_bindable() {
    let p = free_port();
    assert_ne!(p, 0);
    std::net::TcpListener::bind(("127.0.0.1", p)).expect("port is free");
}

#[test]
fn missing_workspace_binary_says_how_to_build() {
    let err = workspace_bin("no-such-binary-here")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cargo build --workspace --bins"), "{err}");
}

#[tokio::test]
async fn server_process_waits_for_lines_and_urls_and_dies_on_kill9() {
    // A real HTTP server from the machine (Python's) stands in for a Sigil binary here.
    let port = free_port();
    let mut p = ServerProcess::spawn(
        std::path::Path::new("python3"),
        [
            "-u",
            "-c",
            &format!(
                "import http.server as h, sys\n\
             s = h.HTTPServer(('127.0.0.1', {port}), h.SimpleHTTPRequestHandler)\n\
             print('listening on', {port}); sys.stderr.write('to stderr\\n'); s.serve_forever()"
            ),
        ],
        &[],
    )
    .expect("spawn");
    let line = p
        .wait_for_line("listening on", Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(line, format!("listening on {port}"));
    p.wait_for_line("to stderr", Duration::from_secs(5))
        .await
        .unwrap();
    p.wait_for_url(
        &format!("http://127.0.0.1:{port}/"),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert!(p.is_running());
    let status = p.kill9().unwrap();
    assert!(!status.success());
    assert!(!p.is_running());
    let err = p
        .wait_for_line("never printed", Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("exited"), "{err}");
}

#[tokio::test]
async fn server_process_exits_on_signal() {
    let mut p = ServerProcess::spawn(std::path::Path::new("sleep"), ["60"], &[]).unwrap();
    p.signal("TERM").unwrap();
    let status = p.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert!(!status.success());
}

#[tokio::test]
async fn oidc_provider_issues_tokens_signed_with_a_published_key_and_rotates() {
    use sigil_tests::{OidcProvider, jwt_parts};
    let idp = OidcProvider::start().await.expect("start OIDC provider");
    let discovery = idp.discovery().await.unwrap();
    assert_eq!(discovery["issuer"], idp.issuer());

    let token = idp.token("alice", Some("alice@example.com")).await.unwrap();
    let (header, claims) = jwt_parts(&token).unwrap();
    assert_eq!(header["alg"], "RS256");
    let kid = header["kid"].as_str().expect("kid").to_string();
    assert!(idp.published_kids().await.unwrap().contains(&kid));
    assert_eq!(claims["iss"], idp.issuer());
    assert_eq!(claims["aud"], "sigstore");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(exp > iat);

    let no_email = idp.token("svc", None).await.unwrap();
    let (_, claims) = jwt_parts(&no_email).unwrap();
    assert_eq!(claims["sub"], "svc");
    assert!(claims.get("email").is_none());

    // Rotation keeping the old key published: both kids in the JWKS, the new one signs.
    let new_kid = idp.rotate_keys(true).await.unwrap();
    assert_ne!(new_kid, kid);
    let kids = idp.published_kids().await.unwrap();
    assert!(kids.contains(&kid) && kids.contains(&new_kid), "{kids:?}");
    let (header, _) = jwt_parts(&idp.token("alice", None).await.unwrap()).unwrap();
    assert_eq!(header["kid"], new_kid.as_str());

    // Rotation dropping old keys: only the newest is published.
    let newest = idp.rotate_keys(false).await.unwrap();
    assert_eq!(idp.published_kids().await.unwrap(), vec![newest.clone()]);
    let (header, _) = jwt_parts(&idp.token("alice", None).await.unwrap()).unwrap();
    assert_eq!(header["kid"], newest.as_str());
}
