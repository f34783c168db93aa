//! The gateway against its budgets (docs/design.md), side by side with a baseline
//! in the same run, on this machine:
//!
//! | what | baseline |
//! |---|---|
//! | reads | the same reads sent straight to one chassis |
//! | a mutation's latency | the same mutation straight to each chassis (the slower one) |
//! | mutation throughput | the client-side "mirror" scheme: every mutation sent to both chassis, concurrently, by the client |
//! | memory | the gateway's own RSS, idle and with many sessions and event sockets |
//!
//! Run (release binaries first; the bench finds them next to itself):
//!
//! ```sh
//! cargo build --release --workspace && cargo bench --bench gateway
//! ```
//!
//! `BENCH_SECONDS` (default 5) sets each throughput phase's length.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pairgate_suite::api::{client_trusting, Api};
use pairgate_suite::certs::make_cert;
use pairgate_suite::chassis_proc::{SimOpts, SimProcess};
use pairgate_suite::pair::{events_socket, Pair};
use serde_json::json;

/// Latencies of one phase.
struct Sample {
    lat: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Sample {
    fn pct(&self, p: f64) -> Duration {
        if self.lat.is_empty() {
            return Duration::ZERO;
        }
        let mut v = self.lat.clone();
        v.sort();
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    }
    fn rate(&self) -> f64 {
        self.lat.len() as f64 / self.elapsed.as_secs_f64()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `clients` tasks call `op(client, i)` until `secs` have passed.
async fn run<F, Fut>(clients: &[Api], secs: f64, op: F) -> Sample
where
    F: Fn(Api, usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (n, api) in clients.iter().cloned().enumerate() {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut k) = (Vec::new(), 0, 0u64);
            while Instant::now() < stop {
                let t = Instant::now();
                if op(api.clone(), n, k).await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
                k += 1;
            }
            (lat, errors)
        }));
    }
    let mut s = Sample { lat: Vec::new(), errors: 0, elapsed: Duration::ZERO };
    for t in tasks {
        if let Ok((l, e)) = t.await {
            s.lat.extend(l);
            s.errors += e;
        }
    }
    s.elapsed = start.elapsed();
    s
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// A baseline chassis of its own (HTTPS, like the gateway's), never behind
/// the gateway — direct writes to the gateway's chassis would make them
/// diverge — set up with the same walls and windows.
async fn baseline_chassis(dir: &std::path::Path, name: &str, clients: u32) -> (SimProcess, Api) {
    let (cert, key) = make_cert(dir, name).expect("a certificate");
    let sim = SimProcess::start(SimOpts { tls: Some((cert.clone(), key)), ..SimOpts::default() }).await;
    let mut api = Api::new(&sim.base);
    api.http = client_trusting(Some(&cert));
    let r = api.post("/login", json!({"username": "admin", "password": "admin"})).await;
    api.token = r.body["token"].as_str().map(str::to_string);
    for n in 0..clients {
        let w = api.post("/walls", json!({"name": format!("b{n}"), "rows": 1, "cols": 1, "outputs": [n + 1]})).await.ok().id();
        api.post(&format!("/walls/{w}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 100, "h": 100})).await.ok();
    }
    (sim, api)
}

#[tokio::main]
async fn main() {
    let secs: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let clients = 16usize;
    // Production timeouts, not the tests' short ones.
    let pair = Pair::start_with(|t| {
        *t = t
            .replace("per_try_ms = 1000", "per_try_ms = 2000")
            .replace("health_interval_ms = 200", "health_interval_ms = 500")
            .replace("down_after_ms = 600", "down_after_ms = 1500")
    })
    .await;
    let gw_pid = pair.gw.child.as_ref().map(|c| c.id()).unwrap_or(0);
    let idle_rss = rss_kib(gw_pid);
    let admin = pair.gw.login("admin", "admin").await;
    // One 1x1 wall and one window per client (16 outputs).
    let mut windows = Vec::new();
    for n in 0..clients as u32 {
        let w = admin.post("/walls", json!({"name": format!("b{n}"), "rows": 1, "cols": 1, "outputs": [n + 1]})).await.ok().id();
        let x = admin.post(&format!("/walls/{w}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 100, "h": 100})).await.ok().id();
        windows.push((w, x));
    }
    pair.gw.wait_in_sync(Duration::from_secs(30)).await;
    let windows = Arc::new(windows);
    let gw_clients: Vec<Api> = futures_util::future::join_all((0..clients).map(|_| pair.gw.login("admin", "admin"))).await;
    // The baseline: two more chassis, same contents (fresh, so the same ids).
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_sa, a) = baseline_chassis(tmp.path(), "base-a", clients as u32).await;
    let (_sb, b) = baseline_chassis(tmp.path(), "base-b", clients as u32).await;
    let base_windows: Vec<(u64, u64)> = {
        let walls = a.get("/walls").await.ok().body;
        let mut v = Vec::new();
        for w in walls.as_array().into_iter().flatten() {
            let id = w["id"].as_u64().unwrap_or(0);
            let win = a.get(&format!("/walls/{id}/windows")).await.ok().body[0]["id"].as_u64().unwrap_or(0);
            v.push((id, win));
        }
        v
    };
    assert_eq!(base_windows.len(), clients);
    let base_windows = Arc::new(base_windows);
    let a_clients = vec![a.clone(); clients];

    println!("pairgate bench: {clients} clients, {secs} s per throughput phase, release binaries, 2 HTTPS chassis on loopback\n");

    // 1. Reads.
    let read = |w: Arc<Vec<(u64, u64)>>| {
        move |api: Api, n: usize, _k: u64| {
            let (wall, _) = w[n];
            async move { api.get(&format!("/walls/{wall}/windows")).await.status == 200 }
        }
    };
    let base_reads = run(&a_clients, secs, read(base_windows.clone())).await;
    let gw_reads = run(&gw_clients, secs, read(windows.clone())).await;

    // 2. One mutation at a time: latency.
    let mv = |w: Arc<Vec<(u64, u64)>>| {
        move |api: Api, n: usize, k: u64| {
            let (wall, win) = w[n];
            async move { api.put(&format!("/walls/{wall}/windows/{win}"), json!({"x": k % 500, "y": 0})).await.status == 200 }
        }
    };
    let lat_a = run(std::slice::from_ref(&a), secs / 2.0, mv(base_windows.clone())).await;
    let lat_b = run(std::slice::from_ref(&b), secs / 2.0, mv(base_windows.clone())).await;
    let lat_gw = run(&gw_clients[..1], secs / 2.0, mv(windows.clone())).await;

    // 3. Mutation throughput: mirror (client sends to both) vs the gateway.
    let w = base_windows.clone();
    let (ma, mb) = (a.clone(), b.clone());
    let mirror = move |_api: Api, n: usize, k: u64| {
        let (wall, win) = w[n];
        let (ma, mb) = (ma.clone(), mb.clone());
        async move {
            let path = format!("/walls/{wall}/windows/{win}");
            let body = json!({"x": k % 500, "y": 1});
            let (x, y) = tokio::join!(ma.put(&path, body.clone()), mb.put(&path, body));
            x.status == 200 && y.status == 200
        }
    };
    let mirror_tp = run(&a_clients, secs, mirror).await;
    let gw_tp = run(&gw_clients, secs, mv(windows.clone())).await;
    let status = pair.gw.wait_in_sync(Duration::from_secs(60)).await;
    let [(da, _), (db, _)] = pair.snapshot().await;

    // 4. Memory with many sessions and event sockets.
    let busy_rss = rss_kib(gw_pid);
    let sessions: Vec<Api> = futures_util::future::join_all((0..200).map(|_| pair.gw.login("admin", "admin"))).await;
    let mut sockets = Vec::new();
    for api in sessions.iter().cycle().take(1000) {
        sockets.push(events_socket(pair.gw.port, &pair.gw.cert, api.token.as_deref().unwrap_or("")).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded_rss = rss_kib(gw_pid);

    let slower_p50 = lat_a.pct(0.5).max(lat_b.pct(0.5));
    println!("| measure | baseline | gateway | ratio / difference | budget |");
    println!("|---|---|---|---|---|");
    println!(
        "| read throughput | {:.0}/s direct | {:.0}/s | {:.2}x | ≥ nginx proxying the same chassis (nginx not measured here) |",
        base_reads.rate(),
        gw_reads.rate(),
        gw_reads.rate() / base_reads.rate()
    );
    println!(
        "| read p50 / p99 | {} / {} | {} / {} | +{} p99 | added p99 ≤ nginx's |",
        ms(base_reads.pct(0.5)),
        ms(base_reads.pct(0.99)),
        ms(gw_reads.pct(0.5)),
        ms(gw_reads.pct(0.99)),
        ms(gw_reads.pct(0.99).saturating_sub(base_reads.pct(0.99)))
    );
    println!(
        "| mutation p50 (1 client) | {} (slower chassis) | {} | +{} | ≤ +1 ms |",
        ms(slower_p50),
        ms(lat_gw.pct(0.5)),
        ms(lat_gw.pct(0.5).saturating_sub(slower_p50))
    );
    println!(
        "| mutation throughput ({clients} clients) | {:.0}/s mirror | {:.0}/s | {:.2}x | ≥ 0.5x mirror |",
        mirror_tp.rate(),
        gw_tp.rate(),
        gw_tp.rate() / mirror_tp.rate()
    );
    println!(
        "| gateway RSS | {:.1} MiB idle | {:.1} MiB after the run; {:.1} MiB with 200 sessions + 1000 event sockets | | ≤ 30 MiB idle; ≤ 100 MiB loaded |",
        idle_rss as f64 / 1024.0,
        busy_rss as f64 / 1024.0,
        loaded_rss as f64 / 1024.0
    );
    println!(
        "\nerrors: reads {} direct / {} gateway; mutations {} mirror / {} gateway; divergences {}; digests equal after the run: {}",
        base_reads.errors,
        gw_reads.errors,
        mirror_tp.errors,
        gw_tp.errors,
        status["divergences"],
        da == db
    );
    drop(sockets);
}
