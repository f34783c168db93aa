//! The operator web client, end to end: a real `chassis-sim`, a real headless
//! Chromium, driven through chromedriver's W3C WebDriver HTTP protocol.
//!
//! Needs Debian's `chromium` and `chromium-driver` (or `CHROMIUM_BIN` and
//! `CHROMEDRIVER_BIN` pointing elsewhere). Leaves screenshots in
//! `test-artifacts/` (web_client*.png) and chromedriver's log next to them.
//! The browser itself is `tests/support/browser.rs`.

use std::time::{Duration, Instant};

use pairgate_suite::api::{wait_window, Api};
use pairgate_suite::bins::artifacts_dir;
use pairgate_suite::browser::{Browser, Res};
use pairgate_suite::chassis_proc::{SimOpts, SimProcess};
use pairgate_suite::pair::Pair;
use serde_json::{json, Value};

#[tokio::test]
async fn web_client_logs_in_drags_a_window_and_follows_events() {
    let sim = SimProcess::start(SimOpts::default()).await;
    let admin = Api::login(&sim.base, "admin", "admin").await;

    let wall = admin.post("/walls", json!({"name": "Main", "rows": 2, "cols": 2, "outputs": [1, 2, 3, 4]})).await.ok();
    let wall_id = wall.id();
    let (wall_w, wall_h) = (2 * wall.body["screen_width"].as_u64().unwrap(), 2 * wall.body["screen_height"].as_u64().unwrap());
    let win_id =
        admin.post(&format!("/walls/{wall_id}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 1920, "h": 1080})).await.ok().id();
    // The browser logs in as its own account: one live session per account.
    admin.post("/users", json!({"username": "op", "password": "op-pass-1", "role": "operator"})).await.ok();

    let mut browser = Browser::start().await;
    let outcome = run_ui(&browser, &sim.base, &admin, wall_id, win_id, (wall_w, wall_h), None, "web_client.png").await;
    if let Err(e) = outcome {
        if let Ok(png) = browser.screenshot().await {
            let _ = std::fs::write(artifacts_dir().join("web_client_failure.png"), png);
        }
        let status = browser.exec("return document.querySelector('#status')?.textContent", json!([])).await.unwrap_or(Value::Null);
        browser.quit().await;
        panic!("{e}\n(status bar: {status}; see test-artifacts/web_client_failure.png and chromedriver.log)");
    }
    browser.quit().await;
}

/// Drive the page at `base`: log in, pick the wall, drag a window, see a live
/// update. With `kill`, that chassis is killed (-9) after the drag and
/// before the live update: through the gateway the page must not notice.
#[allow(clippy::too_many_arguments)]
async fn run_ui(
    b: &Browser,
    base: &str,
    admin: &Api,
    wall_id: u64,
    win_id: u64,
    (wall_w, wall_h): (u64, u64),
    kill: Option<&mut SimProcess>,
    shot: &str,
) -> Res<()> {
    let secs = Duration::from_secs;

    // Log in through the form.
    b.log_in_to_web_client(base, "op", "op-pass-1").await?;

    // Pick the wall.
    let opt = b.wait_css(&format!("#wall-select option[value=\"{wall_id}\"]"), secs(15)).await?;
    b.click(&opt).await?;
    b.wait_script("return document.querySelector('#wall-select').value", json!(wall_id.to_string()), secs(5)).await?;

    // The window is drawn, and the event socket is open.
    let sel = format!(".window[data-id=\"{win_id}\"]");
    b.wait_css(&sel, secs(15)).await?;
    b.wait_script("return document.querySelector('#ws-state').textContent", json!("live"), secs(15)).await?;

    // Drag it; the chassis must see a move right and down, still inside the wall.
    let el = b.find(&sel).await?;
    b.drag(&el, 200, 150).await?;
    let moved =
        wait_window(admin, wall_id, win_id, secs(10), |w| w["x"].as_u64().unwrap_or(0) > 0 && w["y"].as_u64().unwrap_or(0) > 0).await?;
    let (x, y, w, h) =
        (moved["x"].as_u64().unwrap(), moved["y"].as_u64().unwrap(), moved["w"].as_u64().unwrap(), moved["h"].as_u64().unwrap());
    println!("window {win_id} after the drag: {w}x{h} at ({x}, {y}) on a {wall_w}x{wall_h} wall");
    if x + w > wall_w || y + h > wall_h || (w, h) != (1920, 1080) {
        return Err(format!("the drag left window {win_id} at {moved}, outside a {wall_w}x{wall_h} wall or resized"));
    }

    if let Some(chassis) = kill {
        chassis.kill9();
        // Let the gateway notice (health probes) and move the event socket.
        tokio::time::sleep(secs(2)).await;
    }

    // Live update: a window opened elsewhere shows up without a reload.
    let new_id = admin
        .post(&format!("/walls/{wall_id}/windows"), json!({"source_id": 2, "x": 1920, "y": 1080, "w": 1920, "h": 1080}))
        .await
        .ok()
        .id();
    b.wait_css(&format!(".window[data-id=\"{new_id}\"]"), secs(10)).await?;

    // No error in the status bar.
    let status_class = b.exec("return document.querySelector('#status').className", json!([])).await?;
    if status_class.as_str().unwrap_or("").contains("error") {
        let text = b.exec("return document.querySelector('#status').textContent", json!([])).await?;
        return Err(format!("status bar shows an error: {text}"));
    }

    // Screenshot for a human.
    let png = b.screenshot().await?;
    let path = artifacts_dir().join(shot);
    std::fs::write(&path, &png).map_err(|e| format!("write {}: {e}", path.display()))?;
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") || png.len() < 5_000 {
        return Err(format!("screenshot is not a real PNG ({} bytes)", png.len()));
    }
    println!("screenshot: {} ({} bytes)", path.display(), png.len());
    Ok(())
}

/// The same page, unchanged, served through the gateway (plain HTTP on
/// loopback for the browser, HTTPS to both chassis), with the primary chassis
/// killed half-way: the operator sees nothing happen.
#[tokio::test]
async fn web_client_works_through_the_gateway_while_a_chassis_dies() {
    let mut pair = Pair::start_with(|t| {
        let start = t.find("tls_cert = ").expect("tls_cert line");
        let end = t[start..].find("[state]").map(|e| start + e).expect("[state]");
        t.replace_range(start..end, "insecure_http = true\n");
    })
    .await;
    let admin = pair.gw.login("admin", "admin").await;
    let wall = admin.post("/walls", json!({"name": "Main", "rows": 2, "cols": 2, "outputs": [1, 2, 3, 4]})).await.ok();
    let wall_id = wall.id();
    let win_id =
        admin.post(&format!("/walls/{wall_id}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 1920, "h": 1080})).await.ok().id();
    admin.post("/users", json!({"username": "op", "password": "op-pass-1", "role": "operator"})).await.ok();
    pair.gw.wait_in_sync(Duration::from_secs(10)).await;

    let mut browser = Browser::start().await;
    let base = pair.gw.base.clone();
    let outcome = run_ui(&browser, &base, &admin, wall_id, win_id, (3840, 2160), Some(&mut pair.a), "web_client_gateway.png").await;
    if let Err(e) = outcome {
        if let Ok(png) = browser.screenshot().await {
            let _ = std::fs::write(artifacts_dir().join("web_client_gateway_failure.png"), png);
        }
        browser.quit().await;
        panic!("{e}");
    }
    browser.quit().await;
    let status = pair.gw.status().await.expect("status");
    assert_eq!(status["primary"], "b", "{status}");
}

/// Poll one chassis' API (bounded) until `GET path` answers 200 with a body
/// satisfying `pred`; that body.
async fn wait_api(api: &Api, path: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Res<Value> {
    let start = Instant::now();
    let mut last = Value::Null;
    for _ in 0..200 {
        let r = api.get(path).await;
        if r.status == 200 && pred(&r.body) {
            return Ok(r.body);
        }
        last = json!({"status": r.status, "body": r.body});
        if start.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("GET {path} on {} never matched within {limit:?}; last {last}", api.base))
}

const NEW_WALL: &str = "Lobby wall";
const REFUSED_WALL: &str = "Refused wall";
const RENAMED_SOURCE: (u64, &str) = (3, "Desk camera 3");

/// The configuration pages, through the gateway over HTTPS: log in as
/// admin, create a wall (1×2 on outputs 5 and 6), see a create the chassis
/// refuses (output 5 again) shown with its status and code, rename source 3.
/// The new wall's id as the page shows it.
async fn configure_ui(b: &Browser, base: &str) -> Res<u64> {
    let secs = Duration::from_secs;

    b.log_in_to_web_client(base, "admin", "admin").await?;
    // Logged in, live events over wss through the gateway.
    b.wait_script("return document.querySelector('#ws-state').textContent", json!("live"), secs(15)).await?;

    // Walls: the create form, shown to an admin.
    b.click_css("#tabs .tab[data-tab=\"walls\"]").await?;
    b.wait_script("return document.querySelector('#wall-form').offsetParent !== null", json!(true), secs(5)).await?;
    b.fill("#wall-name", NEW_WALL).await?;
    b.fill("#wall-rows", "1").await?;
    b.fill("#wall-cols", "2").await?;
    b.fill("#wall-outputs", "5, 6").await?;
    b.click_css("#wall-create-btn").await?;
    let find_row = format!(
        "const r = [...document.querySelectorAll('#wall-table tbody tr')]
           .find((tr) => tr.querySelector('td.name').textContent === {NEW_WALL:?});
         return r ? Number(r.dataset.id) : null;"
    );
    let wall_id = b
        .wait_for(&find_row, secs(10), |v| v.is_u64())
        .await
        .map_err(|e| format!("the new wall never showed in the wall list: {e}"))?
        .as_u64()
        .unwrap_or(0);
    let (class, text) = b.status_bar().await?;
    if !class.contains("ok") || !text.contains(NEW_WALL) {
        return Err(format!("after the create the status bar says [{class}] {text}"));
    }
    let form_error = b.exec("return document.querySelector('#wall-form .form-error').hidden", json!([])).await?;
    if form_error != json!(true) {
        return Err("the wall form shows an error after a create that succeeded".into());
    }
    b.save_screenshot("web_client_gateway_wall.png").await?;

    // A create the chassis refuses: output 5 drives the new wall already.
    b.fill("#wall-name", REFUSED_WALL).await?;
    b.fill("#wall-rows", "1").await?;
    b.fill("#wall-cols", "1").await?;
    b.fill("#wall-outputs", "5").await?;
    b.click_css("#wall-create-btn").await?;
    let err = b
        .wait_for(
            "const e = document.querySelector('#wall-form .form-error');
             return e.hidden ? null : [e.dataset.status, e.dataset.code, e.textContent];",
            secs(10),
            |v| v.is_array(),
        )
        .await
        .map_err(|e| format!("the refused create showed no error in the form: {e}"))?;
    let (status, code, text) = (err[0].as_str().unwrap_or(""), err[1].as_str().unwrap_or(""), err[2].as_str().unwrap_or(""));
    println!("refused create shown as: {text}");
    if status != "409" || code != "output_in_use" || !text.contains("409") || !text.contains("output_in_use") || !text.contains("output 5")
    {
        return Err(format!("the refusal shows as status {status:?}, code {code:?}, text {text:?}"));
    }
    let (class, _) = b.status_bar().await?;
    if !class.contains("error") {
        return Err(format!("after a refusal the status bar is [{class}]"));
    }
    b.save_screenshot("web_client_gateway_refused.png").await?;

    // Sources: rename source 3 through its edit form.
    let (sid, new_name) = RENAMED_SOURCE;
    b.click_css("#tabs .tab[data-tab=\"sources\"]").await?;
    let edit = b.wait_css(&format!("#source-table tbody tr[data-id=\"{sid}\"] .edit-btn"), secs(10)).await?;
    b.click(&edit).await?;
    b.wait_script("return document.querySelector('#source-edit-form').offsetParent !== null", json!(true), secs(5)).await?;
    b.fill("#source-edit-name", new_name).await?;
    b.click_css("#source-save-btn").await?;
    let name_now =
        format!("return document.querySelector('#source-table tbody tr[data-id=\"{sid}\"] td.name')?.firstChild?.textContent ?? null");
    b.wait_script(&name_now, json!(new_name), secs(10)).await.map_err(|e| format!("the source list never showed the new name: {e}"))?;
    // The operate page's source picker follows.
    let picker = format!("return document.querySelector('#source-select option[value=\"{sid}\"]')?.textContent ?? null");
    b.wait_for(&picker, secs(10), |v| v.as_str().is_some_and(|t| t.contains(new_name))).await?;
    let (class, text) = b.status_bar().await?;
    if !class.contains("ok") || !text.contains(new_name) {
        return Err(format!("after the rename the status bar says [{class}] {text}"));
    }
    b.save_screenshot("web_client_gateway_source.png").await?;
    Ok(wall_id)
}

/// The configuration a newcomer needs, made in the browser through the
/// gateway (HTTPS, as deployed), lands on both chassis with the same IDs.
#[tokio::test]
async fn web_client_configures_both_chassis_through_the_gateway() {
    let started = Instant::now();
    let pair = Pair::start().await;
    let mut browser = Browser::start_with(true).await;
    let base = pair.gw.base.clone();
    let outcome = configure_ui(&browser, &base).await;
    let wall_id = match outcome {
        Ok(id) => id,
        Err(e) => {
            if let Ok(png) = browser.screenshot().await {
                let _ = std::fs::write(artifacts_dir().join("web_client_gateway_config_failure.png"), png);
            }
            let status = browser.status_bar().await.unwrap_or_default();
            browser.quit().await;
            panic!("{e}\n(status bar: {status:?}; see test-artifacts/web_client_gateway_config_failure.png and chromedriver.log)");
        }
    };
    browser.quit().await;

    // Both chassis, read directly: the wall (same id, geometry, outputs), the
    // new source name, and nothing of the refused create.
    pair.gw.wait_in_sync(Duration::from_secs(15)).await;
    let (sid, new_name) = RENAMED_SOURCE;
    for i in 0..2 {
        let d = pair.direct(i).await;
        let walls =
            wait_api(&d, "/walls", Duration::from_secs(10), |v| v.as_array().is_some_and(|a| a.iter().any(|w| w["name"] == NEW_WALL)))
                .await
                .unwrap_or_else(|e| panic!("chassis {i}: {e}"));
        let walls = walls.as_array().unwrap();
        let wall = walls.iter().find(|w| w["name"] == NEW_WALL).unwrap();
        assert_eq!(wall["id"], json!(wall_id), "chassis {i}: the wall's id differs from the page's: {wall}");
        assert_eq!((wall["rows"].clone(), wall["cols"].clone()), (json!(1), json!(2)), "chassis {i}: {wall}");
        let outputs: Vec<u64> = wall["screens"].as_array().unwrap().iter().map(|s| s["output"].as_u64().unwrap()).collect();
        assert_eq!(outputs, vec![5, 6], "chassis {i}: {wall}");
        assert!(!walls.iter().any(|w| w["name"] == REFUSED_WALL), "chassis {i} holds the refused wall: {walls:?}");
        let source = wait_api(&d, &format!("/sources/{sid}"), Duration::from_secs(10), |v| v["name"] == new_name)
            .await
            .unwrap_or_else(|e| panic!("chassis {i}: {e}"));
        assert_eq!(source["kind"], "hdmi", "chassis {i}: {source}");
    }
    pair.assert_identical(Duration::from_secs(10)).await;
    println!("configured through the gateway in {:?}", started.elapsed());
}

/// Click the `<option>` whose value is `value` in the select `css` (a real
/// pick: the select's change handler runs).
async fn pick(b: &Browser, css: &str, value: &str) -> Res<()> {
    b.click_css(&format!("{css} option[value=\"{value}\"]")).await
}

/// Wait (bounded) until the form error `css` shows a refusal with `code`.
async fn wait_refusal(b: &Browser, css: &str, status: &str, code: &str) -> Res<String> {
    let q = format!(
        "const e = document.querySelector({css:?}); return e && !e.hidden ? [e.dataset.status, e.dataset.code, e.textContent] : null;"
    );
    let v = b.wait_for(&q, Duration::from_secs(10), |v| v.is_array()).await.map_err(|e| format!("no refusal shown in {css}: {e}"))?;
    let text = v[2].as_str().unwrap_or("").to_string();
    if v[0] != json!(status) || v[1] != json!(code) || !text.contains(status) || !text.contains(code) {
        return Err(format!("{css} shows {v}, not {status} {code}"));
    }
    Ok(text)
}

/// Click a confirm-on-second-click delete button (`css`), both clicks.
async fn delete_twice(b: &Browser, css: &str) -> Res<()> {
    b.wait_css(css, Duration::from_secs(10)).await?;
    b.click_css(css).await?;
    b.wait_script(&format!("return document.querySelector({css:?})?.textContent ?? null"), json!("Confirm"), Duration::from_secs(5))
        .await?;
    b.click_css(css).await
}

/// The id of the row of `table` whose `td.name` text starts with `name`.
fn row_id_script(table: &str, name: &str) -> String {
    format!(
        "const r = [...document.querySelectorAll('{table} tbody tr')]
           .find((tr) => (tr.querySelector('td.name')?.firstChild?.textContent ?? '') === {name:?});
         return r ? Number(r.dataset.id) : null;"
    )
}

/// The rest of the configuration pages against one chassis, each change
/// checked in the chassis' API (read as a second admin account, so the
/// browser's admin session is never pre-empted).
async fn configure_rest(b: &Browser, base: &str, api: &Api) -> Res<()> {
    let secs = Duration::from_secs;
    b.log_in_to_web_client(base, "admin", "admin").await?;
    b.wait_script("return document.querySelector('#ws-state').textContent", json!("live"), secs(15)).await?;

    // Walls: create, rename, delete.
    b.click_css("#tabs .tab[data-tab=\"walls\"]").await?;
    b.fill("#wall-name", "Spare").await?;
    b.fill("#wall-rows", "1").await?;
    b.fill("#wall-cols", "1").await?;
    b.fill("#wall-outputs", "16").await?;
    b.click_css("#wall-create-btn").await?;
    let wid = b.wait_for(&row_id_script("#wall-table", "Spare"), secs(10), Value::is_u64).await?;
    b.click_css(&format!("#wall-table tr[data-id=\"{wid}\"] .edit-btn")).await?;
    b.fill("#wall-edit-name", "Spare 2").await?;
    b.click_css("#wall-edit-form button[type=\"submit\"]").await?;
    wait_api(api, &format!("/walls/{wid}"), secs(10), |w| w["name"] == "Spare 2").await?;
    b.wait_for(&row_id_script("#wall-table", "Spare 2"), secs(10), |v| v == &wid).await?;
    delete_twice(b, &format!("#wall-table tr[data-id=\"{wid}\"] .delete-btn")).await?;
    wait_api(api, "/walls", secs(10), |v| v.as_array().is_some_and(|a| a.is_empty())).await?;

    // Sources: an IP source, then a bad url refused.
    b.click_css("#tabs .tab[data-tab=\"sources\"]").await?;
    b.fill("#source-name", "Lobby cam").await?;
    b.fill("#source-url", "rtsp://lobby-cam/stream").await?;
    b.click_css("#source-create-btn").await?;
    wait_api(api, "/sources", secs(10), |v| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|s| s["name"] == "Lobby cam" && s["kind"] == "ip" && s["url"] == "rtsp://lobby-cam/stream"))
    })
    .await?;
    b.fill("#source-name", "Broken cam").await?;
    b.fill("#source-url", "not a url").await?;
    b.click_css("#source-create-btn").await?;
    wait_refusal(b, "#source-form .form-error", "422", "invalid_url").await?;

    // KVM: two hosts, a seat, switching it, a refused port, a host deleted.
    b.click_css("#tabs .tab[data-tab=\"kvm\"]").await?;
    for (name, port) in [("SCADA", "7"), ("Historian", "8")] {
        b.fill("#host-name", name).await?;
        b.fill("#host-port", port).await?;
        b.click_css("#host-form button[type=\"submit\"]").await?;
        b.wait_for(&row_id_script("#host-table", name), secs(10), Value::is_u64).await?;
    }
    let scada = b.exec(&row_id_script("#host-table", "SCADA"), json!([])).await?;
    let historian = b.exec(&row_id_script("#host-table", "Historian"), json!([])).await?;
    b.fill("#host-name", "Twin").await?;
    b.fill("#host-port", "7").await?;
    b.click_css("#host-form button[type=\"submit\"]").await?;
    wait_refusal(b, "#host-form .form-error", "409", "port_in_use").await?;
    b.fill("#seat-name", "Desk 1").await?;
    b.fill("#seat-console", "console-1").await?;
    b.click_css("#seat-form button[type=\"submit\"]").await?;
    let seat = b.wait_for(&row_id_script("#seat-table", "Desk 1"), secs(10), Value::is_u64).await?;
    pick(b, &format!("#seat-table tr[data-id=\"{seat}\"] select.seat-host"), &scada.to_string()).await?;
    wait_api(api, &format!("/kvm/seats/{seat}"), secs(10), |s| s["host_id"] == scada).await?;
    delete_twice(b, &format!("#host-table tr[data-id=\"{historian}\"] .delete-btn")).await?;
    wait_api(api, "/kvm/hosts", secs(10), |v| v.as_array().is_some_and(|a| a.len() == 1 && a[0]["id"] == scada)).await?;
    b.wait_for(&row_id_script("#host-table", "Historian"), secs(10), Value::is_null).await?;
    b.save_screenshot("web_client_kvm.png").await?;

    // Plans: out 1 <- in 3 and out 2 <- nothing; run it; a schedule of it,
    // disabled; the plan's delete refused while the schedule uses it.
    b.click_css("#tabs .tab[data-tab=\"plans\"]").await?;
    b.fill("#plan-name", "Night").await?;
    b.click_css("#plan-add-route").await?;
    b.click_css("#plan-add-route").await?;
    pick(b, "#plan-routes .route:nth-child(1) .route-input", "3").await?;
    b.click_css("#plan-form button[type=\"submit\"]").await?;
    let plan = b.wait_for(&row_id_script("#plan-table", "Night"), secs(10), Value::is_u64).await?;
    wait_api(api, &format!("/plans/{plan}"), secs(10), |p| p["routes"] == json!([{"output": 1, "input": 3}, {"output": 2, "input": null}]))
        .await?;
    b.click_css(&format!("#plan-table tr[data-id=\"{plan}\"] .run-btn")).await?;
    wait_api(api, "/matrix", secs(10), |m| m.as_array().is_some_and(|a| a.iter().any(|r| r["output"] == 1 && r["input"] == 3))).await?;
    b.fill("#schedule-name", "Tour").await?;
    b.click_css(&format!("#schedule-plans input[value=\"{plan}\"]")).await?;
    b.fill("#schedule-interval", "30").await?;
    b.click_css("#schedule-form button[type=\"submit\"]").await?;
    let sched = b.wait_for(&row_id_script("#schedule-table", "Tour"), secs(10), Value::is_u64).await?;
    wait_api(api, &format!("/schedules/{sched}"), secs(10), |s| {
        s["plan_ids"] == json!([plan]) && s["interval_s"] == 30 && s["enabled"] == true
    })
    .await?;
    b.click_css(&format!("#schedule-table tr[data-id=\"{sched}\"] .schedule-enabled")).await?;
    wait_api(api, &format!("/schedules/{sched}"), secs(10), |s| s["enabled"] == false).await?;
    delete_twice(b, &format!("#plan-table tr[data-id=\"{plan}\"] .delete-btn")).await?;
    wait_refusal(b, "#plans-error", "409", "plan_in_use").await?;
    b.save_screenshot("web_client_plans.png").await?;

    // Users: create, change role and password, delete.
    b.click_css("#tabs .tab[data-tab=\"users\"]").await?;
    b.fill("#user-name", "night-op").await?;
    b.fill("#user-password", "night-pass-1").await?;
    pick(b, "#user-role", "operator").await?;
    b.click_css("#user-form button[type=\"submit\"]").await?;
    let uid = b.wait_for(&row_id_script("#user-table", "night-op"), secs(10), Value::is_u64).await?;
    b.click_css(&format!("#user-table tr[data-id=\"{uid}\"] .edit-btn")).await?;
    pick(b, "#user-edit-role", "viewer").await?;
    b.fill("#user-edit-password", "night-pass-2").await?;
    b.click_css("#user-edit-form button[type=\"submit\"]").await?;
    wait_api(api, &format!("/users/{uid}"), secs(10), |u| u["role"] == "viewer").await?;
    let new_pw = Api::new(&api.base).call("POST", "/login", Some(json!({"username": "night-op", "password": "night-pass-2"})), &[]).await;
    if new_pw.status != 200 {
        return Err(format!("the new password does not log in: {new_pw:?}"));
    }
    b.save_screenshot("web_client_users.png").await?;
    delete_twice(b, &format!("#user-table tr[data-id=\"{uid}\"] .delete-btn")).await?;
    wait_gone(api, &format!("/users/{uid}"), secs(10)).await
}

/// Poll (bounded) until `GET path` answers 404.
async fn wait_gone(api: &Api, path: &str, limit: Duration) -> Res<()> {
    let start = Instant::now();
    let mut last = 0;
    for _ in 0..200 {
        last = api.get(path).await.status;
        if last == 404 {
            return Ok(());
        }
        if start.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("GET {path} still answers {last} after {limit:?}"))
}

#[tokio::test]
async fn web_client_configures_walls_sources_kvm_plans_schedules_and_users() {
    let sim = SimProcess::start(SimOpts::default()).await;
    // A second admin reads the results: the browser's admin keeps its session.
    let admin = Api::login(&sim.base, "admin", "admin").await;
    admin.post("/users", json!({"username": "auditor", "password": "auditor-pass-1", "role": "admin"})).await.ok();
    admin.post("/logout", json!({})).await.ok();
    let auditor = Api::login(&sim.base, "auditor", "auditor-pass-1").await;

    let mut browser = Browser::start().await;
    if let Err(e) = configure_rest(&browser, &sim.base, &auditor).await {
        if let Ok(png) = browser.screenshot().await {
            let _ = std::fs::write(artifacts_dir().join("web_client_config_failure.png"), png);
        }
        let status = browser.status_bar().await.unwrap_or_default();
        browser.quit().await;
        panic!("{e}\n(status bar: {status:?}; see test-artifacts/web_client_config_failure.png and chromedriver.log)");
    }
    browser.quit().await;
}
