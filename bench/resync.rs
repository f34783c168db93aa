//! Full resync of a large state, side by side with its baseline in the same
//! run, on this machine:
//!
//! | what | baseline |
//! |---|---|
//! | resync time | a client copying the same state by hand: `GET /system/export` from chassis a, `PUT /system/import` into a spare chassis (no gateway) |
//! | longest client pause during a resync | the longest pause of the same client, same load, with no resync running |
//!
//! For 10,000 and 100,000 rows (IP sources, loaded into both chassis before
//! the gateway starts), idle and under 20 mutations/s (one client changing a
//! matrix route every 50 ms) plus one client reading. Budget (issue 14):
//! 100k rows in ≤ 5 s, a client pause ≤ 1 s.
//!
//! ```sh
//! cargo build --release --workspace && cargo bench --bench resync
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pairgate_suite::api::{client_trusting, Api};
use pairgate_suite::certs::make_cert;
use pairgate_suite::chassis_proc::{SimOpts, SimProcess};
use pairgate_suite::pair::Pair;
use serde_json::json;

/// The shipped timeouts, not the tests' short ones.
fn production(t: &mut String) {
    *t = t
        .replace("per_try_ms = 1000", "per_try_ms = 2000")
        .replace("health_interval_ms = 200", "health_interval_ms = 500")
        .replace("down_after_ms = 600", "down_after_ms = 1500");
}

/// A writer at 20 mutations/s and a reader, until `stop`: the longest
/// request of each and the failed ones (bounded: 10 minutes).
fn load(writer: Arc<Api>, reader: Arc<Api>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(Duration, Duration, usize)> {
    tokio::spawn(async move {
        let w = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut longest, mut failed) = (Duration::ZERO, 0);
                let start = Instant::now();
                for k in 0..12_000u64 {
                    if stop.load(Ordering::SeqCst) || start.elapsed() > Duration::from_secs(600) {
                        break;
                    }
                    let t = Instant::now();
                    let r = writer.call("PUT", &format!("/matrix/{}", 1 + k % 16), Some(json!({"input": 1 + (k / 16) % 16})), &[]).await;
                    longest = longest.max(t.elapsed());
                    failed += usize::from(r.status != 200);
                    tokio::time::sleep(Duration::from_millis(50).saturating_sub(t.elapsed())).await;
                }
                (longest, failed)
            })
        };
        let (mut longest, mut failed) = (Duration::ZERO, 0);
        let start = Instant::now();
        for _ in 0..60_000 {
            if stop.load(Ordering::SeqCst) || start.elapsed() > Duration::from_secs(600) {
                break;
            }
            let t = Instant::now();
            let r = reader.get("/matrix").await;
            longest = longest.max(t.elapsed());
            failed += usize::from(r.status != 200);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (wl, wf) = w.await.unwrap_or((Duration::MAX, usize::MAX));
        (wl, longest, wf + failed)
    })
}

/// The hand copy: export from `from`, import into `into`; the time and bytes.
async fn hand_copy(from: &Api, into: &Api) -> (Duration, usize) {
    let t = Instant::now();
    let r = from.http.get(format!("{}/api/v1/system/export", from.base)).bearer_auth(from.token.clone().unwrap_or_default()).send().await;
    let doc = r.expect("export").bytes().await.expect("export body");
    let n = doc.len();
    let r = into
        .http
        .put(format!("{}/api/v1/system/import", into.base))
        .bearer_auth(into.token.clone().unwrap_or_default())
        .header("content-type", "application/json")
        .body(doc)
        .send()
        .await
        .expect("import");
    assert_eq!(r.status().as_u16(), 200, "hand import");
    (t.elapsed(), n)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (cert, key) = make_cert(tmp.path(), "spare").expect("a certificate");
    let spare = SimProcess::start(SimOpts { tls: Some((cert.clone(), key)), ..SimOpts::default() }).await;
    let mut into = Api::new(&spare.base);
    into.http = client_trusting(Some(&cert));
    let r = into.post("/login", json!({"username": "admin", "password": "admin"})).await;
    into.token = r.body["token"].as_str().map(str::to_string);

    println!("pairgate resync bench: release binaries, 2 HTTPS chassis + gateway on loopback, one spare chassis for the baseline\n");
    println!("| rows | load | hand copy (baseline) | gateway resync | ratio | longest pause: no resync → during it | budget |");
    println!("|---|---|---|---|---|---|---|");
    for rows in [10_000u64, 100_000] {
        let pair = Pair::start_with_rows(rows, production).await;
        let writer = Arc::new(pair.gw.login("admin", "admin").await);
        let reader = Arc::new(pair.gw.login("admin", "admin").await);
        let from = pair.direct(0).await;
        for loaded in [false, true] {
            let (copy, bytes) = hand_copy(&from, &into).await;
            let mut quiet = Duration::ZERO;
            let stop = Arc::new(AtomicBool::new(false));
            let running = if loaded {
                // The same load with no resync: its own longest pause, 3 s.
                let calm = Arc::new(AtomicBool::new(false));
                let probe = load(writer.clone(), reader.clone(), calm.clone());
                tokio::time::sleep(Duration::from_secs(3)).await;
                calm.store(true, Ordering::SeqCst);
                let (w, r, failed) = probe.await.expect("load");
                assert_eq!(failed, 0, "requests failed with no resync running");
                quiet = w.max(r);
                Some(load(writer.clone(), reader.clone(), stop.clone()))
            } else {
                None
            };
            let t = Instant::now();
            let (phases, s) = pair.resync("b", Duration::from_secs(120)).await;
            let took = t.elapsed();
            stop.store(true, Ordering::SeqCst);
            let (pause, failed) = match running {
                Some(h) => {
                    let (w, r, failed) = h.await.expect("load");
                    (format!("{:.0} ms → {:.0} ms", quiet.as_secs_f64() * 1e3, w.max(r).as_secs_f64() * 1e3), failed)
                }
                None => ("—".to_string(), 0),
            };
            let attempts = s["resync"]["attempt"].as_u64().unwrap_or(0);
            println!(
                "| {rows} ({:.1} MB) | {} | {} | {} | {:.2}x | {pause} | ≤ 5 s (100k), pause ≤ 1 s |",
                bytes as f64 / 1e6,
                if loaded { "20 mutations/s + reads" } else { "idle" },
                secs(copy),
                secs(took),
                took.as_secs_f64() / copy.as_secs_f64(),
            );
            assert!(!phases.iter().any(|p| p.starts_with("failed")), "a failed attempt: {phases:?}");
            assert_eq!(attempts, 1, "{s}");
            assert_eq!(failed, 0, "client requests failed during the resync");
        }
        let [(da, _), (db, _)] = pair.snapshot().await;
        assert_eq!(da, db, "digests differ after the resyncs of {rows} rows");
    }
    println!("\n(gateway resync: from the request to both chassis in sync again, the journal replayed; every resync on its first attempt, no client request failed)");
}
