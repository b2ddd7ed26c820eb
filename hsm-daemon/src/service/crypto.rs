//! `hsm.v1.CryptoService`: encrypt, decrypt, sign, verify, digest, random.
//!
//! The model checks the caller may use the key for this purpose and hands
//! back its parsed material; the mechanism then runs outside the model's
//! lock, on the blocking pool when the key is RSA.

use std::sync::Arc;

use hsm_proto::v1::{
    DecryptRequest, DecryptResponse, DigestRequest, DigestResponse, EncryptRequest, EncryptResponse,
    GenerateRandomRequest, GenerateRandomResponse, SignRequest, SignResponse, VerifyRequest, VerifyResponse,
    crypto_service_server::CryptoService,
};
use rand::{CryptoRng, RngCore, rngs::StdRng};
use tonic::{Request, Response, Status};

use super::{HsmState, blocking, caller, convert, quorum::key_gated};
use crate::{
    crypto::{self, Input, KeyKind, KeyMaterial},
    model::{KeyRef, ModelError, QuorumService, Usage},
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

/// The HSM's CSPRNG for one call, forked from it only when the mechanism
/// draws (an IV, RSA blinding, a PSS salt): ECDSA with ring (which draws its
/// own nonces), Ed25519 and HMAC take nothing, and then the call takes
/// neither the generator's lock nor the cost of seeding a fork.
struct ForkOnUse {
    state: Arc<HsmState>,
    rng: Option<StdRng>,
}

impl ForkOnUse {
    fn new(state: &Arc<HsmState>) -> Self {
        ForkOnUse { state: Arc::clone(state), rng: None }
    }

    fn rng(&mut self) -> &mut StdRng {
        self.rng.get_or_insert_with(|| self.state.fork_rng())
    }
}

impl RngCore for ForkOnUse {
    fn next_u32(&mut self) -> u32 {
        self.rng().next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.rng().next_u64()
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.rng().fill_bytes(dst);
    }
}

/// Every draw comes from a fork of the HSM's CSPRNG.
impl CryptoRng for ForkOnUse {}

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
        self.state.hsm().permit_cipher(cipher)?;
        let key = self.state.hsm().key_for_use(&caller, key_ref, Usage::Encrypt)?;
        let mut rng = ForkOnUse::new(&self.state);
        let iv = (!req.iv.is_empty()).then_some(req.iv);
        let out = run(key, move |k| crypto::encrypt(k, cipher, iv.as_deref(), &req.aad, &req.data, &mut rng)).await?;
        Ok(Response::new(EncryptResponse { iv: out.iv.unwrap_or_default(), ciphertext: out.ciphertext }))
    }

    async fn decrypt(&self, request: Request<DecryptRequest>) -> Result<Response<DecryptResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let key_ref = KeyRef::parse("key_reference", &req.key_reference)?;
        let cipher = convert::cipher(req.cipher, req.hash)?;
        self.state.hsm().permit_cipher(cipher)?;
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
        // Only a key with a use quorum value takes the approval path.
        let key = match &req.approval {
            None => self.state.hsm().key_for_use(&caller, key_ref, Usage::Sign)?,
            Some(approval) => {
                key_gated(&self.state, &caller, key_ref, QuorumService::KeyUsage, Some(approval), |hsm| {
                    hsm.key_for_approved_use(&caller, key_ref, Usage::Sign)
                })
                .await?
            }
        };
        let mut rng = ForkOnUse::new(&self.state);
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

    async fn generate_random(
        &self,
        request: Request<GenerateRandomRequest>,
    ) -> Result<Response<GenerateRandomResponse>, Status> {
        let length = usize::try_from(request.get_ref().length).unwrap_or(usize::MAX);
        if !(1..=crypto::MAX_DATA_LEN).contains(&length) {
            return Err(ModelError::InvalidArgument {
                field: "length",
                rule: format!("must be 1 to {} bytes in one call", crypto::MAX_DATA_LEN),
            }
            .into());
        }
        let mut random = vec![0; length];
        self.state.fork_rng().fill_bytes(&mut random);
        Ok(Response::new(GenerateRandomResponse { random }))
    }
}
