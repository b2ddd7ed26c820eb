//! `--op sessions`: what an open session costs the HSM in memory. Logs in N
//! sessions and holds them, reading the resident memory before and after.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use hsm_client::{Role, Session};

use crate::{
    args::Op,
    cluster::Started,
    load::Measured,
    report::{OpResult, SessionMemory},
    run::log_out,
};

/// Opens `n` sessions on the cluster's first HSM with `concurrency` logins
/// in flight, over `connections` connections, and reports the logins' rate
/// and latency and the memory per held session. Sessions on a target are
/// logged out afterwards; a started cluster is simply stopped.
pub(crate) async fn hold(
    cluster: &Started,
    n: usize,
    concurrency: usize,
    connections: usize,
) -> anyhow::Result<OpResult> {
    let clients = Arc::new(cluster.connect(connections).await?);
    let user = Arc::new((cluster.user.clone(), cluster.password.clone()));
    // Settle connections and allocator pools before the first reading.
    let warm = log_in(&clients, &user, concurrency.min(n), concurrency).await;
    log_out(warm.1).await?;
    let before = cluster.rss_kib();
    let started = Instant::now();
    let (mut measured, held) = log_in(&clients, &user, n, concurrency).await;
    measured.window = started.elapsed().max(Duration::from_micros(1));
    let after = cluster.rss_kib();
    let mut result = OpResult::new(Op::Sessions, "session", &measured, concurrency, 0);
    if let (Some((before, process)), Some((after, _))) = (before, after) {
        result.memory = Some(SessionMemory {
            sessions: held.len(),
            process,
            rss_before_kib: before,
            rss_after_kib: after,
            bytes_per_session: ((after as f64 - before as f64) * 1024.0 / held.len().max(1) as f64).round(),
        });
    }
    if cluster.is_target() {
        log_out(held).await?;
    }
    Ok(result)
}

/// Logs in `n` sessions, `concurrency` at a time; returns their latencies
/// and the sessions.
async fn log_in(
    clients: &Arc<Vec<hsm_client::HsmClient>>,
    user: &Arc<(String, String)>,
    n: usize,
    concurrency: usize,
) -> (Measured, Vec<Session>) {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (clients, user, next) = (Arc::clone(clients), Arc::clone(user), Arc::clone(&next));
            tokio::spawn(async move {
                let mut measured = Measured::new(Duration::ZERO);
                let mut held = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let started = Instant::now();
                    match clients[i % clients.len()].login(&user.0, Role::CryptoUser, &user.1).await {
                        Ok(session) => {
                            measured.record(Ok(started.elapsed()));
                            held.push(session);
                        }
                        Err(e) => measured.fail(e.to_string()),
                    }
                }
                (measured, held)
            })
        })
        .collect();
    let mut all = Measured::new(Duration::ZERO);
    let mut held = Vec::with_capacity(n);
    for task in tasks {
        match task.await {
            Ok((measured, sessions)) => {
                all.merge(measured);
                held.extend(sessions);
            }
            Err(e) => all.fail(format!("login task failed: {e}")),
        }
    }
    (all, held)
}
