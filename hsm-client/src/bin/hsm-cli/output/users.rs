//! The user commands' data: a user, a user change, and `user list`.

use hsm_client::{ClusterUser, FanOut, Role, UserList};
use serde::Serialize;
use serde_json::Value;

use super::{to_value, with_failures};

/// `{"username": ..., "role": ...}`, as login and the user commands print.
pub(crate) fn user_ref(username: &str, role: Role) -> Value {
    #[derive(Serialize)]
    struct UserRef<'a> {
        username: &'a str,
        role: String,
    }
    to_value(UserRef { username, role: role.to_string() })
}
/// What the user commands print: the user, and the HSMs the change missed.
pub(crate) fn user_change(change: &FanOut<hsm_client::UserChange>, username: &str, role: Role) -> Value {
    let (name, role) = change.first().map_or((username, role), |c| (c.user.username.as_str(), c.user.role));
    with_failures(user_ref(name, role), change.failed())
}

/// `user list`'s data: one row per user across the cluster.
pub(crate) fn users(list: &UserList) -> Value {
    #[derive(Serialize)]
    struct Row<'a> {
        username: &'a str,
        role: String,
        locked: String,
        mfa: Vec<Value>,
        quorum: Vec<Value>,
        #[serde(rename = "cluster-coverage")]
        cluster_coverage: &'static str,
        /// Only for an inconsistent user: what each HSM holds.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        hsms: Vec<PerHsm<'a>>,
    }
    #[derive(Serialize)]
    #[serde(untagged)]
    enum PerHsm<'a> {
        Present { hsm: &'a str, role: String, locked: &'static str },
        Absent { hsm: &'a str, present: bool },
    }
    #[derive(Serialize)]
    struct Users<'a> {
        users: Vec<Row<'a>>,
    }
    fn row(u: &ClusterUser) -> Row<'_> {
        let hsms = if u.is_consistent() {
            Vec::new()
        } else {
            u.per_hsm
                .iter()
                .map(|(hsm, user)| match user {
                    Some(user) => PerHsm::Present { hsm, role: user.role.to_string(), locked: flag(user.locked) },
                    None => PerHsm::Absent { hsm, present: false },
                })
                .collect()
        };
        Row {
            username: &u.username,
            role: u.role.to_string(),
            locked: u.locked.map(flag).to_string(),
            mfa: strategy(u, |user| user.mfa),
            quorum: strategy(u, |user| user.quorum),
            cluster_coverage: if u.on_every_hsm() { "full" } else { "inconsistent" },
            hsms,
        }
    }
    let data = to_value(Users { users: list.users.iter().map(row).collect() });
    with_failures(data, list.unanswered.iter().map(|(hsm, e)| (hsm.as_str(), e)))
}

/// `[{"strategy": "token-sign", "status": "enabled"}]` where a user has the
/// key registered on every HSM that holds it (`"inconsistent"` where only
/// some do), `[]` where none.
fn strategy(u: &ClusterUser, registered: impl Fn(&hsm_client::User) -> bool) -> Vec<Value> {
    let held: Vec<bool> = u.per_hsm.iter().filter_map(|(_, user)| user.as_ref().map(&registered)).collect();
    let status = match (held.iter().all(|r| *r), held.iter().any(|r| *r)) {
        (_, false) => return Vec::new(),
        (true, true) => "enabled",
        (false, true) => "inconsistent",
    };
    vec![serde_json::json!({"strategy": "token-sign", "status": status})]
}

fn flag(on: bool) -> &'static str {
    if on { "true" } else { "false" }
}

#[cfg(test)]
mod tests {
    use hsm_client::{ClientError, Merged, User};
    use serde_json::json;

    use super::*;

    #[test]
    fn users_that_differ_between_hsms_print_inconsistent_with_each_hsms_view() {
        let user = |name: &str, role, locked| User { username: name.into(), role, locked, quorum: false, mfa: false };
        let list = UserList {
            users: vec![
                ClusterUser {
                    username: "admin".into(),
                    role: Merged::Consistent(Role::Admin),
                    locked: Merged::Consistent(false),
                    per_hsm: vec![
                        ("a:1".into(), Some(user("admin", Role::Admin, false))),
                        ("b:1".into(), Some(user("admin", Role::Admin, false))),
                    ],
                },
                ClusterUser {
                    username: "bob".into(),
                    role: Merged::Consistent(Role::CryptoUser),
                    locked: Merged::Inconsistent,
                    per_hsm: vec![("a:1".into(), Some(user("bob", Role::CryptoUser, true))), ("b:1".into(), None)],
                },
            ],
            unanswered: vec![("c:1".into(), ClientError::Unavailable("connection refused".into()))],
        };
        assert_eq!(
            users(&list),
            json!({
                "users": [
                    {"username": "admin", "role": "admin", "locked": "false", "mfa": [], "quorum": [], "cluster-coverage": "full"},
                    {"username": "bob", "role": "crypto-user", "locked": "inconsistent", "mfa": [], "quorum": [],
                     "cluster-coverage": "inconsistent",
                     "hsms": [{"hsm": "a:1", "role": "crypto-user", "locked": "true"}, {"hsm": "b:1", "present": false}]}
                ],
                "failed-hsms": [{"hsm": "c:1", "error": "connection refused"}]
            })
        );
    }
}
