//! The CloudHSM CLI's JSON output: `{"error_code": 0, "data": ...}` on
//! success, `{"error_code": 1, "data": "<message>"}` on failure.
//!
//! Data shapes are serde structs so that fields keep the CLI's order; the
//! shapes of the key and crypto commands follow the CloudHSM CLI's examples.
//!
//! # Across the cluster
//! Every command runs against all HSMs in `HSM_ENDPOINTS`. Where the
//! CloudHSM CLI has a word for the cluster's state, this CLI uses it:
//! `"cluster-coverage"` of a key is `"full"` (on every HSM), `"session"` (a
//! session key, on its one HSM) or `"partial"` (on some HSMs; then
//! `"hsms-holding"` lists them); a user's `"role"`, `"locked"` and
//! `"cluster-coverage"` read `"inconsistent"` where HSMs disagree (then
//! `"hsms"` shows each HSM's view). A command that took effect on some HSMs
//! but not all still prints `error_code` 0, and its data gains
//! `"failed-hsms": [{"hsm": "host:port", "error": "..."}]` naming each HSM
//! it did not reach and why (data that is a bare string, such as
//! activation's, becomes `{"message": ..., "failed-hsms": ...}`); running
//! it again repairs them. Fully
//! successful commands print exactly what the CloudHSM CLI prints, and a
//! command that failed everywhere prints `error_code` 1.
//!
//! # Layout
//! - This file: the envelope, error messages, and what every shape uses.
//! - `users`: the user commands' data.
//! - `keys`: keys as the key commands print them.
//! - `crypto`: the crypto commands' data.
//! - `cluster`: the cluster commands' data (HSMs, mTLS, sync status) and
//!   the audit log.

mod cluster;
mod crypto;
mod keys;
mod users;

use hsm_client::ClientError;
use serde::Serialize;
use serde_json::Value;

pub(crate) use self::{
    cluster::{audit_list, hsm_info, mtls_enforcement, sync_status, trust_anchor_registered, trust_anchors},
    crypto::{decrypted, digest, encrypted, signature},
    keys::{Wrapped, imported_key, key, key_change, key_list, key_pair, wrapped},
    users::{user_change, user_ref, users},
};

#[derive(Serialize)]
struct Envelope<'a> {
    error_code: u8,
    data: &'a Value,
}

/// The JSON text for a command's outcome.
pub(crate) fn render(outcome: &Result<Value, String>) -> String {
    let (error_code, data) = match outcome {
        Ok(data) => (0, data.clone()),
        Err(message) => (1, Value::String(message.clone())),
    };
    // Serialising a `Value` cannot fail; fall back to compact output if it
    // ever did.
    serde_json::to_string_pretty(&Envelope { error_code, data: &data })
        .unwrap_or_else(|_| format!("{{\"error_code\":{error_code},\"data\":{data}}}"))
}

/// An error as the CLI says it. Mutual TLS enforcement refuses a client at
/// the TLS handshake, where nothing reaches the client but a closed
/// connection; that error says what to check.
pub(crate) fn error(err: ClientError) -> String {
    let text = err.to_string();
    // A closed connection (TLS 1.3: the refusal comes after the handshake),
    // or the alerts TLS 1.2 refuses with.
    let refusals = ["connection to the HSM was closed", "CertificateRequired", "BadCertificate", "UnknownCA"];
    if matches!(err, ClientError::Unavailable(_)) && refusals.iter().any(|r| text.contains(r)) {
        format!(
            "{text} (if the cluster enforces mutual TLS, this client must present a certificate chained to a \
             registered trust anchor: --client-cert-hsm-tls-file and --client-key-hsm-tls-file, or \
             HSM_CLIENT_CERT and HSM_CLIENT_KEY)"
        )
    } else {
        text
    }
}

/// `{"message": ...}`, as commands without other output print.
pub(crate) fn message(text: &str) -> Value {
    #[derive(Serialize)]
    struct Message<'a> {
        message: &'a str,
    }
    to_value(Message { message: text })
}

/// Adds `"failed-hsms"` to `data` (an object) when some HSMs were not
/// reached.
pub(crate) fn with_failures<'a>(
    mut data: Value,
    failures: impl IntoIterator<Item = (&'a str, &'a ClientError)>,
) -> Value {
    #[derive(Serialize)]
    struct Failed<'a> {
        hsm: &'a str,
        error: String,
    }
    let failed: Vec<Failed<'_>> = failures.into_iter().map(|(hsm, e)| Failed { hsm, error: e.to_string() }).collect();
    if let (false, Value::Object(map)) = (failed.is_empty(), &mut data) {
        map.insert("failed-hsms".into(), to_value(failed));
    }
    data
}

/// A data shape as JSON; a shape is plain serde structs, which always
/// serialise.
pub(crate) fn to_value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
