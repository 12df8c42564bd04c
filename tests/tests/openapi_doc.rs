//! `/api/openapi.json` documents exactly the routes the server serves: a server with every role
//! enabled (as `up` runs it) is built in-process, and the (method, path) pairs its router was
//! given (`sigil_server::routes::Api` records them; clippy forbids adding routes any other way
//! in the server) must equal the operations of the document. Operations that are not part of
//! an upstream API (Rekor, Fulcio, RFC 6962, RFC 3161) carry `x-sigil-extension: true`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;

use serde_json::Value;

/// Path prefixes of the upstream APIs Sigil implements; everything else is Sigil's own.
const UPSTREAM: &[&str] = &[
    "/api/v1/log",
    "/api/v1/index/",
    "/api/v2/log/",
    "/api/v2/checkpoint",
    "/api/v2/tile/",
    "/ct/v1/",
    "/api/v2/signingCert",
    "/api/v2/trustBundle",
    "/api/v2/configuration",
    "/api/v1/signingCert",
    "/api/v1/rootCert",
    "/api/v1/timestamp",
];

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_exists() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    sigil_server::init::init(dir.path(), &url, true).unwrap();
    let mut cfg = sigil_server::config::Config::load(Some(&dir.path().join("sigil.toml"))).unwrap();
    // Every role on, whatever the defaults of `init` are.
    cfg.log.enabled = true;
    cfg.ct.enabled = true;
    cfg.ca.enabled = true;
    cfg.rekor_v2.enabled = true;
    cfg.tsa.enabled = true;
    cfg.dev_oidc.enabled = true;
    let service = sigil_server::app::build(&cfg, dir.path()).await.unwrap();

    let served: BTreeSet<(String, String)> = service
        .routes
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(
        served.len(),
        service.routes.len(),
        "a route is added twice: {:?}",
        service.routes
    );
    let documented: BTreeSet<(String, String)> = sigil_server::openapi::operations()
        .unwrap()
        .into_iter()
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in server/src/openapi.json: {undocumented:?}\n\
         documented but not served: {unserved:?}"
    );
    println!("{} operations, documented and served", served.len());

    // The document is served as JSON, and Sigil's own operations are marked.
    let router = service.router;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let resp = reqwest::get(format!("{url}/api/openapi.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(sigil_server::openapi::DOCUMENT).unwrap()
    );
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut unmarked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let upstream = UPSTREAM.iter().any(|p| path.starts_with(p));
            let marked = op["x-sigil-extension"] == Value::Bool(true);
            if upstream == marked {
                unmarked.push(format!(
                    "{method} {path}: upstream={upstream}, marked={marked}"
                ));
            }
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
        }
    }
    assert!(
        unmarked.is_empty(),
        "x-sigil-extension wrong: {unmarked:#?}"
    );

    // Undocumented paths and undecodable path parameters get the JSON error too.
    for (path, status) in [("/no/such/endpoint", 404), ("/api/v2/tile/%FF", 400)] {
        let resp = reqwest::get(format!("{url}{path}")).await.unwrap();
        assert_eq!(resp.status(), status, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], status, "{path}: {body}");
        assert!(body["message"].is_string(), "{path}: {body}");
    }
    task.abort();
}
