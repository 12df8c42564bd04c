//! Rotation end to end, with clients that take their trust from TUF and are never reconfigured:
//! sign (Rekor v2 + TSA, the default of every client, and Rekor v1) → `sigil-server rotate ca`,
//! `rotate tsa`, `rotate rekor-v2`, `rotate ct` and `rotate rekor` (each followed by a restart) →
//! sign with the new CA, TSA, log shards and CT log →
//! every bundle verifies with `sigil`, with sigstore-python 4.5.1 (`--instance`, after its TUF
//! refresh) and with sigstore-js (`tufMirrorURL` + `tufRootPath`). The retired shards keep
//! serving their checkpoint, tiles and STH read-only; new entries land on the new shards.

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
        // And through the Rekor v1 log.
        let (token, _) = self.stack.dev_token().await.unwrap();
        let b1 = self.scratch.join(format!("{label}.sigil-v1.json"));
        let args = ["--bundle", b1.to_str().unwrap(), "--identity-token", &token];
        sigil(
            &self.home,
            &[&["sign-blob", fs, "--rekor-version", "1"][..], &args[..]].concat(),
        );
        self.signed.push((f.clone(), b1));
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
            {
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
async fn rotating_the_ca_the_tsa_and_the_logs_keeps_old_signatures_valid_without_reconfiguring_clients()
 {
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
    // `sigil log verify` remembers each log's checkpoint; a rotated log's new tree is not taken
    // for a fork of the old one below.
    let seen = sigil(&scratch.join("home"), &["log", "verify"]);

    let before_log_id = log_id(&scratch.join("before.sigil.json"));
    let before_v1_log_id = log_id(&scratch.join("before.sigil-v1.json"));
    for role in ["ca", "tsa", "rekor-v2", "ct", "rekor"] {
        rotate(&stack, role);
        stack.restart().await.unwrap();
        let tr: serde_json::Value = serde_json::from_slice(
            &stack
                .get_bytes("/api/v1/trust/trusted_root.json")
                .await
                .unwrap(),
        )
        .unwrap();
        if role == "rekor-v2" {
            // Rekor v1, the retired v2 shard (closed, at its own base URL), the new v2 shard.
            let tlogs = tr["tlogs"].as_array().unwrap();
            assert_eq!(tlogs.len(), 3, "tlogs after rotate rekor-v2: {tr}");
            let (old, new) = (&tlogs[1], &tlogs[2]);
            assert!(old["publicKey"]["validFor"]["end"].is_string(), "{tr}");
            assert!(new["publicKey"]["validFor"].get("end").is_none(), "{tr}");
            assert_eq!(old["logId"]["keyId"], before_log_id.as_str(), "{tr}");
            assert_ne!(new["logId"]["keyId"], before_log_id.as_str(), "{tr}");
            let shard = old["baseUrl"].as_str().unwrap();
            assert!(shard.contains("/shards/"), "{tr}");
            continue;
        }
        if role == "ct" {
            // The retired CT shard (closed; its SCTs are in the certificates issued before),
            // then the new one.
            let ctlogs = tr["ctlogs"].as_array().unwrap();
            assert_eq!(ctlogs.len(), 2, "ctlogs after rotate ct: {tr}");
            assert!(
                ctlogs[0]["publicKey"]["validFor"]["end"].is_string(),
                "{tr}"
            );
            assert!(
                ctlogs[1]["publicKey"]["validFor"].get("end").is_none(),
                "{tr}"
            );
            assert_ne!(ctlogs[0]["logId"], ctlogs[1]["logId"], "{tr}");
            let shard = ctlogs[0]["baseUrl"].as_str().unwrap();
            let path = shard.strip_prefix(stack.url()).unwrap();
            let sth: serde_json::Value = serde_json::from_slice(
                &stack
                    .get_bytes(&format!("{path}/ct/v1/get-sth"))
                    .await
                    .unwrap(),
            )
            .unwrap();
            // Three certificates were issued before the rotation (one per signature).
            assert_eq!(sth["tree_size"], 3, "retired CT shard: {sth}");
            continue;
        }
        if role == "rekor" {
            // Rekor v1's shards share its URL: the retired one (closed) and the new one, then
            // the two Rekor v2 shards.
            let tlogs = tr["tlogs"].as_array().unwrap();
            assert_eq!(tlogs.len(), 4, "tlogs after rotate rekor: {tr}");
            assert_eq!(
                tlogs[0]["logId"]["keyId"],
                before_v1_log_id.as_str(),
                "{tr}"
            );
            assert!(tlogs[0]["publicKey"]["validFor"]["end"].is_string(), "{tr}");
            assert_eq!(tlogs[0]["baseUrl"], tlogs[1]["baseUrl"], "{tr}");
            assert!(
                tlogs[1]["publicKey"]["validFor"].get("end").is_none(),
                "{tr}"
            );
            let log: serde_json::Value =
                serde_json::from_slice(&stack.get_bytes("/api/v1/log").await.unwrap()).unwrap();
            let inactive = log["inactiveShards"].as_array().unwrap();
            assert_eq!(inactive.len(), 1, "{log}");
            assert_eq!(inactive[0]["treeSize"], 1, "{log}");
            assert_ne!(inactive[0]["treeID"], log["treeID"], "{log}");
            assert_eq!(log["treeSize"], 0, "{log}");
            continue;
        }
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
                scratch.join("before.sigil-v1.json"),
            ),
            (
                scratch.join("before.txt"),
                scratch.join("before.python.json"),
            ),
        ],
    };
    steps.sign_both("after").await;
    // New entries went to the new shard; the retired one still serves its checkpoint (the two
    // entries signed before) and tiles, signed with its old key.
    let after_log_id = log_id(&scratch.join("after.sigil.json"));
    assert_ne!(
        after_log_id, before_log_id,
        "a new entry landed on the retired shard"
    );
    let tr: serde_json::Value = serde_json::from_slice(
        &stack
            .get_bytes("/api/v1/trust/trusted_root.json")
            .await
            .unwrap(),
    )
    .unwrap();
    let shard_url = tr["tlogs"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|t| t["baseUrl"].as_str().filter(|u| u.contains("/shards/")))
        .unwrap()
        .to_string();
    let shard_path = shard_url.strip_prefix(stack.url()).unwrap();
    let old_cp = stack
        .get_bytes(&format!("{shard_path}/api/v2/checkpoint"))
        .await
        .unwrap();
    let old_cp = String::from_utf8(old_cp).unwrap();
    assert_eq!(old_cp.lines().nth(1), Some("2"), "retired shard: {old_cp}");
    let new_cp = String::from_utf8(stack.get_bytes("/api/v2/checkpoint").await.unwrap()).unwrap();
    assert_eq!(new_cp.lines().nth(1), Some("2"), "new shard: {new_cp}");
    assert_ne!(
        old_cp.lines().next(),
        new_cp.lines().next(),
        "two shards, two origins"
    );
    let tile = stack
        .get_bytes(&format!("{shard_path}/api/v2/tile/entries/000.p/2"))
        .await
        .unwrap();
    assert!(!tile.is_empty());
    // Rekor v1 numbers entries across shards, as Rekor does: the new shard's first entry is
    // logIndex 1 (index 0 in its own tree), and both shards' entries are served.
    let v1: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scratch.join("after.sigil-v1.json")).unwrap())
            .unwrap();
    let entry = &v1["verificationMaterial"]["tlogEntries"][0];
    assert_eq!(entry["logIndex"], "1", "{entry}");
    assert_eq!(entry["inclusionProof"]["logIndex"], "0", "{entry}");
    assert_ne!(
        log_id(&scratch.join("after.sigil-v1.json")),
        before_v1_log_id
    );
    for (index, id) in [
        (0, before_v1_log_id.clone()),
        (1, log_id(&scratch.join("after.sigil-v1.json"))),
    ] {
        let got: serde_json::Value = serde_json::from_slice(
            &stack
                .get_bytes(&format!("/api/v1/log/entries?logIndex={index}"))
                .await
                .unwrap(),
        )
        .unwrap();
        let (_, e) = got.as_object().unwrap().iter().next().unwrap();
        assert_eq!(e["logIndex"], index, "{got}");
        let want = hex_of(&id);
        assert_eq!(e["logID"].as_str().unwrap(), want, "{got}");
    }

    steps
        .verify_all("after rotating the CA, the TSA, both Rekor logs and the CT log")
        .await;
    let again = sigil(&scratch.join("home"), &["log", "verify"]);
    assert!(!again.is_empty(), "{seen}\n{again}");
    record_interop(
        PY,
        "after `rotate ca`, `rotate tsa`, `rotate rekor`, `rotate rekor-v2` and `rotate ct` (its TUF refresh, no reconfiguration): bundles signed before and after verify, as with sigil",
        true,
    );
    record_interop(
        "sigstore-js sigstore 4.1.1",
        "after `rotate ca`, `rotate tsa`, `rotate rekor`, `rotate rekor-v2` and `rotate ct` (trust from TUF): Rekor v1 and Rekor v2 + TSA bundles signed before and after verify",
        true,
    );
}

/// Base64 to lower-case hex.
fn hex_of(b64: &str) -> String {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// The base64 log ID of a bundle's (only) transparency log entry.
fn log_id(bundle: &Path) -> String {
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
    b["verificationMaterial"]["tlogEntries"][0]["logId"]["keyId"]
        .as_str()
        .unwrap()
        .to_string()
}
