//! A `docker-registry` (Distribution 2.8) on a free loopback port, and test images pushed to it
//! with `skopeo`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use sha2::Digest;
use tempfile::TempDir;

use crate::{ServerProcess, free_port};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A tool on PATH, or an error naming the Debian package that has it.
pub fn find_tool(name: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("`{name}` not found on PATH: apt-get install {package}"))
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// A running registry with filesystem storage in a temp dir; stopped when dropped.
pub struct DockerRegistry {
    _process: ServerProcess,
    _dir: TempDir,
    /// `127.0.0.1:<port>`.
    pub host: String,
}

impl DockerRegistry {
    pub async fn start() -> Result<DockerRegistry> {
        let bin = find_tool("docker-registry", "docker-registry")?;
        let dir = tempfile::tempdir()?;
        let host = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
                dir.path().join("data").display()
            ),
        )?;
        let mut p = ServerProcess::spawn(&bin, ["serve".as_ref(), config.as_os_str()], &[])?;
        p.wait_for_url(&format!("http://{host}/v2/"), Duration::from_secs(120))
            .await?;
        Ok(DockerRegistry {
            _process: p,
            _dir: dir,
            host,
        })
    }

    /// Builds an OCI layout with one image whose layer is `content` and copies it to
    /// `repo:tag` with skopeo.
    pub fn push_image(&self, repo: &str, tag: &str, content: &str) -> Result<()> {
        let skopeo = find_tool("skopeo", "skopeo")?;
        let layout = tempfile::tempdir()?;
        let blobs = layout.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        let blob = |b: &[u8]| -> Result<String> {
            let h = sha256_hex(b);
            std::fs::write(blobs.join(&h), b)?;
            Ok(format!("sha256:{h}"))
        };
        let layer = content.as_bytes();
        let layer_digest = blob(layer)?;
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }))?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(&config)?, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
        }))?;
        let index = json!({"schemaVersion": 2, "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": blob(&manifest)?, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }]});
        std::fs::write(layout.path().join("index.json"), index.to_string())?;
        std::fs::write(
            layout.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        let out = Command::new(skopeo)
            .args(["copy", "--insecure-policy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{tag}", layout.path().display()))
            .arg(format!("docker://{}/{repo}:{tag}", self.host))
            .output()
            .context("running skopeo")?;
        if !out.status.success() {
            bail!(
                "skopeo copy failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}
