//! What a handler gets: the request (connection or datagram), the client address and
//! the server's settings.

use std::fmt;
use std::future::Future;
use std::io::{self, Cursor};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter, ReadBuf,
};
use tokio::time::Sleep;

use crate::addr::Address;
use crate::config::ServerConfig;

/// The server's side of a request: its address and settings.
#[derive(Debug)]
pub struct ServerInfo {
    pub(crate) address: Address,
    pub(crate) config: ServerConfig,
    pub(crate) worker: bool,
}

impl ServerInfo {
    /// The address the server listens on, with the real port.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The server's settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Whether this server runs in a worker process of a [`crate::ProcessPool`].
    pub fn is_worker(&self) -> bool {
        self.worker
    }
}

/// An I/O half with an optional per-operation timeout: a read or write that makes no
/// progress for the timeout fails with [`io::ErrorKind::TimedOut`].
pub struct TimeoutIo<T> {
    inner: T,
    timeout: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<T> fmt::Debug for TimeoutIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutIo")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<T> TimeoutIo<T> {
    /// Wrap `inner`; `None` means no timeout.
    pub fn new(inner: T, timeout: Option<Duration>) -> Self {
        TimeoutIo {
            inner,
            timeout,
            sleep: None,
        }
    }

    /// The wrapped I/O object.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    fn check<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(r) => {
                self.sleep = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if let Some(t) = self.timeout {
                    let sleep = self
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(t)));
                    if sleep.as_mut().poll(cx).is_ready() {
                        self.sleep = None;
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no progress for {t:?}"),
                        )));
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimeoutIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let p = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.check(cx, p)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimeoutIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let p = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, p)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let p = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, p)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The read half of a stream request, boxed so TCP and Unix share one type.
pub type StreamReader = TimeoutIo<Pin<Box<dyn AsyncRead + Send>>>;
/// The write half of a stream request.
pub type StreamWriter = TimeoutIo<Pin<Box<dyn AsyncWrite + Send>>>;

/// A stream connection for an async handler (`StreamRequestHandler`): a buffered
/// `rfile` and a buffered `wfile`, which the server flushes after `finish`.
///
/// ```
/// use weft_server::{HandlerResult, RequestHandler, StreamRequest};
/// use tokio::io::AsyncWriteExt;
///
/// struct Echo;
/// impl RequestHandler<StreamRequest> for Echo {
///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
///         let line = req.read_line().await?;
///         req.wfile.write_all(&line).await?;
///         Ok(())
///     }
/// }
/// ```
pub struct StreamRequest {
    /// Buffered reader over the connection.
    pub rfile: BufReader<StreamReader>,
    /// Buffered writer over the connection, flushed by the server after `finish`.
    pub wfile: BufWriter<StreamWriter>,
    pub(crate) client: Address,
    pub(crate) server: Arc<ServerInfo>,
}

impl fmt::Debug for StreamRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamRequest")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl StreamRequest {
    pub(crate) fn new<R, W>(read: R, write: W, client: Address, server: Arc<ServerInfo>) -> Self
    where
        R: AsyncRead + Send + 'static,
        W: AsyncWrite + Send + 'static,
    {
        let t = server.config.request_timeout;
        StreamRequest {
            rfile: BufReader::new(TimeoutIo::new(Box::pin(read), t)),
            wfile: BufWriter::new(TimeoutIo::new(Box::pin(write), t)),
            client,
            server,
        }
    }

    /// The client's address (`client_address`).
    pub fn client_address(&self) -> &Address {
        &self.client
    }

    /// The server's address and settings.
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    /// Read one line including its `\n` (`rfile.readline()`); empty at end of stream.
    pub async fn read_line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        self.rfile.read_until(b'\n', &mut line).await?;
        Ok(line)
    }

    /// The lines of the request as UTF-8 strings, without their line endings.
    pub fn lines(&mut self) -> tokio::io::Lines<&mut BufReader<StreamReader>> {
        (&mut self.rfile).lines()
    }

    /// Write all of `data` to `wfile`.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.wfile.write_all(data).await
    }

    pub(crate) async fn close(&mut self) -> io::Result<()> {
        self.wfile.flush().await?;
        self.wfile.shutdown().await
    }
}

/// A stream connection for a blocking handler (threads, forked processes): a
/// buffered `rfile` and `wfile` over the blocking socket, whose read and write
/// timeouts are set from [`ServerConfig::request_timeout`].
pub struct BlockingStreamRequest {
    /// Buffered reader over the connection.
    pub rfile: std::io::BufReader<Box<dyn std::io::Read + Send>>,
    /// Buffered writer over the connection, flushed by the server after `finish`.
    pub wfile: std::io::BufWriter<Box<dyn std::io::Write + Send>>,
    pub(crate) client: Address,
    pub(crate) server: Arc<ServerInfo>,
    pub(crate) shutdown: Option<Box<dyn FnOnce() + Send>>,
}

impl fmt::Debug for BlockingStreamRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingStreamRequest")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl BlockingStreamRequest {
    pub(crate) fn from_tcp(
        s: std::net::TcpStream,
        client: Address,
        server: Arc<ServerInfo>,
    ) -> io::Result<Self> {
        s.set_nonblocking(false)?;
        s.set_read_timeout(server.config.request_timeout)?;
        s.set_write_timeout(server.config.request_timeout)?;
        let w = s.try_clone()?;
        let c = s.try_clone()?;
        Ok(BlockingStreamRequest {
            rfile: std::io::BufReader::new(Box::new(s)),
            wfile: std::io::BufWriter::new(Box::new(w)),
            client,
            server,
            shutdown: Some(Box::new(move || {
                let _ = c.shutdown(std::net::Shutdown::Write);
            })),
        })
    }

    pub(crate) fn from_unix(
        s: std::os::unix::net::UnixStream,
        client: Address,
        server: Arc<ServerInfo>,
    ) -> io::Result<Self> {
        s.set_nonblocking(false)?;
        s.set_read_timeout(server.config.request_timeout)?;
        s.set_write_timeout(server.config.request_timeout)?;
        let w = s.try_clone()?;
        let c = s.try_clone()?;
        Ok(BlockingStreamRequest {
            rfile: std::io::BufReader::new(Box::new(s)),
            wfile: std::io::BufWriter::new(Box::new(w)),
            client,
            server,
            shutdown: Some(Box::new(move || {
                let _ = c.shutdown(std::net::Shutdown::Write);
            })),
        })
    }

    /// The client's address (`client_address`).
    pub fn client_address(&self) -> &Address {
        &self.client
    }

    /// The server's address and settings.
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    /// Read one line including its `\n` (`rfile.readline()`); empty at end of stream.
    pub fn read_line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        std::io::BufRead::read_until(&mut self.rfile, b'\n', &mut line)?;
        Ok(line)
    }

    /// Write all of `data` to `wfile`.
    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        std::io::Write::write_all(&mut self.wfile, data)
    }

    pub(crate) fn close(&mut self) -> io::Result<()> {
        let r = std::io::Write::flush(&mut self.wfile);
        if let Some(f) = self.shutdown.take() {
            f();
        }
        r
    }
}

/// A datagram request (`DatagramRequestHandler`): `rfile` reads the packet, and what
/// the handler writes to `wfile` is sent back to the client after `finish`, as one
/// datagram (nothing is sent when `wfile` is empty; Python sends an empty datagram).
///
/// The same type serves async and blocking handlers.
#[derive(Debug)]
pub struct DatagramRequest {
    /// The packet, readable with `std::io::Read` / `BufRead` or `tokio::io::AsyncRead`.
    pub rfile: Cursor<Vec<u8>>,
    /// The reply, sent to the client after `finish` if not empty.
    pub wfile: Vec<u8>,
    pub(crate) client: Address,
    pub(crate) server: Arc<ServerInfo>,
}

impl DatagramRequest {
    /// The client's address (`client_address`).
    pub fn client_address(&self) -> &Address {
        &self.client
    }

    /// The server's address and settings.
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    /// The whole packet (`request[0]` in Python).
    pub fn packet(&self) -> &[u8] {
        self.rfile.get_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn timeout_io_fails_a_stalled_read_and_resets_on_progress() {
        let (mut peer, ours) = tokio::io::duplex(64);
        let mut r = TimeoutIo::new(ours, Some(Duration::from_millis(100)));
        let mut buf = [0u8; 8];
        // Progress within the timeout, twice: each read restarts the clock.
        for _ in 0..2 {
            let writer = async {
                tokio::time::sleep(Duration::from_millis(60)).await;
                peer.write_all(b"x").await.unwrap();
            };
            let (n, ()) = tokio::join!(r.read(&mut buf), writer);
            assert_eq!(n.unwrap(), 1);
        }
        // Then nothing: TimedOut.
        let err = r.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // Without a timeout a read just waits.
        let (_peer2, ours2) = tokio::io::duplex(64);
        let mut r2 = TimeoutIo::new(ours2, None);
        let waited = tokio::time::timeout(Duration::from_millis(50), r2.read(&mut buf)).await;
        assert!(waited.is_err());
    }

    #[test]
    fn config_defaults_follow_the_documented_table() {
        let c = ServerConfig::default();
        assert_eq!(c.get_backlog(), 128);
        assert!(c.get_reuse_address());
        assert!(c.get_block_on_close());
        assert_eq!(c.get_max_packet_size(), 8192);
        assert_eq!(c.get_timeout(), None);
        assert_eq!(c.get_request_timeout(), None);
        assert!(!c.get_nodelay());
        assert!(matches!(
            c.get_concurrency(),
            crate::Concurrency::Tasks { limit: None }
        ));
        assert_eq!(
            ServerConfig::new().backlog(u32::MAX).get_backlog(),
            i32::MAX as u32
        );
    }
}
