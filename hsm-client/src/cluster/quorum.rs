//! Quorum and MFA across the cluster. Registered keys, quorum values and
//! MFA are per-user or per-HSM state that must be the same on every HSM, so
//! they are written to all of them, as users are. Tokens are per HSM: a
//! registration or MFA token file holds one per HSM, and an approval is
//! either one per HSM or, as the CloudHSM CLI's file has it, one token for
//! the cluster joining every HSM's ([`crate::Approval::joined`]); either way
//! each HSM finds and spends its own.

use std::collections::HashMap;

use futures_util::future::join_all;

use super::{Cluster, ClusterSession, FanOut, fanout};
use crate::{
    Approval, ClientError, ClusterApproval, DeregisterMfa, LoginStep, QuorumService, QuorumToken, QuorumTokenInfo,
    RegisterMfa, Role, Session, SetQuorumValue, SignedToken, User,
};

/// Per endpoint: the token an HSM issued, and the signature of it.
pub type SignedTokens = HashMap<String, SignedToken>;

impl ClusterSession {
    /// A token from every HSM.
    pub async fn generate_quorum_token(&self, service: QuorumService) -> Result<FanOut<QuorumToken>, ClientError> {
        self.on_all(|s| s.generate_quorum_token(service)).await.into_result()
    }

    pub async fn list_quorum_tokens(&self) -> Result<FanOut<Vec<QuorumTokenInfo>>, ClientError> {
        self.on_all(Session::list_quorum_tokens).await.into_result()
    }

    pub async fn delete_quorum_tokens(&self, all: bool) -> Result<FanOut<u32>, ClientError> {
        self.on_all(|s| s.delete_quorum_tokens(all)).await.into_result()
    }

    pub async fn list_quorum_values(&self) -> Result<FanOut<Vec<(QuorumService, u32)>>, ClientError> {
        self.on_all(Session::list_quorum_values).await.into_result()
    }

    /// Sets a quorum value on every HSM, each with the approval of its token.
    pub async fn set_quorum_value(
        &self,
        request: SetQuorumValue<'_, ClusterApproval>,
    ) -> Result<FanOut<Vec<(QuorumService, u32)>>, ClientError> {
        let request = &request;
        self.on_all(|s| async move {
            let approval = approval_for(s, request.approval).await?;
            s.set_quorum_value(request.with_approval(approval.as_ref())).await
        })
        .await
        .into_result()
    }

    /// Registers the caller's quorum key on every HSM: `signed` holds the
    /// (token, signature) pairs of a signed registration token file, one
    /// per HSM; every HSM gets them all and uses its own.
    pub async fn register_quorum_key(
        &self,
        public_key: &[u8],
        signed: &[SignedToken],
    ) -> Result<FanOut<(String, Role)>, ClientError> {
        self.on_all(|s| s.register_quorum_key(public_key, signed)).await.into_result()
    }

    /// The token each HSM wants a new MFA key for `username` to sign, by
    /// endpoint.
    pub async fn mfa_registration_tokens(&self, username: &str, role: Role) -> Result<FanOut<Vec<u8>>, ClientError> {
        self.on_all(|s| s.mfa_registration_token(username, role)).await.into_result()
    }

    /// Turns MFA on everywhere, each HSM getting its own signed token and
    /// the approval of its own token.
    pub async fn register_mfa(
        &self,
        request: RegisterMfa<'_, SignedTokens, ClusterApproval>,
    ) -> Result<FanOut<User>, ClientError> {
        let request = &request;
        self.on_all(|s| async move {
            let signed = signed_for(request.signed, s)?;
            let approval = approval_for(s, request.approval).await?;
            s.register_mfa(request.for_hsm(signed, approval.as_ref())).await
        })
        .await
        .into_result()
    }

    /// Turns MFA off everywhere.
    pub async fn deregister_mfa(
        &self,
        request: DeregisterMfa<'_, ClusterApproval>,
    ) -> Result<FanOut<User>, ClientError> {
        let request = &request;
        self.on_all(|s| async move {
            let approval = approval_for(s, request.approval).await?;
            s.deregister_mfa(request.with_approval(approval.as_ref())).await
        })
        .await
        .into_result()
    }
}

impl Cluster {
    /// First step of an MFA login: the password is checked on every HSM,
    /// and each that accepts it answers with its token to sign (by
    /// endpoint). A user without MFA gets sessions right away, which are
    /// logged out again: use [`Cluster::login`] for them.
    pub async fn mfa_login_tokens(
        &self,
        username: &str,
        role: Role,
        password: &str,
    ) -> Result<FanOut<Vec<u8>>, ClientError> {
        let steps = join_all(self.hsms.iter().map(|hsm| async move {
            match hsm.login_step(username, role, password, None).await? {
                LoginStep::MfaRequired(token) => Ok(token),
                LoginStep::Session(session) => {
                    let _ = session.logout().await;
                    Err(ClientError::FailedPrecondition(format!(
                        "'{username}' does not have MFA on; log in without it"
                    )))
                }
            }
        }))
        .await;
        super::session::fan_out_result(self, steps).into_result()
    }

    /// Second step of an MFA login: every HSM gets the password and the
    /// signature of its own token.
    pub async fn mfa_login(
        &self,
        username: &str,
        role: Role,
        password: &str,
        signed: &SignedTokens,
    ) -> Result<ClusterSession, ClientError> {
        let logins = join_all(self.hsms.iter().map(|hsm| async move {
            let (token, signature) = signed.get(hsm.endpoint()).ok_or_else(|| no_token(hsm.endpoint()))?;
            match hsm.login_step(username, role, password, Some((token, signature))).await? {
                LoginStep::Session(session) => Ok(session),
                LoginStep::MfaRequired(_) => {
                    Err(ClientError::Unauthenticated("the HSM asked for another MFA token".into()))
                }
            }
        }))
        .await;
        if logins.iter().all(Result::is_err) {
            let failures = self.endpoints().map(str::to_owned).zip(logins.into_iter().filter_map(Result::err));
            return Err(fanout::combine(failures.collect()));
        }
        Ok(ClusterSession::new(self.clone(), logins))
    }
}

impl ClusterSession {
    /// After one HSM used its token of `approval` (a key operation goes to
    /// one HSM), retires the other HSMs' tokens of it, so that the same
    /// signed file approves one operation in the cluster. Best effort: a
    /// token left behind expires in ten minutes.
    pub(super) async fn retire(&self, approval: Option<&ClusterApproval>) {
        let Some(approval) = approval else { return };
        self.on_all(|s| async move {
            let token = approval_for(s, Some(approval)).await?.ok_or_else(|| no_token(s.client().endpoint()))?;
            s.delete_quorum_token(&token).await
        })
        .await;
    }
}

/// The approval for the HSM behind `session`, if there is an approval.
pub(crate) async fn approval_for(
    session: &Session,
    approval: Option<&ClusterApproval>,
) -> Result<Option<Approval>, ClientError> {
    match approval {
        None => Ok(None),
        // The same for every HSM: no need to ask this one its id.
        Some(ClusterApproval::Joined(approval)) => Ok(Some(approval.clone())),
        Some(per_hsm) => Ok(Some(per_hsm.for_hsm(&session.hsm_id().await?)?.clone())),
    }
}

fn signed_for<'a>(signed: &'a SignedTokens, session: &Session) -> Result<&'a SignedToken, ClientError> {
    let endpoint = session.client().endpoint();
    signed.get(endpoint).ok_or_else(|| no_token(endpoint))
}

fn no_token(endpoint: &str) -> ClientError {
    ClientError::InvalidArgument(format!("the signed token file has no signed token of the HSM at {endpoint}"))
}
