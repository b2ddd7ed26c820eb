//! Keys across the cluster.
//!
//! A token key is made (generated, imported or unwrapped) on one HSM, then
//! extracted from it as a masked object and inserted into every other
//! logged-in HSM before the call returns; a change to a token key (delete,
//! share, unshare, set-attribute) is made on one HSM that holds it and copied
//! the same way (a deleted key travels as a tombstone). Session keys stay on
//! the HSM that made them, and their operations are sent there.
//!
//! Crypto and reads go round-robin to the HSMs that hold the key. With the
//! key availability check on (the default) and two or more endpoints, a
//! token key held by fewer than two HSMs is refused, as the CloudHSM client
//! SDK refuses it; which HSMs hold a key is asked of every HSM and cached,
//! and a key below the threshold is asked about again on its next use (the
//! HSMs' own background sync may have copied it meanwhile).
//!
//! A key moves to another cluster only if that cluster is a clone of this
//! one (same masking key): [`crate::ClusterSession::extract_masked_key`] here,
//! [`crate::ClusterSession::insert_masked_key`] there (CloudHSM's `key replicate`).
//!
//! Creation is retried on another HSM like any call when an HSM cannot take
//! it; if a connection broke after the HSM made the key (tonic's `Unknown`),
//! that HSM keeps an orphan copy that no caller was told about.
//!
//! # Layout
//! - This file: what the cluster layer says about a key: where it is
//!   ([`Coverage`]) and how a listing shows it.
//! - `writes`: creating keys and changing them on one HSM, then copying
//!   the result to the others.
//! - `placement`: which HSMs hold a key, the availability check, and
//!   routing an operation to a holder.
//! - `crypto`: cryptography and wrapping, on an HSM that holds the key.
//! - `listing`: key lists merged from every HSM, and their paging.

mod crypto;
mod listing;
mod placement;
mod writes;

use std::fmt;

use super::Completion;
use crate::{ClientError, KeyInfo};

/// A key and where in the cluster it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterKey {
    pub info: KeyInfo,
    pub coverage: Coverage,
}

/// Which HSMs hold a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Endpoints of the HSMs that hold the key (after a deletion: that no
    /// longer hold it).
    pub holding: Vec<String>,
    /// HSMs configured in the cluster.
    pub cluster_size: usize,
    /// A session key: on one HSM by design.
    pub session: bool,
    /// HSMs that could not be brought up to date or asked, and why.
    pub failures: Vec<(String, ClientError)>,
}

/// [`Coverage`] in a word, as `key list --verbose` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoverageLabel {
    /// On every HSM of the cluster.
    Full,
    /// On some HSMs only.
    Partial,
    /// A session key, on the HSM of its session.
    Session,
}

impl fmt::Display for CoverageLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CoverageLabel::Full => "full",
            CoverageLabel::Partial => "partial",
            CoverageLabel::Session => "session",
        })
    }
}

impl Coverage {
    pub fn label(&self) -> CoverageLabel {
        if self.session {
            CoverageLabel::Session
        } else if self.holding.len() >= self.cluster_size {
            CoverageLabel::Full
        } else {
            CoverageLabel::Partial
        }
    }

    /// As a write's completion: did the change reach every HSM?
    pub fn completion(&self) -> Completion {
        match (self.label(), self.holding.len()) {
            (_, 0) => Completion::Failed,
            (CoverageLabel::Partial, _) => Completion::Partial,
            _ => Completion::Full,
        }
    }
}

/// One page of a cluster-wide key listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterKeyPage {
    /// By reference; each key as the first HSM (in endpoint order) that
    /// listed it shows it.
    pub keys: Vec<ClusterKey>,
    /// Keys matched over all pages and all HSMs.
    pub total: u64,
    /// How many keys this and earlier pages listed, when more remain:
    /// the `starting_token` of the next page.
    pub next_token: Option<String>,
    /// HSMs that could not list, and why.
    pub unanswered: Vec<(String, ClientError)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coverage(holding: usize, cluster_size: usize, session: bool) -> Coverage {
        Coverage {
            holding: (0..holding).map(|i| format!("h{i}:1")).collect(),
            cluster_size,
            session,
            failures: Vec::new(),
        }
    }

    #[test]
    fn coverage_is_full_on_every_hsm_partial_on_some_and_session_for_session_keys() {
        assert_eq!(coverage(3, 3, false).label(), CoverageLabel::Full);
        assert_eq!(coverage(2, 3, false).label(), CoverageLabel::Partial);
        assert_eq!(coverage(1, 3, true).label(), CoverageLabel::Session);
        assert_eq!(coverage(1, 1, false).label(), CoverageLabel::Full);
        assert_eq!(CoverageLabel::Partial.to_string(), "partial");
        assert_eq!(coverage(2, 3, false).completion(), Completion::Partial);
        assert_eq!(coverage(0, 3, false).completion(), Completion::Failed);
        assert_eq!(coverage(1, 3, true).completion(), Completion::Full);
    }
}
