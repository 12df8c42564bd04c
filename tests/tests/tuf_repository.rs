//! Sigil's TUF repository judged by python-tuf's ngclient, the reference client (the version
//! sigstore-python 4.5.1 pins, from the project's venv): it refreshes and downloads both targets;
//! it refuses an expired timestamp, a rolled-back snapshot and a target whose hash changed
//! (served by a static web server from a copy of the repository that the test tampers with); it
//! keeps refreshing when timestamps live 5 seconds; it follows a root rotation and refuses a root
//! signed below the previous root's threshold.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sigil_tests::{
    CmdResult, ServerProcess, SigilStack, StackOptions, free_port, record_interop, run, venv_tool,
    workspace_root,
};

const PEER: &str = "python-tuf 7.0.1 ngclient";
const TIMEOUT: Duration = Duration::from_secs(60);
const TARGETS: [&str; 2] = ["trusted_root.json", "signing_config.v0.2.json"];

fn script() -> PathBuf {
    workspace_root().join("tests/python/tuf_client.py")
}

/// `tuf_client.py refresh`: bootstraps from `root` when given, refreshes from `url`, downloads
/// `targets`.
async fn refresh(meta: &Path, url: &str, root: Option<&Path>, targets: &[&str]) -> CmdResult {
    let python = venv_tool("python3").expect("venv python");
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script())
        .arg("refresh")
        .arg("--metadata-dir")
        .arg(meta)
        .args(["--url", url]);
    if let Some(r) = root {
        cmd.arg("--root").arg(r);
    }
    let downloads = meta.join("targets");
    std::fs::create_dir_all(&downloads).unwrap();
    cmd.arg("--download-dir").arg(&downloads);
    for t in targets {
        cmd.args(["--target", t]);
    }
    run(cmd, TIMEOUT).await.expect("run tuf_client.py")
}

fn json(r: &CmdResult) -> Value {
    serde_json::from_str(r.stdout().trim()).unwrap_or_else(|_| panic!("not JSON:\n{r}"))
}

fn ok(r: &CmdResult) -> Value {
    assert!(r.success(), "python-tuf refresh failed:\n{r}");
    json(r)
}

/// The client refused, with this exception class.
fn refused(r: &CmdResult, error: &str) {
    assert!(
        !r.success(),
        "python-tuf accepted what it must refuse:\n{r}"
    );
    let v = json(r);
    assert_eq!(v["error"], error, "refused for another reason:\n{r}");
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// A copy of the server's repository (no lock file) served by Python's static web server.
struct Mirror {
    dir: PathBuf,
    url: String,
    _server: ServerProcess,
}

async fn mirror(stack: &SigilStack, name: &str) -> Mirror {
    let dir = stack.scratch().join(name);
    copy_dir(&stack.data_dir().join("tuf"), &dir);
    let port = free_port();
    let mut server = ServerProcess::spawn(
        Path::new("python3"),
        [
            "-m".as_ref(),
            "http.server".as_ref(),
            port.to_string().as_ref(),
            "--bind".as_ref(),
            "127.0.0.1".as_ref(),
            "--directory".as_ref(),
            dir.as_os_str(),
        ],
        &[],
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    server
        .wait_for_url(&format!("{url}/1.root.json"), Duration::from_secs(20))
        .await
        .unwrap();
    Mirror {
        dir,
        url,
        _server: server,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

async fn tamper_timestamp(stack: &SigilStack, repo: &Path, args: &[&str]) {
    let python = venv_tool("python3").unwrap();
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script())
        .arg("tamper-timestamp")
        .arg("--repo")
        .arg(repo)
        .arg("--key")
        .arg(stack.data_dir().join("keys/tuf-timestamp.pem"))
        .args(args);
    let r = run(cmd, TIMEOUT).await.unwrap();
    assert!(r.success(), "tampering failed:\n{r}");
}

#[tokio::test]
async fn python_tuf_refreshes_downloads_and_refuses_tampering() {
    let mut stack = SigilStack::up().await.expect("sigil-server up");
    let root = stack.data_dir().join("tuf/1.root.json");
    let tuf_url = format!("{}/tuf", stack.url());
    let scratch = stack.scratch().to_path_buf();

    // Refresh and download both targets: the same bytes as /api/v1/trust/*.
    let r = refresh(&scratch.join("c1"), &tuf_url, Some(&root), &TARGETS).await;
    let v = ok(&r);
    let served_root = stack
        .get_bytes("/api/v1/trust/trusted_root.json")
        .await
        .unwrap();
    let served_cfg = stack
        .get_bytes("/api/v1/trust/signing_config.json")
        .await
        .unwrap();
    assert_eq!(v["targets"]["trusted_root.json"], sha256_hex(&served_root));
    assert_eq!(
        v["targets"]["signing_config.v0.2.json"],
        sha256_hex(&served_cfg)
    );
    assert_eq!(v["root_version"], 1);
    record_interop(
        PEER,
        "refreshes Sigil's TUF repository (consistent snapshots) and downloads trusted_root.json and signing_config.v0.2.json",
        true,
    );

    // A static copy of the repository is a repository too (what `trust export --tuf` relies on).
    let m = mirror(&stack, "mirror").await;
    let v = ok(&refresh(&scratch.join("c2"), &m.url, Some(&root), &TARGETS).await);
    assert_eq!(v["targets"]["trusted_root.json"], sha256_hex(&served_root));

    // An expired timestamp, validly signed: refused.
    let ts = m.dir.join("timestamp.json");
    let original_ts = std::fs::read(&ts).unwrap();
    tamper_timestamp(&stack, &m.dir, &["--expire"]).await;
    refused(
        &refresh(&scratch.join("c3"), &m.url, Some(&root), &[]).await,
        "ExpiredMetadataError",
    );
    std::fs::write(&ts, &original_ts).unwrap();

    // A target whose bytes changed after signing: refused on download.
    let target_file = std::fs::read_dir(m.dir.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".trusted_root.json"))
        .unwrap();
    let original_target = std::fs::read(&target_file).unwrap();
    let mut changed = original_target.clone();
    changed.extend_from_slice(b" ");
    std::fs::write(&target_file, &changed).unwrap();
    refused(
        &refresh(&scratch.join("c4"), &m.url, Some(&root), &TARGETS).await,
        "DownloadLengthMismatchError",
    );
    // Same length, one bit changed.
    changed.pop();
    *changed.last_mut().unwrap() ^= 1;
    std::fs::write(&target_file, &changed).unwrap();
    refused(
        &refresh(&scratch.join("c4b"), &m.url, Some(&root), &TARGETS).await,
        "LengthOrHashMismatchError",
    );
    std::fs::write(&target_file, &original_target).unwrap();
    record_interop(
        PEER,
        "refuses an expired timestamp and a target whose hash changed",
        true,
    );

    // A rolled-back snapshot: the server publishes snapshot 2 (its signing config changed);
    // a client that trusts it is then served a newer timestamp naming snapshot 1.
    let cfg = stack.data_dir().join("sigil.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let mut doc: toml::Table = text.parse().unwrap();
    doc.entry("trust")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .unwrap()
        .insert(
            "oidc_url".into(),
            "https://idp.example.org/realms/other".into(),
        );
    std::fs::write(&cfg, toml::to_string(&doc).unwrap()).unwrap();
    stack.restart().await.unwrap();
    let c5 = scratch.join("c5");
    let v = ok(&refresh(&c5, &tuf_url, Some(&root), &TARGETS).await);
    assert_eq!(v["snapshot_version"], 2, "a new targets version: {v}");
    assert_eq!(v["targets_version"], 2, "{v}");
    let new_cfg = stack
        .get_bytes("/api/v1/trust/signing_config.json")
        .await
        .unwrap();
    assert_eq!(
        v["targets"]["signing_config.v0.2.json"],
        sha256_hex(&new_cfg)
    );
    // The mirror still holds snapshot 1; its timestamp is re-signed above the trusted one.
    tamper_timestamp(&stack, &m.dir, &["--snapshot-version", "1"]).await;
    tamper_timestamp(&stack, &m.dir, &["--snapshot-version", "1"]).await;
    refused(
        &refresh(&c5, &m.url, None, &[]).await,
        "BadVersionNumberError",
    );
    record_interop(PEER, "refuses a rolled-back snapshot", true);
}

#[tokio::test]
async fn five_second_timestamps_are_resigned_and_a_refresh_20s_later_succeeds() {
    let stack = SigilStack::up_with(StackOptions {
        config: vec![("tuf", "timestamp_expiry_secs", 5.into())],
        ..StackOptions::default()
    })
    .await
    .expect("sigil-server up");
    let root = stack.data_dir().join("tuf/1.root.json");
    let url = format!("{}/tuf", stack.url());
    let meta = stack.scratch().join("client");
    let first = ok(&refresh(&meta, &url, Some(&root), &TARGETS).await);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let later = ok(&refresh(&meta, &url, None, &TARGETS).await);
    let (v1, v2) = (
        first["timestamp_version"].as_u64().unwrap(),
        later["timestamp_version"].as_u64().unwrap(),
    );
    // At 2.5 s of 5 left, checked every 1.25 s: about one version every 2.5-3.75 s.
    assert!(v2 >= v1 + 4, "timestamp versions {v1} then {v2} after 20 s");
    let metrics = String::from_utf8(stack.get_bytes("/metrics").await.unwrap()).unwrap();
    let signed: f64 = metrics
        .lines()
        .find(|l| l.starts_with("sigil_tuf_signatures_total{role=\"timestamp\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no timestamp re-signing metric in:\n{metrics}"));
    assert!(signed >= 4.0, "{signed} timestamps signed");
    assert!(
        metrics.contains("sigil_tuf_expires_timestamp_seconds{role=\"timestamp\"}"),
        "{metrics}"
    );
    record_interop(
        PEER,
        "with 5-second timestamps, a refresh 20 s later succeeds (the server re-signs)",
        true,
    );
}

fn genkey(path: &Path) {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(path)
        .output()
        .expect("openssl (Debian package openssl; scripts/test installs it)");
    assert!(out.status.success(), "{out:?}");
}

fn server_ok(stack: &SigilStack, args: &[&str]) -> String {
    let out = stack.server_command(args).unwrap();
    assert!(
        out.status.success(),
        "sigil-server {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn root_rotation_is_followed_and_a_root_below_threshold_is_refused() {
    let stack = SigilStack::up().await.expect("sigil-server up");
    let data = stack.data_dir();
    let repo = data.join("tuf");
    let root1 = repo.join("1.root.json");
    let url = format!("{}/tuf", stack.url());
    let meta = stack.scratch().join("client");
    let keys = stack.scratch().join("offline");
    std::fs::create_dir_all(&keys).unwrap();
    let (k2, k3, rogue) = (
        keys.join("k2.pem"),
        keys.join("k3.pem"),
        keys.join("rogue.pem"),
    );
    for k in [&k2, &k3, &rogue] {
        genkey(k);
    }
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let old = s(&data.join("keys/tuf-root.pem"));
    assert_eq!(
        ok(&refresh(&meta, &url, Some(&root1), &[]).await)["root_version"],
        1
    );

    // 1 → 2: root key k2, signed by the old and the new key: published at once.
    let out = server_ok(
        &stack,
        &[
            "tuf",
            "rotate-root",
            "--root-key",
            &s(&k2),
            "--key",
            &old,
            "--key",
            &s(&k2),
        ],
    );
    assert!(out.contains("published"), "{out}");
    let v = ok(&refresh(&meta, &url, None, &TARGETS).await);
    assert_eq!(v["root_version"], 2, "{v}");

    // 2 → 3: two root keys, threshold 2. Signed by k2 alone it waits in staging; `sign-root`
    // with k3 publishes it.
    let out = server_ok(
        &stack,
        &[
            "tuf",
            "rotate-root",
            "--root-key",
            &s(&k2),
            "--root-key",
            &s(&k3),
            "--threshold",
            "2",
            "--key",
            &s(&k2),
        ],
    );
    assert!(out.contains("staged"), "{out}");
    assert!(!repo.join("3.root.json").exists());
    assert_eq!(
        ok(&refresh(&meta, &url, None, &[]).await)["root_version"],
        2
    );
    let out = server_ok(&stack, &["tuf", "sign-root", "--key", &s(&k3)]);
    assert!(out.contains("published"), "{out}");
    assert_eq!(
        ok(&refresh(&meta, &url, None, &[]).await)["root_version"],
        3
    );

    // 3 → 4 signed by the new key alone (below root 3's threshold of 2): the server only
    // stages it; served anyway, the client refuses it and keeps root 3.
    let out = server_ok(
        &stack,
        &[
            "tuf",
            "rotate-root",
            "--root-key",
            &s(&rogue),
            "--threshold",
            "1",
            "--key",
            &s(&rogue),
        ],
    );
    assert!(out.contains("staged"), "{out}");
    let staged = data.join("tuf-staging/4.root.json");
    std::fs::copy(&staged, repo.join("4.root.json")).unwrap();
    refused(
        &refresh(&meta, &url, None, &[]).await,
        "UnsignedMetadataError",
    );
    // One of the two threshold keys is not enough either.
    std::fs::remove_file(repo.join("4.root.json")).unwrap();
    let out = server_ok(&stack, &["tuf", "sign-root", "--key", &s(&k2)]);
    assert!(out.contains("staged"), "{out}");
    std::fs::copy(&staged, repo.join("4.root.json")).unwrap();
    refused(
        &refresh(&meta, &url, None, &[]).await,
        "UnsignedMetadataError",
    );
    std::fs::remove_file(repo.join("4.root.json")).unwrap();
    assert_eq!(
        ok(&refresh(&meta, &url, None, &TARGETS).await)["root_version"],
        3
    );
    record_interop(
        PEER,
        "follows root rotations (1 → 2 → 3, threshold 2 with `tuf sign-root`); refuses a root signed below the previous threshold",
        true,
    );
}

#[tokio::test]
async fn trust_export_tuf_writes_a_repository_any_web_server_can_serve() {
    let stack = SigilStack::up().await.expect("sigil-server up");
    let root = stack.data_dir().join("tuf/1.root.json");
    let live = ok(&refresh(
        &stack.scratch().join("live"),
        &format!("{}/tuf", stack.url()),
        Some(&root),
        &TARGETS,
    )
    .await);
    let out = stack.scratch().join("export");
    let o = server_ok(&stack, &["trust", "export", "--tuf", out.to_str().unwrap()]);
    assert!(o.contains("wrote the TUF repository"), "{o}");
    assert!(!out.join(".lock").exists());
    // Served by a plain static web server: the same versions and targets as the live server
    // (the export signed nothing new: it describes the same trust).
    let port = free_port();
    let mut web = ServerProcess::spawn(
        Path::new("python3"),
        [
            "-m".as_ref(),
            "http.server".as_ref(),
            port.to_string().as_ref(),
            "--bind".as_ref(),
            "127.0.0.1".as_ref(),
            "--directory".as_ref(),
            out.as_os_str(),
        ],
        &[],
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    web.wait_for_url(&format!("{url}/1.root.json"), Duration::from_secs(20))
        .await
        .unwrap();
    let exported = ok(&refresh(&stack.scratch().join("static"), &url, Some(&root), &TARGETS).await);
    assert_eq!(exported["targets"], live["targets"]);
    assert_eq!(exported["targets_version"], live["targets_version"]);
    assert_eq!(exported["snapshot_version"], live["snapshot_version"]);
    record_interop(
        PEER,
        "refreshes from `sigil-server trust export --tuf DIR` served by a static web server",
        true,
    );
}
