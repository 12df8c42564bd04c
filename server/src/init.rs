//! First-run setup of a data dir (keys, CA, config) and what `up` prints and writes for clients.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use sigil_core::crypto::{KeyAlgorithm, SigningKey};

use crate::config::{Config, resolve};
use crate::trust::{TrustInputs, pretty};

const CONFIG_FILE: &str = "sigil.toml";

fn write_new(path: &Path, contents: &[u8], private: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = private;
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

pub fn ensure_key(path: &Path) -> anyhow::Result<SigningKey> {
    if path.exists() {
        return crate::keyfile::read_key(path);
    }
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256)?;
    write_new(path, key.to_pkcs8_pem()?.as_bytes(), true)?;
    Ok(key)
}

/// Create the data dir, keys, CA and config unless present. Returns whether anything was created.
/// `dev` turns the development OIDC issuer on in a new config (what `up` wants).
pub fn init(data_dir: &Path, public_url: &str, dev: bool) -> anyhow::Result<bool> {
    std::fs::create_dir_all(data_dir.join("keys")).with_context(|| {
        format!(
            "cannot create data dir {} (is it writable?)",
            data_dir.display()
        )
    })?;
    let config_path = data_dir.join(CONFIG_FILE);
    let fresh = !config_path.exists();
    let cfg = if fresh {
        // Defaults plus SIGIL_* environment (e.g. a CA key passphrase variable).
        let mut cfg = Config::load(None)?;
        cfg.server.public_url = public_url.trim_end_matches('/').to_string();
        if let Some(hostport) = cfg.server.public_url.split("://").nth(1) {
            cfg.server.listen = hostport.to_string();
        }
        cfg.dev_oidc.enabled = dev;
        cfg.validate()?;
        cfg
    } else {
        Config::load(Some(&config_path))?
    };
    ensure_key(&resolve(data_dir, &cfg.log.key))?;
    let ct = ensure_key(&resolve(data_dir, &cfg.ct.key))?;
    let ct_pub = resolve(data_dir, &cfg.ca.ct_log_public_key);
    if !ct_pub.exists() {
        write_new(&ct_pub, ct.public_key().to_pem().as_bytes(), false)?;
    }
    ensure_key(&resolve(data_dir, &cfg.dev_oidc.key))?;
    crate::ca::setup::ensure_ca(&cfg.ca, data_dir)?;
    ensure_key(&resolve(data_dir, &cfg.rekor_v2.key))?;
    crate::tsa::setup::ensure_tsa(
        &resolve(data_dir, &cfg.tsa.key),
        &resolve(data_dir, &cfg.tsa.cert_chain),
        &resolve(data_dir, &cfg.tsa.root_key),
    )?;
    if cfg.tuf.enabled {
        crate::tuf::ensure(&cfg, data_dir)?;
    }
    if fresh {
        write_new(&config_path, config_text(&cfg)?.as_bytes(), false)?;
    }
    Ok(fresh)
}

fn config_text(cfg: &Config) -> anyhow::Result<String> {
    let body = toml::to_string_pretty(cfg).context("serialising the config")?;
    Ok(format!(
        "# Sigil configuration. Paths are relative to this directory. Every key can also be set\n\
         # by environment: SIGIL_<SECTION>_<KEY>, e.g. SIGIL_SERVER_LISTEN=0.0.0.0:3000,\n\
         # SIGIL_DATABASE_URL=postgres://user@host/db. See config/sigil.toml for documentation.\n\n{body}"
    ))
}

/// Write the trust files under `<data-dir>/trust/` for air-gapped copying.
pub fn write_trust_files(trust: &TrustInputs, data_dir: &Path) -> anyhow::Result<()> {
    let dir = data_dir.join("trust");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, value) in [
        ("trusted_root.json", trust.trusted_root()),
        ("signing_config.json", trust.signing_config()),
        ("client_trust_config.json", trust.client_trust_config()),
        ("witnesses.json", trust.witnesses()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, pretty(&value))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The trust inputs from files alone (no database), for `trust export`.
pub fn trust_inputs(cfg: &Config, data_dir: &Path) -> anyhow::Result<TrustInputs> {
    let ca_chain = [
        crate::keyfile::read_certs(&resolve(data_dir, &cfg.ca.intermediate_cert))?,
        crate::keyfile::read_certs(&resolve(data_dir, &cfg.ca.root_cert))?,
    ]
    .concat();
    Ok(TrustInputs {
        base_url: cfg.server.public_url.clone(),
        log_url: cfg.trust_log_url(),
        ct_url: cfg.trust_ct_url(),
        ca_url: cfg.trust_ca_url(),
        valid_from: "2020-01-01T00:00:00Z".into(),
        log_key: Some(crate::keyfile::read_key(&resolve(data_dir, &cfg.log.key))?.public_key()),
        ct_key: Some(crate::keyfile::read_public_key(&resolve(
            data_dir,
            &cfg.ca.ct_log_public_key,
        ))?),
        log_v2_key: if cfg.rekor_v2.enabled {
            Some(crate::keyfile::read_key(&resolve(data_dir, &cfg.rekor_v2.key))?.public_key())
        } else {
            None
        },
        ca_chain,
        tsa_chain: if cfg.tsa.enabled {
            crate::keyfile::read_certs(&resolve(data_dir, &cfg.tsa.cert_chain))?
        } else {
            Vec::new()
        },
        tsa_url: cfg.trust_tsa_url(),
        oidc_url: cfg.trust_oidc_url(),
        operator: "sigil".into(),
        history: crate::trust_history::History::load(data_dir)?,
        witnessing: Vec::new(),
    })
}

/// `trust export`: the trust files and the PEM inputs cosign and Kyverno take.
pub fn export(cfg: &Config, data_dir: &Path, only: Option<&str>) -> anyhow::Result<String> {
    let t = trust_inputs(cfg, data_dir)?;
    let root_pem: String = resolve(data_dir, &cfg.ca.root_cert)
        .to_str()
        .map(|_| ())
        .and_then(|()| std::fs::read_to_string(resolve(data_dir, &cfg.ca.root_cert)).ok())
        .unwrap_or_default();
    let rekor_pem = t.log_key.as_ref().map(|k| k.to_pem()).unwrap_or_default();
    let ct_pem = t.ct_key.as_ref().map(|k| k.to_pem()).unwrap_or_default();
    let text = |v| String::from_utf8_lossy(&pretty(&v)).into_owned();
    Ok(match only {
        Some("trusted-root") => text(t.trusted_root()),
        Some("signing-config") => text(t.signing_config()),
        Some("client-trust-config") => text(t.client_trust_config()),
        Some("fulcio-root") => root_pem,
        Some("rekor-key") => rekor_pem,
        Some("ctlog-key") => ct_pem,
        Some(other) => anyhow::bail!(
            "--only {other:?}: use trusted-root, signing-config, client-trust-config, fulcio-root, rekor-key or ctlog-key"
        ),
        None => {
            let mut s = String::new();
            let _ = writeln!(s, "# trusted_root.json\n{}", text(t.trusted_root()));
            let _ = writeln!(s, "# signing_config.json\n{}", text(t.signing_config()));
            let _ = writeln!(
                s,
                "# CA root (cosign --certificate-chain / Kyverno roots)\n{root_pem}"
            );
            let _ = writeln!(
                s,
                "# Rekor public key (SIGSTORE_REKOR_PUBLIC_KEY / Kyverno rekor.pubkey)\n{rekor_pem}"
            );
            let _ = writeln!(
                s,
                "# CT log public key (SIGSTORE_CT_LOG_PUBLIC_KEY_FILE / Kyverno ctlog.pubkey)\n{ct_pem}"
            );
            s
        }
    })
}

/// The file the banner's commands sign (created by its first command).
const DEMO_FILE: &str = "sigil-demo.txt";

/// How the banner names the `sigil` client: the binary built beside this server, by its absolute
/// path, so the commands work as pasted; else `sigil` from PATH.
pub fn client_command() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("sigil")))
        .filter(|p| p.is_file())
        .map(|p| shell_word(&p.display().to_string()))
        .unwrap_or_else(|| "sigil".into())
}

/// A word as a POSIX shell reads it back: quoted only when it must be.
fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// What `up` prints: URLs, the trust-root fingerprint and commands that can be pasted as they
/// are (`sigil` names the client binary, see [`client_command`]).
pub fn banner(cfg: &Config, data_dir: &Path, trust: &TrustInputs, sigil: &str) -> String {
    let url = &cfg.server.public_url;
    // Absolute: the commands are pasted in another terminal, maybe in another directory.
    let trust_dir =
        std::path::absolute(data_dir.join("trust")).unwrap_or_else(|_| data_dir.join("trust"));
    let client_trust = shell_word(
        &trust_dir
            .join("client_trust_config.json")
            .display()
            .to_string(),
    );
    let issuer = cfg.dev_issuer_url();
    let identity = &cfg.dev_oidc.subject;
    let f = DEMO_FILE;
    let mut s = String::new();
    let _ = writeln!(s, "Sigil is up: a private Sigstore at {url}");
    let _ = writeln!(s, "  transparency log (Rekor v1 API)  {url}/api/v1/log");
    let _ = writeln!(
        s,
        "  certificate authority (Fulcio)   {url}/api/v2/signingCert"
    );
    let _ = writeln!(s, "  CT log (RFC 6962)                {url}/ct/v1/get-sth");
    if cfg.rekor_v2.enabled {
        let _ = writeln!(
            s,
            "  transparency log (Rekor v2 API)  {url}/api/v2/checkpoint"
        );
    }
    if cfg.tsa.enabled {
        let _ = writeln!(
            s,
            "  timestamp authority (RFC 3161)   {url}/api/v1/timestamp"
        );
    }
    if cfg.dev_oidc.enabled {
        let _ = writeln!(
            s,
            "  dev OIDC issuer                  {issuer} (identity {identity})"
        );
    }
    let _ = writeln!(s, "  log explorer (web page)          {url}/ui/");
    let _ = writeln!(
        s,
        "  trusted root                     {url}/api/v1/trust/trusted_root.json"
    );
    let _ = writeln!(
        s,
        "  trust-root fingerprint (sha256)  {}",
        trust.fingerprint()
    );
    let _ = writeln!(
        s,
        "  files for air-gapped clients     {}",
        trust_dir.display()
    );
    if cfg.tuf.enabled {
        let tuf_dir = std::path::absolute(crate::tuf::repo_dir(cfg, data_dir))
            .unwrap_or_else(|_| crate::tuf::repo_dir(cfg, data_dir));
        let _ = writeln!(
            s,
            "  TUF repository (trust root)      {url}/tuf (bootstrap root {})",
            tuf_dir.join("1.root.json").display()
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Sign and verify a file with sigil (paste as they are, in another terminal):"
    );
    let _ = writeln!(s, "  echo 'hello from sigil' > {f}");
    let _ = writeln!(
        s,
        "  {sigil} trust init --url {url} --root-digest sha256:{}",
        trust.fingerprint()
    );
    if cfg.dev_oidc.enabled {
        let _ = writeln!(s, "  {sigil} login");
    }
    let _ = writeln!(s, "  {sigil} sign-blob {f} --bundle {f}.sigstore.json");
    let _ = writeln!(
        s,
        "  {sigil} verify-blob {f} --bundle {f}.sigstore.json --certificate-identity {identity} --certificate-oidc-issuer {issuer}"
    );
    let _ = writeln!(s, "  {sigil} log search --artifact {f}");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "With sigstore-python (`sigstore` on PATH; it needs curl and jq here):"
    );
    let _ = writeln!(
        s,
        "  TOKEN=$(curl -s -X POST {issuer}/token | jq -r .id_token)"
    );
    let _ = writeln!(
        s,
        "  sigstore --trust-config {client_trust} sign --identity-token \"$TOKEN\" --bundle {f}.python.sigstore.json {f}"
    );
    let _ = writeln!(
        s,
        "  sigstore --trust-config {client_trust} verify identity --bundle {f}.python.sigstore.json --cert-identity {identity} --cert-oidc-issuer {issuer} {f}"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("/a/b-c/sigil"), "/a/b-c/sigil");
        assert_eq!(shell_word("/my dir/sigil"), "'/my dir/sigil'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
