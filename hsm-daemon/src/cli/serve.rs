//! `hsm-daemon dev` and `hsm-daemon run`: the commands that serve HSMs in
//! this process until SIGINT or SIGTERM. The cluster and each HSM's start
//! are `hsm_daemon::cluster`'s; this checks the flags against the seed
//! file, prints the banner and owns the signals and the metrics endpoint.

use std::{net::SocketAddr, sync::Arc};

use anyhow::{Context as _, bail};
use hsm_daemon::{
    cluster::{Launch, LocalCluster, OpenedHsm},
    determinism,
    metrics::{Endpoint, Metrics},
    model::{ClusterMode, HsmType, Password},
    seed::{Seed, SeedPlan},
    settings::Settings,
    store::STORE_FILE,
};

use super::{DevArgs, RunArgs, tools::settings};

/// `hsm-daemon dev`.
pub(crate) async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let admin_password = args
        .admin_password
        .as_deref()
        .map(|p| Password::parse("--admin-password", p))
        .transpose()
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    // Checked before anything is prepared, so that a bad value changes nothing.
    args.settings.metrics_addr()?;
    let seed = args.settings.seed.as_deref().map(Seed::from_file).transpose()?;
    if let Some(seed) = &seed {
        if seed.sets_admin_password() && admin_password.is_some() {
            bail!(
                "--admin-password: the seed file sets the admin password ([cluster] admin_password); give it in \
                 one place"
            );
        }
        if let (Some(flag), Some(wanted)) = (args.hsms, seed.hsms())
            && flag != wanted
        {
            bail!(
                "--hsms {flag}: the seed file asks for {wanted} HSM(s) ([cluster] hsms); give the count in one place"
            );
        }
    }

    let temp_dir;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp_dir =
                tempfile::Builder::new().prefix("hsm-dev-").tempdir().context("creating a temporary directory")?;
            temp_dir.path().to_owned()
        }
    };
    // client.env appears when the cluster serves (test harnesses wait for
    // it), so one left by an earlier run must not be seen first.
    let env_file = dir.join("client.env");
    if let Err(e) = std::fs::remove_file(&env_file)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(e).with_context(|| format!("removing the old {}", env_file.display()));
    }
    let mut cluster = if LocalCluster::holds_cluster(&dir) {
        let cluster = LocalCluster::open(&dir)?;
        if let Some(wanted) = seed.as_ref().and_then(Seed::cluster_id)
            && wanted != cluster.id()
        {
            bail!(
                "{} holds cluster {}; the seed file names {wanted} ([cluster] id): use another --dir",
                dir.display(),
                cluster.id()
            );
        }
        let held = cluster.hsm_count();
        if let Some(wanted) = args.hsms
            && usize::from(wanted) != held
        {
            bail!(
                "--hsms {wanted}: {} holds a cluster of {held} HSM(s); use --hsms {held}, another --dir, or add \
                 HSMs with `hsm-daemon init --dir {} --add N` and `hsm-daemon run`",
                dir.display(),
                dir.display()
            );
        }
        cluster
    } else {
        let mode = match (&args.settings.mode, seed.as_ref().and_then(Seed::mode)) {
            (Some(flag), _) => Some(ClusterMode::parse("mode", flag).map_err(|e| anyhow::anyhow!("--mode: {e}"))?),
            (None, from_seed) => from_seed,
        };
        LocalCluster::builder()
            .hsms(args.hsms.or(seed.as_ref().and_then(Seed::hsms)).unwrap_or(1))
            .cluster_id(seed.as_ref().and_then(Seed::cluster_id).cloned())
            .hsm_type(seed.as_ref().and_then(Seed::hsm_type).unwrap_or(HsmType::Hsm2mMedium))
            .mode(mode)
            .deterministic(args.settings.deterministic)
            .create(&dir)?
            .0
    };
    let count = cluster.hsm_count();

    // Open every store and bind every port first: peers are known only once
    // all are bound. A fresh free port each start unless --listen says
    // otherwise (one HSM only).
    if count > 1 && args.settings.listen.is_some() {
        bail!("--listen: with more than one HSM each takes a free port; leave --listen out");
    }
    // A seed that holds more keys than the HSM type allows turns key quotas
    // off, unless the flag says otherwise.
    let key_quota = args
        .settings
        .key_quota
        .clone()
        .or_else(|| seed.as_ref().filter(|seed| seed.quotas_off()).map(|_| "off".to_owned()));
    let flags = Settings { listen: Some(args.settings.listen_addr()), key_quota, ..args.settings.clone() };
    let all = (1..=count).map(|index| cluster.settings(index, &flags)).collect::<Result<Vec<_>, _>>()?;
    // One plan for every new store, so that the HSMs start identical.
    let plan = match seed {
        Some(seed) if all.iter().any(store_is_new) => Some(plan_seed(seed, &all[0]).await?),
        Some(_) => {
            tracing::info!("every HSM's store already exists: the seed is not applied again");
            None
        }
        None => None,
    };
    let launch = Launch { admin_password, seed: plan.clone(), control_socket: true };
    let mut hsms = Vec::new();
    for (index, settings) in (1..).zip(&all) {
        let opened = OpenedHsm::open(settings, &launch).await.with_context(|| format!("starting HSM {index}"))?;
        hsms.push(opened);
    }
    let signalled = shutdown_signal()?;
    // One endpoint for every HSM of the process; each series names its HSM.
    let metrics = start_metrics(&args.settings).await?;
    if let Some(metrics) = &metrics {
        for hsm in &mut hsms {
            hsm.set_metrics(Arc::clone(&metrics.metrics));
        }
    }
    let scheme = scheme(&hsms[0]);
    let all_active = hsms.iter().all(OpenedHsm::is_activated);
    let banner: Vec<String> = (1..)
        .zip(&hsms)
        .map(|(index, hsm): (usize, &OpenedHsm)| {
            format!("  HSM {index}   {} listening on {}", hsm.seat().hsm_id, hsm.seat().address)
        })
        .collect();
    cluster.serve(hsms);
    // The API's HSMs hash passwords as this cluster's do.
    let api_flags = super::api::hsm_flags(
        args.settings.kdf_memory_kib,
        args.settings.kdf_iterations,
        args.settings.kdf_parallelism,
    );
    let api = match args.no_api {
        true => None,
        false => Some(args.api.start(&dir.join("control-plane"), api_flags).await?),
    };
    let aws_env = api.as_ref().map(|api| api.client_env(args.api.verifies())).unwrap_or_default();
    let env_path =
        cluster.material().write_client_env_with(&cluster.addresses(), &aws_env).context("writing client.env")?;

    println!("hsm-daemon dev: cluster {} with {count} HSM(s) ({scheme})", cluster.id());
    for line in banner {
        println!("{line}");
    }
    println!("  CA      {}", cluster.material().ca_path().display());
    println!("  state   {}", dir.join("hsm-K-data").display());
    if let Some(metrics) = &metrics {
        println!("  metrics http://{}/metrics", metrics.address);
    }
    if let Some(api) = &api {
        println!(
            "  API     {} (aws cloudhsmv2, boto3; state in {})",
            api.endpoint_url(),
            dir.join("control-plane").display()
        );
    }
    if let Some(path) = &args.settings.seed {
        match &plan {
            Some(plan) => println!(
                "  seed    {}: {} user(s) and {} key(s) in each new store",
                path.display(),
                plan.user_count(),
                plan.key_count()
            ),
            None => println!(
                "  seed    {}: not applied, the stores already exist (remove DIR to start over)",
                path.display()
            ),
        }
    }
    if let Some(seed) = args.settings.deterministic {
        println!("  {} (--deterministic {seed})", determinism::WARNING);
    }
    println!("  cluster {}", if all_active { "active" } else { "uninitialized: run `hsm-cli cluster activate`" });
    println!("Connect with:");
    println!("  set -a; . {}; set +a", env_path.display());
    println!("  hsm-cli cluster hsm-info");
    println!("Press Ctrl-C to stop.");

    // One signal stops every HSM.
    cluster.run_until(signalled).await?;
    if let Some(api) = api {
        api.stop().await;
    }
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    // The addresses in it are gone with the HSMs.
    let _ = std::fs::remove_file(&env_path);
    Ok(())
}

/// `hsm-daemon run`.
pub(crate) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let settings = settings(args.config.as_ref(), args.settings)?;
    let seed = run_seed(&settings).await?;
    if let Some(seed) = settings.deterministic {
        println!("hsm-daemon: {} (--deterministic {seed})", determinism::WARNING);
    }
    let launch = Launch { admin_password: None, seed, control_socket: true };
    let mut hsm = OpenedHsm::open(&settings, &launch).await?;
    let shutdown = shutdown_signal()?;
    let metrics = start_metrics(&settings).await?;
    if let Some(metrics) = &metrics {
        hsm.set_metrics(Arc::clone(&metrics.metrics));
    }
    println!(
        "hsm-daemon: {} of cluster {} listening on {} ({})",
        hsm.seat().hsm_id,
        hsm.seat().cluster_id,
        hsm.seat().address,
        scheme(&hsm)
    );
    if let Some(metrics) = &metrics {
        println!("hsm-daemon: metrics on http://{}/metrics", metrics.address);
    }
    let served = hsm.serve(shutdown).await;
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    Ok(served?)
}

/// How the banner names the HSM's transport.
fn scheme(hsm: &OpenedHsm) -> &'static str {
    if hsm.is_tls() { "TLS" } else { "PLAINTEXT, NO TLS" }
}

/// The process's metrics endpoint, bound and serving.
struct MetricsServer {
    metrics: Arc<Metrics>,
    address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Binds and serves the metrics endpoint if `metrics_addr` is set: binding
/// now, so that a busy or bad address stops start-up with its reason.
async fn start_metrics(settings: &Settings) -> anyhow::Result<Option<MetricsServer>> {
    let Some(addr) = settings.metrics_addr()? else { return Ok(None) };
    let metrics = Metrics::new();
    let endpoint = Endpoint::bind(addr, Arc::clone(&metrics)).await?;
    let address = endpoint.address();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(endpoint.serve(async {
        stopped.await.ok();
    }));
    Ok(Some(MetricsServer { metrics, address, stop, task }))
}

impl MetricsServer {
    /// Stops serving, once the HSMs have stopped.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Whether the HSM these settings describe starts with a new store (the
/// seed applies only then).
fn store_is_new(settings: &Settings) -> bool {
    settings.ephemeral.unwrap_or(false) || settings.data_dir.as_ref().is_none_or(|d| !d.join(STORE_FILE).exists())
}

/// Hashes the seed's passwords and generates its keys, once, off the async
/// workers (RSA generation is slow).
async fn plan_seed(seed: Seed, settings: &Settings) -> anyhow::Result<Arc<SeedPlan>> {
    let kdf = settings.kdf()?;
    let deterministic = settings.deterministic;
    let plan = tokio::task::spawn_blocking(move || seed.plan(&kdf, deterministic)).await??;
    Ok(Arc::new(plan))
}

/// `run --seed FILE`: the plan for a new store, after checking that the seed
/// fits the HSM's settings.
async fn run_seed(settings: &Settings) -> anyhow::Result<Option<Arc<SeedPlan>>> {
    let Some(path) = &settings.seed else { return Ok(None) };
    let seed = Seed::from_file(path)?;
    if !store_is_new(settings) {
        tracing::info!(seed = %path.display(), "the store already exists: the seed is not applied again");
        return Ok(None);
    }
    if let (Some(wanted), Some(held)) = (seed.cluster_id(), &settings.cluster_id)
        && wanted.as_str() != held
    {
        bail!("the seed file names cluster {wanted} ([cluster] id), this HSM belongs to {held}");
    }
    let hsm_type = HsmType::parse(settings.hsm_type.as_deref().unwrap_or("hsm2m.medium"))?;
    if let Some(wanted) = seed.hsm_type()
        && wanted != hsm_type
    {
        bail!("the seed file's hsm_type is {wanted}, this HSM's is {hsm_type}");
    }
    let mode = ClusterMode::parse("mode", settings.mode.as_deref().unwrap_or("FIPS"))?;
    if let Some(wanted) = seed.mode()
        && wanted != mode
    {
        bail!("the seed file's mode is {wanted} ([cluster] mode), this HSM's is {mode} (--mode)");
    }
    if seed.quotas_off() && settings.key_quota.as_deref() != Some("off") {
        bail!("the seed file sets key_quota = \"off\": run this HSM with --key-quota off (HSM_KEY_QUOTA=off) too");
    }
    if seed.generates_keys() && settings.index() > 1 && settings.deterministic.is_none() {
        bail!(
            "the seed generates keys, and HSM {} would generate other material than HSM 1 under the same key \
             references: start every HSM of the cluster with the same --deterministic SEED, or give the keys' \
             material in the seed (pem, pem_file or hex)",
            settings.index()
        );
    }
    plan_seed(seed, settings).await.map(Some)
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM. The handlers are
/// installed when this is called, not when the future is first polled, so
/// call it before announcing the daemon: a supervisor may signal it the
/// moment it says it listens.
pub(super) fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("watching SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("interrupted, shutting down"),
            _ = terminate.recv() => tracing::info!("terminated, shutting down"),
        }
    })
}
