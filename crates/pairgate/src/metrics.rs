//! `/metrics`: what the gateway counts, in the Prometheus text format
//! (prometheus-client's encoder, OpenMetrics 1.0 text, which Prometheus scrapes
//! as it is).
//!
//! Two kinds of metric:
//! - **counted as it happens** (the [`Metrics`] value every part holds an `Arc`
//!   of): requests by route class and status, their latency; chassis requests by
//!   chassis and outcome, their latency; the answer table's rows; the journal's
//!   commit latency; `Idempotency-Key` repeats answered from the store;
//! - **read at scrape time** from the gateway's own state ([`render`]): each
//!   chassis' state, the primary, applied positions and lag, the journal's depth
//!   and disk use, sessions, failovers, resyncs, divergences, and each
//!   certificate's expiry (read from the files the configuration names).
//!   Nothing is copied into a metric to be read back: the status page and the
//!   scrape read the same values.
//!
//! Who may scrape is `[listen] metrics_open` (default false: the admin token as
//! a bearer); the path is a `metrics` route rule in `gateway.toml`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::chassis::detector::ChassisState;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets: 0.25 ms to ~8 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_25, 2.0, 16)
}

fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

/// A request to the gateway: its route class and the status it got.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub class: &'static str,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: &'static str,
}

/// A request to a chassis: which, and what happened (`Outcome::label`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChassisOutcome {
    pub chassis: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChassisLabel {
    pub chassis: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RowLabel {
    pub row: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metrics counted as they happen (see the module docs).
pub struct Metrics {
    /// Every request the front answered, by route class and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Their latency, from the first phase to the response head, by class.
    pub request_seconds: Histograms<ClassLabel>,
    /// Every request sent to a chassis (reads, mutations, logins, probes,
    /// resyncs), by chassis and outcome.
    pub chassis_requests: Family<ChassisOutcome, Counter>,
    /// Their latency until the answer was read, by chassis.
    pub chassis_seconds: Histograms<ChassisLabel>,
    /// Mutations by the answer table's row they were decided by (`Verdict::row`).
    pub answers: Family<RowLabel, Counter>,
    /// Mutations answered from the store: a client repeated an `Idempotency-Key`.
    pub idempotency_hits: Counter,
    registry: Registry,
}

impl Metrics {
    /// `journal_commits`: the journal's own commit-latency histogram.
    pub fn new(journal_commits: Histogram) -> Metrics {
        let m = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            chassis_requests: Family::default(),
            chassis_seconds: Family::new_with_constructor(latency_histogram),
            answers: Family::default(),
            idempotency_hits: Counter::default(),
            registry: Registry::default(),
        };
        let mut registry = Registry::with_prefix("pairgate");
        registry.register("requests", "Requests answered, by route class and HTTP status", m.requests.clone());
        registry.register("request_duration_seconds", "Request latency by route class", m.request_seconds.clone());
        registry.register("chassis_requests", "Requests sent to a chassis, by chassis and outcome", m.chassis_requests.clone());
        registry.register("chassis_request_duration_seconds", "Chassis request latency, by chassis", m.chassis_seconds.clone());
        registry.register("answers", "Mutations by the row of the answer table that decided them", m.answers.clone());
        registry.register("idempotency_hits", "Mutations answered from the store (a repeated Idempotency-Key)", m.idempotency_hits.clone());
        registry.register("journal_commit_duration_seconds", "Journal group commits (one fsync each), their latency", journal_commits);
        Metrics { registry, ..m }
    }

    /// One request answered by the front.
    pub fn request(&self, class: &'static str, code: u16, took: Duration) {
        self.requests.get_or_create(&RequestLabels { class, code }).inc();
        self.request_seconds.get_or_create(&ClassLabel { class }).observe(took.as_secs_f64());
    }

    /// One request to chassis `chassis`, and what happened to it (`Outcome::label`).
    pub fn chassis_request(&self, chassis: &str, outcome: &'static str, took: Duration) {
        self.chassis_requests.get_or_create(&ChassisOutcome { chassis: chassis.to_string(), outcome }).inc();
        self.chassis_seconds.get_or_create(&ChassisLabel { chassis: chassis.to_string() }).observe(took.as_secs_f64());
    }

    /// One mutation decided by the answer table's row `row` (`Verdict::row`).
    pub fn answered(&self, row: &'static str) {
        self.answers.get_or_create(&RowLabel { row }).inc();
    }
}

/// A journal commit-latency histogram (the journal observes into it).
pub fn commit_histogram() -> Histogram {
    latency_histogram()
}

/// The chassis states, each a `state` label of `pairgate_chassis_state`.
const STATES: [ChassisState; 4] = [ChassisState::InSync, ChassisState::CatchingUp, ChassisState::FullResync, ChassisState::Down];

pub fn state_name(s: ChassisState) -> &'static str {
    match s {
        ChassisState::InSync => "in_sync",
        ChassisState::CatchingUp => "catching_up",
        ChassisState::FullResync => "full_resync",
        ChassisState::Down => "down",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    chassis: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResyncLabels {
    chassis: String,
    result: &'static str,
}

/// One chassis as a scrape sees it.
pub struct ChassisView {
    pub name: String,
    pub state: ChassisState,
    pub primary: bool,
    /// None: the journal could not say (shown as absent, not as 0).
    pub applied: Option<u64>,
    pub resyncs_done: u64,
    pub resyncs_failed: u64,
}

/// Everything read at scrape time (see the module docs).
pub struct Snapshot {
    pub chassis: Vec<ChassisView>,
    pub last_seq: u64,
    pub journal_depth: u64,
    /// The journal's files on disk (database and write-ahead log).
    pub journal_disk_bytes: u64,
    pub sessions: u64,
    pub failovers: u64,
    pub divergences: u64,
    pub reads: u64,
    /// Reads answered by an identical read's chassis request (`coalesce.rs`).
    pub coalesced_reads: u64,
    pub failed_reads: u64,
    pub store_errors: u64,
    /// Every certificate the running configuration uses or trusts (as read
    /// at the start or the last reload, `certs::InventoryCache`; the time
    /// left counted at the scrape).
    pub certificates: Vec<CertExpiry>,
}

/// One certificate as a scrape sees it.
pub struct CertExpiry {
    /// `gateway`, `chassis a`, `superior` (`certs::Role`).
    pub role: String,
    pub path: String,
    /// Until its not-after; negative once it has expired.
    pub seconds_left: i64,
    /// Within `certs::WARN_DAYS` of its not-after, or past it.
    pub expiring: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    role: String,
    path: String,
}

/// The whole scrape: the counted metrics, then the snapshot's.
pub fn render(m: &Metrics, s: &Snapshot) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode_registry(&mut out, &m.registry)?;
    prometheus_client::encoding::text::encode_registry(&mut out, &snapshot_registry(s))?;
    prometheus_client::encoding::text::encode_eof(&mut out)?;
    Ok(out)
}

fn gauge(v: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    g
}

fn counter(v: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(v);
    c
}

fn snapshot_registry(s: &Snapshot) -> Registry {
    let mut r = Registry::with_prefix("pairgate");
    let state: Family<StateLabels, Gauge> = Family::default();
    let primary: Family<ChassisLabel, Gauge> = Family::default();
    let applied: Family<ChassisLabel, Gauge> = Family::default();
    let lag: Family<ChassisLabel, Gauge> = Family::default();
    let resyncs: Family<ResyncLabels, Counter> = Family::default();
    for c in &s.chassis {
        for st in STATES {
            state.get_or_create(&StateLabels { chassis: c.name.clone(), state: state_name(st) }).set(i64::from(c.state == st));
        }
        let name = ChassisLabel { chassis: c.name.clone() };
        primary.get_or_create(&name).set(i64::from(c.primary));
        if let Some(a) = c.applied {
            applied.get_or_create(&name).set(i64::try_from(a).unwrap_or(i64::MAX));
            lag.get_or_create(&name).set(i64::try_from(s.last_seq.saturating_sub(a)).unwrap_or(i64::MAX));
        }
        resyncs.get_or_create(&ResyncLabels { chassis: c.name.clone(), result: "done" }).inc_by(c.resyncs_done);
        resyncs.get_or_create(&ResyncLabels { chassis: c.name.clone(), result: "failed" }).inc_by(c.resyncs_failed);
    }
    // One sample per file: a file holding a chain shows its soonest expiry.
    let mut soonest: std::collections::BTreeMap<(&str, &str), i64> = std::collections::BTreeMap::new();
    for c in &s.certificates {
        let left = soonest.entry((c.role.as_str(), c.path.as_str())).or_insert(c.seconds_left);
        *left = (*left).min(c.seconds_left);
    }
    let expiry: Family<CertLabels, Gauge> = Family::default();
    for ((role, path), left) in soonest {
        expiry.get_or_create(&CertLabels { role: role.to_string(), path: path.to_string() }).set(left);
    }
    let expiring = s.certificates.iter().filter(|c| c.expiring).count() as u64;
    r.register(
        "certificate_expiry_seconds",
        "Seconds until the soonest not-after of the certificates in each file the configuration names (negative: expired)",
        expiry,
    );
    r.register("certificates_expiring", "Certificates that expire within 30 days or have expired", gauge(expiring));
    r.register("chassis_state", "1 for the state each chassis is in, 0 for the others", state);
    r.register("chassis_primary", "1 for the primary chassis", primary);
    r.register("chassis_applied_seq", "The last journal entry each chassis applied", applied);
    r.register("chassis_lag_entries", "Journal entries each chassis has not applied yet", lag);
    r.register("resyncs", "Full resyncs of a chassis, by result", resyncs);
    r.register("journal_last_seq", "The newest journal entry's seq", gauge(s.last_seq));
    r.register("journal_depth_entries", "Entries the slowest chassis has not applied", gauge(s.journal_depth));
    r.register("journal_disk_bytes", "The journal's files on disk (database and write-ahead log)", gauge(s.journal_disk_bytes));
    r.register("sessions", "Live gateway sessions", gauge(s.sessions));
    r.register("failovers", "Times the primary changed", counter(s.failovers));
    r.register("divergences", "Mutations the two chassis answered differently", counter(s.divergences));
    r.register("reads", "Client reads, answered or not", counter(s.reads));
    r.register("reads_coalesced", "Client reads answered by an identical read's chassis request", counter(s.coalesced_reads));
    r.register("failed_reads", "Reads no chassis could answer", counter(s.failed_reads));
    r.register("session_store_errors", "Writes to the session store that failed", counter(s.store_errors));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            chassis: vec![
                ChassisView {
                    name: "a".into(),
                    state: ChassisState::InSync,
                    primary: true,
                    applied: Some(7),
                    resyncs_done: 1,
                    resyncs_failed: 0,
                },
                ChassisView {
                    name: "b".into(),
                    state: ChassisState::CatchingUp,
                    primary: false,
                    applied: None,
                    resyncs_done: 0,
                    resyncs_failed: 2,
                },
            ],
            last_seq: 9,
            journal_depth: 2,
            journal_disk_bytes: 4096,
            sessions: 3,
            failovers: 1,
            divergences: 0,
            reads: 12,
            coalesced_reads: 5,
            failed_reads: 0,
            store_errors: 0,
            certificates: vec![
                CertExpiry { role: "gateway".into(), path: "/c/gw.pem".into(), seconds_left: 9 * 86_400, expiring: true },
                // The chain's CA, in the same file: the file shows the sooner.
                CertExpiry { role: "gateway".into(), path: "/c/gw.pem".into(), seconds_left: 300 * 86_400, expiring: false },
                CertExpiry { role: "chassis a".into(), path: "/c/ca.pem".into(), seconds_left: -5, expiring: true },
            ],
        }
    }

    #[test]
    fn counted_and_scraped_values_appear_once_each_with_their_labels() {
        let m = Metrics::new(commit_histogram());
        m.request("read", 200, Duration::from_millis(2));
        m.request("read", 200, Duration::from_millis(3));
        m.request("mutate", 503, Duration::from_millis(3));
        m.answered("outcome_unknown");
        let text = render(&m, &snapshot()).unwrap();
        assert!(text.contains("pairgate_requests_total{class=\"read\",code=\"200\"} 2\n"), "{text}");
        assert!(text.contains("pairgate_requests_total{class=\"mutate\",code=\"503\"} 1\n"), "{text}");
        assert!(text.contains("pairgate_request_duration_seconds_count{class=\"read\"} 2\n"), "{text}");
        assert!(text.contains("pairgate_answers_total{row=\"outcome_unknown\"} 1\n"), "{text}");
        assert!(text.contains("pairgate_chassis_state{chassis=\"b\",state=\"catching_up\"} 1\n"), "{text}");
        assert!(text.contains("pairgate_chassis_state{chassis=\"b\",state=\"in_sync\"} 0\n"), "{text}");
        assert!(text.contains("pairgate_chassis_lag_entries{chassis=\"a\"} 2\n"), "{text}");
        // No position known: no sample, not a made-up 0.
        assert!(!text.contains("pairgate_chassis_applied_seq{chassis=\"b\"}"), "{text}");
        assert!(text.contains("pairgate_resyncs_total{chassis=\"b\",result=\"failed\"} 2\n"), "{text}");
        assert!(text.contains("pairgate_failovers_total 1\n"), "{text}");
        assert!(text.contains("pairgate_reads_total 12\n"), "{text}");
        assert!(text.contains("pairgate_reads_coalesced_total 5\n"), "{text}");
        assert!(text.contains("pairgate_certificate_expiry_seconds{role=\"gateway\",path=\"/c/gw.pem\"} 777600\n"), "{text}");
        assert!(text.contains("pairgate_certificate_expiry_seconds{role=\"chassis a\",path=\"/c/ca.pem\"} -5\n"), "{text}");
        assert!(text.contains("pairgate_certificates_expiring 2\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
    }
}
