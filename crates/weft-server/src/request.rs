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
use tokio_util::io::SyncIoBridge;

use weft_core::Address;
use weft_core::listener::Stream;

use crate::config::ServerConfig;

/// The server's side of a request: its address and settings.
///
/// # Examples
///
/// A handler reads them through its request; the server's owner through
/// [`info`](crate::TcpServer::info) (or that of any other server type):
///
/// ```
/// use tokio::io::AsyncReadExt;
/// use weft_server::{HandlerResult, RequestHandler, StreamRequest, TcpServer};
///
/// struct WhereAmI;
/// impl RequestHandler<StreamRequest> for WhereAmI {
///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
///         let info = req.server();
///         let text = format!("{} {}", info.address(), info.config().get_backlog());
///         req.write_all(text.as_bytes()).await?;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// let server = TcpServer::bind("127.0.0.1:0", WhereAmI).await?;
/// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
/// assert_eq!(server.info().address(), server.server_address());
/// # let handle = server.shutdown_handle();
/// # let serving = tokio::spawn(async move { server.serve_forever().await });
///
/// let mut client = tokio::net::TcpStream::connect(addr).await?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply).await?;
/// assert_eq!(reply, format!("{addr} 128"));
/// # handle.shutdown().await;
/// # serving.await??;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
#[derive(Debug)]
pub struct ServerInfo {
    pub(crate) address: Address,
    pub(crate) config: ServerConfig,
    pub(crate) worker: bool,
}

impl ServerInfo {
    /// The address the server listens on, with the real port.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::TcpServer;
    /// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    /// # struct Quiet;
    /// # impl RequestHandler<StreamRequest> for Quiet {
    /// #     async fn handle(&self, _req: &mut StreamRequest) -> HandlerResult { Ok(()) }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let server = TcpServer::bind("127.0.0.1:0", Quiet).await?;
    /// let port = server.info().address().as_inet().ok_or("not an IP address")?.port();
    /// assert_ne!(port, 0);
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The server's settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{ServerConfig, TcpServer};
    /// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    /// # struct Quiet;
    /// # impl RequestHandler<StreamRequest> for Quiet {
    /// #     async fn handle(&self, _req: &mut StreamRequest) -> HandlerResult { Ok(()) }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let config = ServerConfig::new().nodelay(true);
    /// let server = TcpServer::bind_with("127.0.0.1:0", Quiet, config).await?;
    /// assert!(server.info().config().get_nodelay());
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Whether this server runs in a worker process of a [`crate::ProcessPool`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::TcpServer;
    /// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    /// # struct Quiet;
    /// # impl RequestHandler<StreamRequest> for Quiet {
    /// #     async fn handle(&self, _req: &mut StreamRequest) -> HandlerResult { Ok(()) }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let server = TcpServer::bind("127.0.0.1:0", Quiet).await?;
    /// assert!(!server.info().is_worker()); // bound here, not inherited from a pool's parent
    /// assert_eq!(server.info().is_worker(), weft_server::pool::is_worker());
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn is_worker(&self) -> bool {
        self.worker
    }
}

/// An I/O half with an optional per-operation timeout: a read, write, flush or shutdown that
/// makes no progress for the timeout fails with [`io::ErrorKind::TimedOut`].
///
/// The clock restarts with each operation that makes progress, so a slow but steady
/// peer is fine; only a stall fails. The halves of a [`StreamRequest`] are
/// `TimeoutIo`s, with [`ServerConfig::request_timeout`].
///
/// # Examples
///
/// ```
/// use std::io::ErrorKind;
/// use std::time::Duration;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use weft_server::TimeoutIo;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (mut peer, ours) = tokio::io::duplex(64);
/// let mut io = TimeoutIo::new(ours, Some(Duration::from_millis(50)));
///
/// peer.write_all(b"hi").await?;
/// let mut buf = [0u8; 2];
/// io.read_exact(&mut buf).await?; // data was there: fine
/// assert_eq!(&buf, b"hi");
///
/// // The peer goes quiet: the next read fails after 50 ms.
/// let err = io.read(&mut buf).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TimedOut);
/// # Ok(()) }
/// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::io::AsyncReadExt;
    /// use weft_server::TimeoutIo;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mut io = TimeoutIo::new(&b"abc"[..], Some(Duration::from_secs(1)));
    /// let mut text = String::new();
    /// io.read_to_string(&mut text).await?;
    /// assert_eq!(text, "abc");
    ///
    /// let _forever = TimeoutIo::new(tokio::io::empty(), None); // never times out
    /// # Ok(()) }
    /// ```
    pub fn new(inner: T, timeout: Option<Duration>) -> Self {
        TimeoutIo {
            inner,
            timeout,
            sleep: None,
        }
    }

    /// The wrapped I/O object.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio::io::AsyncWriteExt;
    /// use weft_server::TimeoutIo;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mut io = TimeoutIo::new(Vec::new(), None);
    /// io.write_all(b"written").await?;
    /// assert_eq!(io.get_mut().as_slice(), b"written");
    /// io.get_mut().clear();
    /// # Ok(()) }
    /// ```
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

    /// Timed as a write: over TLS a shutdown sends `close_notify`, which a peer that never
    /// reads may never take.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let p = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.check(cx, p)
    }
}

/// The read half of a stream request, boxed so TCP and Unix share one type.
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncBufReadExt, BufReader};
/// use weft_server::{StreamReader, TimeoutIo};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// // Any `AsyncRead + Send + 'static` fits, which makes handlers' helpers testable.
/// let reader: StreamReader = TimeoutIo::new(Box::pin(&b"one\ntwo\n"[..]), None);
/// let mut lines = BufReader::new(reader).lines();
/// assert_eq!(lines.next_line().await?.as_deref(), Some("one"));
/// assert_eq!(lines.next_line().await?.as_deref(), Some("two"));
/// # Ok(()) }
/// ```
pub type StreamReader = TimeoutIo<Pin<Box<dyn AsyncRead + Send>>>;
/// The write half of a stream request.
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use weft_server::{StreamWriter, TimeoutIo};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (ours, mut peer) = tokio::io::duplex(64);
/// let mut writer: StreamWriter = TimeoutIo::new(Box::pin(ours), None);
/// writer.write_all(b"hello").await?;
///
/// let mut buf = [0u8; 5];
/// peer.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"hello");
/// # Ok(()) }
/// ```
pub type StreamWriter = TimeoutIo<Pin<Box<dyn AsyncWrite + Send>>>;

/// A stream connection for an async handler (`StreamRequestHandler`): a buffered
/// `rfile` and a buffered `wfile`, which the server flushes after `finish`.
///
/// # Examples
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
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// # let server = weft_server::TcpServer::bind("127.0.0.1:0", Echo).await?;
/// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
/// # let handle = server.shutdown_handle();
/// # let serving = tokio::spawn(async move { server.serve_forever().await });
/// use tokio::io::AsyncReadExt;
/// let mut client = tokio::net::TcpStream::connect(addr).await?;
/// client.write_all(b"echo me\n").await?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply).await?;
/// assert_eq!(reply, "echo me\n");
/// # handle.shutdown().await;
/// # serving.await??;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
#[derive(Debug)]
pub struct StreamRequest {
    /// Buffered reader over the connection.
    pub rfile: BufReader<StreamReader>,
    /// Buffered writer over the connection, flushed by the server after `finish`.
    pub wfile: BufWriter<StreamWriter>,
    pub(crate) client: Address,
    pub(crate) server: Arc<ServerInfo>,
}

impl StreamRequest {
    /// The request of one established connection.
    pub(crate) fn new(stream: Stream, client: Address, server: Arc<ServerInfo>) -> Self {
        match stream {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                Self::from_halves(r, w, client, server)
            }
            Stream::Unix(s) => {
                let (r, w) = s.into_split();
                Self::from_halves(r, w, client, server)
            }
            // Kinds weft-core adds later (TLS) are split generically.
            other => {
                let (r, w) = tokio::io::split(other);
                Self::from_halves(r, w, client, server)
            }
        }
    }

    /// Hands the connection over to a blocking handler (through [`SyncIoBridge`]s, so
    /// call it inside the runtime), leaving this request empty.
    pub(crate) fn take_blocking(&mut self) -> BlockingStreamRequest {
        let empty = Self::from_halves(
            tokio::io::empty(),
            tokio::io::sink(),
            self.client.clone(),
            self.server.clone(),
        );
        let this = std::mem::replace(self, empty);
        let writer = Arc::new(std::sync::Mutex::new(SyncIoBridge::new(this.wfile)));
        BlockingStreamRequest {
            rfile: std::io::BufReader::new(Box::new(SyncIoBridge::new(this.rfile))),
            wfile: std::io::BufWriter::new(Box::new(SharedWriter(writer.clone()))),
            client: this.client,
            server: this.server,
            shutdown: Some(Box::new(move || {
                let _ = lock(&writer).shutdown();
            })),
        }
    }

    fn from_halves<R, W>(read: R, write: W, client: Address, server: Arc<ServerInfo>) -> Self
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
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    ///
    /// struct WhoAmI;
    /// impl RequestHandler<StreamRequest> for WhoAmI {
    ///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    ///         let you = req.client_address().to_string();
    ///         req.write_all(you.as_bytes()).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::TcpServer::bind("127.0.0.1:0", WhoAmI).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// # use tokio::io::AsyncReadExt;
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply).await?;
    /// assert_eq!(reply, client.local_addr()?.to_string());
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn client_address(&self) -> &Address {
        &self.client
    }

    /// The server's address and settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    ///
    /// struct Port;
    /// impl RequestHandler<StreamRequest> for Port {
    ///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    ///         let port = req.server().address().as_inet().map_or(0, |a| a.port());
    ///         req.write_all(port.to_string().as_bytes()).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::TcpServer::bind("127.0.0.1:0", Port).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// # use tokio::io::AsyncReadExt;
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply).await?;
    /// assert_eq!(reply, addr.port().to_string());
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    /// Read one line including its `\n` (`rfile.readline()`); empty at end of stream.
    ///
    /// # Errors
    ///
    /// Any I/O error of the connection, including `TimedOut` after
    /// [`ServerConfig::request_timeout`] without progress.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if the future is dropped midway, the part of the line read so far
    /// is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    ///
    /// /// Answers each line, upper-cased, until the client stops sending.
    /// struct Upper;
    /// impl RequestHandler<StreamRequest> for Upper {
    ///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    ///         loop {
    ///             let line = req.read_line().await?;
    ///             if line.is_empty() {
    ///                 return Ok(()); // end of stream
    ///             }
    ///             req.write_all(&line.to_ascii_uppercase()).await?;
    ///         }
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::TcpServer::bind("127.0.0.1:0", Upper).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// client.write_all(b"one\ntwo\n").await?;
    /// client.shutdown().await?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply).await?;
    /// assert_eq!(reply, "ONE\nTWO\n");
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn read_line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        self.rfile.read_until(b'\n', &mut line).await?;
        Ok(line)
    }

    /// The lines of the request as UTF-8 strings, without their line endings.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    ///
    /// /// Sums the numbers the client sends, one a line.
    /// struct Sum;
    /// impl RequestHandler<StreamRequest> for Sum {
    ///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    ///         let mut total = 0i64;
    ///         let mut lines = req.lines();
    ///         while let Some(line) = lines.next_line().await? {
    ///             total += line.trim().parse::<i64>()?;
    ///         }
    ///         req.write_all(total.to_string().as_bytes()).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::TcpServer::bind("127.0.0.1:0", Sum).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// client.write_all(b"1\n2\r\n39\n").await?;
    /// client.shutdown().await?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply).await?;
    /// assert_eq!(reply, "42");
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn lines(&mut self) -> tokio::io::Lines<&mut BufReader<StreamReader>> {
        (&mut self.rfile).lines()
    }

    /// Write all of `data` to `wfile`.
    ///
    /// # Errors
    ///
    /// Any I/O error of the connection, including `TimedOut` after
    /// [`ServerConfig::request_timeout`] without progress.
    ///
    /// # Examples
    ///
    /// `wfile` is buffered: what is written goes out when the buffer fills, on
    /// `wfile.flush()`, or when the server flushes it after `finish`.
    ///
    /// ```
    /// use tokio::io::AsyncWriteExt;
    /// use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    ///
    /// struct Banner;
    /// impl RequestHandler<StreamRequest> for Banner {
    ///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    ///         req.write_all(b"220 ready\r\n").await?;
    ///         req.wfile.flush().await?; // send it now, not when the handler returns
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::TcpServer::bind("127.0.0.1:0", Banner).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// # use tokio::io::AsyncReadExt;
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply).await?;
    /// assert_eq!(reply, "220 ready\r\n");
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
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
///
/// # Examples
///
/// ```
/// use std::io::{BufRead, Write};
/// use weft_server::{Blocking, BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
///
/// struct Echo;
/// impl BlockingRequestHandler<BlockingStreamRequest> for Echo {
///     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
///         let mut line = String::new();
///         req.rfile.read_line(&mut line)?;
///         req.wfile.write_all(line.as_bytes())?;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// # let server = weft_server::TcpServer::bind("127.0.0.1:0", weft_server::Blocking(Echo)).await?;
/// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
/// # let handle = server.shutdown_handle();
/// # let serving = tokio::spawn(async move { server.serve_forever().await });
/// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// let mut client = tokio::net::TcpStream::connect(addr).await?;
/// client.write_all(b"echo me\n").await?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply).await?;
/// assert_eq!(reply, "echo me\n");
/// # handle.shutdown().await;
/// # serving.await??;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
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
    /// The request of a connection on a plain socket (the fork servers': no runtime).
    pub(crate) fn from_socket(
        s: socket2::Socket,
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
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    ///
    /// struct WhoAmI;
    /// impl BlockingRequestHandler<BlockingStreamRequest> for WhoAmI {
    ///     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    ///         let you = req.client_address().to_string();
    ///         req.write_all(you.as_bytes())?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::TcpServer::bind("127.0.0.1:0", weft_server::Blocking(WhoAmI)).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// # use tokio::io::AsyncReadExt;
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply).await?;
    /// assert_eq!(reply, client.local_addr()?.to_string());
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn client_address(&self) -> &Address {
        &self.client
    }

    /// The server's address and settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    ///
    /// struct Timeout;
    /// impl BlockingRequestHandler<BlockingStreamRequest> for Timeout {
    ///     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    ///         let timeout = req.server().config().get_request_timeout();
    ///         req.write_all(format!("{timeout:?}").as_bytes())?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::TcpServer::bind("127.0.0.1:0", weft_server::Blocking(Timeout)).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// # use tokio::io::AsyncReadExt;
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply).await?;
    /// assert_eq!(reply, "None");
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    /// Read one line including its `\n` (`rfile.readline()`); empty at end of stream.
    ///
    /// # Errors
    ///
    /// Any I/O error of the connection; with [`ServerConfig::request_timeout`], a read
    /// that waits longer fails with `WouldBlock` or `TimedOut` (the platform's error for
    /// `SO_RCVTIMEO`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    ///
    /// struct Upper;
    /// impl BlockingRequestHandler<BlockingStreamRequest> for Upper {
    ///     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    ///         loop {
    ///             let line = req.read_line()?;
    ///             if line.is_empty() {
    ///                 return Ok(()); // end of stream
    ///             }
    ///             req.write_all(&line.to_ascii_uppercase())?;
    ///         }
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::TcpServer::bind("127.0.0.1:0", weft_server::Blocking(Upper)).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// client.write_all(b"one\ntwo\n").await?;
    /// client.shutdown().await?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply).await?;
    /// assert_eq!(reply, "ONE\nTWO\n");
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn read_line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        std::io::BufRead::read_until(&mut self.rfile, b'\n', &mut line)?;
        Ok(line)
    }

    /// Write all of `data` to `wfile`.
    ///
    /// # Errors
    ///
    /// Any I/O error of the connection, or of the write timeout set from
    /// [`ServerConfig::request_timeout`].
    ///
    /// # Examples
    ///
    /// `wfile` is buffered: call `wfile.flush()` to send at once; the server flushes it
    /// after `finish`.
    ///
    /// ```
    /// use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    ///
    /// struct Thanks;
    /// impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
    ///     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    ///         req.write_all(b"Thank you for connecting")?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::TcpServer::bind("127.0.0.1:0", weft_server::Blocking(Thanks)).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// # use tokio::io::AsyncReadExt;
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply).await?;
    /// assert_eq!(reply, "Thank you for connecting");
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
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
///
/// # Examples
///
/// ```
/// use std::io::BufRead;
/// use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
///
/// /// Replies with the number of lines in the datagram.
/// struct CountLines;
/// impl RequestHandler<DatagramRequest> for CountLines {
///     async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
///         let n = (&mut req.rfile).lines().count();
///         req.wfile.extend_from_slice(n.to_string().as_bytes());
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// # let server = weft_server::UdpServer::bind("127.0.0.1:0", CountLines).await?;
/// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
/// # let handle = server.shutdown_handle();
/// # let serving = tokio::spawn(async move { server.serve_forever().await });
/// let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
/// client.send_to(b"a\nb\nc\n", addr).await?;
/// let mut buf = [0u8; 16];
/// let n = client.recv(&mut buf).await?;
/// assert_eq!(&buf[..n], b"3");
/// # handle.shutdown().await;
/// # serving.await??;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
#[derive(Debug)]
pub struct DatagramRequest {
    /// The packet, readable with `std::io::Read` / `BufRead` or `tokio::io::AsyncRead`.
    pub rfile: Cursor<Vec<u8>>,
    /// The reply, sent to the client after `finish` if not empty.
    pub wfile: Vec<u8>,
    pub(crate) client: Address,
    pub(crate) server: Arc<ServerInfo>,
    /// The server's socket, which sends the reply (none in forked children, which reply
    /// themselves, nor after a panic).
    pub(crate) reply_from: Option<Arc<crate::server::Dgram>>,
}

/// The blocking writer over a connection's async write half, shared with the request's
/// closing step (which shuts the write half down).
struct SharedWriter(Arc<std::sync::Mutex<SyncIoBridge<BufWriter<StreamWriter>>>>);

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl std::io::Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        lock(&self.0).flush()
    }
}

impl DatagramRequest {
    pub(crate) fn new(packet: Vec<u8>, client: Address, server: Arc<ServerInfo>) -> Self {
        DatagramRequest {
            rfile: Cursor::new(packet),
            wfile: Vec::new(),
            client,
            server,
            reply_from: None,
        }
    }

    /// The client's address (`client_address`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
    ///
    /// struct WhoAmI;
    /// impl RequestHandler<DatagramRequest> for WhoAmI {
    ///     async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
    ///         req.wfile = req.client_address().to_string().into_bytes();
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::UdpServer::bind("127.0.0.1:0", WhoAmI).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    /// client.send_to(b"?", addr).await?;
    /// let mut buf = [0u8; 64];
    /// let n = client.recv(&mut buf).await?;
    /// assert_eq!(&buf[..n], client.local_addr()?.to_string().as_bytes());
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn client_address(&self) -> &Address {
        &self.client
    }

    /// The server's address and settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
    ///
    /// struct MaxSize;
    /// impl RequestHandler<DatagramRequest> for MaxSize {
    ///     async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
    ///         let max = req.server().config().get_max_packet_size();
    ///         req.wfile = max.to_string().into_bytes();
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::UdpServer::bind("127.0.0.1:0", MaxSize).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    /// client.send_to(b"?", addr).await?;
    /// let mut buf = [0u8; 16];
    /// let n = client.recv(&mut buf).await?;
    /// assert_eq!(&buf[..n], b"8192");
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    /// The whole packet (`request[0]` in Python).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
    ///
    /// struct Reverse;
    /// impl RequestHandler<DatagramRequest> for Reverse {
    ///     async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
    ///         let mut reply = req.packet().to_vec();
    ///         reply.reverse();
    ///         req.wfile = reply;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::UdpServer::bind("127.0.0.1:0", Reverse).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    /// client.send_to(b"stressed", addr).await?;
    /// let mut buf = [0u8; 16];
    /// let n = client.recv(&mut buf).await?;
    /// assert_eq!(&buf[..n], b"desserts");
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
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

    /// A shutdown is a write too: over TLS it sends `close_notify`, which a client that never
    /// reads (its window full once the reply is flushed) never takes. Under a request timeout
    /// it must fail like a stalled write, or the request's task and socket are held forever.
    #[tokio::test]
    async fn timeout_io_fails_a_stalled_shutdown() {
        /// A stream whose socket takes nothing more: writes and shutdown stay pending.
        struct Full;
        impl AsyncWrite for Full {
            fn poll_write(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: &[u8],
            ) -> Poll<io::Result<usize>> {
                Poll::Pending
            }
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Pending
            }
        }
        let mut w = BufWriter::new(TimeoutIo::new(Full, Some(Duration::from_millis(50))));
        let done = tokio::time::timeout(Duration::from_secs(5), w.shutdown()).await;
        let err = done
            .expect("shutdown not bounded by the request timeout")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
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
