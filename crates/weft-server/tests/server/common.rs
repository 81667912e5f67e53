//! Handlers and clients shared by the test modules.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_server::{
    BlockingRequestHandler, BlockingStreamRequest, Concurrency, DatagramRequest, HandlerResult,
    Handles, RequestHandler, ServerError, StreamRequest, TcpServer,
};

/// Serves a freshly bound server (`$bind`: a `bind` or `bind_with` future of any server type
/// on an IP address) in a task: the server (in an `Arc`), its address, the serving task.
macro_rules! serving {
    ($bind:expr) => {{
        let server = std::sync::Arc::new($bind.await.unwrap());
        let addr = server.server_address().as_inet().unwrap();
        let s2 = server.clone();
        let serving = tokio::spawn(async move { s2.serve_forever().await });
        (server, addr, serving)
    }};
}
pub(crate) use serving;

/// Serves `server` on a thread of its own with a current-thread runtime (the smallest).
pub fn serve_on_a_thread<H>(
    server: &Arc<TcpServer<H>>,
) -> std::thread::JoinHandle<Result<(), ServerError>>
where
    H: Handles<StreamRequest> + Send + Sync + 'static,
{
    let s2 = server.clone();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(s2.serve_forever())
    })
}

pub const TEST_STR: &[u8] = b"hello world\n";
pub const LIMIT: Duration = Duration::from_secs(20);

/// Runs `f` under a time limit, panicking if it takes longer.
pub async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test timed out")
}

/// Every in-process concurrency mode (Processes is tested in `isolated.rs`).
pub fn modes() -> Vec<Concurrency> {
    vec![
        Concurrency::Sequential,
        Concurrency::tasks(),
        Concurrency::Tasks { limit: Some(2) },
        Concurrency::threads(),
        Concurrency::Threads { limit: Some(2) },
    ]
}

/// Python's MyHandler: echo one line.
#[derive(Debug, Clone, Copy)]
pub struct Echo;

impl RequestHandler<StreamRequest> for Echo {
    async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
        let line = req.read_line().await?;
        req.write_all(&line).await?;
        Ok(())
    }
}

impl BlockingRequestHandler<BlockingStreamRequest> for Echo {
    fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
        let line = req.read_line()?;
        req.write_all(&line)?;
        Ok(())
    }
}

fn dgram_echo(req: &mut DatagramRequest) -> HandlerResult {
    let mut line = Vec::new();
    std::io::BufRead::read_until(&mut req.rfile, b'\n', &mut line)?;
    req.wfile.extend_from_slice(&line);
    Ok(())
}

impl RequestHandler<DatagramRequest> for Echo {
    async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
        dgram_echo(req)
    }
}

impl BlockingRequestHandler<DatagramRequest> for Echo {
    fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
        dgram_echo(req)
    }
}

/// Sends TEST_STR, reads the reply to the end of the stream.
pub async fn tcp_examine(addr: SocketAddr) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(TEST_STR).await.unwrap();
    let mut buf = Vec::new();
    bounded(s.read_to_end(&mut buf)).await.unwrap();
    assert_eq!(buf, TEST_STR);
}

pub async fn unix_examine(path: &Path) {
    let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
    s.write_all(TEST_STR).await.unwrap();
    let mut buf = Vec::new();
    bounded(s.read_to_end(&mut buf)).await.unwrap();
    assert_eq!(buf, TEST_STR);
}

pub async fn udp_examine(addr: SocketAddr) {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(TEST_STR, addr).await.unwrap();
    let mut buf = [0u8; 100];
    let (n, from) = bounded(s.recv_from(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], TEST_STR);
    assert_eq!(from, addr);
}

pub async fn unix_dgram_examine(server: &Path, client: &Path) {
    let s = tokio::net::UnixDatagram::bind(client).unwrap();
    s.send_to(TEST_STR, server).await.unwrap();
    let mut buf = [0u8; 100];
    let n = bounded(s.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], TEST_STR);
    drop(s);
    let _ = std::fs::remove_file(client);
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
