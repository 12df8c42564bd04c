//! Issuer types: how a verified token's claims become the certificate's SAN and Sigstore
//! extensions, as Fulcio maps them (pkg/identity/* and docs/oid-info.md).

use std::collections::BTreeMap;

use der::Encode;
use der::asn1::ObjectIdentifier;
use serde_json::{Map, Value};
use sigil_core::oid;

use super::config::{CiProviderTemplates, IssuerConfig, IssuerType};
use super::error::CaError;

/// The one Subject Alternative Name of a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    /// rfc822Name
    Email(String),
    /// uniformResourceIdentifier
    Uri(String),
    /// otherName 1.3.6.1.4.1.57264.1.7 holding `user!domain` (the `username` type).
    OtherName(String),
}

impl San {
    pub fn value(&self) -> &str {
        match self {
            San::Email(s) | San::Uri(s) | San::OtherName(s) => s,
        }
    }
}

/// What a token proves: the SAN, the extensions (OID, DER value) in certificate order, and the
/// value a proof of possession must sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub san: San,
    pub extensions: Vec<(ObjectIdentifier, Vec<u8>)>,
    pub challenge: String,
}

/// Claims of a verified token.
pub struct Claims<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub map: &'a Map<String, Value>,
    pub config: &'a IssuerConfig,
}

impl Claims<'_> {
    /// A claim as a string: strings as they are, numbers and booleans in decimal / `true`.
    fn get(&self, name: &str) -> Option<String> {
        claim_string(self.map.get(name)?)
    }

    /// A claim that must be present and non-empty.
    fn req(&self, name: &str) -> Result<String, CaError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(CaError::token(format!(
                "identity token from {} ({} issuer) is missing the `{name}` claim",
                self.issuer,
                self.config.issuer_type.as_str()
            ))),
        }
    }

    fn opt(&self, name: &str) -> String {
        self.get(name).unwrap_or_default()
    }
}

fn claim_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        }),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Fulcio's certificate extensions, rendered in Fulcio's order: .1 (raw), GitHub .2–.6 (raw),
/// .8 (UTF8String), .9–.23 by OID, .24.
#[derive(Default)]
struct Extensions {
    issuer: String,
    subject: String,
    github_legacy: Vec<(ObjectIdentifier, String)>,
    values: BTreeMap<u32, (ObjectIdentifier, String)>,
}

impl Extensions {
    fn new(issuer: &str, subject: &str) -> Self {
        Self {
            issuer: issuer.to_string(),
            subject: subject.to_string(),
            ..Default::default()
        }
    }

    fn set(&mut self, oid: ObjectIdentifier, value: impl Into<String>) {
        let value = value.into();
        if value.is_empty() {
            return;
        }
        let arc = oid.arcs().last().unwrap_or(0);
        self.values.insert(arc, (oid, value));
    }

    fn render(self) -> Result<Vec<(ObjectIdentifier, Vec<u8>)>, CaError> {
        if self.issuer.is_empty() {
            return Err(CaError::token("identity token has an empty issuer"));
        }
        let utf8 = |s: &str| -> Result<Vec<u8>, CaError> {
            der::asn1::Utf8StringRef::new(s)
                .and_then(|u| u.to_der())
                .map_err(|e| CaError::token(format!("claim value cannot be encoded: {e}")))
        };
        let mut out = vec![(oid::ISSUER_V1, self.issuer.as_bytes().to_vec())];
        for (o, v) in self.github_legacy {
            if !v.is_empty() {
                out.push((o, v.into_bytes()));
            }
        }
        out.push((oid::ISSUER_V2, utf8(&self.issuer)?));
        for (_, (o, v)) in self.values {
            out.push((o, utf8(&v)?));
        }
        if !self.subject.is_empty() {
            out.push((oid::TOKEN_SUBJECT, utf8(&self.subject)?));
        }
        Ok(out)
    }
}

/// Go's `url.JoinPath` as Fulcio uses it: one `/` between parts, path characters escaped.
fn join_url(base: &str, parts: &[&str]) -> String {
    let mut out = base.trim_end_matches('/').to_string();
    for p in parts {
        let p = p.trim_matches('/');
        if p.is_empty() {
            continue;
        }
        out.push('/');
        out.push_str(&escape_path(p));
    }
    out
}

fn escape_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Scheme and host (without user info or port) of an absolute URL.
fn scheme_host(u: &str) -> Option<(String, String)> {
    let (scheme, rest) = u.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    Some((scheme.to_ascii_lowercase(), host.to_ascii_lowercase()))
}

/// A plausible e-mail address (what an rfc822Name may hold).
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.is_ascii()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\\\"".contains(c))
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// Maps a verified token to the identity its certificate carries.
pub fn identity_from_claims(c: &Claims<'_>) -> Result<Identity, CaError> {
    let cfg = c.config;
    let challenge_claim = cfg.challenge_claim();
    let challenge = c.get(challenge_claim).filter(|v| !v.is_empty()).ok_or_else(|| {
        CaError::token(format!(
            "identity token from {} has no `{challenge_claim}` claim, which the proof of possession signs",
            c.issuer
        ))
    })?;
    let mut ext = Extensions::new(c.issuer, c.subject);
    let san = match cfg.issuer_type {
        IssuerType::Email => {
            let email = c.req("email")?;
            if !cfg.skip_email_verification {
                let verified = match c.map.get("email_verified") {
                    Some(Value::Bool(b)) => *b,
                    Some(Value::String(s)) => s == "true",
                    _ => false,
                };
                if !verified {
                    return Err(CaError::token(format!(
                        "the e-mail address {email} is not verified by {} (`email_verified` is not true)",
                        c.issuer
                    )));
                }
            }
            if !is_email(&email) {
                return Err(CaError::token(format!(
                    "the `email` claim {email:?} is not a valid ASCII e-mail address"
                )));
            }
            if let Some(path) = &cfg.issuer_claim {
                let v = claim_path(c.map, path).ok_or_else(|| {
                    CaError::token(format!(
                        "identity token has no `{path}` claim, which names the issuer for {}",
                        c.issuer
                    ))
                })?;
                ext.issuer = v;
            }
            San::Email(email)
        }
        IssuerType::GithubWorkflow => github(c, &mut ext)?,
        IssuerType::GitlabPipeline => gitlab(c, &mut ext)?,
        IssuerType::BuildkiteJob => {
            let org = c.req("organization_slug")?;
            let pipeline = c.req("pipeline_slug")?;
            San::Uri(format!("https://buildkite.com/{org}/{pipeline}"))
        }
        IssuerType::CodefreshWorkflow => codefresh(c, &mut ext)?,
        IssuerType::ChainguardIdentity => San::Uri(join_url(c.issuer, &[c.subject])),
        IssuerType::Kubernetes => {
            let k8s = c.map.get("kubernetes.io");
            let field = |path: &[&str]| -> Option<String> {
                let mut v = k8s?;
                for p in path {
                    v = v.get(p)?;
                }
                v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
            };
            let ns = field(&["namespace"]);
            let sa = field(&["serviceaccount", "name"]);
            match (ns, sa) {
                (Some(ns), Some(sa)) => San::Uri(format!(
                    "https://kubernetes.io/namespaces/{ns}/serviceaccounts/{sa}"
                )),
                _ => {
                    return Err(CaError::token(
                        "kubernetes token lacks `kubernetes.io.namespace` or `kubernetes.io.serviceaccount.name`",
                    ));
                }
            }
        }
        IssuerType::Spiffe => {
            let td = cfg.spiffe_trust_domain.as_deref().unwrap_or("");
            check_spiffe_id(c.subject, td)?;
            San::Uri(c.subject.to_string())
        }
        IssuerType::Uri => {
            let domain = cfg.subject_domain.as_deref().unwrap_or("");
            if is_email(c.subject) {
                return Err(CaError::token(
                    "uri issuer: the subject must be a URI, not an e-mail address",
                ));
            }
            let (s_scheme, s_host) = scheme_host(c.subject).ok_or_else(|| {
                CaError::token(format!(
                    "uri issuer: subject {:?} is not an absolute URI",
                    c.subject
                ))
            })?;
            let (d_scheme, d_host) = scheme_host(domain).ok_or_else(|| {
                CaError::Config(format!("subject_domain {domain:?} is not a URI"))
            })?;
            if s_scheme != d_scheme {
                return Err(CaError::token(format!(
                    "subject URI scheme ({s_scheme}) must match the configured domain's scheme ({d_scheme})"
                )));
            }
            if s_host != d_host {
                return Err(CaError::token(format!(
                    "subject hostname ({s_host}) must match the configured domain ({d_host})"
                )));
            }
            San::Uri(c.subject.to_string())
        }
        IssuerType::Username => {
            if c.subject.contains('!') {
                return Err(CaError::token(
                    "username subject cannot contain the ! character",
                ));
            }
            if is_email(c.subject) {
                return Err(CaError::token(
                    "username subject must not be an e-mail address",
                ));
            }
            let domain = cfg.subject_domain.as_deref().unwrap_or("");
            San::OtherName(format!("{}!{domain}", c.subject))
        }
        IssuerType::CiProvider => {
            let templates = cfg.ci_provider.as_ref().ok_or_else(|| {
                CaError::Config(format!(
                    "ci-provider issuer {} has no templates",
                    cfg.label()
                ))
            })?;
            ci_provider(c, templates, &mut ext)?
        }
    };
    if !san.value().is_ascii() || san.value().is_empty() {
        return Err(CaError::token(format!(
            "the certificate identity {:?} must be non-empty ASCII",
            san.value()
        )));
    }
    Ok(Identity {
        san,
        extensions: ext.render()?,
        challenge,
    })
}

/// A claim addressed by a dotted path (`federated_claims.connector_id`, `$.a.b` accepted).
fn claim_path(map: &Map<String, Value>, path: &str) -> Option<String> {
    let path = path.trim_start_matches("$.");
    let mut parts = path.split('.');
    let mut v = map.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    claim_string(v)
}

fn github(c: &Claims<'_>, ext: &mut Extensions) -> Result<San, CaError> {
    let job_workflow_ref = c.req("job_workflow_ref")?;
    let sha = c.req("sha")?;
    let event_name = c.req("event_name")?;
    let repository = c.req("repository")?;
    let workflow = c.req("workflow")?;
    let git_ref = c.req("ref")?;
    let job_workflow_sha = c.req("job_workflow_sha")?;
    let runner_environment = c.req("runner_environment")?;
    let repository_id = c.req("repository_id")?;
    let repository_owner = c.req("repository_owner")?;
    let repository_owner_id = c.req("repository_owner_id")?;
    let repository_visibility = c.req("repository_visibility")?;
    let workflow_ref = c.req("workflow_ref")?;
    let workflow_sha = c.req("workflow_sha")?;
    let run_id = c.req("run_id")?;
    let run_attempt = c.req("run_attempt")?;
    let base = "https://github.com/";
    let signer = join_url(base, &[&job_workflow_ref]);
    ext.github_legacy = vec![
        (oid::GITHUB_WORKFLOW_TRIGGER, event_name.clone()),
        (oid::GITHUB_WORKFLOW_SHA, sha.clone()),
        (oid::GITHUB_WORKFLOW_NAME, workflow),
        (oid::GITHUB_WORKFLOW_REPOSITORY, repository.clone()),
        (oid::GITHUB_WORKFLOW_REF, git_ref.clone()),
    ];
    ext.set(oid::BUILD_SIGNER_URI, signer.clone());
    ext.set(oid::BUILD_SIGNER_DIGEST, job_workflow_sha);
    ext.set(oid::RUNNER_ENVIRONMENT, runner_environment);
    ext.set(oid::SOURCE_REPOSITORY_URI, join_url(base, &[&repository]));
    ext.set(oid::SOURCE_REPOSITORY_DIGEST, sha);
    ext.set(oid::SOURCE_REPOSITORY_REF, git_ref);
    ext.set(oid::SOURCE_REPOSITORY_IDENTIFIER, repository_id);
    ext.set(
        oid::SOURCE_REPOSITORY_OWNER_URI,
        join_url(base, &[&repository_owner]),
    );
    ext.set(oid::SOURCE_REPOSITORY_OWNER_IDENTIFIER, repository_owner_id);
    ext.set(oid::BUILD_CONFIG_URI, join_url(base, &[&workflow_ref]));
    ext.set(oid::BUILD_CONFIG_DIGEST, workflow_sha);
    ext.set(oid::BUILD_TRIGGER, event_name);
    ext.set(
        oid::RUN_INVOCATION_URI,
        join_url(
            base,
            &[
                &repository,
                "actions/runs",
                &run_id,
                "attempts",
                &run_attempt,
            ],
        ),
    );
    ext.set(oid::SOURCE_REPOSITORY_VISIBILITY, repository_visibility);
    ext.set(oid::DEPLOYMENT_ENVIRONMENT, c.opt("environment"));
    Ok(San::Uri(signer))
}

fn gitlab(c: &Claims<'_>, ext: &mut Extensions) -> Result<San, CaError> {
    let project_path = c.req("project_path")?;
    let pipeline_source = c.req("pipeline_source")?;
    c.req("pipeline_id")?;
    let ci_config_ref_uri = c.req("ci_config_ref_uri")?;
    let job_id = c.req("job_id")?;
    let git_ref = c.req("ref")?;
    let ref_type = c.req("ref_type")?;
    let namespace_path = c.req("namespace_path")?;
    let namespace_id = c.req("namespace_id")?;
    let project_id = c.req("project_id")?;
    let sha = c.req("sha")?;
    let runner_environment = c.req("runner_environment")?;
    let runner_id = c.req("runner_id")?;
    if runner_id == "0" {
        return Err(CaError::token(
            "gitlab token has runner_id 0; a real runner id is required",
        ));
    }
    let full_ref = match ref_type.as_str() {
        "branch" => format!("refs/heads/{git_ref}"),
        "tag" => format!("refs/tags/{git_ref}"),
        other => {
            return Err(CaError::token(format!(
                "unexpected ref_type {other:?} (expected branch or tag)"
            )));
        }
    };
    // ci_config_ref_uri has no scheme (`gitlab.com/group/project//.gitlab-ci.yml@refs/heads/main`).
    let config_uri = match ci_config_ref_uri.split_once("://") {
        Some((_, rest)) => format!("https://{rest}"),
        None => format!("https://{ci_config_ref_uri}"),
    };
    // The GitLab instance is the issuer (https://gitlab.com for gitlab.com).
    let base = c.issuer;
    ext.set(oid::BUILD_CONFIG_URI, config_uri.clone());
    ext.set(oid::BUILD_CONFIG_DIGEST, c.opt("ci_config_sha"));
    ext.set(oid::BUILD_SIGNER_URI, config_uri.clone());
    ext.set(oid::BUILD_SIGNER_DIGEST, c.opt("ci_config_sha"));
    ext.set(oid::RUNNER_ENVIRONMENT, runner_environment);
    ext.set(oid::SOURCE_REPOSITORY_URI, join_url(base, &[&project_path]));
    ext.set(oid::SOURCE_REPOSITORY_DIGEST, sha);
    ext.set(oid::SOURCE_REPOSITORY_REF, full_ref);
    ext.set(oid::SOURCE_REPOSITORY_IDENTIFIER, project_id);
    ext.set(
        oid::SOURCE_REPOSITORY_OWNER_URI,
        join_url(base, &[&namespace_path]),
    );
    ext.set(oid::SOURCE_REPOSITORY_OWNER_IDENTIFIER, namespace_id);
    ext.set(oid::BUILD_TRIGGER, pipeline_source);
    ext.set(
        oid::RUN_INVOCATION_URI,
        join_url(base, &[&project_path, "/-/jobs/", &job_id]),
    );
    ext.set(
        oid::SOURCE_REPOSITORY_VISIBILITY,
        c.opt("project_visibility"),
    );
    ext.set(oid::DEPLOYMENT_ENVIRONMENT, c.opt("environment"));
    Ok(San::Uri(config_uri))
}

const CODEFRESH_PLATFORM_URL: &str = "https://g.codefresh.io";

fn codefresh(c: &Claims<'_>, ext: &mut Extensions) -> Result<San, CaError> {
    let account_id = c.req("account_id")?;
    let pipeline_id = c.req("pipeline_id")?;
    let workflow_id = c.req("workflow_id")?;
    let platform = c
        .get("platform_url")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| CODEFRESH_PLATFORM_URL.to_string());
    let san = join_url(
        &platform,
        &[
            &c.opt("account_name"),
            &format!("{}:{account_id}/{pipeline_id}", c.opt("pipeline_name")),
        ],
    );
    ext.set(
        oid::BUILD_SIGNER_URI,
        join_url(&platform, &["build", &workflow_id]),
    );
    ext.set(oid::RUNNER_ENVIRONMENT, c.opt("runner_environment"));
    ext.set(oid::SOURCE_REPOSITORY_URI, c.opt("scm_repo_url"));
    ext.set(oid::SOURCE_REPOSITORY_REF, c.opt("scm_ref"));
    ext.set(
        oid::BUILD_CONFIG_URI,
        join_url(&platform, &["api", "pipelines", &pipeline_id]),
    );
    ext.set(
        oid::RUN_INVOCATION_URI,
        join_url(&platform, &["build", &workflow_id]),
    );
    Ok(San::Uri(san))
}

/// `spiffe://<trust domain>/<path>` whose trust domain is the configured one.
fn check_spiffe_id(id: &str, trust_domain: &str) -> Result<(), CaError> {
    let bad = |why: &str| CaError::token(format!("invalid SPIFFE ID {id:?}: {why}"));
    let rest = id
        .strip_prefix("spiffe://")
        .ok_or_else(|| bad("it must start with spiffe://"))?;
    let (td, path) = match rest.split_once('/') {
        Some((td, path)) => (td, Some(path)),
        None => (rest, None),
    };
    if td.is_empty()
        || !td
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c))
    {
        return Err(bad(
            "the trust domain may hold only lowercase letters, digits, '.', '-' and '_'",
        ));
    }
    if let Some(path) = path {
        for seg in path.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." {
                return Err(bad("path segments must be non-empty and not '.' or '..'"));
            }
            if !seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
            {
                return Err(bad(
                    "path segments may hold only letters, digits, '.', '-' and '_'",
                ));
            }
        }
    }
    let want = trust_domain.trim_start_matches("spiffe://");
    if td != want {
        return Err(CaError::token(format!(
            "SPIFFE ID trust domain {td} doesn't match the configured trust domain {want}"
        )));
    }
    Ok(())
}

/// The extension a `ci-provider` template name fills. Accepts Fulcio's spellings
/// (`BuildSignerURI`, `build-signer-uri`) and snake case.
pub fn ci_extension_oid(name: &str) -> Option<ObjectIdentifier> {
    let n: String = name
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    Some(match n.as_str() {
        "buildsigneruri" => oid::BUILD_SIGNER_URI,
        "buildsignerdigest" => oid::BUILD_SIGNER_DIGEST,
        "runnerenvironment" => oid::RUNNER_ENVIRONMENT,
        "sourcerepositoryuri" => oid::SOURCE_REPOSITORY_URI,
        "sourcerepositorydigest" => oid::SOURCE_REPOSITORY_DIGEST,
        "sourcerepositoryref" => oid::SOURCE_REPOSITORY_REF,
        "sourcerepositoryidentifier" => oid::SOURCE_REPOSITORY_IDENTIFIER,
        "sourcerepositoryowneruri" => oid::SOURCE_REPOSITORY_OWNER_URI,
        "sourcerepositoryowneridentifier" => oid::SOURCE_REPOSITORY_OWNER_IDENTIFIER,
        "buildconfiguri" => oid::BUILD_CONFIG_URI,
        "buildconfigdigest" => oid::BUILD_CONFIG_DIGEST,
        "buildtrigger" => oid::BUILD_TRIGGER,
        "runinvocationuri" => oid::RUN_INVOCATION_URI,
        "sourcerepositoryvisibilityatsigning" | "sourcerepositoryvisibility" => {
            oid::SOURCE_REPOSITORY_VISIBILITY
        }
        "deploymentenvironment" => oid::DEPLOYMENT_ENVIRONMENT,
        _ => return None,
    })
}

/// Fills a template: a bare claim name is replaced by the value; otherwise every
/// `{{ .name }}` is (missing names are an error, as Go's `missingkey=error`).
fn apply_template(
    template: &str,
    values: &BTreeMap<String, String>,
    what: &str,
) -> Result<String, CaError> {
    let missing = |name: &str| {
        CaError::token(format!(
            "ci-provider {what}: value <{name}> is present neither in the token's claims nor in the defaults"
        ))
    };
    if !template.contains("{{") {
        return values
            .get(template)
            .cloned()
            .ok_or_else(|| missing(template));
    }
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(rest.get(..start).unwrap_or(""));
        let after = rest.get(start + 2..).unwrap_or("");
        let end = after.find("}}").ok_or_else(|| {
            CaError::Config(format!("ci-provider {what}: unclosed {{{{ in template"))
        })?;
        let name = after.get(..end).unwrap_or("").trim();
        let name = name.strip_prefix('.').ok_or_else(|| {
            CaError::Config(format!(
                "ci-provider {what}: placeholder {name:?} must be `.claim`"
            ))
        })?;
        out.push_str(values.get(name).ok_or_else(|| missing(name))?);
        rest = after.get(end + 2..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks a `ci-provider` template set at start-up.
pub fn validate_ci_templates(t: &CiProviderTemplates) -> Result<(), CaError> {
    if t.subject_alternative_name_template.trim().is_empty() {
        return Err(CaError::Config(
            "ci-provider: subject_alternative_name_template is empty".into(),
        ));
    }
    for name in t.extension_templates.keys() {
        if ci_extension_oid(name).is_none() {
            return Err(CaError::Config(format!(
                "ci-provider: unknown extension {name:?}"
            )));
        }
    }
    Ok(())
}

fn ci_provider(
    c: &Claims<'_>,
    t: &CiProviderTemplates,
    ext: &mut Extensions,
) -> Result<San, CaError> {
    let mut values = t.default_template_values.clone();
    for (k, v) in c.map {
        let s = claim_string(v).unwrap_or_else(|| v.to_string());
        values.insert(k.clone(), s);
    }
    let san = apply_template(
        &t.subject_alternative_name_template,
        &values,
        "SubjectAlternativeName",
    )?;
    for (name, template) in &t.extension_templates {
        if template.trim().is_empty() {
            continue;
        }
        let o = ci_extension_oid(name)
            .ok_or_else(|| CaError::Config(format!("ci-provider: unknown extension {name:?}")))?;
        ext.set(o, apply_template(template, &values, name)?);
    }
    Ok(San::Uri(san))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_like_go() {
        assert_eq!(
            join_url(
                "https://github.com/",
                &["octo/repo/.github/workflows/x.yml@refs/heads/main"]
            ),
            "https://github.com/octo/repo/.github/workflows/x.yml@refs/heads/main"
        );
        assert_eq!(
            join_url("https://gitlab.com", &["g/p", "/-/jobs/", "12"]),
            "https://gitlab.com/g/p/-/jobs/12"
        );
        assert_eq!(join_url("https://x", &["a b"]), "https://x/a%20b");
    }

    #[test]
    fn meta_helpers() {
        assert_eq!(
            scheme_host("https://user@Example.com:8443/a?b").unwrap(),
            ("https".into(), "example.com".into())
        );
        assert!(is_email("a.b+c@example.com"));
        assert!(!is_email("a@b"));
        assert!(!is_email("é@example.com"));
        assert!(check_spiffe_id("spiffe://example.org/ns/a", "example.org").is_ok());
        assert!(check_spiffe_id("spiffe://evil.org/ns/a", "example.org").is_err());
        assert!(check_spiffe_id("spiffe://example.org/../a", "example.org").is_err());
        let mut v = BTreeMap::new();
        v.insert("a".to_string(), "1".to_string());
        assert_eq!(apply_template("x{{ .a }}y{{.a}}", &v, "t").unwrap(), "x1y1");
        assert_eq!(apply_template("a", &v, "t").unwrap(), "1");
        assert!(apply_template("{{ .b }}", &v, "t").is_err());
    }
}
