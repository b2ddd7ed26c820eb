//! A cluster its customer has claimed: from `initialize-cluster` on, every
//! HSM serves a certificate issued by the cluster key under the cluster
//! certificate the customer signed, and the HSMs and their clients trust
//! the customer's CA (the trust anchor) instead of the cluster CA.
//!
//! [`ClusterMaterial::adopt_customer_chain`] changes the files: it keeps the
//! chain in `D` (`customer-ca.pem`, `cluster-certificate.pem`, and the
//! cluster key, owner-only, in `cluster-certificate.key`), reissues every
//! HSM's certificate for the names it had, and points every config file's
//! `ca_cert` and `client.env`'s `HSM_CA_CERT` at the customer's CA. HSMs
//! prepared later are certified under the chain too
//! ([`ClusterMaterial::issue_hsm_tls`]). Running HSMs read their files when
//! they start: [`super::LocalCluster::adopt_customer_chain`] restarts those
//! served here.

use std::{fmt, fs, path::Path};

use rustls::pki_types::{CertificateDer, pem::PemObject as _};
use zeroize::Zeroizing;

use super::material::{ClusterMaterial, MaterialError, io_at, write_env};
use crate::{pki, settings::Settings};

/// The customer's CA, in `D`.
pub(super) const CUSTOMER_CA: &str = "customer-ca.pem";
/// The cluster certificate the customer signed, in `D`.
const CLUSTER_CERTIFICATE: &str = "cluster-certificate.pem";
/// The cluster key, owner-only, in `D`.
const CLUSTER_CERTIFICATE_KEY: &str = "cluster-certificate.key";

/// The chain of trust of a claimed cluster.
#[derive(Clone)]
pub struct CustomerChain {
    /// The cluster key (PKCS#8 PEM) that the CSR was over; it issues the
    /// HSMs' certificates.
    pub cluster_key_pem: Zeroizing<String>,
    /// `SignedCert`: the customer's certificate over the cluster key.
    pub cluster_certificate_pem: String,
    /// `TrustAnchor`: the customer's CA, which clients trust.
    pub trust_anchor_pem: String,
}

impl fmt::Debug for CustomerChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerChain")
            .field("cluster_certificate_pem", &self.cluster_certificate_pem)
            .field("trust_anchor_pem", &self.trust_anchor_pem)
            .field("cluster_key_pem", &"<redacted>")
            .finish()
    }
}

impl CustomerChain {
    /// The chain kept in `dir`, if the cluster has been claimed; all three
    /// files or none.
    pub(super) fn load(dir: &Path) -> Result<Option<Self>, MaterialError> {
        let names = [CUSTOMER_CA, CLUSTER_CERTIFICATE, CLUSTER_CERTIFICATE_KEY];
        let present = names.iter().filter(|name| dir.join(name).exists()).count();
        if present == 0 {
            return Ok(None);
        }
        if present < names.len() {
            return Err(MaterialError::Invalid {
                path: dir.to_owned(),
                reason: format!("holds part of a customer chain: {} go together", names.join(", ")),
            });
        }
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map_err(io_at(&path))
        };
        Ok(Some(CustomerChain {
            cluster_key_pem: Zeroizing::new(read(CLUSTER_CERTIFICATE_KEY)?),
            cluster_certificate_pem: read(CLUSTER_CERTIFICATE)?,
            trust_anchor_pem: read(CUSTOMER_CA)?,
        }))
    }
}

impl ClusterMaterial {
    /// Adopts the customer's chain (checked by the caller with
    /// [`pki::verify_signed_cluster_certificate`]): reissues every HSM's
    /// certificate under it for the names its certificate had, keeps the
    /// chain, and points the config files and `client.env` at the
    /// customer's CA. Every certificate is made before any file is
    /// written, so a key that does not match the certificate changes
    /// nothing.
    pub fn adopt_customer_chain(&mut self, chain: CustomerChain) -> Result<(), MaterialError> {
        let anchors = CertificateDer::pem_slice_iter(chain.trust_anchor_pem.as_bytes()).filter(Result::is_ok).count();
        if anchors != 1 {
            return Err(MaterialError::Pki(pki::PkiError::invalid(
                "the trust anchor",
                format!("holds {anchors} PEM certificates; give exactly one"),
            )));
        }
        let mut reissued = Vec::new();
        for (index, _) in self.hsms()? {
            let config = self.hsm_config_path(index);
            let settings = Settings::from_file(&config)
                .map_err(|e| MaterialError::Invalid { path: config.clone(), reason: e.to_string() })?;
            let hsm_id = settings
                .hsm_id
                .ok_or_else(|| MaterialError::Invalid { path: config.clone(), reason: "names no hsm_id".into() })?;
            let current = self.dir.join(format!("hsm-{index}.pem"));
            let names = pki::certificate_names(&fs::read_to_string(&current).map_err(io_at(&current))?)?;
            let server = pki::issue_hsm_certificate_under_cluster(
                &chain.cluster_key_pem,
                &chain.cluster_certificate_pem,
                &hsm_id,
                &names,
            )?;
            reissued.push((index, server));
        }

        self.write(CLUSTER_CERTIFICATE_KEY, chain.cluster_key_pem.as_bytes(), true)?;
        self.write(CLUSTER_CERTIFICATE, chain.cluster_certificate_pem.as_bytes(), false)?;
        self.write(CUSTOMER_CA, chain.trust_anchor_pem.as_bytes(), false)?;
        self.customer = Some(chain);
        let served_ca = toml::Value::from(self.served_dir.join(CUSTOMER_CA).display().to_string()).to_string();
        for (index, server) in reissued {
            self.write(&format!("hsm-{index}.key"), server.key_pem.as_bytes(), true)?;
            self.write(&format!("hsm-{index}.pem"), server.cert_pem.as_bytes(), false)?;
            self.set_line(index, "ca_cert", &served_ca)?;
        }
        self.repoint_client_env()
    }

    /// Points an existing `client.env` at the customer's CA, keeping its
    /// endpoints and its other variables.
    fn repoint_client_env(&self) -> Result<(), MaterialError> {
        let path = self.dir.join("client.env");
        if !path.exists() {
            return Ok(());
        }
        let text = fs::read_to_string(&path).map_err(io_at(&path))?;
        let endpoints: Vec<String> = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("HSM_ENDPOINTS="))
            .map(|list| list.split(',').map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect())
            .unwrap_or_default();
        let more: Vec<(String, String)> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .filter(|(name, _)| !matches!(name.trim(), "HSM_ENDPOINTS" | "HSM_CA_CERT"))
            .map(|(name, value)| (name.trim().to_owned(), value.to_owned()))
            .collect();
        write_env(&self.dir, &endpoints, &self.ca_path(), &more, self.durability)?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "customer_tests.rs"]
mod tests;
