//! Harness for tests that run real HSMs.
//!
//! # Layout
//! - [`TestHsm`], [`TestCluster`]: the public in-process fixtures of
//!   `hsm_daemon::testing`, re-exported.
//! - [`process`]: `hsm-daemon init` and `hsm-daemon run` as child processes.
//! - [`scrape`]: reading a metrics endpoint over plain HTTP.
//! - [`DevProcess`]: `hsm-daemon dev` as a child process, with `hsm-cli`
//!   runs against it.
//! - [`TestRsaKey`]: a fixed RSA key for approver and MFA signatures.
//! - [`aws`]: the AWS CLI and boto3 (`.ci/aws-tools`), and a control plane
//!   in the test process for them to drive.
//! - [`docs`]: the README and `docs/` pages, for the tests that keep them
//!   true; the README's Rust example as a doctest.
//! - `tests/`: one file per area (permissions, users, tls, cli).

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
};

pub mod aws;
pub mod docs;
pub mod process;
pub mod scrape;

pub use hsm_daemon::testing::{ADMIN_PASSWORD, APPLIANCE_PASSWORD, Options, TestCluster, TestHsm};

/// The directory holding this workspace's built binaries (`target/debug`).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable");
        // target/debug/deps/<test> -> target/debug
        let dir = exe.parent().and_then(Path::parent).expect("target dir").to_owned();
        for bin in ["hsm-daemon", "hsm-cli"] {
            assert!(
                dir.join(bin).exists(),
                "{bin} is not built in {}: run the workspace tests (`cargo test --workspace`), which build it",
                dir.display()
            );
        }
        dir
    })
}

/// `hsm-daemon dev` running as a child process; killed on drop.
#[derive(Debug)]
pub struct DevProcess {
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    pub ca_cert: PathBuf,
    /// What the daemon printed on standard output before it was ready.
    pub banner: String,
    child: Child,
}

impl DevProcess {
    /// Starts `hsm-daemon dev --dir <temp> <args>` with a cheap KDF, waits for
    /// its banner and reads `client.env`.
    pub fn start(args: &[&str]) -> DevProcess {
        Self::start_in(tempfile::tempdir().expect("temp dir"), args)
    }

    /// Stops the daemon and starts `hsm-daemon dev` again on the same
    /// directory, with `args`.
    pub fn restart(mut self, args: &[&str]) -> DevProcess {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The directory moves to the new process; this one drops an empty one.
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        Self::start_in(dir, args)
    }

    /// Starts `hsm-daemon dev` on a directory prepared beforehand (e.g. a
    /// cluster made with `hsm-daemon init --clone-of`).
    pub fn start_in(dir: tempfile::TempDir, args: &[&str]) -> DevProcess {
        let mut child = Command::new(bin_dir().join("hsm-daemon"))
            .arg("dev")
            .arg("--dir")
            .arg(dir.path())
            .args(["--kdf-memory-kib", "8", "--kdf-iterations", "1"])
            .args(args)
            .env_remove("HSM_ADMIN_PASSWORD")
            .env_remove("HSM_SEED")
            .env_remove("HSM_DETERMINISTIC")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hsm-daemon");
        let stdout = child.stdout.take().expect("stdout");
        let mut banner = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("daemon output");
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        assert!(banner.contains("listening on"), "hsm-daemon dev did not start: {banner}");
        let env = std::fs::read_to_string(dir.path().join("client.env")).expect("client.env");
        let value = |key: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
                .unwrap_or_else(|| panic!("{key} missing from client.env: {env}"))
                .to_owned()
        };
        let endpoint = value("HSM_ENDPOINTS");
        let ca_cert = PathBuf::from(value("HSM_CA_CERT"));
        DevProcess { dir, endpoint, ca_cert, banner, child }
    }

    /// The daemon's process id (to read its memory from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `hsm-cli <args>` against this HSM (through `HSM_ENDPOINTS` and
    /// `HSM_CA_CERT`, as a user who loaded client.env), with extra
    /// environment variables.
    pub fn cli(&self, env: &[(&str, &str)], args: &[&str]) -> CliOutput {
        self.cli_with_stdin(env, args, None)
    }

    pub fn cli_with_stdin(&self, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> CliOutput {
        hsm_cli(&self.endpoint, &self.ca_cert, env, args, stdin)
    }
}

/// Runs `hsm-cli <args>` as a user who loaded a `client.env` with these
/// endpoints (comma-separated) and CA, with none of the caller's CloudHSM
/// settings and with extra environment variables. Blocks: from async tests,
/// call it on a blocking thread so the runtime keeps serving the HSMs.
pub fn hsm_cli(endpoints: &str, ca: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> CliOutput {
    let mut command = Command::new(bin_dir().join("hsm-cli"));
    command
        .args(args)
        .env("HSM_ENDPOINTS", endpoints)
        .env("HSM_CA_CERT", ca)
        .env_remove("CLOUDHSM_ROLE")
        .env_remove("CLOUDHSM_PIN")
        .env_remove("HSM_DISABLE_KEY_AVAILABILITY_CHECK")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn hsm-cli");
    if let Some(input) = stdin {
        use std::io::Write as _;
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    CliOutput::from(child.wait_with_output().expect("hsm-cli output"))
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A P-256 private key made with ring: its PKCS#8 DER, that DER as PEM, its
/// 32-byte private scalar and its public point (uncompressed SEC1), for
/// tests that import a key and check what the HSM does with it.
#[derive(Debug)]
pub struct P256Key {
    pub pkcs8: Vec<u8>,
    pub pem: String,
    pub scalar: Vec<u8>,
    pub public: Vec<u8>,
}

impl P256Key {
    pub fn generate() -> P256Key {
        use ring::signature::{self, KeyPair as _};
        let rng = ring::rand::SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("P-256 key").as_ref().to_vec();
        let pair = signature::EcdsaKeyPair::from_pkcs8(alg, &pkcs8, &rng).expect("ring reads its own PKCS#8");
        let public = pair.public_key().as_ref().to_vec();
        // ECPrivateKey inside the PKCS#8: version INTEGER 1, then the scalar
        // as an OCTET STRING of 32 bytes.
        let marker = [0x02, 0x01, 0x01, 0x04, 0x20];
        let at = pkcs8.windows(marker.len()).position(|w| w == marker).expect("ECPrivateKey") + marker.len();
        let scalar = pkcs8[at..at + 32].to_vec();
        let pem = pem("PRIVATE KEY", &pkcs8);
        P256Key { pkcs8, pem, scalar, public }
    }

    /// Whether `signature` (raw `r||s`) is this key's ECDSA-SHA256 signature
    /// of `data`, checked by ring.
    pub fn verifies(&self, data: &[u8], signature: &[u8]) -> bool {
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &self.public);
        key.verify(data, signature).is_ok()
    }
}

/// DER as PEM with `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// What one `hsm-cli` run printed.
#[derive(Debug)]
pub struct CliOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// The JSON envelope on standard output.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// Asserts `error_code` 0 and exit status 0; returns `data`.
    pub fn ok(&self) -> serde_json::Value {
        let json = self.json();
        assert!(self.success && json["error_code"] == 0, "expected success, got: {}{}", self.stdout, self.stderr);
        json["data"].clone()
    }

    /// Asserts `error_code` 1 and a failing exit status; returns the message.
    pub fn err(&self) -> String {
        let json = self.json();
        assert!(!self.success && json["error_code"] == 1, "expected failure, got: {}", self.stdout);
        json["data"].as_str().expect("error message").to_owned()
    }
}

impl From<Output> for CliOutput {
    fn from(o: Output) -> Self {
        CliOutput {
            success: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A fixed RSA-2048 key for tests that need an approver or MFA signature
/// without the `openssl` binary (its private key is public: tests only).
/// It signs as `openssl pkeyutl -sign -pkeyopt digest:sha256` does, over
/// the token's `approval_data` (whose SHA-256 is the token).
#[derive(Debug)]
pub struct TestRsaKey {
    pair: ring::signature::RsaKeyPair,
}

impl TestRsaKey {
    pub fn fixed() -> TestRsaKey {
        let der = b64(TEST_RSA_PKCS1);
        TestRsaKey { pair: ring::signature::RsaKeyPair::from_der(&der).expect("the fixed test key parses") }
    }

    /// The public key, SubjectPublicKeyInfo DER.
    pub fn spki(&self) -> Vec<u8> {
        b64(TEST_RSA_SPKI)
    }

    /// RSA PKCS#1 v1.5 SHA-256 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.pair.public().modulus_len()];
        let rng = ring::rand::SystemRandom::new();
        self.pair.sign(&ring::signature::RSA_PKCS1_SHA256, &rng, message, &mut signature).expect("RSA signing");
        signature
    }
}

fn b64(parts: &[&str]) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(parts.concat()).expect("base64 constant")
}

const TEST_RSA_PKCS1: &[&str] = &[
    "MIIEogIBAAKCAQEAvoe/fEszfAfIRKRKGxez8sGiFLeL2zGyYBx5UFJOzjfrfeDBFvDMKbOmUVLUKWrLIGPmNZqEMfIwU9IL",
    "zVKXzRkq31h3Dj7MscQRObz14SMGP7bNVM00gA31ez92FCHxzec9LOrhrMh6zyZPvJhHdDRPZRSNEjTQ5G5Lz/3JLrgpFi+R",
    "OKNmQXN2cuzxv1EexwPWQht/r53EBabJrA5aJy5qeqyypu/Z0w53RNUILvqxy0lA/BlfsKPelMzjyncpeLETVifdZTvmIScb",
    "x+yUmBOU5puBverXMWtKACsNJo29PbYMueXUxde1MDtD+C+vIDNQaRbXiXElVluXVcZyEQIDAQABAoIBABE9I7ncQqvt4anh",
    "mi7ksHcTcVXMhvlDKtoqrrNHbzKWDqw/V1klr7ifijnWHl93oSoCFUSJAX2qEG3/wD+d7HbggxIy5TrDEIQ5CDygIzhxPHyB",
    "TrIQiw0sYNH7m58WCdR7yqYzbk3S1IHE+/aav0RSrf2oTrH0rhMtA5ZYZl6Kn8ejEfzxRaByOYbjLKJyW/r3l2aps9+IYVeD",
    "MlWFtDCAmkeNYY02q8rwwS/1xIuAyFvqFj82UzgQv0/Dl2/d0lKJt1Uvyh/Lhjnnwj0hZnfbwkaf/JF8qORb/y+iE2Mc8uVA",
    "4BvPrmIhks05hD+MnTjOYz5/EJQtnVIdp5qL5x0CgYEA56XrsMPpylyGde9GH6ZwqHQeu7qLjiesBbbcN23riiA69TE7zzvK",
    "pYgfgS++3uKOO0diYVFILAVyka4UHIJ1rXZXLi3gS7h5LxL0O7IdFiB5AHWxsnbOCR3mMN5ifVRi2Glhn9CtQ1N6qFpgrB7G",
    "cBAhA4SYurwZScnDjLzOcYcCgYEA0o9FB6RRpze5H7krgtzd8JMu6cMbf3GvXQ8AfHs8+S0f683EBSsYnKhzZTT6kQfsVQpo",
    "rDxQPZiSevkpJf80lBHViHg6705BmU4nEY0y4W/O/FsOe9j7v0C2UgGm0HFCTrkyyulfu1jHPlz8N/0QODkspeBoGwWEWOB+",
    "d2m3RacCgYANE/z+edEVL6wXtG6NEuSBXizuBFYkrHC10eEU8AvAPJmXhjQOOx3xwoGk1YE9LCVDi4AuZlxgv938A4v3IBZs",
    "uKWrYcOsAro0wikvxZqGyUaLlBl4LeTr9tgsIiIFWWJLPYfZcfqWNnxSTOfwT7x8TyzN+gp1YHE9DTsREwfEuQKBgCmrpPOw",
    "N2CqjH6UvOG3KE02M7CbplOAgj4ee/Amy5hcr9aQ8Fw9fS9zvvKmm3gcY08pMjHz9cVa7pJbwSL98L/lD6dkc/VsPVtDtkOo",
    "+ArZf9M9ig5EkP32pp5wKT1TTNYbnMu/h+yh0zyqVlgWQyF9XzKsyK2gV+Lm+uBTEaw9AoGABtZWwg83KekJ2++hrU27to0c",
    "x0e2TwebczO4U40wQaQy0TJQ6dVui3wlUSbZ1Twhhn/wg7LaVQgrB0Z1HzE3JbRl0+t+v/BAlmS9zrp4gMS/6GiSCo2AGAk1",
    "un6HdeO6eFdBa0Zs/JZvmfy9QV0XAiqw9doiry1imUMHFmC4o8A=",
];

const TEST_RSA_SPKI: &[&str] = &[
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvoe/fEszfAfIRKRKGxez8sGiFLeL2zGyYBx5UFJOzjfrfeDBFvDM",
    "KbOmUVLUKWrLIGPmNZqEMfIwU9ILzVKXzRkq31h3Dj7MscQRObz14SMGP7bNVM00gA31ez92FCHxzec9LOrhrMh6zyZPvJhH",
    "dDRPZRSNEjTQ5G5Lz/3JLrgpFi+ROKNmQXN2cuzxv1EexwPWQht/r53EBabJrA5aJy5qeqyypu/Z0w53RNUILvqxy0lA/Blf",
    "sKPelMzjyncpeLETVifdZTvmIScbx+yUmBOU5puBverXMWtKACsNJo29PbYMueXUxde1MDtD+C+vIDNQaRbXiXElVluXVcZy",
    "EQIDAQAB",
];
