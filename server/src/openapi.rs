//! Sigil's OpenAPI 3 document of every HTTP API it serves (`openapi.json`, kept by hand beside
//! the code and embedded in the binary), served at `/api/openapi.json`.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The document, as written.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The operations the document describes, as (upper-case method, path in axum's syntax), sorted.
/// A path parameter documented with `x-sigil-catch-all: true` is a `{*name}` wildcard route.
pub fn operations() -> Result<Vec<(String, String)>, String> {
    let doc: Value =
        serde_json::from_str(DOCUMENT).map_err(|e| format!("openapi.json is not JSON: {e}"))?;
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("openapi.json has no paths object")?;
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = item
            .as_object()
            .ok_or_else(|| format!("path item {path} is not an object"))?;
        for (method, op) in item {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let mut axum_path = path.clone();
            let params = op.get("parameters").and_then(Value::as_array);
            for p in params.into_iter().flatten() {
                let catch_all = p.get("x-sigil-catch-all").and_then(Value::as_bool);
                if let (Some(true), Some(name)) = (catch_all, p.get("name").and_then(Value::as_str))
                {
                    axum_path = axum_path.replace(&format!("{{{name}}}"), &format!("{{*{name}}}"));
                }
            }
            out.push((method.to_uppercase(), axum_path));
        }
    }
    out.sort();
    Ok(out)
}
