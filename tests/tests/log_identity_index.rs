//! The search index holds no plaintext identity: after `sigil sign-blob` (Rekor v1 and Rekor v2)
//! against `sigil-server up` on SQLite and on PostgreSQL, no row of `search_index` contains the
//! signer's e-mail (identities are stored as `identity-hmac:` keyed hashes), and a search by that
//! e-mail still finds both entries. With `log.identity_search = "off"` no identity is indexed and
//! a search by e-mail is refused with a 400 that says so.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use sigil_tests::{Postgres, SigilStack, StackOptions, workspace_bin};
use sqlx::{Connection, Row};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_are_keyed_hashes_on_sqlite() {
    run(None, "keyed").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_are_keyed_hashes_on_postgres() {
    let pg = Postgres::start().await.unwrap();
    run(Some(pg.url()), "keyed").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_search_can_be_turned_off() {
    run(None, "off").await.unwrap();
}

fn sigil(home: &Path, dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(workspace_bin("sigil")?)
        .args(args)
        .env("SIGIL_HOME", home)
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("SIGIL_TRUST_CONFIG")
        .env_remove("SIGIL_REKOR_VERSION")
        .current_dir(dir)
        .output()?;
    ensure!(
        out.status.success(),
        "sigil {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every key of the search index, from the database itself.
async fn index_keys(db_url: &str) -> Result<Vec<String>> {
    let sql = "SELECT key FROM search_index";
    Ok(if db_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(db_url).await?;
        sqlx::query(sql)
            .fetch_all(&mut c)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    } else {
        let mut c = sqlx::SqliteConnection::connect(db_url).await?;
        sqlx::query(sql)
            .fetch_all(&mut c)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    })
}

async fn run(database_url: Option<String>, mode: &'static str) -> Result<()> {
    let stack = SigilStack::up_with(StackOptions {
        database_url: database_url.clone(),
        config: vec![("log", "identity_search", mode.into())],
        ..StackOptions::default()
    })
    .await?;
    let url = stack.url().to_string();
    let (_, identity) = stack.dev_token().await?;
    let home = stack.scratch().join("home");
    let dir = stack.scratch().join("work");
    std::fs::create_dir_all(&dir)?;
    sigil(&home, &dir, &["trust", "init", "--url", &url])?;
    sigil(&home, &dir, &["login"])?;
    for (file, version) in [("v2.txt", "2"), ("v1.txt", "1")] {
        std::fs::write(dir.join(file), format!("signed into Rekor v{version}\n"))?;
        sigil(
            &home,
            &dir,
            &[
                "sign-blob",
                file,
                "--bundle",
                &format!("{file}.json"),
                "--rekor-version",
                version,
            ],
        )?;
    }

    let db = database_url.unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=ro",
            stack.data_dir().join("sigil.db").display()
        )
    });
    let keys = index_keys(&db).await.context("reading search_index")?;
    let lower = identity.to_lowercase();
    ensure!(
        !keys.iter().any(|k| k.to_lowercase().contains(&lower)),
        "the search index holds {identity} in plaintext: {keys:?}"
    );
    let keyed = keys
        .iter()
        .filter(|k| k.starts_with("identity-hmac:"))
        .count();
    let http = reqwest::Client::new();
    let v1 = http
        .post(format!("{url}/api/v1/index/retrieve"))
        .json(&json!({ "email": identity }))
        .send()
        .await?;
    let v1_status = v1.status().as_u16();
    let v1_body: Value = v1.json().await?;
    let v2 = http
        .post(format!("{url}/api/v2/sigil/index/retrieve"))
        .json(&json!({ "email": identity }))
        .send()
        .await?;
    let v2_status = v2.status().as_u16();
    let v2_body: Value = v2.json().await?;
    match mode {
        "keyed" => {
            ensure!(keyed >= 2, "no keyed identity in the index: {keys:?}");
            ensure!(
                v1_status == 200 && v1_body.as_array().map(Vec::len) == Some(1),
                "v1 search by e-mail: {v1_status} {v1_body}"
            );
            ensure!(
                v2_status == 200 && v2_body.as_array().map(Vec::len) == Some(1),
                "v2 search by e-mail: {v2_status} {v2_body}"
            );
        }
        _ => {
            ensure!(
                keyed == 0,
                "identity search is off, yet the index holds {keyed} keyed identities"
            );
            for (status, body) in [(v1_status, &v1_body), (v2_status, &v2_body)] {
                ensure!(
                    status == 400
                        && body["message"]
                            .as_str()
                            .unwrap_or("")
                            .contains("turned off"),
                    "search by e-mail with identity search off: {status} {body}"
                );
            }
            // Search by artifact hash still works.
            let digest = hex::encode(sigil_core::crypto::sha256(&std::fs::read(
                dir.join("v1.txt"),
            )?));
            let r: Value = http
                .post(format!("{url}/api/v1/index/retrieve"))
                .json(&json!({ "hash": format!("sha256:{digest}") }))
                .send()
                .await?
                .json()
                .await?;
            ensure!(r.as_array().map(Vec::len) == Some(1), "search by hash: {r}");
        }
    }
    eprintln!(
        "{mode}: {} index keys, {keyed} keyed identities, none in plaintext",
        keys.len()
    );
    Ok(())
}
