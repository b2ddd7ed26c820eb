//! `hsm.v1.CryptoService`: encrypt, decrypt, sign, verify, digest.
//!
//! The model checks the caller may use the key for this purpose and hands
//! back its parsed material; the mechanism then runs outside the model's
//! lock, on the blocking pool when the key is RSA.

use std::sync::Arc;

use hsm_proto::v1::{
    DecryptRequest, DecryptResponse, DigestRequest, DigestResponse, EncryptRequest, EncryptResponse, SignRequest,
    SignResponse, VerifyRequest, VerifyResponse, crypto_service_server::CryptoService,
};
use tonic::{Request, Response, Status};

use super::{HsmState, blocking, caller, convert};
use crate::{
    crypto::{self, Input, KeyKind, KeyMaterial},
    model::{KeyRef, ModelError, Usage},
};

#[derive(Debug)]
pub(super) struct CryptoApi {
    state: Arc<HsmState>,
}

impl CryptoApi {
    pub(super) fn new(state: Arc<HsmState>) -> Self {
        CryptoApi { state }
    }
}

/// Runs a mechanism: RSA on the blocking pool (milliseconds per private-key
/// operation), everything else inline (microseconds).
async fn run<T: Send + 'static>(
    key: Arc<KeyMaterial>,
    work: impl FnOnce(&KeyMaterial) -> Result<T, crypto::CryptoError> + Send + 'static,
) -> Result<T, ModelError> {
    if key.kind() == KeyKind::Rsa { blocking(move || Ok(work(&key)?)).await } else { Ok(work(&key)?) }
}

fn input(data: &[u8], is_digest: bool) -> Input<'_> {
    if is_digest { Input::Digest(data) } else { Input::Data(data) }
}

#[tonic::async_trait]
impl CryptoService for CryptoApi {
    async fn encrypt(&self, request: Request<EncryptRequest>) -> Result<Response<EncryptResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let key_ref = KeyRef::parse("key_reference", &req.key_reference)?;
        let cipher = convert::cipher(req.cipher, req.hash)?;
        let key = self.state.hsm().key_for_use(&caller, key_ref, Usage::Encrypt)?;
        let mut rng = self.state.fork_rng();
        let iv = (!req.iv.is_empty()).then_some(req.iv);
        let out = run(key, move |k| crypto::encrypt(k, cipher, iv.as_deref(), &req.aad, &req.data, &mut rng)).await?;
        Ok(Response::new(EncryptResponse { iv: out.iv.unwrap_or_default(), ciphertext: out.ciphertext }))
    }

    async fn decrypt(&self, request: Request<DecryptRequest>) -> Result<Response<DecryptResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let key_ref = KeyRef::parse("key_reference", &req.key_reference)?;
        let cipher = convert::cipher(req.cipher, req.hash)?;
        let key = self.state.hsm().key_for_use(&caller, key_ref, Usage::Decrypt)?;
        let iv = (!req.iv.is_empty()).then_some(req.iv);
        let plaintext = run(key, move |k| crypto::decrypt(k, cipher, iv.as_deref(), &req.aad, &req.ciphertext)).await?;
        Ok(Response::new(DecryptResponse { plaintext: plaintext.to_vec() }))
    }

    async fn sign(&self, request: Request<SignRequest>) -> Result<Response<SignResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let key_ref = KeyRef::parse("key_reference", &req.key_reference)?;
        let mechanism = convert::sign_mechanism(req.mechanism, req.hash)?;
        let key = self.state.hsm().key_for_use(&caller, key_ref, Usage::Sign)?;
        let mut rng = self.state.fork_rng();
        let signature =
            run(key, move |k| crypto::sign(k, mechanism, input(&req.data, req.data_is_digest), &mut rng)).await?;
        Ok(Response::new(SignResponse { signature }))
    }

    async fn verify(&self, request: Request<VerifyRequest>) -> Result<Response<VerifyResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let key_ref = KeyRef::parse("key_reference", &req.key_reference)?;
        let mechanism = convert::sign_mechanism(req.mechanism, req.hash)?;
        let key = self.state.hsm().key_for_use(&caller, key_ref, Usage::Verify)?;
        let valid =
            run(key, move |k| crypto::verify(k, mechanism, input(&req.data, req.data_is_digest), &req.signature))
                .await?;
        Ok(Response::new(VerifyResponse { valid }))
    }

    async fn digest(&self, request: Request<DigestRequest>) -> Result<Response<DigestResponse>, Status> {
        let req = request.get_ref();
        let hash = convert::hash("hash", req.hash)?;
        if req.data.len() > crypto::MAX_DATA_LEN {
            return Err(ModelError::InvalidArgument {
                field: "data",
                rule: format!("must be at most {} bytes in one operation", crypto::MAX_DATA_LEN),
            }
            .into());
        }
        Ok(Response::new(DigestResponse { digest: crypto::digest(hash, &req.data) }))
    }
}
