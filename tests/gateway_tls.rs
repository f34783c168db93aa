//! The gateway's TLS front: the server's cipher-suite order wins for TLS 1.2.

use std::sync::Arc;
use std::time::Duration;

use pairgate_suite::http::roots_trusting;
use pairgate_suite::pair::Pair;
use rustls::pki_types::ServerName;
use rustls::{CipherSuite, SupportedCipherSuite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn tls12(suite: &SupportedCipherSuite) -> bool {
    matches!(suite, SupportedCipherSuite::Tls12(_))
}

#[tokio::test]
async fn tls12_uses_the_servers_cipher_suite_order_not_the_clients() {
    let pair = Pair::start_with_wait(|_| {}, false).await;
    let server_order: Vec<SupportedCipherSuite> = rustls::crypto::ring::default_provider().cipher_suites;
    // The gateway's certificate is ECDSA (rcgen's default): the ECDSA suites, in the
    // server's order of preference, then offered by the client in reverse.
    let ecdsa: Vec<SupportedCipherSuite> =
        server_order.iter().copied().filter(|s| tls12(s) && format!("{:?}", s.suite()).contains("ECDSA")).collect();
    assert!(ecdsa.len() >= 2, "the test needs two TLS 1.2 ECDSA suites to order: {ecdsa:?}");
    let servers_first: CipherSuite = ecdsa[0].suite();
    let mut reversed = ecdsa.clone();
    reversed.reverse();
    assert_ne!(reversed[0].suite(), servers_first, "the test itself: the orders differ");

    let provider = rustls::crypto::CryptoProvider { cipher_suites: reversed, ..rustls::crypto::ring::default_provider() };
    let roots = roots_trusting(&pair.gw.cert).expect("trust the gateway's certificate");
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS 1.2 with these suites")
        .with_root_certificates(roots)
        .with_no_client_auth();

    // The gateway may still be starting: a bounded retry of the connect.
    let mut stream = None;
    for _ in 0..100 {
        if let Ok(tcp) = TcpStream::connect(("127.0.0.1", pair.gw.port)).await {
            let name = ServerName::try_from("127.0.0.1").unwrap().to_owned();
            let tls = tokio::time::timeout(Duration::from_secs(5), TlsConnector::from(Arc::new(cfg.clone())).connect(name, tcp)).await;
            stream = Some(tls.expect("handshake within 5 s").expect("TLS 1.2 handshake"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stream = stream.expect("the gateway listens within 10 s");
    let conn = stream.get_ref().1;
    assert_eq!(conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let negotiated = conn.negotiated_cipher_suite().expect("a negotiated suite").suite();
    assert_eq!(negotiated, servers_first, "the client's first choice won over the server's");
}
