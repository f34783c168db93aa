//! The benchmarks' harness against real processes: Debian's nginx
//! (`nginx-light`, which `.ci/run` installs) as an HTTPS reverse proxy in
//! front of a chassis, and as a mirror to a second chassis with that
//! chassis' own token; the open-loop load generator through it.

use std::time::{Duration, Instant};

use pairgate_suite::api::Api;
use pairgate_suite::certs::make_cert;
use pairgate_suite::chassis_proc::{SimOpts, SimProcess};
use pairgate_suite::loadgen::{self, Load};
use pairgate_suite::nginx::{Mirror, Nginx, Upstream};
use serde_json::json;

async fn chassis(dir: &std::path::Path, name: &str) -> (SimProcess, Api, Upstream) {
    let (cert, key) = make_cert(dir, name).expect("a certificate");
    let sim = SimProcess::start(SimOpts { serial: name.into(), tls: Some((cert.clone(), key)), ..SimOpts::default() }).await;
    let api = Api::direct_admin(&sim.base, &cert).await;
    let up = Upstream { port: sim.port, ca: cert };
    (sim, api, up)
}

/// A client of the proxy with a chassis' session token.
fn through(ng: &Nginx, token: &Option<String>) -> Api {
    let mut api = Api::trusting(&ng.base, &ng.cert);
    api.token = token.clone();
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_proxies_reads_to_the_chassis_and_the_load_generator_drives_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_a, direct, up) = chassis(tmp.path(), "nginx-a").await;
    direct.post("/walls", json!({"name": "w1", "rows": 1, "cols": 1, "outputs": [1]})).await.ok();
    let ng = Nginx::start(up, None).await.unwrap_or_else(|e| panic!("{e}"));
    let api = through(&ng, &direct.token);
    let r = api.get("/walls").await.ok();
    assert_eq!(r.body, direct.get("/walls").await.ok().body, "the same answer through nginx");
    // Without a token the chassis answers 401, through nginx too.
    let anon = Api::trusting(&ng.base, &ng.cert);
    assert_eq!(anon.get("/walls").await.status, 401);

    // 200 requests/s over 4 connections for 1 s (after 0.25 s not recorded).
    let clients = loadgen::clients(&ng.cert, 4, Duration::from_secs(5)).expect("clients");
    let url = format!("{}/api/v1/walls", ng.base);
    let token = direct.token.clone().unwrap_or_default();
    let load = Load { rate: 200.0, connections: 4, warmup: Duration::from_millis(250), duration: Duration::from_secs(1) };
    let started = Instant::now();
    let report = loadgen::run(load, move |c, _k| {
        let (client, url, token) = (clients[c].clone(), url.clone(), token.clone());
        async move { loadgen::send(&client, reqwest::Method::GET, &url, &token, None).await }
    })
    .await;
    let took = started.elapsed();
    assert_eq!(report.errors, 0, "{}", report.line());
    assert!((190..=210).contains(&(report.done + report.missed)), "{}", report.line());
    assert!(report.achieved() > 180.0, "{}", report.line());
    assert!(report.p50() > Duration::ZERO && report.p50() < Duration::from_millis(200), "{}", report.line());
    assert!(took >= Duration::from_millis(1200) && took < Duration::from_secs(5), "the run took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_mirrors_mutations_to_the_second_chassis_with_its_own_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_a, da, ua) = chassis(tmp.path(), "mirror-a").await;
    let (_b, db, ub) = chassis(tmp.path(), "mirror-b").await;
    assert_ne!(da.token, db.token, "each chassis gives its own token");
    let mirror = Mirror { upstream: ub, token: db.token.clone().unwrap_or_default() };
    let ng = Nginx::start(ua, Some(mirror)).await.unwrap_or_else(|e| panic!("{e}"));
    let api = through(&ng, &da.token);
    // A read through the mirror.
    assert_eq!(api.get("/walls").await.ok().body, json!([]));
    // A mutation: answered by a; b gets it too (the mirror is not waited
    // for by the client: poll b, bounded).
    let r = api.post("/walls", json!({"name": "mirrored", "rows": 1, "cols": 1, "outputs": [3]})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.id();
    let w = api.put(&format!("/walls/{id}"), json!({"name": "mirrored-2"})).await;
    assert_eq!(w.status, 200, "{w:?}");
    let names = |v: &serde_json::Value| v.as_array().map(|a| a.iter().map(|w| (w["id"].clone(), w["name"].clone())).collect::<Vec<_>>());
    let want = Some(vec![(json!(id), json!("mirrored-2"))]);
    assert_eq!(names(&da.get("/walls").await.ok().body), want, "chassis a");
    let start = Instant::now();
    let mut seen = None;
    while start.elapsed() < Duration::from_secs(5) {
        seen = names(&db.get("/walls").await.ok().body);
        if seen == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, want, "chassis b got both mutations through the mirror; nginx log: {}", ng.error_log());
}
