//! The log explorer: a page at `/ui/` (and `/` redirects there) that searches this deployment's
//! logs and checks each entry's inclusion proof and checkpoint signature in the browser. Its
//! three files are compiled into the binary, so it works air-gapped; a strict Content Security
//! Policy allows only them and requests to this origin. The page holds no log data: everything
//! it shows is read through the logs' own APIs, under their read-access rules, with the
//! reader's credential (a client certificate, or a token entered in the page).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::routes::Api;

const INDEX: &str = include_str!("../explorer/index.html");
const SCRIPT: &str = include_str!("../explorer/app.js");
const STYLE: &str = include_str!("../explorer/app.css");

/// No inline script or style, nothing from elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn router() -> Api {
    Api::new()
        .get("/", || async { Redirect::to("/ui/") })
        .get("/ui/", || async {
            asset(INDEX, "text/html; charset=utf-8")
        })
        .get("/ui/app.js", || async {
            asset(SCRIPT, "text/javascript; charset=utf-8")
        })
        .get("/ui/app.css", || async {
            asset(STYLE, "text/css; charset=utf-8")
        })
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Assets change with the binary: revalidate rather than serve a stale page.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
