//! Rotation end to end, with clients that take their trust from TUF and are never reconfigured:
//! sign with the old CA → `sigil-server rotate ca` (and a restart) → sign with the new CA → every
//! bundle verifies with `sigil` and with sigstore-python 4.5.1 (`--instance`, after its TUF
//! refresh) and Rekor v1 bundles with sigstore-js (`tufMirrorURL` + `tufRootPath`; it cannot
//! read the Rekor v2 checkpoint's key name, see tuf_clients.rs); then the same for `rotate tsa`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sigil_tests::{SigilStack, js_dir, record_interop, run, venv_tool, workspace_bin};

const PY: &str = "sigstore-python 4.5.1";

fn sigil(home: &Path, args: &[&str]) -> String {
    let out = Command::new(workspace_bin("sigil").unwrap())
        .args(args)
        .env("SIGIL_HOME", home)
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("SIGIL_TRUST_CONFIG")
        .env_remove("SIGIL_TUF_OFFLINE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sigil {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn python(scratch: &Path, instance: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(venv_tool("sigstore").unwrap());
    cmd.env("XDG_DATA_HOME", scratch.join("xdg-data"))
        .env("XDG_CACHE_HOME", scratch.join("xdg-cache"))
        .args(["--instance", instance])
        .args(args);
    cmd
}

struct Run<'a> {
    stack: &'a SigilStack,
    home: PathBuf,
    scratch: PathBuf,
    instance: String,
    identity: String,
    /// (artifact, bundle) of every signature so far.
    signed: Vec<(PathBuf, PathBuf)>,
}

impl Run<'_> {
    async fn sign_both(&mut self, label: &str) {
        let f = self.scratch.join(format!("{label}.txt"));
        std::fs::write(&f, format!("signed {label}\n")).unwrap();
        let (token, _) = self.stack.dev_token().await.unwrap();
        let b = self.scratch.join(format!("{label}.sigil.json"));
        let (fs, bs) = (f.to_str().unwrap(), b.to_str().unwrap());
        sigil(
            &self.home,
            &["sign-blob", fs, "--bundle", bs, "--identity-token", &token],
        );
        self.signed.push((f.clone(), b));
        let pb = self.scratch.join(format!("{label}.python.json"));
        let (token, _) = self.stack.dev_token().await.unwrap();
        let r = run(
            python(
                &self.scratch,
                &self.instance,
                &[
                    "sign",
                    "--identity-token",
                    &token,
                    "--bundle",
                    pb.to_str().unwrap(),
                    fs,
                ],
            ),
            Duration::from_secs(120),
        )
        .await
        .unwrap();
        assert!(r.success(), "sigstore sign after {label}:\n{r}");
        self.signed.push((f, pb));
    }

    async fn verify_all(&self, when: &str) {
        let issuer = self.stack.dev_issuer();
        for (f, b) in &self.signed {
            let (fs, bs) = (f.to_str().unwrap(), b.to_str().unwrap());
            sigil(
                &self.home,
                &[
                    "verify-blob",
                    fs,
                    "--bundle",
                    bs,
                    "--certificate-identity",
                    &self.identity,
                    "--certificate-oidc-issuer",
                    &issuer,
                ],
            );
            let r = run(
                python(
                    &self.scratch,
                    &self.instance,
                    &[
                        "verify",
                        "identity",
                        "--bundle",
                        bs,
                        "--cert-identity",
                        &self.identity,
                        "--cert-oidc-issuer",
                        &issuer,
                        fs,
                    ],
                ),
                Duration::from_secs(120),
            )
            .await
            .unwrap();
            assert!(r.success(), "sigstore verify {bs} {when}:\n{r}");
            if bs.ends_with(".v1.json") {
                let dir = js_dir().unwrap();
                let mut cmd = tokio::process::Command::new("node");
                cmd.arg(dir.join("sigstore-js.mjs"))
                    .args(["verify-tuf", "--bundle", bs, "--artifact", fs])
                    .args(["--tuf-mirror", &self.instance, "--tuf-root"])
                    .arg(self.stack.data_dir().join("tuf/1.root.json"))
                    .arg("--tuf-cache")
                    .arg(self.scratch.join("js-tuf-cache"))
                    .args(["--identity", &self.identity, "--issuer", &issuer])
                    .current_dir(dir);
                let r = run(cmd, Duration::from_secs(120)).await.unwrap();
                assert!(r.success(), "sigstore-js verify {bs} {when}:\n{r}");
            }
        }
    }
}

fn rotate(stack: &SigilStack, role: &str) {
    let out = stack.server_command(&["rotate", role]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("TUF targets version"),
        "rotate {role}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn rotating_the_ca_and_the_tsa_keeps_old_signatures_valid_without_reconfiguring_clients() {
    let mut stack = SigilStack::up().await.expect("sigil-server up");
    let scratch = stack.scratch().to_path_buf();
    let instance = format!("{}/tuf", stack.url());
    let root = stack.data_dir().join("tuf/1.root.json");
    let home = scratch.join("home");
    sigil(
        &home,
        &[
            "trust",
            "init",
            "--tuf",
            &instance,
            "--tuf-root",
            root.to_str().unwrap(),
        ],
    );
    let r = run(
        python(
            &scratch,
            &instance,
            &["trust-instance", root.to_str().unwrap()],
        ),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(r.success(), "{r}");
    let identity = stack.dev_token().await.unwrap().1;
    let mut steps = Run {
        stack: &stack,
        home,
        scratch: scratch.clone(),
        instance: instance.clone(),
        identity,
        signed: Vec::new(),
    };
    steps.sign_both("before").await;
    drop(steps);

    for role in ["ca", "tsa"] {
        rotate(&stack, role);
        stack.restart().await.unwrap();
        let tr: serde_json::Value = serde_json::from_slice(
            &stack
                .get_bytes("/api/v1/trust/trusted_root.json")
                .await
                .unwrap(),
        )
        .unwrap();
        let list = if role == "ca" {
            "certificateAuthorities"
        } else {
            "timestampAuthorities"
        };
        let entries = tr[list].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{list} after rotate {role}: {tr}");
        assert!(entries[0]["validFor"]["end"].is_string(), "{tr}");
        assert!(entries[1]["validFor"].get("end").is_none(), "{tr}");
        assert_ne!(entries[0]["certChain"], entries[1]["certChain"]);
    }
    let identity = stack.dev_token().await.unwrap().1;
    let mut steps = Run {
        stack: &stack,
        home: scratch.join("home"),
        scratch: scratch.clone(),
        instance,
        identity,
        signed: vec![
            (
                scratch.join("before.txt"),
                scratch.join("before.sigil.json"),
            ),
            (
                scratch.join("before.txt"),
                scratch.join("before.python.json"),
            ),
        ],
    };
    steps.sign_both("after").await;
    steps.verify_all("after rotating the CA and the TSA").await;
    record_interop(
        PY,
        "after `rotate ca` and `rotate tsa` (its TUF refresh, no reconfiguration): bundles signed before and after verify, as with sigil",
        true,
    );
    record_interop(
        "sigstore-js sigstore 4.1.1",
        "after `rotate ca` and `rotate tsa` (trust from TUF): Rekor v1 bundles signed before and after verify",
        true,
    );
}
