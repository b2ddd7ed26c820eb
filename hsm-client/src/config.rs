//! Where the HSMs are and how to trust them.

use std::{fmt, path::Path};

use zeroize::Zeroizing;

use crate::ClientError;

/// Endpoints and TLS trust for a cluster.
#[derive(Clone)]
pub struct ClientConfig {
    endpoints: Vec<String>,
    ca_pem: String,
    client_identity: Option<(String, Zeroizing<String>)>,
    server_name: Option<String>,
    plaintext: bool,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("endpoints", &self.endpoints)
            .field("client_identity", &self.client_identity.as_ref().map(|_| "<certificate and key>"))
            .field("server_name", &self.server_name)
            .field("plaintext", &self.plaintext)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// Endpoints (`host:port`) and the PEM of the cluster CA that signed the
    /// HSMs' certificates.
    pub fn new(endpoints: Vec<String>, ca_pem: String) -> Result<Self, ClientError> {
        let endpoints: Vec<String> =
            endpoints.into_iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
        if endpoints.is_empty() {
            return Err(ClientError::Config("endpoints: give at least one HSM as host:port".into()));
        }
        for e in &endpoints {
            if e.contains("://") || !e.contains(':') {
                return Err(ClientError::Config(format!("endpoint '{e}': must be host:port, without a scheme")));
            }
        }
        if !ca_pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(ClientError::Config("CA certificate: expected a PEM certificate".into()));
        }
        Ok(ClientConfig { endpoints, ca_pem, client_identity: None, server_name: None, plaintext: false })
    }

    /// Comma-separated endpoints and a CA file path, as `HSM_ENDPOINTS` and
    /// `HSM_CA_CERT` give them.
    pub fn from_parts(endpoints: &str, ca_path: &Path) -> Result<Self, ClientError> {
        let ca_pem = std::fs::read_to_string(ca_path)
            .map_err(|e| ClientError::Config(format!("CA certificate {}: {e}", ca_path.display())))?;
        Self::new(endpoints.split(',').map(str::to_owned).collect(), ca_pem)
    }

    /// Reads `HSM_ENDPOINTS` (comma-separated `host:port`) and `HSM_CA_CERT`
    /// (a path), as written to `client.env` by `hsm-daemon dev`.
    pub fn from_env() -> Result<Self, ClientError> {
        let endpoints = std::env::var("HSM_ENDPOINTS").map_err(|_| {
            ClientError::Config("HSM_ENDPOINTS is not set (load the client.env that hsm-daemon wrote)".into())
        })?;
        let ca = std::env::var("HSM_CA_CERT").map_err(|_| {
            ClientError::Config("HSM_CA_CERT is not set (load the client.env that hsm-daemon wrote)".into())
        })?;
        Self::from_parts(&endpoints, Path::new(&ca))
    }

    /// Presents a client certificate (mutual TLS).
    pub fn with_client_identity(mut self, cert_pem: String, key_pem: String) -> Self {
        self.client_identity = Some((cert_pem, Zeroizing::new(key_pem)));
        self
    }

    /// Verifies the HSMs' certificates against this name instead of the
    /// endpoint's host.
    pub fn with_server_name(mut self, name: String) -> Self {
        self.server_name = Some(name);
        self
    }

    /// Talks plaintext gRPC to an HSM started with
    /// `--insecure-plaintext-no-tls`. Secrets cross the network in clear.
    pub fn insecure_plaintext(mut self) -> Self {
        self.plaintext = true;
        self
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub(crate) fn client_identity(&self) -> Option<(&str, &str)> {
        self.client_identity.as_ref().map(|(c, k)| (c.as_str(), k.as_str()))
    }

    pub(crate) fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    pub(crate) fn plaintext(&self) -> bool {
        self.plaintext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn endpoints_are_split_trimmed_and_checked() {
        let c = ClientConfig::new(vec![" 127.0.0.1:1 ".into(), "".into(), "localhost:2".into()], PEM.into()).unwrap();
        assert_eq!(c.endpoints(), ["127.0.0.1:1", "localhost:2"]);
        for bad in ["", "https://127.0.0.1:1", "localhost"] {
            let err = ClientConfig::new(vec![bad.into()], PEM.into()).unwrap_err();
            assert!(err.to_string().contains("endpoint"), "{bad:?}: {err}");
        }
        assert!(ClientConfig::new(vec!["a:1".into()], "garbage".into()).unwrap_err().to_string().contains("PEM"));
    }
}
