//! What one call of each operation is, over the RPC and in-process.
//!
//! [`Workload`] holds what an operation's tasks share (connections,
//! sessions, a key) and makes one call; [`Primitive`] is the same mechanism
//! run in this process through `hsm_daemon::crypto`, as the daemon's
//! handlers run it, with no RPC: the crypto limit.

use std::time::{Duration, Instant};

use hsm_client::{
    ClusterSession, Encrypt, HsmClient, KeyOptions, KeyPairSpec, Role, Session, Sign,
    keys::{Cipher, HashAlgorithm, SignMechanism, SymmetricKeyType},
};
use hsm_daemon::{
    crypto::{self, Curve, HashAlg, Input, KeyMaterial, KeySpec, SignMech},
    model::{KdfParams, Password, PasswordHash},
};
use rand::{SeedableRng, rngs::StdRng};
use tonic::transport::Channel;

use crate::{args::Op, echo::pb::EchoMessage, echo::pb::echo_service_client::EchoServiceClient};

/// One operation's shared state; tasks pick their connection or session by
/// their number, round-robin.
#[derive(Debug)]
pub(crate) enum Workload {
    Echo {
        clients: Vec<EchoServiceClient<Channel>>,
        payload: Vec<u8>,
    },
    Ping {
        sessions: Vec<Session>,
    },
    ClusterInfo {
        clients: Vec<HsmClient>,
    },
    Sign {
        sessions: Vec<Session>,
        key: String,
        mechanism: SignMechanism,
        hash: Option<HashAlgorithm>,
        data: Vec<u8>,
    },
    Encrypt {
        sessions: Vec<Session>,
        key: String,
        data: Vec<u8>,
    },
    Digest {
        sessions: Vec<Session>,
        data: Vec<u8>,
    },
    Login {
        clients: Vec<HsmClient>,
        user: String,
        password: String,
    },
    /// `delete`: delete each pair once made (against a target, whose key
    /// quota would otherwise end the run); started clusters have no quota
    /// and are thrown away, so their pairs stay and every call is one
    /// durable creation.
    Keygen {
        sessions: Vec<Session>,
        delete: bool,
    },
    KeygenCluster {
        session: ClusterSession,
        delete: bool,
    },
}

/// An EC P-256 key pair as `key generate-asymmetric-pair ec` makes it for
/// signing: (spec, public options, private options).
pub(crate) fn p256_pair() -> (KeyPairSpec, KeyOptions, KeyOptions) {
    (KeyPairSpec::Ec { curve: "secp256r1".into() }, usage("verify"), usage("sign"))
}

/// Options that label a key as the bench's and allow one usage.
pub(crate) fn usage(attribute: &str) -> KeyOptions {
    KeyOptions {
        attributes: vec![("label".into(), format!("hsm-bench-{attribute}")), (attribute.into(), "true".into())],
        ..KeyOptions::default()
    }
}

impl Workload {
    /// Makes one call and returns how long the measured part took. Login
    /// (and key generation against a target) clean up after themselves
    /// (logout, delete) outside the measured part, so that sessions and keys
    /// never pile up past the HSM's limits.
    pub(crate) async fn call(&self, task: usize) -> Result<Duration, String> {
        let started = Instant::now();
        let err = |e: hsm_client::ClientError| e.to_string();
        match self {
            Workload::Echo { clients, payload } => {
                let mut client = pick(clients, task).clone();
                client.echo(EchoMessage { payload: payload.clone() }).await.map_err(|e| e.to_string())?;
            }
            Workload::Ping { sessions } => pick(sessions, task).ping().await.map_err(err)?,
            Workload::ClusterInfo { clients } => {
                pick(clients, task).cluster_info().await.map_err(err)?;
            }
            Workload::Sign { sessions, key, mechanism, hash, data } => {
                pick(sessions, task)
                    .sign(Sign { hash: *hash, ..Sign::new(key, *mechanism, data) })
                    .await
                    .map_err(err)?;
            }
            Workload::Encrypt { sessions, key, data } => {
                pick(sessions, task).encrypt(Encrypt::new(key, Cipher::AesGcm, data)).await.map_err(err)?;
            }
            Workload::Digest { sessions, data } => {
                pick(sessions, task).digest(HashAlgorithm::Sha256, data).await.map_err(err)?;
            }
            Workload::Login { clients, user, password } => {
                let session = pick(clients, task).login(user, Role::CryptoUser, password).await.map_err(err)?;
                let took = started.elapsed();
                session.logout().await.map_err(err)?;
                return Ok(took);
            }
            Workload::Keygen { sessions, delete } => {
                let session = pick(sessions, task);
                let (spec, public, private) = p256_pair();
                let (public, private) = session.generate_key_pair(&spec, &public, &private).await.map_err(err)?;
                let took = started.elapsed();
                if *delete {
                    session.delete_key(&private.reference).await.map_err(err)?;
                    session.delete_key(&public.reference).await.map_err(err)?;
                }
                return Ok(took);
            }
            Workload::KeygenCluster { session, delete } => {
                let (spec, public, private) = p256_pair();
                let (public, private) = session.generate_key_pair(&spec, &public, &private).await.map_err(err)?;
                let took = started.elapsed();
                if *delete {
                    session.delete_key(&private.info.reference).await.map_err(err)?;
                    session.delete_key(&public.info.reference).await.map_err(err)?;
                }
                return Ok(took);
            }
        }
        Ok(started.elapsed())
    }
}

impl Workload {
    /// The sessions the workload held, to log out.
    pub(crate) fn into_sessions(self) -> Vec<Session> {
        match self {
            Workload::Ping { sessions }
            | Workload::Sign { sessions, .. }
            | Workload::Encrypt { sessions, .. }
            | Workload::Digest { sessions, .. }
            | Workload::Keygen { sessions, .. } => sessions,
            Workload::Echo { .. }
            | Workload::ClusterInfo { .. }
            | Workload::Login { .. }
            | Workload::KeygenCluster { .. } => Vec::new(),
        }
    }
}

/// The item a task uses: tasks are spread round-robin.
fn pick<T>(items: &[T], task: usize) -> &T {
    // Workloads are built with at least one connection and one session
    // (the flags' lower bounds are 1), so the index is always in range.
    &items[task % items.len()]
}

/// How an operation's RPC is made: the mechanism and hash the bench asks
/// the HSM for, and the key it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyNeed {
    /// A key pair of this kind; the private key signs.
    Pair(PairKind),
    /// An AES-256 key that may encrypt.
    Aes256,
    /// A 32-byte generic secret that may sign (HMAC).
    HmacSecret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PairKind {
    P256,
    Ed25519,
    Rsa2048,
}

impl KeyNeed {
    pub(crate) fn of(op: Op) -> Option<KeyNeed> {
        match op {
            Op::EcdsaP256Sign => Some(KeyNeed::Pair(PairKind::P256)),
            Op::Ed25519Sign => Some(KeyNeed::Pair(PairKind::Ed25519)),
            Op::Rsa2048Sign => Some(KeyNeed::Pair(PairKind::Rsa2048)),
            Op::AesGcm64 | Op::AesGcm4k => Some(KeyNeed::Aes256),
            Op::HmacSha256_64 => Some(KeyNeed::HmacSecret),
            Op::Echo
            | Op::Noop
            | Op::ClusterInfo
            | Op::Sha256_4k
            | Op::Login
            | Op::KeygenEc
            | Op::KeygenEcCluster
            | Op::Sessions
            | Op::KeysScale => None,
        }
    }

    /// Creates the key on the HSM; returns the reference to use and every
    /// reference made (to delete afterwards).
    pub(crate) async fn create(self, session: &Session) -> Result<(String, Vec<String>), hsm_client::ClientError> {
        match self {
            KeyNeed::Pair(kind) => {
                let spec = match kind {
                    PairKind::P256 => p256_pair().0,
                    PairKind::Ed25519 => KeyPairSpec::Ed25519,
                    PairKind::Rsa2048 => KeyPairSpec::Rsa { modulus_size_bits: 2048, public_exponent: 65537 },
                };
                let (public, private) = session.generate_key_pair(&spec, &usage("verify"), &usage("sign")).await?;
                Ok((private.reference.clone(), vec![private.reference, public.reference]))
            }
            KeyNeed::Aes256 => {
                let key = session.generate_symmetric_key(SymmetricKeyType::Aes, 32, &usage("encrypt")).await?;
                Ok((key.reference.clone(), vec![key.reference]))
            }
            KeyNeed::HmacSecret => {
                let key = session.generate_symmetric_key(SymmetricKeyType::GenericSecret, 32, &usage("sign")).await?;
                Ok((key.reference.clone(), vec![key.reference]))
            }
        }
    }
}

/// The signature mechanism and hash of a signing operation.
pub(crate) fn sign_mechanism(op: Op) -> Option<(SignMechanism, Option<HashAlgorithm>)> {
    match op {
        Op::EcdsaP256Sign => Some((SignMechanism::Ecdsa, Some(HashAlgorithm::Sha256))),
        Op::Ed25519Sign => Some((SignMechanism::Ed25519, None)),
        Op::Rsa2048Sign => Some((SignMechanism::RsaPkcs, Some(HashAlgorithm::Sha256))),
        Op::HmacSha256_64 => Some((SignMechanism::Hmac, Some(HashAlgorithm::Sha256))),
        _ => None,
    }
}

/// An operation's mechanism run in this process, one call at a time.
pub(crate) struct Primitive {
    run: Box<dyn FnMut() -> Result<(), String> + Send>,
}

impl std::fmt::Debug for Primitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Primitive")
    }
}

impl Primitive {
    /// The in-process form of `op` with `payload` bytes of data, if it has
    /// one (`kdf`: the cost of the cluster's password hashes, for `login`).
    pub(crate) fn of(op: Op, payload: usize, kdf: KdfParams) -> Result<Option<Primitive>, String> {
        let mut rng = StdRng::from_os_rng();
        let data = vec![0x5a_u8; payload];
        let e = |e: crypto::CryptoError| e.to_string();
        let primitive = match op {
            Op::EcdsaP256Sign => {
                let (private, _) = KeyMaterial::generate_ec(Curve::P256, &mut rng).map_err(e)?;
                Self::signer(private, SignMech::Ecdsa(HashAlg::Sha256), data, rng)
            }
            Op::Ed25519Sign => {
                let (private, _) = KeyMaterial::generate_ed25519(&mut rng).map_err(e)?;
                Self::signer(private, SignMech::Ed25519, data, rng)
            }
            Op::Rsa2048Sign => {
                let (private, _) = KeyMaterial::generate_rsa(2048, 65537, &mut rng).map_err(e)?;
                Self::signer(private, SignMech::RsaPkcs1(HashAlg::Sha256), data, rng)
            }
            Op::HmacSha256_64 => {
                let key = KeyMaterial::generate_generic_secret(32, &mut rng).map_err(e)?;
                Self::signer(key, SignMech::Hmac(HashAlg::Sha256), data, rng)
            }
            Op::AesGcm64 | Op::AesGcm4k => {
                let key = KeyMaterial::generate_aes(256, &mut rng).map_err(e)?;
                Primitive {
                    run: Box::new(move || {
                        crypto::encrypt(&key, crypto::Cipher::AesGcm, None, &[], &data, &mut rng)
                            .map(drop)
                            .map_err(|e| e.to_string())
                    }),
                }
            }
            Op::Sha256_4k => Primitive {
                run: Box::new(move || {
                    std::hint::black_box(crypto::digest(HashAlg::Sha256, &data));
                    Ok(())
                }),
            },
            Op::Login => {
                let password =
                    Password::parse("password", crate::cluster::BENCH_PASSWORD).map_err(|e| e.to_string())?;
                let hash: PasswordHash = password.hash(&kdf, &mut rng).map_err(|e| e.to_string())?;
                Primitive {
                    run: Box::new(
                        move || {
                            if hash.verify(&password) { Ok(()) } else { Err("password did not verify".into()) }
                        },
                    ),
                }
            }
            Op::KeygenEc | Op::KeygenEcCluster => Primitive {
                run: Box::new(move || KeySpec::Ec(Curve::P256).generate(&mut rng).map(drop).map_err(|e| e.to_string())),
            },
            Op::Echo | Op::Noop | Op::ClusterInfo | Op::Sessions | Op::KeysScale => return Ok(None),
        };
        Ok(Some(primitive))
    }

    /// Signs `data` with `key`, as the daemon's Sign handler does.
    fn signer(key: KeyMaterial, mech: SignMech, data: Vec<u8>, mut rng: StdRng) -> Primitive {
        Primitive {
            run: Box::new(move || {
                crypto::sign(&key, mech, Input::Data(&data), &mut rng).map(drop).map_err(|e| e.to_string())
            }),
        }
    }

    /// Calls the primitive back to back on this thread for `duration`;
    /// returns calls per second.
    pub(crate) fn rate(mut self, duration: Duration) -> Result<f64, String> {
        let started = Instant::now();
        let mut calls = 0u64;
        while started.elapsed() < duration {
            (self.run)()?;
            calls += 1;
        }
        Ok(calls as f64 / started.elapsed().as_secs_f64())
    }
}
