//! An open-loop load generator at a fixed request rate (wrk2's model), for
//! the benchmarks in bench/.
//!
//! Requests are due at fixed intervals from the start: request `k` (counted
//! over all connections) at `k / rate` seconds ([`due_at`]). Each of `n`
//! keep-alive connections takes every `n`-th request (`k = c, c + n, …`,
//! [`request_of`]) and sends them one after the other, each as soon as it is
//! due and the connection is free ([`send_at`]). A connection that is still
//! busy when its next request is due sends it late, and that wait counts: a
//! latency is measured from the request's *due* time, not from when it
//! could be sent ([`latency`]), so a stall shows in every request that was
//! due during it (coordinated omission corrected), not only in the one
//! request that stalled.
//!
//! Tokio's timers fire on 1 ms ticks. So that the timer's lateness is not
//! counted against the server, a free connection wakes up to one tick early
//! ([`TIMER_SLACK`]) and sends then; a request sent before it was due is
//! timed from when it was sent. The schedule stays absolute: a connection is
//! never more than one tick ahead of it, so the rate is the one asked for.
//!
//! Latencies go into an [`hdrhistogram::Histogram`] (microseconds, 3
//! significant digits, 1 µs to 60 s). The first `warmup` of a run is sent but
//! not recorded. Requests due within the recorded window that a connection
//! had not even sent when the window ended are counted as `missed` (the
//! connection was too far behind); the achieved rate is the requests
//! answered successfully over the window's length.
//!
//! [`find_max_rate`] steps the rate up until a run is no longer sustained
//! ([`sustained`]: p99 over a bound, achieved below 95 % of offered, or more
//! than 0.1 % errors), then bisects between the last rate that was and the
//! first that was not; bounded in steps and in time ([`next_rate`] decides,
//! a pure function).
//!
//! The connections are [`clients`]: one reqwest client (rustls, HTTP/1.1,
//! keep-alive, at most one idle connection) per connection, trusting exactly
//! the test certificate of the server, as [`crate::api`]'s clients do.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::http::roots_trusting;

/// How early a free connection may send a request: one tick of tokio's timer.
pub const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Most requests one connection sends in one run (bounds its loop).
pub const MAX_REQUESTS_PER_CONNECTION: u64 = 50_000_000;

/// Highest latency the histograms hold, in microseconds (60 s); more is
/// recorded as this.
const HIGHEST_US: u64 = 60_000_000;

/// One run: `rate` requests per second over `connections` connections, for
/// `warmup` (not recorded) and then `duration` (recorded).
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub rate: f64,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// When request `k` (over all connections) is due, from the start of the run.
pub fn due_at(k: u64, rate: f64) -> Duration {
    if rate <= 0.0 {
        return Duration::MAX;
    }
    Duration::from_secs_f64(k as f64 / rate)
}

/// The `j`-th request of connection `conn` of `n`: its number over all connections.
pub fn request_of(conn: usize, n: usize, j: u64) -> u64 {
    j.saturating_mul(n as u64).saturating_add(conn as u64)
}

/// When a connection that is free from `free_at` sends a request due at
/// `due`: when it is due (up to `slack` early), or when the connection is
/// free, whichever is later.
pub fn send_at(due: Duration, free_at: Duration, slack: Duration) -> Duration {
    due.saturating_sub(slack).max(free_at)
}

/// The latency of a request due at `due`, sent at `sent`, answered at `done`:
/// from its due time, or from when it was sent if that was earlier.
pub fn latency(due: Duration, sent: Duration, done: Duration) -> Duration {
    done.saturating_sub(due.min(sent))
}

/// An empty histogram of latencies in microseconds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("histogram bounds 1 µs to 60 s, 3 digits")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).clamp(1, HIGHEST_US)
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// Requests per second asked for.
    pub offered: f64,
    /// The recorded window's length.
    pub window: Duration,
    /// Requests due in the window answered successfully (their latencies are
    /// in `hist`).
    pub done: u64,
    /// Requests due in the window that failed (transport error, or the
    /// operation said so, e.g. not 2xx).
    pub errors: u64,
    /// Requests due in the window never sent: the connection was still busy
    /// with earlier ones when the window ended.
    pub missed: u64,
    /// Latencies (µs) of the successful requests, from their due times.
    pub hist: Histogram<u64>,
}

impl Report {
    /// An empty report for a run at `offered` over `window`.
    pub fn empty(offered: f64, window: Duration) -> Report {
        Report { offered, window, done: 0, errors: 0, missed: 0, hist: histogram() }
    }

    /// Successful answers per second of window.
    pub fn achieved(&self) -> f64 {
        self.done as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0..=1); zero if nothing succeeded.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.hist.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.hist.value_at_quantile(q))
    }

    pub fn p50(&self) -> Duration {
        self.quantile(0.5)
    }
    pub fn p90(&self) -> Duration {
        self.quantile(0.9)
    }
    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }
    pub fn p999(&self) -> Duration {
        self.quantile(0.999)
    }
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.hist.max())
    }

    /// Add another connection's report of the same run.
    pub fn merge(&mut self, other: &Report) {
        self.done += other.done;
        self.errors += other.errors;
        self.missed += other.missed;
        // Same bounds on both sides: adding cannot fail; saturate if it did.
        if self.hist.add(&other.hist).is_err() {
            self.hist.saturating_record(HIGHEST_US);
        }
    }

    /// One line: offered, achieved, errors, missed and the percentiles.
    pub fn line(&self) -> String {
        format!(
            "offered {:.0}/s achieved {:.0}/s ({} ok, {} errors, {} missed) p50 {} p90 {} p99 {} p99.9 {} max {}",
            self.offered,
            self.achieved(),
            self.done,
            self.errors,
            self.missed,
            ms(self.p50()),
            ms(self.p90()),
            ms(self.p99()),
            ms(self.p999()),
            ms(self.max())
        )
    }
}

/// A duration in milliseconds, two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `n` HTTP/1.1 keep-alive clients trusting exactly the certificates in
/// `ca_pem`, each holding at most one idle connection, each request bounded
/// by `timeout`.
pub fn clients(ca_pem: &Path, n: usize, timeout: Duration) -> Result<Vec<reqwest::Client>, String> {
    let roots = roots_trusting(ca_pem)?;
    (0..n)
        .map(|_| {
            let tls = rustls::ClientConfig::builder().with_root_certificates(roots.clone()).with_no_client_auth();
            reqwest::Client::builder()
                .tls_backend_preconfigured(tls)
                .http1_only()
                .pool_max_idle_per_host(1)
                .tcp_nodelay(true)
                .timeout(timeout)
                .connect_timeout(Duration::from_secs(3))
                .build()
                .map_err(|e| format!("http client: {e}"))
        })
        .collect()
}

/// One request: `method url` with a bearer token and an optional JSON body;
/// true if it was answered 2xx and its body read whole.
pub async fn send(client: &reqwest::Client, method: reqwest::Method, url: &str, token: &str, body: Option<Vec<u8>>) -> bool {
    let mut req = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    match req.send().await {
        Ok(resp) => {
            let ok = resp.status().is_success();
            resp.bytes().await.is_ok() && ok
        }
        Err(_) => false,
    }
}

/// Run `load`: `op(conn, k)` sends request `k` on connection `conn` and says
/// whether it succeeded. Every connection stops at the end of the window;
/// each request is bounded by the client's own timeout.
pub async fn run<F, Fut>(load: Load, op: F) -> Report
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let n = load.connections.max(1);
    let op = Arc::new(op);
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|conn| {
            let op = op.clone();
            tokio::spawn(async move { connection(conn, n, load, start, op).await })
        })
        .collect();
    let mut report = Report::empty(load.rate, load.duration);
    for t in tasks {
        match t.await {
            Ok(r) => report.merge(&r),
            // A panicking operation: count the connection's window as errors.
            Err(_) => report.errors += (load.rate * load.duration.as_secs_f64() / n as f64) as u64,
        }
    }
    report
}

async fn connection<F, Fut>(conn: usize, n: usize, load: Load, start: Instant, op: Arc<F>) -> Report
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let mut report = Report::empty(load.rate, load.duration);
    let end = load.warmup + load.duration;
    for j in 0..MAX_REQUESTS_PER_CONNECTION {
        let k = request_of(conn, n, j);
        let due = due_at(k, load.rate);
        if due >= end {
            break;
        }
        if start.elapsed() >= end {
            report.missed += missed_from(conn, n, j, load);
            break;
        }
        let wake = due.saturating_sub(TIMER_SLACK);
        if wake > start.elapsed() {
            tokio::time::sleep_until((start + wake).into()).await;
        }
        let sent = start.elapsed();
        let ok = op(conn, k).await;
        let done = start.elapsed();
        if due < load.warmup {
            continue;
        }
        if ok {
            report.done += 1;
            report.hist.saturating_record(micros(latency(due, sent, done)));
        } else {
            report.errors += 1;
        }
    }
    report
}

/// How many of connection `conn`'s requests from its `j`-th on are due in
/// the recorded window.
fn missed_from(conn: usize, n: usize, j: u64, load: Load) -> u64 {
    let end = load.warmup + load.duration;
    let mut missed = 0;
    for j in j..MAX_REQUESTS_PER_CONNECTION {
        let due = due_at(request_of(conn, n, j), load.rate);
        if due >= end {
            break;
        }
        missed += u64::from(due >= load.warmup);
    }
    missed
}

/// One request of [`simulate`]: due, sent and answered (from the start).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timed {
    pub due: Duration,
    pub sent: Duration,
    pub done: Duration,
    pub latency: Duration,
}

/// The schedule of [`run`] with perfect timers, for `count` requests at
/// `rate` over `connections`, each request taking `service(k)` once sent:
/// what the runner would measure. Indexed by request number.
pub fn simulate(rate: f64, connections: usize, count: u64, slack: Duration, service: impl Fn(u64) -> Duration) -> Vec<Timed> {
    let n = connections.max(1);
    let zero = Timed { due: Duration::ZERO, sent: Duration::ZERO, done: Duration::ZERO, latency: Duration::ZERO };
    let mut out = vec![zero; usize::try_from(count).unwrap_or(0)];
    for conn in 0..n {
        let mut free_at = Duration::ZERO;
        for j in 0..count {
            let k = request_of(conn, n, j);
            if k >= count {
                break;
            }
            let due = due_at(k, rate);
            let sent = send_at(due, free_at, slack);
            let done = sent + service(k);
            free_at = done;
            if let Some(t) = usize::try_from(k).ok().and_then(|i| out.get_mut(i)) {
                *t = Timed { due, sent, done, latency: latency(due, sent, done) };
            }
        }
    }
    out
}

/// A run keeps up with its rate: p99 within `p99_bound`, at least 95 % of
/// the offered rate achieved, at most 0.1 % of the requests failed.
pub fn sustained(r: &Report, p99_bound: Duration) -> bool {
    let total = r.done + r.errors + r.missed;
    r.done > 0 && r.p99() <= p99_bound && r.achieved() >= 0.95 * r.offered && r.errors.saturating_mul(1000) <= total
}

/// How [`find_max_rate`] searches.
#[derive(Clone, Copy, Debug)]
pub struct Search {
    /// The first rate tried.
    pub start: f64,
    /// Each step up multiplies the rate by this (> 1).
    pub factor: f64,
    /// Most runs in all.
    pub max_steps: usize,
    /// Stop bisecting when the highest sustained and the lowest
    /// unsustained rates are within this ratio (e.g. 1.05).
    pub resolution: f64,
    /// No new run starts after this long.
    pub time_limit: Duration,
    /// The p99 a sustained run stays within.
    pub p99_bound: Duration,
}

/// One run of a search.
#[derive(Clone, Debug)]
pub struct Step {
    pub rate: f64,
    pub sustained: bool,
    pub report: Report,
}

/// The next rate to try after `steps` (rate, sustained?), or None: done.
/// Up by `factor` while every run so far was sustained; down by `factor`
/// while none was; then the geometric middle of the highest sustained rate
/// and the lowest unsustained one above it, until they are within
/// `resolution`. Never more than `max_steps` runs.
pub fn next_rate(search: &Search, steps: &[(f64, bool)]) -> Option<f64> {
    if steps.len() >= search.max_steps || search.factor <= 1.0 || search.start <= 0.0 {
        return None;
    }
    if steps.is_empty() {
        return Some(search.start);
    }
    let lo = steps.iter().filter(|s| s.1).map(|s| s.0).fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    let hi = steps
        .iter()
        .filter(|s| !s.1 && lo.is_none_or(|lo| s.0 > lo))
        .map(|s| s.0)
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.min(r))));
    match (lo, hi) {
        (Some(lo), None) => Some(lo * search.factor),
        (None, Some(hi)) => Some(hi / search.factor),
        (Some(lo), Some(hi)) if hi / lo > search.resolution => Some((lo * hi).sqrt()),
        _ => None,
    }
}

/// Search for the highest rate `run` sustains (see [`next_rate`]); every run
/// in order. The best is the sustained step with the highest rate, if any.
pub async fn find_max_rate<R, Fut>(search: Search, mut run: R) -> Vec<Step>
where
    R: FnMut(f64) -> Fut,
    Fut: Future<Output = Report>,
{
    let begin = Instant::now();
    let mut steps: Vec<Step> = Vec::new();
    for _ in 0..search.max_steps {
        if begin.elapsed() >= search.time_limit {
            break;
        }
        let seen: Vec<(f64, bool)> = steps.iter().map(|s| (s.rate, s.sustained)).collect();
        let Some(rate) = next_rate(&search, &seen) else { break };
        let report = run(rate).await;
        let ok = sustained(&report, search.p99_bound);
        steps.push(Step { rate, sustained: ok, report });
    }
    steps
}

/// The sustained step with the highest rate.
pub fn best(steps: &[Step]) -> Option<&Step> {
    steps.iter().filter(|s| s.sustained).max_by(|a, b| a.rate.total_cmp(&b.rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn requests_are_due_at_fixed_intervals_from_the_start() {
        assert_eq!(due_at(0, 1000.0), Duration::ZERO);
        assert_eq!(due_at(1, 1000.0), Duration::from_millis(1));
        assert_eq!(due_at(2500, 1000.0), Duration::from_millis(2500));
        assert_eq!(due_at(3, 0.0), Duration::MAX);
        // Connection 2 of 4 takes requests 2, 6, 10, …
        assert_eq!((0..3).map(|j| request_of(2, 4, j)).collect::<Vec<_>>(), vec![2, 6, 10]);
    }

    #[test]
    fn a_steady_server_is_measured_at_its_service_time() {
        let t = simulate(1000.0, 1, 100, Duration::ZERO, |_| us(200));
        assert!(t.iter().all(|t| t.latency == us(200) && t.sent == t.due), "{t:?}");
    }

    #[test]
    fn a_stall_delays_every_request_due_during_it() {
        // One connection, one request every 1 ms, 100 µs each, but request
        // 10 (due at 10 ms) takes 50 ms: the server answers nothing from
        // 10 ms to 60 ms.
        let t = simulate(1000.0, 1, 200, Duration::ZERO, |k| if k == 10 { Duration::from_millis(50) } else { us(100) });
        let stall_end = Duration::from_millis(60);
        assert_eq!(t[10].latency, Duration::from_millis(50));
        for (k, r) in t.iter().enumerate().take(60).skip(11) {
            assert!(r.due < stall_end);
            // Sent only after the stall, yet timed from when it was due: the
            // wait is counted (uncorrected it would be its 100 µs).
            assert!(r.sent >= stall_end, "request {k}: {r:?}");
            assert!(r.latency >= stall_end - r.due + us(100), "request {k}: {r:?}");
            assert!(r.latency > r.done - r.sent, "request {k}: {r:?}");
        }
        // The backlog is worked off back to back (100 µs each, 0.9 ms gained
        // per request), and from then on latencies are the service time again.
        assert!(t[120..].iter().all(|r| r.latency == us(100)), "{:?}", &t[120..125]);
        // The histogram of the whole run shows it: p90 well above 100 µs
        // (about 50 of 200 requests waited), and the max is the stall.
        let mut r = Report::empty(1000.0, Duration::from_millis(200));
        for x in &t {
            r.done += 1;
            r.hist.saturating_record(micros(x.latency));
        }
        assert!(r.quantile(0.75) > Duration::from_millis(5), "p75 {:?}", r.quantile(0.75));
        assert!(r.max() >= Duration::from_millis(49), "max {:?}", r.max());
    }

    #[test]
    fn a_stall_on_one_connection_leaves_the_others_alone() {
        // Two connections at 1000/s: the even requests on one, the odd ones
        // on the other. Request 10 (even) stalls for 50 ms.
        let t = simulate(1000.0, 2, 200, Duration::ZERO, |k| if k == 10 { Duration::from_millis(50) } else { us(100) });
        assert!(t.iter().skip(11).step_by(2).all(|r| r.latency == us(100)), "odd requests were delayed");
        assert!(t[12].latency > Duration::from_millis(40), "{:?}", t[12]);
    }

    #[test]
    fn sending_early_by_the_timer_slack_is_timed_from_the_send() {
        // 500 µs per request, one every 1 ms, up to 1 ms early: a free
        // connection sends at most one tick before the request is due, and
        // such a request is timed from its send, never less than its service.
        let slack = Duration::from_millis(1);
        let t = simulate(1000.0, 1, 100, slack, |_| us(500));
        for r in &t {
            assert!(r.sent + slack >= r.due, "{r:?}");
            assert_eq!(r.latency, us(500), "{r:?}");
        }
        // The schedule stays absolute: 100 requests take about 100 ms, not 50.
        assert!(t[99].sent >= Duration::from_millis(98), "{:?}", t[99]);
    }

    #[test]
    fn the_latency_counts_from_the_due_time_when_sent_late() {
        assert_eq!(latency(us(1000), us(3000), us(3500)), us(2500));
        assert_eq!(latency(us(1000), us(400), us(900)), us(500));
        assert_eq!(send_at(us(1000), us(200), us(1000)), us(200));
        assert_eq!(send_at(us(5000), us(200), us(1000)), us(4000));
        assert_eq!(send_at(us(5000), us(7000), us(1000)), us(7000));
    }

    fn search() -> Search {
        Search {
            start: 1000.0,
            factor: 2.0,
            max_steps: 10,
            resolution: 1.1,
            time_limit: Duration::from_secs(60),
            p99_bound: Duration::from_millis(10),
        }
    }

    #[test]
    fn the_search_steps_up_then_bisects_and_stops() {
        let s = search();
        assert_eq!(next_rate(&s, &[]), Some(1000.0));
        assert_eq!(next_rate(&s, &[(1000.0, true)]), Some(2000.0));
        assert_eq!(next_rate(&s, &[(1000.0, true), (2000.0, true)]), Some(4000.0));
        // 4000 failed: between 2000 and 4000.
        let r = next_rate(&s, &[(1000.0, true), (2000.0, true), (4000.0, false)]).unwrap_or(0.0);
        assert!((r - 2828.4).abs() < 1.0, "{r}");
        // Within the resolution: done.
        assert_eq!(next_rate(&s, &[(2000.0, true), (2100.0, false)]), None);
        // Nothing sustained: down.
        assert_eq!(next_rate(&s, &[(1000.0, false)]), Some(500.0));
        // A lower rate failing after a higher one held (noise) does not
        // make the search go below what held.
        let r = next_rate(&s, &[(1000.0, true), (2000.0, true), (1500.0, false), (4000.0, false)]).unwrap_or(0.0);
        assert!(r > 2000.0 && r < 4000.0, "{r}");
        // Bounded in steps.
        let many: Vec<(f64, bool)> = (0..10).map(|i| (1000.0 * f64::from(i + 1), true)).collect();
        assert_eq!(next_rate(&s, &many), None);
    }

    #[tokio::test]
    async fn the_search_finds_a_servers_capacity() {
        // A fake server that keeps up to 7,000/s: the search ends within
        // 10 % of it, in at most max_steps runs.
        let s = search();
        let capacity = 7000.0;
        let steps = find_max_rate(s, |rate| {
            let mut r = Report::empty(rate, Duration::from_secs(1));
            r.done = rate.min(capacity) as u64;
            let lat = if rate <= capacity { 1 } else { 50 };
            r.hist.saturating_record(lat * 1000);
            async move { r }
        })
        .await;
        assert!(steps.len() <= s.max_steps);
        let b = best(&steps).map(|b| b.rate).unwrap_or(0.0);
        assert!(
            b <= capacity && b > capacity / 1.1,
            "best {b}, steps {:?}",
            steps.iter().map(|s| (s.rate, s.sustained)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_run_is_sustained_only_if_it_keeps_up() {
        let mut r = Report::empty(1000.0, Duration::from_secs(1));
        r.done = 1000;
        r.hist.saturating_record(2000);
        assert!(sustained(&r, Duration::from_millis(10)));
        assert!(!sustained(&r, Duration::from_millis(1)), "p99 over the bound");
        r.done = 900;
        assert!(!sustained(&r, Duration::from_millis(10)), "achieved below 95 %");
        r.done = 1000;
        r.errors = 5;
        assert!(!sustained(&r, Duration::from_millis(10)), "0.5 % errors");
    }
}
