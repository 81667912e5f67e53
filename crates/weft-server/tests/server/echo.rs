//! `SocketServerTest.test_*Server`: echo through every server type, handler flavour
//! and concurrency mode; three clients in a row, then concurrent clients.

use std::path::PathBuf;
use std::sync::Arc;

use weft_server::{
    Blocking, Concurrency, ServerConfig, TcpServer, UdpServer, UnixDatagramServer, UnixStreamServer,
};

use crate::common::*;

fn concurrent(mode: &Concurrency) -> bool {
    !matches!(mode, Concurrency::Sequential)
}

macro_rules! run_modes {
    ($bind:expr, $examine:expr) => {
        for mode in modes() {
            let config = ServerConfig::new().concurrency(mode.clone());
            let server = Arc::new($bind(config).await.unwrap());
            let addr = server.server_address().clone();
            let serving = tokio::spawn({
                let server = server.clone();
                async move { server.serve_forever().await }
            });
            for _ in 0..3 {
                $examine(&addr, 0).await;
            }
            if concurrent(&mode) {
                let clients: Vec<_> = (0..5).map(|i| $examine(&addr, i + 1)).collect();
                futures::future::join_all(clients).await;
            }
            server.shutdown_handle().shutdown().await;
            bounded(serving).await.unwrap().unwrap();
            server.close().await.unwrap();
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_server_async_handler() {
    init_tracing();
    run_modes!(
        |c| TcpServer::bind_with("127.0.0.1:0", Echo, c),
        |a: &weft_server::Address, _| tcp_examine(a.as_inet().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_server_blocking_handler() {
    run_modes!(
        |c| TcpServer::bind_with("127.0.0.1:0", Blocking(Echo), c),
        |a: &weft_server::Address, _| tcp_examine(a.as_inet().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_server_on_current_thread_runtime() {
    // The default concurrency on the smallest runtime.
    let server = Arc::new(TcpServer::bind("127.0.0.1:0", Echo).await.unwrap());
    let addr = server.server_address().as_inet().unwrap();
    let t = serve_on_a_thread(&server);
    for _ in 0..3 {
        tcp_examine(addr).await;
    }
    server.shutdown_handle().shutdown().await;
    t.join().unwrap().unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_stream_server() {
    let dir = tempfile::tempdir().unwrap();
    for blocking in [false, true] {
        let path = dir.path().join(format!("stream-{blocking}.sock"));
        let p = path.clone();
        if blocking {
            run_modes!(
                |c| UnixStreamServer::bind_with(p.clone(), Blocking(Echo), c),
                |a: &weft_server::Address, _| {
                    let p = a.as_path().unwrap().to_path_buf();
                    async move { unix_examine(&p).await }
                }
            );
        } else {
            run_modes!(
                |c| UnixStreamServer::bind_with(p.clone(), Echo, c),
                |a: &weft_server::Address, _| {
                    let p = a.as_path().unwrap().to_path_buf();
                    async move { unix_examine(&p).await }
                }
            );
        }
        assert!(!path.exists(), "close removes the socket file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_server() {
    run_modes!(
        |c| UdpServer::bind_with("127.0.0.1:0", Echo, c),
        |a: &weft_server::Address, _| udp_examine(a.as_inet().unwrap())
    );
    run_modes!(
        |c| UdpServer::bind_with("127.0.0.1:0", Blocking(Echo), c),
        |a: &weft_server::Address, _| udp_examine(a.as_inet().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_datagram_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let client = |i: usize| -> PathBuf { d.join(format!("client-{i}-{}.sock", rand_suffix())) };
    let path = dir.path().join("dgram-async.sock");
    run_modes!(
        |c| UnixDatagramServer::bind_with(path.clone(), Echo, c),
        |a: &weft_server::Address, i| {
            let server = a.as_path().unwrap().to_path_buf();
            let client = client(i);
            async move { unix_dgram_examine(&server, &client).await }
        }
    );
    assert!(!path.exists());
    let path = dir.path().join("dgram-blocking.sock");
    run_modes!(
        |c| UnixDatagramServer::bind_with(path.clone(), Blocking(Echo), c),
        |a: &weft_server::Address, i| {
            let server = a.as_path().unwrap().to_path_buf();
            let client = client(i);
            async move { unix_dgram_examine(&server, &client).await }
        }
    );
    assert!(!path.exists());
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A datagram longer than `max_packet_size` is dropped, never echoed cut short (Python hands
/// the handler its first `max_packet_size` bytes as if they were all); the ones that fit are
/// served as before, async and blocking handlers alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_over_max_packet_size_is_dropped_not_cut() {
    macro_rules! check {
        ($handler:expr) => {{
            let config = ServerConfig::new()
                .concurrency(Concurrency::Sequential)
                .max_packet_size(100);
            let server = UdpServer::bind_with("127.0.0.1:0", $handler, config);
            let server = Arc::new(server.await.unwrap());
            let addr = server.server_address().as_inet().unwrap();
            let serving = tokio::spawn({
                let server = server.clone();
                async move { server.serve_forever().await }
            });
            let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            // Served one at a time, in order: a reply to the long one would come first.
            for datagram in [vec![b'a'; 101], vec![b'b'; 100], vec![b'c'; 1]] {
                client.send_to(&datagram, addr).await.unwrap();
            }
            let mut buf = [0u8; 200];
            for want in [vec![b'b'; 100], vec![b'c'; 1]] {
                let n = bounded(client.recv(&mut buf)).await.unwrap();
                assert_eq!(&buf[..n], &want[..], "{}", stringify!($handler));
            }
            server.shutdown_handle().shutdown().await;
            bounded(serving).await.unwrap().unwrap();
            server.close().await.unwrap();
        }};
    }
    check!(Echo);
    check!(Blocking(Echo));
}
