//! The session store: gateway tokens (issue, verify, every refusal), sessions that
//! survive a restart, idle timeout, sealed credentials, the single-flight
//! re-login of shared backend sessions, and the login limiter.
//!
//! Forged tokens are made by hand here (base64url + ring HMAC), independently of
//! the code under test; `hand_made_token_with_the_right_secret_verifies` proves the
//! forging helper right, so the refusals below are refusals of the forgery and not
//! of a broken helper.

use std::error::Error;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pairgate::session::{
    AccountInfo, AuthError, BackendSessions, LoginLimiter, Role, Secret, SessionConfig, SessionError, SessionStore, CREDENTIALS_KEY_FILE,
    SESSIONS_DB_FILE,
};
use serde_json::json;

type TestResult = Result<(), Box<dyn Error>>;

const SECRET: &[u8] = b"test-jwt-secret-0123456789abcdef-0123456789";
const OTHER_SECRET: &[u8] = b"another-jwt-secret-0123456789abcdef-01234567";

fn config() -> SessionConfig {
    SessionConfig::new(SECRET.to_vec())
}

fn admin() -> AccountInfo {
    AccountInfo { username: "admin".into(), user_id: 1, role: Role::Admin }
}

fn operator() -> AccountInfo {
    AccountInfo { username: "ops".into(), user_id: 2, role: Role::Operator }
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A JWT made by hand: `header` and `claims` as given, HMAC-signed with `secret`
/// and `alg` (ring), or unsigned if `alg` is `None`.
fn forge(header: &serde_json::Value, claims: &serde_json::Value, secret: &[u8], alg: Option<ring::hmac::Algorithm>) -> String {
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = match alg {
        Some(alg) => URL_SAFE_NO_PAD.encode(ring::hmac::sign(&ring::hmac::Key::new(alg, secret), signing_input.as_bytes())),
        None => String::new(),
    };
    format!("{signing_input}.{signature}")
}

fn claims_for(sid: &str, exp: u64) -> serde_json::Value {
    json!({"sid": sid, "sub": "admin", "role": "admin", "iat": now_s(), "exp": exp})
}

fn hs256() -> serde_json::Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

fn verify_err(store: &SessionStore, token: &str) -> Result<AuthError, Box<dyn Error>> {
    match store.verify(token) {
        Ok(p) => Err(format!("token unexpectedly accepted for {p:?}").into()),
        Err(e) => Ok(e),
    }
}

#[test]
fn issue_then_verify() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SessionStore::open(dir.path(), config())?;
    let issued = store.issue(&operator())?;
    let p = store.verify(&issued.token)?;
    assert_eq!(p.session_id, issued.session_id);
    assert_eq!((p.username.as_str(), p.user_id, p.role), ("ops", 2, Role::Operator));
    assert!(issued.expires > SystemTime::now() + Duration::from_secs(11 * 3600));

    // The login answer has the chassis' shape, with the gateway token in it.
    let body = issued.login_response(&operator());
    assert_eq!(body, json!({"token": issued.token, "user": {"id": 2, "username": "ops", "role": "operator"}}));

    // The token is an HS256 JWT with the documented claims.
    let mut parts = issued.token.split('.');
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().ok_or("header")?)?)?;
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().ok_or("claims")?)?)?;
    assert_eq!(header["alg"], "HS256");
    assert_eq!(claims["sid"], issued.session_id.as_str());
    assert_eq!(claims["sub"], "ops");
    assert_eq!(claims["role"], "operator");
    assert!(claims["iat"].as_u64().is_some() && claims["exp"].as_u64() > claims["iat"].as_u64());

    // Debug output never shows the token.
    let shown = format!("{issued:?} {store:?} {:?}", config());
    assert!(!shown.contains(&issued.token), "{shown}");
    assert!(!shown.contains(std::str::from_utf8(SECRET)?), "{shown}");
    Ok(())
}

#[test]
fn hand_made_token_with_the_right_secret_verifies() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SessionStore::open(dir.path(), config())?;
    let issued = store.issue(&admin())?;
    let token = forge(&hs256(), &claims_for(&issued.session_id, now_s() + 600), SECRET, Some(ring::hmac::HMAC_SHA256));
    assert_eq!(store.verify(&token)?.username, "admin");
    Ok(())
}

#[test]
fn refusals_say_why() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SessionStore::open(dir.path(), config())?;
    let issued = store.issue(&admin())?;
    let sid = issued.session_id.as_str();
    let later = now_s() + 600;

    assert_eq!(verify_err(&store, "")?, AuthError::MissingToken);
    assert_eq!(verify_err(&store, "not a token")?, AuthError::InvalidToken);

    // Tampered: the claims changed (another account), the signature kept.
    let parts: Vec<&str> = issued.token.split('.').collect();
    let other_claims =
        URL_SAFE_NO_PAD.encode(json!({"sid": sid, "sub": "root", "role": "admin", "iat": now_s(), "exp": later}).to_string());
    let tampered = format!("{}.{}.{}", parts[0], other_claims, parts[2]);
    assert_eq!(verify_err(&store, &tampered)?, AuthError::InvalidToken);
    // Tampered: one signature character changed.
    let mut sig = parts[2].to_string();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    sig.replace_range(0..1, flipped);
    assert_eq!(verify_err(&store, &format!("{}.{}.{}", parts[0], parts[1], sig))?, AuthError::InvalidToken);

    // Signed with another secret, naming a real session.
    let foreign = forge(&hs256(), &claims_for(sid, later), OTHER_SECRET, Some(ring::hmac::HMAC_SHA256));
    assert_eq!(verify_err(&store, &foreign)?, AuthError::InvalidToken);

    // `alg: none`, unsigned, naming a real session.
    let none = forge(&json!({"alg": "none", "typ": "JWT"}), &claims_for(sid, later), SECRET, None);
    assert!(none.ends_with('.'));
    assert_eq!(verify_err(&store, &none)?, AuthError::InvalidToken);
    // `alg: none` with a perfectly good HS256 signature attached.
    let none_signed = forge(&json!({"alg": "none"}), &claims_for(sid, later), SECRET, Some(ring::hmac::HMAC_SHA256));
    assert_eq!(verify_err(&store, &none_signed)?, AuthError::InvalidToken);
    // Another HMAC algorithm with the right secret: still not HS256.
    let hs512 = forge(&json!({"alg": "HS512", "typ": "JWT"}), &claims_for(sid, later), SECRET, Some(ring::hmac::HMAC_SHA512));
    assert_eq!(verify_err(&store, &hs512)?, AuthError::InvalidToken);

    // Right secret, exp in the past.
    let old = forge(&hs256(), &claims_for(sid, now_s() - 10), SECRET, Some(ring::hmac::HMAC_SHA256));
    assert_eq!(verify_err(&store, &old)?, AuthError::Expired);

    // Right secret, a session that never existed.
    let unknown = forge(&hs256(), &claims_for("0123456789abcdef0123456789abcdef", later), SECRET, Some(ring::hmac::HMAC_SHA256));
    assert_eq!(verify_err(&store, &unknown)?, AuthError::Revoked);

    // Logged out.
    assert!(store.revoke(sid)?);
    assert_eq!(verify_err(&store, &issued.token)?, AuthError::Revoked);
    assert!(!store.revoke(sid)?, "a second logout finds nothing");
    Ok(())
}

#[test]
fn absolute_lifetime_expires_a_busy_session() -> TestResult {
    let dir = tempfile::tempdir()?;
    let cfg = SessionConfig { absolute_lifetime: Duration::from_millis(800), ..config() };
    let store = SessionStore::open(dir.path(), cfg)?;
    let issued = store.issue(&admin())?;
    store.verify(&issued.token)?;
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(verify_err(&store, &issued.token)?, AuthError::Expired);
    assert_eq!(store.count(), 0);
    Ok(())
}

#[test]
fn logout_ends_only_that_session() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SessionStore::open(dir.path(), config())?;
    let browser_1 = store.issue(&admin())?;
    let browser_2 = store.issue(&admin())?;
    let other = store.issue(&operator())?;
    assert_ne!(browser_1.session_id, browser_2.session_id);
    assert_eq!(store.count(), 3);

    store.revoke(&browser_1.session_id)?;
    assert_eq!(verify_err(&store, &browser_1.token)?, AuthError::Revoked);
    assert_eq!(store.verify(&browser_2.token)?.username, "admin");
    assert_eq!(store.verify(&other.token)?.username, "ops");
    assert_eq!(store.count(), 2);

    let mut listed: Vec<(String, String, Role)> = store.list().into_iter().map(|s| (s.session_id, s.username, s.role)).collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (browser_2.session_id.clone(), "admin".to_string(), Role::Admin),
        (other.session_id.clone(), "ops".to_string(), Role::Operator),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed, expected);
    assert!(!format!("{:?}", store.list()).contains(&browser_2.token), "the status list holds no token");

    // Oldest first.
    std::thread::sleep(Duration::from_millis(5));
    let late = store.issue(&operator())?;
    assert_eq!(store.list().last().map(|s| s.session_id.clone()), Some(late.session_id));
    Ok(())
}

#[test]
fn sessions_survive_a_restart_and_revoked_ones_stay_revoked() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (kept, revoked, other) = {
        let store = SessionStore::open(dir.path(), config())?;
        let kept = store.issue(&admin())?;
        let revoked = store.issue(&admin())?;
        let other = store.issue(&operator())?;
        store.revoke(&revoked.session_id)?;
        (kept, revoked, other)
    };
    let store = SessionStore::open(dir.path(), config())?;
    let p = store.verify(&kept.token)?;
    assert_eq!((p.session_id.as_str(), p.username.as_str(), p.user_id, p.role), (kept.session_id.as_str(), "admin", 1, Role::Admin));
    assert_eq!(store.verify(&other.token)?.role, Role::Operator);
    assert_eq!(verify_err(&store, &revoked.token)?, AuthError::Revoked);
    assert_eq!(store.count(), 2);

    // A gateway restarted with another signing key honours none of them.
    drop(store);
    let rekeyed = SessionStore::open(dir.path(), SessionConfig::new(OTHER_SECRET.to_vec()))?;
    assert_eq!(verify_err(&rekeyed, &kept.token)?, AuthError::InvalidToken);
    Ok(())
}

#[test]
fn idle_timeout_and_activity() -> TestResult {
    let dir = tempfile::tempdir()?;
    // A margin of 1.1 s between each request and the timeout: a loaded CI
    // machine once overslept a 600 ms sleep against a 1 s timeout.
    let cfg = SessionConfig { idle_timeout: Duration::from_millis(2000), ..config() };
    let store = SessionStore::open(dir.path(), cfg.clone())?;
    let issued = store.issue(&admin())?;
    let first_seen = store.list().first().map(|s| s.last_seen).ok_or("listed")?;

    // Activity keeps it alive well past one idle timeout in total.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(900));
        store.verify(&issued.token)?;
    }
    let seen = store.list().first().map(|s| s.last_seen).ok_or("listed")?;
    assert!(seen >= first_seen + Duration::from_millis(2500), "verify refreshes last_seen");

    // The activity was recorded on disk too (lazily, and on drop): a restart does
    // not count the time before the last request as idle.
    drop(store);
    let store = SessionStore::open(dir.path(), cfg)?;
    store.verify(&issued.token)?;

    // Idle longer than the timeout: expired, and it stays expired.
    std::thread::sleep(Duration::from_millis(2300));
    assert_eq!(verify_err(&store, &issued.token)?, AuthError::Expired);
    assert_eq!(verify_err(&store, &issued.token)?, AuthError::Expired);
    assert_eq!(store.count(), 0);
    assert!(store.list().is_empty());
    Ok(())
}

#[test]
fn bad_configuration_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let short = SessionConfig::new(b"too short".to_vec());
    assert!(matches!(SessionStore::open(dir.path(), short), Err(SessionError::WeakJwtSecret { len: 9, .. })));
    let zero = SessionConfig { idle_timeout: Duration::ZERO, ..config() };
    assert!(matches!(SessionStore::open(dir.path(), zero), Err(SessionError::ZeroDuration { .. })));
    Ok(())
}

/// Every file of the database (main file and WAL), concatenated.
fn database_bytes(dir: &Path) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(SESSIONS_DB_FILE) {
            all.extend(std::fs::read(entry.path())?);
        }
    }
    Ok(all)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn credentials_are_sealed_at_rest_and_survive_a_restart() -> TestResult {
    const PASSWORD: &str = "Corr3ct-H0rse-Battery-Staple!";
    const NEW_PASSWORD: &str = "Tr0ub4dor&3-replacement";
    let dir = tempfile::tempdir()?;
    {
        let store = SessionStore::open(dir.path(), config())?;
        assert!(store.credentials("admin")?.is_none());
        store.remember_credentials("admin", PASSWORD)?;
        store.remember_credentials("ops", "ops-password-123")?;
        assert_eq!(store.credentials("admin")?.ok_or("stored")?.expose(), PASSWORD);
        // While open (the WAL holds the latest writes) and after close.
        let raw = database_bytes(dir.path())?;
        assert!(contains(&raw, b"admin"), "the search itself works: the account name is stored in clear");
        assert!(!contains(&raw, PASSWORD.as_bytes()), "the plain password is in the database");
    }
    let raw = database_bytes(dir.path())?;
    assert!(!raw.is_empty());
    assert!(!contains(&raw, PASSWORD.as_bytes()), "the plain password is in the database");

    // The key file: 0600, 32 bytes, and not the password either.
    let key_path = dir.path().join(CREDENTIALS_KEY_FILE);
    let meta = std::fs::metadata(&key_path)?;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 32);

    let store = SessionStore::open(dir.path(), config())?;
    let secret = store.credentials("admin")?.ok_or("survives a restart")?;
    assert_eq!(secret.expose(), PASSWORD);
    let shown = format!("{secret:?}");
    assert!(!shown.contains(PASSWORD) && shown.contains("redacted"), "{shown}");

    // Replaced on the next successful login.
    store.remember_credentials("admin", NEW_PASSWORD)?;
    assert_eq!(store.credentials("admin")?.ok_or("stored")?.expose(), NEW_PASSWORD);
    drop(store);
    assert!(!contains(&database_bytes(dir.path())?, NEW_PASSWORD.as_bytes()));

    // Another key file cannot unseal them (and says so without the password).
    std::fs::write(&key_path, [7u8; 32])?;
    let store = SessionStore::open(dir.path(), config())?;
    match store.credentials("admin") {
        Err(e @ SessionError::Unseal { .. }) => assert!(!e.to_string().contains(NEW_PASSWORD)),
        other => return Err(format!("expected an unseal error, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn revoking_an_account_ends_its_sessions_and_forgets_its_password() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SessionStore::open(dir.path(), config())?;
    let a1 = store.issue(&admin())?;
    let a2 = store.issue(&admin())?;
    let o = store.issue(&operator())?;
    store.remember_credentials("admin", "admin-password")?;
    store.remember_credentials("ops", "ops-password")?;

    assert_eq!(store.revoke_account("admin")?, 2);
    assert_eq!(verify_err(&store, &a1.token)?, AuthError::Revoked);
    assert_eq!(verify_err(&store, &a2.token)?, AuthError::Revoked);
    assert!(store.credentials("admin")?.is_none());
    assert_eq!(store.verify(&o.token)?.username, "ops");
    assert_eq!(store.credentials("ops")?.ok_or("kept")?.expose(), "ops-password");

    drop(store);
    let store = SessionStore::open(dir.path(), config())?;
    assert_eq!(verify_err(&store, &a1.token)?, AuthError::Revoked);
    assert!(store.credentials("admin")?.is_none());
    Ok(())
}

#[test]
fn forgetting_credentials_deletes_the_sealed_password_and_nothing_else() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SessionStore::open(dir.path(), config())?;
    let session = store.issue(&operator())?;
    store.remember_credentials("ops", "ops-password-to-forget")?;
    store.remember_credentials("admin", "admin-password-kept")?;
    // The sealed record as stored, to look for it on disk afterwards.
    let sealed: Vec<u8> = rusqlite::Connection::open(dir.path().join(SESSIONS_DB_FILE))?.query_row(
        "SELECT sealed FROM account_credentials WHERE username = 'ops'",
        [],
        |r| r.get(0),
    )?;
    assert!(contains(&database_bytes(dir.path())?, &sealed), "the search itself works");

    assert!(store.forget_credentials("ops")?);
    assert!(store.credentials("ops")?.is_none());
    assert!(!store.forget_credentials("ops")?, "nothing left to forget");
    assert!(!store.forget_credentials("nobody")?);
    assert!(matches!(store.forget_credentials(""), Err(SessionError::InvalidUsername { .. })));
    // The account's sessions and other accounts' passwords stay.
    assert_eq!(store.verify(&session.token)?.username, "ops");
    assert_eq!(store.credentials("admin")?.ok_or("kept")?.expose(), "admin-password-kept");

    drop(store);
    // Gone for good: not back after a restart, and not left in a free page.
    assert!(!contains(&database_bytes(dir.path())?, &sealed), "the deleted record lingers in the file");
    let store = SessionStore::open(dir.path(), config())?;
    assert!(store.credentials("ops")?.is_none());
    assert_eq!(store.verify(&session.token)?.username, "ops");
    Ok(())
}

#[derive(Debug)]
struct LoginFailed(&'static str);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_relogins_log_in_once() -> TestResult {
    let backend = Arc::new(BackendSessions::new());
    let stale = backend.set("a", "admin", Secret::new("token-1"));
    let other_chassis = backend.set("b", "admin", Secret::new("token-b"));
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(20));

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (backend, calls, barrier) = (Arc::clone(&backend), Arc::clone(&calls), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            // Each request saw a 401 with the stale token and drops it first.
            backend.invalidate_if("a", "admin", stale);
            backend
                .relogin("a", "admin", stale, || async {
                    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, LoginFailed>(Secret::new(format!("token-2-from-login-{n}")))
                })
                .await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await?.map_err(|e| format!("{e:?}"))?);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the chassis login ran once");
    let first = &results[0];
    assert_ne!(first.generation, stale);
    assert_eq!(first.token.expose(), "token-2-from-login-1");
    for r in &results {
        assert_eq!((r.generation, r.token.expose()), (first.generation, first.token.expose()));
    }
    let current = backend.get("a", "admin").ok_or("stored")?;
    assert_eq!(current.generation, first.generation);
    // The other chassis' session of the same account was not touched.
    assert_eq!(backend.get("b", "admin").map(|t| t.generation), Some(other_chassis));

    // A late 401 from the old token must not drop the new one.
    assert!(!backend.invalidate_if("a", "admin", stale));
    assert_eq!(backend.get("a", "admin").map(|t| t.generation), Some(first.generation));

    // A caller that has no token yet (stale 0) gets the current one, no login.
    let got =
        backend.relogin("a", "admin", 0, || async { Err::<Secret, _>(LoginFailed("must not run")) }).await.map_err(|e| format!("{e:?}"))?;
    assert_eq!(got.generation, first.generation);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // The new token goes stale in turn: the next re-login runs again.
    let again = backend
        .relogin("a", "admin", first.generation, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, LoginFailed>(Secret::new("token-3"))
        })
        .await
        .map_err(|e| format!("{e:?}"))?;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(again.token.expose(), "token-3");
    assert!(again.generation != first.generation && again.generation != stale);

    // Debug never shows a token.
    let shown = format!("{again:?} {backend:?}");
    assert!(!shown.contains("token-3"), "{shown}");

    // A chassis restart drops its tokens only.
    assert_eq!(backend.forget_chassis("a"), 1);
    assert!(backend.get("a", "admin").is_none());
    assert!(backend.get("b", "admin").is_some());
    assert_eq!(backend.forget_user("admin"), 1);
    assert!(backend.get("b", "admin").is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_relogin_is_shared_not_repeated() -> TestResult {
    let backend = Arc::new(BackendSessions::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (backend, calls, barrier) = (Arc::clone(&backend), Arc::clone(&calls), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            backend
                .relogin("a", "ops", 0, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err::<Secret, _>(LoginFailed("chassis unreachable"))
                })
                .await
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        match t.await? {
            Ok(token) => return Err(format!("unexpected token {token:?}").into()),
            Err(e) => errors.push(e),
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one failing login, shared by all");
    assert!(errors.iter().all(|e| Arc::ptr_eq(e, &errors[0]) && e.0 == "chassis unreachable"));
    assert!(backend.get("a", "ops").is_none());

    // A caller arriving after the failure tries again.
    let token = backend
        .relogin("a", "ops", 0, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, LoginFailed>(Secret::new("finally"))
        })
        .await
        .map_err(|e| format!("{e:?}"))?;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(token.token.expose(), "finally");
    Ok(())
}

fn ip(s: &str) -> Result<IpAddr, Box<dyn Error>> {
    Ok(s.parse()?)
}

#[test]
fn limiter_counts_per_address_and_per_account() -> TestResult {
    let limiter = LoginLimiter::new(3);
    let (ip1, ip2, ip3) = (ip("192.0.2.1")?, ip("192.0.2.2")?, ip("2001:db8::3")?);
    for _ in 0..3 {
        limiter.check(ip1, "admin").map_err(|e| e.to_string())?;
        limiter.record_failure(ip1, "admin");
    }
    let Err(wait) = limiter.check(ip1, "admin") else { return Err("the 4th attempt must be refused".into()) };
    assert!(wait.0 > Duration::from_secs(55) && wait.0 <= Duration::from_secs(60), "{wait:?}");
    assert_eq!((wait.secs(), wait.status(), wait.code()), (60, 429, "too_many_attempts"));

    // The address is blocked for every account, the account from every address
    // (names compared without case).
    assert!(limiter.check(ip1, "ops").is_err());
    assert!(limiter.check(ip2, "admin").is_err());
    assert!(limiter.check(ip2, "ADMIN").is_err());
    // Others are unaffected.
    assert!(limiter.check(ip2, "ops").is_ok());
    assert!(limiter.check(ip3, "viewer").is_ok());

    // A login of the account succeeds from the guessing address: the account's
    // count is cleared, the address's is not (else one valid account would let an
    // attacker reset their count between guesses at others).
    limiter.record_success(ip1, "admin");
    assert!(limiter.check(ip2, "admin").is_ok());
    assert!(limiter.check(ip1, "ops").is_err(), "a success must not reset the address's failures");

    // Fewer failures than the limit never block.
    limiter.record_failure(ip3, "viewer");
    limiter.record_failure(ip3, "viewer");
    assert!(limiter.check(ip3, "viewer").is_ok());
    Ok(())
}

#[test]
fn limiter_window_slides() -> TestResult {
    let limiter = LoginLimiter::with_window(2, Duration::from_millis(400), 1000);
    let a = ip("198.51.100.7")?;
    limiter.record_failure(a, "admin");
    limiter.record_failure(a, "admin");
    assert!(limiter.check(a, "admin").is_err());
    std::thread::sleep(Duration::from_millis(500));
    assert!(limiter.check(a, "admin").is_ok(), "failures older than the window no longer count");
    Ok(())
}
