//! Runs commands: holds the connections to every HSM of each cluster used
//! and, in interactive mode, each cluster's session between commands.
//!
//! The fields `client` and `session` are those of the cluster the current
//! command runs against (`current`); the other clusters' wait in `parked`
//! until a command names them with `--cluster-id`.

use std::{
    collections::HashMap,
    io::{BufRead as _, Write as _},
    process::ExitCode,
    sync::Arc,
};

use clap::Parser as _;
use hsm_client::{
    ChangePassword, Cluster, ClusterSession, Completion, CreateUser, DeleteUser, Deregister, DeregisterTrustAnchor,
    RegisterTrustAnchor, Role, SetMtlsEnforcement,
};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::{
    clusters::{Target, Targets},
    crypto, faults,
    grammar::{
        ApprovalFile, AuditCommand, ChangeMfaCommand, ChangeQuorumCommand, ClusterChoice, ClusterCommand, Command,
        Connection, KeyTop, Line, LineCommand, LoginArgs, LoginMfa, MtlsCommand, MtlsLevelArg, QuorumCommand,
        ReplicateArgs, UserCommand, UserPassword,
    },
    keys, output, quorum, replicate,
};

const PROMPT: &str = "aws-cloudhsm > ";

/// A cluster's connections and, once logged in, its session.
type Parked = (Option<Cluster>, Option<ClusterSession>);

pub(crate) struct Shell {
    connection: Connection,
    /// The configured clusters, read on first use (so that a bad file is an
    /// ordinary command error).
    targets: Option<Arc<Targets>>,
    /// `interactive --cluster-id`: the cluster of commands that name none.
    default_cluster: Option<String>,
    /// The cluster `client` and `session` belong to.
    current: Option<Target>,
    client: Option<Cluster>,
    session: Option<ClusterSession>,
    /// The other clusters used so far, with their sessions.
    parked: HashMap<Target, Parked>,
}

impl Shell {
    pub(crate) fn new(connection: Connection) -> Self {
        Shell {
            connection,
            targets: None,
            default_cluster: None,
            current: None,
            client: None,
            session: None,
            parked: HashMap::new(),
        }
    }

    /// Runs one command, logging in from the environment first when asked to,
    /// prints its JSON, and logs out.
    pub(crate) async fn single(&mut self, choice: ClusterChoice, command: Command) -> ExitCode {
        let outcome = self.single_outcome(choice, command).await;
        self.end_session().await;
        print_outcome(&outcome)
    }

    async fn single_outcome(&mut self, choice: ClusterChoice, command: Command) -> Result<Value, String> {
        let command = match command {
            Command::Key { command } => match *command {
                KeyTop::Replicate(args) => return self.replicate(&choice, args, true).await,
                other => Command::Key { command: Box::new(other) },
            },
            other => other,
        };
        self.select(choice.cluster_id.as_deref())?;
        // The fault service needs no session (and an HSM made unavailable
        // would refuse the login).
        let logs_in_itself = matches!(
            command,
            Command::Login(_) | Command::Cluster { command: ClusterCommand::Activate { .. } } | Command::Faults(_)
        );
        if !logs_in_itself && let Some(credentials) = env_credentials()? {
            let (username, role, password) = credentials;
            let client = self.client().await?;
            self.session = Some(client.login(&username, role, &password).await.map_err(output::error)?);
        }
        self.execute(command).await
    }

    /// Reads commands from standard input until `quit` or end of input.
    /// `choice` is the cluster of commands that name none.
    pub(crate) async fn interactive(&mut self, choice: ClusterChoice) -> ExitCode {
        if let Some(id) = choice.cluster_id {
            // An unknown id is refused now, not at every command.
            if let Err(e) = self.targets().and_then(|t| t.choose(Some(&id))) {
                return print_outcome(&Err(e));
            }
            self.default_cluster = Some(id);
        }
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
                Ok(Line { command: LineCommand::Quit, .. }) => break,
                Ok(Line { choice, command: LineCommand::Command(command) }) => {
                    let outcome = self.interactive_command(choice, command).await;
                    if !emit(&output::render(&outcome), true) {
                        break;
                    }
                }
            }
        }
        self.end_session().await;
        ExitCode::SUCCESS
    }

    /// One line of interactive mode, against the cluster it names (or the
    /// default one).
    async fn interactive_command(&mut self, choice: ClusterChoice, command: Command) -> Result<Value, String> {
        match command {
            Command::Key { command } => match *command {
                KeyTop::Replicate(args) => self.replicate(&choice, args, false).await,
                other => {
                    self.select(choice.cluster_id.as_deref())?;
                    self.execute(Command::Key { command: Box::new(other) }).await
                }
            },
            other => {
                self.select(choice.cluster_id.as_deref())?;
                self.execute(other).await
            }
        }
    }

    /// Logs out of every cluster's session.
    async fn end_session(&mut self) {
        let parked = self.parked.drain().filter_map(|(_, (_, session))| session);
        for session in self.session.take().into_iter().chain(parked.collect::<Vec<_>>()) {
            // The HSM also expires idle sessions; a failed logout leaves
            // nothing the user must clean up.
            let _ = session.logout().await;
        }
    }

    /// The configured clusters.
    fn targets(&mut self) -> Result<Arc<Targets>, String> {
        if let Some(targets) = &self.targets {
            return Ok(Arc::clone(targets));
        }
        let targets = Arc::new(Targets::load(&self.connection)?);
        self.targets = Some(Arc::clone(&targets));
        Ok(targets)
    }

    /// Makes the cluster `wanted` names (or the default one, or the only
    /// one configured) the current one, parking the one before.
    fn select(&mut self, wanted: Option<&str>) -> Result<Target, String> {
        let wanted = wanted.map(str::to_owned).or_else(|| self.default_cluster.clone());
        let target = self.targets()?.choose(wanted.as_deref())?;
        self.switch_to(target.clone());
        Ok(target)
    }

    fn switch_to(&mut self, target: Target) {
        if self.current.as_ref() == Some(&target) {
            return;
        }
        if let Some(current) = self.current.take() {
            self.parked.insert(current, (self.client.take(), self.session.take()));
        }
        (self.client, self.session) = self.parked.remove(&target).unwrap_or((None, None));
        self.current = Some(target);
    }

    /// `key replicate`: logs in to the destination (from
    /// `DESTINATION_CLOUDHSM_ROLE`/`_PIN` in single-command mode; with the
    /// shell's session on it in interactive mode) and the source, then
    /// copies the key.
    async fn replicate(&mut self, choice: &ClusterChoice, args: ReplicateArgs, single: bool) -> Result<Value, String> {
        if let Some(id) = &choice.cluster_id {
            return Err(format!(
                "--cluster-id {id}: key replicate names its clusters with --source-cluster-id and \
                 --destination-cluster-id"
            ));
        }
        let (from, to) = (args.source_cluster_id.as_str(), args.destination_cluster_id.as_str());
        let targets = self.targets()?;
        let source = targets.choose(Some(from))?;
        let destination = targets.choose(Some(to))?;
        if source == destination {
            return Err(format!(
                "--source-cluster-id and --destination-cluster-id both name {from}: key replicate copies a key \
                 from one cluster to another"
            ));
        }
        // Checked before anything is sent, so that a missing credential
        // changes nothing anywhere.
        let credentials = |role: &str, pin: &str, which: &str| -> Result<_, String> {
            env_credentials_from(role, pin)?.ok_or_else(|| {
                format!("key replicate: set {role} and {pin} (username:password) to log in to the {which} cluster")
            })
        };
        let logins = match single {
            true => Some((
                credentials("CLOUDHSM_ROLE", "CLOUDHSM_PIN", "source")?,
                credentials("DESTINATION_CLOUDHSM_ROLE", "DESTINATION_CLOUDHSM_PIN", "destination")?,
            )),
            false => None,
        };
        let (source_login, destination_login) = logins.unzip();

        self.switch_to(destination.clone());
        self.log_in_here(destination_login, "destination", to).await?;
        let Some(destination_session) = self.session.take() else {
            return Err(format!(
                "not logged in to the destination cluster {to}: log in to it first (login --cluster-id {to} ...)"
            ));
        };
        self.switch_to(source);
        let outcome = async {
            self.log_in_here(source_login, "source", from).await?;
            let source_session = self.session.as_ref().ok_or_else(|| {
                format!(
                    "not logged in to the source cluster {from}: log in to it first (login --cluster-id {from} ...)"
                )
            })?;
            let ids = replicate::Ids { source: from, destination: to };
            replicate::run(source_session, &destination_session, &args.filter.filter, ids).await
        }
        .await;
        // The destination's session stays for the next command (interactive
        // mode) or for logging out (single-command mode).
        self.parked.entry(destination).or_insert((None, None)).1 = Some(destination_session);
        outcome
    }

    /// Logs in to the current cluster with `credentials`, if given.
    async fn log_in_here(
        &mut self,
        credentials: Option<(String, Role, Zeroizing<String>)>,
        which: &str,
        id: &str,
    ) -> Result<(), String> {
        if let Some((username, role, password)) = credentials {
            let client = self.client().await?;
            let session = client
                .login(&username, role, &password)
                .await
                .map_err(|e| format!("{which} cluster {id}: {}", output::error(e)))?;
            self.session = Some(session);
        }
        Ok(())
    }

    async fn execute(&mut self, command: Command) -> Result<Value, String> {
        match command {
            Command::Cluster { command: ClusterCommand::HsmInfo } => {
                let info = self.client().await?.cluster_info().await.map_err(output::error)?;
                Ok(output::hsm_info(&info))
            }
            Command::Audit { command: AuditCommand::List { from, limit } } => {
                self.with_session(async |s| {
                    let pages = s.read_audit_log_all(from, limit).await.into_result().map_err(output::error)?;
                    Ok(output::audit_list(&pages))
                })
                .await
            }
            Command::Cluster { command: ClusterCommand::SyncStatus } => {
                self.with_session(async |s| {
                    // Every HSM refusing the caller is a refusal, not a status.
                    let statuses = s.sync_status_all().await;
                    statuses.clone().into_result().map_err(output::error)?;
                    Ok(output::sync_status(&statuses))
                })
                .await
            }
            Command::Cluster { command: ClusterCommand::Mtls { command } } => {
                self.with_session(async |s| mtls(s, command).await).await
            }
            Command::Cluster { command: ClusterCommand::Activate { password } } => {
                let password = password_or_prompt(password, true)?;
                let activated = self.client().await?.activate(&password).await.map_err(output::error)?;
                let done = Value::String("Cluster activation successful".into());
                Ok(match activated.completion() {
                    Completion::Full => done,
                    _ => output::with_failures(output::message("Cluster activation successful"), activated.failed()),
                })
            }
            Command::Login(args) => self.login(args).await,
            Command::Logout => {
                match self.session.take() {
                    Some(session) => session.logout().await.map_err(output::error)?,
                    // Let the HSM refuse it: the message names the role.
                    None => self.client().await?.anonymous().logout().await.map_err(output::error)?,
                };
                Ok(Value::String("Logout successful".into()))
            }
            Command::User { command } => self.user(command).await,
            Command::Quorum { command: QuorumCommand::TokenSign { command } } => {
                self.with_session(async |s| quorum::token_sign(s, command).await).await
            }
            Command::Key { command } => match *command {
                KeyTop::Cluster(command) => {
                    keys::check(&command)?;
                    self.with_session(async |s| keys::run(s, command).await).await
                }
                // Both modes send it to `replicate` before a cluster is
                // chosen, as it works on two; this arm is not reached.
                KeyTop::Replicate(_) => {
                    Err("key replicate: give --source-cluster-id and --destination-cluster-id".into())
                }
            },
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
            None => client.login(&args.username, args.role.into(), &password).await.map_err(output::error)?,
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
            UserCommand::List => return Ok(output::users(&session.list_users().await.map_err(output::error)?)),
            UserCommand::ChangeQuorum { command: ChangeQuorumCommand::TokenSign { command } } => {
                return quorum::register(session, command).await;
            }
            UserCommand::ChangeMfa { command: ChangeMfaCommand::TokenSign(args) } => {
                return quorum::change_mfa(session, args).await;
            }
            UserCommand::Create { user: UserPassword { username, role, password }, approval: file } => {
                let approval = approval(file.approval)?;
                let password = password_or_prompt(password, true)?;
                let request = CreateUser::new(&username, role.into(), &password);
                let created = session.create_user(CreateUser { approval: approval.as_ref(), ..request }).await;
                (created, username, role)
            }
            UserCommand::Delete { username, role, approval: file } => {
                let approval = approval(file.approval)?;
                let request = DeleteUser { approval: approval.as_ref(), ..DeleteUser::new(&username, role.into()) };
                (session.delete_user(request).await, username, role)
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
                let request = ChangePassword::new(&username, role.into(), &password).deregister(deregister);
                let changed = session.change_password(ChangePassword { approval: approval.as_ref(), ..request }).await;
                (changed, username, role)
            }
        };
        Ok(output::user_change(&change.map_err(output::error)?, &username, role.into()))
    }

    /// The connections to every HSM of the current cluster, prepared (and
    /// checked to be that cluster's) on first use.
    async fn client(&mut self) -> Result<Cluster, String> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let target = match &self.current {
            Some(target) => target.clone(),
            None => self.select(None)?,
        };
        let client = self.targets()?.connect(&target, &self.connection).await?;
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
            let request = RegisterTrustAnchor { approval: approval.as_ref(), ..RegisterTrustAnchor::new(&pem) };
            let registered = session.register_trust_anchor(request).await.map_err(output::error)?;
            Ok(output::trust_anchor_registered(&registered))
        }
        MtlsCommand::DeregisterTrustAnchor { certificate_reference, approval: file } => {
            let approval = approval(file)?;
            let request = DeregisterTrustAnchor {
                approval: approval.as_ref(),
                ..DeregisterTrustAnchor::new(&certificate_reference)
            };
            let removed = session.deregister_trust_anchor(request).await.map_err(output::error)?;
            let done = output::message(&format!("Trust anchor {certificate_reference} deregistered successfully"));
            Ok(output::with_failures(done, removed.failed()))
        }
        MtlsCommand::ListTrustAnchors => {
            let lists = session.list_trust_anchors_all().await.into_result().map_err(output::error)?;
            Ok(output::trust_anchors(&lists))
        }
        MtlsCommand::SetEnforcement { level, approval: file } => {
            let approval = approval(file)?;
            let request = SetMtlsEnforcement { approval: approval.as_ref(), ..SetMtlsEnforcement::new(level.into()) };
            let set = session.set_mtls_enforcement(request).await.map_err(output::error)?;
            let shown = match level {
                MtlsLevelArg::None => "None",
                MtlsLevelArg::Cluster => "Cluster",
            };
            let done = output::message(&format!("Mtls enforcement level set to {shown} successfully"));
            Ok(output::with_failures(done, set.failed()))
        }
        MtlsCommand::GetEnforcement => {
            let levels = session.mtls_enforcement_all().await.into_result().map_err(output::error)?;
            Ok(output::mtls_enforcement(&levels))
        }
    }
}

fn shown_role(session: &ClusterSession) -> Role {
    session.role().unwrap_or(Role::Admin)
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
    env_credentials_from("CLOUDHSM_ROLE", "CLOUDHSM_PIN")
}

/// A role and `username:password` from these variables, when both are set
/// (`DESTINATION_CLOUDHSM_ROLE`/`_PIN` for `key replicate`'s destination).
fn env_credentials_from(role_var: &str, pin_var: &str) -> Result<Option<(String, Role, Zeroizing<String>)>, String> {
    let (Ok(role), Ok(pin)) = (std::env::var(role_var), std::env::var(pin_var)) else {
        return Ok(None);
    };
    let pin = Zeroizing::new(pin);
    let role = match role.as_str() {
        "admin" => Role::Admin,
        "crypto-user" => Role::CryptoUser,
        other => return Err(format!("{role_var} '{other}': must be admin or crypto-user")),
    };
    let (username, password) = pin.split_once(':').ok_or_else(|| format!("{pin_var}: must be username:password"))?;
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
