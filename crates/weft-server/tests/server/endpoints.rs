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
    let err = UdpServer::bind("tcp:0:interface=127.0.0.1", Echo)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServerError::Io(e) if e.kind() == ErrorKind::InvalidInput),
        "{err}"
    );
    let err = TcpServer::bind("udp:0:interface=127.0.0.1", Echo)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServerError::Io(e) if e.kind() == ErrorKind::InvalidInput),
        "{err}"
    );
    let err = TcpServer::bind(BindAddress::from("no such thing"), Echo)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no such thing"), "{err}");
}

#[tokio::test]
async fn an_ssl_endpoint_serves_tls_to_both_handler_flavours() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = dir.path().join("localhost.pem");
    std::fs::write(
        &pem,
        format!("{}{}", ck.signing_key.serialize_pem(), ck.cert.pem()),
    )
    .unwrap();
    let ep = format!("ssl:0:privateKey={}:interface=127.0.0.1", pem.display());
    let client = weft_core::tls::ClientTlsOptions::default()
        .trust_roots(&pem)
        .config()
        .unwrap();
    let talk = |addr: std::net::SocketAddr| {
        let client = client.clone();
        async move {
            let mut s = weft_core::tls::connect_stream(addr, "localhost", client)
                .await
                .expect("TLS handshake");
            s.write_all(b"over tls\n").await.unwrap();
            let mut line = String::new();
            BufReader::new(&mut s).read_line(&mut line).await.unwrap();
            assert_eq!(line, "over tls\n");
        }
    };
    let server = TcpServer::bind(ep.as_str(), Echo).await.unwrap();
    let addr = server.server_address().as_inet().unwrap();
    serve_while!(server, talk(addr));
    let server = TcpServer::bind(ep.as_str(), Blocking(Echo)).await.unwrap();
    let addr = server.server_address().as_inet().unwrap();
    serve_while!(server, talk(addr));
}
