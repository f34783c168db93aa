//! The `/_sim` fault hooks: what a test does to a chassis to see how the
//! gateway copes. Off unless the chassis was started with `--sim-hooks`, and
//! admin-only even then.
//!
//! - request faults (a tower middleware in front of every route but `/_sim`):
//!   added latency, a random error rate, fail the next N requests before they
//!   are applied, or fail the next N *after* they are applied (the answer is
//!   lost, the change is not: "outcome unknown" for the caller);
//! - connection faults (acted on by the accept loop in [`crate::server`]):
//!   refuse connections for a while (the listening socket is closed), or drop
//!   them for a while (accepted, then closed at once); both cut the
//!   connections already open;
//! - power off: stop answering at once, for good (the binary exits);
//! - the state itself, whatever the firmware's features: `/_sim/export`,
//!   `/_sim/import` and `/_sim/digest` answer as `/system/export`, `/system/import`
//!   and `/system/digest` do on full firmware, so a test harness can load and
//!   inspect a chassis that offers none of them (the gateway never calls `/_sim`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use crate::api::system::off_the_workers;
use crate::auth::Auth;
use crate::body::JsonBody;
use crate::chassis::{Chassis, Reply};
use crate::error::{ApiError, ApiResult};
use crate::model::Role;

/// What a test asks for with `PUT /_sim/faults`. Every field is optional;
/// the body replaces the previous request faults.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSpec {
    /// Added to every request before it is handled.
    pub latency_ms: u64,
    /// A further random delay, uniform in 0..=jitter_ms, before each request
    /// is handled: requests on their way together are handled in a random
    /// order.
    pub jitter_ms: u64,
    /// Probability (0..=1) that a request fails with 500 before it is applied.
    pub error_rate: f64,
    /// The next N requests fail with 503 before they are applied.
    pub fail_next: u32,
    /// The next N requests are applied, then answered with 500.
    pub fail_after_apply_next: u32,
    /// Added to every request after it is handled, before its answer goes
    /// out: a caller that gives up (or dies) meanwhile never learns that
    /// its request was applied.
    pub latency_after_ms: u64,
    /// Refuse connections (closed listening socket) for this long.
    pub refuse_ms: u64,
    /// Accept and immediately close connections for this long.
    pub drop_ms: u64,
}

#[derive(Default)]
struct Active {
    spec: FaultSpec,
    refuse_until: Option<Instant>,
    drop_until: Option<Instant>,
}

/// What the middleware does to one request.
struct Plan {
    latency: Duration,
    latency_after: Duration,
    fail_before: Option<StatusCode>,
    fail_after: bool,
}

pub struct Faults {
    enabled: bool,
    active: Mutex<Active>,
    /// Bumped whenever the accept loop must look again (refuse/drop/power).
    pub changed: watch::Sender<u64>,
    /// Bumped to cut every open connection.
    pub kill: watch::Sender<u64>,
    pub powered_off: watch::Sender<bool>,
}

/// How long after answering a hook request its connection faults start, so
/// the test that asked gets its answer.
const GRACE: Duration = Duration::from_millis(50);

impl Faults {
    pub fn new(enabled: bool) -> Faults {
        Faults {
            enabled,
            active: Mutex::new(Active::default()),
            changed: watch::channel(0).0,
            kill: watch::channel(0).0,
            powered_off: watch::channel(false).0,
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, Active> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Until when connections are refused (None: they are not).
    pub fn refusing(&self) -> Option<Instant> {
        self.active().refuse_until.filter(|t| *t > Instant::now())
    }

    pub fn dropping(&self) -> bool {
        self.active().drop_until.is_some_and(|t| t > Instant::now())
    }

    pub fn is_powered_off(&self) -> bool {
        *self.powered_off.borrow()
    }

    fn plan(&self) -> Plan {
        let mut a = self.active();
        let s = &mut a.spec;
        let mut fail_before = None;
        if s.fail_next > 0 {
            s.fail_next -= 1;
            fail_before = Some(StatusCode::SERVICE_UNAVAILABLE);
        } else if s.error_rate > 0.0 && rand::random::<f64>() < s.error_rate {
            fail_before = Some(StatusCode::INTERNAL_SERVER_ERROR);
        }
        let fail_after = fail_before.is_none() && s.fail_after_apply_next > 0;
        if fail_after {
            s.fail_after_apply_next -= 1;
        }
        let jitter = if s.jitter_ms > 0 { rand::random_range(0..=s.jitter_ms * 1000) } else { 0 };
        Plan {
            latency: Duration::from_millis(s.latency_ms) + Duration::from_micros(jitter),
            latency_after: Duration::from_millis(s.latency_after_ms),
            fail_before,
            fail_after,
        }
    }

    fn set(self: &Arc<Self>, spec: FaultSpec) {
        let now = Instant::now() + GRACE;
        let mut a = self.active();
        a.refuse_until = (spec.refuse_ms > 0).then(|| now + Duration::from_millis(spec.refuse_ms));
        a.drop_until = (spec.drop_ms > 0).then(|| now + Duration::from_millis(spec.drop_ms));
        let cut = spec.refuse_ms > 0 || spec.drop_ms > 0;
        a.spec = spec;
        drop(a);
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(GRACE).await;
            me.changed.send_modify(|g| *g += 1);
            if cut {
                me.kill.send_modify(|g| *g += 1);
            }
        });
    }

    fn power_off(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(GRACE).await;
            me.powered_off.send_replace(true);
            me.changed.send_modify(|g| *g += 1);
            me.kill.send_modify(|g| *g += 1);
        });
    }
}

/// The request-fault middleware.
pub async fn layer(State(c): State<Arc<Chassis>>, req: Request, next: Next) -> Response {
    if !c.faults.enabled {
        return next.run(req).await;
    }
    let plan = c.faults.plan();
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    if let Some(status) = plan.fail_before {
        return ApiError::InjectedFault { status }.into_response();
    }
    let resp = next.run(req).await;
    if !plan.latency_after.is_zero() {
        tokio::time::sleep(plan.latency_after).await;
    }
    if plan.fail_after {
        return ApiError::InjectedFault { status: StatusCode::INTERNAL_SERVER_ERROR }.into_response();
    }
    resp
}

fn hooks(c: &Chassis, a: &Auth) -> ApiResult<()> {
    if !c.faults.enabled {
        return Err(ApiError::NoRoute("/_sim (start the chassis with --sim-hooks)".into()));
    }
    a.require(Role::Admin, "use the simulator's fault hooks")
}

async fn get_faults(State(c): State<Arc<Chassis>>, a: Auth) -> ApiResult<Reply> {
    hooks(&c, &a)?;
    let act = c.faults.active();
    Ok(Reply::ok(
        json!({"spec": act.spec, "refusing": act.refuse_until.is_some_and(|t| t > Instant::now()), "dropping": act.drop_until.is_some_and(|t| t > Instant::now())}),
    ))
}

async fn put_faults(State(c): State<Arc<Chassis>>, a: Auth, JsonBody(spec): JsonBody<FaultSpec>) -> ApiResult<Reply> {
    hooks(&c, &a)?;
    if !(0.0..=1.0).contains(&spec.error_rate) {
        return Err(ApiError::invalid("invalid_fault", "error_rate is a probability between 0 and 1"));
    }
    tracing::warn!(?spec, "fault injection set");
    c.faults.set(spec.clone());
    Ok(Reply::ok(json!({"spec": spec})))
}

async fn clear_faults(State(c): State<Arc<Chassis>>, a: Auth) -> ApiResult<Reply> {
    hooks(&c, &a)?;
    c.faults.set(FaultSpec::default());
    Ok(Reply::no_content())
}

async fn power_off(State(c): State<Arc<Chassis>>, a: Auth) -> ApiResult<Reply> {
    hooks(&c, &a)?;
    tracing::warn!("power off requested through /_sim");
    c.faults.power_off();
    Ok(Reply::ok(json!({"powering_off": true})))
}

/// `GET /_sim/export`: the export document, whatever the features.
async fn sim_export(State(c): State<Arc<Chassis>>, a: Auth) -> ApiResult<Reply> {
    hooks(&c, &a)?;
    Ok(Reply::ok(off_the_workers(&c, |c| c.export()).await?))
}

/// `PUT /_sim/import`: replace the state with an export document, whatever the features.
async fn sim_import(State(c): State<Arc<Chassis>>, a: Auth, JsonBody(doc): JsonBody<serde_json::Value>) -> ApiResult<Reply> {
    hooks(&c, &a)?;
    off_the_workers(&c, move |c| c.import(&doc)).await?.map(Reply::ok)
}

/// `GET /_sim/digest`: the state's digest, whatever the features.
async fn sim_digest(State(c): State<Arc<Chassis>>, a: Auth) -> ApiResult<Reply> {
    hooks(&c, &a)?;
    let (digest, counts) = off_the_workers(&c, |c| c.read(|db| db.digest())).await?;
    Ok(Reply::ok(json!({"digest": digest, "counts": counts})))
}

/// `GET /_sim/counters`: calls this chassis received since it started (not
/// kept across restarts), for tests that count what reached whom.
async fn sim_counters(State(c): State<Arc<Chassis>>, a: Auth) -> ApiResult<Reply> {
    hooks(&c, &a)?;
    Ok(Reply::ok(c.cascade.counters()))
}

/// The `/_sim` routes; `max_import` bounds `/_sim/import`'s document.
pub fn router(max_import: usize) -> Router<Arc<Chassis>> {
    let import = Router::new()
        .route("/_sim/import", axum::routing::put(sim_import))
        .layer(axum::extract::DefaultBodyLimit::max(max_import))
        .layer(axum::Extension(crate::body::BodyLimit(max_import)));
    Router::new()
        .route("/_sim/faults", get(get_faults).put(put_faults).delete(clear_faults))
        .route("/_sim/power_off", post(power_off))
        .route("/_sim/export", get(sim_export))
        .route("/_sim/digest", get(sim_digest))
        .route("/_sim/counters", get(sim_counters))
        .merge(import)
}
