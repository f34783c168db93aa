//! The journal and the sequencer, through their public API: order, ids, durability
//! (including a real crash of a child process), group commit, truncation and the
//! max_entries rule, drops, followers, client idempotency records, write failures.
//!
//! Every test works in its own directory under Cargo's target tmpdir (a real disk,
//! so fsync is real). `throughput_64_appenders` prints appends/s (`--nocapture`).

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pairgate::journal::Sequencer;
use pairgate::journal::{
    self, BodyFormat, ClientKeyState, ClientResponse, Draft, Entry, Journal, JournalConfig, JournalError, VerifiedPoint, MAX_ID,
};
use tempfile::TempDir;
use tokio::sync::Barrier;

fn tempdir() -> TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn open(dir: &TempDir) -> (Journal, Sequencer) {
    journal::open(dir.path(), JournalConfig::default()).unwrap()
}

fn draft(i: usize, ids: u32) -> Draft {
    Draft {
        method: "POST".into(),
        path_and_query: format!("/walls/{i}/windows?x=1"),
        headers: vec![("content-type".into(), "application/json".into()), ("x-n".into(), i.to_string())],
        body: Bytes::from(format!("{{\"n\":{i},\"name\":\"window {i}\"}}")),
        id_block: ids,
        account: format!("user{}", i % 3),
        client_key: None,
        seal_body: false,
    }
}

/// `tasks` tasks append `per_task` drafts each, all at once; returns every entry.
async fn append_concurrently(seq: &Sequencer, tasks: usize, per_task: usize) -> Vec<Arc<Entry>> {
    let barrier = Arc::new(Barrier::new(tasks));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let seq = seq.clone();
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut out = Vec::new();
            for k in 0..per_task {
                let i = t * per_task + k;
                out.push(seq.append(draft(i, (i % 5) as u32)).await.unwrap());
            }
            out
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort_by_key(|e| e.seq);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_gap_free_seqs_and_disjoint_increasing_blocks_and_survive_reopen() {
    let dir = tempdir();
    let (journal, seq) = open(&dir);
    assert_eq!(seq.id_counter(), None);
    assert_eq!(seq.ensure_id_floor(5000).await.unwrap(), 5000);

    // 16 tasks, 1,000 appends (8 tasks × 63 + 8 × 62).
    let barrier = Arc::new(Barrier::new(16));
    let mut handles = Vec::new();
    for t in 0..16usize {
        let seq = seq.clone();
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let n = if t < 8 { 63 } else { 62 };
            let mut out = Vec::new();
            for k in 0..n {
                let i = t * 100 + k;
                out.push(seq.append(draft(i, (i % 5) as u32)).await.unwrap());
            }
            out
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort_by_key(|e| e.seq);
    assert_eq!(all.len(), 1000);
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=1000).collect::<Vec<_>>(), "seqs 1..=1000, no gap, no dupe");

    // Blocks: disjoint, increasing with seq, starting at the floor, and the counter is
    // exactly past the last one.
    let mut next = 5000;
    let mut ids = 0;
    for e in &all {
        let wanted = (e.path_and_query.split('/').nth(2).unwrap().parse::<usize>().unwrap() % 5) as u64;
        match e.id_block {
            None => assert_eq!(wanted, 0, "entry {} should have no block", e.seq),
            Some(b) => {
                assert_eq!(b.count, wanted);
                assert_eq!(b.base, next, "block of entry {} not right after the previous one", e.seq);
                next = b.end();
                ids += b.count;
            }
        }
    }
    assert!(ids > 0);
    assert_eq!(seq.id_counter(), Some(next));
    assert_eq!(journal.last_seq(), 1000);
    assert_eq!(journal.entries_after(0, 2000).unwrap(), all, "the database holds exactly what append returned");

    drop((journal, seq));
    let (journal, seq) = open(&dir);
    assert_eq!(journal.last_seq(), 1000);
    assert_eq!(seq.id_counter(), Some(next));
    let back = journal.entries_after(0, 5000).unwrap();
    assert_eq!(back, all, "reopen recovers all 1,000 entries with identical content");
    assert_eq!(journal.get(500).unwrap().as_deref(), Some(&*all[499]));

    // Both counters continue above.
    let e = seq.append(draft(7, 3)).await.unwrap();
    assert_eq!(e.seq, 1001);
    assert_eq!(e.id_block.unwrap().base, next);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_batches_concurrent_appends() {
    let dir = tempdir();
    let (_journal, seq) = open(&dir);
    seq.ensure_id_floor(1).await.unwrap();
    let before = seq.stats();
    let n = 256;
    let all = append_concurrently(&seq, n, 1).await;
    assert_eq!(all.len(), n);
    let stats = seq.stats();
    let commits = stats.commits - before.commits;
    assert_eq!(stats.entries, n as u64);
    assert!(commits < n as u64, "{n} concurrent appends took {commits} commits: no batching");
    assert!(stats.largest_batch > 1);
    println!("{n} concurrent appends: {commits} commits, largest batch {}", stats.largest_batch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commit_max_delay_gathers_and_commit_max_batch_caps() {
    let dir = tempdir();
    let config = JournalConfig { commit_max_delay: Duration::from_millis(20), commit_max_batch: 10, ..JournalConfig::default() };
    let (_journal, seq) = journal::open(dir.path(), config).unwrap();
    seq.ensure_id_floor(1).await.unwrap();
    let all = append_concurrently(&seq, 40, 1).await;
    assert_eq!(all.len(), 40);
    let stats = seq.stats();
    assert!(stats.largest_batch <= 10, "batch cap exceeded: {}", stats.largest_batch);
    assert!(stats.commits >= 4, "40 appends with batches of at most 10 need at least 4 commits, got {}", stats.commits);
    assert!(stats.commits <= 12, "a 20 ms gather window should fill batches; got {} commits", stats.commits);
}

#[tokio::test]
async fn id_floor_raises_never_lowers_and_survives_reopen() {
    let dir = tempdir();
    let (journal, seq) = open(&dir);

    // No floor yet: ids are refused (they could collide with the chassis'), and the
    // refusal consumes no seq; appends without ids work.
    assert!(matches!(seq.append(draft(1, 2)).await, Err(JournalError::IdFloorNotSet)));
    assert_eq!(seq.append(draft(1, 0)).await.unwrap().seq, 1);

    assert_eq!(seq.ensure_id_floor(1000).await.unwrap(), 1000);
    assert_eq!(seq.ensure_id_floor(500).await.unwrap(), 1000, "never lowers");
    let e = seq.append(draft(2, 3)).await.unwrap();
    assert_eq!((e.seq, e.id_block.unwrap().base, e.id_block.unwrap().count), (2, 1000, 3));
    assert_eq!(e.id_block_header().as_deref(), Some("1000+3"));
    let key = e.chassis_idempotency_key(journal.gateway_id());
    assert!(key.starts_with(&format!("{}.", journal.gateway_id())) && key.ends_with("/2"), "{key}");
    assert_eq!(seq.ensure_id_floor(1002).await.unwrap(), 1003, "a floor below the counter changes nothing");
    assert_eq!(seq.ensure_id_floor(2000).await.unwrap(), 2000);
    let gateway_id = journal.gateway_id().to_owned();
    assert_eq!(gateway_id.len(), 32);

    drop((journal, seq));
    let (journal, seq) = open(&dir);
    assert_eq!(seq.id_counter(), Some(2000));
    assert_eq!(journal.gateway_id(), gateway_id, "the gateway id is kept forever");
    assert_eq!(seq.ensure_id_floor(10).await.unwrap(), 2000);

    // The 2^53 bound.
    assert!(matches!(seq.ensure_id_floor(MAX_ID).await, Err(JournalError::IdFloorTooHigh(_))));
    assert_eq!(seq.ensure_id_floor(MAX_ID - 2).await.unwrap(), MAX_ID - 2);
    assert!(matches!(seq.append(draft(3, 3)).await, Err(JournalError::IdsExhausted { .. })));
    let e = seq.append(draft(3, 2)).await.unwrap();
    assert_eq!(e.seq, 3, "the exhausted append consumed no seq");
    assert_eq!(e.id_block.unwrap().end(), MAX_ID);
    assert!(matches!(seq.append(draft(4, 1)).await, Err(JournalError::IdsExhausted { .. })));
}

#[tokio::test]
async fn verified_points_are_recorded_atomically_and_survive_reopen() {
    let dir = tempdir();
    let (journal, seq) = open(&dir);
    assert_eq!(journal.verified("a").unwrap(), None, "nothing recorded on a new journal");
    for i in 0..3 {
        seq.append(draft(i, 0)).await.unwrap();
    }
    let p = |seq: u64, digest: &str| VerifiedPoint { seq, digest: digest.to_owned() };
    journal.record_verified(&[("a", p(2, "d2")), ("b", p(2, "d2"))]).await.unwrap();
    journal.record_verified(&[("a", p(3, "d3"))]).await.unwrap();
    // Refused whole, nothing written: a seq past the last one, an unknown chassis.
    assert!(matches!(
        journal.record_verified(&[("b", p(3, "d3")), ("a", p(4, "x"))]).await,
        Err(JournalError::SeqOutOfRange { seq: 4, last: 3 })
    ));
    assert!(matches!(journal.record_verified(&[("b", p(3, "d3")), ("c", p(1, "x"))]).await, Err(JournalError::UnknownChassis(_))));
    assert!(matches!(journal.verified("c"), Err(JournalError::UnknownChassis(_))));
    assert_eq!(journal.verified("a").unwrap(), Some(p(3, "d3")));
    assert_eq!(journal.verified("b").unwrap(), Some(p(2, "d2")));
    // Truncating every entry keeps them.
    journal.mark_applied("a", 3).unwrap();
    journal.mark_applied("b", 3).unwrap();
    journal.truncate().await.unwrap();

    drop((journal, seq));
    let (journal, _seq) = open(&dir);
    assert_eq!(journal.verified("a").unwrap(), Some(p(3, "d3")), "kept across a reopen");
    assert_eq!(journal.verified("b").unwrap(), Some(p(2, "d2")));
}

#[tokio::test]
async fn applied_truncate_depth_and_the_max_entries_rule() {
    let dir = tempdir();
    let config = JournalConfig { max_entries: 10, ..JournalConfig::default() };
    let (journal, seq) = journal::open(dir.path(), config.clone()).unwrap();
    for i in 0..5 {
        seq.append(draft(i, 0)).await.unwrap();
    }
    assert_eq!(journal.depth(), 5);
    journal.mark_applied("a", 3).unwrap();
    assert_eq!(journal.depth(), 5, "b has applied nothing");
    journal.mark_applied("b", 2).unwrap();
    assert_eq!(journal.depth(), 3);
    journal.mark_applied("a", 1).unwrap();
    assert_eq!(journal.applied("a").unwrap(), 3, "going back is ignored");
    assert!(matches!(journal.mark_applied("a", 6), Err(JournalError::SeqOutOfRange { seq: 6, last: 5 })));
    assert!(matches!(journal.mark_applied("c", 1), Err(JournalError::UnknownChassis(_))));
    assert!(journal.applied("c").is_err());

    let report = journal.truncate().await.unwrap();
    assert_eq!((report.removed, report.oldest_available), (2, 3), "only what both applied is dropped");
    assert_eq!(journal.entries_after(0, 100).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4, 5]);

    journal.mark_applied("a", 5).unwrap();
    journal.mark_applied("b", 5).unwrap();
    journal.truncate().await.unwrap();
    assert_eq!((journal.depth(), journal.oldest_available()), (0, 6));
    assert!(journal.entries_after(0, 100).unwrap().is_empty());
    assert!(!journal.needs_full_resync("b").unwrap());

    // b goes away; a keeps up. 15 more entries: more than max_entries (10) for b.
    for i in 0..15 {
        let e = seq.append(draft(i, 0)).await.unwrap();
        journal.mark_applied("a", e.seq).unwrap();
    }
    assert_eq!(journal.last_seq(), 20);
    assert_eq!(journal.oldest_available(), 11, "the oldest unapplied entries were dropped to keep 10");
    assert_eq!(journal.entries_after(0, 100).unwrap().len(), 10);
    assert_eq!(journal.depth(), 15);
    assert!(journal.needs_full_resync("b").unwrap());
    assert!(!journal.needs_full_resync("a").unwrap());
    assert_eq!(journal.stats().dropped_for_max_entries, 5);
    let mut follower = journal.follow(journal.applied("b").unwrap());
    assert!(matches!(follower.next().await, Err(JournalError::Truncated { wanted: 6, oldest: 11 })));
    drop(follower);

    // After a full resync at seq 15, b replays from there.
    journal.mark_applied("b", 15).unwrap();
    assert!(!journal.needs_full_resync("b").unwrap());
    let mut follower = journal.follow(15);
    for want in 16..=20 {
        assert_eq!(follower.next().await.unwrap().seq, want);
    }

    // Applied positions survive a reopen (a clean close writes them).
    drop((journal, seq, follower));
    let (journal, _seq) = journal::open(dir.path(), config).unwrap();
    assert_eq!(journal.applied("a").unwrap(), 20);
    assert_eq!(journal.applied("b").unwrap(), 15);
    assert_eq!(journal.last_seq(), 20);
    assert_eq!(journal.entries_after(15, 100).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![16, 17, 18, 19, 20]);
    assert!(journal.oldest_available() <= 16);
    assert!(!journal.needs_full_resync("b").unwrap());
}

/// The bytes `max_bytes` counts for one entry: method, path and query, header names
/// and values, body, account and client key, as the journal stores them.
fn counted_bytes(e: &Entry) -> u64 {
    let headers: usize = e.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    (e.method.len() + e.path_and_query.len() + headers + e.body.len() + e.account.len() + e.client_key.as_ref().map_or(0, String::len))
        as u64
}

/// A draft with a body of `body` bytes.
fn big_draft(i: usize, body: usize) -> Draft {
    Draft { body: Bytes::from(vec![b'x'; body]), ..draft(i, 0) }
}

/// The longest run of newest entries whose counted bytes fit in `max` (at least one).
/// Appends `n` entries of about 1 KiB that chassis `a` applies at once.
async fn append_applied_by_a(journal: &Journal, seq: &pairgate::journal::Sequencer, n: usize, appended: &mut Vec<Arc<Entry>>) {
    for i in 0..n {
        let e = seq.append(big_draft(i, 1000)).await.unwrap();
        journal.mark_applied("a", e.seq).unwrap();
        appended.push(e);
    }
}

fn expected_oldest(entries: &[Arc<Entry>], max: u64) -> u64 {
    let mut total = 0;
    let mut oldest = entries.last().map_or(1, |e| e.seq);
    for e in entries.iter().rev() {
        total += counted_bytes(e);
        if total > max && e.seq != oldest {
            break;
        }
        oldest = e.seq;
    }
    oldest
}

#[tokio::test]
async fn the_max_bytes_rule_drops_the_oldest_entries_and_survives_a_reopen() {
    let dir = tempdir();
    let max_bytes = 10_000;
    let config = JournalConfig { max_bytes, ..JournalConfig::default() };
    let (journal, seq) = journal::open(dir.path(), config.clone()).unwrap();
    // b goes away; a keeps up. 30 entries of about 1 KiB: about three times max_bytes.
    let mut appended = Vec::new();
    append_applied_by_a(&journal, &seq, 30, &mut appended).await;
    journal.truncate().await.unwrap();
    let kept = journal.entries_after(0, 1000).unwrap();
    let kept_bytes: u64 = kept.iter().map(|e| counted_bytes(e)).sum();
    assert!(kept_bytes <= max_bytes, "kept {kept_bytes} bytes in {} entries, over max_bytes {max_bytes}", kept.len());
    let want_oldest = expected_oldest(&appended, max_bytes);
    assert!(want_oldest > 1 && want_oldest < 30, "the test itself: {want_oldest}");
    assert_eq!(journal.oldest_available(), want_oldest, "as many of the newest entries as fit are kept");
    assert_eq!(kept.first().map(|e| e.seq), Some(want_oldest));
    assert_eq!(kept.last().map(|e| e.seq), Some(30));
    // b missed dropped entries: a full resync, as with max_entries.
    assert!(journal.needs_full_resync("b").unwrap());
    assert!(!journal.needs_full_resync("a").unwrap());
    assert_eq!(journal.stats().dropped_for_max_entries, want_oldest - 1);
    let mut follower = journal.follow(journal.applied("b").unwrap());
    assert!(matches!(follower.next().await, Err(JournalError::Truncated { wanted: 1, oldest }) if oldest == want_oldest));
    drop(follower);

    // Reopened, the journal knows the bytes it holds: ten more entries still keep it
    // under the bound, and the same suffix rule holds.
    drop((journal, seq));
    let (journal, seq) = journal::open(dir.path(), config.clone()).unwrap();
    append_applied_by_a(&journal, &seq, 10, &mut appended).await;
    journal.truncate().await.unwrap();
    let kept = journal.entries_after(0, 1000).unwrap();
    let kept_bytes: u64 = kept.iter().map(|e| counted_bytes(e)).sum();
    assert!(kept_bytes <= max_bytes, "after a reopen: kept {kept_bytes} bytes, over {max_bytes}");
    assert_eq!(journal.oldest_available(), expected_oldest(&appended, max_bytes));

    // An entry larger than max_bytes on its own is still kept (the newest always is):
    // a chassis must be able to receive it.
    let huge = seq.append(big_draft(99, 20_000)).await.unwrap();
    journal.truncate().await.unwrap();
    let kept = journal.entries_after(0, 1000).unwrap();
    assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![huge.seq], "only the newest, oversized entry");
    // Once both chassis applied it, nothing is left.
    journal.mark_applied("a", huge.seq).unwrap();
    journal.mark_applied("b", huge.seq).unwrap();
    journal.truncate().await.unwrap();
    assert!(journal.entries_after(0, 1000).unwrap().is_empty());
}

#[tokio::test]
async fn applied_positions_are_written_lazily_but_written() {
    let dir = tempdir();
    let config = JournalConfig { applied_flush_interval: Duration::from_millis(20), ..JournalConfig::default() };
    let (journal, seq) = journal::open(dir.path(), config).unwrap();
    for i in 0..3 {
        seq.append(draft(i, 0)).await.unwrap();
    }
    let commits = seq.stats().commits;
    journal.mark_applied("a", 2).unwrap();
    journal.mark_applied("a", 3).unwrap();
    journal.mark_applied("b", 1).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seq.stats().commits, commits + 1, "three marks, one flush");
    let raw = rusqlite::Connection::open(dir.path().join("journal.sqlite")).unwrap();
    let a: i64 = raw.query_row("SELECT seq FROM applied WHERE chassis = 'a'", [], |r| r.get(0)).unwrap();
    let b: i64 = raw.query_row("SELECT seq FROM applied WHERE chassis = 'b'", [], |r| r.get(0)).unwrap();
    assert_eq!((a, b), (3, 1));
    let n: i64 = raw.query_row("SELECT count(*) FROM entries", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 2, "the flush also truncated entry 1");
}

/// The child half of `a_crash_loses_nothing_append_returned`: appends, reports what
/// was acknowledged on stdout, then aborts (no destructor, no flush, no shutdown).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("PAIRGATE_JOURNAL_CRASH_DIR") else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let (journal, seq) = journal::open(&dir, JournalConfig::default()).unwrap();
        seq.ensure_id_floor(100).await.unwrap();
        let all = append_concurrently(&seq, 8, 25).await;
        // A mark that may or may not be written before the crash.
        journal.mark_applied("a", 10).unwrap();
        for e in &all {
            let block = e.id_block.map(|b| format!("{}+{}", b.base, b.count)).unwrap_or_default();
            println!("ACK {} {} {}", e.seq, e.path_and_query, block);
        }
    });
    std::process::abort();
}

#[test]
fn a_crash_loses_nothing_append_returned() {
    let dir = tempdir();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("PAIRGATE_JOURNAL_CRASH_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child should have aborted");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let acked: Vec<(u64, String, String)> = stdout
        .lines()
        .filter_map(|l| l.split_once("ACK ").map(|(_, rest)| rest))
        .map(|l| {
            let mut p = l.split(' ');
            (p.next().unwrap().parse().unwrap(), p.next().unwrap().to_owned(), p.next().unwrap_or("").to_owned())
        })
        .collect();
    assert_eq!(acked.len(), 200, "child output: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (journal, seq) = open(&dir);
        assert_eq!(journal.last_seq(), 200);
        let back = journal.entries_after(0, 1000).unwrap();
        assert_eq!(back.len(), 200);
        for ((s, path, block), e) in acked.iter().zip(&back) {
            assert_eq!(
                (*s, path.as_str(), block.as_str()),
                (e.seq, e.path_and_query.as_str(), e.id_block_header().unwrap_or_default().as_str())
            );
        }
        // The lazily written mark is either there or replayed; never invented.
        assert!(journal.applied("a").unwrap() <= 10);
        let max_end = back.iter().filter_map(|e| e.id_block).map(|b| b.end()).max().unwrap();
        assert_eq!(seq.id_counter(), Some(max_end));
        let e = seq.append(draft(0, 1)).await.unwrap();
        assert_eq!((e.seq, e.id_block.unwrap().base), (201, max_end));
    });
}

#[tokio::test]
async fn dropping_the_handles_is_enough_for_entries_to_be_there() {
    let dir = tempdir();
    let (journal, seq) = open(&dir);
    for i in 0..20 {
        seq.append(draft(i, 0)).await.unwrap();
    }
    // Visible to an unrelated connection the moment append returned: committed.
    let raw = rusqlite::Connection::open(dir.path().join("journal.sqlite")).unwrap();
    let n: i64 = raw.query_row("SELECT count(*) FROM entries", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 20);
    drop(raw);
    drop(journal);
    drop(seq);
    let (journal, _) = open(&dir);
    assert_eq!(journal.entries_after(0, 100).unwrap().len(), 20);
}

#[tokio::test]
async fn one_process_per_journal() {
    let dir = tempdir();
    let first = open(&dir);
    assert!(matches!(journal::open(dir.path(), JournalConfig::default()), Err(JournalError::Locked { .. })));
    drop(first);
    let _second = open(&dir);
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    let dir = tempdir();
    for config in [
        JournalConfig { chassis: vec![], ..JournalConfig::default() },
        JournalConfig { chassis: vec!["a".into(), "a".into()], ..JournalConfig::default() },
        JournalConfig { max_entries: 0, ..JournalConfig::default() },
        JournalConfig { commit_max_batch: 0, ..JournalConfig::default() },
    ] {
        assert!(matches!(journal::open(dir.path(), config), Err(JournalError::Config(_))));
    }
}

#[tokio::test]
async fn a_failed_commit_errors_the_batch_and_consumes_no_seq_or_id() {
    let dir = tempdir();
    let config = JournalConfig { busy_timeout: Duration::from_millis(100), ..JournalConfig::default() };
    let (journal, seq) = journal::open(dir.path(), config).unwrap();
    seq.ensure_id_floor(10).await.unwrap();
    for i in 0..3 {
        seq.append(draft(i, 2)).await.unwrap();
    }
    assert_eq!(seq.id_counter(), Some(16));

    // Someone else holds the write lock: every commit fails after busy_timeout.
    let blocker = rusqlite::Connection::open(dir.path().join("journal.sqlite")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut handles = Vec::new();
    for i in 0..5 {
        let seq = seq.clone();
        handles.push(tokio::spawn(async move { seq.append(draft(i, 2)).await }));
    }
    for h in handles {
        assert!(matches!(h.await.unwrap(), Err(JournalError::CommitFailed(_))));
    }
    assert!(matches!(journal.truncate().await, Err(JournalError::CommitFailed(_))));
    assert!(seq.stats().failed_commits >= 1);
    assert_eq!(journal.last_seq(), 3);
    assert_eq!(seq.id_counter(), Some(16));
    let mut watch = journal.watch_last_seq();
    assert_eq!(*watch.borrow_and_update(), 3);

    blocker.execute_batch("ROLLBACK").unwrap();
    let e = seq.append(draft(9, 2)).await.unwrap();
    assert_eq!(e.seq, 4, "no gap after the failure");
    assert_eq!(e.id_block.unwrap().base, 16, "no ids lost either");
    assert!(watch.has_changed().unwrap());
    assert_eq!(*watch.borrow_and_update(), 4);
    assert_eq!(journal.entries_after(0, 10).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn drop_entry_voids_only_unapplied_entries_and_followers_skip_it() {
    let dir = tempdir();
    let (journal, seq) = open(&dir);
    for i in 0..3 {
        seq.append(draft(i, 0)).await.unwrap();
    }
    journal.mark_applied("a", 1).unwrap();
    assert!(matches!(journal.drop_entry(1).await, Err(JournalError::NotDroppable { seq: 1, .. })), "a applied it");
    assert!(matches!(journal.drop_entry(9).await, Err(JournalError::NotDroppable { .. })), "never committed");
    assert!(matches!(journal.drop_entry(0).await, Err(JournalError::NotDroppable { .. })));
    journal.drop_entry(3).await.unwrap();
    assert!(journal.is_void(3));
    assert!(matches!(journal.drop_entry(3).await, Err(JournalError::NotDroppable { .. })), "already dropped");
    assert_eq!(journal.get(3).unwrap(), None);
    assert_eq!(journal.entries_after(0, 10).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(journal.last_seq(), 3, "the seq stays taken");

    // Applying 2 counts as having applied the void 3 too: caught up.
    journal.mark_applied("a", 2).unwrap();
    assert_eq!(journal.applied("a").unwrap(), 3);

    // A follower skips it, in the database part and live.
    let mut follower = journal.follow(0);
    assert_eq!(follower.next().await.unwrap().seq, 1);
    assert_eq!(follower.next().await.unwrap().seq, 2);
    let e4 = seq.append(draft(4, 0)).await.unwrap();
    assert_eq!(follower.next().await.unwrap().seq, e4.seq);

    // A void entry stays void across a restart.
    drop((journal, seq, follower));
    let (journal, seq) = open(&dir);
    assert!(journal.is_void(3));
    assert_eq!(journal.applied("a").unwrap(), 3);
    journal.mark_applied("b", 2).unwrap();
    assert_eq!(journal.applied("b").unwrap(), 3);
    let e5 = seq.append(draft(5, 0)).await.unwrap();
    journal.drop_entry(e5.seq).await.unwrap();
    assert_eq!(journal.applied("a").unwrap(), 3, "a had not reached 4, so 5 is not skipped yet");
    journal.mark_applied("a", 4).unwrap();
    assert_eq!(journal.applied("a").unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_sees_every_entry_once_in_order_even_when_it_lags() {
    let dir = tempdir();
    let config = JournalConfig { broadcast_capacity: 4, ..JournalConfig::default() };
    let (journal, seq) = journal::open(dir.path(), config).unwrap();
    seq.ensure_id_floor(1).await.unwrap();
    for i in 0..5 {
        seq.append(draft(i, 0)).await.unwrap();
    }
    let mut follower = journal.follow(2);
    // Far more than the broadcast holds, before the follower reads anything.
    append_concurrently(&seq, 10, 30).await;
    let mut got = Vec::new();
    while got.len() < 303 {
        got.push(follower.next().await.unwrap().seq);
    }
    assert_eq!(got, (3..=305).collect::<Vec<_>>());
    assert_eq!(follower.position(), 305);

    // Live: it waits for the next commit.
    let waiter = tokio::spawn(async move { follower.next().await.map(|e| e.seq) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    seq.append(draft(0, 0)).await.unwrap();
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap().unwrap(), 306);

    // The raw broadcast carries the same Arc append returned.
    let mut rx = journal.subscribe();
    let e = seq.append(draft(1, 0)).await.unwrap();
    assert!(Arc::ptr_eq(&rx.recv().await.unwrap(), &e));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_is_cancel_safe() {
    let dir = tempdir();
    let config = JournalConfig { broadcast_capacity: 8, ..JournalConfig::default() };
    let (journal, seq) = journal::open(dir.path(), config).unwrap();
    let writer = {
        let seq = seq.clone();
        tokio::spawn(async move {
            for i in 0..400 {
                seq.append(draft(i, 0)).await.unwrap();
            }
        })
    };
    // Cancel `next` over and over (as a `select!` losing to another branch would).
    let mut follower = journal.follow(0);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 400 && Instant::now() < deadline {
        if let Ok(e) = tokio::time::timeout(Duration::from_micros(50), follower.next()).await {
            got.push(e.unwrap().seq);
        }
    }
    writer.await.unwrap();
    assert_eq!(got, (1..=400).collect::<Vec<_>>());
}

fn response(status: u16, body: &str) -> ClientResponse {
    ClientResponse { status, headers: vec![("content-type".into(), "application/json".into())], body: Bytes::from(body.to_owned()) }
}

#[tokio::test]
async fn client_keys_new_in_flight_done_mismatch_and_across_a_restart() {
    let dir = tempdir();
    let (journal, seq) = open(&dir);
    let fp = journal.request_fingerprint("POST", "/walls", b"{}");
    let other = journal.request_fingerprint("POST", "/walls", b"{\"x\":1}");

    assert_eq!(journal.begin_client_key("alice", "k1", &fp).unwrap(), ClientKeyState::New);
    assert_eq!(journal.begin_client_key("alice", "k1", &fp).unwrap(), ClientKeyState::InFlight { seq: None });
    assert_eq!(journal.begin_client_key("alice", "k1", &other).unwrap(), ClientKeyState::Mismatch);
    assert_eq!(journal.begin_client_key("bob", "k1", &other).unwrap(), ClientKeyState::New, "keys are per account");

    let e = seq.append(Draft { account: "alice".into(), client_key: Some("k1".into()), ..draft(1, 0) }).await.unwrap();
    assert_eq!(journal.begin_client_key("alice", "k1", &fp).unwrap(), ClientKeyState::InFlight { seq: Some(e.seq) });
    journal.finish_client_key("alice", "k1", response(201, "{\"id\":7}")).await.unwrap();
    assert_eq!(journal.begin_client_key("alice", "k1", &fp).unwrap(), ClientKeyState::Done(response(201, "{\"id\":7}")));
    assert_eq!(journal.begin_client_key("alice", "k1", &other).unwrap(), ClientKeyState::Mismatch);

    // Released before it became an entry: as if never begun.
    assert_eq!(journal.begin_client_key("alice", "k2", &fp).unwrap(), ClientKeyState::New);
    assert!(journal.release_client_key("alice", "k2"));
    assert_eq!(journal.begin_client_key("alice", "k2", &fp).unwrap(), ClientKeyState::New);

    // Journaled, then the gateway stops before the answer: in flight with its seq.
    assert_eq!(journal.begin_client_key("alice", "k3", &fp).unwrap(), ClientKeyState::New);
    let e3 = seq.append(Draft { account: "alice".into(), client_key: Some("k3".into()), ..draft(3, 0) }).await.unwrap();
    assert!(!journal.release_client_key("alice", "k3"), "a journaled key is not released");
    assert!(matches!(journal.finish_client_key("carol", "nope", response(200, "")).await, Err(JournalError::UnknownClientKey)));

    drop((journal, seq));
    let (journal, seq) = open(&dir);
    assert_eq!(journal.begin_client_key("alice", "k1", &fp).unwrap(), ClientKeyState::Done(response(201, "{\"id\":7}")));
    assert_eq!(journal.begin_client_key("alice", "k2", &fp).unwrap(), ClientKeyState::New, "never journaled: forgotten");
    assert_eq!(journal.begin_client_key("alice", "k3", &fp).unwrap(), ClientKeyState::InFlight { seq: Some(e3.seq) });
    // The replay of e3 reports the answer.
    let replayed = journal.get(e3.seq).unwrap().unwrap();
    assert_eq!((replayed.account.as_str(), replayed.client_key.as_deref()), ("alice", Some("k3")));
    journal.finish_client_key(&replayed.account, "k3", response(200, "ok")).await.unwrap();
    assert_eq!(journal.begin_client_key("alice", "k3", &fp).unwrap(), ClientKeyState::Done(response(200, "ok")));

    // Dropped entry (both chassis refused): certainly not applied, a retry is new.
    assert_eq!(journal.begin_client_key("alice", "k4", &fp).unwrap(), ClientKeyState::New);
    let e4 = seq.append(Draft { account: "alice".into(), client_key: Some("k4".into()), ..draft(4, 0) }).await.unwrap();
    journal.drop_entry(e4.seq).await.unwrap();
    assert_eq!(journal.begin_client_key("alice", "k4", &fp).unwrap(), ClientKeyState::New);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_begins_with_one_key_let_exactly_one_through() {
    let dir = tempdir();
    let (journal, _seq) = open(&dir);
    let fp = journal.request_fingerprint("DELETE", "/walls/1", b"");
    for round in 0..20 {
        let key = format!("key-{round}");
        let barrier = Arc::new(Barrier::new(16));
        let mut handles = Vec::new();
        for _ in 0..16 {
            let (journal, key, fp, barrier) = (journal.clone(), key.clone(), fp.clone(), barrier.clone());
            handles.push(tokio::spawn(async move {
                barrier.wait().await;
                journal.begin_client_key("alice", &key, &fp).unwrap()
            }));
        }
        let mut states = Vec::new();
        for h in handles {
            states.push(h.await.unwrap());
        }
        assert_eq!(states.iter().filter(|s| **s == ClientKeyState::New).count(), 1, "round {round}: {states:?}");
        assert!(states.iter().all(|s| matches!(s, ClientKeyState::New | ClientKeyState::InFlight { seq: None })));
    }
}

#[tokio::test]
async fn client_keys_expire_by_age_and_by_count() {
    let dir = tempdir();
    let fp = {
        let config = JournalConfig { client_key_ttl: Duration::from_millis(100), ..JournalConfig::default() };
        let (journal, _seq) = journal::open(dir.path(), config).unwrap();
        let fp = journal.request_fingerprint("POST", "/x", b"");
        assert_eq!(journal.begin_client_key("a", "old", &fp).unwrap(), ClientKeyState::New);
        journal.finish_client_key("a", "old", response(200, "")).await.unwrap();
        assert!(matches!(journal.begin_client_key("a", "old", &fp).unwrap(), ClientKeyState::Done(_)));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(journal.begin_client_key("a", "old", &fp).unwrap(), ClientKeyState::New, "expired after the ttl");
        assert!(journal.release_client_key("a", "old"));
        fp
    };
    let config = JournalConfig { client_key_max: 2, ..JournalConfig::default() };
    let (journal, seq) = journal::open(dir.path(), config).unwrap();
    assert_eq!(journal.request_fingerprint("POST", "/x", b""), fp, "the same key after a reopen");
    for k in ["k1", "k2", "k3"] {
        assert_eq!(journal.begin_client_key("a", k, &fp).unwrap(), ClientKeyState::New);
        journal.finish_client_key("a", k, response(200, k)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Expiry runs at most once a second, with a commit.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    seq.append(draft(0, 0)).await.unwrap();
    assert_eq!(journal.begin_client_key("a", "k1", &fp).unwrap(), ClientKeyState::New, "the oldest beyond the bound went");
    assert_eq!(journal.begin_client_key("a", "k3", &fp).unwrap(), ClientKeyState::Done(response(200, "k3")));
}

/// Not a benchmark, a sanity figure: appends/s with 64 concurrent appenders, each
/// append durable (fsynced) before it returns. Run with `--nocapture` to see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_64_appenders() {
    let dir = tempdir();
    let (journal, seq) = open(&dir);
    seq.ensure_id_floor(1).await.unwrap();
    let per_task = 300;
    let started = Instant::now();
    let all = append_concurrently(&seq, 64, per_task).await;
    let elapsed = started.elapsed();
    let n = all.len();
    assert_eq!(n, 64 * per_task);
    let unique: HashSet<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(unique.len(), n);
    let stats = seq.stats();
    println!(
        "THROUGHPUT: {n} appends by 64 appenders in {:.3} s = {:.0} appends/s; {} commits (avg batch {:.1}, largest {})",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        stats.commits,
        n as f64 / stats.commits as f64,
        stats.largest_batch
    );
    drop(journal);
}

// ---------------------------------------------------------------- secrets at rest

fn holds(path: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn secret_draft(password: &str) -> Draft {
    Draft {
        method: "POST".into(),
        path_and_query: "/api/v1/users".into(),
        body: Bytes::from(format!("{{\"username\":\"carol\",\"password\":\"{password}\"}}")),
        seal_body: true,
        ..draft(0, 1)
    }
}

#[tokio::test]
async fn secret_bodies_are_sealed_on_disk_and_in_memory_and_open_for_the_applier() {
    let dir = tempdir();
    let password = "pw-3b1f0c7e-sealed";
    let (sealed_seq, plain_seq) = {
        let (journal, seq) = open(&dir);
        seq.ensure_id_floor(1).await.unwrap();
        let sealed = seq.append(secret_draft(password)).await.unwrap();
        assert_eq!(sealed.body_format, BodyFormat::Sealed);
        assert!(!sealed.body.windows(password.len()).any(|w| w == password.as_bytes()), "the entry the appliers get is sealed");
        assert_eq!(journal.body(&sealed).unwrap(), secret_draft(password).body);
        let plain = seq.append(draft(1, 0)).await.unwrap();
        assert_eq!(plain.body_format, BodyFormat::Plain);
        assert_eq!(journal.body(&plain).unwrap(), draft(1, 0).body);
        for file in ["journal.sqlite", "journal.sqlite-wal"] {
            assert!(!holds(&dir.path().join(file), password.as_bytes()), "{file} holds the password");
        }
        (sealed.seq, plain.seq)
    };
    // Read back after a restart: still sealed, still opens.
    let (journal, _seq) = open(&dir);
    let entries = journal.entries_after(0, 10).unwrap();
    let sealed = entries.iter().find(|e| e.seq == sealed_seq).unwrap();
    assert_eq!(sealed.body_format, BodyFormat::Sealed);
    assert_eq!(journal.body(sealed).unwrap(), secret_draft(password).body);
    assert_eq!(
        journal.entry_fingerprint(sealed).unwrap(),
        journal.request_fingerprint("POST", "/api/v1/users", &secret_draft(password).body)
    );
    assert_eq!(journal.get(plain_seq).unwrap().unwrap().body_format, BodyFormat::Plain);
    for file in ["journal.sqlite", "journal.sqlite-wal"] {
        assert!(!holds(&dir.path().join(file), password.as_bytes()), "{file} holds the password");
    }
}

#[tokio::test]
async fn a_sealed_body_whose_key_is_lost_does_not_open() {
    let dir = tempdir();
    {
        let (_journal, seq) = open(&dir);
        seq.ensure_id_floor(1).await.unwrap();
        seq.append(secret_draft("pw-lost-key")).await.unwrap();
    }
    std::fs::remove_file(dir.path().join(journal::JOURNAL_KEY_FILE)).unwrap();
    let (journal, _seq) = open(&dir);
    let entry = journal.get(1).unwrap().unwrap();
    assert!(matches!(journal.body(&entry), Err(JournalError::Unseal { seq: 1 })));
    assert!(matches!(journal.entry_fingerprint(&entry), Err(JournalError::Unseal { seq: 1 })));
    assert_eq!(mode(&dir.path().join(journal::JOURNAL_KEY_FILE)), 0o600, "a new key for what comes next");
}

#[tokio::test]
async fn a_readable_journal_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    drop(open(&dir));
    let key = dir.path().join(journal::JOURNAL_KEY_FILE);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = journal::open(dir.path(), JournalConfig::default()).err().expect("a readable key must be refused");
    assert!(matches!(err, JournalError::Key { .. }), "{err}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[tokio::test]
async fn the_journal_directory_and_files_are_private_from_creation() {
    let parent = tempdir();
    let dir = parent.path().join("state");
    let (journal, seq) = journal::open(&dir, JournalConfig::default()).unwrap();
    seq.ensure_id_floor(1).await.unwrap();
    seq.append(draft(1, 1)).await.unwrap();
    assert_eq!(mode(&dir), 0o700);
    for file in ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm", "journal.lock", journal::JOURNAL_KEY_FILE] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    drop((journal, seq));
    // An existing directory with a wider mode is tightened.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(journal::open(&dir, JournalConfig::default()).unwrap());
    assert_eq!(mode(&dir), 0o700);
}

#[tokio::test]
async fn truncated_entries_leave_no_body_behind_in_the_file() {
    let dir = tempdir();
    let marker = "truncated-body-marker-5d2e";
    {
        let (journal, seq) = open(&dir);
        seq.ensure_id_floor(1).await.unwrap();
        let e = seq.append(Draft { body: Bytes::from(format!("{{\"name\":\"{marker}\"}}")), ..draft(1, 0) }).await.unwrap();
        seq.append(draft(2, 0)).await.unwrap();
        for chassis in ["a", "b"] {
            journal.mark_applied(chassis, e.seq).unwrap();
        }
        assert_eq!(journal.truncate().await.unwrap().removed, 1);
    }
    // Closed: the WAL is checkpointed into the database file and removed.
    assert!(!dir.path().join("journal.sqlite-wal").exists());
    assert!(!holds(&dir.path().join("journal.sqlite"), marker.as_bytes()), "the deleted body lingers in a free page");
}

#[tokio::test]
async fn a_version_1_journal_is_upgraded_and_its_bodies_read_as_plain() {
    let dir = tempdir();
    {
        let (_journal, seq) = open(&dir);
        seq.ensure_id_floor(1).await.unwrap();
        seq.append(draft(1, 0)).await.unwrap();
    }
    {
        // What a gateway before sealed bodies wrote: no body_format column, version 1.
        let conn = rusqlite::Connection::open(dir.path().join("journal.sqlite")).unwrap();
        conn.execute_batch(
            "ALTER TABLE entries DROP COLUMN body_format; ALTER TABLE entries DROP COLUMN epoch; \
             UPDATE meta SET value = 1 WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    let (journal, seq) = open(&dir);
    let old = journal.get(1).unwrap().unwrap();
    assert_eq!((old.body_format, journal.body(&old).unwrap()), (BodyFormat::Plain, draft(1, 0).body));
    let new = seq.append(secret_draft("pw-after-upgrade")).await.unwrap();
    assert_eq!(journal.body(&journal.get(new.seq).unwrap().unwrap()).unwrap(), secret_draft("pw-after-upgrade").body);
}

#[tokio::test]
async fn an_entrys_chassis_key_survives_a_restart_and_a_seq_counted_again_gets_another() {
    let dir = tempdir();
    let backup = tempdir();
    let first_key = {
        let (journal, seq) = open(&dir);
        seq.ensure_id_floor(1).await.unwrap();
        let e = seq.append(draft(1, 0)).await.unwrap();
        e.chassis_idempotency_key(journal.gateway_id())
    };
    // What an operator's copy of the state directory holds: the journal up to seq 1.
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), backup.path().join(f.file_name())).unwrap();
    }
    let second_key = {
        // A restart: entry 1 is sent again with the key it was sent with before.
        let (journal, seq) = open(&dir);
        let again = journal.get(1).unwrap().unwrap();
        assert_eq!(again.chassis_idempotency_key(journal.gateway_id()), first_key);
        let e = seq.append(draft(2, 0)).await.unwrap();
        assert_eq!(e.seq, 2);
        e.chassis_idempotency_key(journal.gateway_id())
    };
    // The older copy restored: seq 2 is counted again, for another mutation,
    // and must not reach a chassis under the key it remembers from the first.
    for f in std::fs::read_dir(backup.path()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.path().join(f.file_name())).unwrap();
    }
    let (journal, seq) = open(&dir);
    let e = seq.append(draft(3, 0)).await.unwrap();
    assert_eq!(e.seq, 2, "the restored journal counts seq 2 again");
    assert_ne!(e.chassis_idempotency_key(journal.gateway_id()), second_key);
}

#[tokio::test]
async fn a_version_2_journals_entries_keep_their_keys_and_new_ones_get_an_epoch() {
    let dir = tempdir();
    let gid = {
        let (journal, seq) = open(&dir);
        seq.ensure_id_floor(1).await.unwrap();
        seq.append(draft(1, 0)).await.unwrap();
        journal.gateway_id().to_string()
    };
    {
        // What a gateway before entry epochs wrote: no epoch column, version 2.
        let conn = rusqlite::Connection::open(dir.path().join("journal.sqlite")).unwrap();
        conn.execute_batch("ALTER TABLE entries DROP COLUMN epoch; UPDATE meta SET value = 2 WHERE key = 'schema_version';").unwrap();
    }
    let (journal, seq) = open(&dir);
    let old = journal.get(1).unwrap().unwrap();
    assert_eq!((old.epoch, old.chassis_idempotency_key(&gid)), (None, format!("{gid}/1")), "sent before the upgrade, sent again alike");
    let new = seq.append(draft(2, 0)).await.unwrap();
    let stored = journal.get(new.seq).unwrap().unwrap();
    assert!(stored.epoch.is_some());
    assert_eq!(stored.chassis_idempotency_key(&gid), new.chassis_idempotency_key(&gid));
    assert!(new.chassis_idempotency_key(&gid).starts_with(&format!("{gid}.")));
}
