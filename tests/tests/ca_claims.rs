//! Claim mapping per issuer type against the values Fulcio documents (docs/oid-info.md and its
//! principal tests): GitHub Actions and GitLab CI tokens built from their documented claim sets,
//! and every other type. Each test checks the exact SAN and the exact set of extensions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sigil_tests::ca as support;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sigil_core::crypto::{KeyAlgorithm, SigningKey};
use sigil_core::oid;
use sigil_server::ca::identity::{Claims, San, identity_from_claims};
use sigil_server::ca::{CaConfig, CiProviderTemplates, IssuerConfig, IssuerType};
use support::*;
use x509_cert::Certificate;

fn map(identity: &sigil_server::ca::identity::Identity) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (o, v) in &identity.extensions {
        let s = oid::fulcio_extension_string(o, v)
            .unwrap_or_else(|| panic!("extension {o} not in its required encoding"));
        assert!(out.insert(o.to_string(), s).is_none(), "duplicate {o}");
    }
    out
}

fn expect(pairs: &[(u32, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(arc, v)| (format!("1.3.6.1.4.1.57264.1.{arc}"), v.to_string()))
        .collect()
}

fn run(cfg: &IssuerConfig, claims: &Value) -> Result<sigil_server::ca::identity::Identity, String> {
    let m = claims.as_object().unwrap();
    identity_from_claims(&Claims {
        issuer: m["iss"].as_str().unwrap(),
        subject: m["sub"].as_str().unwrap(),
        map: m,
        config: cfg,
    })
    .map_err(|e| e.to_string())
}

fn github_claims() -> Value {
    // GitHub's documented example token payload (docs: "OIDC token claims"), plus the
    // workflow_ref / *_sha claims current tokens carry.
    json!({
        "jti": "example-id",
        "sub": "repo:octo-org/octo-repo:environment:prod",
        "environment": "prod",
        "aud": "sigstore",
        "ref": "refs/heads/main",
        "sha": "example-sha",
        "repository": "octo-org/octo-repo",
        "repository_owner": "octo-org",
        "actor_id": "12",
        "repository_visibility": "private",
        "repository_id": "74",
        "repository_owner_id": "65",
        "run_id": "example-run-id",
        "run_number": "10",
        "run_attempt": "2",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        "workflow": "example-workflow",
        "head_ref": "",
        "base_ref": "",
        "event_name": "workflow_dispatch",
        "ref_type": "branch",
        "workflow_ref": "octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main",
        "workflow_sha": "workflow-sha",
        "job_workflow_ref": "octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main",
        "job_workflow_sha": "job-workflow-sha",
        "iss": "https://token.actions.githubusercontent.com",
        "nbf": 1632492967,
        "exp": 1632493867,
        "iat": 1632493567
    })
}

#[test]
fn github_actions_token() {
    let cfg = IssuerConfig::exact(
        "https://token.actions.githubusercontent.com",
        IssuerType::GithubWorkflow,
    );
    let id = run(&cfg, &github_claims()).unwrap();
    let signer =
        "https://github.com/octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main";
    assert_eq!(id.san, San::Uri(signer.into()));
    assert_eq!(id.challenge, "repo:octo-org/octo-repo:environment:prod");
    let iss = "https://token.actions.githubusercontent.com";
    assert_eq!(
        map(&id),
        expect(&[
            (1, iss),
            (2, "workflow_dispatch"),
            (3, "example-sha"),
            (4, "example-workflow"),
            (5, "octo-org/octo-repo"),
            (6, "refs/heads/main"),
            (8, iss),
            (9, signer),
            (10, "job-workflow-sha"),
            (11, "github-hosted"),
            (12, "https://github.com/octo-org/octo-repo"),
            (13, "example-sha"),
            (14, "refs/heads/main"),
            (15, "74"),
            (16, "https://github.com/octo-org"),
            (17, "65"),
            (
                18,
                "https://github.com/octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main"
            ),
            (19, "workflow-sha"),
            (20, "workflow_dispatch"),
            (
                21,
                "https://github.com/octo-org/octo-repo/actions/runs/example-run-id/attempts/2"
            ),
            (22, "private"),
            (23, "prod"),
            (24, "repo:octo-org/octo-repo:environment:prod"),
        ])
    );
    // .1–.6 are raw bytes, not DER.
    let (_, raw) = id
        .extensions
        .iter()
        .find(|(o, _)| *o == oid::ISSUER_V1)
        .unwrap();
    assert_eq!(raw, iss.as_bytes());
    // Every required claim is named when missing.
    for claim in [
        "job_workflow_ref",
        "sha",
        "repository_owner_id",
        "run_attempt",
        "workflow_sha",
    ] {
        let mut c = github_claims();
        c.as_object_mut().unwrap().remove(claim);
        let err = run(&cfg, &c).unwrap_err();
        assert!(err.contains(&format!("`{claim}`")), "{err}");
    }
}

fn gitlab_claims() -> Value {
    // GitLab's documented ID token payload (docs: "ID token authentication", token payload),
    // on gitlab.com.
    json!({
        "namespace_id": "72",
        "namespace_path": "my-group",
        "project_id": "20",
        "project_path": "my-group/my-project",
        "user_id": "1",
        "user_login": "sample-user",
        "user_email": "sample-user@example.com",
        "pipeline_id": "574",
        "pipeline_source": "push",
        "job_id": "302",
        "ref": "feature-branch-1",
        "ref_type": "branch",
        "ref_path": "refs/heads/feature-branch-1",
        "ref_protected": "false",
        "environment": "test-environment2",
        "environment_protected": "false",
        "deployment_tier": "testing",
        "environment_action": "start",
        "runner_id": 1,
        "runner_environment": "self-hosted",
        "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        "project_visibility": "public",
        "ci_config_ref_uri": "gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main",
        "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        "jti": "235b3a54-b797-45c7-ae9a-f72d7bc6ef5b",
        "iss": "https://gitlab.com",
        "iat": 1681395193,
        "nbf": 1681395188,
        "exp": 1681398793,
        "sub": "project_path:my-group/my-project:ref_type:branch:ref:feature-branch-1",
        "aud": "sigstore"
    })
}

#[test]
fn gitlab_ci_token() {
    let cfg = IssuerConfig::exact("https://gitlab.com", IssuerType::GitlabPipeline);
    let id = run(&cfg, &gitlab_claims()).unwrap();
    let config_uri = "https://gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main";
    assert_eq!(id.san, San::Uri(config_uri.into()));
    let sha = "714a629c0b401fdce83e847fc9589983fc6f46bc";
    assert_eq!(
        map(&id),
        expect(&[
            (1, "https://gitlab.com"),
            (8, "https://gitlab.com"),
            (9, config_uri),
            (10, sha),
            (11, "self-hosted"),
            (12, "https://gitlab.com/my-group/my-project"),
            (13, sha),
            (14, "refs/heads/feature-branch-1"),
            (15, "20"),
            (16, "https://gitlab.com/my-group"),
            (17, "72"),
            (18, config_uri),
            (19, sha),
            (20, "push"),
            (21, "https://gitlab.com/my-group/my-project/-/jobs/302"),
            (22, "public"),
            (23, "test-environment2"),
            (
                24,
                "project_path:my-group/my-project:ref_type:branch:ref:feature-branch-1"
            ),
        ])
    );
    let mut tag = gitlab_claims();
    tag["ref_type"] = json!("tag");
    tag["ref"] = json!("v1.0");
    assert_eq!(
        map(&run(&cfg, &tag).unwrap())["1.3.6.1.4.1.57264.1.14"],
        "refs/tags/v1.0"
    );
    let mut bad = gitlab_claims();
    bad["ref_type"] = json!("mystery");
    assert!(run(&cfg, &bad).unwrap_err().contains("ref_type"));
    let mut missing = gitlab_claims();
    missing.as_object_mut().unwrap().remove("runner_id");
    assert!(run(&cfg, &missing).unwrap_err().contains("`runner_id`"));
}

#[test]
fn email_token() {
    let cfg = IssuerConfig::exact("https://accounts.google.com", IssuerType::Email);
    let c = json!({"iss": "https://accounts.google.com", "sub": "1234", "email": "alice@example.com", "email_verified": true});
    let id = run(&cfg, &c).unwrap();
    assert_eq!(id.san, San::Email("alice@example.com".into()));
    assert_eq!(id.challenge, "alice@example.com");
    assert_eq!(
        map(&id),
        expect(&[
            (1, "https://accounts.google.com"),
            (8, "https://accounts.google.com"),
            (24, "1234")
        ])
    );
    // A federated issuer names the upstream issuer in a claim.
    let mut dex = IssuerConfig::exact("https://oauth2.sigstore.dev/auth", IssuerType::Email);
    dex.issuer_claim = Some("$.federated_claims.connector_id".into());
    let c = json!({"iss": "https://oauth2.sigstore.dev/auth", "sub": "x", "email": "a@example.com", "email_verified": true,
                   "federated_claims": {"connector_id": "https://github.com/login/oauth", "user_id": "1"}});
    assert_eq!(
        map(&run(&dex, &c).unwrap())["1.3.6.1.4.1.57264.1.8"],
        "https://github.com/login/oauth"
    );
    let bad = json!({"iss": "https://accounts.google.com", "sub": "1", "email": "not an email", "email_verified": true});
    assert!(run(&cfg, &bad).unwrap_err().contains("not a valid"));
}

#[test]
fn buildkite_codefresh_chainguard_kubernetes() {
    let bk = IssuerConfig::exact("https://agent.buildkite.com", IssuerType::BuildkiteJob);
    let c = json!({"iss": "https://agent.buildkite.com", "sub": "organization:acme-inc:pipeline:bash-example:ref:refs/heads/main:commit:abc:step:build",
                   "organization_slug": "acme-inc", "pipeline_slug": "bash-example"});
    let id = run(&bk, &c).unwrap();
    assert_eq!(
        id.san,
        San::Uri("https://buildkite.com/acme-inc/bash-example".into())
    );
    assert_eq!(map(&id).len(), 3);

    let cf = IssuerConfig::exact("https://oidc.codefresh.io", IssuerType::CodefreshWorkflow);
    let c = json!({
        "iss": "https://oidc.codefresh.io",
        "sub": "account:628a80b693a15c0f9c13ab75:pipeline:65e5a53e52853dc51a5b0cc1:initiator:codefresh-user",
        "account_id": "628a80b693a15c0f9c13ab75",
        "account_name": "codefresh-account",
        "pipeline_id": "65e5a53e52853dc51a5b0cc1",
        "pipeline_name": "oidc-test/get-token",
        "workflow_id": "65e6bcf7c2af1f228fa97f80",
        "scm_repo_url": "https://github.com/codefresh-io/fulcio-oidc",
        "scm_ref": "main",
        "runner_environment": "hybrid"
    });
    let id = run(&cf, &c).unwrap();
    assert_eq!(
        id.san,
        San::Uri("https://g.codefresh.io/codefresh-account/oidc-test/get-token:628a80b693a15c0f9c13ab75/65e5a53e52853dc51a5b0cc1".into())
    );
    let m = map(&id);
    assert_eq!(
        m["1.3.6.1.4.1.57264.1.9"],
        "https://g.codefresh.io/build/65e6bcf7c2af1f228fa97f80"
    );
    assert_eq!(m["1.3.6.1.4.1.57264.1.11"], "hybrid");
    assert_eq!(
        m["1.3.6.1.4.1.57264.1.12"],
        "https://github.com/codefresh-io/fulcio-oidc"
    );
    assert_eq!(m["1.3.6.1.4.1.57264.1.14"], "main");
    assert_eq!(
        m["1.3.6.1.4.1.57264.1.18"],
        "https://g.codefresh.io/api/pipelines/65e5a53e52853dc51a5b0cc1"
    );
    assert_eq!(
        m["1.3.6.1.4.1.57264.1.21"],
        "https://g.codefresh.io/build/65e6bcf7c2af1f228fa97f80"
    );
    assert_eq!(m.len(), 9);

    let cg = IssuerConfig::exact("https://issuer.enforce.dev", IssuerType::ChainguardIdentity);
    let c = json!({"iss": "https://issuer.enforce.dev", "sub": "af8c6b1d5e8b/e9ba61a0b0b8a0d7"});
    assert_eq!(
        run(&cg, &c).unwrap().san,
        San::Uri("https://issuer.enforce.dev/af8c6b1d5e8b/e9ba61a0b0b8a0d7".into())
    );

    let k8s = IssuerConfig::exact("https://kubernetes.default.svc", IssuerType::Kubernetes);
    let c = json!({"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:default:default",
                   "kubernetes.io": {"namespace": "default", "pod": {"name": "p", "uid": "1"},
                                     "serviceaccount": {"name": "default", "uid": "2"}}});
    assert_eq!(
        run(&k8s, &c).unwrap().san,
        San::Uri("https://kubernetes.io/namespaces/default/serviceaccounts/default".into())
    );
    let c = json!({"iss": "https://kubernetes.default.svc", "sub": "x"});
    assert!(run(&k8s, &c).unwrap_err().contains("kubernetes.io"));
}

#[test]
fn spiffe_uri_and_username() {
    let mut sp = IssuerConfig::exact("https://spire.example.org", IssuerType::Spiffe);
    sp.spiffe_trust_domain = Some("example.org".into());
    let c = json!({"iss": "https://spire.example.org", "sub": "spiffe://example.org/ns/prod/sa/builder"});
    let id = run(&sp, &c).unwrap();
    assert_eq!(
        id.san,
        San::Uri("spiffe://example.org/ns/prod/sa/builder".into())
    );
    let c = json!({"iss": "https://spire.example.org", "sub": "spiffe://evil.org/ns/prod"});
    assert!(run(&sp, &c).unwrap_err().contains("trust domain"));

    let mut uri = IssuerConfig::exact("https://auth.example.com", IssuerType::Uri);
    uri.subject_domain = Some("https://example.com".into());
    let c = json!({"iss": "https://auth.example.com", "sub": "https://example.com/users/alice"});
    assert_eq!(
        run(&uri, &c).unwrap().san,
        San::Uri("https://example.com/users/alice".into())
    );
    let c = json!({"iss": "https://auth.example.com", "sub": "https://evil.com/users/alice"});
    assert!(run(&uri, &c).unwrap_err().contains("hostname"));
    let c = json!({"iss": "https://auth.example.com", "sub": "http://example.com/users/alice"});
    assert!(run(&uri, &c).unwrap_err().contains("scheme"));

    let mut user = IssuerConfig::exact("https://auth.example.com", IssuerType::Username);
    user.subject_domain = Some("example.com".into());
    let c = json!({"iss": "https://auth.example.com", "sub": "alice"});
    let id = run(&user, &c).unwrap();
    assert_eq!(id.san, San::OtherName("alice!example.com".into()));
    assert_eq!(id.challenge, "alice");
    let c = json!({"iss": "https://auth.example.com", "sub": "al!ce"});
    assert!(run(&user, &c).unwrap_err().contains('!'));
}

#[test]
fn ci_provider_templates() {
    let mut cfg = IssuerConfig::exact("https://ci.example.com", IssuerType::CiProvider);
    cfg.ci_provider = Some(CiProviderTemplates {
        subject_alternative_name_template: "{{ .url }}/{{ .repository }}/.ci/{{.workflow}}".into(),
        extension_templates: [
            ("build_trigger", "event_name"),
            ("source_repository_uri", "{{ .url }}/{{ .repository }}"),
            ("RunnerEnvironment", "runner_environment"),
            ("source-repository-identifier", "repository_id"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect(),
        default_template_values: [("url".to_string(), "https://ci.example.com".to_string())]
            .into_iter()
            .collect(),
    });
    let c = json!({"iss": "https://ci.example.com", "sub": "repo:acme/app", "repository": "acme/app",
                   "workflow": "release.yml", "event_name": "push", "runner_environment": "hosted", "repository_id": 1234});
    let id = run(&cfg, &c).unwrap();
    assert_eq!(
        id.san,
        San::Uri("https://ci.example.com/acme/app/.ci/release.yml".into())
    );
    assert_eq!(
        map(&id),
        expect(&[
            (1, "https://ci.example.com"),
            (8, "https://ci.example.com"),
            (11, "hosted"),
            (12, "https://ci.example.com/acme/app"),
            (15, "1234"),
            (20, "push"),
            (24, "repo:acme/app"),
        ])
    );
    let c = json!({"iss": "https://ci.example.com", "sub": "x", "repository": "acme/app"});
    assert!(run(&cfg, &c).unwrap_err().contains("<workflow>"));
}

/// End to end over HTTP: a GitHub Actions token from a provider becomes a certificate with
/// Fulcio's profile and these extensions.
#[tokio::test]
async fn github_token_to_certificate() {
    let key = TestKey::new("k", KeyAlgorithm::Rsa { bits: 2048 });
    let idp = MockIdp::start(&[&key]).await;
    let iss = idp.issuer("actions");
    let ca = TestCa::start(
        CaConfig {
            issuers: vec![IssuerConfig::exact(iss.clone(), IssuerType::GithubWorkflow)],
            ..CaConfig::default()
        },
        false,
    )
    .await;
    let mut c = github_claims();
    let t = now();
    c["iss"] = json!(iss);
    c["iat"] = json!(t);
    c["nbf"] = json!(t);
    c["exp"] = json!(t + 300);
    let token = key.sign(&c);
    let leaf_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let (status, body) = ca
        .request_pop(
            &token,
            &leaf_key,
            "repo:octo-org/octo-repo:environment:prod",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let chain = chain_from_response(&body);
    let leaf = <Certificate as der::Decode>::from_der(&chain[0]).unwrap();
    assert_eq!(
        sans(&leaf),
        vec![(
            "uri".to_string(),
            "https://github.com/octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main".to_string()
        )]
    );
    assert_eq!(ext_str(&leaf, &oid::ISSUER_V2).unwrap(), iss);
    assert_eq!(
        ext_str(&leaf, &oid::BUILD_TRIGGER).unwrap(),
        "workflow_dispatch"
    );
    assert_eq!(
        ext_str(&leaf, &oid::TOKEN_SUBJECT).unwrap(),
        "repo:octo-org/octo-repo:environment:prod"
    );
    assert_eq!(
        ext_str(&leaf, &oid::GITHUB_WORKFLOW_REF).unwrap(),
        "refs/heads/main"
    );
}
