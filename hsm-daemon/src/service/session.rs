//! `hsm.v1.SessionService`: login and logout.

use std::sync::Arc;

use hsm_proto::v1::{
    LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, PingRequest, PingResponse,
    session_service_server::SessionService,
};
use tonic::{Request, Response, Status};

use super::{HsmState, audit, blocking, caller, convert};
use crate::model::{ModelError, Password, Username};

#[derive(Debug)]
pub(super) struct SessionApi {
    state: Arc<HsmState>,
}

impl SessionApi {
    pub(super) fn new(state: Arc<HsmState>) -> Self {
        SessionApi { state }
    }
}

#[tonic::async_trait]
impl SessionService for SessionApi {
    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        let req = request.get_ref();
        let username = Username::parse("username", &req.username)?;
        let role = convert::role("role", req.role)?;
        let password = Password::parse("password", &req.password)?;
        audit::note_target(&request, &username);

        // A locked user is refused here already; it counts as a failed login.
        let attempt = self.state.hsm().login_attempt(&username, role).inspect_err(|_| {
            self.state.stats.count_failed_login();
        })?;
        let mut attempt = attempt;
        let hash = attempt.hash().clone();
        let password_ok = self.state.with_kdf(move || Ok(hash.verify(&password))).await?;
        let mut rng = self.state.fork_rng();
        let now = self.state.now();
        // MFA: a right password without a signed token gets a token to sign;
        // with one, its signature is checked here, outside the model's lock.
        if let (true, Some(key)) = (password_ok, attempt.mfa_key().cloned()) {
            if req.mfa_token.is_empty() {
                let issued = self.state.mutate(|hsm| hsm.mfa_login_token(&username, now, &mut rng)).await?;
                tracing::info!(%username, "login needs the MFA token signed");
                return Ok(Response::new(LoginResponse {
                    username: username.to_string(),
                    role: convert::role_to_proto(role).into(),
                    mfa_token: issued.token.to_vec(),
                    ..Default::default()
                }));
            }
            let token = convert::token("mfa_token", &req.mfa_token)?;
            let preimage = self.state.mutate(|hsm| hsm.mfa_login_preimage(&username, &token, now)).await;
            let signature = req.mfa_signature.clone();
            let verified = match preimage {
                Ok(preimage) => blocking(move || Ok(key.verifies(&preimage, &signature))).await?,
                Err(_) => false,
            };
            if verified {
                attempt.mfa_passed(token);
            }
        }
        let mut refused = false;
        let outcome = self
            .state
            .mutate(|hsm| {
                let result = hsm.finish_login(attempt, password_ok, now, &mut rng);
                refused = matches!(result, Err(ModelError::LoginFailed | ModelError::UserLocked { .. }));
                result
            })
            .await;
        if refused {
            self.state.stats.count_failed_login();
        }
        let (token, view) = match outcome {
            Ok(ok) => ok,
            Err(status) => {
                tracing::info!(%username, error = %status.message(), "login refused");
                return Err(status);
            }
        };
        let (number, activated) = {
            let hsm = self.state.hsm();
            (hsm.session_number(token.id()), hsm.is_activated())
        };
        audit::note_login(&request, &view.username, view.role.identity(activated), number);
        tracing::info!(%username, role = %view.role, "logged in");
        let idle = self.state.hsm().limits().session_idle_timeout;
        Ok(Response::new(LoginResponse {
            session_token: token.expose().to_owned(),
            username: view.username.to_string(),
            role: convert::role_to_proto(view.role).into(),
            idle_timeout_seconds: idle.as_secs(),
            mfa_token: Vec::new(),
        }))
    }

    /// The gate has checked the session and the table; nothing is left.
    async fn ping(&self, _request: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {}))
    }

    async fn logout(&self, request: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        let caller = caller(&request)?;
        self.state.mutate(|hsm| hsm.logout(&caller)).await?;
        Ok(Response::new(LogoutResponse {}))
    }
}
