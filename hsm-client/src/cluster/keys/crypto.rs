//! Cryptography and wrapping across the cluster: each call goes to one HSM
//! that holds the key, round-robin with retries. An approval is spent on
//! that HSM, and the other HSMs' tokens of it are retired afterwards, so
//! that one signed file approves one operation in the cluster.

use crate::{
    ClientError, ClusterApproval, ClusterSession, Decrypt, Encrypt, Sign, Verify, WrapKey,
    cluster::quorum::approval_for, keys::HashAlgorithm,
};

impl ClusterSession {
    pub async fn export_public_key(&self, reference: &str) -> Result<String, ClientError> {
        self.with_key(reference, |s| s.export_public_key(reference)).await
    }

    /// Wraps on an HSM that holds both keys.
    pub async fn wrap_key(&self, request: WrapKey<'_, ClusterApproval>) -> Result<Vec<u8>, ClientError> {
        let payload = self.usable(request.key).await?;
        let wrapping = self.usable(request.wrapping_key).await?;
        let both: Vec<usize> = payload.iter().copied().filter(|at| wrapping.contains(at)).collect();
        let candidates = if both.is_empty() { payload } else { both };
        let request = &request;
        let (_, wrapped) = self
            .on_one(&candidates, |s| async move {
                let approval = approval_for(s, request.approval).await?;
                s.wrap_key(request.with_approval(approval.as_ref())).await
            })
            .await?;
        self.retire(request.approval).await;
        Ok(wrapped)
    }

    /// Encrypts; returns (iv, ciphertext).
    pub async fn encrypt(&self, request: Encrypt<'_>) -> Result<(Vec<u8>, Vec<u8>), ClientError> {
        self.with_key(request.key, |s| s.encrypt(request)).await
    }

    pub async fn decrypt(&self, request: Decrypt<'_>) -> Result<Vec<u8>, ClientError> {
        self.with_key(request.key, |s| s.decrypt(request)).await
    }

    pub async fn sign(&self, request: Sign<'_, ClusterApproval>) -> Result<Vec<u8>, ClientError> {
        let request = &request;
        let signature = self
            .with_key(request.key, |s| async move {
                let approval = approval_for(s, request.approval).await?;
                s.sign(request.with_approval(approval.as_ref())).await
            })
            .await?;
        self.retire(request.approval).await;
        Ok(signature)
    }

    pub async fn verify(&self, request: Verify<'_>) -> Result<bool, ClientError> {
        self.with_key(request.key, |s| s.verify(request)).await
    }

    pub async fn digest(&self, hash_alg: HashAlgorithm, data: &[u8]) -> Result<Vec<u8>, ClientError> {
        Ok(self.on_one(&self.logged_in(), |s| s.digest(hash_alg, data)).await?.1)
    }

    /// `length` (1 to 16384) random bytes from one of the HSMs.
    pub async fn generate_random(&self, length: u32) -> Result<Vec<u8>, ClientError> {
        Ok(self.on_one(&self.logged_in(), |s| s.generate_random(length)).await?.1)
    }
}
