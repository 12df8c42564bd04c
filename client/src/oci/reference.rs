//! Image references as docker and cosign spell them: `[registry/]repo[:tag][@sha256:hex]`.

use std::fmt;

use super::error::OciError;

/// Docker Hub's registry as cosign names it in `docker-reference`.
pub const DOCKER_HUB: &str = "index.docker.io";

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host[:port], e.g. `127.0.0.1:5000` or `index.docker.io`.
    pub registry: String,
    /// Repository path inside the registry, e.g. `team/app` or `library/alpine`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && t.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks `sha256:<64 lowercase hex>`.
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

impl ImageRef {
    /// Parses a reference; a missing registry means Docker Hub (`library/` for one-part names).
    pub fn parse(s: &str) -> Result<Self, OciError> {
        let bad = |why: &str| OciError::Reference {
            reference: s.to_owned(),
            why: why.to_owned(),
        };
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(bad("the digest must be sha256:<64 lowercase hex digits>"));
                }
                (r, Some(d.to_owned()))
            }
            None => (s, None),
        };
        // A tag is a ':' after the last '/' (a ':' before it is a registry port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest.get(last_slash..).and_then(|t| t.rfind(':')) {
            Some(i) => {
                let at = last_slash + i;
                (
                    rest.get(..at).unwrap_or(""),
                    rest.get(at + 1..).map(str::to_owned),
                )
            }
            None => (rest, None),
        };
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(bad("invalid tag"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.starts_with('[') =>
            {
                (first.to_owned(), path.to_owned())
            }
            _ => (
                DOCKER_HUB.to_owned(),
                if name.contains('/') {
                    name.to_owned()
                } else {
                    format!("library/{name}")
                },
            ),
        };
        let registry = if registry == "docker.io" || registry == "registry-1.docker.io" {
            DOCKER_HUB.to_owned()
        } else {
            registry
        };
        if registry.is_empty() || !repository.split('/').all(valid_component) {
            return Err(bad(
                "the repository must be lowercase path components ([a-z0-9._-])",
            ));
        }
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`: what cosign writes as `docker-reference` and Kyverno matches.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository at `digest`.
    pub fn with_digest(&self, digest: &str) -> Self {
        Self {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.to_owned()),
        }
    }

    /// The same repository at `tag`.
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        }
    }

    /// What to ask the registry for: the digest if pinned, else the tag (default `latest`).
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// Whether the registry host is on the loopback interface (plain HTTP is allowed there).
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => self
                .registry
                .rsplit_once(':')
                .map_or(self.registry.as_str(), |(h, _)| h),
        };
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Whether a command argument means an image rather than a file: it is not an existing path,
/// parses as a reference and names a registry, tag or digest explicitly.
pub fn looks_like_image(arg: &str) -> bool {
    !std::path::Path::new(arg).exists()
        && (arg.contains('/') || arg.contains(':') || arg.contains('@'))
        && ImageRef::parse(arg).is_ok()
}

/// cosign's tag for an image digest's signatures (`.sig`), attestations (`.att`) etc.
pub fn cosign_tag(digest: &str, suffix: &str) -> String {
    format!("{}.{suffix}", digest.replacen(':', "-", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_registry_port_tag_and_digest() {
        let r = ImageRef::parse(&format!("127.0.0.1:5000/team/app:v1@{D}")).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.reference(), D);
        assert!(r.is_loopback());
        assert_eq!(r.name(), "127.0.0.1:5000/team/app");

        let r = ImageRef::parse("localhost:5000/app").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.reference()),
            ("localhost:5000", "latest".to_owned())
        );
        assert!(r.is_loopback());
    }

    #[test]
    fn docker_hub_defaults() {
        let r = ImageRef::parse("alpine:3").unwrap();
        assert_eq!(r.name(), "index.docker.io/library/alpine");
        let r = ImageRef::parse("docker.io/team/app").unwrap();
        assert_eq!(r.name(), "index.docker.io/team/app");
        assert!(!r.is_loopback());
        assert!(
            !ImageRef::parse("registry.example:443/a")
                .unwrap()
                .is_loopback()
        );
    }

    #[test]
    fn rejects_bad_references() {
        for bad in ["", "Team/App", "x/y@sha256:abc", "x/y:", "x//y", "x/y:-bad"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cosign_tags() {
        assert_eq!(cosign_tag(D, "sig"), format!("sha256-{}.sig", &D[7..]));
    }
}
