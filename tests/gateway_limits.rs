//! The gateway's limits, against real processes: slow clients are cut, idle
//! connections are closed, a flood of idle TLS connections does not stop a normal
//! client, and an unauthenticated request may not make the gateway buffer much.

use std::time::{Duration, Instant};

use pairgate_suite::api::{client_trusting, tls_connector};
use pairgate_suite::pair::Pair;
use rustls::pki_types::ServerName;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// `[listen]` settings for these tests: short timeouts, a connection cap below the
/// flood of idle connections.
fn limits(text: &mut String) {
    *text = text.replacen(
        "[state]\n",
        "header_timeout_ms = 2000\nbody_timeout_ms = 2000\nidle_timeout_ms = 1500\nmax_connections = 500\n[state]\n",
        1,
    );
}

async fn tls_connect(connector: &TlsConnector, port: u16) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("127.0.0.1").expect("server name").to_owned();
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// Reads until the peer closes (or resets), at most `limit`; returns what was read,
/// or `None` if the connection was still open at the limit.
async fn read_until_closed(stream: &mut TlsStream<TcpStream>, limit: Duration) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A client that sends `head`, then `trickle` one byte every 200 ms (at most 60 s),
/// while reading. Returns how long until the gateway cut it, and what it answered.
fn slow_loris(connector: TlsConnector, port: u16, head: String, trickle: Vec<u8>) -> tokio::task::JoinHandle<(Duration, Vec<u8>)> {
    tokio::spawn(async move {
        let stream = tls_connect(&connector, port).await.expect("slow-loris connect");
        let (mut rd, mut wr) = tokio::io::split(stream);
        let start = Instant::now();
        let writer = tokio::spawn(async move {
            if wr.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for b in trickle.iter().take(300) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if wr.write_all(&[*b]).await.is_err() || wr.flush().await.is_err() {
                    return;
                }
            }
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
                Err(_) | Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            }
        }
        writer.abort();
        (start.elapsed(), got)
    })
}

#[tokio::test]
async fn slow_loris_clients_and_a_thousand_idle_connections_do_not_stop_a_normal_client() {
    let pair = Pair::start_with(limits).await;
    let port = pair.gw.port;
    let h1 = tls_connector(&pair.gw.cert, &[b"http/1.1"]);

    // 1,000 idle TLS connections (handshake done, no request), twice the cap.
    let mut idle = Vec::new();
    for _ in 0..10 {
        let batch: Vec<_> = (0..100).map(|_| tls_connect(&h1, port)).collect();
        // At the cap the gateway closes the oldest idle connections to make room:
        // a connect that fails here is that, not a test failure.
        idle.extend(futures_util::future::join_all(batch).await.into_iter().flatten());
    }
    assert!(idle.len() >= 500, "only {} of 1,000 idle connections could even be opened", idle.len());

    // A slow-loris sending its body a byte at a time, one sending its headers so.
    let body = br#"{"username":"admin","password":"admin"}"#.repeat(20);
    let body_loris = slow_loris(
        h1.clone(),
        port,
        format!(
            "POST /api/v1/login HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        ),
        body,
    );
    let header_loris =
        slow_loris(h1.clone(), port, "GET /api/v1/system/info HTTP/1.1\r\n".into(), b"x-slow: abcdefghijklmnopqrstuvwxyz\r\n".repeat(10));

    // A normal client is served meanwhile: a login, a read and a mutation, each
    // within a bound.
    let t = Instant::now();
    let api = tokio::time::timeout(Duration::from_secs(5), pair.gw.login("admin", "admin")).await.expect("login within 5 s");
    let r = tokio::time::timeout(Duration::from_secs(5), api.get("/kvm/hosts")).await.expect("read within 5 s");
    assert_eq!(r.status, 200, "{r:?}");
    let r = tokio::time::timeout(Duration::from_secs(5), api.post("/kvm/hosts", json!({"name": "served", "port": 9})))
        .await
        .expect("mutation within 5 s");
    assert_eq!(r.status, 201, "{r:?}");
    eprintln!("normal client served in {:?} beside {} idle connections and two slow-loris clients", t.elapsed(), idle.len());

    // The slow-loris clients are cut: the body one with 408 (or a close) after the
    // 2 s body timeout, the header one with a close after the 2 s header timeout.
    let (took, answer) = body_loris.await.expect("body slow-loris task");
    let text = String::from_utf8_lossy(&answer);
    eprintln!("body slow-loris cut after {took:?}: {:.80}", text.lines().next().unwrap_or("(closed, no answer)"));
    assert!(took < Duration::from_secs(6), "the body slow-loris was cut only after {took:?}: {text}");
    assert!(answer.is_empty() || text.starts_with("HTTP/1.1 408"), "the body slow-loris got: {text}");
    if !answer.is_empty() {
        assert!(text.contains("\"body_timeout\""), "408 with the JSON error shape: {text}");
    }
    let (took, answer) = header_loris.await.expect("header slow-loris task");
    eprintln!("header slow-loris cut after {took:?}");
    assert!(took < Duration::from_secs(6), "the header slow-loris was cut only after {took:?}");
    assert!(!String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 2"), "the header slow-loris was served");

    // The cap holds: the oldest idle connections were closed to make room.
    let mut closed = 0;
    for c in idle.iter_mut().take(100) {
        if read_until_closed(c, Duration::from_millis(50)).await.is_some() {
            closed += 1;
        }
    }
    assert!(closed > 0, "none of the 100 oldest of {} idle connections was closed", idle.len());
}

#[tokio::test]
async fn idle_connections_are_closed_after_idle_timeout_http1_and_http2() {
    let pair = Pair::start_with(|t| *t = t.replacen("[state]\n", "idle_timeout_ms = 1500\n[state]\n", 1)).await;
    let port = pair.gw.port;

    // HTTP/2: the preface and an empty SETTINGS frame, then nothing.
    let h2 = tls_connector(&pair.gw.cert, &[b"h2"]);
    let mut s = tls_connect(&h2, port).await.expect("h2 connect");
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await.expect("h2 preface");
    let t = Instant::now();
    let got = read_until_closed(&mut s, Duration::from_secs(6)).await;
    assert!(got.is_some(), "an idle HTTP/2 connection was still open after 6 s (idle_timeout_ms = 1500)");
    assert!(t.elapsed() >= Duration::from_millis(1000), "closed after {:?}, before the idle timeout", t.elapsed());

    // HTTP/1.1: one request, then idle keep-alive.
    let h1 = tls_connector(&pair.gw.cert, &[b"http/1.1"]);
    let mut s = tls_connect(&h1, port).await.expect("h1 connect");
    s.write_all(b"GET /api/v1/system/info HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").await.expect("h1 request");
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("an answer").expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 "), "{}", String::from_utf8_lossy(&buf[..n]));
    let t = Instant::now();
    assert!(read_until_closed(&mut s, Duration::from_secs(6)).await.is_some(), "an idle HTTP/1.1 connection was still open after 6 s");
    assert!(t.elapsed() >= Duration::from_millis(1000), "closed after {:?}, before the idle timeout", t.elapsed());
}

#[tokio::test]
async fn unauthenticated_requests_may_send_a_small_body_only() {
    let pair = Pair::start().await;
    let api = pair.gw.api();
    // 100 KiB: far under max_body_bytes (1 MiB), far over what a login needs.
    let password = "x".repeat(100 * 1024);
    let big = serde_json::to_vec(&json!({"username": "admin", "password": password})).unwrap();
    let r = api.raw("POST", "/login", big.clone(), "application/json").await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (413, Some("body_too_large")), "{r:?}");
    // The same before the admin token is checked on /_pairgate.
    let http = client_trusting(Some(&pair.gw.cert));
    let resp = http
        .post(format!("{}/_pairgate/maintenance/a", pair.gw.base))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 413);
    let body: serde_json::Value = resp.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "body_too_large", "{body}");
    // A login of ordinary size still works, on the same client.
    let r = api.post("/login", json!({"username": "admin", "password": "admin"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    // An authenticated mutation may still send more than the small limit.
    let api = pair.gw.login("admin", "admin").await;
    let r = api.post("/kvm/hosts", json!({"name": "h".repeat(20 * 1024), "port": 3})).await;
    assert_ne!(r.status, 413, "an authenticated 20 KiB body is under max_body_bytes: {r:?}");
}
