//! Read coalescing: identical reads in flight at the same moment share one
//! chassis request.
//!
//! A control room polls: every operator console and every script asks for
//! the same walls, windows and sources, often within the same millisecond.
//! A read that arrives while an identical one (same account, method, path and
//! query, forwarded headers, no body) is already on its way to a chassis waits
//! for that answer instead of sending its own.
//!
//! Sharing must never hide a mutation a client has already been told about.
//! [`Coalescer::mutation_answered`] is called for every mutation before its
//! answer leaves the gateway; each flight remembers the count at the moment
//! it was started, and a read joins a flight only if no mutation has been
//! answered since. So a read that shares an answer shares the answer of a
//! chassis request sent after every mutation acknowledged before that read
//! arrived: what it would have been shown had it sent its own. A change the
//! chassis makes by itself (a signal lost) is as visible as to a read that
//! arrived a moment earlier, at most one chassis round trip old.
//!
//! Flights are keyed by account: a read is sent as its account's chassis
//! session, so one account's answer never reaches another account's client
//! (no request is answered with more rights than its sender had).
//!
//! The leader's future runs inside the leader's request; if that request is
//! dropped (the client went away), its flight is removed and every read that
//! joined it sends its own.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::chassis::upstream::{forwardable, Answered};

/// What makes two reads the same read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReadKey {
    /// The account the read is sent as (`None`: a static file, no session).
    pub account: Option<String>,
    pub method: Method,
    /// The canonical path and the query, as forwarded.
    pub path_and_query: String,
    /// The headers forwarded to a chassis, in the client's order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ReadKey {
    /// The key of a read, or `None` for one that is never shared (it has a
    /// body: rare for a read, and not worth comparing).
    pub fn of(account: Option<&str>, method: &Method, path_and_query: &str, headers: &HeaderMap, body: &[u8]) -> Option<Self> {
        if !body.is_empty() {
            return None;
        }
        Some(ReadKey {
            account: account.map(str::to_string),
            method: method.clone(),
            path_and_query: path_and_query.to_string(),
            headers: headers.iter().filter(|(k, _)| forwardable(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
        })
    }
}

/// How a read ended, shared with every read that joined it.
#[derive(Clone, Debug)]
pub enum ReadReply {
    /// A chassis' answer (its index in the pair).
    Chassis(Answered, usize),
    /// The account's own login was refused: the account's failure, not the
    /// chassis'.
    AccountRefused(String),
    /// No in-sync chassis answered; why the last one did not.
    Unavailable(String),
}

/// One read on its way to a chassis.
struct Flight<V> {
    /// Tells this flight from a newer one under the same key.
    id: u64,
    /// [`Coalescer::answered`] when the flight was started.
    answered: u64,
    answer: watch::Receiver<Option<V>>,
}

/// The reads in flight, by key, and the count that decides who may join them.
pub struct Coalescer<V = ReadReply> {
    /// Mutations answered to clients since the gateway started.
    answered: AtomicU64,
    /// The next flight's id.
    next: AtomicU64,
    flights: Mutex<HashMap<ReadKey, Flight<V>>>,
}

impl<V> Default for Coalescer<V> {
    fn default() -> Self {
        Coalescer { answered: AtomicU64::new(0), next: AtomicU64::new(0), flights: Mutex::new(HashMap::new()) }
    }
}

/// Removes a leader's flight when the leader finishes or is dropped, unless
/// a newer flight has taken its key meanwhile.
struct Landing<'a, V> {
    flights: &'a Mutex<HashMap<ReadKey, Flight<V>>>,
    key: &'a ReadKey,
    id: u64,
}

impl<V> Drop for Landing<'_, V> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock();
        if flights.get(self.key).is_some_and(|f| f.id == self.id) {
            flights.remove(self.key);
        }
    }
}

enum Role<V> {
    Leader(watch::Sender<Option<V>>, u64),
    Joiner(watch::Receiver<Option<V>>),
}

impl<V: Clone> Coalescer<V> {
    /// Called for every mutation before its answer leaves the gateway: no
    /// read that arrives after this joins a flight started before it.
    pub fn mutation_answered(&self) {
        self.answered.fetch_add(1, Ordering::SeqCst);
    }

    /// Reads in flight now (for tests and the status page).
    pub fn in_flight(&self) -> usize {
        self.flights.lock().len()
    }

    /// Answers the read `key`: with the answer of an identical read already
    /// in flight, started since the last answered mutation (`true`: shared),
    /// or by running `read` and sharing its answer with every read that
    /// joins meanwhile (`false`).
    pub async fn run<F: Future<Output = V>>(&self, key: ReadKey, read: F) -> (V, bool) {
        // Loaded before the flight is looked for or started: a leader's
        // chassis request is sent after every mutation this count includes
        // was answered.
        let answered = self.answered.load(Ordering::SeqCst);
        let role = {
            let mut flights = self.flights.lock();
            match flights.get(&key) {
                Some(f) if f.answered == answered => Role::Joiner(f.answer.clone()),
                // None, or started before a mutation was answered: a new
                // flight takes the key; the old one lands unjoined.
                _ => {
                    let id = self.next.fetch_add(1, Ordering::Relaxed);
                    let (tx, rx) = watch::channel(None);
                    flights.insert(key.clone(), Flight { id, answered, answer: rx });
                    Role::Leader(tx, id)
                }
            }
        };
        match role {
            Role::Leader(tx, id) => {
                let _landing = Landing { flights: &self.flights, key: &key, id };
                let v = read.await;
                tx.send_replace(Some(v.clone()));
                (v, false)
            }
            Role::Joiner(mut rx) => {
                let shared = match rx.wait_for(Option::is_some).await {
                    Ok(v) => v.clone(),
                    // The leader was dropped before it had an answer.
                    Err(_) => None,
                };
                match shared {
                    Some(v) => (v, true),
                    None => (read.await, false),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn key(account: &str, path: &str) -> ReadKey {
        ReadKey::of(Some(account), &Method::GET, path, &HeaderMap::new(), b"").unwrap_or_else(|| unreachable!())
    }

    /// A read that takes `ms` and counts itself in `sent`.
    async fn chassis(sent: Arc<AtomicU64>, ms: u64, answer: u32) -> u32 {
        sent.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        answer
    }

    #[tokio::test(start_paused = true)]
    async fn identical_reads_in_flight_share_one_request() {
        let c = Arc::new(Coalescer::<u32>::default());
        let sent = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for n in 0..5 {
            let (c, sent) = (c.clone(), sent.clone());
            tasks.push(tokio::spawn(async move { c.run(key("op", "/api/v1/walls"), chassis(sent, 10, n)).await }));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap_or_else(|e| panic!("{e}")));
        }
        assert_eq!(sent.load(Ordering::SeqCst), 1);
        assert_eq!(answers, vec![(0, false), (0, true), (0, true), (0, true), (0, true)]);
        assert_eq!(c.in_flight(), 0);
        // Landed: the next read sends its own.
        assert_eq!(c.run(key("op", "/api/v1/walls"), chassis(sent.clone(), 10, 9)).await, (9, false));
        assert_eq!(sent.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_after_an_answered_mutation_never_joins_an_older_flight() {
        let c = Arc::new(Coalescer::<u32>::default());
        let sent = Arc::new(AtomicU64::new(0));
        let first = {
            let (c, sent) = (c.clone(), sent.clone());
            tokio::spawn(async move { c.run(key("op", "/api/v1/walls"), chassis(sent, 10, 1)).await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        c.mutation_answered();
        // Arrives while the first is in flight, after the mutation's answer.
        let second = {
            let (c, sent) = (c.clone(), sent.clone());
            tokio::spawn(async move { c.run(key("op", "/api/v1/walls"), chassis(sent, 10, 2)).await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        // And a third joins the second's flight, not the first's.
        let third = {
            let (c, sent) = (c.clone(), sent.clone());
            tokio::spawn(async move { c.run(key("op", "/api/v1/walls"), chassis(sent, 10, 3)).await })
        };
        let got = |t: tokio::task::JoinHandle<(u32, bool)>| async move { t.await.unwrap_or_else(|e| panic!("{e}")) };
        assert_eq!(got(first).await, (1, false));
        assert_eq!(got(second).await, (2, false));
        assert_eq!(got(third).await, (2, true));
        assert_eq!(sent.load(Ordering::SeqCst), 2);
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn accounts_paths_and_headers_are_never_shared_across() {
        let c = Arc::new(Coalescer::<u32>::default());
        let sent = Arc::new(AtomicU64::new(0));
        let mut with_range = HeaderMap::new();
        with_range.insert("accept-language", HeaderValue::from_static("zh"));
        let keys = [
            key("op", "/api/v1/walls"),
            key("admin", "/api/v1/walls"),
            key("op", "/api/v1/walls?page=2"),
            ReadKey::of(Some("op"), &Method::GET, "/api/v1/walls", &with_range, b"").unwrap_or_else(|| unreachable!()),
            ReadKey::of(None, &Method::GET, "/api/v1/walls", &HeaderMap::new(), b"").unwrap_or_else(|| unreachable!()),
        ];
        let mut tasks = Vec::new();
        for (n, k) in keys.into_iter().enumerate() {
            let (c, sent) = (c.clone(), sent.clone());
            tasks.push(tokio::spawn(async move { c.run(k, chassis(sent, 10, n as u32)).await }));
        }
        for (n, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap_or_else(|e| panic!("{e}")), (n as u32, false));
        }
        assert_eq!(sent.load(Ordering::SeqCst), 5);
        // A read with a body has no key: never shared.
        assert!(ReadKey::of(Some("op"), &Method::GET, "/x", &HeaderMap::new(), b"{}").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_joiner_whose_leader_went_away_sends_its_own() {
        let c = Arc::new(Coalescer::<u32>::default());
        let sent = Arc::new(AtomicU64::new(0));
        let leader = {
            let (c, sent) = (c.clone(), sent.clone());
            tokio::spawn(async move { c.run(key("op", "/api/v1/walls"), chassis(sent, 50, 1)).await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        let joiner = {
            let (c, sent) = (c.clone(), sent.clone());
            tokio::spawn(async move { c.run(key("op", "/api/v1/walls"), chassis(sent, 10, 2)).await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        leader.abort();
        assert_eq!(joiner.await.unwrap_or_else(|e| panic!("{e}")), (2, false));
        assert_eq!(sent.load(Ordering::SeqCst), 2);
        assert_eq!(c.in_flight(), 0);
    }
}
