//! Runs the chosen operations in order, each against the cluster it needs:
//! one HSM (started once, on first need), three HSMs for
//! `keygen-ec-cluster` (started for it and stopped after), the echo server
//! for `echo`, and an HSM of its own for `sessions`.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use futures_util::future::join_all;
use hsm_client::{Cluster, Role, Session};
use tokio::{runtime::Handle, sync::oneshot};

use crate::{
    args::{Args, Kdf, Op},
    cluster::{Shape, Sources, Started},
    echo::{self, EchoServer},
    load::{self, Load},
    ops::{KeyNeed, Primitive, Workload, sign_mechanism},
    report::{OpResult, Report},
    scale, sessions,
};

/// Runs every operation of `args` and relates the results.
pub(crate) async fn run(args: &Args, server: Handle) -> anyhow::Result<Report> {
    let sources = Sources::new(args, server.clone())?;
    let kdf = args.kdf.unwrap_or(Kdf::Production);
    let load = Load { concurrency: usize::try_from(args.concurrency)?, warmup: args.warmup, duration: args.duration };
    // `keys-scale` always starts its own `hsm-daemon dev` with the test KDF;
    // a run of nothing else says so rather than name a mode it did not use.
    let only_scale = args.op.0.iter().all(|op| *op == Op::KeysScale);
    let mut report = Report {
        mode: if only_scale { "dev" } else { sources.mode() },
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        kdf: if only_scale {
            Kdf::Testing.name().into()
        } else if sources.starts_clusters() {
            kdf.name().into()
        } else {
            "the target's own".into()
        },
        duration_s: args.duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        rounds: args.rounds,
        concurrency: load.concurrency,
        connections: usize::try_from(args.connections)?,
        // A session beyond one per task would never be used.
        sessions: usize::try_from(args.sessions.unwrap_or(1).min(args.concurrency))?,
        results: Vec::new(),
    };
    let mut one: Option<Started> = None;
    // Every round's rows of each operation, in the order of `args.op`
    // (`keys-scale` gives two rows, every other operation one).
    let mut rounds: Vec<Vec<Vec<OpResult>>> = args.op.0.iter().map(|_| Vec::new()).collect();
    let runs = (1..=args.rounds).flat_map(|round| args.op.0.iter().enumerate().map(move |(i, op)| (round, i, *op)));
    for (round, index, op) in runs {
        if args.rounds > 1 {
            eprintln!("hsm-bench: round {round}/{}: {op} ...", args.rounds);
        } else {
            eprintln!("hsm-bench: {op} ...");
        }
        let payload = if op.takes_payload() { args.payload.map_or(op.default_payload(), |p| p as usize) } else { 0 };
        let rows = match op {
            Op::Echo => vec![echo_op(&server, load, report.connections, payload).await?],
            Op::Sessions => {
                let kdf = args.kdf.unwrap_or(Kdf::Testing);
                let n = usize::try_from(args.sessions.unwrap_or(10_000))?;
                let max_sessions = n + load.concurrency + 64;
                let cluster = sources.start(Shape::Sessions { max_sessions }, kdf).await?;
                let result = sessions::hold(&cluster, n, load.concurrency, report.connections).await;
                cluster.stop().await;
                let mut result = result?;
                if sources.starts_clusters() {
                    result.kdf = Some(kdf.name().into());
                }
                vec![result]
            }
            Op::KeysScale => {
                let (lookup, list) = scale::run(args, load).await?;
                vec![lookup, list]
            }
            Op::KeygenEcCluster => {
                let three = sources.start(Shape::Three, kdf).await?;
                let result = cluster_keygen(&three, load).await;
                three.stop().await;
                vec![result?]
            }
            _ => {
                let cluster = match &mut one {
                    Some(cluster) => cluster,
                    None => one.insert(sources.start(Shape::One, kdf).await?),
                };
                let mut result = hsm_op(op, cluster, load, &report, payload).await?;
                if op == Op::Login && sources.starts_clusters() {
                    result.kdf = Some(kdf.name().into());
                }
                vec![result]
            }
        };
        if rows.iter().any(|r| r.calls == 0 && r.errors == 0) {
            eprintln!("hsm-bench: no {op} finished inside the measured window; give a longer --duration");
        }
        rounds[index].push(rows);
    }
    if let Some(one) = one {
        one.stop().await;
    }
    report.results =
        rounds.into_iter().flat_map(|op_rounds| transpose(op_rounds).into_iter()).filter_map(median_round).collect();
    report.relate();
    Ok(report)
}

/// Rounds of rows into rows of rounds: each row's results, one per round.
fn transpose(rounds: Vec<Vec<OpResult>>) -> Vec<Vec<OpResult>> {
    let mut rows: Vec<Vec<OpResult>> = Vec::new();
    for round in rounds {
        for (i, row) in round.into_iter().enumerate() {
            match rows.get_mut(i) {
                Some(results) => results.push(row),
                None => rows.push(vec![row]),
            }
        }
    }
    rows
}

/// The round with the median rate; errors of every round count against it,
/// so that a run with a failed call anywhere still says so.
fn median_round(mut results: Vec<OpResult>) -> Option<OpResult> {
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    let first_error = results.iter().find_map(|r| r.first_error.clone());
    results.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    let middle = results.len() / 2;
    let mut median = results.into_iter().nth(middle)?;
    median.errors = errors;
    if median.first_error.is_none() {
        median.first_error = first_error;
    }
    Some(median)
}

/// One operation against a single HSM, with its primitive.
async fn hsm_op(op: Op, cluster: &Started, load: Load, report: &Report, payload: usize) -> anyhow::Result<OpResult> {
    let clients = cluster.connect(report.connections).await?;
    let logins = (0..report.sessions)
        .map(|i| clients[i % clients.len()].login(&cluster.user, Role::CryptoUser, &cluster.password));
    let sessions = join_all(logins).await.into_iter().collect::<Result<Vec<Session>, _>>().context("logging in")?;
    let data = vec![0x5a_u8; payload];
    // The key belongs to the first session's user (every session is the
    // same crypto user); there is at least one session, as the flags'
    // lower bounds are 1.
    let (key, made) = match KeyNeed::of(op) {
        Some(need) => need.create(&sessions[0]).await.with_context(|| format!("creating the key for {op}"))?,
        None => (String::new(), Vec::new()),
    };
    let work = match op {
        Op::Noop => Workload::Ping { sessions },
        Op::ClusterInfo => Workload::ClusterInfo { clients: clients.clone() },
        Op::EcdsaP256Sign | Op::Ed25519Sign | Op::Rsa2048Sign | Op::HmacSha256_64 => {
            let (mechanism, hash) = sign_mechanism(op).context("a signing operation has a mechanism")?;
            Workload::Sign { sessions, key, mechanism, hash, data }
        }
        Op::AesGcm64 | Op::AesGcm4k => Workload::Encrypt { sessions, key, data },
        Op::Sha256_4k => Workload::Digest { sessions, data },
        Op::Login => {
            Workload::Login { clients: clients.clone(), user: cluster.user.clone(), password: cluster.password.clone() }
        }
        Op::KeygenEc => Workload::Keygen { sessions, delete: cluster.is_target() },
        Op::Echo | Op::KeygenEcCluster | Op::Sessions | Op::KeysScale => {
            anyhow::bail!("{op} does not run against one HSM")
        }
    };
    let work = Arc::new(work);
    let measured = load::drive(Arc::clone(&work), load).await;
    // Every task has finished, so this is the only handle left.
    let sessions = Arc::into_inner(work).map(Workload::into_sessions).unwrap_or_default();
    if let Some(owner) = sessions.first() {
        for reference in &made {
            owner.delete_key(reference).await.with_context(|| format!("deleting key {reference}"))?;
        }
    }
    log_out(sessions).await?;
    let unit = match op {
        Op::Login => "login",
        Op::KeygenEc => "key pair",
        _ => "call",
    };
    let mut result = OpResult::new(op, unit, &measured, load.concurrency, payload);
    // The login primitive needs the cluster's KDF; a target's is unknown.
    if op != Op::Login || cluster.kdf.is_some() {
        result.in_process_ops_per_sec = primitive_rate(op, payload, cluster, load.duration).await?;
    }
    Ok(result)
}

/// The in-process primitive's rate, on one thread off the async workers.
async fn primitive_rate(op: Op, payload: usize, cluster: &Started, duration: Duration) -> anyhow::Result<Option<f64>> {
    let kdf = cluster.kdf.unwrap_or(hsm_daemon::model::KdfParams::DEFAULT);
    let rate =
        tokio::task::spawn_blocking(move || Primitive::of(op, payload, kdf)?.map(|p| p.rate(duration)).transpose())
            .await?;
    rate.map_err(|e| anyhow::anyhow!("{op} in-process: {e}"))
}

/// EC P-256 key pairs through the cluster-aware client, replicated to every
/// HSM before each call returns.
async fn cluster_keygen(cluster: &Started, load: Load) -> anyhow::Result<OpResult> {
    let client = Cluster::connect(&cluster.config).await?;
    let session = client.login(&cluster.user, Role::CryptoUser, &cluster.password).await?;
    let work = Arc::new(Workload::KeygenCluster { session, delete: cluster.is_target() });
    let measured = load::drive(Arc::clone(&work), load).await;
    if let Some(Workload::KeygenCluster { session, .. }) = Arc::into_inner(work) {
        session.logout().await?;
    }
    let mut result = OpResult::new(Op::KeygenEcCluster, "key pair", &measured, load.concurrency, 0);
    result.in_process_ops_per_sec = primitive_rate(Op::KeygenEcCluster, 0, cluster, load.duration).await?;
    Ok(result)
}

/// The bare tonic echo: its server on the server runtime, the load here.
async fn echo_op(server: &Handle, load: Load, connections: usize, payload: usize) -> anyhow::Result<OpResult> {
    let bound = server.spawn(EchoServer::bind()).await??;
    let (address, ca_pem) = (bound.address.clone(), bound.ca_pem.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = server.spawn(bound.serve(async {
        stopped.await.ok();
    }));
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        clients.push(echo::connect(&address, &ca_pem).await?);
    }
    let measured = load::drive(Arc::new(Workload::Echo { clients, payload: vec![0x5a_u8; payload] }), load).await;
    // The clients are gone with the workload, so the server stops at once.
    stop.send(()).ok();
    serving.await??;
    Ok(OpResult::new(Op::Echo, "call", &measured, load.concurrency, payload))
}

/// Ends sessions, a few at a time.
pub(crate) async fn log_out(sessions: Vec<Session>) -> anyhow::Result<()> {
    let mut sessions = sessions.into_iter();
    loop {
        let batch: Vec<Session> = sessions.by_ref().take(64).collect();
        if batch.is_empty() {
            return Ok(());
        }
        for outcome in join_all(batch.into_iter().map(Session::logout)).await {
            outcome.context("logging out")?;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::Measured;

    fn round(calls: usize, errors: usize) -> OpResult {
        let mut m = Measured::new(Duration::from_secs(1));
        for _ in 0..calls {
            m.record(Ok(Duration::from_micros(100)));
        }
        for _ in 0..errors {
            m.record(Err("refused".into()));
        }
        OpResult::new(Op::Noop, "call", &m, 8, 0)
    }

    #[test]
    fn the_median_round_is_reported_with_every_rounds_errors() {
        let median = median_round(vec![round(300, 0), round(100, 2), round(200, 0)]).unwrap();
        assert_eq!(median.calls, 200);
        assert_eq!(median.errors, 2, "the slow round's errors still count");
        assert_eq!(median.first_error.as_deref(), Some("refused"));
        assert!(median_round(Vec::new()).is_none());
    }

    #[test]
    fn an_operation_with_two_rows_keeps_both_across_rounds() {
        // keys-scale gives a lookup row and a list row each round.
        let rounds =
            vec![vec![round(10, 0), round(1, 0)], vec![round(30, 0), round(3, 0)], vec![round(20, 0), round(2, 0)]];
        let medians: Vec<u64> = transpose(rounds).into_iter().filter_map(median_round).map(|r| r.calls).collect();
        assert_eq!(medians, vec![20, 2]);
    }
}
