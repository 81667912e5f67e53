//! The server life cycle: shutdown, handle_request and its timeout, verify_request,
//! errors and panics, block_on_close, limits, timeouts, addresses and closing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_server::{
    Address, Blocking, BlockingRequestHandler, BlockingStreamRequest, Concurrency, HandlerError,
    HandlerResult, Handles, RequestHandler, ServerConfig, ServerError, ServerHooks, ServerInfo,
    StreamRequest, TcpServer, UdpServer, UnixStreamServer,
};

use crate::common::*;

/// Counts calls and errors; behaviour chosen by the first line of the request. It is
/// also the server's hooks (see [`Shared::config`]).
#[derive(Default)]
struct Recorder {
    handled: AtomicUsize,
    timeouts: AtomicUsize,
    errors: Mutex<Vec<String>>,
    refuse: bool,
}

impl ServerHooks for Recorder {
    fn verify_request(&self, _client: &Address, _server: &ServerInfo) -> bool {
        !self.refuse
    }

    fn handle_error(&self, _client: &Address, error: &HandlerError) {
        self.errors.lock().unwrap().push(error.to_string());
    }

    fn handle_timeout(&self, _server: &ServerInfo) {
        self.timeouts.fetch_add(1, Ordering::SeqCst);
    }
}

/// Shares one recorder between the test and the server: the handler, async or blocking.
#[derive(Clone, Default)]
struct Shared(Arc<Recorder>);

impl Shared {
    /// The default settings with the recorder as the server's hooks.
    fn config(&self) -> ServerConfig {
        ServerConfig::new().hooks(self.0.clone())
    }
}

impl RequestHandler<StreamRequest> for Shared {
    async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
        self.0.handled.fetch_add(1, Ordering::SeqCst);
        let line = req.read_line().await?;
        match line.as_slice() {
            b"error\n" => Err("Test error".into()),
            b"panic\n" => panic!("Test panic"),
            b"slow\n" => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                req.write_all(b"slow done\n").await?;
                Ok(())
            }
            _ => {
                req.write_all(&line).await?;
                Ok(())
            }
        }
    }
}

impl BlockingRequestHandler<BlockingStreamRequest> for Shared {
    fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
        self.0.handled.fetch_add(1, Ordering::SeqCst);
        let line = req.read_line()?;
        match line.as_slice() {
            b"error\n" => Err("Test error".into()),
            b"panic\n" => panic!("Test panic"),
            b"slow\n" => {
                std::thread::sleep(Duration::from_millis(300));
                req.write_all(b"slow done\n")?;
                Ok(())
            }
            _ => {
                req.write_all(&line)?;
                Ok(())
            }
        }
    }
}

async fn send(addr: std::net::SocketAddr, line: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(line).await.unwrap();
    let mut buf = Vec::new();
    // A reset (after a panic) reads as an error: count it as no reply.
    let _ = bounded(s.read_to_end(&mut buf)).await;
    buf
}

async fn wait_until(mut f: impl FnMut() -> bool) {
    bounded(async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_from_another_thread_while_serving() {
    // test_shutdown: twenty servers, each stopped right after it starts serving in a
    // thread of its own; serve_forever must always return.
    let mut running = Vec::new();
    for _ in 0..20 {
        let server = Arc::new(TcpServer::bind("127.0.0.1:0", Echo).await.unwrap());
        let t = serve_on_a_thread(&server);
        running.push((server, t));
    }
    let handles: Vec<_> = running.iter().map(|(s, _)| s.shutdown_handle()).collect();
    // Shut down from yet another plain thread, blocking.
    let stopper = std::thread::spawn(move || {
        for h in handles {
            h.shutdown_blocking();
        }
    });
    bounded(tokio::task::spawn_blocking(move || stopper.join().unwrap()))
        .await
        .unwrap();
    for (server, t) in running {
        bounded(tokio::task::spawn_blocking(move || t.join().unwrap()))
            .await
            .unwrap()
            .unwrap();
        assert!(!server.shutdown_handle().is_serving());
        server.close().await.unwrap();
    }
}

#[tokio::test]
async fn shutdown_returns_once_the_loop_stopped_and_serving_again_works() {
    let server = Arc::new(TcpServer::bind("127.0.0.1:0", Echo).await.unwrap());
    let addr = server.server_address().as_inet().unwrap();
    let handle = server.shutdown_handle();
    // A shutdown requested before serving makes the next serve_forever return at once.
    handle.shutdown().await;
    bounded(server.serve_forever()).await.unwrap();
    // Serve again, then stop.
    let s2 = server.clone();
    let serving = tokio::spawn(async move { s2.serve_forever().await });
    tcp_examine(addr).await;
    wait_until(|| handle.is_serving()).await;
    handle.shutdown().await;
    assert!(!handle.is_serving());
    assert!(serving.is_finished() || bounded(serving).await.is_ok());
    server.close().await.unwrap();
}

#[tokio::test]
async fn handle_request_timeout_calls_handle_timeout() {
    let rec = Shared::default();
    let config = rec.config().timeout(Duration::from_millis(50));
    let server = TcpServer::bind_with("127.0.0.1:0", rec.clone(), config)
        .await
        .unwrap();
    let start = Instant::now();
    server.handle_request().await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(45));
    assert_eq!(rec.0.timeouts.load(Ordering::SeqCst), 1);
    assert_eq!(rec.0.handled.load(Ordering::SeqCst), 0);

    // With a client waiting, handle_request handles exactly that one.
    let addr = server.server_address().as_inet().unwrap();
    let client = tokio::spawn(send(addr, b"one\n"));
    server.handle_request().await.unwrap();
    assert_eq!(bounded(client).await.unwrap(), b"one\n");
    assert_eq!(rec.0.timeouts.load(Ordering::SeqCst), 1);
    assert_eq!(rec.0.handled.load(Ordering::SeqCst), 1);
    server.close().await.unwrap();
}

#[tokio::test]
async fn udp_handle_request_timeout() {
    #[derive(Clone, Default)]
    struct T(Arc<AtomicUsize>);
    impl RequestHandler<weft_server::DatagramRequest> for T {
        async fn handle(&self, _req: &mut weft_server::DatagramRequest) -> HandlerResult {
            Ok(())
        }
    }
    impl ServerHooks for T {
        fn handle_timeout(&self, _server: &ServerInfo) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let t = T::default();
    let config = ServerConfig::new()
        .timeout(Duration::from_millis(30))
        .hooks(t.clone());
    let server = UdpServer::bind_with("127.0.0.1:0", t.clone(), config)
        .await
        .unwrap();
    server.handle_request().await.unwrap();
    server.handle_request().await.unwrap();
    assert_eq!(t.0.load(Ordering::SeqCst), 2);
    server.close().await.unwrap();
}

#[tokio::test]
async fn verify_request_false_closes_without_handling() {
    let rec = Shared(Arc::new(Recorder {
        refuse: true,
        ..Recorder::default()
    }));
    let (server, addr, serving) = serving!(TcpServer::bind_with(
        "127.0.0.1:0",
        rec.clone(),
        rec.config()
    ));
    for _ in 0..3 {
        assert_eq!(send(addr, b"hi\n").await, b"");
    }
    assert_eq!(rec.0.handled.load(Ordering::SeqCst), 0);
    server.close().await.unwrap();
    bounded(serving).await.unwrap().unwrap();
}

async fn errors_and_panics(config: ServerConfig, blocking: bool) {
    let rec = Shared::default();
    let config = config.hooks(rec.0.clone());
    let server = Arc::new(if blocking {
        let s = TcpServer::bind_with("127.0.0.1:0", Blocking(rec.clone()), config)
            .await
            .unwrap();
        either::Left(s)
    } else {
        either::Right(
            TcpServer::bind_with("127.0.0.1:0", rec.clone(), config)
                .await
                .unwrap(),
        )
    });
    let addr = match &*server {
        either::Left(s) => s.server_address().as_inet().unwrap(),
        either::Right(s) => s.server_address().as_inet().unwrap(),
    };
    let s2 = server.clone();
    let serving = tokio::spawn(async move {
        match &*s2 {
            either::Left(s) => s.serve_forever().await,
            either::Right(s) => s.serve_forever().await,
        }
    });
    assert_eq!(send(addr, b"error\n").await, b"");
    assert_eq!(send(addr, b"panic\n").await, b"");
    // The server goes on.
    assert_eq!(send(addr, b"still here\n").await, b"still here\n");
    wait_until(|| rec.0.errors.lock().unwrap().len() == 2).await;
    // Reports of concurrent requests may come in either order.
    let errors = rec.0.errors.lock().unwrap().clone();
    assert!(
        errors.iter().any(|e| e.contains("Test error")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("handler panicked: Test panic")),
        "{errors:?}"
    );
    assert_eq!(rec.0.handled.load(Ordering::SeqCst), 3);
    match &*server {
        either::Left(s) => s.close().await.unwrap(),
        either::Right(s) => s.close().await.unwrap(),
    }
    bounded(serving).await.unwrap().unwrap();
}

mod either {
    pub enum Either<L, R> {
        Left(L),
        Right(R),
    }
    pub use Either::{Left, Right};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_and_panics_leave_the_server_serving() {
    for mode in modes() {
        for blocking in [false, true] {
            errors_and_panics(ServerConfig::new().concurrency(mode.clone()), blocking).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_on_close_waits_for_running_handlers() {
    for (mode, blocking) in [
        (Concurrency::threads(), true),
        (Concurrency::threads(), false),
        (Concurrency::tasks(), false),
        (Concurrency::tasks(), true),
    ] {
        for block in [true, false] {
            let rec = Shared::default();
            let config = rec.config().concurrency(mode.clone()).block_on_close(block);
            let server = Arc::new(if blocking {
                either::Left(
                    TcpServer::bind_with("127.0.0.1:0", Blocking(rec.clone()), config)
                        .await
                        .unwrap(),
                )
            } else {
                either::Right(
                    TcpServer::bind_with("127.0.0.1:0", rec.clone(), config)
                        .await
                        .unwrap(),
                )
            });
            let (addr, handle) = match &*server {
                either::Left(s) => (s.server_address().as_inet().unwrap(), s.shutdown_handle()),
                either::Right(s) => (s.server_address().as_inet().unwrap(), s.shutdown_handle()),
            };
            let s2 = server.clone();
            let serving = tokio::spawn(async move {
                match &*s2 {
                    either::Left(s) => s.serve_forever().await,
                    either::Right(s) => s.serve_forever().await,
                }
            });
            wait_until(|| handle.is_serving()).await;
            let client = tokio::spawn(send(addr, b"slow\n"));
            wait_until(|| rec.0.handled.load(Ordering::SeqCst) == 1).await;
            let start = Instant::now();
            match &*server {
                either::Left(s) => s.close().await.unwrap(),
                either::Right(s) => s.close().await.unwrap(),
            }
            let waited = start.elapsed();
            if block {
                assert!(
                    waited >= Duration::from_millis(200),
                    "{mode:?} blocking={blocking}: {waited:?}"
                );
            } else {
                assert!(
                    waited < Duration::from_millis(200),
                    "{mode:?} blocking={blocking}: {waited:?}"
                );
            }
            // Either way the running handler completes its reply.
            assert_eq!(bounded(client).await.unwrap(), b"slow done\n");
            bounded(serving).await.unwrap().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_caps_requests_in_flight() {
    for mode in [
        Concurrency::Tasks { limit: Some(1) },
        Concurrency::Threads { limit: Some(1) },
    ] {
        let rec = Shared::default();
        let config = rec.config().concurrency(mode);
        let (server, addr, serving) =
            serving!(TcpServer::bind_with("127.0.0.1:0", rec.clone(), config));
        let slow = tokio::spawn(send(addr, b"slow\n"));
        wait_until(|| rec.0.handled.load(Ordering::SeqCst) == 1).await;
        let start = Instant::now();
        // Connects (backlog) but is not handled until the slow one is done.
        assert_eq!(send(addr, b"quick\n").await, b"quick\n");
        assert!(
            start.elapsed() >= Duration::from_millis(150),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(bounded(slow).await.unwrap(), b"slow done\n");
        server.close().await.unwrap();
        bounded(serving).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn request_timeout_fails_a_silent_client() {
    // On a current-thread runtime: under `Threads` the handler threads use its timers,
    // which the thread serving drives.
    for mode in [Concurrency::tasks(), Concurrency::threads()] {
        let rec = Shared::default();
        silent_client(rec.clone(), &rec, mode.clone()).await;
        let rec = Shared::default();
        silent_client(Blocking(rec.clone()), &rec, mode).await;
    }
}

/// A client that never writes is disconnected after `request_timeout`, and the server's
/// `handle_error` hears why.
async fn silent_client<H: Handles<StreamRequest>>(handler: H, rec: &Shared, mode: Concurrency) {
    let config = rec
        .config()
        .concurrency(mode)
        .request_timeout(Duration::from_millis(50))
        .nodelay(true);
    let (server, addr, serving) = serving!(TcpServer::bind_with("127.0.0.1:0", handler, config));
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    bounded(silent.read_to_end(&mut buf)).await.unwrap();
    assert!(buf.is_empty());
    wait_until(|| !rec.0.errors.lock().unwrap().is_empty()).await;
    assert!(
        rec.0.errors.lock().unwrap()[0].contains("no progress"),
        "{:?}",
        rec.0.errors
    );
    server.close().await.unwrap();
    bounded(serving).await.unwrap().unwrap();
}

#[tokio::test]
async fn server_address_has_the_real_port_and_bind_errors_are_reported() {
    let server = TcpServer::bind("127.0.0.1:0", Echo).await.unwrap();
    let addr = server.server_address().as_inet().unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(
        server.server_address().to_string(),
        format!("127.0.0.1:{}", addr.port())
    );
    assert_eq!(server.info().config().get_backlog(), 128);
    // The port is taken while the server lives.
    let err = TcpServer::bind(addr, Echo).await.unwrap_err();
    assert!(matches!(err, ServerError::Io(_)), "{err}");
    // test_close_immediately / test_context_manager: close releases it.
    server.close().await.unwrap();
    server.close().await.unwrap();
    assert!(matches!(
        server.serve_forever().await,
        Err(ServerError::Closed)
    ));
    assert!(matches!(
        server.handle_request().await,
        Err(ServerError::Closed)
    ));
    let again = TcpServer::bind(addr, Echo).await.unwrap();
    drop(again);
    // Dropping releases it too.
    let again = TcpServer::bind(addr, Echo).await.unwrap();
    again.close().await.unwrap();
}

#[tokio::test]
async fn unix_socket_file_is_removed_on_close_and_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let server = UnixStreamServer::bind(&path, Echo).await.unwrap();
    assert!(path.exists());
    assert_eq!(server.server_address().as_path(), Some(path.as_path()));
    // Binding an existing path fails (Python too) and leaves the file alone.
    assert!(UnixStreamServer::bind(&path, Echo).await.is_err());
    assert!(path.exists());
    server.close().await.unwrap();
    assert!(!path.exists());
    let server = UnixStreamServer::bind(&path, Echo).await.unwrap();
    drop(server);
    assert!(!path.exists());
}

#[tokio::test]
async fn datagram_reply_only_when_wfile_is_written() {
    #[derive(Clone)]
    struct Quiet;
    impl RequestHandler<weft_server::DatagramRequest> for Quiet {
        async fn handle(&self, req: &mut weft_server::DatagramRequest) -> HandlerResult {
            if req.packet() == b"answer" {
                req.wfile.extend_from_slice(b"42");
            }
            Ok(())
        }
    }
    let config = ServerConfig::new().max_packet_size(16);
    let (server, addr, serving) = serving!(UdpServer::bind_with("127.0.0.1:0", Quiet, config));
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.send_to(b"silence", addr).await.unwrap();
    client.send_to(b"answer", addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = bounded(client.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"42", "the first datagram got no reply");
    server.close().await.unwrap();
    bounded(serving).await.unwrap().unwrap();
}

#[tokio::test]
async fn panicking_hooks_do_not_stop_the_server() {
    #[derive(Clone, Default)]
    struct Flaky {
        verified: Arc<AtomicUsize>,
        errors: Arc<Mutex<Vec<String>>>,
    }
    impl RequestHandler<StreamRequest> for Flaky {
        async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
            let line = req.read_line().await?;
            req.write_all(&line).await?;
            Ok(())
        }
    }
    impl ServerHooks for Flaky {
        fn verify_request(&self, _c: &Address, _s: &ServerInfo) -> bool {
            if self.verified.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("verify panic");
            }
            true
        }
        fn handle_error(&self, _c: &Address, e: &HandlerError) {
            self.errors.lock().unwrap().push(e.to_string());
        }
        fn handle_timeout(&self, _s: &ServerInfo) {
            panic!("timeout panic");
        }
    }
    let h = Flaky::default();
    let config = ServerConfig::new()
        .concurrency(Concurrency::Sequential)
        .timeout(Duration::from_millis(20))
        .hooks(h.clone());
    let server = Arc::new(
        TcpServer::bind_with("127.0.0.1:0", h.clone(), config)
            .await
            .unwrap(),
    );
    let addr = server.server_address().as_inet().unwrap();
    // handle_timeout panics: handle_request still returns.
    server.handle_request().await.unwrap();
    let s2 = server.clone();
    let serving = tokio::spawn(async move { s2.serve_forever().await });
    // verify_request panics for the first client: refused and reported.
    assert_eq!(send(addr, b"first\n").await, b"");
    assert_eq!(send(addr, b"second\n").await, b"second\n");
    assert!(h.errors.lock().unwrap()[0].contains("verify panic"));
    server.close().await.unwrap();
    bounded(serving).await.unwrap().unwrap();
}
