//! Differential verification against sigstore-python 4.5.1: valid bundles of every kind Sigil and
//! sigstore-python produce against one `sigil-server up` (and sigstore-js's intoto 0.0.2
//! attestation), systematic mutants of each (every field
//! of the bundle, the entry body, checkpoint, certificate and timestamp DER, the trusted root, the
//! policy and the artifact; made and verified with sigstore-python's API by
//! `tests/python/differential.py`), each mutant then verified with `sigil verify-bundle`.
//! Every mutant sigstore-python rejects, Sigil must reject too. Bases sigstore-python cannot verify
//! (key-based, intoto 0.0.2) use the mutation's own verdict instead: a mutant changing anything a verifier must
//! check has to be rejected. Re-encodings the protobuf JSON mapping allows (`reencode-*` mutants:
//! int64 as a number, URL-safe or unpadded base64, omitted default values, the older bundle
//! formats) may be accepted even where sigstore-python's parser refuses them.
//!
//! Bases, mutants and both verdicts of the last run stay in `target/differential/`
//! (`results.jsonl`; `mutants/mutants.jsonl` has each mutant's files, to re-run one by hand).

// Test code: a failed unwrap or index is a test failure with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sigil_tests::{
    CmdResult, ExtraIssuer, OidcProvider, SigilStack, StackOptions, js_dir, run, venv_tool,
    workspace_bin, workspace_root,
};

const TIMEOUT: Duration = Duration::from_secs(120);
const IDENTITY: &str = "differential@example.com";
/// A minimal SLSA provenance v1 predicate (sigstore-python validates its shape).
const SLSA_V1_PREDICATE: &[u8] = br#"{"buildDefinition":{"buildType":"https://example.com/t","externalParameters":{}},"runDetails":{"builder":{"id":"https://example.com/builder"}}}"#;
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
/// Concurrent `sigil verify-bundle` processes.
const PARALLEL: usize = 3;

/// Who makes a base bundle, and how.
#[derive(Clone, Copy, Debug)]
enum Producer {
    SigilSignBlob,
    SigilAttest,
    SigilKey,
    PythonSign,
    PythonAttest,
    /// `@sigstore/cli attest`: an intoto 0.0.2 entry on Rekor v1.
    JsAttest,
}

struct BaseSpec {
    name: &'static str,
    producer: Producer,
    /// `--rekor-version`; None: the client's default (Rekor v2 + TSA for both clients).
    rekor: Option<&'static str>,
    /// Whether sigstore-python 4.5.1 verifies this kind (then it is the oracle for its mutants).
    python_verifies: bool,
}

const BASES: &[BaseSpec] = &[
    BaseSpec {
        name: "sigil-v2-tsa",
        producer: Producer::SigilSignBlob,
        rekor: None,
        python_verifies: true,
    },
    BaseSpec {
        name: "sigil-v1",
        producer: Producer::SigilSignBlob,
        rekor: Some("1"),
        python_verifies: true,
    },
    BaseSpec {
        name: "sigil-attest-v1",
        producer: Producer::SigilAttest,
        rekor: Some("1"),
        python_verifies: true,
    },
    BaseSpec {
        name: "sigil-attest-v2",
        producer: Producer::SigilAttest,
        rekor: None,
        python_verifies: true,
    },
    BaseSpec {
        name: "sigil-key-v2",
        producer: Producer::SigilKey,
        rekor: None,
        python_verifies: false,
    },
    BaseSpec {
        name: "sigil-key-v1",
        producer: Producer::SigilKey,
        rekor: Some("1"),
        python_verifies: false,
    },
    BaseSpec {
        name: "python-v2-tsa",
        producer: Producer::PythonSign,
        rekor: None,
        python_verifies: true,
    },
    BaseSpec {
        name: "python-v1",
        producer: Producer::PythonSign,
        rekor: Some("1"),
        python_verifies: true,
    },
    BaseSpec {
        name: "python-attest-v1",
        producer: Producer::PythonAttest,
        rekor: Some("1"),
        python_verifies: true,
    },
    BaseSpec {
        name: "python-attest-v2",
        producer: Producer::PythonAttest,
        rekor: Some("2"),
        python_verifies: true,
    },
    BaseSpec {
        name: "js-attest-intoto",
        producer: Producer::JsAttest,
        rekor: None,
        python_verifies: false,
    },
];

/// `sigil <args>` with the client's stored state and trust kept inside `home`.
fn sigil(home: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(workspace_bin("sigil").unwrap());
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("SIGIL_TRUSTED_ROOT")
        .env_remove("SIGIL_SIGNING_CONFIG")
        .env_remove("SIGIL_TRUST_CONFIG")
        .env_remove("SIGIL_REKOR_VERSION");
    cmd
}

fn sigstore(trust_config: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(venv_tool("sigstore").unwrap());
    cmd.arg("--trust-config").arg(trust_config);
    cmd
}

/// What every base is signed with.
#[derive(Clone)]
struct Signing {
    /// HOME of the sigil processes.
    home: PathBuf,
    client_trust_config: PathBuf,
    trusted_root: PathBuf,
    issuer: String,
    /// The stack's URL (sigstore-js takes the CA and log URLs).
    url: String,
}

/// Signs one base with its producer into `dir` and writes its `case.json`.
async fn make_base(spec: &BaseSpec, dir: &Path, env: &Signing, token: &str) -> Result<(), String> {
    let (home, ctc, issuer, url) = (
        env.home.as_path(),
        env.client_trust_config.as_path(),
        env.issuer.as_str(),
        env.url.as_str(),
    );
    let trusted_root = env.trusted_root.as_path();
    std::fs::create_dir_all(dir).unwrap();
    let artifact = dir.join("artifact.txt");
    std::fs::write(&artifact, format!("differential base {}\n", spec.name)).unwrap();
    std::fs::copy(trusted_root, dir.join("trusted_root.json")).unwrap();
    let bundle = dir.join("bundle.json");
    let predicate = dir.join("predicate.json");
    std::fs::write(&predicate, SLSA_V1_PREDICATE).unwrap();
    let mut key = None;
    let mut cmd = match spec.producer {
        Producer::SigilSignBlob | Producer::SigilAttest => {
            let mut cmd = sigil(home);
            if matches!(spec.producer, Producer::SigilAttest) {
                cmd.arg("attest")
                    .arg(&artifact)
                    .arg("--predicate")
                    .arg(&predicate)
                    .args(["--type", SLSA_V1]);
            } else {
                cmd.arg("sign-blob").arg(&artifact);
            }
            cmd.arg("--bundle")
                .arg(&bundle)
                .arg("--trust-config")
                .arg(ctc);
            cmd.args(["--identity-token", token]);
            cmd
        }
        Producer::SigilKey => {
            let prefix = dir.join("key");
            let mut gen_cmd = sigil(home);
            gen_cmd
                .arg("generate-key-pair")
                .arg("--output-key-prefix")
                .arg(&prefix)
                .env("SIGIL_PASSWORD", "differential");
            let r = run(gen_cmd, TIMEOUT).await.unwrap();
            if !r.success() {
                return Err(format!("{}: generate-key-pair failed\n{r}", spec.name));
            }
            key = Some("key.pub");
            let mut cmd = sigil(home);
            cmd.arg("sign-blob")
                .arg(&artifact)
                .arg("--key")
                .arg(dir.join("key.key"))
                .arg("--bundle")
                .arg(&bundle)
                .arg("--trust-config")
                .arg(ctc)
                .env("SIGIL_PASSWORD", "differential");
            cmd
        }
        Producer::PythonSign => {
            let mut cmd = sigstore(ctc);
            cmd.arg("sign");
            cmd
        }
        Producer::JsAttest => {
            let digest = hex::encode(sigil_core::crypto::sha256(
                &std::fs::read(&artifact).unwrap(),
            ));
            let statement = dir.join("statement.json");
            let body = json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "artifact.txt", "digest": {"sha256": digest}}],
                "predicateType": SLSA_V1,
                "predicate": serde_json::from_slice::<Value>(SLSA_V1_PREDICATE).unwrap(),
            });
            std::fs::write(&statement, body.to_string()).unwrap();
            let js = js_dir().map_err(|e| e.to_string())?;
            let mut cmd = tokio::process::Command::new(js.join("node_modules/.bin/sigstore"));
            cmd.arg("attest")
                .arg(&statement)
                .args(["--fulcio-url", url, "--rekor-url", url])
                .args(["--timeout", "30", "--output-file"])
                .arg(&bundle)
                .env("CI", "true")
                .env("SIGSTORE_ID_TOKEN", token);
            cmd
        }
        Producer::PythonAttest => {
            let mut cmd = sigstore(ctc);
            cmd.args(["attest", "--predicate-type", SLSA_V1, "--predicate"])
                .arg(&predicate);
            cmd
        }
    };
    if matches!(spec.producer, Producer::PythonSign | Producer::PythonAttest) {
        if let Some(v) = spec.rekor {
            cmd.args(["--rekor-version", v]);
        }
        cmd.args(["--identity-token", token, "--bundle"])
            .arg(&bundle)
            .arg(&artifact);
    } else if let Some(v) = spec.rekor {
        cmd.args(["--rekor-version", v]);
    }
    let r = run(cmd, TIMEOUT).await.unwrap();
    if !r.success() {
        return Err(format!("{}: signing failed\n{r}", spec.name));
    }
    let keyless = key.is_none();
    let case = json!({
        "bundle": "bundle.json",
        "artifact": "artifact.txt",
        "trusted_root": "trusted_root.json",
        "identity": keyless.then_some(IDENTITY),
        "issuer": keyless.then_some(issuer),
        "key": key,
    });
    std::fs::write(dir.join("case.json"), case.to_string()).unwrap();
    Ok(())
}

/// One mutant as differential.py wrote it, and what both verifiers said.
struct Outcome {
    name: String,
    base: String,
    security: bool,
    python_accepts: bool,
    python_message: String,
    sigil_accepts: bool,
    sigil_message: String,
    sigil_panicked: bool,
}

fn str_field(m: &Value, key: &str) -> String {
    m[key].as_str().unwrap_or_default().to_string()
}

/// `sigil verify-bundle` on one mutant.
async fn sigil_verify(m: &Value, home: &Path) -> CmdResult {
    let mut cmd = sigil(home);
    cmd.arg("verify-bundle")
        .arg("--bundle")
        .arg(str_field(m, "bundle"))
        .arg("--trusted-root")
        .arg(str_field(m, "trusted_root"));
    match m["key"].as_str() {
        Some(key) => {
            cmd.arg("--key").arg(key);
        }
        None => {
            cmd.arg("--certificate-identity")
                .arg(str_field(m, "identity"))
                .arg("--certificate-oidc-issuer")
                .arg(str_field(m, "issuer"));
        }
    }
    cmd.arg(str_field(m, "artifact"));
    run(cmd, TIMEOUT).await.unwrap()
}

/// The last non-empty line of what sigil printed on stderr (its error).
fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[tokio::test]
async fn sigil_rejects_every_mutant_sigstore_python_rejects() {
    let python = venv_tool("python").unwrap();
    venv_tool("sigstore").unwrap();
    let started = Instant::now();
    let idp = OidcProvider::start().await.expect("OIDC provider");
    let stack = SigilStack::up_with(StackOptions {
        extra_issuers: vec![ExtraIssuer::email(idp.issuer())],
        ..StackOptions::default()
    })
    .await
    .expect("sigil-server up");
    let scratch = stack.scratch().to_path_buf();
    let trust = stack.fetch_trust_files(&scratch).await.unwrap();
    let ctc = trust.client_trust_config.clone();
    // Bases, mutants and verdicts stay in target/differential for reading (and re-running one
    // mutant) after the test; each run starts afresh.
    let work = results_dir();
    let _ = std::fs::remove_dir_all(&work);
    let bases_dir = work.join("bases");
    let issuer = idp.issuer().to_string();

    let signing_env = Signing {
        home: scratch.clone(),
        client_trust_config: ctc.clone(),
        trusted_root: trust.trusted_root.clone(),
        issuer: issuer.clone(),
        url: stack.url().to_string(),
    };
    // The bases, signed concurrently (each keyless one with a fresh token).
    let mut signing = tokio::task::JoinSet::new();
    for (i, spec) in BASES.iter().enumerate() {
        let token = idp.token("differential", Some(IDENTITY)).await.unwrap();
        let (dir, env) = (bases_dir.join(spec.name), signing_env.clone());
        signing.spawn(async move { make_base(&BASES[i], &dir, &env, &token).await });
    }
    let mut failures: Vec<String> = Vec::new();
    while let Some(r) = signing.join_next().await {
        if let Err(e) = r.unwrap() {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\nserver output:\n{}",
        failures.join("\n\n"),
        stack.output()
    );
    let signed_at = started.elapsed();

    // Mutants, each verified by sigstore-python through its API.
    let out = work.join("mutants");
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(workspace_root().join("tests/python/differential.py"))
        .arg("--bases")
        .arg(&bases_dir)
        .arg("--out")
        .arg(&out);
    let r = run(cmd, Duration::from_secs(300)).await.unwrap();
    assert!(r.success(), "differential.py failed\n{r}");
    println!("{}", r.stderr());
    let mutants: Vec<Value> = std::fs::read_to_string(out.join("mutants.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        mutants.len() >= 1000,
        "only {} mutants generated",
        mutants.len()
    );
    let python_at = started.elapsed();

    // Every mutant through `sigil verify-bundle`, a few processes at a time.
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut verifying = tokio::task::JoinSet::new();
    for (i, m) in mutants.iter().enumerate() {
        let (m, home, limit) = (m.clone(), scratch.clone(), limit.clone());
        verifying.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            (i, sigil_verify(&m, &home).await)
        });
    }
    let mut results: Vec<Option<CmdResult>> = (0..mutants.len()).map(|_| None).collect();
    while let Some(r) = verifying.join_next().await {
        let (i, r) = r.unwrap();
        results[i] = Some(r);
    }
    let outcomes: Vec<Outcome> = mutants
        .iter()
        .zip(results)
        .map(|(m, r)| {
            let r = r.unwrap();
            let stderr = r.stderr();
            Outcome {
                name: str_field(m, "name"),
                base: str_field(m, "base"),
                security: m["security"].as_bool().unwrap(),
                python_accepts: m["python"] == "accept",
                python_message: str_field(m, "python_message"),
                sigil_accepts: r.success(),
                sigil_message: last_line(&stderr),
                sigil_panicked: r.output.status.code() == Some(101)
                    || stderr.contains("panicked at"),
            }
        })
        .collect();
    let verified_at = started.elapsed();

    // Which bases sigstore-python can judge: those it accepts unmodified.
    let oracle: BTreeMap<String, bool> = outcomes
        .iter()
        .filter(|o| o.name.ends_with("/original"))
        .map(|o| (o.base.clone(), o.python_accepts))
        .collect();
    for o in outcomes.iter().filter(|o| o.name.ends_with("/original")) {
        if !o.sigil_accepts {
            failures.push(format!(
                "base {} does not verify with sigil: {}",
                o.base, o.sigil_message
            ));
        }
        let supported = BASES.iter().any(|b| b.name == o.base && b.python_verifies);
        if supported && !o.python_accepts {
            failures.push(format!(
                "base {} does not verify with sigstore-python: {}",
                o.base, o.python_message
            ));
        }
    }

    #[derive(Default)]
    struct Counts {
        mutants: usize,
        python_rejects: usize,
        sigil_rejects: usize,
        false_accepts: usize,
        stricter: usize,
    }
    let mut counts: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut false_accepts = Vec::new();
    let mut stricter = Vec::new();
    let mut panics = Vec::new();
    let mut lenient_encodings = Vec::new();
    for o in &outcomes {
        let c = counts.entry(&o.base).or_default();
        c.mutants += 1;
        c.python_rejects += usize::from(!o.python_accepts);
        c.sigil_rejects += usize::from(!o.sigil_accepts);
        if o.sigil_panicked {
            panics.push(format!("{}: {}", o.name, o.sigil_message));
        }
        // Re-encodings the protobuf JSON mapping allows (int64 as a number, URL-safe or unpadded
        // base64, the older bundle formats) carry the same values: sigstore-python's parser
        // refusing one is not a verification verdict. Listed, not failed.
        let reencoded = o
            .name
            .rsplit('/')
            .next()
            .is_some_and(|op| op.starts_with("reencode-"));
        let judged_by_python = oracle.get(&o.base).copied().unwrap_or(false);
        let must_reject = if judged_by_python {
            !o.python_accepts && !reencoded
        } else {
            o.security
        };
        if o.sigil_accepts && !o.python_accepts && reencoded {
            lenient_encodings.push((o.name.as_str(), o.python_message.as_str()));
        }
        if o.sigil_accepts && must_reject {
            c.false_accepts += 1;
            let why = if judged_by_python {
                format!("sigstore-python: {}", o.python_message)
            } else {
                format!(
                    "must-reject mutation (sigstore-python cannot verify this base; it says: {})",
                    o.python_message
                )
            };
            false_accepts.push(format!("{}\n    {why}", o.name));
        } else if !o.sigil_accepts && o.python_accepts {
            c.stricter += 1;
            stricter.push((o.name.as_str(), o.sigil_message.as_str()));
        }
    }

    let mut report = format!(
        "{:<18} {:>8} {:>15} {:>14} {:>27} {:>27}\n",
        "base",
        "mutants",
        "python rejects",
        "sigil rejects",
        "sigil accepts/py rejects",
        "python accepts/sigil rejects"
    );
    let mut total = Counts::default();
    for (base, c) in &counts {
        let oracle_note = if oracle.get(*base).copied().unwrap_or(false) {
            ""
        } else {
            " (no python oracle: security verdicts)"
        };
        report.push_str(&format!(
            "{base:<18} {:>8} {:>15} {:>14} {:>27} {:>27}{oracle_note}\n",
            c.mutants, c.python_rejects, c.sigil_rejects, c.false_accepts, c.stricter
        ));
        total.mutants += c.mutants;
        total.python_rejects += c.python_rejects;
        total.sigil_rejects += c.sigil_rejects;
        total.false_accepts += c.false_accepts;
        total.stricter += c.stricter;
    }
    report.push_str(&format!(
        "{:<18} {:>8} {:>15} {:>14} {:>27} {:>27}\n",
        "total",
        total.mutants,
        total.python_rejects,
        total.sigil_rejects,
        total.false_accepts,
        total.stricter
    ));
    println!(
        "differential verification: {} bases signed in {:.1?}, mutants verified by sigstore-python by {:.1?}, by sigil by {:.1?}\n{report}",
        counts.len(),
        signed_at,
        python_at,
        verified_at
    );
    println!(
        "{}",
        by_class("sigil stricter than sigstore-python (allowed)", &stricter)
    );
    println!(
        "{}",
        by_class(
            "re-encodings sigil accepts and sigstore-python's parser refuses (allowed)",
            &lenient_encodings
        )
    );
    write_results(&outcomes);

    if !false_accepts.is_empty() {
        let pairs: Vec<(&str, &str)> = false_accepts
            .iter()
            .map(|f| f.split_once('\n').unwrap_or((f.as_str(), "")))
            .collect();
        failures.push(by_class("false accepts by mutation class", &pairs));
        failures.push(format!(
            "{} mutants accepted by sigil that must be rejected:\n  {}",
            false_accepts.len(),
            false_accepts.join("\n  ")
        ));
    }
    if !panics.is_empty() {
        failures.push(format!(
            "sigil panicked on {} mutants:\n  {}",
            panics.len(),
            panics.join("\n  ")
        ));
    }
    assert!(failures.is_empty(), "{report}\n{}", failures.join("\n\n"));
}

/// A mutant's name without its base and with indexes, offsets and other bases' names
/// generalised: `sigil-v1/tlogEntries[0].logIndex/swap-python-v1` → `tlogEntries[i].logIndex/swap-*`.
fn mutation_class(name: &str) -> String {
    let rest = name.split_once('/').map_or(name, |(_, r)| r);
    let mut names: Vec<&str> = BASES.iter().map(|b| b.name).collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut rest = rest.to_string();
    for n in names {
        rest = rest.replace(n, "*");
    }
    let mut out = String::with_capacity(rest.len());
    let mut after_marker = false;
    for c in rest.chars() {
        if after_marker && c.is_ascii_digit() {
            continue;
        }
        after_marker = false;
        if c == '[' || c == '@' || c == '#' {
            out.push(c);
            out.push('n');
            after_marker = true;
            continue;
        }
        out.push(c);
    }
    out
}

/// `title (N)` and one line per mutation class: how many, and one example with its message.
fn by_class(title: &str, items: &[(&str, &str)]) -> String {
    let mut classes: BTreeMap<String, (usize, &str, &str)> = BTreeMap::new();
    for (name, message) in items {
        let e = classes
            .entry(mutation_class(name))
            .or_insert((0, name, message));
        e.0 += 1;
    }
    let mut out = format!(
        "{title}: {} mutants, {} classes",
        items.len(),
        classes.len()
    );
    for (class, (n, example, message)) in &classes {
        let message: String = message.trim().chars().take(160).collect();
        out.push_str(&format!(
            "\n  {n:>3} {class}  e.g. {example}\n        {message}"
        ));
    }
    out
}

fn results_dir() -> PathBuf {
    workspace_root().join("target").join("differential")
}

/// Every outcome as JSON lines in `target/differential/results.jsonl`, for reading after a run.
fn write_results(outcomes: &[Outcome]) {
    let dir = results_dir();
    let lines: String = outcomes
        .iter()
        .map(|o| {
            let line = json!({
                "name": o.name,
                "security": o.security,
                "python": if o.python_accepts { "accept" } else { "reject" },
                "python_message": o.python_message,
                "sigil": if o.sigil_accepts { "accept" } else { "reject" },
                "sigil_message": o.sigil_message,
            });
            format!("{line}\n")
        })
        .collect();
    let _ = std::fs::write(dir.join("results.jsonl"), lines);
}
