//! OpenSSL with libp11's PKCS#11 engine (Debian `libengine-pkcs11-openssl`)
//! loading the library under test, as the OpenSSL and nginx tests drive it:
//! the `OPENSSL_CONF` file that names the engine, the library and the PIN,
//! `openssl` and `pkcs11-tool` commands pointed at a rig, and waits that
//! end: every outside program runs under a time limit, so that a call that
//! never returns fails the test instead of hanging it.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

use super::{Rig, library_path, tool_present};

/// The PIN of the crypto user the rig's keys belong to (`Rig::with_users`).
pub(crate) const PIN: &str = "alice:alice-pass";

/// How long one outside command may run before the test gives up on it.
pub(crate) const LIMIT: Duration = Duration::from_secs(60);

/// Whether `openssl`, `pkcs11-tool` (Debian `opensc`), libp11's engine
/// (`libengine-pkcs11-openssl`) and the programs named in `more` are
/// installed; otherwise the test is skipped, saying so (or fails where
/// `HSM_PKCS11_REQUIRE_TOOLS` is set).
pub(crate) fn tools_present(more: &[&str]) -> bool {
    // Installed: it starts (pkcs11-tool has no flag that exits with 0).
    let installed = |program: &str| Command::new(program).arg("-h").output().is_ok();
    let mut missing = Vec::new();
    for program in ["openssl", "pkcs11-tool"].iter().chain(more) {
        if !installed(program) {
            missing.push(*program);
        }
    }
    if engines_dir().is_none_or(|dir| !dir.join("pkcs11.so").exists()) {
        missing.push("libp11's engine");
    }
    tool_present(missing.is_empty(), &missing.join(", "))
}

/// OpenSSL's engine directory, from `openssl version -e`
/// (`ENGINESDIR: "/usr/lib/x86_64-linux-gnu/engines-3"`).
pub(crate) fn engines_dir() -> Option<PathBuf> {
    let output = Command::new("openssl").args(["version", "-e"]).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let quoted = text.split_once('"')?.1.split_once('"')?.0;
    Some(PathBuf::from(quoted))
}

/// OpenSSL configured, through an `OPENSSL_CONF` file in the rig's
/// directory, to load libp11's engine with the library under test and
/// alice's PIN, and pointed at the rig's cluster.
#[derive(Debug)]
pub(crate) struct Engine {
    conf: PathBuf,
    client_env: PathBuf,
}

impl Engine {
    /// Writes the configuration (readable by its owner only: it holds the
    /// PIN) next to the rig's `client.env`.
    pub(crate) fn new(rig: &Rig) -> Engine {
        let conf = PathBuf::from(rig.file("openssl-pkcs11.cnf"));
        let engine = engines_dir().unwrap().join("pkcs11.so");
        std::fs::write(&conf, openssl_conf(&engine, &library_path(), PIN)).unwrap();
        set_mode(&conf, 0o600);
        Engine { conf, client_env: rig.client_env.clone() }
    }

    /// The `OPENSSL_CONF` file.
    pub(crate) fn conf(&self) -> &Path {
        &self.conf
    }

    /// `openssl ARGS` with the engine configured and the library pointed
    /// at the cluster; fails the test unless it succeeds.
    pub(crate) fn openssl(&self, args: &[&str]) -> String {
        let mut command = Command::new("openssl");
        command.args(args).env("OPENSSL_CONF", &self.conf).env(hsm_pkcs11::CONFIG_ENV, &self.client_env);
        ok(&mut command)
    }

    /// A self-signed certificate for `localhost` whose key is the HSM's
    /// private key at `uri`, made as AWS's guide makes its CSR: `openssl
    /// req` with `-engine pkcs11 -keyform engine`.
    pub(crate) fn self_signed_certificate(&self, uri: &str, out: &str) {
        self.openssl(&[
            "req",
            "-new",
            "-x509",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-key",
            uri,
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-days",
            "30",
            "-out",
            out,
        ]);
    }

    /// The public key labelled `label`, read out through PKCS#11 by
    /// `pkcs11-tool` and written to `out` as PEM by `openssl` without the
    /// engine: what checks the HSM's signatures independently of it.
    pub(crate) fn public_key_pem(&self, label: &str, out: &str) {
        let der = format!("{out}.der");
        pkcs11_tool(&self.client_env, &["--read-object", "--type", "pubkey", "--label", label, "-o", &der]);
        plain_openssl(&["pkey", "-pubin", "-inform", "DER", "-in", &der, "-out", out]);
    }
}

/// `OPENSSL_CONF` contents that load libp11's engine (`engine`) with the
/// PKCS#11 library `module` and `pin`. `init = 0` leaves the engine to be
/// initialised when first used (by `-engine pkcs11` or nginx's
/// `ssl_engine`), not on every OpenSSL start.
pub(crate) fn openssl_conf(engine: &Path, module: &Path, pin: &str) -> String {
    format!(
        "openssl_conf = openssl_init\n\n[openssl_init]\nengines = engine_section\n\n[engine_section]\npkcs11 = \
         pkcs11_section\n\n[pkcs11_section]\nengine_id = pkcs11\ndynamic_path = {}\nMODULE_PATH = {}\nPIN = {pin}\ninit \
         = 0\n",
        engine.display(),
        module.display()
    )
}

/// `pkcs11-tool --module LIBRARY --login --pin PIN ARGS` against the rig
/// whose `client.env` this is; fails the test unless it succeeds.
pub(crate) fn pkcs11_tool(client_env: &Path, args: &[&str]) -> String {
    let mut command = Command::new("pkcs11-tool");
    command
        .arg("--module")
        .arg(library_path())
        .args(["--login", "--pin", PIN])
        .args(args)
        .env(hsm_pkcs11::CONFIG_ENV, client_env);
    ok(&mut command)
}

/// `openssl ARGS` with no configuration file, so no engine: the
/// independent check.
pub(crate) fn plain_openssl(args: &[&str]) -> String {
    ok(Command::new("openssl").args(args).env("OPENSSL_CONF", "/dev/null"))
}

/// Runs `command` within [`LIMIT`], shows what it printed, and fails the
/// test unless it succeeded; returns its standard output.
pub(crate) fn ok(command: &mut Command) -> String {
    let output = bounded(command, LIMIT);
    eprintln!(
        "{command:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed: {}", output.status);
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `command` and waits for it at most `limit`; past that, stops it
/// and fails the test.
pub(crate) fn bounded(command: &mut Command, limit: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    let pid = child.id().to_string();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match finished.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // TERM first, so that a script stops what it started.
            signal("TERM", &pid);
            if finished.recv_timeout(Duration::from_secs(10)).is_err() {
                signal("KILL", &pid);
            }
            panic!("{command:?} did not finish within {limit:?}; stopped it");
        }
    }
}

/// `kill -SIGNAL TARGET` (a pid, or `-PGID` for a process group), with
/// the system's `kill`, since the tests use no `unsafe`.
pub(crate) fn signal(signal: &str, target: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg("--").arg(target).stderr(Stdio::null()).status();
}

/// A port free on 127.0.0.1 now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Sets a file's permission bits.
pub(crate) fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
