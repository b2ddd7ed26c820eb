//! The results: one row per operation, as a table for people and as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{args::Op, load::Measured};

/// The whole run: how it was made, and one result per operation.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// `in-process`, `dev` or `target`.
    pub(crate) mode: &'static str,
    /// Cores this process may use (the HSM shares them in `in-process` and
    /// `dev` modes).
    pub(crate) cores: usize,
    /// The password hashing cost of the clusters the run started.
    pub(crate) kdf: String,
    pub(crate) duration_s: f64,
    pub(crate) warmup_s: f64,
    /// Rounds of the whole list; each result is its operation's median.
    pub(crate) rounds: u32,
    pub(crate) concurrency: usize,
    pub(crate) connections: usize,
    pub(crate) sessions: usize,
    pub(crate) results: Vec<OpResult>,
}

/// One operation's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OpResult {
    pub(crate) op: &'static str,
    /// What one op is: `call`, `login` (login, then an unmeasured logout),
    /// `key pair` (two keys, each durable before the call returns) or
    /// `session`.
    pub(crate) unit: &'static str,
    pub(crate) ops_per_sec: f64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) p999_us: u64,
    pub(crate) max_us: u64,
    /// Ops that finished in the measured window.
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_error: Option<String>,
    pub(crate) concurrency: usize,
    pub(crate) payload_bytes: usize,
    /// The same mechanism called in this process on one thread, no RPC.
    pub(crate) in_process_ops_per_sec: Option<f64>,
    /// This op's rate over the authenticated no-op RPC's.
    pub(crate) vs_noop: Option<f64>,
    /// This op's rate over the in-process primitive's.
    pub(crate) vs_in_process: Option<f64>,
    /// This op's rate over the bare tonic echo's.
    pub(crate) vs_echo: Option<f64>,
    /// For `login` and `sessions`: the password hashing cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kdf: Option<String>,
    /// For `sessions`: what holding them costs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) memory: Option<SessionMemory>,
    /// For `keys-scale`: restart time and memory per key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scale: Option<crate::scale::ScaleFigures>,
}

/// Memory held for open sessions.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SessionMemory {
    pub(crate) sessions: usize,
    /// Whose resident memory was read.
    pub(crate) process: &'static str,
    pub(crate) rss_before_kib: u64,
    pub(crate) rss_after_kib: u64,
    pub(crate) bytes_per_session: f64,
}

impl OpResult {
    pub(crate) fn new(op: Op, unit: &'static str, measured: &Measured, concurrency: usize, payload: usize) -> Self {
        let h = &measured.latency_us;
        let at = |q: f64| if h.is_empty() { 0 } else { h.value_at_quantile(q) };
        OpResult {
            op: op.name(),
            unit,
            ops_per_sec: round(measured.ops_per_sec(), 1),
            p50_us: at(0.5),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: if h.is_empty() { 0 } else { h.max() },
            calls: measured.calls(),
            errors: measured.errors,
            first_error: measured.first_error.clone(),
            concurrency,
            payload_bytes: payload,
            in_process_ops_per_sec: None,
            vs_noop: None,
            vs_in_process: None,
            vs_echo: None,
            kdf: None,
            memory: None,
            scale: None,
        }
    }
}

impl Report {
    /// Fills in each result's ratios to the no-op RPC, the echo and its
    /// in-process primitive, where the run measured them.
    pub(crate) fn relate(&mut self) {
        let rate_of = |name: &str| {
            self.results.iter().find(|r| r.op == name && r.calls > 0 && r.errors == 0).map(|r| r.ops_per_sec)
        };
        let (noop, echo) = (rate_of(Op::Noop.name()), rate_of(Op::Echo.name()));
        for r in &mut self.results {
            // An op with no call in the window has no rate to relate.
            if r.op == Op::Sessions.name() || r.calls == 0 {
                continue;
            }
            r.vs_noop = noop.map(|n| round(r.ops_per_sec / n, 4));
            r.vs_echo = echo.map(|e| round(r.ops_per_sec / e, 4));
            r.in_process_ops_per_sec = r.in_process_ops_per_sec.map(|p| round(p, 1));
            r.vs_in_process = r.in_process_ops_per_sec.filter(|p| *p > 0.0).map(|p| round(r.ops_per_sec / p, 4));
        }
    }

    pub(crate) fn errors(&self) -> u64 {
        self.results.iter().map(|r| r.errors).sum()
    }

    /// The table for people.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "hsm-bench: {} mode, {} cores, concurrency {}, {} connection(s), {} session(s), {}s per op after {}s warm-up{}",
            self.mode,
            self.cores,
            self.concurrency,
            self.connections,
            self.sessions,
            self.duration_s,
            self.warmup_s,
            if self.rounds > 1 { format!(", median of {} rounds", self.rounds) } else { String::new() }
        );
        let _ = writeln!(out, "password hashing: {}", self.kdf);
        let _ = writeln!(
            out,
            "{:<18} {:>11} {:>9} {:>9} {:>9} {:>12} {:>7} {:>8} {:>7} {:>6}",
            "op", "ops/s", "p50 us", "p99 us", "p99.9 us", "in-proc/s", "/noop", "/in-proc", "/echo", "errors"
        );
        let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
        for r in &self.results {
            let in_process = r.in_process_ops_per_sec.map_or_else(|| "-".to_owned(), |p| format!("{p:.0}"));
            let _ = writeln!(
                out,
                "{:<18} {:>11.0} {:>9} {:>9} {:>9} {:>12} {:>7} {:>8} {:>7} {:>6}",
                r.op,
                r.ops_per_sec,
                r.p50_us,
                r.p99_us,
                r.p999_us,
                in_process,
                ratio(r.vs_noop),
                ratio(r.vs_in_process),
                ratio(r.vs_echo),
                r.errors
            );
        }
        for r in &self.results {
            if let Some(m) = &r.memory {
                let _ = writeln!(
                    out,
                    "sessions: {} held, RSS of {} {} -> {} KiB: {:.0} bytes per session (logins: {})",
                    m.sessions,
                    m.process,
                    m.rss_before_kib,
                    m.rss_after_kib,
                    m.bytes_per_session,
                    r.kdf.as_deref().unwrap_or("-")
                );
            }
            if let Some(s) = &r.scale {
                let _ = writeln!(
                    out,
                    "keys-scale: {} EC token keys; restart to serving {:?} s ({}); RSS {} KiB over an empty HSM's \
                     {} KiB: {:.0} bytes per key",
                    s.keys,
                    s.restart_s,
                    if s.cold { "page cache dropped before each" } else { "store in the page cache" },
                    s.rss_kib,
                    s.rss_empty_kib,
                    s.bytes_per_key
                );
            }
            if let Some(e) = &r.first_error {
                let _ = writeln!(out, "{}: {} error(s), the first: {e}", r.op, r.errors);
            }
        }
        let _ = writeln!(
            out,
            "login = Login (measured) then Logout; keygen-ec* = EC P-256 token key pair (2 keys) \
             generated and durable; \
             signatures over {} bytes of data, hashed in the HSM",
            Op::EcdsaP256Sign.default_payload()
        );
        out
    }
}

/// `x` to `places` decimals: the figures are noisy well before that.
fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn result(op: Op, rate: f64, in_process: Option<f64>) -> OpResult {
        let mut m = Measured::new(Duration::from_secs(1));
        for _ in 0..rate as usize {
            m.record(Ok(Duration::from_micros(100)));
        }
        OpResult { in_process_ops_per_sec: in_process, ..OpResult::new(op, "call", &m, 8, 0) }
    }

    fn report(results: Vec<OpResult>) -> Report {
        Report {
            mode: "in-process",
            cores: 2,
            kdf: "testing".into(),
            duration_s: 1.0,
            warmup_s: 0.0,
            rounds: 1,
            concurrency: 8,
            connections: 1,
            sessions: 1,
            results,
        }
    }

    #[test]
    fn ratios_relate_each_op_to_noop_echo_and_its_primitive() {
        let mut report = report(vec![
            result(Op::Echo, 400.0, None),
            result(Op::Noop, 200.0, None),
            result(Op::EcdsaP256Sign, 100.0, Some(50.0)),
        ]);
        report.relate();
        let sign = &report.results[2];
        assert_eq!((sign.vs_noop, sign.vs_echo, sign.vs_in_process), (Some(0.5), Some(0.25), Some(2.0)));
        assert_eq!(report.results[0].vs_in_process, None, "echo has no primitive");
        assert_eq!(report.results[1].vs_noop, Some(1.0));
    }

    #[test]
    fn without_noop_or_echo_the_ratios_are_absent_not_zero() {
        let mut report = report(vec![result(Op::Sha256_4k, 10.0, Some(20.0))]);
        report.relate();
        let json = serde_json::to_value(&report).unwrap();
        let r = &json["results"][0];
        assert!(r["vs_noop"].is_null() && r["vs_echo"].is_null());
        assert_eq!(r["vs_in_process"], 0.5);
        assert_eq!(r["p50_us"], 100);
        assert!(report.table().contains("sha256-4k"));
    }
}
