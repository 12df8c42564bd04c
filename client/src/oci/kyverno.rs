//! A Kyverno `ClusterPolicy` whose `verifyImages` keyless attestor trusts this Sigil instance:
//! its CA roots, its Rekor URL and key, and its CT log key.

use serde_json::{Map, Value, json};

use sigil_core::certs::pem_encode;
use sigil_core::trust::TrustedRoot;

use super::error::OciError;
use crate::verify::StringMatcher;

/// What the policy admits.
#[derive(Clone, Debug)]
pub struct KyvernoOptions {
    /// `metadata.name`.
    pub name: String,
    /// `imageReferences` patterns, e.g. `registry.example/team/*`.
    pub images: Vec<String>,
    /// Certificate identity (`subject` or `subjectRegExp`).
    pub subject: StringMatcher,
    /// OIDC issuer (`issuer` or `issuerRegExp`).
    pub issuer: StringMatcher,
    /// `Enforce` or `Audit`.
    pub action: String,
    /// Rekor URL override (default: the trusted root's log).
    pub rekor_url: Option<String>,
    /// The Rekor v1 log's key (SPKI DER) as the log serves it, to pick it among the root's logs.
    pub rekor_key_spki: Option<Vec<u8>>,
}

/// The CA roots (self-signed ends of each CA chain), the Rekor URL and key, and the CT log key.
pub struct InstanceKeys {
    pub roots_pem: String,
    pub rekor_url: String,
    pub rekor_pem: String,
    pub ctlog_pem: Option<String>,
}

/// Reads the keys a keyless attestor needs from a trusted root. The Rekor v1 key is
/// `rekor_spki` (as the log serves it at `/api/v1/log/publicKey`) when given, which must be one
/// of the trusted root's logs; else the first log valid now (Sigil lists the v1 log first, a
/// Rekor v2 log after it under the same URL).
pub fn instance_keys(
    root: &TrustedRoot,
    rekor_spki: Option<&[u8]>,
    now: i64,
) -> Result<InstanceKeys, OciError> {
    let mut roots = String::new();
    for ca in &root.certificate_authorities {
        if let Some(c) = ca.cert_chain.certificates.last() {
            let pem = pem_encode("CERTIFICATE", &c.raw_bytes);
            if !roots.contains(&pem) {
                roots.push_str(&pem);
            }
        }
    }
    if roots.is_empty() {
        return Err(OciError::Format(
            "the trusted root lists no certificate authorities".into(),
        ));
    }
    let tlog = match rekor_spki {
        Some(spki) => root
            .tlogs
            .iter()
            .find(|l| l.public_key.raw_bytes == spki)
            .ok_or_else(|| {
                OciError::Format(
                    "the log's public key is not one of the trusted root's transparency logs"
                        .into(),
                )
            })?,
        None => root
            .tlogs
            .iter()
            .find(|l| l.public_key.valid_at(now))
            .ok_or_else(|| {
                OciError::Format("the trusted root lists no transparency log valid now".into())
            })?,
    };
    let ctlog = root.ctlogs.iter().find(|l| l.public_key.valid_at(now));
    Ok(InstanceKeys {
        roots_pem: roots,
        rekor_url: tlog.base_url.clone(),
        rekor_pem: pem_encode("PUBLIC KEY", &tlog.public_key.raw_bytes),
        ctlog_pem: ctlog.map(|c| pem_encode("PUBLIC KEY", &c.public_key.raw_bytes)),
    })
}

/// The ClusterPolicy as a JSON value (what `--output json` prints; Kubernetes takes either form).
pub fn cluster_policy_value(
    root: &TrustedRoot,
    opts: &KyvernoOptions,
    now: i64,
) -> Result<Value, OciError> {
    let keys = instance_keys(root, opts.rekor_key_spki.as_deref(), now)?;
    if opts.images.is_empty() {
        return Err(OciError::Format(
            "at least one image reference pattern is needed".into(),
        ));
    }
    let mut keyless = Map::new();
    matcher(&mut keyless, "subject", "subjectRegExp", &opts.subject);
    matcher(&mut keyless, "issuer", "issuerRegExp", &opts.issuer);
    keyless.insert("roots".into(), keys.roots_pem.trim_end().into());
    keyless.insert(
        "rekor".into(),
        json!({
            "url": opts.rekor_url.as_deref().unwrap_or(&keys.rekor_url),
            "pubkey": keys.rekor_pem.trim_end(),
            "ignoreTlog": false,
        }),
    );
    keyless.insert(
        "ctlog".into(),
        match &keys.ctlog_pem {
            Some(ct) => json!({"pubkey": ct.trim_end(), "ignoreSCT": false}),
            None => json!({"ignoreSCT": true}),
        },
    );
    Ok(json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": opts.name},
        "spec": {
            "validationFailureAction": opts.action,
            "webhookTimeoutSeconds": 30,
            "rules": [{
                "name": "verify-image-signature",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [{
                    "imageReferences": opts.images,
                    "mutateDigest": true,
                    "verifyDigest": true,
                    "required": true,
                    "attestors": [{"count": 1, "entries": [{"keyless": keyless}]}],
                }],
            }],
        },
    }))
}

fn matcher(out: &mut Map<String, Value>, plain: &str, re: &str, m: &StringMatcher) {
    match m {
        StringMatcher::Exact(v) => out.insert(plain.into(), v.as_str().into()),
        StringMatcher::Regex(r) => out.insert(re.into(), r.as_str().into()),
    };
}

/// The ClusterPolicy as YAML, with a comment saying where it came from.
pub fn cluster_policy(
    root: &TrustedRoot,
    opts: &KyvernoOptions,
    now: i64,
) -> Result<String, OciError> {
    let v = cluster_policy_value(root, opts, now)?;
    let mut y = String::from(
        "# Admits images signed keylessly through this Sigil instance (generated by `sigil policy kyverno`).\n",
    );
    yaml::write(&mut y, &v, 0);
    Ok(y)
}

/// Just enough YAML for a JSON value: block mappings and sequences, strings double-quoted
/// (JSON's escapes are YAML's) or, when they span lines, as literal blocks (the PEM keys).
mod yaml {
    use std::fmt::Write;

    use serde_json::Value;

    pub fn write(out: &mut String, v: &Value, indent: usize) {
        let pad = " ".repeat(indent);
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let _ = write!(out, "{pad}{k}:");
                    value_after_key(out, v, indent);
                }
            }
            Value::Array(a) => {
                for v in a {
                    let _ = write!(out, "{pad}-");
                    match v {
                        // A mapping in a sequence starts on the dash's line.
                        Value::Object(m) if !m.is_empty() => {
                            let mut first = true;
                            for (k, v) in m {
                                if first {
                                    let _ = write!(out, " {k}:");
                                    first = false;
                                } else {
                                    let _ = write!(out, "{pad}  {k}:");
                                }
                                value_after_key(out, v, indent + 2);
                            }
                        }
                        _ => value_after_key(out, v, indent),
                    }
                }
            }
            _ => {
                let _ = writeln!(out, "{pad}{}", scalar(v));
            }
        }
    }

    fn value_after_key(out: &mut String, v: &Value, indent: usize) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                write(out, v, indent + 2);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                write(out, v, indent + 2);
            }
            Value::String(s) if s.contains('\n') => {
                out.push_str(" |-\n");
                let pad = " ".repeat(indent + 2);
                for line in s.lines() {
                    let _ = writeln!(out, "{pad}{line}");
                }
            }
            _ => {
                let _ = writeln!(out, " {}", scalar(v));
            }
        }
    }

    fn scalar(v: &Value) -> String {
        match v {
            Value::Object(_) => "{}".into(),
            Value::Array(_) => "[]".into(),
            other => other.to_string(),
        }
    }
}
