//! Binding from weft-core endpoint strings: the servers accept through weft-core's listener,
//! so a stream endpoint of any kind serves both handler flavours.

use std::io::ErrorKind;
use std::sync::Arc;

use weft_server::{BindAddress, Blocking, ServerError, TcpServer, UdpServer};

use crate::common::{Echo, bounded, tcp_examine, udp_examine, unix_examine};

/// Serves `server` while `examine` runs, then closes it.
macro_rules! serve_while {
    ($server:expr, $examine:expr) => {{
        let server = Arc::new($server);
        let serving = tokio::spawn({
            let server = server.clone();
            async move { server.serve_forever().await }
        });
        bounded($examine).await;
        server.close().await.unwrap();
        bounded(serving).await.unwrap().unwrap();
    }};
}

#[tokio::test]
async fn tcp_server_binds_endpoint_strings_for_both_handler_flavours() {
    let server = TcpServer::bind("tcp:0:interface=127.0.0.1", Echo)
        .await
        .unwrap();
    let addr = server.server_address().as_inet().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    serve_while!(server, tcp_examine(addr));

    let server = TcpServer::bind("tcp:0:interface=127.0.0.1", Blocking(Echo))
        .await
        .unwrap();
    let addr = server.server_address().as_inet().unwrap();
    serve_while!(server, tcp_examine(addr));
}

#[tokio::test]
async fn a_unix_endpoint_serves_through_the_same_server_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ep.sock");
    let server = TcpServer::bind(format!("unix:{}", path.display()), Blocking(Echo))
        .await
        .unwrap();
    assert_eq!(server.server_address().as_path(), Some(path.as_path()));
    serve_while!(server, unix_examine(&path));
    assert!(!path.exists(), "close removed the socket file");
}

#[tokio::test]
async fn udp_server_binds_endpoint_strings_and_plain_addresses() {
    for addr in ["udp:0:interface=127.0.0.1", "127.0.0.1:0", "localhost:0"] {
        let server = UdpServer::bind(addr, Echo).await.unwrap();
        let bound = server.server_address().as_inet().unwrap();
        serve_while!(server, udp_examine(bound));
    }
}

#[tokio::test]
async fn the_wrong_kind_of_endpoint_is_refused_with_what_was_given() {
    let invalid_input = |err: &ServerError| matches!(err, ServerError::Io(e) if e.kind() == ErrorKind::InvalidInput);
    let err = UdpServer::bind("tcp:0:interface=127.0.0.1", Echo)
        .await
        .unwrap_err();
    assert!(invalid_input(&err), "{err}");
    let err = TcpServer::bind("udp:0:interface=127.0.0.1", Echo)
        .await
        .unwrap_err();
    assert!(invalid_input(&err), "{err}");
    let err = TcpServer::bind(BindAddress::from("no such thing"), Echo)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no such thing"), "{err}");
}

#[path = "../../../weft-core/tests/support/pki.rs"]
mod pki;

/// Asks one line over TLS (trusting `ca`) and returns the reply.
async fn ask_tls(addr: std::net::SocketAddr, ca: &pki::Ca, line: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(line).await.unwrap();
    let mut reply = Vec::new();
    tls.read_to_end(&mut reply).await.unwrap();
    reply
}

#[tokio::test]
async fn an_ssl_endpoint_serves_async_and_blocking_handlers_without_server_code() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("weft-server test CA");
    let pem = ca.leaf(&["localhost"]).write_combined(dir.path(), "server");
    let endpoint = format!("ssl:0:interface=127.0.0.1:privateKey={}", pem.display());
    for blocking in [false, true] {
        macro_rules! check {
            ($server:expr) => {{
                let server = $server;
                let addr = server.server_address().as_inet().unwrap();
                serve_while!(server, async {
                    assert_eq!(ask_tls(addr, &ca, b"over tls\n").await, b"over tls\n");
                });
            }};
        }
        if blocking {
            check!(
                TcpServer::bind(endpoint.as_str(), Blocking(Echo))
                    .await
                    .unwrap()
            );
        } else {
            check!(TcpServer::bind(endpoint.as_str(), Echo).await.unwrap());
        }
    }
}
