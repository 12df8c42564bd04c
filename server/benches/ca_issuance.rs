//! Certificate issuance rate with the CT log on: `cargo bench -p sigil-server --bench ca_issuance
//! [-- <requests> <concurrency>]`. One process holds a mock OpenID provider, the CT log (log
//! engine on SQLite in a temp dir, or `DATABASE_URL`), the CA on loopback HTTP and a load
//! generator whose tokens, keys and proofs are made before timing starts, so the figure is the
//! servers' work: OIDC verify, PoP verify, precert, add-pre-chain (chain check, durable append,
//! SCT), SCT verify, final certificate. Prints certs/s, latency percentiles and the same-run
//! ECDSA P-256 sign/verify ceiling.
// Its mock OpenID provider is a plain router, not part of the served API.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use der::Decode;
use serde_json::json;
use sigil_core::crypto::{KeyAlgorithm, SigningKey};
use sigil_server::ca::{Ca, CaConfig, CaKeys, CaNames, IssuerConfig, IssuerType};
use sigil_server::log::ct::CtState;
use sigil_server::log::engine::{EngineConfig, LogEngine};

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn serve(router: Router) -> Result<String, BoxErr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{addr}"))
}

#[derive(der::Sequence)]
struct RsaPub<'a> {
    n: der::asn1::UintRef<'a>,
    e: der::asn1::UintRef<'a>,
}

/// Mock provider: RS256 key, discovery and JWKS at `<base>/idp`.
async fn start_idp() -> Result<(String, jsonwebtoken::EncodingKey), BoxErr> {
    let key = SigningKey::generate(KeyAlgorithm::Rsa { bits: 2048 })?;
    let enc = jsonwebtoken::EncodingKey::from_rsa_pem(key.to_pkcs8_pem()?.as_bytes())?;
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(key.public_key().spki_der())?;
    let rsa = RsaPub::from_der(spki.subject_public_key.raw_bytes())?;
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "bench", "use": "sig", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(rsa.n.as_bytes()), "e": URL_SAFE_NO_PAD.encode(rsa.e.as_bytes())}]});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let issuer = format!("{base}/idp");
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{base}/jwks")});
    let router = Router::new()
        .route(
            "/idp/.well-known/openid-configuration",
            get(move || {
                let d = discovery.clone();
                async move { axum::Json(d) }
            }),
        )
        .route(
            "/jwks",
            get(move || {
                let j = jwks.clone();
                async move { axum::Json(j) }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((issuer, enc))
}

fn ops_per_sec(mut f: impl FnMut(), dur: Duration) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        f();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The 1-minute load average: on a shared machine, how much else wanted the cores.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// CPU seconds (user + system) this process has used so far.
fn process_cpu_secs() -> f64 {
    let ticks: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: utime and stime are the 12th and 13th fields.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(11) + field(12)) / ticks
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied().unwrap_or_default()
}

async fn run() -> Result<(), BoxErr> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let total: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(6000);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    // `no-ct` measures the CA alone (no SCT): the CT log's share of the cost, by difference.
    let with_ct = args.get(2).map(String::as_str) != Some("no-ct");

    // Same-run crypto ceiling, one core.
    let k = SigningKey::generate(KeyAlgorithm::EcdsaP256)?;
    let sig = k.sign(b"ceiling")?;
    let pk = k.public_key();
    let sign_rate = ops_per_sec(
        || {
            let _ = k.sign(b"ceiling");
        },
        Duration::from_millis(500),
    );
    let verify_rate = ops_per_sec(
        || {
            let _ = pk.verify(b"ceiling", &sig);
        },
        Duration::from_millis(500),
    );

    let (issuer, enc) = start_idp().await?;

    // CT log on the log engine.
    let dir = std::env::temp_dir().join(format!("sigil-ca-bench-{}-{}", std::process::id(), now()));
    std::fs::create_dir_all(&dir)?;
    let db_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.join("ct.db").display()));
    let db = sigil_server::storage::connect(&db_url).await?;
    let keys = CaKeys::ephemeral(&CaNames::default())?;
    let ct_key = SigningKey::generate(KeyAlgorithm::EcdsaP256)?;
    let ct_pem = ct_key.to_pkcs8_pem()?;
    let note =
        sigil_core::note::EcdsaNoteKey::signer("bench-ct", SigningKey::from_pkcs8_pem(&ct_pem)?)?;
    let log_id = format!("ct-bench-{}", now());
    let engine = LogEngine::open(
        db,
        &log_id,
        "bench CT",
        Arc::new(note),
        EngineConfig::default(),
    )
    .await?;
    let roots = vec![keys.chain_der().last().cloned().ok_or("no root")?];
    let ct_state = CtState::new(engine, SigningKey::from_pkcs8_pem(&ct_pem)?, roots);
    let ct_url = serve(
        sigil_server::log::ct::router(Arc::new(ct_state))
            .into_parts()
            .0,
    )
    .await?;

    let config = CaConfig {
        issuers: vec![IssuerConfig::exact(issuer.clone(), IssuerType::Email)],
        ct_log_url: with_ct.then_some(ct_url),
        ct_log_public_key: with_ct.then(|| ct_key.public_key().to_pem()),
        ..CaConfig::default()
    };
    let ca = Arc::new(Ca::new(config, keys)?);
    let ca_url = serve(sigil_server::ca::router(ca).into_parts().0).await?;

    // Requests made ahead: a token, a fresh P-256 key and its proof each.
    eprintln!("preparing {total} requests…");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("bench".into());
    let warmup = 200.min(total);
    let mut bodies = Vec::with_capacity(total + warmup);
    for i in 0..total + warmup {
        let email = format!("user{i}@example.com");
        let t = now();
        let claims = json!({"iss": issuer, "sub": format!("u{i}"), "aud": "sigstore", "iat": t, "exp": t + 1200,
                            "email": email, "email_verified": true});
        let token = jsonwebtoken::encode(&header, &claims, &enc)?;
        let key = SigningKey::generate(KeyAlgorithm::EcdsaP256)?;
        let proof = key.sign(email.as_bytes())?;
        let body = json!({
            "credentials": {"oidcIdentityToken": token},
            "publicKeyRequest": {"publicKey": {"algorithm": "ECDSA", "content": key.public_key().to_pem()},
                                 "proofOfPossession": STANDARD.encode(proof)}
        });
        bodies.push(serde_json::to_vec(&body)?);
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let url = format!("{ca_url}/api/v2/signingCert");

    let fire = |range: std::ops::Range<usize>, bodies: Arc<Vec<Vec<u8>>>| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let next = Arc::new(AtomicUsize::new(range.start));
            let errors = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (http, url, next, errors, bodies) = (
                    http.clone(),
                    url.clone(),
                    next.clone(),
                    errors.clone(),
                    bodies.clone(),
                );
                let end = range.end;
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= end {
                            break;
                        }
                        let body = bodies.get(i).cloned().unwrap_or_default();
                        let t0 = Instant::now();
                        let ok = match http
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                        {
                            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                            Ok(r) => {
                                let status = r.status();
                                let text = r.text().await.unwrap_or_default();
                                if errors.load(Ordering::Relaxed) < 3 {
                                    eprintln!("error {status}: {text}");
                                }
                                false
                            }
                            Err(e) => {
                                if errors.load(Ordering::Relaxed) < 3 {
                                    eprintln!("error: {e}");
                                }
                                false
                            }
                        };
                        if ok {
                            lat.push(t0.elapsed());
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    lat
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap_or_default());
            }
            (all, errors.load(Ordering::Relaxed))
        }
    };
    let bodies = Arc::new(bodies);
    let _ = fire(total..total + warmup, bodies.clone()).await;
    eprintln!("measuring…");
    let load_before = load_average();
    let cpu_before = process_cpu_secs();
    let start = Instant::now();
    let (mut lat, errors) = fire(0..total, bodies).await;
    let elapsed = start.elapsed();
    let cpu = process_cpu_secs() - cpu_before;
    let load_after = load_average();
    lat.sort();
    let rate = lat.len() as f64 / elapsed.as_secs_f64();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);

    let db_kind = if db_url.starts_with("sqlite") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    if with_ct {
        println!("| CA issuance (embedded SCT, CT log on {db_kind}) | value |");
    } else {
        println!("| CA issuance WITHOUT the CT log (no SCT; diagnosis only) | value |");
    }
    println!("|---|---|");
    println!("| requests / concurrency | {total} / {concurrency} |");
    println!("| certificates issued | {} (errors: {errors}) |", lat.len());
    println!("| certificates/s | {rate:.0} |");
    println!(
        "| latency p50 / p99 / max | {:.1} ms / {:.1} ms / {:.1} ms |",
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "| same-run ceiling, one core: P-256 sign / verify | {sign_rate:.0}/s / {verify_rate:.0}/s |"
    );
    println!(
        "| certs/s as a share of one-core P-256 verify rate | {:.2} |",
        rate / verify_rate
    );
    // CT log, CA, provider and load generator share this process (and PostgreSQL, when used,
    // runs beside it): the CPU it used per certificate is the cost the rate is made of.
    println!(
        "| process CPU per certificate (CA + CT log + generator) | {:.0} µs ({:.0}% of {} cores) |",
        1e6 * cpu / lat.len().max(1) as f64,
        100.0 * cpu / (elapsed.as_secs_f64() * cores as f64),
        cores
    );
    println!("| machine load (1-min load average) before / after | {load_before} / {load_after} |");
    let _ = std::fs::remove_dir_all(&dir);
    if errors > 0 {
        return Err(format!("{errors} requests failed").into());
    }
    Ok(())
}

fn main() -> Result<(), BoxErr> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}
