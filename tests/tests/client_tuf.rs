//! `sigil` taking its trust from Sigil's TUF repository: `trust init --tuf URL --tuf-root ROOT`
//! (no trust on first use), sign and verify with the stored trust, a root rotation followed by a
//! later command with no action, the offline mode when the server is gone, and `trust init
//! --tuf file://DIR` from `sigil-server trust export --tuf DIR`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use sigil_tests::{SigilStack, workspace_bin};

fn sigil(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(workspace_bin("sigil").unwrap());
    cmd.args(args)
        .env("SIGIL_HOME", home)
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("SIGIL_TRUST_CONFIG")
        .env_remove("SIGIL_TUF_OFFLINE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ok(home: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = sigil(home, args, env);
    assert!(
        out.status.success(),
        "sigil {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn root_version(home: &Path) -> u64 {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("tuf/root.json")).unwrap()).unwrap();
    v["signed"]["version"].as_u64().unwrap()
}

#[tokio::test]
async fn sigil_trust_init_tuf_refreshes_follows_rotation_and_works_offline_and_from_files() {
    let mut stack = SigilStack::up().await.expect("sigil-server up");
    let data = stack.data_dir();
    let scratch = stack.scratch().to_path_buf();
    let home = scratch.join("home");
    let root1 = data.join("tuf/1.root.json");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let tuf = format!("{}/tuf", stack.url());

    let out = ok(
        &home,
        &["trust", "init", "--tuf", &tuf, "--tuf-root", &s(&root1)],
        &[],
    );
    assert!(out.contains("TUF repository"), "{out}");
    let served = stack
        .get_bytes("/api/v1/trust/trusted_root.json")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(home.join("trusted_root.json")).unwrap(),
        served
    );

    // Sign and verify with the trust TUF delivered.
    let f = scratch.join("f.txt");
    std::fs::write(&f, b"trust from TUF\n").unwrap();
    let bundle = scratch.join("f.sigstore.json");
    let (token, identity) = stack.dev_token().await.unwrap();
    ok(
        &home,
        &[
            "sign-blob",
            &s(&f),
            "--bundle",
            &s(&bundle),
            "--identity-token",
            &token,
        ],
        &[],
    );
    let verify = [
        "verify-blob".to_string(),
        s(&f),
        "--bundle".into(),
        s(&bundle),
        "--certificate-identity".into(),
        identity.clone(),
        "--certificate-oidc-issuer".into(),
        stack.dev_issuer(),
    ];
    let verify: Vec<&str> = verify.iter().map(String::as_str).collect();
    ok(&home, &verify, &[]);

    // The TUF root rotates; the next command follows with no action.
    let k2 = scratch.join("k2.pem");
    let o = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&k2)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let old = s(&data.join("keys/tuf-root.pem"));
    let o = stack
        .server_command(&[
            "tuf",
            "rotate-root",
            "--root-key",
            &s(&k2),
            "--key",
            &old,
            "--key",
            &s(&k2),
        ])
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(root_version(&home), 1);
    ok(&home, &verify, &[]);
    assert_eq!(root_version(&home), 2, "the refresh followed the new root");

    // A static export of the repository, used as file://DIR.
    let export = scratch.join("export");
    let o = stack
        .server_command(&["trust", "export", "--tuf", &s(&export)])
        .unwrap();
    assert!(o.status.success(), "{o:?}");

    // Server gone: the refresh fails as a network error (exit 3) unless offline mode is asked.
    stack.process().signal("TERM").unwrap();
    stack
        .process()
        .wait_exit(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let out = sigil(&home, &verify, &[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SIGIL_TUF_OFFLINE"),
        "{out:?}"
    );
    ok(&home, &verify, &[("SIGIL_TUF_OFFLINE", "1")]);

    // Air gap: bootstrap another user from the exported files.
    let home2 = scratch.join("home2");
    let file_url = format!("file://{}", export.display());
    ok(
        &home2,
        &[
            "trust",
            "init",
            "--tuf",
            &file_url,
            "--tuf-root",
            &s(&root1),
        ],
        &[],
    );
    assert_eq!(root_version(&home2), 2);
    assert_eq!(
        std::fs::read(home2.join("trusted_root.json")).unwrap(),
        served
    );
    ok(&home2, &verify, &[]);
}
