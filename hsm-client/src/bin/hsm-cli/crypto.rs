//! Runs the `crypto ...` commands against a cluster session.

use hsm_client::{
    ClientError, ClusterApproval, ClusterSession, Decrypt, Encrypt, Sign, Verify,
    keys::{Cipher, HashAlgorithm, SignMechanism as Mechanism},
};
use serde_json::Value;

use crate::{
    grammar::{
        common::{DataSource, SignatureSource},
        crypto::{
            CryptoCommand, DataType, DecryptCipher, EncryptCipher, Hashed, HmacOperation, KeySelector, Prehashed, Pss,
            SignMechanism, VerifyMechanism,
        },
    },
    input::{self, resolve},
    output,
};

const FILTER: &str = "--key-filter";

pub(crate) async fn run(session: &ClusterSession, command: CryptoCommand) -> Result<Value, String> {
    match command {
        CryptoCommand::Sign { mechanism, approval } => sign(session, mechanism, approval.as_deref()).await,
        CryptoCommand::Verify { mechanism } => verify(session, mechanism).await,
        CryptoCommand::Encrypt { cipher } => encrypt(session, cipher).await,
        CryptoCommand::Decrypt { cipher } => decrypt(session, cipher).await,
        CryptoCommand::Digest(args) => {
            let data = args.data.read()?;
            let digest = session.digest(args.hash_function.algorithm(), &data).await.map_err(hsm)?;
            Ok(output::digest(args.hash_function.name(), &input::base64(&digest)))
        }
        CryptoCommand::Hmac { operation } => hmac(session, operation).await,
    }
}

fn hsm(err: ClientError) -> String {
    err.to_string()
}

/// What one signature or verification needs, checked before the HSM is asked.
struct Request<'a> {
    key: &'a KeySelector,
    mechanism: Mechanism,
    hash: Option<HashAlgorithm>,
    data: &'a DataSource,
    is_digest: bool,
    /// With `--data-type digest`: the hash's name and digest length, which
    /// the data must have.
    digest: Option<(&'static str, u32)>,
}

impl<'a> Request<'a> {
    fn hashed(mechanism: Mechanism, args: &'a Hashed) -> Self {
        let is_digest = args.data_type == DataType::Digest;
        let hash = args.hash_function;
        Request {
            key: &args.key,
            mechanism,
            hash: Some(hash.algorithm()),
            data: &args.data,
            is_digest,
            digest: is_digest.then(|| (hash.name(), hash.digest_len())),
        }
    }

    /// HashEdDSA: the HSM hashes raw data with SHA-512, or signs the SHA-512
    /// digest given.
    fn ed25519ph(args: &'a Prehashed) -> Self {
        let is_digest = args.data_type == DataType::Digest;
        let hash = args.hash_function.hash();
        Request {
            key: &args.key,
            mechanism: Mechanism::Ed25519ph,
            hash: Some(hash.algorithm()),
            data: &args.data,
            is_digest,
            digest: is_digest.then(|| (hash.name(), hash.digest_len())),
        }
    }

    /// RSA-PSS as the HSM does it: MGF1 with the same hash, salt as long as
    /// the hash.
    fn pss(args: &'a Pss) -> Result<Self, String> {
        let hash = args.hashed.hash_function;
        args.mgf.require(hash)?;
        if args.salt_length != hash.digest_len() {
            return Err(format!(
                "--salt-length {}: the emulator's RSA-PSS uses a salt as long as the hash ({} bytes for {})",
                args.salt_length,
                hash.digest_len(),
                hash.name()
            ));
        }
        Ok(Request::hashed(Mechanism::RsaPss, &args.hashed))
    }

    fn pure(mechanism: Mechanism, key: &'a KeySelector, data: &'a DataSource) -> Self {
        Request { key, mechanism, hash: None, data, is_digest: false, digest: None }
    }

    /// Reads the data; a digest must be as long as its hash makes them.
    fn read_data(&self) -> Result<Vec<u8>, String> {
        let data = self.data.read()?;
        match self.digest {
            Some((name, len)) if usize::try_from(len).ok() != Some(data.len()) => Err(format!(
                "--data-type digest: the data must be a {name} digest of {len} bytes, not {} bytes",
                data.len()
            )),
            _ => Ok(data),
        }
    }
}

/// Checks what the flags alone decide (unsupported mechanisms, parameters
/// the HSM does not offer), before any HSM is contacted.
pub(crate) fn check(command: &CryptoCommand) -> Result<(), String> {
    match command {
        CryptoCommand::Sign { mechanism, .. } => sign_request(mechanism).map(drop),
        CryptoCommand::Verify { mechanism } => verify_request(mechanism).map(drop),
        _ => Ok(()),
    }
}

fn sign_request(mechanism: &SignMechanism) -> Result<Request<'_>, String> {
    Ok(match mechanism {
        SignMechanism::Ecdsa(args) => Request::hashed(Mechanism::Ecdsa, args),
        SignMechanism::RsaPkcs(args) => Request::hashed(Mechanism::RsaPkcs, args),
        SignMechanism::RsaPkcsPss(args) => Request::pss(args)?,
        SignMechanism::Ed25519(args) => Request::pure(Mechanism::Ed25519, &args.key, &args.data),
        SignMechanism::Ed25519ph(args) => Request::ed25519ph(args),
    })
}

async fn sign(
    session: &ClusterSession,
    mechanism: SignMechanism,
    approval: Option<&std::path::Path>,
) -> Result<Value, String> {
    let request = sign_request(&mechanism)?;
    let approval = approval.map(crate::quorum::read_approval).transpose()?;
    run_sign(session, &request, approval.as_ref()).await
}

async fn run_sign(
    session: &ClusterSession,
    request: &Request<'_>,
    approval: Option<&ClusterApproval>,
) -> Result<Value, String> {
    let data = request.read_data()?;
    let key = resolve(session, FILTER, &request.key.key_filter).await?;
    let request = Sign {
        hash: request.hash,
        data_is_digest: request.is_digest,
        approval,
        ..Sign::new(&key.reference, request.mechanism, &data)
    };
    let signature = session.sign(request).await.map_err(hsm)?;
    Ok(output::signature(&key.reference, &input::base64(&signature)))
}

fn verify_request(mechanism: &VerifyMechanism) -> Result<(Request<'_>, &SignatureSource), String> {
    Ok(match mechanism {
        VerifyMechanism::Ecdsa(args) => (Request::hashed(Mechanism::Ecdsa, &args.hashed), &args.signature),
        VerifyMechanism::RsaPkcs(args) => (Request::hashed(Mechanism::RsaPkcs, &args.hashed), &args.signature),
        VerifyMechanism::RsaPkcsPss(args) => (Request::pss(&args.pss)?, &args.signature),
        VerifyMechanism::Ed25519(args) => {
            (Request::pure(Mechanism::Ed25519, &args.pure.key, &args.pure.data), &args.signature)
        }
        VerifyMechanism::Ed25519ph(args) => (Request::ed25519ph(&args.prehashed), &args.signature),
    })
}

async fn verify(session: &ClusterSession, mechanism: VerifyMechanism) -> Result<Value, String> {
    let (request, signature) = verify_request(&mechanism)?;
    run_verify(session, &request, signature).await
}

async fn run_verify(
    session: &ClusterSession,
    request: &Request<'_>,
    signature: &SignatureSource,
) -> Result<Value, String> {
    let data = request.read_data()?;
    let signature = signature.read()?;
    let key = resolve(session, FILTER, &request.key.key_filter).await?;
    let request = Verify {
        hash: request.hash,
        data_is_digest: request.is_digest,
        ..Verify::new(&key.reference, request.mechanism, &data, &signature)
    };
    let valid = session.verify(request).await.map_err(hsm)?;
    if valid {
        Ok(output::message("Signature verified successfully"))
    } else {
        Err("Signature verification failed".into())
    }
}

async fn hmac(session: &ClusterSession, operation: HmacOperation) -> Result<Value, String> {
    match operation {
        HmacOperation::Sign(args) => {
            let request = Request {
                hash: Some(args.hash_function.algorithm()),
                ..Request::pure(Mechanism::Hmac, &args.key, &args.data)
            };
            run_sign(session, &request, None).await
        }
        HmacOperation::Verify(args) => {
            let hmac = &args.hmac;
            let request = Request {
                hash: Some(hmac.hash_function.algorithm()),
                ..Request::pure(Mechanism::Hmac, &hmac.key, &hmac.data)
            };
            run_verify(session, &request, &args.signature).await
        }
    }
}

/// An optional base64 flag; absent means empty.
fn optional_base64(flag: &str, value: Option<&String>) -> Result<Vec<u8>, String> {
    value.map_or(Ok(Vec::new()), |v| input::base64_flag(flag, v))
}

async fn encrypt(session: &ClusterSession, cipher: EncryptCipher) -> Result<Value, String> {
    let (plain, cipher, hash, iv, aad) = match &cipher {
        EncryptCipher::AesGcm(args) => {
            (&args.plain, Cipher::AesGcm, None, Vec::new(), optional_base64("--aad", args.aad.as_ref())?)
        }
        EncryptCipher::AesCbcPad(args) => {
            (&args.plain, Cipher::AesCbcPad, None, optional_base64("--iv", args.iv.as_ref())?, Vec::new())
        }
        EncryptCipher::AesCtr(args) => {
            (&args.plain, Cipher::AesCtr, None, optional_base64("--iv", args.iv.as_ref())?, Vec::new())
        }
        EncryptCipher::AesEcb(plain) => (plain, Cipher::AesEcb, None, Vec::new(), Vec::new()),
        EncryptCipher::RsaOaep(args) => {
            (&args.plain, Cipher::RsaOaep, Some(args.hash_function.algorithm()), Vec::new(), Vec::new())
        }
        EncryptCipher::RsaPkcs(plain) => (plain, Cipher::RsaPkcs, None, Vec::new(), Vec::new()),
    };
    let data = plain.data.read()?;
    let key = resolve(session, FILTER, &plain.key.key_filter).await?;
    let request = Encrypt { hash, iv: &iv, aad: &aad, ..Encrypt::new(&key.reference, cipher, &data) };
    let (iv, ciphertext) = session.encrypt(request).await.map_err(hsm)?;
    let iv = (!iv.is_empty()).then(|| input::base64(&iv));
    Ok(output::encrypted(&key.reference, iv.as_deref(), &input::base64(&ciphertext)))
}

async fn decrypt(session: &ClusterSession, cipher: DecryptCipher) -> Result<Value, String> {
    let (sealed, cipher, hash, iv, aad) = match &cipher {
        DecryptCipher::AesGcm(args) => (
            &args.sealed,
            Cipher::AesGcm,
            None,
            input::base64_flag("--iv", &args.iv)?,
            optional_base64("--aad", args.aad.as_ref())?,
        ),
        DecryptCipher::AesCbcPad(args) => {
            (&args.sealed, Cipher::AesCbcPad, None, input::base64_flag("--iv", &args.iv)?, Vec::new())
        }
        DecryptCipher::AesCtr(args) => {
            (&args.sealed, Cipher::AesCtr, None, input::base64_flag("--iv", &args.iv)?, Vec::new())
        }
        DecryptCipher::AesEcb(sealed) => (sealed, Cipher::AesEcb, None, Vec::new(), Vec::new()),
        DecryptCipher::RsaOaep(args) => {
            (&args.sealed, Cipher::RsaOaep, Some(args.hash_function.algorithm()), Vec::new(), Vec::new())
        }
        DecryptCipher::RsaPkcs(sealed) => (sealed, Cipher::RsaPkcs, None, Vec::new(), Vec::new()),
    };
    let ciphertext = sealed.ciphertext.read()?;
    let key = resolve(session, FILTER, &sealed.key.key_filter).await?;
    let request = Decrypt { hash, iv: &iv, aad: &aad, ..Decrypt::new(&key.reference, cipher, &ciphertext) };
    let plaintext = session.decrypt(request).await.map_err(hsm)?;
    Ok(output::decrypted(&key.reference, &input::base64(&plaintext)))
}
