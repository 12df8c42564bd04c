//! `sigil-server witness` against the C2SP tlog-witness text, as a process with its own SQLite
//! database: a valid first update and a valid update with a consistency proof are cosigned (the
//! cosignature lines checked by a verifier written here from tlog-cosignature, not Sigil's); a
//! stale old size gets 409 with the latest size as `text/x.tlog.size`; an old size above the
//! checkpoint 400; a bad proof 422; an unknown origin 404; a checkpoint without the log's valid
//! signature 403; a second root for a cosigned size 422; and after a restart the witness still
//! holds its latest size. Concurrent updates from one size: exactly one is cosigned.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sigil_core::checkpoint::{Checkpoint, sign_checkpoint};
use sigil_core::crypto::{KeyAlgorithm, SigningKey};
use sigil_core::note::EcdsaNoteKey;
use sigil_tests::log::oracle::{consistency, leaf, mth};
use sigil_tests::{ServerProcess, free_port, workspace_bin};

const ORIGIN: &str = "log.example - 42";
const KEY_NAME: &str = "log.example";
const WITNESS: &str = "witness.example/w1";

struct Log {
    signer: EcdsaNoteKey,
    leaves: Vec<[u8; 32]>,
}

impl Log {
    fn grow(&mut self, n: usize) {
        for _ in 0..n {
            let i = self.leaves.len();
            self.leaves.push(leaf(format!("entry {i}").as_bytes()));
        }
    }

    fn checkpoint(&self, size: usize, origin: &str) -> String {
        let cp = Checkpoint {
            origin: origin.into(),
            size: size as u64,
            root_hash: mth(&self.leaves[..size]),
            extensions: vec![],
        };
        String::from_utf8(sign_checkpoint(&cp, &self.signer).unwrap().to_bytes()).unwrap()
    }

    fn request(&self, old: usize, size: usize) -> String {
        let mut body = format!("old {old}\n");
        if old > 0 {
            for h in consistency(old, &self.leaves[..size]) {
                body.push_str(&B64.encode(h));
                body.push('\n');
            }
        }
        body.push('\n');
        body.push_str(&self.checkpoint(size, ORIGIN));
        body
    }
}

/// tlog-cosignature/v1, from the specification: the line is `— <name> base64(keyid(4) ‖
/// timestamp(8) ‖ Ed25519 signature(64))`; key id = SHA-256(name ‖ 0x0A ‖ 0x04 ‖ key)[:4]; the
/// signed message is "cosignature/v1\ntime <timestamp>\n" followed by the checkpoint text.
fn check_cosignature(line: &str, public: &[u8], checkpoint_text: &str) -> u64 {
    let rest = line.strip_prefix("\u{2014} ").expect("an em dash line");
    let (name, b64) = rest.trim_end().split_once(' ').unwrap();
    assert_eq!(name, WITNESS);
    let raw = B64.decode(b64).unwrap();
    assert_eq!(
        raw.len(),
        4 + 8 + 64,
        "key id, timestamp, Ed25519 signature"
    );
    let mut id_input = format!("{WITNESS}\n").into_bytes();
    id_input.push(0x04);
    id_input.extend_from_slice(public);
    let id = sigil_core::crypto::sha256(&id_input);
    assert_eq!(&raw[..4], &id[..4], "key id");
    let ts = u64::from_be_bytes(raw[4..12].try_into().unwrap());
    assert!(ts > 1_700_000_000, "the timestamp is set: {ts}");
    let msg = format!("cosignature/v1\ntime {ts}\n{checkpoint_text}");
    UnparsedPublicKey::new(&ED25519, public)
        .verify(msg.as_bytes(), &raw[12..])
        .expect("the cosignature verifies");
    ts
}

async fn start(data: &std::path::Path, port: u16) -> ServerProcess {
    let mut p = ServerProcess::spawn(
        &workspace_bin("sigil-server").unwrap(),
        [
            "witness".as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--listen".as_ref(),
            format!("127.0.0.1:{port}").as_ref(),
        ],
        &[("RUST_LOG", "info")],
    )
    .unwrap();
    p.wait_for_url(
        &format!("http://127.0.0.1:{port}/healthz"),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn the_witness_follows_the_protocol_and_keeps_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let log_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    std::fs::write(data.join("log.pub"), log_key.public_key().to_pem()).unwrap();
    let other_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    std::fs::write(
        data.join("sigil.toml"),
        format!(
            "[witness]\nname = \"{WITNESS}\"\n[[witness.logs]]\norigin = \"{ORIGIN}\"\npublic_key = \"log.pub\"\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut w = start(&data, port).await;
    let vkey = w
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("witness verifier key: ").map(str::to_owned))
        .expect("the witness prints its verifier key");
    let typed = B64.decode(vkey.splitn(3, '+').nth(2).unwrap()).unwrap();
    assert_eq!(typed[0], 0x04, "a cosignature/v1 key: {vkey}");
    let public = typed[1..].to_vec();

    let log_pem = log_key.to_pkcs8_pem().unwrap();
    let log_signer =
        || EcdsaNoteKey::signer(KEY_NAME, SigningKey::from_pkcs8_pem(&log_pem).unwrap()).unwrap();
    let mut log = Log {
        signer: log_signer(),
        leaves: Vec::new(),
    };
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/add-checkpoint");
    let post = |body: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http.post(&url).body(body).send().await.unwrap();
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, ct, r.text().await.unwrap())
        }
    };

    // First update (old 0): cosigned, and the cosignature verifies.
    log.grow(5);
    let (st, _, body) = post(log.request(0, 5)).await;
    assert_eq!(st, 200, "{body}");
    let text5 = log.checkpoint(5, ORIGIN);
    let text5 = &text5[..text5.find("\n\n").unwrap() + 1];
    check_cosignature(body.lines().next().unwrap(), &public, text5);

    // A consistent update 5 -> 13.
    log.grow(8);
    let (st, _, body) = post(log.request(5, 13)).await;
    assert_eq!(st, 200, "{body}");

    // Stale old size: 409 with the latest size.
    let (st, ct, body) = post(log.request(5, 13)).await;
    assert_eq!(
        (st, ct.as_str(), body.as_str()),
        (409, "text/x.tlog.size", "13\n")
    );
    // Old size above the checkpoint's.
    let (st, _, _) = post(log.request(13, 13).replacen("old 13", "old 14", 1)).await;
    assert_eq!(st, 400);
    // A bad proof (one hash flipped).
    log.grow(7);
    let good = log.request(13, 20);
    let first_proof_line = good.lines().nth(1).unwrap().to_owned();
    let mut flipped = B64.decode(&first_proof_line).unwrap();
    flipped[0] ^= 1;
    let bad = good.replacen(&first_proof_line, &B64.encode(flipped), 1);
    assert_eq!(post(bad).await.0, 422);
    // Unknown origin.
    let stranger = format!("old 0\n\n{}", log.checkpoint(20, "elsewhere - 1"));
    assert_eq!(post(stranger).await.0, 404);
    // Signed by another key under the log's name: no trusted signature.
    let forged = Log {
        signer: EcdsaNoteKey::signer(KEY_NAME, other_key).unwrap(),
        leaves: log.leaves.clone(),
    };
    assert_eq!(post(forged.request(13, 20)).await.0, 403);
    // A second root for the cosigned size 13.
    let mut fork = Log {
        signer: log_signer(),
        leaves: log.leaves[..12].to_vec(),
    };
    fork.leaves.push(leaf(b"another entry 12"));
    let (st, _, body) = post(fork.request(13, 13)).await;
    assert_eq!(st, 422, "{body}");

    // Concurrent updates from 13: one cosigned, the other told the new size.
    log.grow(4);
    let (a, b) = tokio::join!(post(log.request(13, 20)), post(log.request(13, 24)));
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");

    // Restart: the state survives.
    let latest = if a.0 == 200 { 20 } else { 24 };
    w.signal("TERM").unwrap();
    w.wait_exit(Duration::from_secs(20)).await.unwrap();
    let _w = start(&data, port).await;
    let (st, ct, body) = post(log.request(5, 24)).await;
    assert_eq!((st, ct.as_str()), (409, "text/x.tlog.size"));
    assert_eq!(body, format!("{latest}\n"));
    if latest == 20 {
        let (st, _, body) = post(log.request(20, 24)).await;
        assert_eq!(st, 200, "{body}");
    }
}

fn run_sigil(home: &std::path::Path, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(workspace_bin("sigil").unwrap())
        .args(args)
        .env("SIGIL_HOME", home)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn all_output(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A Sigil bundle's checkpoint cosigned by a real witness: `sigil verify-blob --witness`
/// accepts it, refuses the same bundle without the cosignature, with a tampered one, or when
/// more witnesses are required than cosigned; sigstore-python still verifies the cosigned
/// bundle (cosignature lines are signatures of unknown keys to it).
#[tokio::test(flavor = "multi_thread")]
async fn verify_blob_enforces_a_witness_policy() {
    let stack = sigil_tests::SigilStack::up().await.unwrap();
    let d = stack.scratch().to_path_buf();
    let home = d.join("home");
    std::fs::write(d.join("f.txt"), b"witnessed\n").unwrap();
    let ok = |o: std::process::Output, what: &str| {
        assert!(o.status.success(), "{what}: {}", all_output(&o));
    };
    ok(
        run_sigil(&home, &d, &["trust", "init", "--url", stack.url()]),
        "trust init",
    );
    let (token, identity) = stack.dev_token().await.unwrap();
    ok(
        run_sigil(
            &home,
            &d,
            &[
                "sign-blob",
                "f.txt",
                "--identity-token",
                &token,
                "--bundle",
                "b.json",
                "--rekor-version",
                "1",
            ],
        ),
        "sign-blob",
    );
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("b.json")).unwrap()).unwrap();
    let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
    let envelope = entry["inclusionProof"]["checkpoint"]["envelope"]
        .as_str()
        .unwrap()
        .to_owned();
    let origin = envelope.lines().next().unwrap().to_owned();
    let root = stack
        .get_json("/api/v1/trust/trusted_root.json")
        .await
        .unwrap();
    let log = root["tlogs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["logId"]["keyId"] == entry["logId"]["keyId"])
        .expect("the entry's log in the trusted root");
    let spki = B64
        .decode(log["publicKey"]["rawBytes"].as_str().unwrap())
        .unwrap();

    let wdir = d.join("witness");
    std::fs::create_dir_all(&wdir).unwrap();
    std::fs::write(
        wdir.join("log.pub"),
        sigil_core::certs::pem_encode("PUBLIC KEY", &spki),
    )
    .unwrap();
    std::fs::write(
        wdir.join("sigil.toml"),
        format!(
            "[witness]\nname = \"{WITNESS}\"\n[[witness.logs]]\norigin = \"{origin}\"\npublic_key = \"log.pub\"\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let w = start(&wdir, port).await;
    let vkey = w
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("witness verifier key: ").map(str::to_owned))
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/add-checkpoint"))
        .body(format!("old 0\n\n{envelope}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let cosignature = resp.text().await.unwrap();

    let write_with = |name: &str, extra: &str| {
        let mut b = bundle.clone();
        b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]["envelope"] =
            serde_json::Value::String(format!("{envelope}{extra}"));
        std::fs::write(d.join(name), serde_json::to_vec(&b).unwrap()).unwrap();
    };
    write_with("cosigned.json", &cosignature);
    let sig_b64 = cosignature.trim_end().rsplit(' ').next().unwrap();
    let mut raw = B64.decode(sig_b64).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    write_with(
        "tampered.json",
        &cosignature.replace(sig_b64, &B64.encode(&raw)),
    );
    let issuer = stack.dev_issuer();
    let verify = |bundle: &str, extra: &[&str]| {
        let mut args = vec![
            "verify-blob",
            "f.txt",
            "--bundle",
            bundle,
            "--certificate-identity",
            &identity,
            "--certificate-oidc-issuer",
            &issuer,
        ];
        args.extend_from_slice(extra);
        run_sigil(&home, &d, &args)
    };
    ok(
        verify("cosigned.json", &["--witness", &vkey]),
        "a cosigned bundle with the witness policy",
    );
    ok(verify("b.json", &[]), "no witness policy: the plain bundle");
    let out = verify("b.json", &["--witness", &vkey]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("0 valid cosignature(s)"),
        "{}",
        all_output(&out)
    );
    let out = verify("tampered.json", &["--witness", &vkey]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(all_output(&out).contains("witness cosignature on the checkpoint is invalid"));
    let other = sigil_core::note::CosignatureV1Key::signer(
        "witness.example/w2",
        SigningKey::generate(KeyAlgorithm::Ed25519).unwrap(),
    )
    .unwrap()
    .vkey();
    let out = verify("cosigned.json", &["--witness", &vkey, "--witness", &other]);
    assert!(
        all_output(&out)
            .contains("1 valid cosignature(s) of the 2 trusted witness(es); 2 required"),
        "{}",
        all_output(&out)
    );
    ok(
        verify(
            "cosigned.json",
            &[
                "--witness",
                &vkey,
                "--witness",
                &other,
                "--witness-threshold",
                "1",
            ],
        ),
        "1 of 2",
    );

    // sigstore-python ignores signature lines of keys it does not know.
    let sigstore = sigil_tests::venv_tool("sigstore").unwrap();
    let tc = stack
        .data_dir()
        .join("trust")
        .join("client_trust_config.json");
    let out = std::process::Command::new(sigstore)
        .arg("--trust-config")
        .arg(&tc)
        .args([
            "verify",
            "identity",
            "--offline",
            "--bundle",
            "cosigned.json",
        ])
        .args([
            "--cert-identity",
            &identity,
            "--cert-oidc-issuer",
            &issuer,
            "f.txt",
        ])
        .current_dir(&d)
        .output()
        .unwrap();
    sigil_tests::record_interop(
        "sigstore-python",
        "verify a bundle whose checkpoint carries a witness cosignature",
        out.status.success(),
    );
    ok(out, "sigstore-python verify of the cosigned bundle");
}

/// `up` with two witnesses and a fail-closed policy of 2 for both Rekor logs: every checkpoint
/// published carries both cosignatures (checked with the verifier written above from the
/// specification), `sigil verify-blob --witness ×2` accepts fresh bundles of both logs; with one
/// witness stopped, writes get a 503 that says why and the served checkpoint does not move; with
/// it back, the withheld checkpoint is published and signing works again.
#[tokio::test(flavor = "multi_thread")]
async fn logs_publish_only_checkpoints_their_witnesses_cosigned() {
    let mut stack = sigil_tests::SigilStack::up().await.unwrap();
    let data = stack.data_dir();
    let d = stack.scratch().to_path_buf();
    let http = reqwest::Client::new();
    let base = stack.url().to_owned();
    let get_text = |path: &str| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let v1_origin = stack.get_json("/api/v1/log").await.unwrap()["signedTreeHead"]
        .as_str()
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let v2_origin = get_text("/api/v2/checkpoint")
        .await
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let public = |key: &str| {
        let pem = std::fs::read_to_string(data.join(key)).unwrap();
        SigningKey::from_pkcs8_pem(&pem)
            .unwrap()
            .public_key()
            .to_pem()
    };
    let (v1_pub, v2_pub) = (public("keys/log.pem"), public("keys/log-v2.pem"));
    // The CT log's head as a note: its origin, and its key name (the signature line's).
    let ct_note = get_text("/ct/checkpoint").await;
    let ct_origin = ct_note.lines().next().unwrap().to_owned();
    let ct_name = ct_note
        .lines()
        .find_map(|l| l.strip_prefix("\u{2014} "))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_owned();
    let ct_pub = public("keys/ctlog.pem");

    // Two witnesses of both logs.
    let mut witnesses = Vec::new();
    for name in ["w1", "w2"] {
        let wdir = d.join(name);
        std::fs::create_dir_all(&wdir).unwrap();
        std::fs::write(wdir.join("v1.pub"), &v1_pub).unwrap();
        std::fs::write(wdir.join("v2.pub"), &v2_pub).unwrap();
        std::fs::write(wdir.join("ct.pub"), &ct_pub).unwrap();
        std::fs::write(
            wdir.join("sigil.toml"),
            format!(
                "[witness]\nname = \"witness.example/{name}\"\n\
                 [[witness.logs]]\norigin = \"{v1_origin}\"\npublic_key = \"v1.pub\"\n\
                 [[witness.logs]]\norigin = \"{v2_origin}\"\npublic_key = \"v2.pub\"\n\
                 [[witness.logs]]\norigin = \"{ct_origin}\"\npublic_key = \"ct.pub\"\n\
                 key_name = \"{ct_name}\"\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let p = start(&wdir, port).await;
        let vkey = p
            .stdout()
            .lines()
            .find_map(|l| l.strip_prefix("witness verifier key: ").map(str::to_owned))
            .unwrap();
        witnesses.push((wdir, port, vkey, p));
    }
    let endpoints: Vec<toml::Value> = witnesses
        .iter()
        .map(|(_, port, vkey, _)| {
            let mut t = toml::Table::new();
            t.insert("url".into(), format!("http://127.0.0.1:{port}").into());
            t.insert("vkey".into(), vkey.clone().into());
            toml::Value::Table(t)
        })
        .collect();
    let cfg_path = data.join("sigil.toml");
    let mut cfg: toml::Table = std::fs::read_to_string(&cfg_path).unwrap().parse().unwrap();
    // The Rekor logs fail closed; the CT log fails open (it publishes, and counts it).
    for section in ["log", "rekor_v2", "ct"] {
        let mut w = toml::Table::new();
        w.insert("witnesses".into(), toml::Value::Array(endpoints.clone()));
        w.insert("threshold".into(), 2.into());
        w.insert("fail_closed".into(), (section != "ct").into());
        cfg.entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .unwrap()
            .insert("witnessing".into(), toml::Value::Table(w));
    }
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();
    stack.restart().await.unwrap();
    // The head the log restarted with is cosigned and served without waiting for a write.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = get_text("/api/v2/checkpoint").await;
        if now
            .lines()
            .filter(|l| l.starts_with("\u{2014} witness.example/"))
            .count()
            == 2
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted head was never cosigned: {now}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let home = d.join("home");
    assert!(
        run_sigil(&home, &d, &["trust", "init", "--url", stack.url()])
            .status
            .success()
    );
    let (_, identity) = stack.dev_token().await.unwrap();
    let issuer = stack.dev_issuer();
    let sign = |name: &str, version: &str| {
        std::fs::write(d.join(name), name.as_bytes()).unwrap();
        let token = std::fs::read_to_string(home.join("id_token")).ok();
        let mut args = vec![
            "sign-blob".to_owned(),
            name.to_owned(),
            "--bundle".into(),
            format!("{name}.json"),
            "--rekor-version".into(),
            version.into(),
        ];
        if let Some(t) = token {
            args.extend(["--identity-token".into(), t.trim().to_owned()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_sigil(&home, &d, &refs)
    };
    assert!(
        run_sigil(&home, &d, &["login", "--issuer", &issuer])
            .status
            .success(),
        "sigil login"
    );
    let (vkey1, vkey2) = (witnesses[0].2.clone(), witnesses[1].2.clone());
    let verify = |name: &str| {
        run_sigil(
            &home,
            &d,
            &[
                "verify-blob",
                name,
                "--bundle",
                &format!("{name}.json"),
                "--certificate-identity",
                &identity,
                "--certificate-oidc-issuer",
                &issuer,
                "--witness",
                &vkey1,
                "--witness",
                &vkey2,
            ],
        )
    };
    for (name, version) in [("a1.txt", "1"), ("a2.txt", "2")] {
        let out = sign(name, version);
        assert!(
            out.status.success(),
            "sign-blob v{version}: {}",
            all_output(&out)
        );
        let out = verify(name);
        assert!(
            out.status.success(),
            "verify-blob with both witnesses, v{version}: {}",
            all_output(&out)
        );
    }
    // The deployment publishes its witness policy beside the trust files; verifying with it
    // alone needs both cosignatures on each log's checkpoint.
    let policy = stack
        .get_json("/api/v1/trust/witnesses.json")
        .await
        .unwrap();
    let logs = policy["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 3, "Rekor v1, v2 and CT: {policy}");
    assert!(
        logs.iter()
            .all(|l| l["threshold"] == 2 && l["witnesses"].as_array().unwrap().len() == 2)
    );
    std::fs::write(d.join("witnesses.json"), policy.to_string()).unwrap();
    for name in ["a1.txt", "a2.txt"] {
        let out = run_sigil(
            &home,
            &d,
            &[
                "verify-blob",
                name,
                "--bundle",
                &format!("{name}.json"),
                "--certificate-identity",
                &identity,
                "--certificate-oidc-issuer",
                &issuer,
                "--witness-policy",
                "witnesses.json",
            ],
        );
        assert!(
            out.status.success(),
            "verify-blob --witness-policy: {}",
            all_output(&out)
        );
    }
    // `sigil log verify` checks each log's current checkpoint against the same policy.
    let out = run_sigil(
        &home,
        &d,
        &["log", "verify", "--witness-policy", "witnesses.json"],
    );
    assert!(
        out.status.success(),
        "log verify --witness-policy: {}",
        all_output(&out)
    );
    assert_eq!(
        all_output(&out)
            .matches("cosigned by 2 trusted witness(es)")
            .count(),
        2,
        "{}",
        all_output(&out)
    );
    let stranger = sigil_core::note::CosignatureV1Key::signer(
        "witness.example/w9",
        SigningKey::generate(KeyAlgorithm::Ed25519).unwrap(),
    )
    .unwrap()
    .vkey();
    let out = run_sigil(&home, &d, &["log", "verify", "--witness", &stranger]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));

    // A bundle of the same logs from before the witnesses were configured fails that policy.
    let mut early: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("a1.txt.json")).unwrap()).unwrap();
    let env =
        early["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]["envelope"]
            .as_str()
            .unwrap()
            .to_owned();
    let stripped: String = env
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("\u{2014} witness.example/"))
        .collect();
    early["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]["envelope"] =
        serde_json::Value::String(stripped);
    std::fs::write(d.join("stripped.json"), early.to_string()).unwrap();
    let out = run_sigil(
        &home,
        &d,
        &[
            "verify-blob",
            "a1.txt",
            "--bundle",
            "stripped.json",
            "--certificate-identity",
            &identity,
            "--certificate-oidc-issuer",
            &issuer,
            "--witness-policy",
            "witnesses.json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("0 valid cosignature(s)"),
        "{}",
        all_output(&out)
    );

    // The served checkpoint carries both cosignatures, each valid per the specification.
    let served = get_text("/api/v2/checkpoint").await;
    let text = &served[..served.find("\n\n").unwrap() + 1];
    let cosigs: Vec<&str> = served
        .lines()
        .filter(|l| l.starts_with("\u{2014} witness.example/"))
        .collect();
    assert_eq!(cosigs.len(), 2, "{served}");
    for (line, (_, _, vkey, _)) in cosigs.iter().zip(&witnesses) {
        let typed = B64.decode(vkey.splitn(3, '+').nth(2).unwrap()).unwrap();
        let name_ok = line.contains(vkey.split('+').next().unwrap());
        assert!(name_ok, "{line} / {vkey}");
        check_cosignature_named(line, vkey.split('+').next().unwrap(), &typed[1..], text);
    }

    // The CT log's head, which RFC 6962's get-sth cannot carry, is served cosigned as a note.
    let ct_served = get_text("/ct/checkpoint").await;
    let ct_text = &ct_served[..ct_served.find("\n\n").unwrap() + 1];
    let ct_size: u64 = ct_served.lines().nth(1).unwrap().parse().unwrap();
    let sth = stack.get_json("/ct/v1/get-sth").await.unwrap();
    assert_eq!(sth["tree_size"].as_u64().unwrap(), ct_size);
    assert!(
        ct_size >= 2,
        "the certificates issued are in the CT log: {ct_served}"
    );
    let ct_cosigs: Vec<&str> = ct_served
        .lines()
        .filter(|l| l.starts_with("\u{2014} witness.example/"))
        .collect();
    assert_eq!(ct_cosigs.len(), 2, "{ct_served}");
    for (line, (_, _, vkey, _)) in ct_cosigs.iter().zip(&witnesses) {
        let typed = B64.decode(vkey.splitn(3, '+').nth(2).unwrap()).unwrap();
        check_cosignature_named(line, vkey.split('+').next().unwrap(), &typed[1..], ct_text);
    }

    // One witness down: no publication, a clear 503.
    let (w2dir, w2port, _, mut w2) = witnesses.pop().unwrap();
    w2.signal("TERM").unwrap();
    w2.wait_exit(Duration::from_secs(20)).await.unwrap();
    let before = get_text("/api/v2/checkpoint").await;
    let out = sign("b2.txt", "2");
    assert!(
        !out.status.success(),
        "signing with one witness down succeeded"
    );
    let msg = all_output(&out);
    assert!(
        msg.contains("503") && msg.contains("witness cosignatures"),
        "{msg}"
    );
    println!(
        "with a witness down, sigil sign-blob was told: {}",
        msg.lines().last().unwrap_or_default()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        get_text("/api/v2/checkpoint").await.lines().nth(1),
        before.lines().nth(1),
        "the checkpoint moved without both cosignatures"
    );
    // The fail-open CT log took the certificate and published its head anyway, uncosigned,
    // and counted it.
    let ct_now = get_text("/ct/checkpoint").await;
    let ct_now_size: u64 = ct_now.lines().nth(1).unwrap().parse().unwrap();
    assert!(ct_now_size > ct_size, "{ct_now}");
    assert!(!ct_now.contains("\u{2014} witness.example/"), "{ct_now}");
    let metrics = get_text("/metrics").await;
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sigil_witness_cosign_failures_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures >= 1, "{metrics}");

    // Back up: the withheld checkpoint is published, and signing works again.
    let _w2 = start(&w2dir, w2port).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = get_text("/api/v2/checkpoint").await;
        if now.lines().nth(1) != before.lines().nth(1) {
            assert_eq!(
                now.lines()
                    .filter(|l| l.starts_with("\u{2014} witness.example/"))
                    .count(),
                2,
                "{now}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the withheld checkpoint was never published"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = sign("c2.txt", "2");
    assert!(out.status.success(), "{}", all_output(&out));
    let out = verify("c2.txt");
    assert!(out.status.success(), "{}", all_output(&out));
}

/// [`check_cosignature`] for a witness of another name.
fn check_cosignature_named(line: &str, name: &str, public: &[u8], checkpoint_text: &str) {
    let rest = line.strip_prefix("\u{2014} ").unwrap();
    let (n, b64) = rest.trim_end().split_once(' ').unwrap();
    assert_eq!(n, name);
    let raw = B64.decode(b64).unwrap();
    let mut id_input = format!("{name}\n").into_bytes();
    id_input.push(0x04);
    id_input.extend_from_slice(public);
    assert_eq!(&raw[..4], &sigil_core::crypto::sha256(&id_input)[..4]);
    let ts = u64::from_be_bytes(raw[4..12].try_into().unwrap());
    let msg = format!("cosignature/v1\ntime {ts}\n{checkpoint_text}");
    UnparsedPublicKey::new(&ED25519, public)
        .verify(msg.as_bytes(), &raw[12..])
        .expect("the cosignature verifies");
}

/// Two `sigil-server log` processes on one PostgreSQL database, one witness, fail-closed with a
/// threshold of 1, behind alternating requests: every write is acknowledged, and each process,
/// idle afterwards, serves the final checkpoint with the witness's valid cosignature, whichever
/// process committed it (the other takes it up with its stored cosignatures).
#[tokio::test(flavor = "multi_thread")]
async fn two_writer_processes_serve_only_cosigned_checkpoints() {
    use sigil_tests::log::{LogProcess, Signer};
    let pg = sigil_tests::Postgres::start().await.unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let dir = LogProcess::init(port_a).unwrap();
    // A first start creates the tree, whose origin the witness must know.
    let mut first = LogProcess::start(dir.path(), &pg.url(), port_a)
        .await
        .unwrap();
    let sth: serde_json::Value = reqwest::get(format!("{}/api/v1/log", first.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let origin = sth["signedTreeHead"]
        .as_str()
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    first.process.signal("TERM").unwrap();
    first
        .process
        .wait_exit(Duration::from_secs(20))
        .await
        .unwrap();

    let wdir = tempfile::tempdir().unwrap();
    let pem = std::fs::read_to_string(dir.path().join("keys/log.pem")).unwrap();
    let public = SigningKey::from_pkcs8_pem(&pem)
        .unwrap()
        .public_key()
        .to_pem();
    std::fs::write(wdir.path().join("log.pub"), public).unwrap();
    std::fs::write(
        wdir.path().join("sigil.toml"),
        format!(
            "[witness]\nname = \"{WITNESS}\"\n[[witness.logs]]\norigin = \"{origin}\"\n\
             public_key = \"log.pub\"\n"
        ),
    )
    .unwrap();
    let wport = free_port();
    let w = start(wdir.path(), wport).await;
    let vkey = w
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("witness verifier key: ").map(str::to_owned))
        .unwrap();
    let cfg_path = dir.path().join("sigil.toml");
    let mut cfg: toml::Table = std::fs::read_to_string(&cfg_path).unwrap().parse().unwrap();
    let mut endpoint = toml::Table::new();
    endpoint.insert("url".into(), format!("http://127.0.0.1:{wport}").into());
    endpoint.insert("vkey".into(), vkey.clone().into());
    let mut witnessing = toml::Table::new();
    witnessing.insert(
        "witnesses".into(),
        toml::Value::Array(vec![toml::Value::Table(endpoint)]),
    );
    witnessing.insert("threshold".into(), 1.into());
    witnessing.insert("fail_closed".into(), true.into());
    cfg.entry("log")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .unwrap()
        .insert("witnessing".into(), toml::Value::Table(witnessing));
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();

    let a = LogProcess::start(dir.path(), &pg.url(), port_a)
        .await
        .unwrap();
    let b = LogProcess::start(dir.path(), &pg.url(), port_b)
        .await
        .unwrap();
    let urls = [a.url.clone(), b.url.clone()];
    let n = 40;
    for round in 0..n / 4 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..4 {
            let url = urls[i % 2].clone();
            tasks.spawn(async move {
                let signer = Signer::new(KeyAlgorithm::EcdsaP256).unwrap();
                let (entry, _) = signer
                    .hashedrekord(format!("witnessed by two writers {round} {i}").as_bytes())
                    .unwrap();
                let r = reqwest::Client::new()
                    .post(format!("{url}/api/v1/log/entries"))
                    .json(&entry)
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            });
        }
        while let Some(r) = tasks.join_next().await {
            let (status, body) = r.unwrap();
            assert_eq!(status, 201, "{body}");
        }
    }
    let public = {
        let typed = B64.decode(vkey.splitn(3, '+').nth(2).unwrap()).unwrap();
        typed[1..].to_vec()
    };
    for url in &urls {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let sth: serde_json::Value = reqwest::get(format!("{url}/api/v1/log"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let note = sth["signedTreeHead"].as_str().unwrap().to_owned();
            let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
            if size == n as u64 {
                let text = &note[..note.find("\n\n").unwrap() + 1];
                let line = note
                    .lines()
                    .find(|l| l.starts_with(&format!("\u{2014} {WITNESS} ")))
                    .unwrap_or_else(|| panic!("{url} serves size {n} uncosigned: {note}"));
                check_cosignature_named(line, WITNESS, &public, text);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{url} still serves size {size}, not {n}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The witness saw the same tree.
    let latest = reqwest::get(format!(
        "http://127.0.0.1:{wport}/checkpoint?origin={}",
        url_escape(&origin)
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(
        latest.lines().nth(1),
        Some(n.to_string().as_str()),
        "{latest}"
    );
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
