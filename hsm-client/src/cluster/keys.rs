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
//! one (same masking key): [`ClusterSession::extract_masked_key`] here,
//! [`ClusterSession::insert_masked_key`] there (CloudHSM's `key replicate`).
//!
//! Creation is retried on another HSM like any call when an HSM cannot take
//! it; if a connection broke after the HSM made the key (tonic's `Unknown`),
//! that HSM keeps an orphan copy that no caller was told about.

use std::{collections::BTreeMap, fmt, future::Future};

use futures_util::future::join;

use super::{ClusterSession, Completion, quorum::approval_for, session::lock};
use crate::{
    Approval, ClientError, ClusterApproval, KeyInfo, KeyOptions, KeyPairSpec, MaskedObject, Session,
    config::DISABLE_KEY_AVAILABILITY_CHECK_ENV,
    keys::{Cipher, HashAlgorithm, KeyClass, KeyType, SignMechanism, SymmetricKeyType, WrapMechanism, WrapParams},
};

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

/// Which HSMs hold a key, as last asked.
struct Presence {
    at: Vec<usize>,
    session: bool,
}

impl ClusterSession {
    /// Generates an AES or generic-secret key on one HSM and copies it to the
    /// others (unless it is a session key).
    pub async fn generate_symmetric_key(
        &self,
        key_type: SymmetricKeyType,
        key_length_bytes: u32,
        options: &KeyOptions,
    ) -> Result<ClusterKey, ClientError> {
        let (at, key) =
            self.on_one(&self.logged_in(), |s| s.generate_symmetric_key(key_type, key_length_bytes, options)).await?;
        self.settle_new(at, key).await
    }

    /// Generates a key pair on one HSM and copies both halves to the others;
    /// returns (public, private).
    pub async fn generate_key_pair(
        &self,
        spec: &KeyPairSpec,
        public: &KeyOptions,
        private: &KeyOptions,
    ) -> Result<(ClusterKey, ClusterKey), ClientError> {
        let (at, (public, private)) =
            self.on_one(&self.logged_in(), |s| s.generate_key_pair(spec, public, private)).await?;
        // The two halves are copied to the other HSMs at the same time: each
        // copy waits on the HSMs' commits, so one after the other doubles
        // the wait.
        let (public, private) = join(self.settle_new(at, public), self.settle_new(at, private)).await;
        Ok((public?, private?))
    }

    /// Imports a PEM key on one HSM and copies it to the others.
    pub async fn import_pem(&self, pem: &str, options: &KeyOptions) -> Result<ClusterKey, ClientError> {
        let (at, key) = self.on_one(&self.logged_in(), |s| s.import_pem(pem, options)).await?;
        self.settle_new(at, key).await
    }

    /// Imports raw symmetric key bytes on one HSM and copies the key.
    pub async fn import_secret(
        &self,
        key_type: SymmetricKeyType,
        secret: &[u8],
        options: &KeyOptions,
    ) -> Result<ClusterKey, ClientError> {
        let (at, key) = self.on_one(&self.logged_in(), |s| s.import_secret(key_type, secret, options)).await?;
        self.settle_new(at, key).await
    }

    /// Unwraps on an HSM that holds the unwrapping key, then copies the new
    /// key to the others.
    #[expect(clippy::too_many_arguments, reason = "mirrors Session::unwrap_key, one argument per request field")]
    pub async fn unwrap_key(
        &self,
        unwrapping_key: &str,
        wrapped: &[u8],
        mechanism: WrapMechanism,
        hash_alg: Option<HashAlgorithm>,
        key_type: KeyType,
        key_class: KeyClass,
        curve: Option<&str>,
        options: &KeyOptions,
    ) -> Result<ClusterKey, ClientError> {
        self.unwrap_key_approved(
            unwrapping_key,
            wrapped,
            mechanism,
            &WrapParams::hashed(hash_alg),
            key_type,
            key_class,
            curve,
            options,
            None,
        )
        .await
    }

    /// [`ClusterSession::unwrap_key`] with a key-management approval of the
    /// unwrapping key.
    #[expect(clippy::too_many_arguments, reason = "mirrors the UnwrapKey request, one argument per field")]
    pub async fn unwrap_key_approved(
        &self,
        unwrapping_key: &str,
        wrapped: &[u8],
        mechanism: WrapMechanism,
        params: &WrapParams,
        key_type: KeyType,
        key_class: KeyClass,
        curve: Option<&str>,
        options: &KeyOptions,
        approval: Option<&ClusterApproval>,
    ) -> Result<ClusterKey, ClientError> {
        let candidates = self.usable(unwrapping_key).await?;
        let (at, key) = self
            .on_one(&candidates, |s| async move {
                let approval = approval_for(s, approval).await?;
                s.unwrap_key_approved(
                    unwrapping_key,
                    wrapped,
                    mechanism,
                    params,
                    key_type,
                    key_class,
                    curve,
                    options,
                    approval.as_ref(),
                )
                .await
            })
            .await?;
        self.retire(approval).await;
        self.settle_new(at, key).await
    }

    /// Deletes a key on an HSM that holds it and copies the deletion to the
    /// others. Not subject to the availability check: removing a key never
    /// depends on how many copies it has.
    pub async fn delete_key(&self, reference: &str) -> Result<ClusterKey, ClientError> {
        let deleted = self.modify(reference, false, |s| s.delete_key(reference)).await;
        lock(&self.session_keys).remove(reference);
        lock(&self.holders).remove(reference);
        deleted
    }

    pub async fn share_key(&self, reference: &str, username: &str) -> Result<ClusterKey, ClientError> {
        self.share_key_approved(reference, username, true, None).await
    }

    pub async fn unshare_key(&self, reference: &str, username: &str) -> Result<ClusterKey, ClientError> {
        self.share_key_approved(reference, username, false, None).await
    }

    /// Shares (`share`) or unshares a key with a key-management approval:
    /// the HSM that makes the change spends its own token of `approval`.
    pub async fn share_key_approved(
        &self,
        reference: &str,
        username: &str,
        share: bool,
        approval: Option<&ClusterApproval>,
    ) -> Result<ClusterKey, ClientError> {
        self.modify_approved(reference, approval, |s, approval| async move {
            s.share_key_approved(reference, username, share, approval.as_ref()).await
        })
        .await
    }

    pub async fn set_key_attribute(&self, reference: &str, name: &str, value: &str) -> Result<ClusterKey, ClientError> {
        self.set_key_attribute_approved(reference, name, value, None).await
    }

    /// Sets an attribute with a key-management approval.
    pub async fn set_key_attribute_approved(
        &self,
        reference: &str,
        name: &str,
        value: &str,
        approval: Option<&ClusterApproval>,
    ) -> Result<ClusterKey, ClientError> {
        self.modify_approved(reference, approval, |s, approval| async move {
            s.set_key_attribute_approved(reference, name, value, approval.as_ref()).await
        })
        .await
    }

    /// Lists keys on every HSM and merges them by reference, each with its
    /// coverage. Paging (`max_items` 0 means all) runs over the merged list,
    /// and its token is an offset into it, as the CloudHSM CLI's is: the
    /// first page of two gives `next_token` "2", the next "4". A token
    /// survives no change to the keys in between (a key added or deleted
    /// before it shifts the pages), as AWS's offsets do not.
    pub async fn list_keys(
        &self,
        filters: &[(String, String)],
        max_items: u32,
        starting_token: Option<&str>,
    ) -> Result<ClusterKeyPage, ClientError> {
        let skip = starting_token.map(parse_offset).transpose()?.unwrap_or(0);
        let lists =
            self.on_all(|s| async move { Ok(s.list_keys(filters, 0, None).await?.keys) }).await.into_result()?;
        let answered: Vec<(String, Vec<KeyInfo>)> =
            lists.succeeded().map(|(endpoint, keys)| (endpoint.to_owned(), keys.clone())).collect();
        let unanswered: Vec<(String, ClientError)> =
            lists.failed().map(|(endpoint, e)| (endpoint.to_owned(), e.clone())).collect();
        let merged = merge_keys(&answered, self.cluster_size(), &unanswered);
        let total = merged.len();
        let take = if max_items == 0 { usize::MAX } else { max_items as usize };
        let keys: Vec<ClusterKey> = merged.into_iter().skip(skip).take(take).collect();
        let shown = skip.saturating_add(keys.len());
        let next_token = (shown < total).then(|| shown.to_string());
        Ok(ClusterKeyPage { keys, total: total as u64, next_token, unanswered })
    }

    /// Extracts token key `reference` as a masked object from an HSM that
    /// holds it, for CloudHSM's `key replicate`: only a clone of this
    /// cluster (one made from its backup, with the same masking key) can
    /// open it. Crypto users may extract only keys they own.
    pub async fn extract_masked_key(&self, reference: &str) -> Result<MaskedObject, ClientError> {
        let holders = self.usable(reference).await?;
        let (_, object) = self.on_one(&holders, |s| s.extract_masked_key(reference)).await?;
        Ok(object)
    }

    /// Inserts a masked key (extracted from this cluster's source or one of
    /// its clones) into every logged-in HSM of this cluster. Fails with the
    /// HSMs' own refusal when none took it (another cluster's masking key,
    /// an owner missing here), in which case nothing was written; otherwise
    /// the coverage names the HSMs that did not.
    pub async fn insert_masked_key(&self, object: &MaskedObject) -> Result<Coverage, ClientError> {
        let mut failed: Vec<(String, ClientError)> =
            self.unavailable().into_iter().map(|(endpoint, why)| (endpoint.to_owned(), why.clone())).collect();
        let mut holding = Vec::new();
        for (at, outcome) in self.on_each(&self.logged_in(), |s| s.insert_masked_object(object)).await {
            match outcome {
                // Not applied: the HSM already held this version or a newer
                // one, which is as good.
                Ok(_) => holding.push(at),
                Err(e) => failed.push((self.endpoint(at).to_owned(), e)),
            }
        }
        if holding.is_empty() {
            return Err(super::fanout::combine(failed));
        }
        holding.sort_unstable();
        lock(&self.holders).insert(object.key_reference.clone(), holding.clone());
        Ok(self.coverage(&holding, false, failed))
    }

    /// Which HSMs hold a key now (asked afresh).
    pub async fn key_coverage(&self, reference: &str) -> Coverage {
        lock(&self.holders).remove(reference);
        let presence = self.presence(reference).await;
        self.coverage(&presence.at, presence.session, Vec::new())
    }

    pub async fn export_public_key(&self, reference: &str) -> Result<String, ClientError> {
        self.with_key(reference, |s| s.export_public_key(reference)).await
    }

    /// Wraps on an HSM that holds both keys.
    pub async fn wrap_key(
        &self,
        wrapping_key: &str,
        key: &str,
        mechanism: WrapMechanism,
        hash_alg: Option<HashAlgorithm>,
    ) -> Result<Vec<u8>, ClientError> {
        self.wrap_key_approved(wrapping_key, key, mechanism, &WrapParams::hashed(hash_alg), None).await
    }

    /// [`ClusterSession::wrap_key`] with AES-GCM's parameters and a
    /// key-management approval of the key to wrap.
    pub async fn wrap_key_approved(
        &self,
        wrapping_key: &str,
        key: &str,
        mechanism: WrapMechanism,
        params: &WrapParams,
        approval: Option<&ClusterApproval>,
    ) -> Result<Vec<u8>, ClientError> {
        let payload = self.usable(key).await?;
        let wrapping = self.usable(wrapping_key).await?;
        let both: Vec<usize> = payload.iter().copied().filter(|at| wrapping.contains(at)).collect();
        let candidates = if both.is_empty() { payload } else { both };
        let (_, wrapped) = self
            .on_one(&candidates, |s| async move {
                let approval = approval_for(s, approval).await?;
                s.wrap_key_approved(wrapping_key, key, mechanism, params, approval.as_ref()).await
            })
            .await?;
        self.retire(approval).await;
        Ok(wrapped)
    }

    pub async fn encrypt(
        &self,
        reference: &str,
        cipher: Cipher,
        hash_alg: Option<HashAlgorithm>,
        iv: &[u8],
        aad: &[u8],
        data: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), ClientError> {
        self.with_key(reference, |s| s.encrypt(reference, cipher, hash_alg, iv, aad, data)).await
    }

    pub async fn decrypt(
        &self,
        reference: &str,
        cipher: Cipher,
        hash_alg: Option<HashAlgorithm>,
        iv: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        self.with_key(reference, |s| s.decrypt(reference, cipher, hash_alg, iv, aad, ciphertext)).await
    }

    pub async fn sign(
        &self,
        reference: &str,
        mechanism: SignMechanism,
        hash_alg: Option<HashAlgorithm>,
        data: &[u8],
        data_is_digest: bool,
    ) -> Result<Vec<u8>, ClientError> {
        self.sign_approved(reference, mechanism, hash_alg, data, data_is_digest, None).await
    }

    /// Signs with a key-usage approval: the HSM that signs spends its own
    /// token of `approval`.
    pub async fn sign_approved(
        &self,
        reference: &str,
        mechanism: SignMechanism,
        hash_alg: Option<HashAlgorithm>,
        data: &[u8],
        data_is_digest: bool,
        approval: Option<&ClusterApproval>,
    ) -> Result<Vec<u8>, ClientError> {
        let signature = self
            .with_key(reference, |s| async move {
                let approval = approval_for(s, approval).await?;
                s.sign_approved(reference, mechanism, hash_alg, data, data_is_digest, approval.as_ref()).await
            })
            .await?;
        self.retire(approval).await;
        Ok(signature)
    }

    pub async fn verify(
        &self,
        reference: &str,
        mechanism: SignMechanism,
        hash_alg: Option<HashAlgorithm>,
        data: &[u8],
        data_is_digest: bool,
        signature: &[u8],
    ) -> Result<bool, ClientError> {
        self.with_key(reference, |s| s.verify(reference, mechanism, hash_alg, data, data_is_digest, signature)).await
    }

    pub async fn digest(&self, hash_alg: HashAlgorithm, data: &[u8]) -> Result<Vec<u8>, ClientError> {
        Ok(self.on_one(&self.logged_in(), |s| s.digest(hash_alg, data)).await?.1)
    }

    /// `length` (1 to 16384) random bytes from one of the HSMs.
    pub async fn generate_random(&self, length: u32) -> Result<Vec<u8>, ClientError> {
        Ok(self.on_one(&self.logged_in(), |s| s.generate_random(length)).await?.1)
    }

    /// Runs `op` on an HSM that holds the key, round-robin with retries.
    async fn with_key<'a, T, Fut>(&'a self, reference: &str, op: impl Fn(&'a Session) -> Fut) -> Result<T, ClientError>
    where
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let candidates = self.usable(reference).await?;
        let result = self.on_one(&candidates, op).await;
        if let Err(ClientError::NotFound(_)) = result {
            // Deleted meanwhile, perhaps by another client: ask again next time.
            lock(&self.holders).remove(reference);
        }
        Ok(result?.1)
    }

    /// Applies a change on an HSM that holds the key and copies the result
    /// (the changed key, or its tombstone) to every other HSM.
    /// [`Self::modify`] with a key-management approval: the HSM that makes
    /// the change gets its own token of `approval`, and the other HSMs'
    /// tokens of it are retired afterwards.
    async fn modify_approved<'a, Fut>(
        &'a self,
        reference: &str,
        approval: Option<&'a ClusterApproval>,
        op: impl Fn(&'a Session, Option<Approval>) -> Fut,
    ) -> Result<ClusterKey, ClientError>
    where
        Fut: Future<Output = Result<KeyInfo, ClientError>>,
    {
        let op = &op;
        let changed = self
            .modify(reference, true, |s| async move {
                let approval = approval_for(s, approval).await?;
                op(s, approval).await
            })
            .await?;
        self.retire(approval).await;
        Ok(changed)
    }

    async fn modify<'a, Fut>(
        &'a self,
        reference: &str,
        check: bool,
        op: impl Fn(&'a Session) -> Fut,
    ) -> Result<ClusterKey, ClientError>
    where
        Fut: Future<Output = Result<KeyInfo, ClientError>>,
    {
        let presence = if check { self.checked_presence(reference).await? } else { self.presence(reference).await };
        let (at, info) = self.on_one(&self.or_anywhere(presence.at), op).await?;
        if presence.session || info.session {
            let coverage = self.coverage(&[at], true, Vec::new());
            return Ok(ClusterKey { info, coverage });
        }
        let coverage = self.replicate(at, reference).await;
        Ok(ClusterKey { info, coverage })
    }

    /// Records a key just made on HSM `at`: a session key is remembered
    /// there; a token key is copied to every other HSM and must then pass the
    /// availability check.
    async fn settle_new(&self, at: usize, info: KeyInfo) -> Result<ClusterKey, ClientError> {
        if info.session {
            lock(&self.session_keys).insert(info.reference.clone(), at);
            let coverage = self.coverage(&[at], true, Vec::new());
            return Ok(ClusterKey { info, coverage });
        }
        let coverage = self.replicate(at, &info.reference).await;
        self.check_availability(&info.reference, coverage.holding.len()).map_err(|e| {
            e.map_message(|m| format!("{m}; it was created, but could not be copied: {}", failures(&coverage)))
        })?;
        Ok(ClusterKey { info, coverage })
    }

    /// Copies key `reference` from HSM `from` to every other logged-in HSM.
    async fn replicate(&self, from: usize, reference: &str) -> Coverage {
        let others: Vec<usize> = self.logged_in().into_iter().filter(|at| *at != from).collect();
        let mut failed: Vec<(String, ClientError)> =
            self.unavailable().into_iter().map(|(endpoint, why)| (endpoint.to_owned(), why.clone())).collect();
        let mut holding = vec![from];
        // Nothing to copy to (one HSM, or the others are down): no extraction.
        let extracted =
            if others.is_empty() { None } else { Some(self.run_at(from, |s| s.extract_masked_key(reference)).await) };
        match extracted {
            None => {}
            Some(Ok(object)) => {
                for (at, outcome) in self.on_each(&others, |s| s.insert_masked_object(&object)).await {
                    match outcome {
                        // Not applied: the HSM already held this version or a
                        // newer one, which is as good.
                        Ok(_) => holding.push(at),
                        Err(e) => failed.push((self.endpoint(at).to_owned(), e)),
                    }
                }
            }
            Some(Err(e)) => {
                let why =
                    e.map_message(|m| format!("could not extract it from {} to copy it: {m}", self.endpoint(from)));
                failed.extend(others.iter().map(|at| (self.endpoint(*at).to_owned(), why.clone())));
            }
        }
        holding.sort_unstable();
        failed.sort_by_key(|(endpoint, _)| self.endpoints().position(|e| e == endpoint));
        lock(&self.holders).insert(reference.to_owned(), holding.clone());
        self.coverage(&holding, false, failed)
    }

    /// The HSMs to send an operation on key `reference` to: those that hold
    /// it, if it passes the availability check. A key no HSM admits to
    /// holding goes to any HSM, so that the HSM's own refusal (not found,
    /// bad reference) is what the caller sees.
    async fn usable(&self, reference: &str) -> Result<Vec<usize>, ClientError> {
        Ok(self.or_anywhere(self.checked_presence(reference).await?.at))
    }

    /// Where the key is, refused if it is a token key on too few HSMs.
    async fn checked_presence(&self, reference: &str) -> Result<Presence, ClientError> {
        let presence = self.presence(reference).await;
        if !presence.at.is_empty() && !presence.session {
            self.check_availability(reference, presence.at.len())?;
        }
        Ok(presence)
    }

    fn or_anywhere(&self, at: Vec<usize>) -> Vec<usize> {
        if at.is_empty() { self.logged_in() } else { at }
    }

    /// Where a key is: a session key made here, or the cached holders of a
    /// token key if they pass the threshold, or else every HSM is asked.
    async fn presence(&self, reference: &str) -> Presence {
        if let Some(at) = lock(&self.session_keys).get(reference) {
            return Presence { at: vec![*at], session: true };
        }
        if let Some(at) = lock(&self.holders).get(reference)
            && at.len() >= self.threshold()
        {
            return Presence { at: at.clone(), session: false };
        }
        let filter = &[("key-reference".to_owned(), reference.to_owned())];
        let listed =
            self.on_each(&self.logged_in(), |s| async move { Ok(s.list_keys(filter, 1, None).await?.keys) }).await;
        let mut presence = Presence { at: Vec::new(), session: false };
        for (at, keys) in listed {
            if let Some(key) = keys.ok().and_then(|k| k.into_iter().next()) {
                presence.session |= key.session;
                presence.at.push(at);
            }
        }
        if presence.session {
            if let [at] = presence.at[..] {
                lock(&self.session_keys).insert(reference.to_owned(), at);
            }
        } else if !presence.at.is_empty() {
            lock(&self.holders).insert(reference.to_owned(), presence.at.clone());
        }
        presence
    }

    /// How many HSMs must hold a token key before it is used.
    fn threshold(&self) -> usize {
        availability_threshold(self.cluster.settings.key_availability_check, self.cluster_size())
    }

    fn check_availability(&self, reference: &str, held_by: usize) -> Result<(), ClientError> {
        let needed = self.threshold();
        if held_by >= needed {
            return Ok(());
        }
        Err(ClientError::FailedPrecondition(format!(
            "key {reference} does not meet the availability requirements: it is on {held_by} of {} HSMs, and a key \
             must be on at least {needed} HSMs before it is used (turn this check off with \
             --disable-key-availability-check, {DISABLE_KEY_AVAILABILITY_CHECK_ENV}=1 or \
             ClientConfig::with_key_availability_check(false))",
            self.cluster_size()
        )))
    }

    fn coverage(&self, holding: &[usize], session: bool, failures: Vec<(String, ClientError)>) -> Coverage {
        Coverage {
            holding: holding.iter().map(|at| self.endpoint(*at).to_owned()).collect(),
            cluster_size: self.cluster_size(),
            session,
            failures,
        }
    }
}

/// The number of HSMs a token key must be on: 2 with the check on in a
/// cluster of two or more HSMs, otherwise 1.
fn availability_threshold(check: bool, cluster_size: usize) -> usize {
    if check && cluster_size >= 2 { 2 } else { 1 }
}

fn failures(coverage: &Coverage) -> String {
    let listed: Vec<String> = coverage.failures.iter().map(|(endpoint, e)| format!("{endpoint}: {e}")).collect();
    if listed.is_empty() { "no other HSM is logged in".to_owned() } else { listed.join("; ") }
}

/// A `starting_token`: the number of keys earlier pages listed, in decimal
/// (what `next_token` gave).
fn parse_offset(raw: &str) -> Result<usize, ClientError> {
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        // A count too large for usize is past the end of every list.
        return Ok(raw.parse().unwrap_or(usize::MAX));
    }
    let shown: String = raw.chars().take(40).collect();
    Err(ClientError::InvalidArgument(format!(
        "invalid starting_token: must be the next_token of an earlier page, a count of keys such as \"2\" (got \
         {shown:?})"
    )))
}

/// A key reference as a number, so that listings sort as the HSMs sort.
/// Errors as the HSM words them.
fn parse_reference(raw: &str, field: &str) -> Result<u64, ClientError> {
    let invalid = || {
        let shown: String = raw.chars().take(40).collect();
        ClientError::InvalidArgument(format!(
            "invalid {field}: must be a key reference: 0x and 1 to 16 hex digits (got {shown:?})"
        ))
    };
    let digits = raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")).ok_or_else(invalid)?;
    if digits.is_empty() || digits.len() > 16 {
        return Err(invalid());
    }
    u64::from_str_radix(digits, 16).map_err(|_| invalid())
}

/// Sort position of a reference an HSM gave; one it could not have given
/// sorts last.
fn reference_order(reference: &str) -> u64 {
    parse_reference(reference, "key_reference").unwrap_or(u64::MAX)
}

/// Merges per-HSM listings (endpoint, keys) by reference: each key as the
/// first HSM showed it, with the endpoints that listed it.
fn merge_keys(
    lists: &[(String, Vec<KeyInfo>)],
    cluster_size: usize,
    unanswered: &[(String, ClientError)],
) -> Vec<ClusterKey> {
    let mut merged: BTreeMap<(u64, String), ClusterKey> = BTreeMap::new();
    for (endpoint, keys) in lists {
        for key in keys {
            let entry =
                merged.entry((reference_order(&key.reference), key.reference.clone())).or_insert_with(|| ClusterKey {
                    info: key.clone(),
                    coverage: Coverage {
                        holding: Vec::new(),
                        cluster_size,
                        session: key.session,
                        failures: unanswered.to_vec(),
                    },
                });
            entry.coverage.holding.push(endpoint.clone());
        }
    }
    merged.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(reference: &str, session: bool) -> KeyInfo {
        KeyInfo {
            reference: reference.into(),
            attributes: vec![("label".into(), reference.into())],
            owner: "cu".into(),
            shared_users: Vec::new(),
            session,
            manage_quorum: 0,
            use_quorum: 0,
        }
    }

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

    #[test]
    fn keys_need_two_hsms_only_with_the_check_on_in_a_cluster_of_two_or_more() {
        assert_eq!(availability_threshold(true, 3), 2);
        assert_eq!(availability_threshold(true, 2), 2);
        assert_eq!(availability_threshold(true, 1), 1);
        assert_eq!(availability_threshold(false, 3), 1);
    }

    #[test]
    fn listings_merge_by_reference_in_numeric_order_with_who_holds_each_key() {
        let a = vec![key("0x0000000000100001", false), key("0x0000000000200002", false)];
        let b = vec![key("0x0000000000100001", false), key("0x00000000000fffff", true)];
        let down = vec![("c:1".to_owned(), ClientError::Unavailable("down".into()))];
        let merged = merge_keys(&[("a:1".into(), a), ("b:1".into(), b)], 3, &down);
        let shown: Vec<(&str, Vec<&str>, CoverageLabel)> = merged
            .iter()
            .map(|k| {
                (k.info.reference.as_str(), k.coverage.holding.iter().map(String::as_str).collect(), k.coverage.label())
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("0x00000000000fffff", vec!["b:1"], CoverageLabel::Session),
                ("0x0000000000100001", vec!["a:1", "b:1"], CoverageLabel::Partial),
                ("0x0000000000200002", vec!["a:1"], CoverageLabel::Partial),
            ]
        );
        assert_eq!(merged[1].coverage.failures, down);
    }

    #[test]
    fn references_parse_as_the_hsm_parses_them() {
        assert_eq!(parse_reference("0x0000000000100001", "f").unwrap(), 0x100001);
        assert_eq!(parse_reference("0XfF", "f").unwrap(), 0xff);
        for bad in ["", "0x", "12", "0x12345678901234567", "0xzz"] {
            let err = parse_reference(bad, "key_reference").unwrap_err();
            assert!(matches!(&err, ClientError::InvalidArgument(m) if m.starts_with("invalid key_reference")), "{err}");
        }
    }

    #[test]
    fn starting_tokens_are_counts_of_keys_already_listed() {
        assert_eq!(parse_offset("0").unwrap(), 0);
        assert_eq!(parse_offset("4").unwrap(), 4);
        assert_eq!(parse_offset("99999999999999999999999").unwrap(), usize::MAX, "past every list");
        for bad in ["", "-2", "2.0", " 2", "0x0000000000100001", "page-two"] {
            let err = parse_offset(bad).unwrap_err();
            assert!(
                matches!(&err, ClientError::InvalidArgument(m) if m.starts_with("invalid starting_token")),
                "{err}"
            );
        }
    }
}
