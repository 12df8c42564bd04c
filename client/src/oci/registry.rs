//! A small, blocking client for the OCI distribution API (manifests, blobs, referrers).
//!
//! Plain `reqwest` rather than the `oci-client` crate: the rest of this crate is blocking
//! reqwest, signing needs the exact manifest bytes that were hashed (we build and push them
//! ourselves), and the referrers API plus cosign's tag scheme need only a handful of calls. It
//! also keeps `oci-client` (inside the `sigstore` crate) an independent reader in the tests.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sigil_core::crypto::sha256;

use super::auth::{self, Credentials};
use super::error::OciError;
use super::reference::ImageRef;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Signature layers, bundles and manifests are small; anything bigger is refused.
const MAX_FETCH: u64 = 32 * 1024 * 1024;

/// An OCI content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Descriptor {
    /// The descriptor of `bytes` with a media type.
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest: digest_of(bytes),
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: None,
        }
    }
}

/// An OCI image manifest (also reads Docker v2 manifests, which have the same shape).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An OCI image index (the referrers API answers with one).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// A manifest as fetched: exact bytes, media type and digest of those bytes.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: String,
}

/// `sha256:<hex>` of bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha256(bytes)))
}

/// How to reach a registry.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    pub username: Option<String>,
    pub password: Option<String>,
    /// Allow plain HTTP to a non-loopback registry.
    pub allow_insecure: bool,
}

/// A connection to one registry host.
pub struct Registry {
    http: Client,
    base: String,
    host: String,
    creds: Option<Credentials>,
    /// The `Authorization` value that last worked (Basic or a Bearer token).
    auth: Mutex<Option<String>>,
}

/// The parameters of a `WWW-Authenticate` challenge.
fn parse_challenge(h: &str) -> (String, BTreeMap<String, String>) {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while let Some((k, v)) = rest.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (val, tail) = if let Some(q) = v.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (q.get(..end).unwrap_or(""), q.get(end + 1..).unwrap_or(""))
        } else {
            let end = v.find(',').unwrap_or(v.len());
            (v.get(..end).unwrap_or(""), v.get(end..).unwrap_or(""))
        };
        params.insert(k, val.to_owned());
        rest = tail.trim_start_matches(',').trim();
    }
    (scheme.to_ascii_lowercase(), params)
}

impl Registry {
    /// Connects to the registry of `image`: HTTPS, or plain HTTP for loopback hosts and with
    /// `allow_insecure`. Credentials: explicit, else the Docker/containers config files.
    pub fn connect(image: &ImageRef, opts: &RegistryOptions) -> Result<Self, OciError> {
        let scheme = if image.is_loopback() || opts.allow_insecure {
            "http"
        } else {
            "https"
        };
        let creds = match (&opts.username, &opts.password) {
            (Some(u), Some(p)) => Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }),
            (Some(_), None) | (None, Some(_)) => {
                return Err(OciError::Auth {
                    registry: image.registry.clone(),
                    why: "--registry-username and --registry-password go together".into(),
                });
            }
            (None, None) => auth::lookup(&image.registry)?,
        };
        let http = crate::http::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| OciError::Http {
                url: image.registry.clone(),
                source: e,
            })?;
        let host = if image.registry == super::reference::DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            &image.registry
        };
        Ok(Self {
            http,
            base: format!("{scheme}://{host}"),
            host: image.registry.clone(),
            creds,
            auth: Mutex::new(None),
        })
    }

    /// `scheme://host`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn cached_auth(&self) -> Option<String> {
        self.auth.lock().ok().and_then(|g| g.clone())
    }

    fn set_auth(&self, v: String) {
        if let Ok(mut g) = self.auth.lock() {
            *g = Some(v);
        }
    }

    /// Answers a 401 challenge: Basic with the credentials, or a Bearer token from the realm.
    fn authenticate(&self, challenge: &str, repo: &str, push: bool) -> Result<(), OciError> {
        let err = |why: String| OciError::Auth {
            registry: self.host.clone(),
            why,
        };
        let (scheme, params) = parse_challenge(challenge);
        let basic = self.creds.as_ref().map(|c| {
            format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", c.username, c.password))
            )
        });
        match scheme.as_str() {
            "basic" => {
                let b = basic.ok_or_else(|| {
                    err("the registry wants a username and password: pass --registry-username/--registry-password or log in with docker/podman".into())
                })?;
                self.set_auth(b);
                Ok(())
            }
            "bearer" => {
                let realm = params
                    .get("realm")
                    .ok_or_else(|| err(format!("Bearer challenge without a realm: {challenge}")))?;
                let actions = if push { "pull,push" } else { "pull" };
                let scope = format!("repository:{repo}:{actions}");
                let mut q: Vec<(&str, &str)> = vec![("scope", &scope)];
                if let Some(s) = params.get("service") {
                    q.push(("service", s));
                }
                let mut req = self.http.get(realm).query(&q);
                if let Some(b) = &basic {
                    req = req.header(AUTHORIZATION, b);
                }
                let resp = req
                    .send()
                    .map_err(|e| err(format!("token endpoint {realm}: {e}")))?;
                let status = resp.status();
                let body: Value = resp.json().unwrap_or(Value::Null);
                if !status.is_success() {
                    return Err(err(format!(
                        "token endpoint {realm} answered {status}: {body}"
                    )));
                }
                let tok = body
                    .get("token")
                    .or_else(|| body.get("access_token"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| err(format!("token endpoint {realm} returned no token")))?;
                self.set_auth(format!("Bearer {tok}"));
                Ok(())
            }
            other => Err(err(format!("unsupported authentication scheme {other:?}"))),
        }
    }

    /// Sends a request, answering one authentication challenge.
    fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        repo: &str,
    ) -> Result<Response, OciError> {
        let push = !matches!(method, reqwest::Method::GET | reqwest::Method::HEAD);
        let mut answered = false;
        loop {
            let mut req = self
                .http
                .request(method.clone(), url)
                .headers(headers.clone());
            if let Some(a) = self.cached_auth() {
                req = req.header(AUTHORIZATION, a);
            }
            if let Some(b) = body {
                req = req.body(b.to_vec());
            }
            let resp = req.send().map_err(|e| OciError::Http {
                url: url.to_owned(),
                source: e,
            })?;
            if resp.status() != StatusCode::UNAUTHORIZED || answered {
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| OciError::Auth {
                    registry: self.host.clone(),
                    why: format!("{url} answered 401 without a challenge"),
                })?;
            self.authenticate(&challenge, repo, push)?;
            answered = true;
        }
    }

    fn fail(method: &str, url: &str, resp: Response) -> OciError {
        let status = resp.status();
        let body = resp.text().unwrap_or_default();
        OciError::Status {
            method: method.to_owned(),
            url: url.to_owned(),
            status: status.as_u16(),
            body: body.chars().take(500).collect(),
        }
    }

    fn read_limited(url: &str, resp: Response) -> Result<Vec<u8>, OciError> {
        if resp.content_length().is_some_and(|l| l > MAX_FETCH) {
            return Err(OciError::Format(format!(
                "{url}: larger than {MAX_FETCH} bytes"
            )));
        }
        let b = resp.bytes().map_err(|e| OciError::Http {
            url: url.to_owned(),
            source: e,
        })?;
        if b.len() as u64 > MAX_FETCH {
            return Err(OciError::Format(format!(
                "{url}: larger than {MAX_FETCH} bytes"
            )));
        }
        Ok(b.to_vec())
    }

    /// Fetches a manifest by tag or digest; `None` if the registry does not have it. A manifest
    /// fetched by digest must hash to that digest.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Result<Option<Fetched>, OciError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let mut h = HeaderMap::new();
        let accept = [
            OCI_MANIFEST,
            OCI_INDEX,
            DOCKER_MANIFEST,
            DOCKER_MANIFEST_LIST,
        ]
        .join(", ");
        h.insert(
            ACCEPT,
            accept
                .parse()
                .map_err(|_| OciError::Format("accept header".into()))?,
        );
        let resp = self.send(reqwest::Method::GET, &url, &h, None, repo)?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(Self::fail("GET", &url, resp));
        }
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = Self::read_limited(&url, resp)?;
        let digest = digest_of(&bytes);
        if reference.starts_with("sha256:") && digest != reference {
            return Err(OciError::DigestMismatch {
                what: format!("manifest {repo}@{reference}"),
                expected: reference.to_owned(),
                actual: digest,
            });
        }
        // The body's own mediaType wins over a registry's generic Content-Type.
        let media_type = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or(ct);
        Ok(Some(Fetched {
            bytes,
            media_type,
            digest,
        }))
    }

    /// Pushes a manifest under a tag or its digest; returns its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, OciError> {
        crate::progress::status(&format!("Pushing manifest {repo}:{reference}"));
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            media_type
                .parse()
                .map_err(|_| OciError::Format(format!("media type {media_type:?}")))?,
        );
        let resp = self.send(reqwest::Method::PUT, &url, &h, Some(bytes), repo)?;
        if !resp.status().is_success() {
            return Err(Self::fail("PUT", &url, resp));
        }
        Ok(digest_of(bytes))
    }

    /// Fetches a blob and checks its digest.
    pub fn get_blob(&self, repo: &str, digest: &str) -> Result<Vec<u8>, OciError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let resp = self.send(reqwest::Method::GET, &url, &HeaderMap::new(), None, repo)?;
        if !resp.status().is_success() {
            return Err(Self::fail("GET", &url, resp));
        }
        let bytes = Self::read_limited(&url, resp)?;
        let actual = digest_of(&bytes);
        if actual != digest {
            return Err(OciError::DigestMismatch {
                what: format!("blob {repo}@{digest}"),
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Uploads a blob (monolithic POST + PUT) unless the registry already has it.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> Result<String, OciError> {
        let digest = digest_of(bytes);
        crate::progress::status(&format!(
            "Pushing blob {digest} ({} bytes) to {repo}",
            bytes.len()
        ));
        let head = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let resp = self.send(reqwest::Method::HEAD, &head, &HeaderMap::new(), None, repo)?;
        if resp.status().is_success() {
            return Ok(digest);
        }
        let start = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let resp = self.send(
            reqwest::Method::POST,
            &start,
            &HeaderMap::new(),
            Some(&[]),
            repo,
        )?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Self::fail("POST", &start, resp));
        }
        let loc = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| OciError::Format(format!("POST {start}: no Location for the upload")))?;
        let loc = if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_owned()
        } else {
            format!("{}{loc}", self.base)
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = format!("{loc}{sep}digest={digest}");
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            "application/octet-stream"
                .parse()
                .map_err(|_| OciError::Format("content type".into()))?,
        );
        let resp = self.send(reqwest::Method::PUT, &put, &h, Some(bytes), repo)?;
        if resp.status() != StatusCode::CREATED {
            return Err(Self::fail("PUT", &put, resp));
        }
        Ok(digest)
    }

    /// Manifests referring to `digest` (OCI 1.1 referrers API); `None` where the registry has no
    /// such API (it answers 404).
    pub fn referrers(
        &self,
        repo: &str,
        digest: &str,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Descriptor>>, OciError> {
        let mut url = format!("{}/v2/{repo}/referrers/{digest}", self.base);
        if let Some(t) = artifact_type {
            url.push_str(&format!("?artifactType={}", t.replace('+', "%2B")));
        }
        let mut h = HeaderMap::new();
        h.insert(
            ACCEPT,
            OCI_INDEX
                .parse()
                .map_err(|_| OciError::Format("accept header".into()))?,
        );
        let resp = self.send(reqwest::Method::GET, &url, &h, None, repo)?;
        if resp.status() == StatusCode::NOT_FOUND || resp.status() == StatusCode::METHOD_NOT_ALLOWED
        {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(Self::fail("GET", &url, resp));
        }
        let is_index = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with(OCI_INDEX));
        let bytes = Self::read_limited(&url, resp)?;
        let index: Index = match serde_json::from_slice(&bytes) {
            Ok(i) => i,
            // Some registries answer 200 with an HTML or error page for unknown routes.
            Err(_) if !is_index => return Ok(None),
            Err(e) => return Err(OciError::Format(format!("{url}: not an image index: {e}"))),
        };
        let wanted =
            |d: &Descriptor| artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t));
        Ok(Some(index.manifests.into_iter().filter(wanted).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(
            p.get("realm").map(String::as_str),
            Some("https://auth.example/token")
        );
        assert_eq!(
            p.get("service").map(String::as_str),
            Some("registry.example")
        );
        assert_eq!(
            p.get("scope").map(String::as_str),
            Some("repository:a/b:pull")
        );
        let (s, p) = parse_challenge("Basic realm=Registry");
        assert_eq!(
            (s.as_str(), p.get("realm").map(String::as_str)),
            ("basic", Some("Registry"))
        );
    }

    #[test]
    fn manifest_round_trips_with_annotations() {
        let json = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a","digest":"sha256:00","size":2},"layers":[{"mediaType":"b","digest":"sha256:11","size":3,"annotations":{"k":"v"}}]}"#;
        let m: Manifest = serde_json::from_slice(json).unwrap();
        assert_eq!(m.layers[0].annotations.as_ref().unwrap()["k"], "v");
        assert_eq!(serde_json::to_vec(&m).unwrap(), json.to_vec());
    }
}
