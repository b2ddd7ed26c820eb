//! Seed files: the users and keys a new cluster starts with, declared in
//! TOML. `hsm-daemon dev --seed FILE` and `run --seed FILE` read one; tests
//! in-process put a [`SeedPlan`] in [`crate::DaemonConfig::seed`].
//! `hsm-daemon/examples/seed.toml` is a complete, commented
//! example (a test parses and applies it, so it stays true).
//!
//! A seed goes through two steps, so that everything that can be wrong is
//! found before anything is made:
//! 1. [`Seed::parse`] / [`Seed::from_file`] turn the text into model types
//!    with the rules the API applies ([`Username::parse`],
//!    [`Password::parse`], [`Template`], [`KeyMaterial::from_pem`],
//!    [`KeySpec::check`]) and check what ties entries together: owners and
//!    shared users are crypto users of the seed, usernames and labels are
//!    unique. A refusal names the line, the column and the reason.
//! 2. [`Seed::plan`] makes it concrete once for the whole cluster: it hashes
//!    the passwords and generates the keys, with references from HSM 1's
//!    range as if HSM 1 had made them. [`SeedPlan::apply`] then gives every
//!    new HSM of the cluster the same users and token keys, inserted as
//!    copies the way cloning inserts them, so every HSM starts with the same
//!    sync digest.
//!
//! A seed applies only to a store being created; an existing store keeps
//! its state. Only token keys can be seeded (session keys live and die with
//! a session).
//!
//! # Layout
//! - this file: [`Seed`], [`SeedPlan`], [`SeedError`].
//! - `check`: the checks that turn the raw shapes into a [`Seed`], each
//!   refusal naming its place.
//! - `raw`: the TOML shapes serde reads.
//! - `tests`: good and bad seeds.

mod check;
mod raw;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use self::check::Checker;
use crate::{
    crypto::{Generated, KeyClass, KeyMaterial, KeySpec},
    determinism::{self, Stream},
    model::{
        Caller, ClusterId, ClusterMode, Hsm, HsmType, Identity, KdfParams, KeyQuotas, KeyRange, KeyRef, Limits, Masked,
        ModelError, NewKey, Password, PasswordHash, PersistedKey, PersistedUser, Replica, Role, Template, Username,
        keys::{Actor, Keys},
    },
};

/// What `{n}` in a counted entry's labels becomes: the key's number.
const NUMBER: &str = "{n}";

/// A seed file, parsed and checked: every value is a model type.
#[derive(Debug)]
pub struct Seed {
    cluster_id: Option<ClusterId>,
    hsms: Option<u8>,
    hsm_type: Option<HsmType>,
    mode: Option<ClusterMode>,
    /// `[cluster] key_quota = "off"`: the HSMs hold keys beyond their type's quotas.
    quotas_off: bool,
    admin_password: Option<(Password, Location)>,
    users: Vec<SeedUser>,
    keys: Vec<SeedKey>,
    /// The file it came from, for errors found while planning.
    file: Option<PathBuf>,
}

#[derive(Debug)]
struct SeedUser {
    username: Username,
    role: Role,
    password: Password,
    at: Location,
}

#[derive(Debug)]
struct SeedKey {
    owner: Username,
    material: SeedMaterial,
    /// The secret or private key's attributes (a public PEM's: the public
    /// key's), label included.
    template: Template,
    /// A generated pair's public key, label included.
    public_template: Option<Template>,
    share_with: Vec<Username>,
    /// How many keys alike (`count`); `{n}` in the labels numbers them.
    count: usize,
    at: Location,
}

#[derive(Debug)]
enum SeedMaterial {
    /// From PEM or hex: the same on every run.
    Fixed(Arc<KeyMaterial>),
    /// Generated when the seed is planned.
    Generate(KeySpec),
}

/// A line and column (1-based) of the seed's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Location {
    line: usize,
    column: usize,
}

/// Why a seed file is refused.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// What is wrong and where.
    #[error("{}line {line}, column {column}: {reason}", origin(file.as_deref()))]
    Invalid { file: Option<PathBuf>, line: usize, column: usize, reason: String },
}

impl SeedError {
    /// The line the error is on, if it is about the text.
    pub fn line(&self) -> Option<usize> {
        match self {
            SeedError::Read { .. } => None,
            SeedError::Invalid { line, .. } => Some(*line),
        }
    }
}

fn origin(file: Option<&Path>) -> String {
    match file {
        Some(path) => format!("seed file {}, ", path.display()),
        None => "seed, ".to_owned(),
    }
}

impl Seed {
    /// Parses and checks a seed's text. A `pem_file` is read relative to the
    /// current directory.
    pub fn parse(text: &str) -> Result<Seed, SeedError> {
        Checker { text, file: None, base: PathBuf::new() }.seed()
    }

    /// Reads, parses and checks a seed file. A `pem_file` is read relative to
    /// the seed file's directory.
    pub fn from_file(path: &Path) -> Result<Seed, SeedError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read { path: path.to_owned(), source })?;
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        Checker { text: &text, file: Some(path), base }.seed()
    }

    /// `[cluster] id`: the id of a cluster created for this seed.
    pub fn cluster_id(&self) -> Option<&ClusterId> {
        self.cluster_id.as_ref()
    }

    /// `[cluster] hsms`: how many HSMs `dev` starts for a new cluster.
    pub fn hsms(&self) -> Option<u8> {
        self.hsms
    }

    /// `[cluster] hsm_type`.
    pub fn hsm_type(&self) -> Option<HsmType> {
        self.hsm_type
    }

    /// `[cluster] mode`: FIPS or NON_FIPS.
    pub fn mode(&self) -> Option<ClusterMode> {
        self.mode
    }

    /// `[cluster] key_quota = "off"`: the seed's HSMs must run without key
    /// quotas (the daemon's `key_quota = "off"`).
    pub fn quotas_off(&self) -> bool {
        self.quotas_off
    }

    /// Whether the seed sets the admin password (and so starts the cluster
    /// activated).
    pub fn sets_admin_password(&self) -> bool {
        self.admin_password.is_some()
    }

    /// Whether planning is quick: at most `max_keys` keys, none of them an
    /// RSA key to generate (seconds each). The fuzz target plans only such
    /// seeds.
    pub fn cheap_to_plan(&self, max_keys: usize) -> bool {
        let keys: usize = self.keys.iter().map(|k| k.count.saturating_mul(2)).fold(0, usize::saturating_add);
        keys <= max_keys
            && !self
                .keys
                .iter()
                .any(|k| matches!(k.material, SeedMaterial::Generate(crate::crypto::KeySpec::Rsa { .. })))
    }

    /// Whether planning generates key material: HSMs started separately
    /// (`run`) then agree on it only in deterministic mode.
    pub fn generates_keys(&self) -> bool {
        self.keys.iter().any(|k| matches!(k.material, SeedMaterial::Generate(_)))
    }

    /// Makes the seed concrete once for a whole cluster: hashes the
    /// passwords under `kdf` and generates the keys (from the operating
    /// system's generator, or from `deterministic`'s seed). Slow for RSA
    /// keys: run it off async workers.
    pub fn plan(&self, kdf: &KdfParams, deterministic: Option<u64>) -> Result<SeedPlan, SeedError> {
        let mut rng = determinism::rng(deterministic, Stream::Seed, 0);
        let admin = match &self.admin_password {
            Some((password, at)) => Some(password.hash(kdf, &mut rng).map_err(|e| self.error(*at, e))?),
            None => None,
        };
        let mut users = Vec::with_capacity(self.users.len());
        for user in &self.users {
            users.push(PersistedUser {
                username: user.username.clone(),
                role: user.role,
                hash: user.password.hash(kdf, &mut rng).map_err(|e| self.error(user.at, e))?,
                failed_logins: 0,
                locked: false,
                quorum_key: None,
                mfa_key: None,
            });
        }
        let quotas = if self.quotas_off {
            KeyQuotas::OFF
        } else {
            Limits::for_type(self.hsm_type.unwrap_or(HsmType::Hsm2mMedium)).keys
        };
        let first = Location { line: 1, column: 1 };
        let mut keys = Keys::new(quotas, KeyRange::for_index(1).map_err(|e| self.error(first, e))?);
        for key in &self.keys {
            for n in 1..=key.count {
                let numbered = |template: &Template| {
                    if key.count > 1 { template.numbered(NUMBER, n) } else { template.clone() }
                };
                let template = numbered(&key.template);
                let new = match &key.material {
                    SeedMaterial::Fixed(material) => {
                        vec![NewKey { material: Arc::clone(material), template, local: false }]
                    }
                    SeedMaterial::Generate(spec) => match spec.generate(&mut rng).map_err(|e| self.error(key.at, e))? {
                        Generated::Secret(material) => {
                            vec![NewKey { material: Arc::new(material), template, local: true }]
                        }
                        // Public first, as the HSM stores a generated pair.
                        Generated::Pair { private, public } => vec![
                            NewKey {
                                material: Arc::new(public),
                                template: key.public_template.as_ref().map(numbered).unwrap_or_default(),
                                local: true,
                            },
                            NewKey { material: Arc::new(private), template, local: true },
                        ],
                    },
                };
                let views = keys.insert(&key.owner, None, new).map_err(|e| self.error(key.at, e))?;
                let actor = Actor { user: &key.owner, identity: Identity::CryptoUser };
                for view in views.iter().filter(|v| v.facts.class != KeyClass::Public) {
                    for user in &key.share_with {
                        keys.share(actor, view.reference, user.clone(), true).map_err(|e| self.error(key.at, e))?;
                    }
                }
            }
        }
        let (changed, _) = keys.take_dirty();
        let keys = changed.into_iter().filter_map(|(_, key)| key).collect();
        Ok(SeedPlan { admin, users, keys })
    }

    fn error(&self, at: Location, reason: impl fmt::Display) -> SeedError {
        SeedError::Invalid { file: self.file.clone(), line: at.line, column: at.column, reason: reason.to_string() }
    }
}

/// A seed made concrete for one cluster: password hashes and key material,
/// made once, for every HSM of the cluster to start with.
#[derive(Debug)]
pub struct SeedPlan {
    admin: Option<PasswordHash>,
    users: Vec<PersistedUser>,
    keys: Vec<PersistedKey>,
}

impl SeedPlan {
    /// The admin's password hash, when the seed sets it: a new store then
    /// starts activated with it.
    pub fn admin_hash(&self) -> Option<&PasswordHash> {
        self.admin.as_ref()
    }

    /// How many users the seed adds (besides `admin` and `app_user`).
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// How many token keys the seed adds (a pair counts two).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Each seeded key's label and reference, by reference.
    pub fn key_references(&self) -> Vec<(String, KeyRef)> {
        self.keys.iter().map(|k| (k.attrs.label.clone(), k.reference)).collect()
    }

    /// Gives a new HSM the seed's users and keys, as copies made by the
    /// cluster (the appliance user's rights), so that the model's rules for
    /// copies apply: roles, quotas, owners and shared users known here.
    pub fn apply(&self, hsm: &mut Hsm) -> Result<(), ModelError> {
        let cluster = Caller::this_hsm();
        for user in &self.users {
            if !hsm.insert_masked(&cluster, Masked::User(user.clone()))? {
                return Err(ModelError::UserExists { username: user.username.clone() });
            }
        }
        for key in &self.keys {
            hsm.insert_masked(&cluster, Masked::Key(Replica::Key(key.clone())))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
