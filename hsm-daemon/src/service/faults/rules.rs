//! What a caller of the fault service asks for, parsed into rules and names
//! at the boundary: each refusal names the field and the rule it breaks.

use std::{fmt, time::Duration};

use hsm_proto::v1::Rpc;
use tonic::{Code, Status};

use crate::model::ModelError;

/// A `SetFault` request before parsing.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleSpec {
    pub(crate) rpc: String,
    /// Empty: latency only.
    pub(crate) status: String,
    pub(crate) probability: Option<f64>,
    pub(crate) count: Option<u64>,
    pub(crate) latency_ms: u64,
    /// Empty: the default message.
    pub(crate) message: String,
}

/// One fault rule.
#[derive(Debug)]
pub(super) struct Rule {
    pub(super) id: u64,
    target: Target,
    code: Option<Code>,
    /// The caller's message, if it gave one.
    message: Option<String>,
    pub(super) probability: f64,
    /// Firings left; `None` until cleared.
    pub(super) remaining: Option<u64>,
    pub(super) latency: Duration,
    pub(super) hits: u64,
}

/// A rule as `ListFaults` shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleView {
    pub(crate) id: u64,
    /// Method names, or `*` for every `hsm.v1` RPC.
    pub(crate) rpcs: Vec<String>,
    /// Empty for a latency-only rule.
    pub(crate) status: String,
    pub(crate) message: String,
    pub(crate) probability: f64,
    pub(crate) remaining: Option<u64>,
    pub(crate) latency_ms: u64,
    pub(crate) hits: u64,
}

/// Which RPCs a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    All,
    Only(Vec<Rpc>),
}

/// A latency above this is a mistake (10 minutes), not a test of timeouts.
const MAX_LATENCY_MS: u64 = 600_000;

/// The hsm-cli commands whose names differ from their RPC's method name.
const CLI_COMMANDS: &[(&str, &[Rpc])] = &[
    ("cluster hsm-info", &[Rpc::GetClusterInfo]),
    ("cluster activate", &[Rpc::Activate]),
    ("cluster sync-status", &[Rpc::GetSyncStatus]),
    ("user create", &[Rpc::CreateUser]),
    ("user delete", &[Rpc::DeleteUser]),
    ("user list", &[Rpc::ListUsers]),
    ("user change-password", &[Rpc::ChangeOwnPassword, Rpc::ChangeUserPassword]),
    ("key generate-symmetric", &[Rpc::GenerateSymmetricKey]),
    ("key generate-asymmetric-pair", &[Rpc::GenerateKeyPair]),
    ("key import pem", &[Rpc::ImportKey]),
    ("key generate-file", &[Rpc::ExportPublicKey]),
    ("key wrap", &[Rpc::WrapKey]),
    ("key unwrap", &[Rpc::UnwrapKey]),
    ("key delete", &[Rpc::DeleteKey]),
    ("key share", &[Rpc::ShareKey]),
    ("key unshare", &[Rpc::UnshareKey]),
    ("key set-attribute", &[Rpc::SetKeyAttribute]),
    ("key list", &[Rpc::ListKeys]),
    ("crypto sign", &[Rpc::Sign]),
    ("crypto verify", &[Rpc::Verify]),
    ("crypto encrypt", &[Rpc::Encrypt]),
    ("crypto decrypt", &[Rpc::Decrypt]),
    ("crypto digest", &[Rpc::Digest]),
    ("crypto hmac sign", &[Rpc::Sign]),
    ("crypto hmac verify", &[Rpc::Verify]),
];

/// gRPC status names, kebab-case as the CLI takes them.
const CODES: &[(&str, Code)] = &[
    ("cancelled", Code::Cancelled),
    ("unknown", Code::Unknown),
    ("invalid-argument", Code::InvalidArgument),
    ("deadline-exceeded", Code::DeadlineExceeded),
    ("not-found", Code::NotFound),
    ("already-exists", Code::AlreadyExists),
    ("permission-denied", Code::PermissionDenied),
    ("resource-exhausted", Code::ResourceExhausted),
    ("failed-precondition", Code::FailedPrecondition),
    ("aborted", Code::Aborted),
    ("out-of-range", Code::OutOfRange),
    ("unimplemented", Code::Unimplemented),
    ("internal", Code::Internal),
    ("unavailable", Code::Unavailable),
    ("data-loss", Code::DataLoss),
    ("unauthenticated", Code::Unauthenticated),
];

impl Rule {
    /// Parses a request into rule `id`.
    pub(super) fn parse(id: u64, spec: &RuleSpec) -> Result<Rule, ModelError> {
        let target = parse_target(&spec.rpc)?;
        let code = if spec.status.trim().is_empty() { None } else { Some(parse_code(&spec.status)?) };
        let probability = spec.probability.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&probability) {
            return Err(invalid("probability", format!("must be from 0 to 1, got {probability}")));
        }
        if spec.count == Some(0) {
            return Err(invalid("count", "must be at least 1; leave it out for a rule that fires until cleared"));
        }
        if spec.latency_ms > MAX_LATENCY_MS {
            return Err(invalid("latency_ms", format!("must be at most {MAX_LATENCY_MS}, got {}", spec.latency_ms)));
        }
        if code.is_none() && spec.latency_ms == 0 {
            return Err(invalid("status", "a rule needs a status to fail with, a latency, or both"));
        }
        let message = spec.message.trim();
        Ok(Rule {
            id,
            target,
            code,
            message: (!message.is_empty()).then(|| message.to_owned()),
            probability,
            remaining: spec.count,
            latency: Duration::from_millis(spec.latency_ms),
            hits: 0,
        })
    }

    pub(super) fn matches(&self, rpc: Rpc) -> bool {
        match &self.target {
            Target::All => true,
            Target::Only(rpcs) => rpcs.contains(&rpc),
        }
    }

    /// The status a call of `rpc` fails with when this rule fires; `None`
    /// for a latency-only rule.
    pub(super) fn status(&self, rpc: Rpc) -> Option<Status> {
        let code = self.code?;
        let message = match &self.message {
            Some(m) => m.clone(),
            None => format!("injected fault: {} on {rpc:?} (fault injection rule {})", code_name(code), self.id),
        };
        Some(Status::new(code, message))
    }

    pub(super) fn view(&self) -> RuleView {
        RuleView {
            id: self.id,
            rpcs: match &self.target {
                Target::All => vec!["*".to_owned()],
                Target::Only(rpcs) => rpcs.iter().map(|r| format!("{r:?}")).collect(),
            },
            status: self.code.map(code_name).unwrap_or_default().to_owned(),
            message: self.message.clone().unwrap_or_default(),
            probability: self.probability,
            remaining: self.remaining,
            latency_ms: u64::try_from(self.latency.as_millis()).unwrap_or(u64::MAX),
            hits: self.hits,
        }
    }
}

/// A snapshot's name: 1 to 64 letters, digits, `-`, `_` or `.`; never
/// `seed`, which names the state the HSM started with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SnapshotName(String);

/// The name `Reset` takes for the seed.
pub(crate) const SEED: &str = "seed";

impl SnapshotName {
    pub(crate) fn parse(raw: &str) -> Result<Self, ModelError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if raw.is_empty() || raw.len() > 64 || !raw.chars().all(ok_char) {
            return Err(invalid(
                "name",
                format!("must be 1 to 64 letters, digits, '-', '_' or '.', got {:?}", shorten(raw)),
            ));
        }
        if raw.eq_ignore_ascii_case(SEED) {
            return Err(invalid("name", "'seed' names the state the HSM started with; choose another name"));
        }
        Ok(SnapshotName(raw.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The RPCs a name means: `*`, a path, an hsm-cli command, or a method name
/// in any case with or without `-` and `_`.
fn parse_target(raw: &str) -> Result<Target, ModelError> {
    let raw = raw.trim();
    if raw == "*" {
        return Ok(Target::All);
    }
    if let Some(rpc) = Rpc::from_path(raw) {
        return Ok(Target::Only(vec![rpc]));
    }
    let wanted = squash(raw);
    if let Some((_, rpcs)) = CLI_COMMANDS.iter().find(|(command, _)| squash(command) == wanted) {
        return Ok(Target::Only(rpcs.to_vec()));
    }
    match Rpc::ALL.iter().find(|rpc| squash(&format!("{rpc:?}")) == wanted) {
        Some(rpc) => Ok(Target::Only(vec![*rpc])),
        None => Err(invalid(
            "rpc",
            format!(
                "{:?} names no hsm.v1 RPC: give a method name (Sign, GenerateKeyPair, ...), its path, an hsm-cli \
                 command (\"crypto sign\", \"key list\", ...) or * for every RPC",
                shorten(raw)
            ),
        )),
    }
}

fn parse_code(raw: &str) -> Result<Code, ModelError> {
    let wanted = squash(raw);
    CODES.iter().find(|(name, _)| squash(name) == wanted).map(|(_, code)| *code).ok_or_else(|| {
        let names: Vec<&str> = CODES.iter().map(|(n, _)| *n).collect();
        invalid("status", format!("{:?} is not a failing gRPC status; use one of {}", shorten(raw), names.join(", ")))
    })
}

/// A status code's kebab-case name.
pub(crate) fn code_name(code: Code) -> &'static str {
    CODES.iter().find(|(_, c)| *c == code).map_or("unknown", |(name, _)| name)
}

/// Lower case, letters and digits only: "Generate_Key-Pair" and
/// "generatekeypair" name the same RPC.
fn squash(raw: &str) -> String {
    raw.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

fn shorten(raw: &str) -> String {
    raw.chars().take(64).collect()
}

fn invalid(field: &'static str, rule: impl Into<String>) -> ModelError {
    ModelError::InvalidArgument { field, rule: rule.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(raw: &str) -> Vec<String> {
        let rule = Rule::parse(1, &RuleSpec { rpc: raw.into(), status: "internal".into(), ..RuleSpec::default() });
        rule.unwrap().view().rpcs
    }

    fn refusal(spec: RuleSpec) -> String {
        Rule::parse(1, &spec).unwrap_err().to_string()
    }

    #[test]
    fn rpcs_are_named_by_method_path_or_cli_command() {
        for name in ["Sign", "sign", "SIGN", "/hsm.v1.CryptoService/Sign", "crypto sign", "crypto hmac sign"] {
            assert_eq!(target(name), ["Sign"], "{name}");
        }
        for name in ["GenerateKeyPair", "generate-key-pair", "generate_key_pair", "key generate-asymmetric-pair"] {
            assert_eq!(target(name), ["GenerateKeyPair"], "{name}");
        }
        assert_eq!(target("user change-password"), ["ChangeOwnPassword", "ChangeUserPassword"]);
        assert_eq!(target("cluster sync-status"), ["GetSyncStatus"]);
        assert_eq!(target("*"), ["*"]);
        // Every method name parses to itself.
        for rpc in Rpc::ALL {
            assert_eq!(target(&format!("{rpc:?}")), [format!("{rpc:?}")]);
        }
    }

    #[test]
    fn every_cli_command_names_an_rpc_no_method_name_shadows() {
        for (command, _) in CLI_COMMANDS {
            assert!(!Rpc::ALL.iter().any(|r| squash(&format!("{r:?}")) == squash(command)), "{command}");
        }
    }

    #[test]
    fn refusals_name_the_field_and_the_rule() {
        let base = RuleSpec { rpc: "sign".into(), status: "unavailable".into(), ..RuleSpec::default() };
        let e = refusal(RuleSpec { rpc: "frobnicate".into(), ..base.clone() });
        assert!(e.starts_with("invalid rpc: \"frobnicate\" names no hsm.v1 RPC"), "{e}");
        let e = refusal(RuleSpec { rpc: "/hsm.testing.v1.FaultService/Reset".into(), ..base.clone() });
        assert!(e.starts_with("invalid rpc:"), "the fault service is never a target: {e}");
        let e = refusal(RuleSpec { status: "ok".into(), ..base.clone() });
        assert!(e.starts_with("invalid status: \"ok\" is not a failing gRPC status; use one of cancelled"), "{e}");
        let e = refusal(RuleSpec { probability: Some(1.5), ..base.clone() });
        assert_eq!(e, "invalid probability: must be from 0 to 1, got 1.5");
        assert!(refusal(RuleSpec { probability: Some(f64::NAN), ..base.clone() }).starts_with("invalid probability"));
        let e = refusal(RuleSpec { count: Some(0), ..base.clone() });
        assert!(e.starts_with("invalid count: must be at least 1"), "{e}");
        let e = refusal(RuleSpec { latency_ms: 600_001, ..base.clone() });
        assert!(e.starts_with("invalid latency_ms: must be at most 600000"), "{e}");
        let e = refusal(RuleSpec { status: String::new(), ..base });
        assert!(e.starts_with("invalid status: a rule needs a status"), "{e}");
    }

    #[test]
    fn status_names_take_any_case_and_separator() {
        for (raw, code) in [
            ("unavailable", Code::Unavailable),
            ("RESOURCE_EXHAUSTED", Code::ResourceExhausted),
            ("resource-exhausted", Code::ResourceExhausted),
            ("DeadlineExceeded", Code::DeadlineExceeded),
        ] {
            assert_eq!(parse_code(raw).unwrap(), code, "{raw}");
            assert_eq!(parse_code(code_name(code)).unwrap(), code);
        }
    }

    #[test]
    fn snapshot_names_are_short_plain_and_never_seed() {
        assert_eq!(SnapshotName::parse("before-test_1.a").unwrap().as_str(), "before-test_1.a");
        let e = SnapshotName::parse("has space").unwrap_err().to_string();
        assert_eq!(e, "invalid name: must be 1 to 64 letters, digits, '-', '_' or '.', got \"has space\"");
        assert!(SnapshotName::parse("").is_err());
        assert!(SnapshotName::parse(&"a".repeat(65)).is_err());
        let e = SnapshotName::parse("Seed").unwrap_err().to_string();
        assert!(e.starts_with("invalid name: 'seed' names the state the HSM started with"), "{e}");
    }
}
