//! The command line: which operations, how much load, against what.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use clap::{Parser, ValueEnum};

/// Load generator for the CloudHSM emulator.
///
/// Starts its own cluster (in this process, or `hsm-daemon dev` as a child)
/// or targets one from a `client.env`, drives each operation with
/// `--concurrency` calls in flight for `--duration`, and prints rates and
/// latencies beside the same primitive called in-process and a bare tonic
/// echo over TLS.
#[derive(Debug, Parser)]
#[command(name = "hsm-bench", version)]
pub(crate) struct Args {
    /// Operations to run: one, a comma-separated list, or `all` (every one
    /// but `sessions` and `keys-scale`).
    #[arg(long, default_value = "all", value_parser = parse_ops)]
    pub(crate) op: OpList,

    /// Calls in flight at once (one task each).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) concurrency: u32,

    /// HTTP/2 connections per HSM, each a separate client; tasks are spread
    /// over them. 1, as the CloudHSM client SDK holds one connection per HSM
    /// and multiplexes every call of the application over it.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) connections: u32,

    /// Logged-in sessions, spread over the tasks (default 1: an application
    /// logs in once; at most one per task is used). For `--op sessions`, the
    /// sessions to open and hold (default 10000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) sessions: Option<u32>,

    /// Measured time per operation (`500ms`, `5s`, `1m`).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) duration: Duration,

    /// Time per operation before measuring starts, excluded from the figures.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub(crate) warmup: Duration,

    /// Runs the whole list of operations this many times, one after the
    /// other, and reports each operation's median round (by rate). On a
    /// shared or virtual machine the speed drifts over a minute; rounds
    /// interleave the operations so that their ratios compare like with like.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=99))]
    pub(crate) rounds: u32,

    /// Bytes of data per call, overriding each operation's default (64 for
    /// signatures, HMAC and aes-gcm-64, 4096 for aes-gcm-4k and sha256-4k, 0
    /// for echo). At most 16384, one HSM operation's limit.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=16_384))]
    pub(crate) payload: Option<u32>,

    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub(crate) json: bool,

    /// Where the cluster comes from (ignored with --target).
    #[arg(long, value_enum, default_value_t = ClusterSource::InProcess)]
    pub(crate) cluster: ClusterSource,

    /// An existing cluster's `client.env` (HSM_ENDPOINTS, HSM_CA_CERT).
    /// Needs a crypto user (--user, --password); the keys a run needs are
    /// created and deleted afterwards.
    #[arg(long, value_name = "PATH/client.env")]
    pub(crate) target: Option<PathBuf>,

    /// The crypto user for --target.
    #[arg(long, env = "HSM_BENCH_USER")]
    pub(crate) user: Option<String>,

    /// The crypto user's password for --target.
    #[arg(long, env = "HSM_BENCH_PASSWORD", hide_env_values = true)]
    pub(crate) password: Option<String>,

    /// The Argon2id cost of the clusters this run starts: `production`
    /// (19 MiB, 2 passes, what `hsm-daemon` uses by default; makes `login`
    /// honest) or `testing` (the cheapest). Default: production, except for
    /// `--op sessions`, which logs in thousands of times and uses testing.
    #[arg(long, value_enum)]
    pub(crate) kdf: Option<Kdf>,

    /// For `--op keys-scale`: the EC token keys the HSM holds (P-256
    /// pairs, so an even number).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(2..=20_000_000))]
    pub(crate) keys: u32,

    /// For `--op keys-scale`: keep the seeded HSM in DIR and reuse it in
    /// later runs (seeding a million keys takes minutes).
    #[arg(long, value_name = "DIR")]
    pub(crate) keys_dir: Option<PathBuf>,

    /// For `--op keys-scale`: before each restart, write the page cache
    /// back and drop it (`/proc/sys/vm/drop_caches`, Linux, as root), so
    /// that the restarts read the store from disk, as after a reboot.
    #[arg(long)]
    pub(crate) cold: bool,

    /// The `hsm-daemon` binary for `--cluster dev` (default: beside this
    /// executable).
    #[arg(long, value_name = "PATH")]
    pub(crate) daemon_bin: Option<PathBuf>,
}

/// Where the HSMs under load run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ClusterSource {
    /// In this process, on a Tokio runtime of its own (2 workers), apart from
    /// the runtime that makes the load, as two processes sharing the cores.
    InProcess,
    /// `hsm-daemon dev` as a child process in a temporary directory.
    Dev,
}

/// The password hashing cost of the clusters a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Kdf {
    Production,
    Testing,
}

impl Kdf {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kdf::Production => "production (Argon2id 19 MiB, 2 passes)",
            Kdf::Testing => "testing (Argon2id 8 KiB, 1 pass)",
        }
    }
}

/// One operation the bench can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    Echo,
    Noop,
    ClusterInfo,
    EcdsaP256Sign,
    Ed25519Sign,
    Rsa2048Sign,
    AesGcm64,
    AesGcm4k,
    HmacSha256_64,
    Sha256_4k,
    Login,
    KeygenEc,
    KeygenEcCluster,
    Sessions,
    KeysScale,
}

impl Op {
    /// Every operation, in the order `all` runs them (echo and noop first:
    /// the others are read against them), then `sessions`, which `all`
    /// leaves out.
    pub(crate) const ALL: [Op; 15] = [
        Op::Echo,
        Op::Noop,
        Op::ClusterInfo,
        Op::EcdsaP256Sign,
        Op::Ed25519Sign,
        Op::Rsa2048Sign,
        Op::AesGcm64,
        Op::AesGcm4k,
        Op::HmacSha256_64,
        Op::Sha256_4k,
        Op::Login,
        Op::KeygenEc,
        Op::KeygenEcCluster,
        Op::Sessions,
        Op::KeysScale,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Echo => "echo",
            Op::Noop => "noop",
            Op::ClusterInfo => "cluster-info",
            Op::EcdsaP256Sign => "ecdsa-p256-sign",
            Op::Ed25519Sign => "ed25519-sign",
            Op::Rsa2048Sign => "rsa2048-sign",
            Op::AesGcm64 => "aes-gcm-64",
            Op::AesGcm4k => "aes-gcm-4k",
            Op::HmacSha256_64 => "hmac-sha256-64",
            Op::Sha256_4k => "sha256-4k",
            Op::Login => "login",
            Op::KeygenEc => "keygen-ec",
            Op::KeygenEcCluster => "keygen-ec-cluster",
            Op::Sessions => "sessions",
            Op::KeysScale => "keys-scale",
        }
    }

    /// Bytes of data per call unless `--payload` says otherwise.
    pub(crate) fn default_payload(self) -> usize {
        match self {
            Op::EcdsaP256Sign | Op::Ed25519Sign | Op::Rsa2048Sign | Op::AesGcm64 | Op::HmacSha256_64 => 64,
            Op::AesGcm4k | Op::Sha256_4k => 4096,
            Op::Echo
            | Op::Noop
            | Op::ClusterInfo
            | Op::Login
            | Op::KeygenEc
            | Op::KeygenEcCluster
            | Op::Sessions
            | Op::KeysScale => 0,
        }
    }

    /// Whether `all` leaves it out: it holds thousands of sessions or
    /// millions of keys, and is asked for by name.
    pub(crate) fn long(self) -> bool {
        matches!(self, Op::Sessions | Op::KeysScale)
    }

    /// Whether a payload is sent at all (and `--payload` applies).
    pub(crate) fn takes_payload(self) -> bool {
        self.default_payload() > 0 || self == Op::Echo
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Op {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Op::ALL.into_iter().find(|op| op.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
            format!("unknown operation '{s}'; valid: {}, all", names.join(", "))
        })
    }
}

/// The operations of one run, in order, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpList(pub(crate) Vec<Op>);

fn parse_ops(s: &str) -> Result<OpList, String> {
    let mut ops = Vec::new();
    for name in s.split(',').map(str::trim) {
        let named = if name == "all" {
            Op::ALL.iter().copied().filter(|op| !op.long()).collect()
        } else {
            vec![name.parse::<Op>()?]
        };
        for op in named {
            if !ops.contains(&op) {
                ops.push(op);
            }
        }
    }
    Ok(OpList(ops))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("'{s}': {e} (e.g. 500ms, 5s, 1m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_every_op_but_sessions_and_lists_dedupe() {
        let args = Args::try_parse_from(["hsm-bench"]).unwrap();
        assert_eq!(args.op.0.len(), Op::ALL.len() - 2);
        assert!(!args.op.0.contains(&Op::Sessions) && !args.op.0.contains(&Op::KeysScale));
        let args = Args::try_parse_from(["hsm-bench", "--op", "noop, echo,noop"]).unwrap();
        assert_eq!(args.op.0, [Op::Noop, Op::Echo]);
        let args = Args::try_parse_from(["hsm-bench", "--op", "sessions,all"]).unwrap();
        assert_eq!(args.op.0[0], Op::Sessions);
        assert_eq!(args.op.0.len(), Op::ALL.len() - 1);
    }

    #[test]
    fn every_op_name_parses_back() {
        for op in Op::ALL {
            assert_eq!(op.name().parse::<Op>().unwrap(), op);
        }
    }

    #[test]
    fn a_bad_op_names_the_flag_and_lists_the_valid_ones() {
        let err = Args::try_parse_from(["hsm-bench", "--op", "rsa-sign"]).unwrap_err().to_string();
        assert!(err.contains("--op"), "{err}");
        assert!(err.contains("unknown operation 'rsa-sign'"), "{err}");
        assert!(err.contains("ecdsa-p256-sign") && err.contains("keygen-ec-cluster"), "{err}");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        let args = Args::try_parse_from(["hsm-bench", "--duration", "500ms", "--warmup", "0s"]).unwrap();
        assert_eq!(args.duration, Duration::from_millis(500));
        assert_eq!(args.warmup, Duration::ZERO);
        let args = Args::try_parse_from(["hsm-bench", "--duration", "1m"]).unwrap();
        assert_eq!(args.duration, Duration::from_secs(60));
        let err = Args::try_parse_from(["hsm-bench", "--duration", "5 parsecs"]).unwrap_err().to_string();
        assert!(err.contains("--duration"), "{err}");
    }

    #[test]
    fn load_flags_have_bounds() {
        assert!(Args::try_parse_from(["hsm-bench", "--concurrency", "0"]).is_err());
        assert!(Args::try_parse_from(["hsm-bench", "--payload", "16385"]).is_err());
        let args =
            Args::try_parse_from(["hsm-bench", "--concurrency", "8", "--connections", "2", "--sessions", "4"]).unwrap();
        assert_eq!((args.concurrency, args.connections, args.sessions), (8, 2, Some(4)));
    }
}
