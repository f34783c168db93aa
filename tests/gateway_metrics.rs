//! `/metrics` end to end: a real gateway in front of two real chassis, scraped
//! before and after a known workload (and a `kill -9` of the primary); every
//! counter must have moved by what the workload did, and the text must parse
//! as Prometheus text with a parser that is not ours.

use std::collections::HashMap;
use std::time::Duration;

use pairgate_suite::api::client_trusting;
use pairgate_suite::pair::Pair;
use serde_json::json;

/// One scrape: every sample by its name and sorted labels.
#[derive(Debug)]
struct Scrape(HashMap<String, f64>);

impl Scrape {
    /// The value of `name{labels}` (labels as `k=v` pairs, any order); 0 if absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0.get(&key(name, labels)).copied().unwrap_or(0.0)
    }
    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.0.contains_key(&key(name, labels))
    }
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    l.sort();
    format!("{name}{{{}}}", l.join(","))
}

async fn scrape(pair: &Pair, token: Option<&str>) -> (u16, String, String) {
    let client = client_trusting(Some(&pair.gw.cert));
    let mut req = client.get(format!("{}/metrics", pair.gw.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("GET /metrics");
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (status, ct, r.text().await.expect("metrics body"))
}

/// Scrape with the admin token and parse with `prometheus-parse`.
async fn parsed(pair: &Pair) -> Scrape {
    let (status, ct, text) = scrape(pair, Some(&pair.gw.admin_token)).await;
    assert_eq!(status, 200, "{text}");
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let doc = prometheus_parse::Scrape::parse(lines).expect("the metrics parse as Prometheus text");
    let mut out = HashMap::new();
    for s in doc.samples {
        let labels: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let v = match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => {
                // The parser folds buckets into one value; keep the count by its name.
                h.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert(key(&s.metric, &labels), v);
    }
    // The histograms' _count lines, read straight from the text (the parser folds them).
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some((series, value)) = line.rsplit_once(' ') {
            if series.contains("_count") {
                let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
                let labels: Vec<(&str, &str)> = labels
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|kv| !kv.is_empty())
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k, v.trim_matches('"')))
                    .collect();
                out.insert(key(name, &labels), value.parse().expect("a number"));
            }
        }
    }
    Scrape(out)
}

#[tokio::test]
async fn counters_move_by_what_a_known_workload_did() {
    let mut pair = Pair::start().await;

    // Behind the admin token by default.
    let (status, _, body) = scrape(&pair, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = scrape(&pair, Some("not-the-token")).await;
    assert_eq!(status, 401, "{body}");

    let api = pair.gw.login("admin", "admin").await;
    let wall = api.post("/walls", json!({"name": "metrics", "rows": 1, "cols": 1, "outputs": [1]})).await.ok().id();
    let window = api.post(&format!("/walls/{wall}/windows"), json!({"source_id": 1, "x": 0, "y": 0, "w": 10, "h": 10})).await.ok().id();
    let before = parsed(&pair).await;

    // The workload: 5 reads, 3 window moves, one of them repeated with its
    // Idempotency-Key, one 404 read.
    const READS: u32 = 5;
    const MOVES: u32 = 3;
    for _ in 0..READS {
        api.get("/walls").await.ok();
    }
    for k in 0..MOVES {
        let key = format!("move-{k}");
        let r = api
            .call(
                "PUT",
                &format!("/walls/{wall}/windows/{window}"),
                Some(json!({"x": k, "y": 0, "w": 10, "h": 10})),
                &[("Idempotency-Key", &key)],
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let again = api
        .call(
            "PUT",
            &format!("/walls/{wall}/windows/{window}"),
            Some(json!({"x": 0, "y": 0, "w": 10, "h": 10})),
            &[("Idempotency-Key", "move-0")],
        )
        .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(api.get("/walls/999999").await.status, 404);
    let after = parsed(&pair).await;

    let moved = |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let read_ok = [("class", "read"), ("code", "200")];
    let mutate_ok = [("class", "mutate"), ("code", "200")];
    assert_eq!(moved("pairgate_requests_total", &read_ok), f64::from(READS), "{after:?}");
    assert_eq!(moved("pairgate_requests_total", &[("class", "read"), ("code", "404")]), 1.0);
    // Three journaled, one answered from the store: four 200s.
    assert_eq!(moved("pairgate_requests_total", &mutate_ok), f64::from(MOVES + 1));
    assert_eq!(moved("pairgate_answers_total", &[("row", "primary_answered")]), f64::from(MOVES));
    assert_eq!(moved("pairgate_idempotency_hits_total", &[]), 1.0);
    assert_eq!(moved("pairgate_journal_last_seq", &[]), f64::from(MOVES));
    assert!(moved("pairgate_journal_commit_duration_seconds_count", &[]) >= 1.0);
    assert_eq!(moved("pairgate_request_duration_seconds_count", &[("class", "read")]), f64::from(READS + 1));
    // The first scrape itself was counted, and the scrape before it was refused.
    assert!(after.get("pairgate_requests_total", &[("class", "metrics"), ("code", "200")]) >= 1.0);
    assert_eq!(after.get("pairgate_requests_total", &[("class", "metrics"), ("code", "401")]), 2.0);
    for c in ["a", "b"] {
        // Each chassis got every move (and the health probes meanwhile).
        assert!(moved("pairgate_chassis_requests_total", &[("chassis", c), ("outcome", "2xx")]) >= f64::from(MOVES), "{c}: {after:?}");
        assert_eq!(after.get("pairgate_chassis_state", &[("chassis", c), ("state", "in_sync")]), 1.0, "{c}");
        assert_eq!(after.get("pairgate_chassis_lag_entries", &[("chassis", c)]), 0.0, "{c}");
    }
    assert_eq!(after.get("pairgate_chassis_primary", &[("chassis", "a")]), 1.0);
    assert_eq!(after.get("pairgate_sessions", &[]), 1.0);
    assert!(after.get("pairgate_journal_disk_bytes", &[]) > 0.0);
    assert_eq!(moved("pairgate_failovers_total", &[]), 0.0);

    // kill -9 the primary; the next move fails over to b.
    pair.a.kill9();
    let r = api.put(&format!("/walls/{wall}/windows/{window}"), json!({"x": 9, "y": 0, "w": 10, "h": 10})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut last = None;
    for _ in 0..50 {
        let s = parsed(&pair).await;
        if s.get("pairgate_chassis_state", &[("chassis", "a"), ("state", "down")]) == 1.0 {
            last = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let down = last.expect("chassis a shown down within 5 s");
    assert_eq!(down.get("pairgate_chassis_state", &[("chassis", "a"), ("state", "in_sync")]), 0.0);
    assert_eq!(down.get("pairgate_chassis_primary", &[("chassis", "b")]), 1.0);
    assert_eq!(down.get("pairgate_failovers_total", &[]) - before.get("pairgate_failovers_total", &[]), 1.0);
    // The move's verdict: b answered for a failing a, or a was already known down.
    let failover_rows = down.get("pairgate_answers_total", &[("row", "failover")])
        + down.get("pairgate_answers_total", &[("row", "primary_answered")])
        - after.get("pairgate_answers_total", &[("row", "failover")])
        - after.get("pairgate_answers_total", &[("row", "primary_answered")]);
    assert_eq!(failover_rows, 1.0, "{down:?}");
    assert!(
        down.get("pairgate_chassis_requests_total", &[("chassis", "a"), ("outcome", "refused")]) >= 1.0
            || down.has("pairgate_chassis_requests_total", &[("chassis", "a"), ("outcome", "no_answer")])
    );
    pair.gw.stop(Duration::from_secs(5));
}

#[tokio::test]
async fn metrics_open_answers_without_a_token() {
    let pair = Pair::start_with(|text| {
        *text = text.replacen("[listen]\n", "[listen]\nmetrics_open = true\n", 1);
    })
    .await;
    let (status, _, text) = scrape(&pair, None).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("pairgate_chassis_state{"), "{text}");
}

/// `--log-format json`: one access-log line per request, as JSON, with the
/// request id (also sent back as `x-request-id`) and the mutation's seq in its
/// span; the path without its query, and no token anywhere in the log.
#[tokio::test]
async fn the_access_log_has_one_json_line_per_request_with_its_id_and_seq() {
    let mut pair = Pair::start_logged(|_| {}, "pairgate=info").await;
    pair.gw.stop(Duration::from_secs(5));
    pair.gw.args = vec!["--log-format".into(), "json".into()];
    pair.gw.start().expect("restart with --log-format json");
    pair.gw.wait_in_sync(Duration::from_secs(20)).await;
    let api = pair.gw.login("admin", "admin").await;
    let token = api.token.clone().expect("a session token");
    let client = client_trusting(Some(&pair.gw.cert));
    let wall = api.post("/walls", json!({"name": "logged", "rows": 1, "cols": 1, "outputs": [2]})).await.ok().id();
    let r = client
        .put(format!("{}/api/v1/walls/{wall}", pair.gw.base))
        .bearer_auth(&token)
        .header("x-request-id", "client-chosen-1")
        .json(&json!({"name": "renamed"}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "client-chosen-1");
    let seq: u64 = r.headers()["x-pairgate-seq"].to_str().unwrap().parse().unwrap();
    // A read whose query carries the token: the log must not.
    let r = client.get(format!("{}/api/v1/walls?token={token}", pair.gw.base)).bearer_auth(&token).send().await.expect("GET");
    assert_eq!(r.status(), 200);
    let read_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(read_id, "client-chosen-1");
    pair.gw.stop(Duration::from_secs(5));

    let log = std::fs::read_to_string(&pair.gw.log.as_ref().unwrap().1).expect("the gateway's log");
    assert!(!log.contains(&token), "a session token is in the log");
    let json_lines: Vec<serde_json::Value> =
        log.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert!(!json_lines.is_empty(), "no JSON lines in\n{log}");
    let access: Vec<&serde_json::Value> = json_lines.iter().filter(|l| l["target"] == "pairgate::access").collect();
    let put =
        access.iter().find(|l| l["span"]["id"] == "client-chosen-1").unwrap_or_else(|| panic!("no access line for the PUT in\n{log}"));
    assert_eq!(put["method"], "PUT");
    assert_eq!(put["path"], format!("/api/v1/walls/{wall}"));
    assert_eq!(put["class"], "mutate");
    assert_eq!(put["status"], 200);
    assert_eq!(put["seq"], seq.to_string());
    assert_eq!(put["span"]["seq"], seq);
    assert_eq!(put["chassis"], "a");
    assert!(put["duration_ms"].as_f64().is_some_and(|d| d > 0.0), "{put}");
    let reads: Vec<_> = access.iter().filter(|l| l["span"]["id"] == read_id.as_str()).collect();
    assert_eq!(reads.len(), 1, "one line per request: {reads:?}");
    assert_eq!(reads[0]["path"], "/api/v1/walls");
    assert_eq!(reads[0]["class"], "read");
    assert_eq!(reads[0]["seq"], "-");
}

/// Read coalescing (`[reads] coalesce`, on by default), end to end: reads of
/// one long listing sent at once share chassis requests (the counters say
/// how many), and a read sent after a mutation's answer always shows it,
/// even while a read of the same listing sent before the mutation is still
/// on its way (a big `GET /sources` is slow to serialize on the chassis; a
/// rename of one source is fast: that read's flight outlives the rename).
#[tokio::test]
async fn identical_reads_share_chassis_requests_but_never_one_sent_before_an_answered_mutation() {
    let mut pair = Pair::start_with_rows(20_000, |_| {}).await;
    let api = pair.gw.login("admin", "admin").await;
    let id = 1_000_u64; // one of the loaded IP sources
    assert_eq!(api.get(&format!("/sources/{id}")).await.ok().body["kind"], "ip");
    let before = parsed(&pair).await;

    // 12 identical reads at once.
    const AT_ONCE: usize = 12;
    let reads: Vec<_> = (0..AT_ONCE)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.get("/sources").await.status })
        })
        .collect();
    for r in reads {
        assert_eq!(r.await.expect("a read task"), 200);
    }
    let after = parsed(&pair).await;
    let moved = |name: &str| after.get(name, &[]) - before.get(name, &[]);
    assert_eq!(moved("pairgate_reads_total"), AT_ONCE as f64, "{after:?}");
    let shared = moved("pairgate_reads_coalesced_total");
    assert!(shared >= 1.0 && shared < AT_ONCE as f64, "{shared} of {AT_ONCE} reads shared: {after:?}");

    // A rename answered while a listing read sent before it is in flight:
    // the listing read sent after the answer shows the new name.
    let name_of = |body: &serde_json::Value| -> Option<serde_json::Value> {
        body.as_array().and_then(|rows| rows.iter().find(|r| r["id"] == id)).map(|r| r["name"].clone())
    };
    let mut overlapped = 0;
    for k in 0..10 {
        let slow = {
            let api = api.clone();
            tokio::spawn(async move { api.get("/sources").await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let name = json!(format!("renamed {k}"));
        api.put(&format!("/sources/{id}"), json!({"name": name})).await.ok();
        let in_flight = !slow.is_finished();
        let fresh = api.get("/sources").await.ok();
        assert_eq!(name_of(&fresh.body), Some(name.clone()), "round {k}: a read sent after the rename's answer");
        let old = slow.await.expect("the slow read").ok();
        if in_flight && name_of(&old.body) != Some(name) {
            overlapped += 1;
        }
    }
    // The staging held: in most rounds the read sent before the rename
    // showed the old name and was still on its way when the next was sent.
    assert!(overlapped >= 3, "only {overlapped} of 10 rounds had a read in flight across the rename");
    pair.gw.stop(Duration::from_secs(5));
}
