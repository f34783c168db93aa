//! The dashboard at `/_pairgate/`, end to end: a real gateway in front of two
//! real chassis, and the page in a real headless Chromium (Debian's
//! `chromium` and `chromium-driver`, `tests/support/browser.rs`).
//!
//! One operator works in the chassis' web client through the gateway while an
//! integrator watches the dashboard on a 1366×768 screen; the primary chassis
//! is `kill -9`ed: the operator goes on without logging in again, and the
//! dashboard shows the failover live (no reload), then the chassis' return,
//! then takes an admin action with a confirmation. Screenshots are left in
//! `test-artifacts/dashboard_*.png`. A second test checks the dashboard's
//! login, rights and event stream at the HTTP level.

use std::time::Duration;

use futures_util::StreamExt;
use pairgate_suite::api::{client_trusting, wait_window, Api};
use pairgate_suite::browser::{Browser, Res};
use pairgate_suite::http::client_with;
use pairgate_suite::pair::Pair;
use serde_json::{json, Value};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// The chassis card's field `class` for chassis `name`, as the page shows it.
fn card(name: &str, class: &str) -> String {
    format!("return document.querySelector('section.chassis[data-name=\"{name}\"] .{class}')?.textContent ?? null")
}

/// The texts of the timeline's entries of `kind`, newest first.
fn timeline(kind: &str) -> String {
    format!("return [...document.querySelectorAll('#timeline li[data-kind=\"{kind}\"] .text')].map(e => e.textContent)")
}

fn has_text(v: &Value, needle: &str) -> bool {
    v.as_array().is_some_and(|a| a.iter().any(|t| t.as_str().is_some_and(|t| t.contains(needle))))
}

#[tokio::test]
async fn the_dashboard_shows_a_failover_live_while_the_web_client_goes_on() {
    let mut pair = Pair::start().await;
    let admin = pair.gw.login("admin", "admin").await;
    let wall = admin.post("/walls", json!({"name": "Main", "rows": 2, "cols": 2, "outputs": [1, 2, 3, 4]})).await.ok();
    let wall_id = wall.id();
    let win_id =
        admin.post(&format!("/walls/{wall_id}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 1920, "h": 1080})).await.ok().id();
    admin.post("/users", json!({"username": "op", "password": "op-pass-1", "role": "operator"})).await.ok();
    pair.gw.wait_in_sync(SECS(15)).await;

    let mut dash = Browser::start_sized(true, (1366, 768)).await;
    let mut ops = Browser::start_with(true).await;
    let outcome = failover_watched(&mut pair, &dash, &ops, &admin, wall_id, win_id).await;
    if let Err(e) = outcome {
        let _ = dash.save_screenshot("dashboard_failure.png").await;
        let _ = ops.save_screenshot("dashboard_web_client_failure.png").await;
        dash.quit().await;
        ops.quit().await;
        panic!("{e}\n(see test-artifacts/dashboard_failure.png, dashboard_web_client_failure.png and chromedriver-*.log)");
    }
    dash.quit().await;
    ops.quit().await;
}

async fn failover_watched(pair: &mut Pair, dash: &Browser, ops: &Browser, admin: &Api, wall_id: u64, win_id: u64) -> Res<()> {
    let base = pair.gw.base.clone();

    // The integrator logs in to the dashboard with the admin token.
    dash.goto(&format!("{base}/_pairgate/")).await?;
    let token = dash.wait_css("#token", SECS(15)).await?;
    dash.send_keys(&token, &pair.gw.admin_token).await?;
    dash.click_css("#login-token").await?;
    dash.wait_script(&card("a", "state"), json!("in_sync"), SECS(15)).await?;
    dash.wait_script(&card("b", "state"), json!("in_sync"), SECS(15)).await?;
    // Which chassis is primary depends on which came in sync first: `p` is killed, `q` takes over.
    let p = pair.gw.status().await.ok_or("no status")?["primary"].as_str().ok_or("no primary")?.to_string();
    let q = if p == "a" { "b" } else { "a" }.to_string();
    dash.wait_script("return document.querySelector('#primary').textContent", json!(p), SECS(5)).await?;
    dash.wait_script("return document.querySelector('#live').textContent", json!("live"), SECS(5)).await?;
    let health = dash.exec("return document.querySelector('#health').textContent", json!([])).await?;
    if !health.as_str().unwrap_or("").starts_with("healthy") {
        return Err(format!("a healthy pair shows as {health}"));
    }
    // Both chassis side by side, nothing cut off, on a 1366×768 screen.
    let fit = dash
        .exec(
            "const cards = [...document.querySelectorAll('section.chassis')].map(c => c.getBoundingClientRect());
             return {cards: cards.length, width: document.documentElement.scrollWidth, inner: innerWidth,
                     side_by_side: cards.length === 2 && cards[0].top === cards[1].top && cards[0].right <= cards[1].left,
                     bottom: Math.max(...cards.map(c => c.bottom)), height: innerHeight};",
            json!([]),
        )
        .await?;
    if fit["cards"] != 2
        || fit["side_by_side"] != true
        || fit["width"].as_f64() > fit["inner"].as_f64()
        || fit["bottom"].as_f64() > fit["height"].as_f64()
    {
        return Err(format!("the dashboard does not fit a 1366x768 screen: {fit}"));
    }
    // Each chassis' certificate and its expiry (the harness' are rcgen's default, far off), not warned about.
    for name in ["a", "b"] {
        let cert = dash.exec(&card(name, "cert"), json!([])).await?;
        let warned = dash
            .exec(
                &format!("return document.querySelector('section.chassis[data-name=\"{name}\"] .cert').classList.contains('warn')"),
                json!([]),
            )
            .await?;
        if !cert.as_str().unwrap_or("").starts_with("expires ")
            || !cert.as_str().unwrap_or("").ends_with(" days)")
            || warned != json!(false)
        {
            return Err(format!("chassis {name}'s certificate shows as {cert}"));
        }
    }
    // Marks this page: a reload would lose it.
    dash.exec("window.__same_page = 'yes'; return null", json!([])).await?;
    dash.save_screenshot("dashboard_healthy.png").await?;

    // The operator logs in to the chassis' web client through the gateway and moves a window.
    ops.log_in_to_web_client(&base, "op", "op-pass-1").await?;
    let opt = ops.wait_css(&format!("#wall-select option[value=\"{wall_id}\"]"), SECS(15)).await?;
    ops.click(&opt).await?;
    let sel = format!(".window[data-id=\"{win_id}\"]");
    ops.wait_css(&sel, SECS(15)).await?;
    ops.drag(&ops.find(&sel).await?, 200, 150).await?;
    let moved = wait_window(admin, wall_id, win_id, SECS(10), |w| w["x"].as_u64() > Some(0) && w["y"].as_u64() > Some(0)).await?;

    // kill -9 of the primary chassis.
    let primary = if p == "a" { &mut pair.a } else { &mut pair.b };
    primary.kill9();

    // The dashboard shows it live: p down, q primary, the failover on the timeline; the same page.
    dash.wait_script(&card(&p, "state"), json!("down"), SECS(10)).await?;
    dash.wait_script("return document.querySelector('#primary').textContent", json!(q), SECS(10)).await?;
    dash.wait_for(&timeline("failover"), SECS(10), |v| has_text(v, &format!("primary chassis {p} → chassis {q}"))).await?;
    dash.wait_for(&timeline("state"), SECS(5), |v| has_text(v, &format!("chassis {p}: in_sync → down"))).await?;
    dash.wait_script("return window.__same_page ?? 'reloaded'", json!("yes"), SECS(1)).await?;
    let health = dash.exec("return document.querySelector('#health').textContent", json!([])).await?;
    if !health.as_str().unwrap_or("").starts_with("degraded") {
        return Err(format!("with chassis a dead the dashboard says {health}"));
    }
    dash.save_screenshot("dashboard_failover.png").await?;

    // The operator moves the window again: no login form, the move lands (on q).
    let login_shown = ops.exec("const u = document.querySelector('#username'); return !!u && u.offsetParent !== null", json!([])).await?;
    if login_shown != json!(false) {
        return Err("the web client asks for a login again after the failover".into());
    }
    let (x0, y0) = (moved["x"].as_u64().unwrap_or(0), moved["y"].as_u64().unwrap_or(0));
    ops.drag(&ops.find(&sel).await?, -100, -60).await?;
    wait_window(admin, wall_id, win_id, SECS(10), |w| w["x"].as_u64() < Some(x0) && w["y"].as_u64() < Some(y0)).await?;
    let login_shown = ops.exec("const u = document.querySelector('#username'); return !!u && u.offsetParent !== null", json!([])).await?;
    if login_shown != json!(false) {
        return Err("the web client asked for a login again to move the window".into());
    }
    ops.save_screenshot("dashboard_web_client_after_failover.png").await?;

    // Chassis p comes back: the dashboard follows it to in_sync.
    let primary = if p == "a" { &mut pair.a } else { &mut pair.b };
    primary.restart().await;
    dash.wait_script(&card(&p, "state"), json!("in_sync"), SECS(40)).await?;
    dash.wait_for(&timeline("state"), SECS(5), |v| has_text(v, &format!("chassis {p}: catching_up → in_sync"))).await?;

    // An admin action as a button, with a confirmation: make p primary again.
    let button = format!("section.chassis[data-name=\"{p}\"] .act-primary");
    dash.click_css(&button).await?;
    dash.wait_script("return document.querySelector('#confirm').open", json!(true), SECS(5)).await?;
    let question = dash.exec("return document.querySelector('#confirm-text').textContent", json!([])).await?;
    if !question.as_str().unwrap_or("").contains(&format!("chassis {p} the primary")) {
        return Err(format!("the confirmation asks {question}"));
    }
    // Cancelled first: nothing happens.
    dash.click_css("#confirm-no").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = pair.gw.status().await.ok_or("no status")?;
    if status["primary"] != json!(q) {
        return Err(format!("a cancelled action changed the primary: {status}"));
    }
    dash.click_css(&button).await?;
    dash.wait_script("return document.querySelector('#confirm').open", json!(true), SECS(5)).await?;
    dash.click_css("#confirm-yes").await?;
    dash.wait_script("return document.querySelector('#primary').textContent", json!(p), SECS(10)).await?;
    dash.wait_for(&timeline("admin"), SECS(5), |v| has_text(v, &format!("chassis {p} made primary by the admin token"))).await?;
    let status = pair.gw.status().await.ok_or("no status")?;
    if status["primary"] != json!(p) {
        return Err(format!("the dashboard's action did not make a primary: {status}"));
    }
    dash.wait_script("return window.__same_page ?? 'reloaded'", json!("yes"), SECS(1)).await?;
    dash.save_screenshot("dashboard_after.png").await?;
    Ok(())
}

/// One `event:`/`data:` block of a Server-Sent Events stream.
#[derive(Debug)]
struct Sse {
    event: String,
    data: Value,
}

/// Read blocks from `body` until one satisfies `pred`, at most `limit`.
async fn next_sse<S, B>(body: &mut S, buf: &mut String, limit: Duration, pred: impl Fn(&Sse) -> bool) -> Result<Sse, String>
where
    S: futures_util::Stream<Item = Result<B, reqwest::Error>> + Unpin,
    B: AsRef<[u8]>,
{
    let deadline = tokio::time::Instant::now() + limit;
    for _ in 0..10_000 {
        while let Some(cut) = buf.find("\n\n") {
            let block: String = buf.drain(..cut + 2).collect();
            let mut sse = Sse { event: String::new(), data: Value::Null };
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    sse.event = e.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    sse.data = serde_json::from_str(d.trim()).map_err(|e| format!("data is not JSON: {e}: {d}"))?;
                }
            }
            if pred(&sse) {
                return Ok(sse);
            }
        }
        match tokio::time::timeout_at(deadline, body.next()).await {
            Err(_) => return Err(format!("no such event within {limit:?}")),
            Ok(None) => return Err("the stream ended".into()),
            Ok(Some(Err(e))) => return Err(format!("the stream broke: {e}")),
            Ok(Some(Ok(chunk))) => buf.push_str(&String::from_utf8_lossy(chunk.as_ref())),
        }
    }
    Err("too many events".into())
}

#[tokio::test]
async fn the_dashboard_logs_in_admins_only_and_streams_status_and_timeline() {
    let pair = Pair::start().await;
    let admin = pair.gw.login("admin", "admin").await;
    admin.post("/users", json!({"username": "op", "password": "op-pass-1", "role": "operator"})).await.ok();
    pair.gw.wait_in_sync(SECS(15)).await;
    let http = client_trusting(Some(&pair.gw.cert));
    let url = |p: &str| format!("{}{p}", pair.gw.base);

    // The page and its files: no login, a policy that allows nothing from elsewhere, nothing from a CDN.
    for (path, ct) in
        [("/_pairgate/", "text/html"), ("/_pairgate/dashboard.js", "text/javascript"), ("/_pairgate/dashboard.css", "text/css")]
    {
        let r = http.get(url(path)).send().await.expect(path);
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert!(h["content-type"].to_str().unwrap().starts_with(ct), "{path}: {:?}", h["content-type"]);
        assert!(h["content-security-policy"].to_str().unwrap().contains("default-src 'none'"), "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("http://") && !body.contains("https://"), "{path} loads something from elsewhere");
    }
    let r = http.get(url("/_pairgate")).send().await.unwrap();
    assert_eq!(r.status(), 200, "/_pairgate is redirected to the page");
    assert_eq!(r.url().path(), "/_pairgate/");

    // Wrong token, operator account: refused. The operator's session is not kept.
    let login = |body: Value| http.post(url("/_pairgate/login")).json(&body).send();
    let r = login(json!({"token": "not-the-token"})).await.unwrap();
    assert_eq!(r.status(), 401);
    let sessions_before = pair.gw.status().await.unwrap()["sessions"].as_u64().unwrap();
    let r = login(json!({"username": "op", "password": "op-pass-1"})).await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "forbidden", "{v}");
    assert_eq!(pair.gw.status().await.unwrap()["sessions"].as_u64().unwrap(), sessions_before, "the operator's session was ended");
    let r = login(json!({"username": "admin", "password": "wrong"})).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = login(json!({"nonsense": true})).await.unwrap();
    assert_eq!(r.status(), 400);
    // An operator's own gateway session does not open the admin pages either.
    let r = http.get(url("/_pairgate/status")).bearer_auth(&admin_of(&pair, "op", "op-pass-1").await).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // An admin account: a bearer for the status page, the actions and the stream.
    let v: Value = login(json!({"username": "admin", "password": "admin"})).await.unwrap().json().await.unwrap();
    let bearer = v["token"].as_str().expect("a token").to_string();
    assert_eq!(v["who"], "admin account admin");
    let r = http.get(url("/_pairgate/status")).bearer_auth(&bearer).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // The stream outlives the harness client's 30 s bound on a request.
    let streaming = client_with(Some(&pair.gw.cert), SECS(180), None).unwrap();
    let r = streaming.get(url("/_pairgate/events")).bearer_auth(&bearer).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut body = r.bytes_stream();
    let mut buf = String::new();
    // What happened at the start is on the timeline: both chassis came in sync, a became primary.
    next_sse(&mut body, &mut buf, SECS(5), |e| e.event == "timeline" && e.data["text"] == "chassis b: catching_up → in_sync")
        .await
        .unwrap();
    let status = next_sse(&mut body, &mut buf, SECS(5), |e| e.event == "status").await.unwrap();
    assert!(status.data["primary"] == "a" || status.data["primary"] == "b", "{:?}", status.data);
    assert_eq!(status.data["chassis"][0]["state"], "in_sync", "{:?}", status.data);
    assert_eq!(status.data["chassis"][1]["maintenance"], false);

    // An action by this account: on the stream within a moment, named by who took it, and in the status.
    let r = http.post(url("/_pairgate/maintenance/b")).bearer_auth(&bearer).json(&json!({"on": true})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let e = next_sse(&mut body, &mut buf, SECS(5), |e| e.event == "timeline" && e.data["kind"] == "admin").await.unwrap();
    assert_eq!(e.data["text"], "chassis b taken out for maintenance by admin account admin", "{:?}", e.data);
    assert_eq!(e.data["chassis"], "b");
    let held = |e: &Sse| e.event == "status" && e.data["chassis"][1]["maintenance"] == true && e.data["chassis"][1]["state"] == "down";
    next_sse(&mut body, &mut buf, SECS(5), |e| e.event == "timeline" && e.data["text"] == "chassis b: in_sync → down").await.unwrap();
    next_sse(&mut body, &mut buf, SECS(5), held).await.unwrap();
    let r = http.post(url("/_pairgate/maintenance/b")).bearer_auth(&bearer).json(&json!({"on": false})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let back =
        next_sse(&mut body, &mut buf, SECS(30), |e| e.event == "timeline" && e.data["text"] == "chassis b: catching_up → in_sync").await;
    if let Err(e) = back {
        let t: Value = http.get(url("/_pairgate/timeline")).bearer_auth(&bearer).send().await.unwrap().json().await.unwrap();
        panic!("{e}: chassis b did not come back in sync: timeline {t:#}, status {:#}", pair.gw.status().await.unwrap_or_default());
    }
    let timeline: Value = http.get(url("/_pairgate/timeline")).bearer_auth(&bearer).send().await.unwrap().json().await.unwrap();
    assert!(has_text(
        &json!(timeline.as_array().unwrap().iter().map(|e| e["text"].clone()).collect::<Vec<_>>()),
        "brought back from maintenance"
    ));

    // Logged out: the bearer stops working, and the open stream ends.
    let r = http.post(url("/_pairgate/logout")).bearer_auth(&bearer).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = http.get(url("/_pairgate/status")).bearer_auth(&bearer).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let end = next_sse(&mut body, &mut buf, SECS(5), |_| false).await.unwrap_err();
    assert_eq!(end, "the stream ended");
}

/// A gateway session token of `user` (logged in at the gateway as any client does).
async fn admin_of(pair: &Pair, user: &str, password: &str) -> String {
    pair.gw.login(user, password).await.token.expect("a session token")
}
