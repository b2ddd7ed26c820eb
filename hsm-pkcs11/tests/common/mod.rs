//! What the PKCS#11 tests share: a cluster to talk to, the `client.env`
//! that points the library at it, where cargo leaves the library, and the
//! rule for tests that drive tools from outside Rust.
#![allow(dead_code, reason = "each test binary uses the part it needs")]
#![expect(clippy::unwrap_used, reason = "a test fails loudly on the first unexpected error")]

pub(crate) mod engine;

use std::path::PathBuf;

use hsm_client::Role;
use hsm_daemon::testing::{Options, TestCluster};
use tempfile::TempDir;
use tokio::runtime::Runtime;

/// An in-process cluster and the `client.env` that names it.
pub(crate) struct Rig {
    pub(crate) runtime: Runtime,
    pub(crate) cluster: TestCluster,
    /// `client.env` as `hsm-daemon dev` writes it (the CA path relative to
    /// it), for `HSM_PKCS11_CONFIG`.
    pub(crate) client_env: PathBuf,
    pub(crate) dir: TempDir,
}

impl Rig {
    /// `n` HSMs with `options`.
    pub(crate) fn start(n: usize, options: Options) -> Rig {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let cluster = runtime.block_on(TestCluster::start(n, options));
        let dir = tempfile::tempdir().unwrap();
        let client_env = dir.path().join("client.env");
        std::fs::write(dir.path().join("ca.pem"), cluster.ca_pem()).unwrap();
        let endpoints = cluster.endpoints().join(",");
        std::fs::write(&client_env, format!("HSM_ENDPOINTS={endpoints}\nHSM_CA_CERT=ca.pem\n")).unwrap();
        Rig { runtime, cluster, client_env, dir }
    }

    /// `n` HSMs whose crypto users are `alice` (`alice-pass`) and those
    /// named, each with the password `NAME-pass`.
    pub(crate) fn with_users(n: usize, more: &[&str], options: Options) -> Rig {
        let users = std::iter::once("alice")
            .chain(more.iter().copied())
            .map(|u| (u.to_owned(), Role::CryptoUser, format!("{u}-pass")))
            .collect();
        Rig::start(n, Options { users, ..options })
    }

    /// Points the library this process loads at the cluster.
    ///
    /// Call it before the test starts any thread of its own: it sets the
    /// process environment, which each test binary's one test owns.
    #[expect(unsafe_code, reason = "setting the environment the library reads")]
    pub(crate) fn point_the_library_here(&self) {
        // SAFETY: the caller's contract above: no other thread of this
        // process reads or writes the environment now.
        unsafe { std::env::set_var(hsm_pkcs11::CONFIG_ENV, &self.client_env) };
    }

    /// Runs a program of checks (it prints `all checks passed` at the end)
    /// with the library pointed at the cluster and alice's PIN as its last
    /// argument; fails the test, showing its output, unless all passed.
    pub(crate) fn run_checks(&self, what: &str, program: &mut std::process::Command) {
        let output = program.arg("alice:alice-pass").env(hsm_pkcs11::CONFIG_ENV, &self.client_env).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success() && stdout.contains("all checks passed"), "{what} failed");
    }

    /// A path in the rig's directory.
    pub(crate) fn file(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
}

/// The library built with the tests: cargo puts the cdylib beside the test
/// binary, in `target/<profile>/deps`.
pub(crate) fn library_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().join("libhsm_pkcs11.so");
    assert!(path.exists(), "{} not built", path.display());
    path
}

/// Whether a test that drives an outside tool should run: where the tool
/// is missing, it is skipped, saying so, unless `HSM_PKCS11_REQUIRE_TOOLS`
/// is set (as CI sets it), which makes that a failure.
pub(crate) fn tool_present(present: bool, what: &str) -> bool {
    if !present {
        assert!(
            std::env::var_os("HSM_PKCS11_REQUIRE_TOOLS").is_none(),
            "{what} is not installed and HSM_PKCS11_REQUIRE_TOOLS is set"
        );
        eprintln!("SKIPPED: {what} is not installed");
    }
    present
}
