//! One HSM in memory behind its real audit layer, permission gate and
//! services, called without a network: what the request fuzz targets drive
//! (see [`crate::fuzzing`]). Deterministic: the same calls give the same
//! tokens, key references and answers, so that a fuzzer's finding replays.

use std::sync::{Arc, OnceLock};

use hsm_proto::{
    SESSION_METADATA_KEY,
    v1::{self as pb, Rpc},
};
use http_body_util::BodyExt as _;
use prost::Message;
use rand::SeedableRng as _;
use tonic::{Code, Status, codegen::Bytes};
use tower::{Service, ServiceExt};

use super::{HsmState, audit::Auditor, gate::Gate, layer::StateLayer, serve::routes};
use crate::{
    clock::ManualClock,
    config::{ConnectionLimits, DEFAULT_DRAIN_TIMEOUT, DaemonConfig, Membership, Storage, Transport},
    model::{ClusterId, ClusterIdentity, ClusterMode, HsmIdentity, HsmType, KdfParams, Limits, Password},
    store::{Backing, MasterKey},
};

/// The admin's password in every rig.
pub(crate) const ADMIN_PASSWORD: &str = "admin-pass";
/// The password of every user a rig creates.
pub(crate) const USER_PASSWORD: &str = "user-pass-1";
/// The cluster key (masking, backups) of every rig: fixed, so that a
/// fuzzer's masked objects and backups open in the next process too.
pub(crate) const CLUSTER_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// The seed of every rig's deterministic mode.
const DETERMINISTIC_SEED: u64 = 0x5eed;

/// The runtime every rig of the process runs on: one thread, so that a run
/// is reproducible.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        #[expect(clippy::expect_used, reason = "a fuzz target cannot run without its runtime")]
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("building the fuzz runtime")
    })
}

/// Runs `future` to completion on the rigs' runtime.
pub(crate) fn block_on<T>(future: impl Future<Output = T>) -> T {
    runtime().block_on(future)
}

/// The cluster every rig belongs to.
pub(crate) fn cluster() -> ClusterIdentity {
    let mut rng = rand::rngs::StdRng::seed_from_u64(DETERMINISTIC_SEED);
    ClusterIdentity { id: ClusterId::generate(&mut rng), hsm_type: HsmType::Hsm2mMedium, mode: ClusterMode::Fips }
}

/// The cluster key of [`CLUSTER_KEY_HEX`].
pub(crate) fn cluster_key() -> MasterKey {
    #[expect(clippy::expect_used, reason = "CLUSTER_KEY_HEX is 32 bytes of hex")]
    MasterKey::from_hex(CLUSTER_KEY_HEX).expect("the rig's cluster key")
}

/// The client-certificate verifier the HSM would build for `mtls`'s
/// anchors (the trust-anchor target's last step).
pub(crate) fn client_verifier(mtls: &crate::model::Mtls) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(super::trust::Trust::new(provider, None, false, None, mtls)).client_verifier()
}

/// What one call answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) code: Code,
    pub(crate) message: String,
    /// The response message's bytes (empty unless `code` is `Ok`).
    pub(crate) body: Vec<u8>,
}

type Stack = super::layer::WithState<Auditor, super::layer::WithState<Gate, tonic::service::Routes>>;

/// An activated HSM in memory, with its gate and services.
pub(crate) struct Rig {
    state: Arc<HsmState>,
    service: Stack,
    clock: Arc<ManualClock>,
}

impl std::fmt::Debug for Rig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rig").finish_non_exhaustive()
    }
}

impl Rig {
    /// A new, activated HSM whose admin's password is [`ADMIN_PASSWORD`].
    pub(crate) async fn new() -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(DETERMINISTIC_SEED + 1);
        let clock = Arc::new(ManualClock::new());
        #[expect(clippy::expect_used, reason = "fixed, valid passwords")]
        let password = |p: &str| Password::parse("password", p).expect("the rig's passwords");
        let config = DaemonConfig {
            cluster: cluster(),
            hsm: HsmIdentity::generate(&mut rng, "127.0.0.1:1".into(), ClusterMode::Fips),
            limits: Limits::for_type(HsmType::Hsm2mMedium),
            kdf: KdfParams::TESTING,
            admin_password: Some(password(ADMIN_PASSWORD)),
            appliance_password: password("appliance-pass"),
            transport: Transport::InsecurePlaintext,
            clock: Arc::clone(&clock) as Arc<dyn crate::clock::Clock>,
            storage: Storage { backing: Backing::Memory, master_key: cluster_key() },
            membership: Membership::single(Some(cluster_key())),
            seed: None,
            deterministic: Some(DETERMINISTIC_SEED),
            faults: false,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            connections: ConnectionLimits::default(),
        };
        let max = config.connections.max_message_bytes;
        #[expect(clippy::expect_used, reason = "an in-memory HSM with a fixed configuration starts")]
        let (state, _) = HsmState::build(&config).await.expect("building the rig's HSM");
        let state = Arc::new(state);
        let service = tower::ServiceBuilder::new()
            .layer(StateLayer::<Auditor>::new(Arc::clone(&state)))
            .layer(StateLayer::<Gate>::new(Arc::clone(&state)))
            .service(routes(&state, max).prepare());
        Rig { state, service, clock }
    }

    /// Moves the HSM's clock (session idle timeouts, token expiry).
    pub(crate) fn advance(&self, by: std::time::Duration) {
        self.clock.advance(by);
    }

    /// Whether the HSM still serves (no failed write stopped it).
    pub(crate) fn is_healthy(&self) -> bool {
        self.state.check_healthy().is_ok()
    }

    /// The HSM's id (quorum tokens are bound to it).
    pub(crate) fn hsm_id(&self) -> String {
        self.state.hsm().cluster_info().hsms.first().map(|h| h.id.to_string()).unwrap_or_default()
    }

    /// A backup file of the HSM, as `hsm-daemon backup` writes it.
    pub(crate) fn backup_bytes(&self) -> Result<Vec<u8>, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("backup");
        let cluster = cluster();
        let hsm = self.hsm_id();
        self.state.store.write_backup(&cluster_key(), cluster.id.as_str(), &hsm, &path).map_err(|e| e.to_string())?;
        std::fs::read(&path).map_err(|e| e.to_string())
    }

    /// Calls `rpc` with the encoded request `body`, as the holder of
    /// `authorization` (a whole header value, e.g. `Bearer TOKEN`).
    pub(crate) async fn call(&mut self, rpc: Rpc, authorization: Option<&str>, body: &[u8]) -> Answer {
        let mut framed = Vec::with_capacity(5 + body.len());
        framed.push(0);
        framed.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
        framed.extend_from_slice(body);
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("http://hsm{}", rpc.path()))
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers");
        if let Some(value) = authorization {
            request = request.header(SESSION_METADATA_KEY, value);
        }
        let request = match request.body(tonic::body::Body::new(http_body_util::Full::new(Bytes::from(framed)))) {
            Ok(request) => request,
            Err(e) => return Answer { code: Code::InvalidArgument, message: e.to_string(), body: Vec::new() },
        };
        let response = match ServiceExt::<http::Request<tonic::body::Body>>::ready(&mut self.service).await {
            Ok(service) => service.call(request).await,
            Err(never) => match never {},
        };
        let Ok(response) = response;
        let (parts, body) = response.into_parts();
        if let Some(status) = Status::from_header_map(&parts.headers)
            && status.code() != Code::Ok
        {
            return Answer { code: status.code(), message: status.message().to_owned(), body: Vec::new() };
        }
        let collected = match body.collect().await {
            Ok(collected) => collected,
            Err(status) => {
                return Answer { code: status.code(), message: status.message().to_owned(), body: Vec::new() };
            }
        };
        let trailers = collected.trailers().and_then(Status::from_header_map);
        let data = collected.to_bytes();
        match trailers {
            Some(status) if status.code() != Code::Ok => {
                Answer { code: status.code(), message: status.message().to_owned(), body: Vec::new() }
            }
            _ => Answer { code: Code::Ok, message: String::new(), body: data.get(5..).unwrap_or_default().to_vec() },
        }
    }

    /// Calls `rpc` with `request` and decodes the answer as `R`.
    pub(crate) async fn typed<R: Message + Default>(
        &mut self,
        rpc: Rpc,
        token: Option<&str>,
        request: &impl Message,
    ) -> Result<R, Answer> {
        let authorization = token.map(|t| format!("Bearer {t}"));
        let answer = self.call(rpc, authorization.as_deref(), &request.encode_to_vec()).await;
        if answer.code != Code::Ok {
            return Err(answer);
        }
        R::decode(answer.body.as_slice()).map_err(|e| Answer {
            code: Code::Internal,
            message: format!("undecodable response: {e}"),
            body: Vec::new(),
        })
    }

    /// Logs `username` in; its session token.
    pub(crate) async fn login(&mut self, username: &str, role: pb::Role, password: &str) -> Result<String, Answer> {
        let request = pb::LoginRequest {
            username: username.into(),
            role: role.into(),
            password: password.into(),
            ..Default::default()
        };
        let response: pb::LoginResponse = self.typed(Rpc::Login, None, &request).await?;
        Ok(response.session_token)
    }

    /// Creates a user as the admin holding `admin`.
    pub(crate) async fn create_user(
        &mut self,
        admin: &str,
        username: &str,
        role: pb::Role,
        approval: Option<pb::Approval>,
    ) -> Result<(), Answer> {
        let request = pb::CreateUserRequest {
            username: username.into(),
            role: role.into(),
            password: USER_PASSWORD.into(),
            approval,
            create_token: Vec::new(),
        };
        self.typed::<pb::CreateUserResponse>(Rpc::CreateUser, Some(admin), &request).await.map(drop)
    }
}
