//! A TCP fault proxy between the gateway and one chassis.
//!
//! The gateway's configuration points a chassis `url` at the proxy's port on
//! 127.0.0.1; the proxy forwards bytes untouched to the chassis' port (TLS
//! passes through, and the chassis certificate, made for 127.0.0.1, still
//! matches). From the test process it can then break the *link* without
//! touching either process — the one fault a `kill` or a `/_sim` hook cannot
//! produce:
//! - [`FaultProxy::cut`]: every open connection is reset and every new one is
//!   accepted and reset at once, until [`FaultProxy::heal`];
//! - [`FaultProxy::slow`]: every chunk, in both directions, waits first;
//! - [`FaultProxy::heal`]: back to a plain pipe.
//!
//! The controls are plain `&self` methods (a `watch` channel inside), usable
//! from any thread. Each connection is one task with one bounded buffer per
//! direction; the number of connections is bounded too. Dropping the proxy
//! stops the accept loop and every connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One chunk read from either side at most (bounded memory per connection).
const CHUNK: usize = 16 * 1024;
/// More simultaneous connections than this are reset (the gateway keeps a
/// small pool; this only bounds a runaway).
const MAX_CONNECTIONS: usize = 256;
/// How long connecting to the target may take before the client is reset.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Backstops on the loops below, which otherwise end with the proxy (drop)
/// or the connection: far more than any campaign accepts or forwards.
const MAX_ACCEPTS: u64 = 10_000_000;
const MAX_CHUNKS: u64 = 100_000_000;

/// What the link does now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMode {
    Pass,
    Slow(Duration),
    Cut,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Control {
    mode: LinkMode,
    /// Bumped by every `cut()`: a connection opened under an older
    /// generation is reset.
    cuts: u64,
}

pub struct FaultProxy {
    port: u16,
    target: u16,
    control: watch::Sender<Control>,
    stop: CancellationToken,
    open: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// Listen on a free port of 127.0.0.1 and forward to `127.0.0.1:target`.
    /// Must be called inside a tokio runtime (the proxy's tasks run there).
    pub async fn start(target: u16) -> Result<FaultProxy, String> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| format!("fault proxy bind: {e}"))?;
        let port = listener.local_addr().map_err(|e| format!("fault proxy address: {e}"))?.port();
        let (control, _) = watch::channel(Control { mode: LinkMode::Pass, cuts: 0 });
        let stop = CancellationToken::new();
        let open = Arc::new(AtomicUsize::new(0));
        tokio::spawn(accept_loop(listener, target, control.subscribe(), stop.clone(), open.clone()));
        Ok(FaultProxy { port, target, control, stop, open })
    }

    /// The port the gateway should use.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn target(&self) -> u16 {
        self.target
    }

    pub fn mode(&self) -> LinkMode {
        self.control.borrow().mode
    }

    /// Connections being forwarded right now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Reset every open connection and every new one until `heal()`.
    pub fn cut(&self) {
        self.control.send_modify(|c| {
            c.mode = LinkMode::Cut;
            c.cuts += 1;
        });
    }

    /// Delay every chunk by `latency`, both ways, open connections included.
    pub fn slow(&self, latency: Duration) {
        self.control.send_modify(|c| c.mode = LinkMode::Slow(latency));
    }

    /// A plain pipe again.
    pub fn heal(&self) {
        self.control.send_modify(|c| c.mode = LinkMode::Pass);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Runs for the proxy's lifetime (ends when it is dropped).
async fn accept_loop(
    listener: TcpListener,
    target: u16,
    control: watch::Receiver<Control>,
    stop: CancellationToken,
    open: Arc<AtomicUsize>,
) {
    for _ in 0..MAX_ACCEPTS {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let client = match accepted {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
                }
            }
        };
        let now = *control.borrow();
        if now.mode == LinkMode::Cut || open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            reset(client);
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let (control, stop, open) = (control.clone(), stop.clone(), open.clone());
        tokio::spawn(async move {
            connection(client, target, now.cuts, control, stop).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Close with RST rather than FIN: what a broken link looks like to the peer.
fn reset(s: TcpStream) {
    let _ = s.set_zero_linger();
    drop(s);
}

/// Forward one connection until either side closes, a cut, or the proxy stops.
async fn connection(client: TcpStream, target: u16, generation: u64, mut control: watch::Receiver<Control>, stop: CancellationToken) {
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(("127.0.0.1", target))).await {
        Ok(Ok(s)) => s,
        // The chassis is down: the client sees its connection reset.
        _ => return reset(client),
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut client, mut upstream) = (client, upstream);
    let was_cut = {
        let (client_r, client_w) = client.split();
        let (up_r, up_w) = upstream.split();
        let (c1, c2) = (control.clone(), control.clone());
        let both = async move { tokio::join!(pump(client_r, up_w, c1), pump(up_r, client_w, c2)) };
        tokio::select! {
            _ = both => false,
            // A newer cut than the one this connection was opened under.
            _ = control.wait_for(|c| c.cuts != generation) => true,
            _ = stop.cancelled() => false,
        }
    };
    if was_cut {
        // RST, not FIN: what a broken link looks like to both peers.
        reset(client);
        reset(upstream);
    }
}

/// Copy one direction, one bounded chunk at a time, delaying each chunk while
/// the link is slow. On EOF the write side is shut down (half close), so the
/// other direction can finish.
async fn pump<R, W>(mut from: R, mut to: W, control: watch::Receiver<Control>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    for _ in 0..MAX_CHUNKS {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        let mode = control.borrow().mode;
        match mode {
            LinkMode::Slow(d) => tokio::time::sleep(d).await,
            // A cut between read and write: drop the chunk, like the wire would.
            LinkMode::Cut => return,
            LinkMode::Pass => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server on 127.0.0.1 for the proxy to forward to.
    async fn echo_server() -> (u16, CancellationToken) {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind echo");
        let port = l.local_addr().expect("addr").port();
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            for _ in 0..1000 {
                let (mut c, _) = tokio::select! {
                    _ = s.cancelled() => return,
                    a = l.accept() => match a { Ok(a) => a, Err(_) => return },
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    for _ in 0..10_000 {
                        match c.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if c.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        (port, stop)
    }

    async fn round_trip(port: u16, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(msg).await?;
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got)).await.map_err(|_| std::io::ErrorKind::TimedOut)??;
        Ok(got)
    }

    #[tokio::test]
    async fn forwards_cuts_slows_and_heals() {
        let (echo, _stop) = echo_server().await;
        let proxy = FaultProxy::start(echo).await.expect("proxy");
        assert_eq!(round_trip(proxy.port(), b"hello").await.expect("pass"), b"hello");

        // An open connection is cut, and new ones fail, until healed.
        let mut open = TcpStream::connect(("127.0.0.1", proxy.port())).await.expect("connect");
        open.write_all(b"x").await.expect("write");
        let mut one = [0u8; 1];
        open.read_exact(&mut one).await.expect("echo before the cut");
        proxy.cut();
        let mut rest = [0u8; 1];
        let after_cut = tokio::time::timeout(Duration::from_secs(5), open.read(&mut rest)).await.expect("the cut ends the read");
        assert!(matches!(after_cut, Ok(0) | Err(_)), "{after_cut:?}");
        assert!(round_trip(proxy.port(), b"no").await.is_err(), "a new connection during a cut must fail");

        proxy.heal();
        assert_eq!(round_trip(proxy.port(), b"back").await.expect("healed"), b"back");

        proxy.slow(Duration::from_millis(150));
        let t = Instant::now();
        assert_eq!(round_trip(proxy.port(), b"slow").await.expect("slow"), b"slow");
        assert!(t.elapsed() >= Duration::from_millis(300), "both directions wait: {:?}", t.elapsed());
        proxy.heal();
        let port = proxy.port();
        drop(proxy);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(round_trip(port, b"gone").await.is_err(), "a dropped proxy stops listening");
    }
}
