//! Start-up speed: how long a test suite waits for a fake HSM.
//!
//! Measures, in release mode (`cargo bench -p hsm-daemon --bench startup`):
//! - an in-process activated 1-HSM cluster (`hsm_daemon::testing`), from the
//!   call to a first answered RPC over TLS;
//! - the same with 3 HSMs;
//! - `hsm-daemon dev` as a process, from spawn to `client.env` written and
//!   the HSM answering over TLS.
//!
//! Prints the median and the 90th percentile of each. This is a benchmark,
//! not a test: nothing here asserts on time.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use hsm_client::{ClientConfig, HsmClient};
use hsm_daemon::testing::{Options, TestCluster};

const RUNS: usize = 25;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let in_process = |hsms: usize| {
        runtime.block_on(async {
            let started = Instant::now();
            let cluster = TestCluster::start(hsms, Options::default()).await;
            cluster.hsm(hsms - 1).client.cluster_info().await.expect("answers");
            let elapsed = started.elapsed();
            drop(cluster);
            elapsed
        })
    };
    report("in-process cluster, 1 HSM, activated", (0..RUNS).map(|_| in_process(1)).collect());
    report("in-process cluster, 3 HSMs, activated", (0..RUNS).map(|_| in_process(3)).collect());
    let dev = |()| runtime.block_on(dev_start());
    report("hsm-daemon dev, spawn to client.env and serving", (0..RUNS).map(|_| dev(())).collect());
}

/// Spawns `hsm-daemon dev` in a fresh directory and waits until its
/// `client.env` exists and the HSM answers.
async fn dev_start() -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = dir.path().join("client.env");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-daemon"))
        .args(["dev", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hsm-daemon dev");
    let elapsed = loop {
        if let Some(client) = ready(&env).await {
            client.cluster_info().await.expect("answers");
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "hsm-daemon dev did not start");
        tokio::time::sleep(Duration::from_micros(500)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

async fn ready(env: &Path) -> Option<HsmClient> {
    let text = std::fs::read_to_string(env).ok()?;
    let value = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=').map(str::to_owned));
    let config = ClientConfig::from_parts(&value("HSM_ENDPOINTS")?, Path::new(&value("HSM_CA_CERT")?)).ok()?;
    HsmClient::connect(&config).await.ok()
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what:<52} median {:>7.2} ms   p90 {:>7.2} ms   ({} runs)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.9).as_secs_f64() * 1e3,
        samples.len()
    );
}
