//! Login, logout and `/users`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{hash_password, token_of, Auth, Mutation};
use crate::body::{parse_id, JsonBody};
use crate::chassis::{Chassis, Reply};
use crate::error::{ApiError, ApiResult};
use crate::model::{Role, User};

/// The API view of a user: never the hash.
pub fn view(u: &User) -> Value {
    json!({"id": u.id, "username": u.username, "role": u.role})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginReq {
    username: String,
    password: String,
    #[serde(default)]
    force: bool,
}

pub async fn login(State(c): State<Arc<Chassis>>, JsonBody(req): JsonBody<LoginReq>) -> ApiResult<Reply> {
    let (session, user) = c.login(&req.username, &req.password, req.force).await?;
    tracing::info!(user = %user.username, force = req.force, "login");
    Ok(Reply::ok(json!({"token": session.token, "user": view(&user)})))
}

pub async fn logout(State(c): State<Arc<Chassis>>, _a: Auth, headers: HeaderMap) -> Reply {
    if let Some(t) = token_of(&headers, None) {
        c.sessions().logout(&t);
    }
    Reply::no_content()
}

pub async fn list(State(c): State<Arc<Chassis>>, _a: Auth) -> Reply {
    Reply::ok(c.read(|db| db.all::<User>().map(view).collect()))
}

pub async fn one(State(c): State<Arc<Chassis>>, _a: Auth, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_id(&id)?;
    c.read(|db| db.get::<User>(id).map(view)).map(Reply::ok).ok_or(ApiError::not_found("user", id))
}

fn check_username(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty() && name.len() <= 32 && name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid("invalid_username", "a username is 1 to 32 characters of letters, digits, '_', '.' or '-'"))
    }
}

/// Hash off the async threads (argon2 is deliberately slow).
async fn hash(password: &str) -> ApiResult<String> {
    if password.is_empty() || password.len() > 128 {
        return Err(ApiError::invalid("invalid_password", "a password is 1 to 128 bytes"));
    }
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || hash_password(&pw)).await.map_err(|e| ApiError::Storage(e.to_string()))?.map_err(ApiError::Storage)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    password: String,
    role: Role,
}

pub async fn create(State(c): State<Arc<Chassis>>, m: Mutation, JsonBody(req): JsonBody<NewUser>) -> ApiResult<Reply> {
    m.require(Role::Admin, "manage users")?;
    check_username(&req.username)?;
    let password_hash = hash(&req.password).await?;
    c.mutate(&m.0, |tx| {
        if tx.all::<User>().any(|u| u.username == req.username) {
            let taken = ApiError::conflict("username_taken", format!("username '{}' is taken", req.username));
            return Err(tx.refused_insert::<User>(1, taken));
        }
        let user = tx.create(|id| User { id, username: req.username.clone(), role: req.role, password_hash })?;
        tx.emit("user.created", view(&user));
        Ok(Reply::created(view(&user)))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    username: Option<String>,
    password: Option<String>,
    role: Option<Role>,
}

fn admins_besides(tx: &crate::db::Tx, id: u64) -> usize {
    tx.all::<User>().filter(|u| u.id != id && u.role == Role::Admin).count()
}

pub async fn update(
    State(c): State<Arc<Chassis>>,
    m: Mutation,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UserUpdate>,
) -> ApiResult<Reply> {
    m.require(Role::Admin, "manage users")?;
    let id = parse_id(&id)?;
    if let Some(name) = &req.username {
        check_username(name)?;
    }
    let new_hash = match &req.password {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    let reply = c.mutate(&m.0, |tx| {
        let mut user = tx.must::<User>("user", id)?;
        if let Some(name) = &req.username {
            if tx.all::<User>().any(|u| u.id != id && &u.username == name) {
                return Err(ApiError::conflict("username_taken", format!("username '{name}' is taken")));
            }
            user.username = name.clone();
        }
        if let Some(role) = req.role {
            if role != Role::Admin && user.role == Role::Admin && admins_besides(tx, id) == 0 {
                return Err(ApiError::conflict("last_admin", "the last admin account cannot lose its role"));
            }
            user.role = role;
        }
        if let Some(h) = new_hash {
            user.password_hash = h;
        }
        tx.put(user.clone());
        tx.emit("user.updated", view(&user));
        Ok(Reply::ok(view(&user)))
    })?;
    // New name, role or password: the old session no longer stands for this account.
    c.sessions().end_user(id);
    Ok(reply)
}

pub async fn remove(State(c): State<Arc<Chassis>>, m: Mutation, Path(id): Path<String>) -> ApiResult<Reply> {
    m.require(Role::Admin, "manage users")?;
    let id = parse_id(&id)?;
    let reply = c.mutate(&m.0, |tx| {
        let user = tx.must::<User>("user", id)?;
        if user.role == Role::Admin && admins_besides(tx, id) == 0 {
            return Err(ApiError::conflict("last_admin", "the last admin account cannot be deleted"));
        }
        tx.delete::<User>(id);
        tx.emit("user.deleted", json!({"id": id}));
        Ok(Reply::no_content())
    })?;
    c.sessions().end_user(id);
    Ok(reply)
}
