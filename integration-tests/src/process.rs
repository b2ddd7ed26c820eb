//! `hsm-daemon init` and `hsm-daemon run` as child processes: a cluster
//! directory prepared by `init`, and daemons started from its config files,
//! killed (SIGKILL) or terminated (SIGTERM), and reaped when dropped.
//!
//! Daemons run with a cheap KDF and none of the caller's `HSM_*` variables;
//! their standard error goes to files beside the cluster directory, never in
//! it.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};

use hsm_client::{ClientConfig, HsmClient};

use crate::bin_dir;

/// Only a guard against a hung daemon or test, never a timing assertion.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// A cluster prepared by `hsm-daemon init --dir D --hsms N` in a temporary
/// directory.
#[derive(Debug)]
pub struct ClusterDir {
    root: tempfile::TempDir,
    launches: AtomicUsize,
}

/// How a `hsm-daemon run` ended up.
#[derive(Debug)]
pub enum Launch {
    Started(Daemon),
    Refused(Refusal),
}

/// A `run` that exited without saying it was listening.
#[derive(Debug)]
pub struct Refusal {
    pub status: ExitStatus,
    pub stderr: String,
}

/// A running `hsm-daemon run`; killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    pub address: String,
    pub ca: PathBuf,
    stderr: PathBuf,
}

impl ClusterDir {
    /// `hsm-daemon init --dir D --hsms <hsms>`.
    pub fn init(hsms: usize) -> ClusterDir {
        let cluster = Self::init_with(hsms, &[]);
        for k in 1..=hsms {
            assert!(cluster.data_dir_of(k).is_dir(), "init made no data directory for HSM {k}");
        }
        cluster
    }

    /// `hsm-daemon init --dir D --hsms <hsms> <args>`.
    pub fn init_with(hsms: usize, args: &[&str]) -> ClusterDir {
        let root = tempfile::tempdir().expect("temp dir");
        let cluster = ClusterDir { root, launches: AtomicUsize::new(0) };
        fs::create_dir(cluster.logs()).expect("logs dir");
        let out = cluster
            .command()
            .args(["init", "--dir"])
            .arg(cluster.dir())
            .args(["--hsms", &hsms.to_string()])
            .args(args)
            .output()
            .expect("hsm-daemon init");
        assert!(
            out.status.success(),
            "hsm-daemon init failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for k in 1..=hsms {
            assert!(cluster.config_of(k).is_file(), "init wrote no config for HSM {k}");
        }
        cluster
    }

    /// A scratch directory beside `D` (backups, moved data).
    pub fn scratch(&self) -> &Path {
        self.root.path()
    }

    /// `D`.
    pub fn dir(&self) -> PathBuf {
        self.root.path().join("cluster")
    }

    fn logs(&self) -> PathBuf {
        self.root.path().join("logs")
    }

    /// HSM 1's config file.
    pub fn config(&self) -> PathBuf {
        self.config_of(1)
    }

    pub fn config_of(&self, k: usize) -> PathBuf {
        self.dir().join(format!("hsm-{k}.toml"))
    }

    /// HSM 1's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir_of(1)
    }

    pub fn data_dir_of(&self, k: usize) -> PathBuf {
        self.dir().join(format!("hsm-{k}-data"))
    }

    /// HSM 1's store file.
    pub fn store(&self) -> PathBuf {
        self.data_dir().join("hsm.redb")
    }

    /// One variable of `D/client.env`.
    pub fn client_env(&self, key: &str) -> String {
        let env = fs::read_to_string(self.dir().join("client.env")).expect("client.env");
        env.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
            .unwrap_or_else(|| panic!("{key} missing from client.env: {env}"))
            .to_owned()
    }

    /// `hsm-daemon` with none of the caller's `HSM_*` settings and a cheap
    /// KDF.
    pub fn command(&self) -> Command {
        let mut command = Command::new(bin_dir().join("hsm-daemon"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("HSM_") {
                command.env_remove(name);
            }
        }
        command.env("HSM_KDF_MEMORY_KIB", "8").env("HSM_KDF_ITERATIONS", "1").stdin(Stdio::null());
        command
    }

    /// `hsm-daemon run --config D/hsm-1.toml <args>`, until it says it is
    /// listening or exits.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Launch {
        self.run_hsm(1, args, env)
    }

    /// `hsm-daemon run --config D/hsm-<k>.toml <args>`.
    pub fn run_hsm(&self, k: usize, args: &[&str], env: &[(&str, &str)]) -> Launch {
        let n = self.launches.fetch_add(1, Ordering::Relaxed);
        let stderr = self.logs().join(format!("run-{n}-hsm-{k}.stderr"));
        let mut child = self
            .command()
            .arg("run")
            .arg("--config")
            .arg(self.config_of(k))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("hsm-daemon run");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, received) = mpsc::channel();
        // Reads standard output to its end, so that the daemon never blocks
        // on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines.send(line);
            }
        });
        let mut daemon = Daemon {
            child: Some(child),
            address: String::new(),
            ca: PathBuf::from(self.client_env("HSM_CA_CERT")),
            stderr,
        };
        loop {
            match received.recv_timeout(HANG_GUARD) {
                Ok(line) => {
                    if let Some(address) = banner_address(&line) {
                        assert!(address.starts_with("127.0.0.1:"), "listening beyond 127.0.0.1: {line}");
                        daemon.address = address;
                        return Launch::Started(daemon);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = daemon.child.take().expect("child").wait().expect("wait");
                    let stderr = fs::read_to_string(&daemon.stderr).unwrap_or_default();
                    return Launch::Refused(Refusal { status, stderr });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("hsm-daemon run neither listened nor exited: {}", daemon.stderr_text())
                }
            }
        }
    }

    /// `hsm-daemon <subcommand> --config D/hsm-1.toml <flag> <path>`, as
    /// `backup` and `restore` take them.
    pub fn tool(&self, subcommand: &str, flag: &str, path: &Path) -> std::process::Output {
        self.command().arg(subcommand).arg("--config").arg(self.config()).arg(flag).arg(path).output().expect("run")
    }

    /// Starts HSM 1 on a free port; fails the test if it refuses.
    pub fn start(&self) -> Daemon {
        self.start_with(&["--listen", "127.0.0.1:0"], &[])
    }

    pub fn start_with(&self, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        self.start_hsm_with(1, args, env)
    }

    /// Starts HSM `k` with `args`; fails the test if it refuses.
    pub fn start_hsm_with(&self, k: usize, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        match self.run_hsm(k, args, env) {
            Launch::Started(daemon) => daemon,
            Launch::Refused(r) => panic!("hsm-daemon run (HSM {k}) refused to start ({}): {}", r.status, r.stderr),
        }
    }

    /// Runs HSM 1 expecting a refusal; returns its standard error.
    pub fn refused(&self, args: &[&str], env: &[(&str, &str)]) -> Refusal {
        match self.run(args, env) {
            Launch::Started(daemon) => panic!("hsm-daemon run {args:?} started on {}", daemon.address),
            Launch::Refused(r) => {
                assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
                assert!(r.stderr.contains("hsm-daemon: error: "), "{}", r.stderr);
                r
            }
        }
    }
}

/// The address in `hsm-daemon: <hsm> of cluster <id> listening on <addr> (TLS)`.
fn banner_address(line: &str) -> Option<String> {
    let rest = line.strip_prefix("hsm-daemon: ")?;
    let (_, after) = rest.split_once(" listening on ")?;
    Some(after.split_once(' ').map_or(after, |(address, _)| address).to_owned())
}

impl Daemon {
    /// A client of this daemon alone.
    pub async fn client(&self) -> HsmClient {
        let config = ClientConfig::from_parts(&self.address, &self.ca).expect("client config");
        HsmClient::connect(&config).await.expect("connect")
    }

    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGKILL, and reap.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("child");
        child.kill().expect("kill");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "{status}");
    }

    /// SIGTERM, and wait for a clean exit; returns all the daemon logged.
    pub fn terminate(mut self) -> String {
        let child = self.child.take().expect("child");
        let pid = child.id().to_string();
        let (done, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let mut child = child;
            let _ = done.send(child.wait());
        });
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(sent.success(), "kill -TERM {pid}");
        match exited.recv_timeout(HANG_GUARD) {
            Ok(status) => {
                let status = status.expect("status");
                assert!(status.success(), "hsm-daemon exited with {status} on SIGTERM: {}", self.stderr_text());
                self.stderr_text()
            }
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                panic!("hsm-daemon did not stop on SIGTERM: {}", self.stderr_text());
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a test stops a daemon before restarting it.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    Kill,
    Terminate,
}

impl Stop {
    pub fn stop(self, daemon: Daemon) {
        match self {
            Stop::Kill => daemon.kill(),
            Stop::Terminate => {
                daemon.terminate();
            }
        }
    }
}
