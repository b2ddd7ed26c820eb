//! Runs commands: holds the connections to every HSM of the cluster and, in
//! interactive mode, the cluster session between commands.

use std::{
    io::{BufRead as _, Write as _},
    process::ExitCode,
};

use clap::Parser as _;
use hsm_client::{ClientConfig, ClientError, Cluster, ClusterSession, Completion, Deregister, Role};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::{
    crypto, faults,
    grammar::{
        ApprovalFile, AuditCommand, ChangeMfaCommand, ChangeQuorumCommand, ClusterCommand, Command, Connection, Line,
        LineCommand, LoginArgs, LoginMfa, MtlsCommand, MtlsLevelArg, QuorumCommand, UserCommand, UserPassword,
    },
    keys, output, quorum,
};

const PROMPT: &str = "aws-cloudhsm > ";

pub(crate) struct Shell {
    connection: Connection,
    client: Option<Cluster>,
    session: Option<ClusterSession>,
}

impl Shell {
    pub(crate) fn new(connection: Connection) -> Self {
        Shell { connection, client: None, session: None }
    }

    /// Runs one command, logging in from the environment first when asked to,
    /// prints its JSON, and logs out.
    pub(crate) async fn single(&mut self, command: Command) -> ExitCode {
        let outcome = self.single_outcome(command).await;
        self.end_session().await;
        print_outcome(&outcome)
    }

    async fn single_outcome(&mut self, command: Command) -> Result<Value, String> {
        // The fault service needs no session (and an HSM made unavailable
        // would refuse the login).
        let logs_in_itself = matches!(
            command,
            Command::Login(_) | Command::Cluster { command: ClusterCommand::Activate { .. } } | Command::Faults(_)
        );
        if !logs_in_itself && let Some(credentials) = env_credentials()? {
            let (username, role, password) = credentials;
            let client = self.client().await?;
            self.session = Some(client.login(&username, role, &password).await.map_err(message)?);
        }
        self.execute(command).await
    }

    /// Reads commands from standard input until `quit` or end of input.
    pub(crate) async fn interactive(&mut self) -> ExitCode {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            if !emit(PROMPT, false) {
                break;
            }
            line.clear();
            match stdin.lock().read_line(&mut line) {
                Ok(0) => {
                    // End of input: finish the prompt's line, as shells do.
                    emit("", true);
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("reading standard input: {e}");
                    break;
                }
            }
            let Some(words) = shlex::split(line.trim()) else {
                if !emit(&output::render(&Err("unbalanced quotes in the command line".into())), true) {
                    break;
                }
                continue;
            };
            if words.is_empty() {
                continue;
            }
            match Line::try_parse_from(words) {
                Err(e) => {
                    let _ = e.print();
                }
                Ok(Line { command: LineCommand::Quit }) => break,
                Ok(Line { command: LineCommand::Command(command) }) => {
                    let outcome = self.execute(command).await;
                    if !emit(&output::render(&outcome), true) {
                        break;
                    }
                }
            }
        }
        self.end_session().await;
        ExitCode::SUCCESS
    }

    async fn end_session(&mut self) {
        if let Some(session) = self.session.take() {
            // The HSM also expires idle sessions; a failed logout leaves
            // nothing the user must clean up.
            let _ = session.logout().await;
        }
    }

    async fn execute(&mut self, command: Command) -> Result<Value, String> {
        match command {
            Command::Cluster { command: ClusterCommand::HsmInfo } => {
                let info = self.client().await?.cluster_info().await.map_err(message)?;
                Ok(output::hsm_info(&info))
            }
            Command::Audit { command: AuditCommand::List { from, limit } } => {
                self.with_session(async |s| {
                    let pages = s.read_audit_log_all(from, limit).await.into_result().map_err(message)?;
                    Ok(output::audit_list(&pages))
                })
                .await
            }
            Command::Cluster { command: ClusterCommand::SyncStatus } => {
                self.with_session(async |s| {
                    // Every HSM refusing the caller is a refusal, not a status.
                    let statuses = s.sync_status_all().await;
                    statuses.clone().into_result().map_err(message)?;
                    Ok(output::sync_status(&statuses))
                })
                .await
            }
            Command::Cluster { command: ClusterCommand::Mtls { command } } => {
                self.with_session(async |s| mtls(s, command).await).await
            }
            Command::Cluster { command: ClusterCommand::Activate { password } } => {
                let password = password_or_prompt(password, true)?;
                let activated = self.client().await?.activate(&password).await.map_err(message)?;
                let done = Value::String("Cluster activation successful".into());
                Ok(match activated.completion() {
                    Completion::Full => done,
                    _ => output::with_failures(output::message("Cluster activation successful"), activated.failed()),
                })
            }
            Command::Login(args) => self.login(args).await,
            Command::Logout => {
                match self.session.take() {
                    Some(session) => session.logout().await.map_err(message)?,
                    // Let the HSM refuse it: the message names the role.
                    None => self.client().await?.anonymous().logout().await.map_err(message)?,
                };
                Ok(Value::String("Logout successful".into()))
            }
            Command::User { command } => self.user(command).await,
            Command::Quorum { command: QuorumCommand::TokenSign { command } } => {
                self.with_session(async |s| quorum::token_sign(s, command).await).await
            }
            Command::Key { command } => {
                keys::check(&command)?;
                self.with_session(async |s| keys::run(s, *command).await).await
            }
            Command::Crypto { command } => {
                crypto::check(&command)?;
                self.with_session(async |s| crypto::run(s, *command).await).await
            }
            Command::Faults(args) => faults::run(&self.client().await?, args).await,
        }
    }

    async fn login(&mut self, LoginArgs { user: args, mfa }: LoginArgs) -> Result<Value, String> {
        if let Some(name) = self.session.as_ref().and_then(ClusterSession::username) {
            return Err(format!("already logged in as '{name}'; log out first"));
        }
        let password = password_or_prompt(args.password, false)?;
        let client = self.client().await?;
        let session = match mfa {
            None => client.login(&args.username, args.role.into(), &password).await.map_err(message)?,
            Some(LoginMfa::MfaTokenSign { token }) => {
                quorum::mfa_login(&client, &args.username, args.role.into(), &password, &token).await?
            }
        };
        let shown = output::user_ref(session.username().unwrap_or(&args.username), shown_role(&session));
        let shown = output::with_failures(shown, session.unavailable());
        self.session = Some(session);
        Ok(shown)
    }

    /// Runs `work` with the session, or without a login with an anonymous one
    /// so that the HSM refuses it (its message names the role).
    async fn with_session(
        &mut self,
        work: impl AsyncFnOnce(&ClusterSession) -> Result<Value, String>,
    ) -> Result<Value, String> {
        let client = self.client().await?;
        match &self.session {
            Some(session) => work(session).await,
            None => work(&client.anonymous()).await,
        }
    }

    async fn user(&mut self, command: UserCommand) -> Result<Value, String> {
        let client = self.client().await?;
        let anonymous;
        let session = match &self.session {
            Some(s) => s,
            None => {
                anonymous = client.anonymous();
                &anonymous
            }
        };
        let approval = |file: Option<std::path::PathBuf>| file.as_deref().map(quorum::read_approval).transpose();
        let (change, username, role) = match command {
            UserCommand::List => return Ok(output::users(&session.list_users().await.map_err(message)?)),
            UserCommand::ChangeQuorum { command: ChangeQuorumCommand::TokenSign { command } } => {
                return quorum::register(session, command).await;
            }
            UserCommand::ChangeMfa { command: ChangeMfaCommand::TokenSign(args) } => {
                return quorum::change_mfa(session, args).await;
            }
            UserCommand::Create { user: UserPassword { username, role, password }, approval: file } => {
                let approval = approval(file.approval)?;
                let password = password_or_prompt(password, true)?;
                let created = session.create_user_approved(&username, role.into(), &password, approval.as_ref()).await;
                (created, username, role)
            }
            UserCommand::Delete { username, role, approval: file } => {
                let approval = approval(file.approval)?;
                (session.delete_user_approved(&username, role.into(), approval.as_ref()).await, username, role)
            }
            UserCommand::ChangePassword {
                user: UserPassword { username, role, password },
                approval: file,
                deregister_mfa,
                deregister_quorum,
            } => {
                let approval = approval(file.approval)?;
                let password = password_or_prompt(password, true)?;
                let deregister = Deregister { mfa: deregister_mfa, quorum: deregister_quorum };
                let changed = session
                    .change_password_approved(&username, role.into(), &password, approval.as_ref(), deregister)
                    .await;
                (changed, username, role)
            }
        };
        Ok(output::user_change(&change.map_err(message)?, &username, role.into()))
    }

    /// The connections to every HSM, prepared on first use.
    async fn client(&mut self) -> Result<Cluster, String> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let endpoints = self
            .connection
            .endpoint
            .as_deref()
            .ok_or("no HSM endpoint: pass --endpoint host:port or set HSM_ENDPOINTS (load client.env)")?;
        let ca = self
            .connection
            .ca_cert
            .as_deref()
            .ok_or("no CA certificate: pass --ca-cert PATH or set HSM_CA_CERT (load client.env)")?;
        let mut config = ClientConfig::from_parts(endpoints, ca)
            .map_err(message)?
            .with_key_availability_check(!self.connection.disable_key_availability_check);
        if let (Some(cert), Some(key)) =
            (&self.connection.client_cert_hsm_tls_file, &self.connection.client_key_hsm_tls_file)
        {
            config = config.with_client_identity_files(cert, key).map_err(message)?;
        }
        let client = Cluster::connect(&config).await.map_err(message)?;
        self.client = Some(client.clone());
        Ok(client)
    }
}

/// `cluster mtls ...`.
async fn mtls(session: &ClusterSession, command: MtlsCommand) -> Result<Value, String> {
    let approval = |file: ApprovalFile| file.approval.as_deref().map(quorum::read_approval).transpose();
    match command {
        MtlsCommand::RegisterTrustAnchor { path, approval: file } => {
            let pem = std::fs::read_to_string(&path).map_err(|e| format!("--path {}: {e}", path.display()))?;
            let approval = approval(file)?;
            let registered = session.register_trust_anchor_approved(&pem, approval.as_ref()).await.map_err(message)?;
            Ok(output::trust_anchor_registered(&registered))
        }
        MtlsCommand::DeregisterTrustAnchor { certificate_reference, approval: file } => {
            let approval = approval(file)?;
            let removed = session
                .deregister_trust_anchor_approved(&certificate_reference, approval.as_ref())
                .await
                .map_err(message)?;
            let done = output::message(&format!("Trust anchor {certificate_reference} deregistered successfully"));
            Ok(output::with_failures(done, removed.failed()))
        }
        MtlsCommand::ListTrustAnchors => {
            let lists = session.list_trust_anchors_all().await.into_result().map_err(message)?;
            Ok(output::trust_anchors(&lists))
        }
        MtlsCommand::SetEnforcement { level, approval: file } => {
            let approval = approval(file)?;
            let set = session.set_mtls_enforcement_approved(level.into(), approval.as_ref()).await.map_err(message)?;
            let shown = match level {
                MtlsLevelArg::None => "None",
                MtlsLevelArg::Cluster => "Cluster",
            };
            let done = output::message(&format!("Mtls enforcement level set to {shown} successfully"));
            Ok(output::with_failures(done, set.failed()))
        }
        MtlsCommand::GetEnforcement => {
            let levels = session.mtls_enforcement_all().await.into_result().map_err(message)?;
            Ok(output::mtls_enforcement(&levels))
        }
    }
}

fn shown_role(session: &ClusterSession) -> Role {
    session.role().unwrap_or(Role::Admin)
}

/// An error as the CLI says it. Mutual TLS enforcement refuses a client at
/// the TLS handshake, where nothing reaches the client but a closed
/// connection; that error says what to check.
pub(crate) fn message(err: ClientError) -> String {
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

fn print_outcome(outcome: &Result<Value, String>) -> ExitCode {
    if emit(&output::render(outcome), true) && outcome.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Writes to standard output; `false` once the reader has gone (a closed
/// pipe ends the program quietly rather than with a panic).
fn emit(text: &str, newline: bool) -> bool {
    let mut out = std::io::stdout().lock();
    let written = if newline { writeln!(out, "{text}") } else { write!(out, "{text}") };
    written.and_then(|()| out.flush()).is_ok()
}

/// `CLOUDHSM_ROLE` and `CLOUDHSM_PIN=username:password`, when both are set.
fn env_credentials() -> Result<Option<(String, Role, Zeroizing<String>)>, String> {
    let (Ok(role), Ok(pin)) = (std::env::var("CLOUDHSM_ROLE"), std::env::var("CLOUDHSM_PIN")) else {
        return Ok(None);
    };
    let pin = Zeroizing::new(pin);
    let role = match role.as_str() {
        "admin" => Role::Admin,
        "crypto-user" => Role::CryptoUser,
        other => return Err(format!("CLOUDHSM_ROLE '{other}': must be admin or crypto-user")),
    };
    let (username, password) = pin.split_once(':').ok_or("CLOUDHSM_PIN: must be username:password")?;
    Ok(Some((username.to_owned(), role, Zeroizing::new(password.to_owned()))))
}

/// The password from the flag, or prompted for on the terminal.
fn password_or_prompt(given: Option<String>, confirm: bool) -> Result<Zeroizing<String>, String> {
    if let Some(p) = given {
        return Ok(Zeroizing::new(p));
    }
    let no_terminal =
        |e: std::io::Error| format!("--password is required when there is no terminal to prompt on ({e})");
    let password = Zeroizing::new(rpassword::prompt_password("Enter password:").map_err(no_terminal)?);
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password("Confirm password:").map_err(no_terminal)?);
        if again != password {
            return Err("the passwords do not match".into());
        }
    }
    Ok(password)
}
