//! Key writes across the cluster: a key is created or changed on one HSM,
//! then copied (as a masked object) to every other logged-in HSM before
//! the call returns.

use std::future::Future;

use futures_util::future::join;

use super::{ClusterKey, Coverage};
use crate::{
    Approval, ClientError, ClusterApproval, ClusterSession, KeyInfo, KeyOptions, KeyPairSpec, MaskedObject, Session,
    SetKeyAttribute, ShareKey, UnwrapKey,
    cluster::{fanout, quorum::approval_for, session::lock},
    keys::SymmetricKeyType,
};

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
    pub async fn unwrap_key(&self, request: UnwrapKey<'_, ClusterApproval>) -> Result<ClusterKey, ClientError> {
        let candidates = self.usable(request.unwrapping_key).await?;
        let request = &request;
        let (at, key) = self
            .on_one(&candidates, |s| async move {
                let approval = approval_for(s, request.approval).await?;
                s.unwrap_key(request.with_approval(approval.as_ref())).await
            })
            .await?;
        self.retire(request.approval).await;
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

    /// Shares a key on an HSM that holds it, and copies the change.
    pub async fn share_key(&self, request: ShareKey<'_, ClusterApproval>) -> Result<ClusterKey, ClientError> {
        let request = &request;
        self.modify_approved(request.key, request.approval, |s, approval| async move {
            s.share_key(request.with_approval(approval.as_ref())).await
        })
        .await
    }

    /// Takes back what [`ClusterSession::share_key`] gave.
    pub async fn unshare_key(&self, request: ShareKey<'_, ClusterApproval>) -> Result<ClusterKey, ClientError> {
        let request = &request;
        self.modify_approved(request.key, request.approval, |s, approval| async move {
            s.unshare_key(request.with_approval(approval.as_ref())).await
        })
        .await
    }

    pub async fn set_key_attribute(
        &self,
        request: SetKeyAttribute<'_, ClusterApproval>,
    ) -> Result<ClusterKey, ClientError> {
        let request = &request;
        self.modify_approved(request.key, request.approval, |s, approval| async move {
            s.set_key_attribute(request.with_approval(approval.as_ref())).await
        })
        .await
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
            return Err(fanout::combine(failed));
        }
        holding.sort_unstable();
        lock(&self.holders).insert(object.key_reference.clone(), holding.clone());
        Ok(self.coverage(&holding, false, failed))
    }

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

    /// Applies a change on an HSM that holds the key and copies the result
    /// (the changed key, or its tombstone) to every other HSM.
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
}

fn failures(coverage: &Coverage) -> String {
    let listed: Vec<String> = coverage.failures.iter().map(|(endpoint, e)| format!("{endpoint}: {e}")).collect();
    if listed.is_empty() { "no other HSM is logged in".to_owned() } else { listed.join("; ") }
}
