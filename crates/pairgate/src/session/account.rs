//! [`AccountInfo`] and the login answer's shape.
//!
//! The browser's web client was written for a chassis: it expects a login to
//! answer `{"token", "user": {"id", "username", "role"}}` and sends the token back
//! as `Authorization: Bearer`. The gateway answers in exactly that shape, with its
//! own token in place of a chassis one, so the client needs no change.

use serde::{Deserialize, Serialize};

use super::role::Role;

/// Who an account is, as a chassis login reports it in its `user` object (the
/// serde form is that object: `{"id", "username", "role"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    pub username: String,
    /// The chassis user id (equal on both chassis: the gateway allocates IDs).
    #[serde(rename = "id")]
    pub user_id: u64,
    pub role: Role,
}

/// The body of a successful login, in the chassis' shape:
/// `{"token": TOKEN, "user": {"id", "username", "role"}}`.
///
/// The result holds the token: serialize it into the response and nowhere else.
pub fn login_response(token: &str, account: &AccountInfo) -> serde_json::Value {
    serde_json::json!({
        "token": token,
        "user": {
            "id": account.user_id,
            "username": account.username,
            "role": account.role.as_str(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_response_has_the_chassis_shape() {
        let account = AccountInfo { username: "ops".into(), user_id: 7, role: Role::Operator };
        let v = login_response("tok", &account);
        assert_eq!(v, serde_json::json!({"token": "tok", "user": {"id": 7, "username": "ops", "role": "operator"}}));
        // And the chassis' own `user` object parses into an AccountInfo.
        let parsed: Result<AccountInfo, _> = serde_json::from_value(v["user"].clone());
        assert_eq!(parsed.ok(), Some(account));
    }
}
