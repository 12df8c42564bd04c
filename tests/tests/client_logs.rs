//! The `sigil` CLI's contract with a user and a script: the deployment's Rekor v1 and v2 logs
//! read as one by `log get/search/verify` (no flags needed to find an entry in either), `rekor-cli`
//! search semantics (union by default, `--operator and`), `--output json`, the documented exit
//! codes, and progress shown only on a terminal.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sigil_tests::{SigilStack, workspace_bin};

const ID: &str = "developer@sigil.localhost";

struct Cli {
    home: PathBuf,
    dir: PathBuf,
}

impl Cli {
    fn new(stack: &SigilStack) -> Cli {
        let dir = stack.scratch().join("work");
        std::fs::create_dir_all(&dir).unwrap();
        Cli {
            home: stack.scratch().join("home"),
            dir,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(workspace_bin("sigil").unwrap())
            .args(args)
            .env("SIGIL_HOME", &self.home)
            .env("SIGIL_PASSWORD", "pw")
            .env_remove("SIGSTORE_ID_TOKEN")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
            .env_remove("SIGIL_TRUSTED_ROOT")
            .env_remove("SIGIL_SIGNING_CONFIG")
            .env_remove("SIGIL_TRUST_CONFIG")
            .env_remove("SIGIL_REKOR_VERSION")
            .current_dir(&self.dir)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "`sigil {}` failed ({}):\n{text}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["--output", "json"]);
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: not JSON:\n{out}"))
    }

    /// Exit code and stderr of a command expected to fail.
    fn code(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn sha256_hex(p: &Path) -> String {
    hex::encode(sigil_core::crypto::sha256(&std::fs::read(p).unwrap()))
}

#[tokio::test(flavor = "multi_thread")]
async fn log_commands_find_entries_in_whichever_log_holds_them() {
    let stack = SigilStack::up().await.unwrap();
    let url = stack.url().to_string();
    let cli = Cli::new(&stack);
    cli.ok(&["trust", "init", "--url", &url]);
    cli.ok(&["login"]);

    // One file signed into each log: Rekor v2 (the default with a TSA) and Rekor v1.
    let f2 = cli.path("v2.txt");
    std::fs::write(&f2, b"logged in Rekor v2\n").unwrap();
    let f1 = cli.path("v1.txt");
    std::fs::write(&f1, b"logged in Rekor v1\n").unwrap();
    let b2 = cli.path("v2.sigstore.json");
    let signed2 = cli.json(&["sign-blob", s(&f2), "--bundle", s(&b2)]);
    assert_eq!(signed2["log"]["rekorVersion"], 2, "{signed2}");
    let b1 = cli.path("v1.sigstore.json");
    let signed1 = cli.json(&[
        "sign-blob",
        s(&f1),
        "--bundle",
        s(&b1),
        "--rekor-version",
        "1",
    ]);
    assert_eq!(signed1["log"]["rekorVersion"], 1, "{signed1}");

    // sign-blob prints the command that fetches its entry; pasted, it finds it.
    let text = cli.ok(&["sign-blob", s(&f2), "--bundle", s(&cli.path("again.json"))]);
    let fetch = text
        .lines()
        .map(str::trim)
        .find(|l| l.contains(" log get --uuid "))
        .unwrap_or_else(|| panic!("sign-blob printed no fetch command:\n{text}"));
    let out = Command::new("bash")
        .args(["-c", fetch])
        .env("SIGIL_HOME", &cli.home)
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "`{fetch}`: {got}");
    assert!(got.contains("Found in the Rekor v2 log"), "{got}");

    // By UUID, no flags: each entry from the log that holds it, proof verified.
    for (signed, version) in [(&signed2, 2), (&signed1, 1)] {
        let uuid = signed["uuid"].as_str().unwrap();
        let j = cli.json(&["log", "get", "--uuid", uuid]);
        let e = &j[0];
        assert_eq!(j.as_array().unwrap().len(), 1, "{j}");
        assert_eq!(e["log"]["rekorVersion"], version, "{j}");
        assert_eq!(e["log"]["url"], url.as_str(), "{j}");
        assert_eq!(e["uuid"], uuid, "{j}");
        assert_eq!(e["logIndex"], signed["logIndex"], "{j}");
        assert_eq!(e["inclusionProofVerified"], true);
        assert_eq!(e.get("integratedTime").is_some(), version == 1, "{j}");
    }

    // By artifact, no flags: the v2 entry and the v1 entry, each labelled with its log.
    // (v2.txt was signed twice.)
    for (f, signed, version, n) in [(&f2, &signed2, 2, 2), (&f1, &signed1, 1, 1)] {
        let hits = cli.json(&["log", "search", "--artifact", s(f)]);
        let hits = hits.as_array().unwrap();
        assert_eq!(hits.len(), n, "{hits:?}");
        assert!(
            hits.iter().all(|h| h["log"]["rekorVersion"] == version),
            "{hits:?}"
        );
        let hit = hits.iter().find(|h| h["uuid"] == signed["uuid"]).unwrap();
        assert_eq!(hit["logIndex"], signed["logIndex"]);
        let text = cli.ok(&["log", "search", "--artifact", s(f)]);
        assert!(
            text.contains(signed["uuid"].as_str().unwrap())
                && text.contains(&format!("Rekor v{version} log {url}")),
            "{text}"
        );
    }

    // Index 0 exists in both logs: both answer, each named; --rekor-version picks one.
    let both = cli.json(&["log", "get", "--index", "0"]);
    let versions: Vec<i64> = both
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["log"]["rekorVersion"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1], "{both}");
    let text = cli.ok(&["log", "get", "--index", "0"]);
    assert!(
        text.contains("Found in the Rekor v2 log") && text.contains("Found in the Rekor v1 log"),
        "{text}"
    );
    let one = cli.json(&["log", "get", "--index", "0", "--rekor-version", "1"]);
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["log"]["rekorVersion"], 1);

    // rekor-cli semantics: several criteria give the union, --operator and the intersection,
    // in either log.
    let h2 = format!("sha256:{}", sha256_hex(&f2));
    let h1 = format!("sha256:{}", sha256_hex(&f1));
    let union = cli.json(&["log", "search", "--email", ID, "--sha256", &h2]);
    let by_email = cli.json(&["log", "search", "--email", ID]);
    assert!(
        by_email.as_array().unwrap().len() >= 2,
        "both signatures are by {ID}: {by_email}"
    );
    assert_eq!(
        union, by_email,
        "the union of email and hash is all of email's"
    );
    let and = cli.json(&[
        "log",
        "search",
        "--email",
        ID,
        "--sha256",
        &h2,
        "--operator",
        "and",
    ]);
    // Both signatures of v2.txt (sign-blob ran twice on it), none of v1.txt.
    let and = and.as_array().unwrap();
    assert_eq!(and.len(), 2, "{and:?}");
    assert!(and.iter().any(|h| h["uuid"] == signed2["uuid"]), "{and:?}");
    assert!(and.iter().all(|h| h["log"]["rekorVersion"] == 2), "{and:?}");
    let none = cli.json(&[
        "log",
        "search",
        "--sha256",
        &h1,
        "--email",
        "nobody@example.com",
        "--operator",
        "and",
    ]);
    assert_eq!(none, Value::Array(Vec::new()));
    let by_key_hash = cli.json(&[
        "log",
        "search",
        "--sha256",
        &h1,
        "--email",
        "nobody@example.com",
    ]);
    assert_eq!(by_key_hash.as_array().unwrap().len(), 1, "{by_key_hash}");

    // log verify: every log's checkpoint, then the entries found, proofs checked.
    let v = cli.json(&["log", "verify", "--artifact", s(&f1)]);
    let logs: Vec<i64> = v["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["log"]["rekorVersion"].as_i64().unwrap())
        .collect();
    assert_eq!(logs, [2, 1], "{v}");
    assert_eq!(v["entries"][0]["uuid"], signed1["uuid"], "{v}");
    let text = cli.ok(&["log", "verify"]);
    assert_eq!(
        text.matches("Consistent with the last seen checkpoint")
            .count(),
        2,
        "{text}"
    );

    // Not found anywhere: an error naming the logs asked (exit code 4).
    let (code, err) = cli.code(&["log", "get", "--index", "999999"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("no log of this deployment has an entry at index 999999")
            && err.contains("Rekor v1 log")
            && err.contains("Rekor v2 log"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_and_json_output_are_a_stable_contract() {
    let stack = SigilStack::up().await.unwrap();
    let url = stack.url().to_string();
    let issuer = stack.dev_issuer();
    let cli = Cli::new(&stack);

    // 2: usage. No trust configuration yet, bad flags, a missing file.
    let (code, err) = cli.code(&["log", "search", "--artifact", "x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sigil trust init"), "{err}");
    let (code, _) = cli.code(&["sign-blob"]);
    assert_eq!(code, 2);
    let (code, _) = cli.code(&["log", "get", "--index", "1", "--uuid", "ab"]);
    assert_eq!(code, 2);

    let init = cli.json(&["trust", "init", "--url", &url]);
    assert!(
        init["fingerprint"].as_str().unwrap().starts_with("sha256:"),
        "{init}"
    );
    let show = cli.json(&["trust", "show"]);
    assert_eq!(show.as_object().unwrap().len(), 2, "{show}");
    let login = cli.json(&["login"]);
    assert_eq!(login["identity"], ID, "{login}");
    let keys = cli.json(&["generate-key-pair", "--output-key-prefix", "k"]);
    assert_eq!(keys["publicKey"], "k.pub");

    let f = cli.path("f");
    std::fs::write(&f, b"exit codes\n").unwrap();
    let b = cli.path("f.sigstore.json");
    let signed = cli.json(&["sign-blob", s(&f), "--bundle", s(&b)]);
    assert!(
        signed["fetchCommand"].as_str().unwrap().ends_with(&format!(
            "log get --uuid {}",
            signed["uuid"].as_str().unwrap()
        )),
        "{signed}"
    );
    let verify = |file: &Path| {
        vec![
            "verify-blob".to_string(),
            s(file).to_string(),
            "--bundle".into(),
            s(&b).into(),
            "--certificate-identity".into(),
            ID.into(),
            "--certificate-oidc-issuer".into(),
            issuer.clone(),
        ]
    };
    let ok = verify(&f);
    assert!(cli.ok(&args(&ok)).contains("Verified OK"));
    let mut j = ok.clone();
    j.extend(["--output".into(), "json".into()]);
    let v: Value = serde_json::from_str(&cli.ok(&args(&j))).unwrap();
    assert_eq!(v["verified"], true);

    // 1: verification failed.
    let other = cli.path("other");
    std::fs::write(&other, b"not what was signed\n").unwrap();
    let (code, err) = cli.code(&args(&verify(&other)));
    assert_eq!(code, 1, "{err}");
    let mut wrong = ok.clone();
    wrong[5] = "mallory@example.com".into();
    let (code, err) = cli.code(&args(&wrong));
    assert_eq!(code, 1, "{err}");
    // A bundle that does not exist is a usage error, not a failed verification.
    let mut missing = ok.clone();
    missing[3] = s(&cli.path("missing.json")).into();
    let (code, err) = cli.code(&args(&missing));
    assert_eq!(code, 2, "{err}");

    // 3: network. A signing config whose services do not answer.
    let mut sc: Value =
        serde_json::from_slice(&std::fs::read(cli.home.join("signing_config.json")).unwrap())
            .unwrap();
    let dead = format!("http://127.0.0.1:{}", sigil_tests::free_port());
    for list in ["rekorTlogUrls", "caUrls", "tsaUrls"] {
        for svc in sc[list].as_array_mut().unwrap() {
            let u = svc["url"].as_str().unwrap().replace(&url, &dead);
            svc["url"] = Value::String(u);
        }
    }
    let dead_sc = cli.path("dead-signing-config.json");
    std::fs::write(&dead_sc, serde_json::to_vec(&sc).unwrap()).unwrap();
    for cmd in [
        vec!["log", "get", "--index", "0"],
        vec!["log", "search", "--email", ID],
        vec!["sign-blob", s(&f), "--bundle", s(&cli.path("never.json"))],
    ] {
        let mut a = cmd.clone();
        a.extend(["--signing-config", s(&dead_sc)]);
        let (code, err) = cli.code(&a);
        assert_eq!(code, 3, "`{}`: {err}", a.join(" "));
    }

    // The help says so.
    let help = cli.ok(&["--help"]);
    assert!(
        help.contains("Exit codes: 0 success; 1 verification failed"),
        "{help}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_shows_on_a_terminal_only() {
    let script = sigil_tests::find_tool("script", "bsdutils").unwrap();
    let stack = SigilStack::up().await.unwrap();
    let cli = Cli::new(&stack);
    cli.ok(&["trust", "init", "--url", stack.url()]);
    cli.ok(&["login"]);
    // Large enough for the progress line (8 MiB and up).
    let big = cli.path("big.bin");
    let data: Vec<u8> = (0..24u32 << 20).map(|i| (i % 253) as u8).collect();
    std::fs::write(&big, &data).unwrap();
    let sigil = workspace_bin("sigil").unwrap();
    let cmd = format!(
        "{} sign-blob {} --bundle {}",
        sigil.display(),
        big.display(),
        cli.path("big-tty.json").display()
    );
    // `script` gives the command a pseudo-terminal and records what it drew.
    let out = Command::new(&script)
        .args(["-qec", &cmd, "/dev/null"])
        .env("SIGIL_HOME", &cli.home)
        .env_remove("SIGIL_NO_PROGRESS")
        .current_dir(&cli.dir)
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(
        tty.contains("Reading ") && tty.contains(" MiB ("),
        "no progress on a terminal:\n{tty}"
    );
    // Piped: the same command draws nothing.
    let piped = cli.run(&[
        "sign-blob",
        s(&big),
        "--bundle",
        s(&cli.path("big-pipe.json")),
    ]);
    assert!(piped.status.success());
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(!err.contains("MiB") && !err.contains('\r'), "{err}");
}
