//! `hsm-bench`: a load generator for the CloudHSM emulator, built on
//! `hsm-client`.
//!
//! It starts its own cluster (in this process, or `hsm-daemon dev` as a
//! child) or targets one from a `client.env`, drives each operation with a
//! fixed number of calls in flight for a fixed time, and reports the rate
//! and latency percentiles of each. Beside each crypto operation it runs the
//! same mechanism in-process with no RPC (the crypto limit), and beside
//! everything a bare tonic echo over TLS (the transport's limit), so that
//! the table says where time goes: `op / noop` is the price of the crypto
//! over the floor of an authenticated call, `op / in-process` the price of
//! the RPC over the crypto, `op / echo` the price over tonic itself.
//!
//! This is a benchmark, not a test: nothing asserts on time. Figures taken
//! on a busy machine are only plausible, not final.
//!
//! # Layout
//! - `args`: the flags and the operation names.
//! - `cluster`: where the HSMs come from (in-process, `dev` child, target)
//!   and the crypto user.
//! - `ops`: one call of each operation ([`ops::Workload`]) and its
//!   in-process primitive ([`ops::Primitive`]).
//! - `load`: the load loop and its latency histograms.
//! - `echo`: the bare tonic echo baseline (`proto/bench/v1/echo.proto`).
//! - `run`: runs the chosen operations in order, each against the cluster
//!   it needs; `sessions`: the memory an open session costs; `scale`: one
//!   HSM holding a million keys (memory per key, restart, lookups, lists).
//! - `report`: the table and the JSON document.

mod args;
mod cluster;
mod echo;
mod load;
mod ops;
mod report;
mod run;
mod scale;
mod sessions;

use std::{process::ExitCode, time::Duration};

use clap::Parser;

fn main() -> ExitCode {
    let args = args::Args::parse();
    match bench(&args) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("hsm-bench: writing JSON: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", report.table());
            }
            let errors = report.errors();
            if errors > 0 {
                eprintln!("hsm-bench: {errors} call(s) failed; the figures above are not valid");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hsm-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the load on one runtime and the in-process servers on another, each
/// with two workers, as two processes sharing the machine would.
fn bench(args: &args::Args) -> anyhow::Result<report::Report> {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hsm-bench-server")
        .enable_all()
        .build()?;
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hsm-bench-load")
        .enable_all()
        .build()?;
    // On Ctrl-C the run is dropped, and with it what it started: a `dev`
    // child is killed, in-process HSMs stop.
    let report = load.block_on(async {
        tokio::select! {
            report = run::run(args, server.handle().clone()) => report,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    load.shutdown_timeout(Duration::from_secs(5));
    server.shutdown_timeout(Duration::from_secs(5));
    report
}
