//! What ID translation (issue 9) costs: the same workload, in the same run,
//! on two pairs that differ only in the chassis' firmware:
//!
//! | pair | chassis |
//! |---|---|
//! | baseline | both full-featured (default `chassis-sim`): the gateway sends `X-Id-Block`, no map |
//! | translated | both `chassis-sim --without id_block`: each has a durable map client ID ↔ its own ID |
//!
//! Measured on each pair, phase by phase (baseline then translated for each
//! phase, both pairs up all the time):
//!
//! - a create, `POST /walls/{w}/windows`, each followed by the `DELETE` of
//!   the window it created (to stay under the 64-window cap); both timed,
//!   reported separately: 1 client sequential and 16 clients concurrent;
//! - a mutation that creates nothing, `PUT /walls/{w}/windows/{wid}` (a
//!   move): 1 client and 16 clients;
//! - reads, `GET /walls` (16 walls) and `GET /walls/{w}/windows` (8 windows),
//!   16 clients.
//!
//! Run (release binaries first; the bench finds them next to itself):
//!
//! ```sh
//! cargo build --release --workspace && cargo bench --bench translation
//! ```
//!
//! `BENCH_SECONDS` (default 5) sets each phase's length (plus a short
//! warm-up that is not recorded).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pairgate_suite::api::Api;
use pairgate_suite::pair::Pair;
use serde_json::{json, Value};

/// Clients of the concurrent phases, and walls (one per client, one output each).
const CLIENTS: usize = 16;
/// Windows on each wall while the workload runs (the first is the one moved).
const WINDOWS_PER_WALL: usize = 8;
/// Warm-up before each recorded phase (connections, caches), not recorded.
const WARMUP: Duration = Duration::from_millis(500);

/// Latencies of one part of a phase (e.g. the creates of create+delete).
#[derive(Default)]
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
        self.lat.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One operation's timed parts (None: it failed).
type Parts = Option<Vec<Duration>>;

/// `clients` tasks call `op(client, n, k)` until `secs` have passed; the
/// samples per part. Every loop ends at the deadline (each request is itself
/// bounded by the client's 30 s timeout).
async fn run<F, Fut>(clients: &[Api], secs: f64, parts: usize, op: Arc<F>) -> Vec<Sample>
where
    F: Fn(Api, usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Parts> + Send,
{
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for (n, api) in clients.iter().cloned().enumerate() {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<Vec<Duration>> = vec![Vec::new(); parts];
            let (mut errors, mut k) = (0usize, 0u64);
            while Instant::now() < stop {
                match op(api.clone(), n, k).await {
                    Some(d) if d.len() == parts => {
                        for (l, d) in lat.iter_mut().zip(d) {
                            l.push(d);
                        }
                    }
                    _ => errors += 1,
                }
                k += 1;
            }
            (lat, errors)
        }));
    }
    let mut out: Vec<Sample> = (0..parts).map(|_| Sample::default()).collect();
    for t in tasks {
        match t.await {
            Ok((lat, errors)) => {
                for (s, l) in out.iter_mut().zip(lat) {
                    s.lat.extend(l);
                    s.errors += errors;
                }
            }
            // A transport error panics in the harness's client: count the task.
            Err(_) => out.iter_mut().for_each(|s| s.errors += 1),
        }
    }
    let elapsed = start.elapsed();
    out.iter_mut().for_each(|s| s.elapsed = elapsed);
    out
}

/// One pair with its walls, windows and logged-in clients.
struct Bed {
    pair: Pair,
    clients: Vec<Api>,
    /// (wall, the window that is moved) per client, in client IDs.
    walls: Arc<Vec<(u64, u64)>>,
}

/// The shipped (production) timeouts, not the tests' short ones, as in bench/gateway.rs.
fn production_timeouts(t: &mut String) {
    *t = t
        .replace("per_try_ms = 1000", "per_try_ms = 2000")
        .replace("health_interval_ms = 200", "health_interval_ms = 500")
        .replace("down_after_ms = 600", "down_after_ms = 1500");
}

async fn bed(label: &str, args: &'static [&'static str], ids_mode: &str) -> Bed {
    let pair = Pair::start_firmware([args, args], production_timeouts).await;
    let s = pair.gw.wait_in_sync(Duration::from_secs(40)).await;
    for i in 0..2 {
        let mode = &s["chassis"][i]["firmware"]["modes"]["ids"];
        assert_eq!(mode, ids_mode, "{label}: chassis {i} works in ids mode {mode}, expected {ids_mode}: {s}");
    }
    let admin = pair.gw.login("admin", "admin").await;
    let mut walls = Vec::new();
    for n in 0..CLIENTS as u32 {
        let w = admin.post("/walls", json!({"name": format!("t{n}"), "rows": 1, "cols": 1, "outputs": [n + 1]})).await.ok().id();
        let mut first = 0;
        for k in 0..WINDOWS_PER_WALL as u64 {
            let body = json!({"source_id": 1 + k % 16, "x": 10 * k, "y": 10 * k, "w": 100, "h": 100});
            let x = admin.post(&format!("/walls/{w}/windows"), body).await.ok().id();
            if k == 0 {
                first = x;
            }
        }
        walls.push((w, first));
    }
    pair.gw.wait_in_sync(Duration::from_secs(30)).await;
    let clients: Vec<Api> = futures_util::future::join_all((0..CLIENTS).map(|_| pair.gw.login("admin", "admin"))).await;
    Bed { pair, clients, walls: Arc::new(walls) }
}

/// Rows in the gateway's map for chassis `name` (0 for a chassis with id_block).
async fn map_rows(bed: &Bed, name: &str) -> usize {
    bed.pair.gw.admin_get(&format!("/_pairgate/idmap/{name}")).await.as_array().map_or(0, Vec::len)
}

fn timed_ok(t: Instant, ok: bool) -> Option<Duration> {
    ok.then(|| t.elapsed())
}

/// The workloads, each a function of the bed's walls.
fn create_delete(walls: Arc<Vec<(u64, u64)>>) -> impl Fn(Api, usize, u64) -> std::pin::Pin<Box<dyn Future<Output = Parts> + Send>> {
    move |api: Api, n: usize, k: u64| {
        let (wall, _) = walls[n];
        Box::pin(async move {
            let body = json!({"source_id": 1 + k % 16, "x": k % 500, "y": 200, "w": 64, "h": 64});
            let t = Instant::now();
            let r = api.post(&format!("/walls/{wall}/windows"), body).await;
            let create = timed_ok(t, r.status == 201)?;
            let id = r.body["id"].as_u64()?;
            let t = Instant::now();
            let r = api.delete(&format!("/walls/{wall}/windows/{id}")).await;
            let delete = timed_ok(t, (200..300).contains(&r.status))?;
            Some(vec![create, delete])
        })
    }
}

fn move_window(walls: Arc<Vec<(u64, u64)>>) -> impl Fn(Api, usize, u64) -> std::pin::Pin<Box<dyn Future<Output = Parts> + Send>> {
    move |api: Api, n: usize, k: u64| {
        let (wall, win) = walls[n];
        Box::pin(async move {
            let t = Instant::now();
            let r = api.put(&format!("/walls/{wall}/windows/{win}"), json!({"x": k % 500, "y": 0})).await;
            Some(vec![timed_ok(t, r.status == 200)?])
        })
    }
}

fn read(walls: Arc<Vec<(u64, u64)>>, listing: bool) -> impl Fn(Api, usize, u64) -> std::pin::Pin<Box<dyn Future<Output = Parts> + Send>> {
    move |api: Api, n: usize, _k: u64| {
        let (wall, _) = walls[n];
        Box::pin(async move {
            let t = Instant::now();
            let (path, expect) =
                if listing { ("/walls".to_string(), CLIENTS) } else { (format!("/walls/{wall}/windows"), WINDOWS_PER_WALL) };
            let r = api.get(&path).await;
            let ok = r.status == 200 && r.body.as_array().map(Vec::len) == Some(expect);
            Some(vec![timed_ok(t, ok)?])
        })
    }
}

/// One phase on both beds, baseline first, each after its own warm-up.
async fn phase<F, Fut>(
    beds: &[Bed; 2],
    clients: usize,
    secs: f64,
    parts: usize,
    make: impl Fn(Arc<Vec<(u64, u64)>>) -> F,
) -> [Vec<Sample>; 2]
where
    F: Fn(Api, usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Parts> + Send,
{
    let mut out = [Vec::new(), Vec::new()];
    for (i, bed) in beds.iter().enumerate() {
        let op = Arc::new(make(bed.walls.clone()));
        run(&bed.clients[..clients], WARMUP.as_secs_f64(), parts, op.clone()).await;
        out[i] = run(&bed.clients[..clients], secs, parts, op).await;
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A latency row: baseline, translated, ratio, difference.
fn lat_row(what: &str, b: Duration, t: Duration) -> String {
    let ratio = t.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let diff = t.as_secs_f64() * 1000.0 - b.as_secs_f64() * 1000.0;
    format!("| {what} | {} | {} | {ratio:.2}x | {diff:+.2} ms |", ms(b), ms(t))
}

fn rate_row(what: &str, b: &Sample, t: &Sample) -> String {
    let ratio = t.rate() / b.rate().max(1e-9);
    format!("| {what} | {:.0}/s | {:.0}/s | {ratio:.2}x | {:+.0}/s |", b.rate(), t.rate(), t.rate() - b.rate())
}

fn shell(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

#[tokio::main]
async fn main() {
    let secs: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default();
    let gw_bin = pairgate_suite::bins::find("pairgate", "cargo build --release --workspace").unwrap_or_else(|e| panic!("{e}"));
    let base = bed("baseline", &[], "id_block").await;
    let tran = bed("translated", &["--without", "id_block"], "translate").await;
    let maps_before = [map_rows(&tran, "a").await, map_rows(&tran, "b").await];
    let beds = [base, tran];

    println!(
        "pairgate translation bench: {secs} s per phase (+{} ms warm-up), {CLIENTS} walls × {WINDOWS_PER_WALL} windows",
        WARMUP.as_millis()
    );
    println!("bench executable {exe}; gateway binary {}", gw_bin.display());
    println!("machine: nproc {}, {}, {}", shell("nproc", &[]), shell("uname", &["-srm"]), shell("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]));
    println!("command: cargo build --release --workspace && BENCH_SECONDS={secs} cargo bench --bench translation\n");

    let [cd1_b, cd1_t] = phase(&beds, 1, secs, 2, create_delete).await;
    let [cd16_b, cd16_t] = phase(&beds, CLIENTS, secs, 2, create_delete).await;
    let [mv1_b, mv1_t] = phase(&beds, 1, secs, 1, move_window).await;
    let [mv16_b, mv16_t] = phase(&beds, CLIENTS, secs, 1, move_window).await;
    let [rw_b, rw_t] = phase(&beds, CLIENTS, secs, 1, |w| read(w, true)).await;
    let [rx_b, rx_t] = phase(&beds, CLIENTS, secs, 1, |w| read(w, false)).await;

    let mut statuses: Vec<Value> = Vec::new();
    for bed in &beds {
        statuses.push(bed.pair.gw.wait_in_sync(Duration::from_secs(60)).await);
    }
    let maps_after = [map_rows(&beds[1], "a").await, map_rows(&beds[1], "b").await];

    println!("| measure | baseline (id_block) | translated (--without id_block) | ratio | difference |");
    println!("|---|---|---|---|---|");
    let rows: [(&str, &Sample, &Sample); 8] = [
        ("create `POST /walls/{w}/windows`, 1 client", &cd1_b[0], &cd1_t[0]),
        ("its `DELETE`, 1 client", &cd1_b[1], &cd1_t[1]),
        ("create, 16 clients", &cd16_b[0], &cd16_t[0]),
        ("its `DELETE`, 16 clients", &cd16_b[1], &cd16_t[1]),
        ("move `PUT /walls/{w}/windows/{wid}`, 1 client", &mv1_b[0], &mv1_t[0]),
        ("move, 16 clients", &mv16_b[0], &mv16_t[0]),
        ("read `GET /walls` (16 walls), 16 clients", &rw_b[0], &rw_t[0]),
        ("read `GET /walls/{w}/windows` (8 windows), 16 clients", &rx_b[0], &rx_t[0]),
    ];
    for (what, b, t) in rows {
        println!("{}", lat_row(&format!("{what}: p50"), b.pct(0.5), t.pct(0.5)));
        println!("{}", lat_row(&format!("{what}: p99"), b.pct(0.99), t.pct(0.99)));
    }
    println!("{}", rate_row("create+delete pairs, 16 clients: throughput", &cd16_b[0], &cd16_t[0]));
    println!("{}", rate_row("move, 16 clients: throughput", &mv16_b[0], &mv16_t[0]));
    println!("{}", rate_row("`GET /walls`, 16 clients: throughput", &rw_b[0], &rw_t[0]));
    println!("{}", rate_row("`GET /walls/{w}/windows`, 16 clients: throughput", &rx_b[0], &rx_t[0]));

    let samples = |v: &[&Sample]| v.iter().map(|s| format!("{}/{}", s.lat.len(), s.errors)).collect::<Vec<_>>().join(", ");
    println!(
        "\nsamples/errors, baseline: {}",
        samples(&[&cd1_b[0], &cd1_b[1], &cd16_b[0], &cd16_b[1], &mv1_b[0], &mv16_b[0], &rw_b[0], &rx_b[0]])
    );
    println!(
        "samples/errors, translated: {}",
        samples(&[&cd1_t[0], &cd1_t[1], &cd16_t[0], &cd16_t[1], &mv1_t[0], &mv16_t[0], &rw_t[0], &rx_t[0]])
    );
    for (label, s) in ["baseline", "translated"].iter().zip(&statuses) {
        println!(
            "{label}: in sync after the run; divergences {}, failovers {}, store_errors {}, mutations {}, reads {}, failed_reads {}",
            s["divergences"], s["failovers"], s["store_errors"], s["mutations"], s["reads"], s["failed_reads"]
        );
    }
    println!("translated map rows (a, b): before the run {maps_before:?}, after {maps_after:?}");
}
