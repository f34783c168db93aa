//! Feature discovery: what each chassis' firmware offers
//! ([`crate::chassis::features`]), learnt at start and again whenever the
//! chassis comes back (a firmware update happens with a restart).

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;

use crate::chassis::detector::ChassisState;
use crate::chassis::features::{Discovered, Features, Source};
use crate::chassis::pair::Pair;
use crate::chassis::upstream::Outcome;
use crate::recovery::service::service_send;
use crate::session::broker::Broker;

const INFO: &str = "/api/v1/system/info";

/// What one `GET /system/info` told, or why it told nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    Known(Discovered),
    /// No answer worth taking (refused, timed out, 5xx, not JSON): ask again.
    Again(String),
}

/// Read an answer to `GET /system/info`: its `features`; a 404 (firmware
/// without the endpoint) means none are assumed.
pub fn read_info(outcome: &Outcome) -> (Asked, Vec<String>) {
    match outcome {
        Outcome::Answered(a) if a.is_success() => match serde_json::from_slice::<serde_json::Value>(&a.body) {
            Ok(info) => {
                let (features, unknown) = Features::from_info(&info);
                (Asked::Known(Discovered::new(features, Source::Reported)), unknown)
            }
            Err(e) => (Asked::Again(format!("GET /system/info answered {} with no JSON: {e}", a.status)), Vec::new()),
        },
        Outcome::Answered(a) if a.status == 404 => (Asked::Known(Discovered::new(Features::none(), Source::NotReported)), Vec::new()),
        other => (Asked::Again(format!("GET /system/info: {}", other.describe())), Vec::new()),
    }
}

/// Runs for the gateway's life, one per chassis: learn its features each
/// time it leaves `down` (with the gateway's service account), or take the
/// configured ones once.
pub async fn discover(pair: Arc<Pair>, broker: Arc<Broker>, i: usize, configured: Option<Features>, per_try: Duration) {
    let m = &pair.members[i];
    if let Some(features) = configured {
        record(&pair, i, Discovered::new(features, Source::Configured));
        return;
    }
    let mut state = m.detector.watch();
    loop {
        if state.wait_for(|s| *s != ChassisState::Down).await.is_err() {
            return;
        }
        let mut delay = Duration::from_millis(100);
        loop {
            let outcome = service_send(&broker, &pair, i, &Method::GET, INFO, None, per_try).await;
            let (asked, unknown) = read_info(&outcome);
            if !unknown.is_empty() {
                tracing::info!(chassis = %m.upstream.name, ?unknown, "features the gateway does not know of are left aside");
            }
            match asked {
                Asked::Known(d) => {
                    record(&pair, i, d);
                    break;
                }
                Asked::Again(why) => {
                    tracing::debug!(chassis = %m.upstream.name, "feature discovery: {why}");
                    if m.detector.state() == ChassisState::Down {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        if state.wait_for(|s| *s == ChassisState::Down).await.is_err() {
            return;
        }
    }
}

/// Keep what was learnt; say it in the log when it is new or changed.
fn record(pair: &Pair, i: usize, d: Discovered) {
    let m = &pair.members[i];
    let mut known = m.features.lock();
    let d = d.keeping_what_was_caught(known.as_ref());
    if known.as_ref() == Some(&d) {
        return;
    }
    match &d.unsupported {
        None => tracing::info!(chassis = %m.upstream.name, features = ?d.features.names(), source = ?d.source, "chassis features"),
        Some(why) => tracing::error!(
            chassis = %m.upstream.name, features = ?d.features.names(), source = ?d.source,
            "chassis features: {why}; this gateway cannot keep it in sync yet"
        ),
    }
    *known = Some(d);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chassis::features::Feature;
    use crate::chassis::upstream::Answered;

    fn answered(status: u16, body: &str) -> Outcome {
        Outcome::Answered(Answered { status, content_type: None, body: bytes::Bytes::from(body.to_string()) })
    }

    #[test]
    fn an_info_answer_gives_the_features_a_404_gives_none_and_a_failure_asks_again() {
        let (asked, _) = read_info(&answered(200, r#"{"features": ["id_block", "digest"]}"#));
        let Asked::Known(d) = asked else { panic!("{asked:?}") };
        assert!(d.has(Feature::IdBlock) && d.has(Feature::Digest) && !d.has(Feature::ExportImport));
        assert_eq!(d.source, Source::Reported);
        let (asked, _) = read_info(&answered(404, r#"{"error": {"code": "no_such_endpoint"}}"#));
        assert_eq!(asked, Asked::Known(Discovered::new(Features::none(), Source::NotReported)));
        for o in [answered(503, "{}"), answered(200, "<html>"), Outcome::Refused("connection refused".into())] {
            assert!(matches!(read_info(&o).0, Asked::Again(_)), "{o:?}");
        }
    }
}
