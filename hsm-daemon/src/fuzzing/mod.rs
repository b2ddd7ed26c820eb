//! What the fuzz targets (`hsm-daemon/fuzz`, run with `cargo fuzz`) call:
//! one entry point per kind of input that reaches the HSM from outside, and
//! the seeds of their corpus. Every entry takes arbitrary bytes and must
//! return without panicking; where a property holds for every input (an
//! accepted key exports and re-imports as itself, a listing's pages add up,
//! an approved call had two valid approvers, no error names a secret), it
//! asserts it, so that the fuzzer reports a wrong answer as it reports a
//! crash.
//!
//! The same entries replay the committed corpus in the ordinary test suite
//! (`tests/fuzz_corpus.rs`), so that every input a fuzzer once kept, and
//! every crash it found, stays a test on stable Rust.
//!
//! # Layout
//! - [`Target`]: the targets, by name, with their entry and seeds.
//! - `requests`: sequences of gRPC requests and key listings, on a
//!   populated HSM ([`requests()`], [`key_filters()`]).
//! - `keys`: key material and quorum approvers' keys ([`key_import()`]).
//! - `sealed`: masked objects and backups ([`masked_object()`], [`backup()`]).
//! - `quorum`: signed quorum token files ([`quorum_approval()`]), and the
//!   approvers' fixed keys.
//! - `config`: seed files, config files and trust anchors ([`seed()`],
//!   [`settings()`], [`trust_anchor()`]).
//! - `seeds`: the valid inputs each target's corpus started from.
//!
//! Here, besides [`Target`]: what the targets share (reusing HSMs across
//! inputs, the properties every answer has, the fixtures).

mod config;
mod keys;
mod quorum;
mod requests;
mod sealed;
mod seeds;

use std::sync::OnceLock;

use hsm_proto::v1::Rpc;
use rand::SeedableRng as _;
use tonic::Code;

use crate::{
    model::{AdminSetup, HsmSetup, KdfParams, KeyRange, Limits, Password, PasswordHash},
    service::rig::{self, ADMIN_PASSWORD, Answer},
};

pub use self::{
    config::{seed, settings, trust_anchor},
    keys::key_import,
    quorum::quorum_approval,
    requests::{key_filters, requests},
    sealed::{backup, masked_object},
};

/// The fuzz targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Sequences of gRPC requests, through the gate and the services.
    Requests,
    /// `key list` filters and paging.
    KeyFilters,
    /// PEM, DER and raw key material, and quorum approvers' public keys.
    KeyImport,
    /// Masked objects (`InsertMaskedObject`).
    MaskedObject,
    /// Backup files (`hsm-daemon restore`).
    Backup,
    /// Signed quorum token files (`--approval FILE`) and the approvals
    /// they carry.
    QuorumApproval,
    /// Seed files (`--seed`).
    Seed,
    /// The daemon's config file (`--config`).
    Settings,
    /// mTLS trust anchors (`cluster mtls register-trust-anchor`).
    TrustAnchor,
}

impl Target {
    pub const ALL: [Target; 9] = [
        Target::Requests,
        Target::KeyFilters,
        Target::KeyImport,
        Target::MaskedObject,
        Target::Backup,
        Target::QuorumApproval,
        Target::Seed,
        Target::Settings,
        Target::TrustAnchor,
    ];

    /// The name of its `cargo fuzz` target and corpus folder.
    pub fn name(self) -> &'static str {
        match self {
            Target::Requests => "requests",
            Target::KeyFilters => "key_filters",
            Target::KeyImport => "key_import",
            Target::MaskedObject => "masked_object",
            Target::Backup => "backup",
            Target::QuorumApproval => "quorum_approval",
            Target::Seed => "seed",
            Target::Settings => "settings",
            Target::TrustAnchor => "trust_anchor",
        }
    }

    /// Feeds one input to the target: whether it got past parsing to the
    /// step behind it (a seed always should).
    pub fn run(self, data: &[u8]) -> bool {
        match self {
            Target::Requests => requests(data),
            Target::KeyFilters => key_filters(data),
            Target::KeyImport => key_import(data),
            Target::MaskedObject => masked_object(data),
            Target::Backup => backup(data),
            Target::QuorumApproval => quorum_approval(data),
            Target::Seed => seed(data),
            Target::Settings => settings(data),
            Target::TrustAnchor => trust_anchor(data),
        }
    }

    /// As [`Target::run`], on HSMs made for this input alone rather than
    /// kept from earlier inputs (the same as `HSM_FUZZ_FRESH`): what
    /// replaying one crash needs.
    pub fn run_alone(self, data: &[u8]) -> bool {
        ALONE.set(true);
        let reached = self.run(data);
        ALONE.set(false);
        reached
    }

    /// Valid inputs to start the corpus from.
    pub fn seeds(self) -> Vec<Vec<u8>> {
        match self {
            Target::Requests => seeds::requests(),
            Target::KeyFilters => seeds::key_filters(),
            Target::KeyImport => seeds::key_import(),
            Target::MaskedObject => seeds::masked_object(),
            Target::Backup => seeds::backup(),
            Target::QuorumApproval => seeds::quorum_approval(),
            Target::Seed => seeds::seed(),
            Target::Settings => seeds::settings(),
            Target::TrustAnchor => seeds::trust_anchor(),
        }
    }
}

/// Inputs one rig serves before a new one replaces it.
const REUSES: u32 = 64;

thread_local! {
    /// Set by [`Target::run_alone`].
    static ALONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A rig kept across inputs, and how many it has served.
type Reused<T> = Option<(T, u32)>;

/// The rig in `slot`, replaced by `make`'s when it has served [`REUSES`]
/// inputs or `spent` says it cannot serve another (and always with
/// `HSM_FUZZ_FRESH`).
fn reused<T>(slot: &mut Reused<T>, spent: impl Fn(&T) -> bool, make: impl FnOnce() -> T) -> &mut T {
    static FRESH: OnceLock<bool> = OnceLock::new();
    let fresh = *FRESH.get_or_init(|| std::env::var_os("HSM_FUZZ_FRESH").is_some());
    let stale = |(value, uses): &(T, u32)| fresh || ALONE.get() || *uses >= REUSES || spent(value);
    if slot.as_ref().is_none_or(stale) {
        *slot = None;
        *slot = Some((make(), 0));
    }
    let (value, uses) = slot.get_or_insert_with(|| unreachable!("just made"));
    *uses += 1;
    value
}

/// The properties every answer has.
fn check(answer: &Answer, rpc: Rpc, secrets: &[&str]) {
    assert!(
        !matches!(answer.code, Code::Internal | Code::Unknown),
        "{rpc:?} answered {:?}: {}",
        answer.code,
        answer.message
    );
    for secret in secrets {
        assert!(!answer.message.contains(secret), "{rpc:?}'s error names a secret: {}", answer.message);
    }
}

/// What the targets share, made once per process.
#[derive(Debug)]
struct Fixtures {
    /// A new HSM of the rigs' cluster (passwords hashed with the testing KDF).
    setup: HsmSetup,
    files: Files,
}

/// Valid files for the settings a config file names.
#[derive(Debug)]
struct Files {
    /// Keeps the files until the process ends.
    _dir: tempfile::TempDir,
    password: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    master_key: std::path::PathBuf,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let hsm = crate::model::HsmIdentity::generate(&mut rng, "127.0.0.1:1".into(), rig::cluster().mode);
        let mut hash = |p: &str| -> PasswordHash {
            let password = expect(Password::parse("password", p), "a fixture password");
            expect(password.hash(&KdfParams::TESTING, &mut rng), "hashing a fixture password")
        };
        let setup = HsmSetup {
            cluster: rig::cluster(),
            hsm,
            limits: Limits::for_type(rig::cluster().hsm_type),
            key_range: expect(KeyRange::for_index(1), "HSM 1's key range"),
            admin: AdminSetup::Activated(hash(ADMIN_PASSWORD)),
            appliance: hash("appliance-pass"),
            decoy: hash("decoy-password"),
        };
        let dir = expect(tempfile::tempdir(), "a folder for fixture files");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            expect(std::fs::write(&path, text), "writing a fixture file");
            path
        };
        let ca = expect(crate::pki::generate_ca("cluster-fuzz"), "a fixture CA");
        let certified =
            expect(crate::pki::issue_server(&ca, "hsm-fuzz", &["localhost".into()]), "a fixture certificate");
        let files = Files {
            password: write("appliance-password", "appliance-pass\n"),
            cert: write("cert.pem", &ca.cert_pem),
            key: write("key.pem", &certified.key_pem),
            master_key: write("master.key", &format!("{}\n", rig::CLUSTER_KEY_HEX)),
            _dir: dir,
        };
        Fixtures { setup, files }
    })
}

/// The value of a step a target cannot go on without; its failure is a
/// finding, reported as a panic like any other.
fn expect<T, E: std::fmt::Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what}: {e:?}"),
    }
}
