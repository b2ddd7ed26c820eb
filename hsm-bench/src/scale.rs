//! `--op keys-scale`: one HSM holding many EC token keys, with key quotas
//! off (issue 8's scale target). Seeds an `hsm-daemon dev` HSM with `--keys`
//! keys (P-256 pairs made by a seed's `count`), then reports:
//! - the restart-to-serving time: spawn to the first answered call, three
//!   times (a store of a million keys is loaded whole on each start), from
//!   the page cache or, with `--cold`, from disk;
//! - the daemon's resident memory per key, over an empty HSM's;
//! - p50/p99 of a lookup by reference (`key list --filter key-reference=...`)
//!   and of a filtered, paged list (`--filter attr.label=... attr.class=...
//!   --max-items 10`), one call at a time, as a client waiting on each sees
//!   them.
//!
//! Seeding a million keys takes minutes (every pair is generated); with
//! `--keys-dir DIR` the seeded HSM is kept and reused by later runs.

use std::{
    ffi::OsStr,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hsm_client::{ClientConfig, HsmClient, ListKeys, Role, Session};
use rand::Rng as _;
use serde::Serialize;

use crate::{
    args::{Args, Kdf, Op},
    cluster::{BENCH_PASSWORD, BENCH_USER, daemon_binary, dev_command, rss_kib},
    load::{Load, Measured},
    report::OpResult,
};

/// The first key reference of HSM 1: seeded keys are numbered from it, a
/// pair's public key first.
const FIRST_REFERENCE: u64 = 0x0010_0001;

/// How long a start may take before the run gives up (seeding a million
/// keys takes minutes).
const START_TIMEOUT: Duration = Duration::from_secs(3600);

/// Restarts measured.
const RESTARTS: usize = 3;

/// What holding the keys costs, beside the latency rows.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScaleFigures {
    pub(crate) keys: u64,
    /// Spawn to first answered call, each restart.
    pub(crate) restart_s: Vec<f64>,
    /// Whether the page cache was dropped before each restart (`--cold`).
    pub(crate) cold: bool,
    pub(crate) rss_empty_kib: u64,
    pub(crate) rss_kib: u64,
    /// Resident memory over the empty HSM's, per key (stored material of
    /// about 115 bytes per key included: PKCS#8 138, SPKI 91).
    pub(crate) bytes_per_key: f64,
}

/// Runs the scenario; returns the lookup row and the list row (the figures
/// ride on the first).
pub(crate) async fn run(args: &Args, load: Load) -> anyhow::Result<(OpResult, OpResult)> {
    let daemon = daemon_binary(args.daemon_bin.as_deref())?;
    let keys = u64::from(args.keys);
    let temp = tempfile::Builder::new().prefix("hsm-bench-keys-").tempdir()?;
    let dir = args.keys_dir.clone().unwrap_or_else(|| temp.path().join("hsm"));
    if !dir.join("hsm-1-data").exists() {
        let seed = temp.path().join("seed.toml");
        std::fs::write(&seed, seed_text(keys / 2))?;
        eprintln!("hsm-bench: seeding {keys} EC keys into {} (minutes for a million) ...", dir.display());
        let started = Instant::now();
        let mut seeded = Dev::start(&daemon, &dir, &["--seed".as_ref(), seed.as_os_str()]).await?;
        eprintln!("hsm-bench: seeded in {:.1} s", started.elapsed().as_secs_f64());
        seeded.stop();
    }
    let admin = ["--admin-password".as_ref(), hsm_daemon::testing::ADMIN_PASSWORD.as_ref()];
    let mut empty = Dev::start(&daemon, &temp.path().join("empty"), &admin).await?;
    empty.client.login("admin", Role::Admin, hsm_daemon::testing::ADMIN_PASSWORD).await?.logout().await?;
    let rss_empty_kib = empty.rss_kib();
    empty.stop();

    let mut restart_s = Vec::with_capacity(RESTARTS);
    let mut serving = None;
    for _ in 0..RESTARTS {
        if let Some(mut previous) = serving.take() {
            Dev::stop(&mut previous);
        }
        if args.cold {
            drop_page_cache()?;
        }
        let started = Instant::now();
        let dev = Dev::start(&daemon, &dir, &[]).await?;
        restart_s.push((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
        serving = Some(dev);
    }
    let mut dev = serving.context("at least one restart")?;
    let session = dev.client.login(BENCH_USER, Role::CryptoUser, BENCH_PASSWORD).await?;
    let rss_kib = dev.rss_kib();
    let figures = ScaleFigures {
        keys,
        restart_s,
        cold: args.cold,
        rss_empty_kib,
        rss_kib,
        bytes_per_key: (rss_kib.saturating_sub(rss_empty_kib) as f64 * 1024.0 / keys.max(1) as f64).round(),
    };

    let pairs = (keys / 2).max(1);
    let lookup = measure(
        load,
        || {
            let reference = FIRST_REFERENCE + rand::rng().random_range(0..pairs * 2);
            vec![("key-reference".to_owned(), format!("0x{reference:016x}"))]
        },
        &session,
    )
    .await;
    let list = measure(
        load,
        || {
            let n = rand::rng().random_range(1..=pairs);
            vec![("attr.label".to_owned(), format!("scale-{n}")), ("attr.class".to_owned(), "private-key".to_owned())]
        },
        &session,
    )
    .await;
    session.logout().await?;
    dev.stop();
    let mut lookup = OpResult::new(Op::KeysScale, "lookup", &lookup, 1, 0);
    lookup.op = "keys-scale lookup";
    lookup.scale = Some(figures);
    let mut list = OpResult::new(Op::KeysScale, "list page", &list, 1, 0);
    list.op = "keys-scale list";
    Ok((lookup, list))
}

/// One `key list` after another for the warm-up and then the measured
/// window, each with the filters `filters` makes; each must match one key.
async fn measure(load: Load, filters: impl Fn() -> Vec<(String, String)>, session: &Session) -> Measured {
    let mut measured = Measured::new(load.duration);
    let warm_until = Instant::now() + load.warmup;
    while Instant::now() < warm_until {
        let _ = session.list_keys(ListKeys::default().filters(&filters()).max_items(10)).await;
    }
    let until = Instant::now() + load.duration;
    while Instant::now() < until {
        let filters = filters();
        let started = Instant::now();
        let outcome = match session.list_keys(ListKeys::default().filters(&filters).max_items(10)).await {
            Ok(page) if page.total == 1 => Ok(started.elapsed()),
            Ok(page) => Err(format!("{filters:?} matched {} keys, not 1", page.total)),
            Err(e) => Err(e.to_string()),
        };
        measured.record(outcome);
    }
    measured
}

/// Writes dirty pages back and drops the page cache, so that the next start
/// reads the store from disk.
fn drop_page_cache() -> anyhow::Result<()> {
    let synced = Command::new("sync").status().context("running sync")?;
    if !synced.success() {
        bail!("--cold: sync failed ({synced})");
    }
    std::fs::write("/proc/sys/vm/drop_caches", "1")
        .context("--cold: dropping the page cache needs Linux and root (/proc/sys/vm/drop_caches)")
}

/// A seed of `pairs` P-256 pairs owned by the bench user, quotas off.
fn seed_text(pairs: u64) -> String {
    format!(
        r#"[cluster]
admin_password = "{admin}"
key_quota = "off"

[[users]]
username = "{BENCH_USER}"
role = "crypto-user"
password = "{BENCH_PASSWORD}"

[[keys]]
label = "scale-{{n}}"
public_label = "scale-{{n}}-pub"
count = {pairs}
owner = "{BENCH_USER}"
type = "ec"
curve = "secp256r1"
attributes = {{ sign = true }}
public_attributes = {{ verify = true }}
"#,
        admin = hsm_daemon::testing::ADMIN_PASSWORD
    )
}

/// `hsm-daemon dev` on a directory kept between starts.
struct Dev {
    child: Child,
    client: HsmClient,
}

impl Dev {
    /// Starts it (key quotas off, the cheapest password hashing) and waits
    /// until it answers.
    async fn start(daemon: &Path, dir: &Path, extra: &[&OsStr]) -> anyhow::Result<Dev> {
        let env = dir.join("client.env");
        // A client.env left by the previous start would say it is serving.
        let _ = std::fs::remove_file(&env);
        let mut child = dev_command(daemon, dir, Kdf::Testing)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", daemon.display()))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("hsm-daemon dev exited ({status}) before serving");
            }
            if let Some(client) = answering(&env).await {
                return Ok(Dev { child, client });
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                bail!("hsm-daemon dev did not serve within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(&format!("/proc/{}/status", self.child.id())).unwrap_or(0)
    }

    /// Stops it with SIGTERM, so that the store is closed cleanly (a killed
    /// daemon's store is repaired on the next start, which would be timed).
    fn stop(&mut self) {
        let terminated = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        if !terminated.is_ok_and(|s| s.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A client of the HSM that `client.env` names, once it answers.
async fn answering(env: &Path) -> Option<HsmClient> {
    let config = ClientConfig::from_env_file(env).ok()?;
    let client = HsmClient::connect(&config).await.ok()?;
    client.cluster_info().await.ok()?;
    Some(client)
}
