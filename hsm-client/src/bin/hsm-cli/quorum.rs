//! Runs `quorum token-sign ...`, `user change-quorum ...`, `user change-mfa
//! ...` and the MFA step of `login`, and reads and writes their token files.
//!
//! # Token files (the CloudHSM CLI's shapes)
//! A registration token file (`quorum token-sign generate --service
//! registration`) holds one entry per HSM; the HSM's own `approval_data`
//! identifies it, `unsigned` is that data's SHA-256, and the user fills in
//! `signed`. `register` sends every HSM all entries and each uses its own:
//! ```json
//! {"version": "2.0", "tokens": [
//!   {"approval_data": "...", "unsigned": "...", "signed": ""}]}
//! ```
//! A quorum token file of any other service holds one token for the whole
//! cluster: `approval_data` is every HSM's joined (each HSM finds its own in
//! it), `token` their SHA-256, and each approver appends
//! `{"username": ..., "signature": base64}` to `signatures`:
//! ```json
//! {"version": "2.0", "approval_data": "...", "token": "...", "signatures": []}
//! ```
//! An MFA token file (`login ... mfa-token-sign`, `user change-mfa`) is
//! `{"version": "2.0", "tokens": [{"unsigned": base64, "signed": ""}]}`, one
//! token per HSM. Every signature is `openssl pkeyutl -sign -inkey key.pem
//! -pkeyopt digest:sha256` of the base64-decoded `unsigned` or `token`.

use std::{
    io::{BufRead as _, Write as _},
    path::{Path, PathBuf},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use hsm_client::{
    Approval, Cluster, ClusterApproval, ClusterSession, DeregisterMfa, FanOut, RegisterMfa, Role, SetQuorumValue,
    SignedToken, SignedTokens,
};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::{
    grammar::{ChangeMfaArgs, ChangeQuorumTokenSign, DeleteScope, TokenSignCommand},
    output, pem,
};

/// `quorum token-sign ...`.
pub(crate) async fn token_sign(session: &ClusterSession, command: TokenSignCommand) -> Result<Value, String> {
    match command {
        TokenSignCommand::Generate { service, token } => {
            let service = hsm_client::QuorumService::from(service);
            let tokens = session.generate_quorum_token(service).await.map_err(output::error)?;
            let file = if service == hsm_client::QuorumService::Registration {
                let entries: Vec<Value> = tokens
                    .succeeded()
                    .map(|(_, t)| {
                        json!({
                            "approval_data": B64.encode(&t.approval_data),
                            "unsigned": B64.encode(&t.token),
                            "signed": "",
                        })
                    })
                    .collect();
                json!({"version": "2.0", "tokens": entries})
            } else {
                let joined = Approval::joined(tokens.succeeded().map(|(_, t)| t));
                json!({
                    "version": "2.0",
                    "approval_data": B64.encode(&joined.approval_data),
                    "token": B64.encode(&joined.token),
                    "signatures": [],
                })
            };
            write_json(&token, &file)?;
            Ok(output::with_failures(json!({"path": token.display().to_string()}), tokens.failed()))
        }
        TokenSignCommand::List => {
            let lists = session.list_quorum_tokens().await.map_err(output::error)?;
            let answered = lists.succeeded().count();
            let mut rows: Vec<(String, hsm_client::QuorumService, u32, u64, usize)> = Vec::new();
            for (_, list) in lists.succeeded() {
                for t in list {
                    match rows.iter_mut().find(|r| r.0 == t.username && r.1 == t.service) {
                        Some(row) => {
                            row.3 = row.3.min(t.expires_in_seconds);
                            row.4 += 1;
                        }
                        None => {
                            rows.push((t.username.clone(), t.service, t.approvals_required, t.expires_in_seconds, 1))
                        }
                    }
                }
            }
            let tokens: Vec<Value> = rows
                .into_iter()
                .map(|(username, service, required, timeout, held)| {
                    json!({
                        "username": username,
                        "service": service.to_string(),
                        "approvals-required": required,
                        "number-of-approvals": 0,
                        "token-timeout-seconds": timeout,
                        "cluster-coverage": if held >= answered { "full" } else { "partial" },
                    })
                })
                .collect();
            Ok(output::with_failures(json!({"tokens": tokens}), lists.failed()))
        }
        TokenSignCommand::ListQuorumValues => {
            let values = session.list_quorum_values().await.map_err(output::error)?;
            Ok(output::with_failures(merged_values(&values), values.failed()))
        }
        TokenSignCommand::SetQuorumValue { service, value, approval } => {
            let approval = approval.as_deref().map(read_approval).transpose()?;
            let request = SetQuorumValue { approval: approval.as_ref(), ..SetQuorumValue::new(service.into(), value) };
            let set = session.set_quorum_value(request).await.map_err(output::error)?;
            Ok(output::with_failures(Value::String("Set quorum value successful".into()), set.failed()))
        }
        TokenSignCommand::Delete { scope } => {
            let deleted = session.delete_quorum_tokens(scope == DeleteScope::All).await.map_err(output::error)?;
            Ok(output::with_failures(Value::String("Deletion of quorum token(s) successful".into()), deleted.failed()))
        }
    }
}

/// `user change-quorum token-sign register`.
pub(crate) async fn register(session: &ClusterSession, command: ChangeQuorumTokenSign) -> Result<Value, String> {
    let ChangeQuorumTokenSign::Register { username, role, public_key, signed_token } = command;
    if let (Some(name), Some(me)) = (&username, session.username())
        && !name.eq_ignore_ascii_case(me)
    {
        return Err(format!("log in as '{name}' to register their quorum key; you are logged in as '{me}'"));
    }
    let spki = read_public_key(&public_key)?;
    let signed = read_registration(&signed_token)?;
    let done = session.register_quorum_key(&spki, &signed).await.map_err(output::error)?;
    let (name, shown) = done.first().cloned().unwrap_or_default_user(username, role.map(Role::from));
    Ok(output::with_failures(output::user_ref(&name, shown), done.failed()))
}

/// `user change-mfa token-sign`: the user's password changes with the MFA
/// key (`--change-password`, else asked for twice on the terminal), in the
/// same step on each HSM and under the same approval.
pub(crate) async fn change_mfa(session: &ClusterSession, args: ChangeMfaArgs) -> Result<Value, String> {
    let role: Role = args.role.into();
    let approval = args.approval.as_deref().map(read_approval).transpose()?;
    let password = new_password(args.change_password)?;
    let password = Some(password.as_str());
    let changed = match &args.token {
        None => {
            let request = DeregisterMfa {
                new_password: password,
                approval: approval.as_ref(),
                ..DeregisterMfa::new(&args.username, role)
            };
            session.deregister_mfa(request).await.map_err(output::error)?
        }
        Some(path) => {
            let unsigned = session.mfa_registration_tokens(&args.username, role).await.map_err(output::error)?;
            write_unsigned(path, &unsigned)?;
            let signed = signed_tokens(path, &unsigned)?;
            let public_key = prompt_path("Enter public key PEM file path:")?
                .ok_or("a public key PEM file is needed to turn MFA on")?;
            let spki = read_public_key(&public_key)?;
            let request = RegisterMfa {
                new_password: password,
                approval: approval.as_ref(),
                ..RegisterMfa::new(&args.username, role, &spki, &signed)
            };
            session.register_mfa(request).await.map_err(output::error)?
        }
    };
    Ok(output::with_failures(output::user_ref(&args.username.to_ascii_lowercase(), role), changed.failed()))
}

/// `login ... mfa-token-sign --token FILE`.
pub(crate) async fn mfa_login(
    client: &Cluster,
    username: &str,
    role: Role,
    password: &Zeroizing<String>,
    token: &Path,
) -> Result<ClusterSession, String> {
    let unsigned = client.mfa_login_tokens(username, role, password).await.map_err(output::error)?;
    write_unsigned(token, &unsigned)?;
    let signed = signed_tokens(token, &unsigned)?;
    client.mfa_login(username, role, password, &signed).await.map_err(output::error)
}

/// Writes the CloudHSM CLI's unsigned MFA token file.
fn write_unsigned(path: &Path, unsigned: &FanOut<Vec<u8>>) -> Result<(), String> {
    let tokens: Vec<Value> =
        unsigned.succeeded().map(|(_, t)| json!({"unsigned": B64.encode(t), "signed": ""})).collect();
    write_json(path, &json!({"version": "2.0", "tokens": tokens}))
}

/// Asks for the signed MFA token file (the unsigned file when the answer is
/// empty), and matches each HSM's token to its signature.
fn signed_tokens(unsigned_path: &Path, unsigned: &FanOut<Vec<u8>>) -> Result<SignedTokens, String> {
    let path = prompt_path("Enter signed token file path (press enter if same as the unsigned token file):")?
        .unwrap_or_else(|| unsigned_path.to_owned());
    let file = read_json(&path)?;
    let entries = file["tokens"].as_array().ok_or_else(|| format!("{}: no \"tokens\" array", path.display()))?;
    let mut signed = SignedTokens::new();
    for (endpoint, token) in unsigned.succeeded() {
        let wanted = B64.encode(token);
        let entry = entries
            .iter()
            .find(|e| e["unsigned"].as_str() == Some(wanted.as_str()))
            .ok_or_else(|| format!("{}: the token of the HSM at {endpoint} is missing", path.display()))?;
        let signature = decode(&path, "signed", entry["signed"].as_str().unwrap_or_default())?;
        if signature.is_empty() {
            return Err(format!("{}: the token of the HSM at {endpoint} is not signed", path.display()));
        }
        signed.insert(endpoint.to_owned(), (token.clone(), signature));
    }
    Ok(signed)
}

/// Reads a signed quorum token file.
pub(crate) fn read_approval(path: &Path) -> Result<ClusterApproval, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    ClusterApproval::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a signed registration token file: each entry's (`unsigned`,
/// `signed`), one per HSM.
fn read_registration(path: &Path) -> Result<Vec<SignedToken>, String> {
    let file = read_json(path)?;
    if file["version"] != "2.0" {
        return Err(format!("{}: \"version\" must be \"2.0\"", path.display()));
    }
    let entries = file["tokens"].as_array().ok_or_else(|| {
        format!(
            "{}: no \"tokens\" array (a registration token file: quorum token-sign generate --service registration)",
            path.display()
        )
    })?;
    let mut signed = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let field = |name: &str| {
            let text = entry[name]
                .as_str()
                .ok_or_else(|| format!("{}: tokens[{i}].{name} must be a base64 string", path.display()))?;
            decode(path, &format!("tokens[{i}].{name}"), text)
        };
        let (token, signature) = (field("unsigned")?, field("signed")?);
        if signature.is_empty() {
            return Err(format!("{}: tokens[{i}] is not signed (\"signed\" is empty)", path.display()));
        }
        signed.push((token, signature));
    }
    if signed.is_empty() {
        return Err(format!("{}: \"tokens\" is empty", path.display()));
    }
    Ok(signed)
}

/// The new password of `user change-mfa`: the flag, or asked for twice on
/// the terminal (the CloudHSM CLI's "Enter password:", "Confirm password:").
fn new_password(given: Option<String>) -> Result<Zeroizing<String>, String> {
    if let Some(p) = given {
        return Ok(Zeroizing::new(p));
    }
    let no_terminal =
        |e: std::io::Error| format!("--change-password is required when there is no terminal to prompt on ({e})");
    let password = Zeroizing::new(rpassword::prompt_password("Enter password:").map_err(no_terminal)?);
    let again = Zeroizing::new(rpassword::prompt_password("Confirm password:").map_err(no_terminal)?);
    if again != password {
        return Err("the passwords do not match".into());
    }
    Ok(password)
}

/// The quorum values, one per service, `"inconsistent"` where HSMs differ.
fn merged_values(values: &FanOut<Vec<(hsm_client::QuorumService, u32)>>) -> Value {
    let mut shown = serde_json::Map::new();
    for (_, list) in values.succeeded() {
        for (service, value) in list {
            let key = service.to_string();
            match shown.get(&key) {
                Some(seen) if seen != &json!(value) => {
                    shown.insert(key, json!("inconsistent"));
                }
                Some(_) => {}
                None => {
                    shown.insert(key, json!(value));
                }
            }
        }
    }
    Value::Object(shown)
}

/// The RSA public key of a PEM file, as SubjectPublicKeyInfo DER.
fn read_public_key(path: &Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let block = pem::key_block(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if block.label != "PUBLIC KEY" {
        return Err(format!("{}: expected a PUBLIC KEY PEM block, found {}", path.display(), block.label));
    }
    block.der().ok_or_else(|| format!("{}: the PEM body is not base64", path.display()))
}

/// Asks on standard output and reads one line from standard input; `None`
/// for an empty answer.
fn prompt_path(question: &str) -> Result<Option<PathBuf>, String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{question}").and_then(|()| out.flush()).map_err(|e| format!("writing the prompt: {e}"))?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("reading standard input: {e}"))?;
    let answer = line.trim();
    Ok((!answer.is_empty()).then(|| PathBuf::from(answer)))
}

fn write_json(path: &Path, value: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not a token file: {e}", path.display()))
}

fn decode(path: &Path, field: &str, text: &str) -> Result<Vec<u8>, String> {
    B64.decode(text.trim()).map_err(|e| format!("{}: \"{field}\" is not base64: {e}", path.display()))
}

/// The registered user as the HSMs reported it, else as the flags named it.
trait OrFlags {
    fn unwrap_or_default_user(self, username: Option<String>, role: Option<Role>) -> (String, Role);
}

impl OrFlags for Option<(String, Role)> {
    fn unwrap_or_default_user(self, username: Option<String>, role: Option<Role>) -> (String, Role) {
        self.unwrap_or_else(|| (username.unwrap_or_default(), role.unwrap_or(Role::Admin)))
    }
}
