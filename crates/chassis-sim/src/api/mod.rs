//! The HTTP API of docs/chassis-api.md, one file per resource family.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;

use crate::body::BodyLimit;
use crate::chassis::Chassis;
use crate::error::{ApiError, ApiResult};

pub mod cascade;
pub mod events;
pub mod kvm;
pub mod matrix;
pub mod sources;
pub mod system;
pub mod users;
pub mod walls;

/// Every route under `/api/v1`.
pub fn router(chassis: Arc<Chassis>) -> Router {
    let limit = chassis.cfg.max_body;
    let import_limit = chassis.cfg.max_import;
    let import = Router::new()
        .route("/system/import", put(system::import))
        .layer(DefaultBodyLimit::max(import_limit))
        .layer(axum::Extension(BodyLimit(import_limit)));
    let mut api = Router::new()
        .route("/login", post(users::login))
        .route("/logout", post(users::logout))
        .route("/system/info", get(system::info))
        .route("/system/health", get(system::health))
        .route("/system/export", get(system::export))
        .route("/users", get(users::list).post(users::create))
        .route("/users/{id}", get(users::one).put(users::update).delete(users::remove))
        .route("/sources", get(sources::list).post(sources::create))
        .route("/sources/{id}", get(sources::one).put(sources::update).delete(sources::remove))
        .route("/walls", get(walls::list).post(walls::create))
        .route("/walls/{id}", get(walls::one).put(walls::update).delete(walls::remove))
        .route("/walls/{id}/windows", get(walls::windows).post(walls::open_window).delete(walls::clear))
        .route("/walls/{id}/windows/{wid}", get(walls::window).put(walls::update_window).delete(walls::close_window))
        .route("/walls/{id}/windows/{wid}/raise", post(walls::raise))
        .route("/walls/{id}/scenes", get(walls::scenes).post(walls::save_scene))
        .route("/scenes/{id}", get(walls::scene).delete(walls::delete_scene))
        .route("/scenes/{id}/recall", post(walls::recall))
        .route("/hardware/outputs", get(walls::hardware_outputs))
        .route("/matrix", get(matrix::routes))
        .route("/matrix/{output}", put(matrix::set_route))
        .route("/plans", get(matrix::plans).post(matrix::create_plan))
        .route("/plans/{id}", get(matrix::plan).delete(matrix::delete_plan))
        .route("/plans/{id}/run", post(matrix::run_plan))
        .route("/schedules", get(matrix::schedules).post(matrix::create_schedule))
        .route("/schedules/{id}", get(matrix::schedule).put(matrix::update_schedule).delete(matrix::delete_schedule))
        .route("/kvm/hosts", get(kvm::hosts).post(kvm::create_host))
        .route("/kvm/hosts/{id}", get(kvm::host).delete(kvm::delete_host))
        .route("/kvm/seats", get(kvm::seats).post(kvm::create_seat))
        .route("/kvm/seats/{id}", get(kvm::seat).put(kvm::switch_seat).delete(kvm::delete_seat))
        .route("/cascade/superior", get(cascade::superior).put(cascade::set_superior))
        .route("/cascade/subordinates", get(cascade::subordinates).post(cascade::register))
        .route("/cascade/links", get(cascade::links))
        .route("/cascade/links/{n}", put(cascade::set_link))
        .route("/events", get(events::socket));
    // Firmware without the digest has no such route: 404 like any unknown
    // path, with or without a session.
    if chassis.cfg.features.digest {
        api = api.route("/system/digest", get(system::digest));
    }
    let api = api
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::Extension(BodyLimit(limit)))
        .merge(import)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route);
    Router::new().nest("/api/v1", api).with_state(chassis)
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute(uri.path().chars().take(200).collect())
}

/// A display name: 1 to 64 characters, not only spaces.
pub fn check_name(name: &str, what: &'static str) -> ApiResult<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::invalid("invalid_name", format!("{what} must be 1 to 64 characters")));
    }
    Ok(trimmed.to_string())
}
