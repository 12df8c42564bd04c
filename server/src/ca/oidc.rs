//! OpenID Connect ID-token verification for the configured issuers: discovery, a JWKS cache
//! (refreshed on an unknown `kid`, rate-limited), signature, `iss`, `aud`, `exp`/`nbf`/`iat`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::config::IssuerConfig;
use super::error::CaError;

/// Largest token accepted (real ID tokens are a few KiB).
const MAX_TOKEN_BYTES: usize = 32 * 1024;
/// Largest discovery document or JWKS accepted.
const MAX_DOC_BYTES: usize = 1024 * 1024;
/// Keys are re-fetched after this long even without an unknown `kid`.
const JWKS_TTL: Duration = Duration::from_secs(15 * 60);
/// Concrete issuers cached (meta-issuers can match many URLs).
const MAX_CACHED_ISSUERS: usize = 1024;

/// A token whose signature and standard claims verified.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub issuer: String,
    pub subject: String,
    pub claims: Map<String, Value>,
    pub config: Arc<IssuerConfig>,
}

/// `*` in a meta-issuer matches `[-_a-zA-Z0-9]+`; the rest matches literally, whole string.
pub fn meta_issuer_matches(pattern: &str, url: &str) -> bool {
    fn label_char(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
    }
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => {
                // one or more label characters, then the rest of the pattern
                let mut i = 0;
                while i < s.len() && s.get(i).copied().is_some_and(label_char) {
                    i += 1;
                    if go(rest, s.get(i..).unwrap_or_default()) {
                        return true;
                    }
                }
                false
            }
            Some((c, rest)) => match s.split_first() {
                Some((d, srest)) if d == c => go(rest, srest),
                _ => false,
            },
        }
    }
    go(pattern.as_bytes(), url.as_bytes())
}

struct JwkKey {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

struct KeySet {
    keys: Vec<Arc<JwkKey>>,
    fetched: Instant,
}

#[derive(Default)]
struct IssuerState {
    keys: Option<Arc<KeySet>>,
    last_fetch_attempt: Option<Instant>,
}

/// Verifies ID tokens against the configured issuers.
pub struct OidcVerifier {
    issuers: Vec<Arc<IssuerConfig>>,
    http: reqwest::Client,
    states: RwLock<HashMap<String, Arc<tokio::sync::Mutex<IssuerState>>>>,
    /// Fast path: the current key set per issuer, read without awaiting.
    keysets: RwLock<HashMap<String, Arc<KeySet>>>,
    skew: u64,
    refresh_min: Duration,
    fetches: Mutex<u64>,
}

impl OidcVerifier {
    pub fn new(
        issuers: Vec<IssuerConfig>,
        skew_secs: u64,
        refresh_min_secs: u64,
    ) -> Result<Self, CaError> {
        // jsonwebtoken needs a process-wide provider; a second install is harmless.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                // Follow redirects only within the host first asked (no fetching elsewhere).
                let same_host = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.host_str() == attempt.url().host_str());
                if same_host && attempt.previous().len() < 5 {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .build()
            .map_err(|e| CaError::Config(format!("OIDC HTTP client: {e}")))?;
        Ok(Self {
            issuers: issuers.into_iter().map(Arc::new).collect(),
            http,
            states: RwLock::new(HashMap::new()),
            keysets: RwLock::new(HashMap::new()),
            skew: skew_secs,
            refresh_min: Duration::from_secs(refresh_min_secs),
            fetches: Mutex::new(0),
        })
    }

    pub fn issuers(&self) -> &[Arc<IssuerConfig>] {
        &self.issuers
    }

    /// How many discovery + JWKS fetches were made (for tests of the cache).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.lock().map(|g| *g).unwrap_or(0)
    }

    /// The configuration that accepts tokens from `iss`: an exact URL first, then a pattern.
    pub fn issuer_config(&self, iss: &str) -> Option<Arc<IssuerConfig>> {
        self.issuers
            .iter()
            .find(|c| c.issuer_url.as_deref() == Some(iss))
            .or_else(|| {
                self.issuers.iter().find(|c| {
                    c.wildcard_issuer_url
                        .as_deref()
                        .is_some_and(|p| meta_issuer_matches(p, iss))
                })
            })
            .cloned()
    }

    /// Verifies `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, CaError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(CaError::MissingToken(
                "no identity token: send it as `Authorization: Bearer <token>` or credentials.oidcIdentityToken".into(),
            ));
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(CaError::token(format!(
                "identity token is larger than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CaError::token(
                "identity token is not a JWT (expected three base64url parts separated by '.')",
            ));
        };
        let header = decode_part(h, "header")?;
        let payload = decode_part(p, "payload")?;
        let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let alg = match alg_name {
            "" => return Err(CaError::token("identity token header has no `alg`")),
            a if a.eq_ignore_ascii_case("none") => {
                return Err(CaError::token("unsigned identity tokens (`alg: none`) are not accepted"));
            }
            a if a.starts_with("HS") => {
                return Err(CaError::token(format!(
                    "identity token uses {a}: HMAC algorithms are not accepted, the issuer must sign with an asymmetric key"
                )));
            }
            a => a.parse::<Algorithm>().map_err(|_| {
                CaError::token(format!(
                    "identity token algorithm {a:?} is not supported (RS256/384/512, PS256/384/512, ES256, ES384, EdDSA)"
                ))
            })?,
        };
        let iss = payload
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| CaError::token("identity token has no `iss` claim"))?
            .to_string();
        let config = self.issuer_config(&iss).ok_or_else(|| {
            CaError::token(format!(
                "identity token issuer {iss:?} is not trusted by this CA (see GET /api/v2/configuration for the accepted issuers)"
            ))
        })?;
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string);

        let mut keyset = self.keyset(&iss, false).await?;
        let mut candidates = matching_keys(&keyset, kid.as_deref(), alg);
        if candidates.is_empty() {
            // A rotated key: fetch the JWKS again (rate-limited) before refusing.
            keyset = self.keyset(&iss, true).await?;
            candidates = matching_keys(&keyset, kid.as_deref(), alg);
        }
        if candidates.is_empty() {
            return Err(CaError::token(match kid {
                Some(k) => format!(
                    "identity token key id (kid) {k:?} is not in the JWKS of {iss} for {alg:?}"
                ),
                None => format!("no key in the JWKS of {iss} can verify {alg:?} signatures"),
            }));
        }

        let mut validation = Validation::new(alg);
        validation.leeway = self.skew;
        validation.validate_nbf = true;
        validation.set_audience(&[config.client_id.as_str()]);
        validation.set_issuer(&[iss.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);

        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return self.finish(data.claims, iss, config),
                Err(e) => {
                    let signature_failure = matches!(
                        e.kind(),
                        ErrorKind::InvalidSignature
                            | ErrorKind::InvalidEcdsaKey
                            | ErrorKind::InvalidRsaKey(_)
                            | ErrorKind::InvalidEddsaKey
                    );
                    last = Some(e);
                    if !signature_failure {
                        break;
                    }
                }
            }
        }
        Err(match last {
            Some(e) => token_error(e, &iss, &config),
            None => CaError::token("identity token signature does not verify"),
        })
    }

    fn finish(
        &self,
        claims: Map<String, Value>,
        iss: String,
        config: Arc<IssuerConfig>,
    ) -> Result<VerifiedToken, CaError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let iat = claims.get("iat").and_then(Value::as_f64).unwrap_or(0.0);
        if iat > (now + self.skew) as f64 {
            return Err(CaError::token(
                "identity token was issued in the future (`iat`): check the clocks of the issuer and the CA",
            ));
        }
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(CaError::token(
                    "identity token has an empty or non-string `sub` claim",
                ));
            }
        };
        Ok(VerifiedToken {
            issuer: iss,
            subject,
            claims,
            config,
        })
    }

    /// The issuer's key set: cached, or fetched (discovery, then JWKS). With `refresh`, fetch
    /// again unless the last fetch was less than `refresh_min` ago.
    async fn keyset(&self, iss: &str, refresh: bool) -> Result<Arc<KeySet>, CaError> {
        if !refresh
            && let Some(ks) = self.keysets.read().ok().and_then(|m| m.get(iss).cloned())
            && ks.fetched.elapsed() < JWKS_TTL
        {
            return Ok(ks);
        }
        let state = {
            let mut states = self
                .states
                .write()
                .map_err(|_| CaError::internal("OIDC state lock poisoned"))?;
            if states.len() >= MAX_CACHED_ISSUERS && !states.contains_key(iss) {
                states.clear();
                if let Ok(mut k) = self.keysets.write() {
                    k.clear();
                }
            }
            states.entry(iss.to_string()).or_default().clone()
        };
        let mut st = state.lock().await;
        // Another request may have fetched while this one waited.
        if let (Some(ks), Some(at)) = (&st.keys, st.last_fetch_attempt) {
            let fresh_enough = if refresh {
                at.elapsed() < self.refresh_min
            } else {
                ks.fetched.elapsed() < JWKS_TTL
            };
            if fresh_enough {
                return Ok(ks.clone());
            }
        }
        st.last_fetch_attempt = Some(Instant::now());
        match self.fetch_keys(iss).await {
            Ok(ks) => {
                let ks = Arc::new(ks);
                st.keys = Some(ks.clone());
                if let Ok(mut m) = self.keysets.write() {
                    m.insert(iss.to_string(), ks.clone());
                }
                Ok(ks)
            }
            Err(e) => match &st.keys {
                // Keep serving known keys when the provider is briefly unreachable.
                Some(old) => {
                    tracing::warn!(issuer = %iss, error = %e, "JWKS refresh failed; using cached keys");
                    Ok(old.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn fetch_keys(&self, iss: &str) -> Result<KeySet, CaError> {
        if let Ok(mut n) = self.fetches.lock() {
            *n += 1;
        }
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            iss.trim_end_matches('/')
        );
        let doc = self.get_json(&discovery_url, iss).await?;
        let doc_issuer = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
        if doc_issuer != iss {
            return Err(CaError::Unavailable(format!(
                "OIDC discovery of {iss} names issuer {doc_issuer:?}; they must be identical"
            )));
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .ok_or_else(|| {
                CaError::Unavailable(format!("OIDC discovery of {iss} has no http(s) jwks_uri"))
            })?
            .to_string();
        let jwks = self.get_json(&jwks_uri, iss).await?;
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| CaError::Unavailable(format!("JWKS of {iss} has no `keys` array")))?;
        let parsed: Vec<Arc<JwkKey>> = keys.iter().filter_map(parse_jwk).map(Arc::new).collect();
        if parsed.is_empty() {
            return Err(CaError::Unavailable(format!(
                "JWKS of {iss} has no usable signature key (RSA, EC P-256/P-384, Ed25519)"
            )));
        }
        Ok(KeySet {
            keys: parsed,
            fetched: Instant::now(),
        })
    }

    async fn get_json(&self, url: &str, iss: &str) -> Result<Value, CaError> {
        let unavailable = |what: String| CaError::Unavailable(format!("OIDC issuer {iss}: {what}"));
        let mut resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| unavailable(format!("fetching {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("{url} answered {}", resp.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| unavailable(format!("reading {url}: {e}")))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOC_BYTES {
                return Err(unavailable(format!(
                    "{url} is larger than {MAX_DOC_BYTES} bytes"
                )));
            }
        }
        serde_json::from_slice(&body).map_err(|e| unavailable(format!("{url} is not JSON: {e}")))
    }
}

fn decode_part(part: &str, what: &str) -> Result<Map<String, Value>, CaError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| CaError::token(format!("identity token {what} is not base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(CaError::token(format!(
            "identity token {what} is not a JSON object"
        ))),
    }
}

fn matching_keys(ks: &KeySet, kid: Option<&str>, alg: Algorithm) -> Vec<Arc<JwkKey>> {
    ks.keys
        .iter()
        .filter(|k| k.algorithms.contains(&alg))
        .filter(|k| match kid {
            Some(kid) => k.kid.as_deref() == Some(kid),
            None => true,
        })
        .cloned()
        .collect()
}

/// A JWK usable for signatures, or `None` (encryption keys, symmetric keys, unknown types).
fn parse_jwk(v: &Value) -> Option<JwkKey> {
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    if s("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let (key, mut algorithms) = match s("kty")? {
        "RSA" => (
            DecodingKey::from_rsa_components(s("n")?, s("e")?).ok()?,
            vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
        ),
        "EC" => {
            let alg = match s("crv")? {
                "P-256" => Algorithm::ES256,
                "P-384" => Algorithm::ES384,
                _ => return None,
            };
            (
                DecodingKey::from_ec_components(s("x")?, s("y")?).ok()?,
                vec![alg],
            )
        }
        "OKP" if s("crv")? == "Ed25519" => (
            DecodingKey::from_ed_components(s("x")?).ok()?,
            vec![Algorithm::EdDSA],
        ),
        _ => return None,
    };
    if let Some(alg) = s("alg") {
        let alg: Algorithm = alg.parse().ok()?;
        algorithms.retain(|a| *a == alg);
    }
    Some(JwkKey {
        kid: s("kid").map(str::to_string),
        key,
        algorithms,
    })
}

fn token_error(e: jsonwebtoken::errors::Error, iss: &str, cfg: &IssuerConfig) -> CaError {
    CaError::token(match e.kind() {
        ErrorKind::ExpiredSignature => {
            "identity token has expired (`exp` is in the past): get a fresh token".to_string()
        }
        ErrorKind::ImmatureSignature => {
            "identity token is not yet valid (`nbf` is in the future)".to_string()
        }
        ErrorKind::InvalidAudience => format!(
            "identity token audience (`aud`) must be {:?} for issuer {iss}",
            cfg.client_id
        ),
        ErrorKind::InvalidIssuer => format!("identity token issuer does not match {iss}"),
        ErrorKind::MissingRequiredClaim(c) => format!("identity token is missing the `{c}` claim"),
        ErrorKind::InvalidClaimFormat(c) => {
            format!("identity token claim `{c}` has the wrong type")
        }
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_) => format!(
            "identity token signature does not verify with the keys of {iss} (tampered or signed by another key)"
        ),
        ErrorKind::InvalidAlgorithm => {
            "identity token algorithm does not match the issuer's key".to_string()
        }
        ErrorKind::Json(_) | ErrorKind::Base64(_) | ErrorKind::InvalidToken => {
            "identity token is malformed".to_string()
        }
        other => format!("identity token rejected: {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_issuer_patterns() {
        let p = "https://oidc.eks.*.amazonaws.com/id/*";
        assert!(meta_issuer_matches(
            p,
            "https://oidc.eks.us-west-2.amazonaws.com/id/B02C93B6A2D30341AD01E1B6D48164CB"
        ));
        assert!(!meta_issuer_matches(p, "https://evil.com/x.amazonaws.com"));
        assert!(!meta_issuer_matches(
            p,
            "https://oidc.eks.a.b.amazonaws.com/id/x"
        ));
        assert!(!meta_issuer_matches(
            p,
            "https://oidc.eks..amazonaws.com/id/x"
        ));
        assert!(!meta_issuer_matches(
            p,
            "https://oidc.eks.us.amazonaws.com/id/x/extra"
        ));
        assert!(!meta_issuer_matches(
            p,
            "https://oidc.eks.us.amazonaws.com/id/"
        ));
        assert!(!meta_issuer_matches(
            p,
            "https://oidc.eks.us.amazonaws.com.evil.com/id/x"
        ));
        assert!(meta_issuer_matches(
            "https://*.example.com",
            "https://a-b_c.example.com"
        ));
        assert!(!meta_issuer_matches(
            "https://*.example.com",
            "https://evil.com/.example.com"
        ));
        assert!(!meta_issuer_matches(
            "https://*.example.com",
            "https://a.example.com.evil"
        ));
        assert!(meta_issuer_matches(
            "https://exact.example",
            "https://exact.example"
        ));
    }
}
