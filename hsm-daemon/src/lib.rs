//! `hsm-daemon`: one emulated AWS CloudHSM HSM.
//!
//! The HSM holds users of CloudHSM's fixed types (precrypto officer, crypto
//! officer, crypto user, appliance user) and their sessions, and enforces the
//! CloudHSM permission table before any request handler runs. It serves the
//! `hsm.v1` gRPC protocol over TLS.
//!
//! # Layout
//! - [`audit`]: the hash-chained audit log (`DATA_DIR/audit.log`) and its
//!   offline verification.
//! - [`model`]: the HSM itself, pure (no I/O; time and randomness passed in):
//!   roles, the permission table, users, sessions, cluster identity.
//! - [`service`]: the gRPC services and [`serve`], the entry point that runs an
//!   HSM on a listener until a shutdown future resolves; background sync with
//!   the cluster's other HSMs and cloning from one; the gRPC health and
//!   reflection services.
//! - [`config`]: what one HSM process needs ([`DaemonConfig`]).
//! - [`clock`]: the HSM's time source; tests move a [`clock::ManualClock`].
//! - `commit`: group commit, many writers sharing one fsync (the store's
//!   changes and the audit log's records).
//! - [`crypto`]: the mechanisms (keys, encrypt, sign, wrap) over ring and RustCrypto.
//! - [`pki`]: the cluster CA and the certificates it issues.
//! - [`control`]: the control plane, AWS's CloudHSM v2 API (`aws
//!   cloudhsmv2`, boto3) with real clusters and HSMs behind it.
//! - [`cluster`]: clusters on this machine ([`cluster::LocalCluster`]):
//!   their CA, secrets, certificates and config files on disk, and their
//!   HSMs served in this process; what `dev`, `init`, `run` and
//!   `testing` start clusters and HSMs with.
//! - [`store`]: the durable, sealed store, backups, and masked objects.
//! - [`seed`]: seed files, the users and keys a new cluster starts with.
//! - [`determinism`]: deterministic mode (tests): randomness from a seed.
//! - `fuzzing` (feature `fuzzing`): the entries of the fuzz targets
//!   (`fuzz/`), which the test suite also replays.
//! - [`metrics`]: Prometheus metrics on a plain HTTP port (`--metrics-addr`).
//! - [`settings`]: the config file, flags and environment, resolved into a
//!   [`DaemonConfig`].
//! - `testing` (feature `testing`): whole clusters inside a test process,
//!   for Rust test suites (`testing::TestCluster`).
//! - `main.rs` and `cli/`: the `hsm-daemon` binary (`dev`, `init`, `run`,
//!   `backup`, `restore`, `health`, `audit verify`), not part of this
//!   library: the flags, and thin commands over it.
//!
//! # Features
//! Both are off by default, so that the release daemon carries no test
//! code; the crate's own tests, doctests and benches turn both on (a
//! dev-dependency on itself).
//! - `testing`: the `testing` module, in-process clusters with connected
//!   clients for test suites (`integration-tests`, `hsm-pkcs11`'s tests,
//!   `hsm-bench`).
//! - `fuzzing`: the `fuzzing` module, the fuzz targets' entries and seeds
//!   (`fuzz/`, and `tests/fuzz_corpus.rs`, which replays the corpus).
//!
//! # Example
//! Tests start an HSM in-process on a free port:
//! ```no_run
//! # async fn example(config: hsm_daemon::DaemonConfig) -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(hsm_daemon::serve(config, listener, async { stopped.await.ok(); }));
//! // ... talk to it ...
//! stop.send(()).ok();
//! server.await??;
//! # Ok(()) }
//! ```

// `listed_enum!`, for the enums whose every variant a table or test walks.
#[macro_use]
mod listed;

pub mod audit;
pub mod clock;
pub mod cluster;
mod commit;
pub mod config;
pub mod control;
pub mod crypto;
pub mod determinism;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod metrics;
pub mod model;
pub mod pki;
pub mod seed;
pub mod service;
pub mod settings;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{DaemonConfig, Membership, TlsSettings, Transport};
pub use service::{Prepared, ServeError, serve};
