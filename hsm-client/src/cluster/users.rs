//! Users across the cluster: changes written to every HSM, and one list
//! merged from all of them.
//!
//! HSMs do not copy users to each other, so a change that reached only some
//! HSMs leaves the cluster inconsistent until it is repaired. No repair ever
//! turns a refusal into a write: creating a user who exists anywhere is
//! refused (an HSM that missed a create is retried within that same create,
//! by its token), and deleting one that is already gone counts as done on
//! that HSM, since nothing is left to write there.

use std::{collections::BTreeMap, fmt};

use super::{ClusterSession, FanOut, quorum::approval_for, retry};
use crate::{
    ChangePassword, ClientError, ClusterApproval, CreateUser, DeleteUser, Role, Session, User, types::CreateToken,
};

/// What a user change did on one HSM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChange {
    pub user: User,
    pub effect: UserEffect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserEffect {
    /// The HSM made the change.
    Applied,
    /// The HSM was already as asked, and nothing was written: the user to
    /// delete was already gone.
    AlreadyInPlace,
}

/// A value that should be the same on every HSM, and may not be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merged<T> {
    Consistent(T),
    /// The HSMs disagree (CloudHSM CLI shows `"inconsistent"`).
    Inconsistent,
}

impl<T: fmt::Display> fmt::Display for Merged<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Merged::Consistent(value) => value.fmt(f),
            Merged::Inconsistent => f.write_str("inconsistent"),
        }
    }
}

impl<T> Merged<T> {
    /// The value, converted, if consistent.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Merged<U> {
        match self {
            Merged::Consistent(value) => Merged::Consistent(f(value)),
            Merged::Inconsistent => Merged::Inconsistent,
        }
    }
}

impl<T: PartialEq + Copy> Merged<T> {
    /// The common value of `values`, or `Inconsistent` if any differs.
    fn of(mut values: impl Iterator<Item = T>) -> Option<Self> {
        let first = values.next()?;
        Some(if values.all(|v| v == first) { Merged::Consistent(first) } else { Merged::Inconsistent })
    }
}

/// One user as the cluster shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterUser {
    pub username: String,
    /// The same role everywhere it exists, or `Inconsistent`.
    pub role: Merged<Role>,
    pub locked: Merged<bool>,
    /// Every HSM that answered, in endpoint order: the user there, or `None`
    /// where it does not exist.
    pub per_hsm: Vec<(String, Option<User>)>,
}

impl ClusterUser {
    /// Exists on every HSM that answered.
    pub fn on_every_hsm(&self) -> bool {
        self.per_hsm.iter().all(|(_, u)| u.is_some())
    }

    /// Exists everywhere with one role and one lock state.
    pub fn is_consistent(&self) -> bool {
        self.on_every_hsm() && self.role != Merged::Inconsistent && self.locked != Merged::Inconsistent
    }
}

/// `user list` across the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserList {
    /// Sorted by username.
    pub users: Vec<ClusterUser>,
    /// HSMs that could not list their users, and why; their users are not
    /// counted.
    pub unanswered: Vec<(String, ClientError)>,
}

impl ClusterSession {
    /// Creates a user on every HSM. A user of that name (in any case) on any
    /// HSM that answers is refused before anything is written, and is left as
    /// it is: a create never changes an existing user. An HSM that could not
    /// take the call (down, busy) is tried again with the same create, which
    /// the HSM recognises by its token, so a retry may finish the create it
    /// started and nothing else. Each HSM gets the approval of its own
    /// token. `Err` only when no HSM ended up with the user.
    pub async fn create_user(
        &self,
        request: CreateUser<'_, ClusterApproval>,
    ) -> Result<FanOut<UserChange>, ClientError> {
        self.refuse_existing(request.username).await?;
        let token = CreateToken::random()?;
        let policy = self.cluster.settings.retry;
        let request = &request;
        self.on_all(|s| async move {
            let user = retry::run_here(policy, || async {
                let approval = approval_for(s, request.approval).await?;
                s.create_user_attempt(request.with_approval(approval.as_ref()), Some(&token)).await
            })
            .await?;
            Ok(UserChange { user, effect: UserEffect::Applied })
        })
        .await
        .into_result()
    }

    /// `AlreadyExists` when any HSM that answers holds a user named
    /// `username`, naming the HSMs that do when not all of them do (a create
    /// that reached only some: repair it by deleting the user and creating
    /// it again, never by overwriting).
    async fn refuse_existing(&self, username: &str) -> Result<(), ClientError> {
        let found = self.on_all(|s| existing(s, username)).await;
        let (holders, missing): (Vec<_>, Vec<_>) = found.succeeded().partition(|(_, user)| user.is_some());
        let Some((_, Some(user))) = holders.first() else {
            return Ok(());
        };
        let mut message = format!("a user named '{}' already exists", user.username);
        if !missing.is_empty() {
            let names = |list: &[(&str, &Option<User>)]| list.iter().map(|(e, _)| *e).collect::<Vec<_>>().join(", ");
            message += &format!(
                " on {} but not on {}: delete it (user delete) and create it again to repair the cluster",
                names(&holders),
                names(&missing)
            );
        }
        Err(ClientError::AlreadyExists(message))
    }

    /// Deletes a user on every HSM, each with the approval of its own
    /// token; where it is already gone, that HSM counts as done. `Err` only
    /// when it failed everywhere.
    pub async fn delete_user(
        &self,
        request: DeleteUser<'_, ClusterApproval>,
    ) -> Result<FanOut<UserChange>, ClientError> {
        let request = &request;
        self.on_all(|s| async move {
            let approval = approval_for(s, request.approval).await?;
            match s.delete_user(request.with_approval(approval.as_ref())).await {
                Ok(user) => Ok(UserChange { user, effect: UserEffect::Applied }),
                Err(ClientError::NotFound(why)) => match existing(s, request.username).await? {
                    None => Ok(UserChange {
                        user: User {
                            username: request.username.to_ascii_lowercase(),
                            role: request.role,
                            locked: false,
                            quorum: false,
                            mfa: false,
                        },
                        effect: UserEffect::AlreadyInPlace,
                    }),
                    Some(_) => Err(ClientError::NotFound(why)),
                },
                Err(e) => Err(e),
            }
        })
        .await
        .into_result()
    }

    /// Changes a password on every HSM, each with the approval of its own
    /// token, as [`Session::change_password`] does on one.
    pub async fn change_password(
        &self,
        request: ChangePassword<'_, ClusterApproval>,
    ) -> Result<FanOut<UserChange>, ClientError> {
        let request = &request;
        self.on_all(|s| async move {
            let approval = approval_for(s, request.approval).await?;
            let user = s.change_password(request.with_approval(approval.as_ref())).await?;
            Ok(UserChange { user, effect: UserEffect::Applied })
        })
        .await
        .into_result()
    }

    /// Every HSM's users, merged: one entry per username, marked where the
    /// HSMs disagree. `Err` only when no HSM could list.
    pub async fn list_users(&self) -> Result<UserList, ClientError> {
        let lists = self.on_all(Session::list_users).await.into_result()?;
        let answered: Vec<(String, Vec<User>)> =
            lists.succeeded().map(|(endpoint, users)| (endpoint.to_owned(), users.clone())).collect();
        let unanswered = lists.failed().map(|(endpoint, e)| (endpoint.to_owned(), e.clone())).collect();
        Ok(UserList { users: merge_users(&answered), unanswered })
    }
}

/// The user of that name on one HSM, if any.
async fn existing(session: &Session, username: &str) -> Result<Option<User>, ClientError> {
    let users = session.list_users().await?;
    Ok(users.into_iter().find(|u| u.username.eq_ignore_ascii_case(username)))
}

/// Merges per-HSM user lists (endpoint, users) into one entry per username,
/// sorted by name.
pub(crate) fn merge_users(lists: &[(String, Vec<User>)]) -> Vec<ClusterUser> {
    let mut names: BTreeMap<String, ()> = BTreeMap::new();
    for (_, users) in lists {
        for user in users {
            names.insert(user.username.to_ascii_lowercase(), ());
        }
    }
    names
        .into_keys()
        .map(|username| {
            let per_hsm: Vec<(String, Option<User>)> = lists
                .iter()
                .map(|(endpoint, users)| {
                    (endpoint.clone(), users.iter().find(|u| u.username.eq_ignore_ascii_case(&username)).cloned())
                })
                .collect();
            let present = || per_hsm.iter().filter_map(|(_, u)| u.as_ref());
            let role = Merged::of(present().map(|u| u.role)).unwrap_or(Merged::Inconsistent);
            let locked = Merged::of(present().map(|u| u.locked)).unwrap_or(Merged::Inconsistent);
            ClusterUser { username, role, locked, per_hsm }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, role: Role, locked: bool) -> User {
        User { username: name.into(), role, locked, quorum: false, mfa: false }
    }

    #[test]
    fn users_that_agree_everywhere_merge_into_one_consistent_entry() {
        let everywhere = vec![user("admin", Role::Admin, false), user("alice", Role::CryptoUser, false)];
        let merged = merge_users(&[("a:1".into(), everywhere.clone()), ("b:1".into(), everywhere)]);
        assert_eq!(merged.len(), 2);
        assert!(merged.iter().all(ClusterUser::is_consistent));
        assert_eq!(merged[1].role, Merged::Consistent(Role::CryptoUser));
        assert_eq!(merged[1].locked, Merged::Consistent(false));
    }

    #[test]
    fn a_user_missing_somewhere_or_differing_in_role_or_lock_is_inconsistent() {
        let a = vec![
            user("admin", Role::Admin, false),
            user("bob", Role::CryptoUser, true),
            user("eve", Role::Admin, false),
        ];
        let b = vec![
            user("admin", Role::Admin, false),
            user("bob", Role::CryptoUser, false),
            user("eve", Role::CryptoUser, false),
        ];
        let c = vec![
            user("admin", Role::Admin, false),
            user("bob", Role::CryptoUser, true),
            user("eve", Role::Admin, false),
            user("zed", Role::CryptoUser, false),
        ];
        let merged = merge_users(&[("a:1".into(), a), ("b:1".into(), b), ("c:1".into(), c)]);
        let names: Vec<&str> = merged.iter().map(|u| u.username.as_str()).collect();
        assert_eq!(names, ["admin", "bob", "eve", "zed"]);

        let bob = &merged[1];
        assert_eq!((bob.role, bob.locked), (Merged::Consistent(Role::CryptoUser), Merged::Inconsistent));
        assert!(bob.on_every_hsm() && !bob.is_consistent());
        let eve = &merged[2];
        assert_eq!((eve.role, eve.locked), (Merged::Inconsistent, Merged::Consistent(false)));
        assert_eq!(eve.role.to_string(), "inconsistent");
        let zed = &merged[3];
        assert_eq!(zed.role, Merged::Consistent(Role::CryptoUser), "its one copy agrees with itself");
        assert!(!zed.on_every_hsm() && !zed.is_consistent());
        let holders: Vec<(&str, bool)> = zed.per_hsm.iter().map(|(e, u)| (e.as_str(), u.is_some())).collect();
        assert_eq!(holders, [("a:1", false), ("b:1", false), ("c:1", true)]);
    }
}
