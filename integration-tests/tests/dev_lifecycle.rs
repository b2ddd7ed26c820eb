//! `hsm-daemon dev` as a background process of any test framework: it is
//! ready when `client.env` appears (never an old one), and SIGTERM stops it
//! cleanly and removes `client.env`, whose addresses are gone with it.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{bin_dir, process::HANG_GUARD};

#[test]
fn ready_when_client_env_appears_and_gone_after_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("client.env");
    // A first run prepares the cluster; stopping it leaves no client.env.
    for run in 0..2 {
        if run == 1 {
            std::fs::write(&env, "HSM_ENDPOINTS=127.0.0.1:1\nHSM_CA_CERT=/nonexistent\n").unwrap();
        }
        let child = Command::new(bin_dir().join("hsm-daemon"))
            .args(["dev", "--dir"])
            .arg(dir.path())
            .env("HSM_KDF_MEMORY_KIB", "8")
            .env("HSM_KDF_ITERATIONS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(Some(child));
        let mut waited = Duration::ZERO;
        let text = loop {
            match std::fs::read_to_string(&env) {
                Ok(text) if !text.contains("127.0.0.1:1\n") && text.ends_with('\n') => break text,
                _ => {}
            }
            assert!(waited < HANG_GUARD, "no client.env from run {run}");
            std::thread::sleep(Duration::from_millis(5));
            waited += Duration::from_millis(5);
        };
        let endpoint = text.lines().find_map(|l| l.strip_prefix("HSM_ENDPOINTS=")).unwrap();
        std::net::TcpStream::connect(endpoint).expect("the HSM listens once client.env is there");
        let mut child = child.0.take().unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = child.wait().unwrap();
        assert!(status.success(), "run {run}: dev exited with {status} on SIGTERM");
        assert!(!env.exists(), "run {run}: client.env outlived the HSMs");
    }
}

/// Kills the daemon if the test fails before stopping it.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
