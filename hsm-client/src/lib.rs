//! `hsm-client`: the typed async client of the CloudHSM emulator.
//!
//! Two layers. The single-HSM layer talks to one HSM: connect with
//! [`HsmClient::connect`], read basic cluster information without logging
//! in, or [`HsmClient::login`] to get a [`Session`] whose methods are the
//! operations the user's role allows. The cluster layer, [`Cluster`] and
//! [`ClusterSession`], does what the CloudHSM client SDK does on top of it:
//! it logs in to every HSM of the cluster, writes users and token keys to
//! all of them (reporting per HSM what happened), spreads crypto over them
//! with retries, and refuses keys held by too few HSMs. Every failure is a
//! [`ClientError`] whose variant says what kind of refusal it was and whose
//! message is the HSM's own.
//!
//! # Requests
//! An operation that takes more than its obvious one or two arguments takes
//! a request: a struct named for the operation ([`CreateUser`], [`Sign`],
//! [`WrapKey`], ...) whose public fields are everything the operation
//! takes, made with `new(required fields)` and completed with one method per
//! option (`.hash(..)`, `.approval(..)`, ...), as the AWS SDKs' fluent
//! builders are. There is one function per operation: options, the quorum
//! approval among them, are fields, never a second function.
//!
//! The same request types serve [`Session`] and [`ClusterSession`]. The
//! parts that differ per HSM are type parameters that the session fills in:
//! the approval `A` is one HSM's [`Approval`] for a [`Session`] and a
//! [`ClusterApproval`] (each HSM finds its own token in it) for a
//! [`ClusterSession`]; so is what an MFA key signed ([`RegisterMfa`]'s `S`:
//! [`SignedToken`] or [`SignedTokens`]).
//!
//! # Layout
//! - [`config`]: endpoints, trust and cluster settings ([`ClientConfig`],
//!   also from `HSM_ENDPOINTS` / `HSM_CA_CERT`), and a file naming several
//!   clusters by id ([`NamedCluster`]).
//! - [`error`]: the error type, [`ClientError`].
//! - [`types`]: roles, users and cluster info as plain Rust types.
//! - [`users`]: user and password methods of [`Session`], and their
//!   requests.
//! - [`keys`]: key management and cryptography methods of [`Session`], and
//!   their requests.
//! - [`masked`]: extracting and inserting masked objects on one HSM.
//! - [`mtls`]: client mTLS trust anchors and the enforcement level.
//! - [`tls`]: which HSM certificates the client trusts: a chain to the CA
//!   file, or CloudHSM's chain through the customer-signed cluster
//!   certificate (X.509 version 1, which webpki alone refuses).
//! - [`audit`]: reading an HSM's audit log (admins; an emulator extension).
//! - [`quorum`]: quorum tokens and values, approvals, approver keys, MFA
//!   (token-sign).
//! - [`cluster`]: the cluster layer.
//! - [`faults`]: fault injection, snapshots and resets on an HSM started
//!   with `--faults` (test suites).
//! - This file: [`HsmClient`] and [`Session`].
//! - `src/bin/hsm-cli`: the `hsm-cli` binary (cluster layer).
//!
//! # Example
//! ```no_run
//! use hsm_client::{
//!     ClientConfig, Cluster, ClusterApproval, Completion, CreateUser, KeyOptions, KeyPairSpec, Role, Sign, Verify,
//!     keys::{HashAlgorithm, SignMechanism},
//! };
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = Cluster::connect(&ClientConfig::from_env()?).await?;
//! let info = cluster.cluster_info().await?;
//! println!("{} has {} HSM(s)", info.cluster_id, info.hsms.len());
//! let admin = cluster.login("admin", Role::Admin, "admin-password").await?;
//! for (endpoint, why) in admin.unavailable() {
//!     eprintln!("not logged in on {endpoint}: {why}");
//! }
//! let created = admin.create_user(CreateUser::new("alice", Role::CryptoUser, "alice-password")).await?;
//! if created.completion() == Completion::Partial {
//!     eprintln!("alice is missing on some HSMs; run the command again to repair");
//! }
//! // With the user service's quorum value above 1, a create needs the
//! // approvers' signatures: a token file as `quorum token-sign generate`
//! // writes it and the approvers sign it.
//! let approval = ClusterApproval::from_json(&std::fs::read_to_string("user-token.json")?)?;
//! admin.create_user(CreateUser::new("bob", Role::CryptoUser, "bob-password").approval(&approval)).await?;
//! admin.logout().await?;
//!
//! let alice = cluster.login("alice", Role::CryptoUser, "alice-password").await?;
//! let spec = KeyPairSpec::Ec { curve: "secp256r1".into() };
//! let (public, private) = alice.generate_key_pair(&spec, &KeyOptions::default(), &KeyOptions::default()).await?;
//! let signature = alice
//!     .sign(Sign::new(&private.info.reference, SignMechanism::Ecdsa, b"hello").hash(HashAlgorithm::Sha256))
//!     .await?;
//! let verify = Verify::new(&public.info.reference, SignMechanism::Ecdsa, b"hello", &signature);
//! assert!(alice.verify(verify.hash(HashAlgorithm::Sha256)).await?);
//! alice.logout().await?;
//! # Ok(()) }
//! ```

pub mod audit;
pub mod cluster;
pub mod config;
pub mod error;
pub mod faults;
pub mod keys;
pub mod masked;
pub mod mtls;
pub mod quorum;
pub mod tls;
pub mod types;
pub mod users;

use std::{fmt, sync::Arc};

use hsm_proto::{
    SESSION_METADATA_KEY,
    v1::{self as pb, cluster_service_client::ClusterServiceClient, session_service_client::SessionServiceClient},
};
use tonic::{
    Request,
    metadata::MetadataValue,
    transport::{Channel, ClientTlsConfig, Endpoint, Identity},
};
use zeroize::Zeroizing;

pub use crate::{
    audit::{AuditPage, AuditRecord},
    cluster::{
        Cluster, ClusterKey, ClusterKeyPage, ClusterSession, ClusterUser, Completion, Coverage, CoverageLabel, FanOut,
        HsmResult, Merged, SignedTokens, UserChange, UserEffect, UserList,
    },
    config::{CLUSTERS_FILE_ENV, ClientConfig, DISABLE_KEY_AVAILABILITY_CHECK_ENV, NamedCluster, RetryPolicy},
    error::ClientError,
    faults::{Cleared, FaultMode, FaultRule, FaultSpec, FaultState, Isolation, Reset, ResetTarget, Snapshot},
    keys::{
        Decrypt, Encrypt, KeyInfo, KeyOptions, KeyPage, KeyPairSpec, ListKeys, SetKeyAttribute, ShareKey, Sign,
        UnwrapKey, Verify, WrapKey, WrapParams,
    },
    masked::MaskedObject,
    mtls::{DeregisterTrustAnchor, MtlsLevel, RegisterTrustAnchor, SetMtlsEnforcement, TrustAnchor},
    quorum::{
        Approval, ClusterApproval, DeregisterMfa, LoginStep, QuorumService, QuorumToken, QuorumTokenInfo, RegisterMfa,
        SetQuorumValue, SignedToken,
    },
    types::{ClusterInfo, ClusterState, Deregister, HsmInfo, Role, SyncStatus, User},
    users::{ChangePassword, CreateUser, DeleteUser},
};

/// The password a new cluster's precrypto officer starts with.
pub const DEFAULT_PRECO_PASSWORD: &str = "password";

/// A connection to an HSM. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct HsmClient {
    channel: Channel,
    endpoint: String,
}

impl HsmClient {
    /// Connects (over TLS unless the config says plaintext) to the first
    /// endpoint of `config`.
    pub async fn connect(config: &ClientConfig) -> Result<Self, ClientError> {
        let endpoint =
            config.endpoints().first().cloned().ok_or_else(|| ClientError::Config("no HSM endpoint given".into()))?;
        let channel = Self::builder(config, &endpoint)?
            .connect()
            .await
            .map_err(|e| ClientError::Unavailable(format!("cannot connect to {endpoint}: {}", error::chain(&e))))?;
        Ok(HsmClient { channel, endpoint })
    }

    /// A client for `endpoint` that connects on its first call and again
    /// after the connection breaks, so that an HSM that is down now can serve
    /// later calls. Fails only on settings, never on the network. Call it
    /// within a Tokio runtime: the connection's background task starts on it.
    pub fn connect_lazy(config: &ClientConfig, endpoint: &str) -> Result<Self, ClientError> {
        let channel = Self::builder(config, endpoint)?.connect_lazy();
        Ok(HsmClient { channel, endpoint: endpoint.to_owned() })
    }

    fn builder(config: &ClientConfig, endpoint: &str) -> Result<Endpoint, ClientError> {
        let scheme = if config.plaintext() { "http" } else { "https" };
        let mut builder = Endpoint::from_shared(format!("{scheme}://{endpoint}"))
            .map_err(|e| ClientError::Config(format!("endpoint '{endpoint}': {e}")))?
            .connect_timeout(config.connect_timeout())
            .tcp_nodelay(true);
        if !config.plaintext() {
            // tonic's TLS setup, with the verifier that also accepts
            // CloudHSM's chain through a customer-signed cluster
            // certificate (`tls`).
            let provider = rustls::crypto::CryptoProvider::get_default()
                .cloned()
                .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
            let verifier = tls::HsmCertVerifier::new(config.ca_pem(), provider).map_err(ClientError::Config)?;
            let mut tls = ClientTlsConfig::new();
            if let Some((cert, key)) = config.client_identity() {
                tls = tls.identity(Identity::from_pem(cert, key.as_bytes()));
            }
            if let Some(name) = config.server_name() {
                tls = tls.domain_name(name);
            }
            builder = builder.tls_config_with_verifier(tls, Arc::new(verifier)).map_err(|e| {
                let mut text = format!("TLS settings: {}", error::chain(&e));
                if text.contains("UnsupportedCertVersion") {
                    // `openssl x509 -req` without extensions makes these.
                    text.push_str(
                        " (the client certificate is X.509 version 1; TLS needs version 3, which openssl \
                                   makes when given extensions, e.g. -extfile with extendedKeyUsage=clientAuth)",
                    );
                }
                ClientError::Config(text)
            })?;
        }
        Ok(builder)
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The underlying gRPC channel, for calling `hsm_proto` clients directly.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Whether the HSM serves `service` (`""` for the whole HSM), from the
    /// standard gRPC health service; needs no login. `true` only for
    /// `SERVING`.
    pub async fn health(&self, service: &str) -> Result<bool, ClientError> {
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
        let reply = HealthClient::new(self.channel()).check(HealthCheckRequest { service: service.to_owned() }).await?;
        Ok(reply.into_inner().status() == ServingStatus::Serving)
    }

    /// Basic cluster information; needs no login.
    pub async fn cluster_info(&self) -> Result<ClusterInfo, ClientError> {
        let reply = ClusterServiceClient::new(self.channel()).get_cluster_info(pb::GetClusterInfoRequest {}).await?;
        Ok(ClusterInfo::from(reply.into_inner()))
    }

    /// Logs in and opens a session. A user with MFA on is refused here:
    /// use [`HsmClient::login_step`].
    pub async fn login(&self, username: &str, role: Role, password: &str) -> Result<Session, ClientError> {
        match self.login_step(username, role, password, None).await? {
            LoginStep::Session(session) => Ok(session),
            LoginStep::MfaRequired(_) => Err(ClientError::FailedPrecondition(format!(
                "'{username}' has MFA on: the login needs a token signed with their key (login ... mfa-token-sign)"
            ))),
        }
    }

    /// One step of a login: with the user's signature of an MFA token from
    /// an earlier step (`mfa`: token, signature) when the user has MFA on.
    /// Without it, such a user gets the token to sign instead of a session.
    pub async fn login_step(
        &self,
        username: &str,
        role: Role,
        password: &str,
        mfa: Option<(&[u8], &[u8])>,
    ) -> Result<LoginStep, ClientError> {
        let (mfa_token, mfa_signature) = mfa.map(|(t, s)| (t.to_vec(), s.to_vec())).unwrap_or_default();
        let request = pb::LoginRequest {
            username: username.to_owned(),
            role: pb::Role::from(role).into(),
            password: password.to_owned(),
            mfa_token,
            mfa_signature,
        };
        let mut reply = SessionServiceClient::new(self.channel()).login(request).await?.into_inner();
        if !reply.mfa_token.is_empty() {
            return Ok(LoginStep::MfaRequired(reply.mfa_token));
        }
        let role = Role::try_from(reply.role)?;
        Ok(LoginStep::Session(Session {
            client: self.clone(),
            // Moved, not copied: the only copy is the one zeroized on drop.
            token: Some(Zeroizing::new(std::mem::take(&mut reply.session_token))),
            user: Some((std::mem::take(&mut reply.username), role)),
        }))
    }

    /// A handle that makes calls without logging in, as an unauthenticated
    /// session. The HSM refuses everything but cluster information; test
    /// suites use it to check exactly that.
    pub fn anonymous(&self) -> Session {
        Session { client: self.clone(), token: None, user: None }
    }

    /// Activates a new cluster, as `cluster activate` does: logs in as the
    /// precrypto officer (`admin` / `password`), sets the admin password, and
    /// logs out. Fails if the cluster is already active.
    pub async fn activate(&self, new_admin_password: &str) -> Result<User, ClientError> {
        if self.cluster_info().await?.state == ClusterState::Active {
            return Err(ClientError::FailedPrecondition("the cluster is already activated".into()));
        }
        let preco = self.login("admin", Role::Admin, DEFAULT_PRECO_PASSWORD).await?;
        let activated = preco.activate(new_admin_password).await;
        // The session ends either way; a failed logout does not undo activation.
        let _ = preco.logout().await;
        activated
    }
}

/// A session: logged in (from [`HsmClient::login`]) or anonymous (from
/// [`HsmClient::anonymous`]). Its token is secret: zeroized on drop, never
/// printed.
pub struct Session {
    client: HsmClient,
    token: Option<Zeroizing<String>>,
    /// The user's name and role, as the HSM reported them at login.
    user: Option<(String, Role)>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("endpoint", &self.client.endpoint)
            .field("user", &self.user)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Session {
    /// The logged-in user's name; `None` for an anonymous session.
    pub fn username(&self) -> Option<&str> {
        self.user.as_ref().map(|(name, _)| name.as_str())
    }

    /// The logged-in user's role as the HSM reported it at login.
    pub fn role(&self) -> Option<Role> {
        self.user.as_ref().map(|(_, role)| *role)
    }

    pub fn client(&self) -> &HsmClient {
        &self.client
    }

    /// Wraps a message in a request that carries this session's token, for
    /// calling `hsm_proto` clients directly.
    pub fn request<T>(&self, message: T) -> Result<Request<T>, ClientError> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            let value = MetadataValue::try_from(format!("Bearer {}", token.as_str())).map_err(|_| {
                ClientError::Protocol("the HSM returned a session token that is not valid ASCII".into())
            })?;
            request.metadata_mut().insert(SESSION_METADATA_KEY, value);
        }
        Ok(request)
    }

    /// Checks the session and does nothing else (an extension): a
    /// keep-alive that resets the idle timer, and the floor of an
    /// authenticated call for benchmarks.
    pub async fn ping(&self) -> Result<(), ClientError> {
        SessionServiceClient::new(self.client.channel()).ping(self.request(pb::PingRequest {})?).await?;
        Ok(())
    }

    /// Ends the session.
    pub async fn logout(self) -> Result<(), ClientError> {
        SessionServiceClient::new(self.client.channel()).logout(self.request(pb::LogoutRequest {})?).await?;
        Ok(())
    }

    /// Activates the cluster (precrypto officer only).
    pub async fn activate(&self, new_admin_password: &str) -> Result<User, ClientError> {
        let request = self.request(pb::ActivateRequest { new_password: new_admin_password.to_owned() })?;
        let reply = ClusterServiceClient::new(self.client.channel()).activate(request).await?.into_inner();
        Ok(User {
            username: reply.username,
            role: Role::try_from(reply.role)?,
            locked: false,
            quorum: false,
            mfa: false,
        })
    }

    pub async fn cluster_info(&self) -> Result<ClusterInfo, ClientError> {
        let reply = ClusterServiceClient::new(self.client.channel())
            .get_cluster_info(self.request(pb::GetClusterInfoRequest {})?)
            .await?;
        Ok(ClusterInfo::from(reply.into_inner()))
    }

    /// The HSM's sync status (admins, crypto users and the appliance user).
    pub async fn sync_status(&self) -> Result<SyncStatus, ClientError> {
        let reply = ClusterServiceClient::new(self.client.channel())
            .get_sync_status(self.request(pb::GetSyncStatusRequest { include_keys: false })?)
            .await?
            .into_inner();
        Ok(SyncStatus { hsm_id: reply.hsm_id, digest: reply.digest, users: reply.user_count, keys: reply.key_count })
    }
}
