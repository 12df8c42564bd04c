//! Registry credentials: explicit `--registry-username/--registry-password`, else the Docker
//! config (`$DOCKER_CONFIG/config.json`, `~/.docker/config.json`: `auths`, `credHelpers`,
//! `credsStore`), else the containers auth file that podman and skopeo write.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::error::OciError;
use super::reference::DOCKER_HUB;

/// A username and password (or identity token) for one registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The keys a config file may use for a registry host.
fn config_keys(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_owned(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if registry == DOCKER_HUB {
        keys.extend([
            "https://index.docker.io/v1/".to_owned(),
            "docker.io".to_owned(),
            "registry-1.docker.io".to_owned(),
        ]);
    }
    keys
}

fn docker_config_paths() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        out.push(PathBuf::from(d).join("config.json"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        out.push(PathBuf::from(h).join(".docker").join("config.json"));
    }
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
        out.push(PathBuf::from(f));
    }
    if let Some(r) = std::env::var_os("XDG_RUNTIME_DIR") {
        out.push(PathBuf::from(r).join("containers").join("auth.json"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        out.push(
            PathBuf::from(h)
                .join(".config")
                .join("containers")
                .join("auth.json"),
        );
    }
    out
}

/// Runs `docker-credential-<helper> get` for a registry.
fn from_helper(helper: &str, registry: &str) -> Result<Option<Credentials>, OciError> {
    let program = format!("docker-credential-{helper}");
    let err = |why: String| OciError::Auth {
        registry: registry.to_owned(),
        why,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("credential helper {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(registry.as_bytes())
            .map_err(|e| err(format!("{program}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("{program}: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout);
        // Helpers say "credentials not found" for registries they do not know.
        if msg.to_lowercase().contains("not found") {
            return Ok(None);
        }
        return Err(err(format!(
            "{program} get failed: {}{}",
            msg.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| err(format!("{program}: answer is not JSON: {e}")))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let (username, password) = (s("Username"), s("Secret"));
    Ok((!password.is_empty()).then_some(Credentials { username, password }))
}

fn from_auths(config: &Value, keys: &[String]) -> Option<Credentials> {
    let auths = config.get("auths")?;
    keys.iter().find_map(|k| {
        let entry = auths.get(k)?;
        if let Some(enc) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let raw = STANDARD.decode(enc).ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (u, p) = text.split_once(':')?;
            return Some(Credentials {
                username: u.to_owned(),
                password: p.to_owned(),
            });
        }
        if let Some(tok) = entry.get("identitytoken").and_then(Value::as_str) {
            return Some(Credentials {
                username: "<token>".into(),
                password: tok.to_owned(),
            });
        }
        let u = entry.get("username").and_then(Value::as_str)?;
        let p = entry.get("password").and_then(Value::as_str)?;
        Some(Credentials {
            username: u.to_owned(),
            password: p.to_owned(),
        })
    })
}

/// Looks up credentials for `registry` in the config files; `None` means anonymous.
pub fn lookup(registry: &str) -> Result<Option<Credentials>, OciError> {
    let keys = config_keys(registry);
    for path in docker_config_paths() {
        let Ok(text) = std::fs::read(&path) else {
            continue;
        };
        let config: Value = serde_json::from_slice(&text).map_err(|e| OciError::Auth {
            registry: registry.to_owned(),
            why: format!("{} is not JSON: {e}", path.display()),
        })?;
        if let Some(helper) = keys.iter().find_map(|k| {
            config
                .pointer(&format!(
                    "/credHelpers/{}",
                    k.replace('~', "~0").replace('/', "~1")
                ))
                .and_then(Value::as_str)
        }) {
            return from_helper(helper, registry);
        }
        if let Some(c) = from_auths(&config, &keys) {
            return Ok(Some(c));
        }
        if let Some(store) = config.get("credsStore").and_then(Value::as_str)
            && let Some(c) = from_helper(store, registry)?
        {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_entries() {
        let cfg = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": STANDARD.encode("hub:pw")},
            "127.0.0.1:5000": {"username": "u", "password": "p"},
        }});
        let hub = from_auths(&cfg, &config_keys(DOCKER_HUB)).unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hub", "pw")
        );
        let local = from_auths(&cfg, &config_keys("127.0.0.1:5000")).unwrap();
        assert_eq!(local.username, "u");
        assert!(from_auths(&cfg, &config_keys("other:1")).is_none());
        assert!(
            !format!("{hub:?}").contains("pw"),
            "Debug must not print the password"
        );
    }
}
