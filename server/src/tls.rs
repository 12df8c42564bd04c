//! TLS termination (`server.tls_cert`, `server.tls_key`), so that a deployment can ask readers
//! for a client certificate (`read_access.client_ca`) without a proxy in front. Client
//! certificates are optional at the handshake (clients with a bearer token, or reading public
//! routes, have none); the read layer decides. Handshakes run on their own tasks so that a slow
//! or silent client never holds up accepting the next one.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is at the other end of a connection.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The client certificate (DER) the handshake verified against the client CA.
    pub client_cert: Option<Arc<Vec<u8>>>,
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Accepted, handshaken TLS connections.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, Peer)>,
    local: SocketAddr,
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The acceptor task ended (it never does while the listener lives).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Peer> {
        Ok(Peer {
            addr: self.local,
            client_cert: None,
        })
    }
}

fn pem_blocks(path: &Path, what: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let text =
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    sigil_core::certs::pem_decode_all(&text).with_context(|| format!("{what} {}", path.display()))
}

/// The rustls configuration: this server's chain and key, and, with `client_ca`, optional
/// client certificates that must chain to it.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> anyhow::Result<rustls::ServerConfig> {
    crate::install_crypto_provider();
    let chain: Vec<CertificateDer<'static>> = pem_blocks(cert, "TLS certificate")?
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| CertificateDer::from(der))
        .collect();
    if chain.is_empty() {
        anyhow::bail!("server.tls_cert {}: no CERTIFICATE block", cert.display());
    }
    let key = pem_blocks(key, "TLS key")?
        .into_iter()
        .find_map(|(label, der)| match label.as_str() {
            "PRIVATE KEY" => Some(PrivateKeyDer::Pkcs8(der.into())),
            "EC PRIVATE KEY" => Some(PrivateKeyDer::Sec1(der.into())),
            "RSA PRIVATE KEY" => Some(PrivateKeyDer::Pkcs1(der.into())),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("server.tls_key {}: no private key block", key.display()))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for (label, der) in pem_blocks(ca, "client CA")? {
                if label == "CERTIFICATE" {
                    roots
                        .add(CertificateDer::from(der))
                        .with_context(|| format!("read_access.client_ca {}", ca.display()))?;
                }
            }
            if roots.is_empty() {
                anyhow::bail!(
                    "read_access.client_ca {}: no CERTIFICATE block",
                    ca.display()
                );
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .allow_unauthenticated()
                .build()
                .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .context("server.tls_cert and server.tls_key do not make a usable pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts TCP connections on `tcp` and hands over each once its TLS handshake is done.
pub fn listen(tcp: TcpListener, config: rustls::ServerConfig) -> anyhow::Result<TlsListener> {
    let local = tcp.local_addr()?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let (tx, ready) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, addr) = match tcp.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let client_cert = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| Arc::new(c.to_vec()));
                        let _ = tx.send((tls, Peer { addr, client_cert })).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                }
            });
        }
    });
    Ok(TlsListener { ready, local })
}
