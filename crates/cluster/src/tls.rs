//! Mutual TLS between the members of a cluster: every storage node's gRPC port (Raft,
//! Storage, metadata) asks each caller for a certificate signed by the cluster's CA, and
//! every member (storage node, ingestor, querier) dials with its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::error::{Error, Result};

/// Longest a caller may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a member's TLS material is (PEM files).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// This member's certificate (chain), signed by the cluster CA. Its names must
    /// include the host part of the address other members dial it at.
    pub cert_file: PathBuf,
    /// The certificate's private key.
    pub key_file: PathBuf,
    /// The cluster CA: a peer is a member iff its certificate chains to it.
    pub ca_file: PathBuf,
}

/// A member's TLS settings, loaded once, for its server and its clients.
#[derive(Debug, Clone)]
pub struct GrpcTls {
    server: ServerTlsConfig,
    client: ClientTlsConfig,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::Config(format!("reading the gRPC TLS {what} {}: {e}", path.display())))
}

impl GrpcTls {
    /// Loads `files`: the server requires client certificates chaining to the CA, the
    /// client presents the same certificate and trusts only the CA.
    pub fn load(files: &TlsFiles) -> Result<Arc<Self>> {
        // the binary links more than one rustls provider (other clients bring their own):
        // name ring as the process default, or rustls refuses to pick one at the handshake
        let _ = rustls::crypto::ring::default_provider().install_default();
        let identity =
            Identity::from_pem(read(&files.cert_file, "certificate")?, read(&files.key_file, "key")?);
        let ca = Certificate::from_pem(read(&files.ca_file, "CA")?);
        Ok(Arc::new(GrpcTls {
            server: ServerTlsConfig::new()
                .identity(identity.clone())
                .client_ca_root(ca.clone())
                .timeout(HANDSHAKE_TIMEOUT),
            client: ClientTlsConfig::new().identity(identity).ca_certificate(ca),
        }))
    }

    /// The server side: this node's certificate, callers must present one of the CA.
    pub fn server(&self) -> ServerTlsConfig {
        self.server.clone()
    }

    /// The client side: this node's certificate, servers must present one of the CA.
    pub fn client(&self) -> ClientTlsConfig {
        self.client.clone()
    }
}
