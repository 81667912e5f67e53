//! The servers: [`StreamServer`] ([`TcpServer`], [`UnixStreamServer`]) and
//! [`DatagramServer`] ([`UdpServer`], [`UnixDatagramServer`]).
//!
//! Both are a [`Server`]: one struct, with the accessors every kind shares, and a
//! kind part ([`Stream`] or [`Datagram`]) that holds the socket and the handler.

use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::net::ToSocketAddrs;

use crate::addr::Address;
use crate::config::{Concurrency, ServerConfig};
use crate::dispatch::{
    self, Conn, DatagramService, DgramDispatch, DgramSender, Executor, StreamDispatch,
    StreamService,
};
use crate::error::ServerError;
use crate::handler::Hooks;
use crate::pool;
use crate::request::ServerInfo;
use crate::shutdown::ShutdownHandle;

/// Marker for TCP servers ([`TcpServer`]).
///
/// # Examples
///
/// ```
/// use weft_server::{StreamServer, Tcp, TcpServer};
/// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
/// # struct Quiet;
/// # impl RequestHandler<StreamRequest> for Quiet {
/// #     async fn handle(&self, _req: &mut StreamRequest) -> HandlerResult { Ok(()) }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// let server: StreamServer<Tcp, Quiet> = TcpServer::bind("127.0.0.1:0", Quiet).await?;
/// assert!(server.server_address().as_inet().is_some());
/// server.close().await?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
#[derive(Debug)]
pub enum Tcp {}
/// Marker for UDP servers ([`UdpServer`]).
///
/// # Examples
///
/// ```
/// use weft_server::{DatagramServer, Udp, UdpServer};
/// # use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
/// # struct Quiet;
/// # impl RequestHandler<DatagramRequest> for Quiet {
/// #     async fn handle(&self, _req: &mut DatagramRequest) -> HandlerResult { Ok(()) }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// let server: DatagramServer<Udp, Quiet> = UdpServer::bind("127.0.0.1:0", Quiet).await?;
/// assert!(server.server_address().as_inet().is_some());
/// server.close().await?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
#[derive(Debug)]
pub enum Udp {}
/// Marker for Unix-domain servers ([`UnixStreamServer`], [`UnixDatagramServer`]).
///
/// # Examples
///
/// ```
/// use weft_server::{StreamServer, Unix, UnixStreamServer};
/// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
/// # struct Quiet;
/// # impl RequestHandler<StreamRequest> for Quiet {
/// #     async fn handle(&self, _req: &mut StreamRequest) -> HandlerResult { Ok(()) }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("quiet.sock");
/// let server: StreamServer<Unix, Quiet> = UnixStreamServer::bind(&path, Quiet).await?;
/// assert_eq!(server.server_address().as_path(), Some(path.as_path()));
/// server.close().await?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
#[derive(Debug)]
pub enum Unix {}

/// A TCP server (`socketserver.TCPServer`).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use weft_server::{HandlerResult, RequestHandler, StreamRequest, TcpServer};
///
/// struct Echo;
/// impl RequestHandler<StreamRequest> for Echo {
///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
///         let line = req.read_line().await?;
///         req.write_all(&line).await?;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// let server = Arc::new(TcpServer::bind("127.0.0.1:0", Echo).await?);
/// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
/// let serving = tokio::spawn({
///     let server = server.clone();
///     async move { server.serve_forever().await }
/// });
///
/// let mut client = tokio::net::TcpStream::connect(addr).await?;
/// client.write_all(b"hello\n").await?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply).await?;
/// assert_eq!(reply, "hello\n");
///
/// server.close().await?;
/// serving.await??;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
pub type TcpServer<H> = StreamServer<Tcp, H>;
/// A Unix stream server (`socketserver.UnixStreamServer`).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use weft_server::UnixStreamServer;
/// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
/// # struct Echo;
/// # impl RequestHandler<StreamRequest> for Echo {
/// #     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
/// #         let line = req.read_line().await?;
/// #         req.write_all(&line).await?;
/// #         Ok(())
/// #     }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("echo.sock");
/// let server = Arc::new(UnixStreamServer::bind(&path, Echo).await?);
/// let serving = tokio::spawn({
///     let server = server.clone();
///     async move { server.serve_forever().await }
/// });
///
/// let mut client = tokio::net::UnixStream::connect(&path).await?;
/// client.write_all(b"hello\n").await?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply).await?;
/// assert_eq!(reply, "hello\n");
///
/// server.close().await?; // also removes the socket file
/// serving.await??;
/// assert!(!path.exists());
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
pub type UnixStreamServer<H> = StreamServer<Unix, H>;
/// A UDP server (`socketserver.UDPServer`).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use weft_server::UdpServer;
/// # use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
/// # struct Echo;
/// # impl RequestHandler<DatagramRequest> for Echo {
/// #     async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
/// #         req.wfile = req.packet().to_vec();
/// #         Ok(())
/// #     }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// let server = Arc::new(UdpServer::bind("127.0.0.1:0", Echo).await?);
/// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
/// let serving = tokio::spawn({
///     let server = server.clone();
///     async move { server.serve_forever().await }
/// });
///
/// let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
/// client.send_to(b"ping", addr).await?;
/// let mut buf = [0u8; 16];
/// let n = client.recv(&mut buf).await?;
/// assert_eq!(&buf[..n], b"ping");
///
/// server.close().await?;
/// serving.await??;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
pub type UdpServer<H> = DatagramServer<Udp, H>;
/// A Unix datagram server (`socketserver.UnixDatagramServer`).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use weft_server::UnixDatagramServer;
/// # use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
/// # struct Echo;
/// # impl RequestHandler<DatagramRequest> for Echo {
/// #     async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
/// #         req.wfile = req.packet().to_vec();
/// #         Ok(())
/// #     }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("server.sock");
/// let server = Arc::new(UnixDatagramServer::bind(&path, Echo).await?);
/// let serving = tokio::spawn({
///     let server = server.clone();
///     async move { server.serve_forever().await }
/// });
///
/// // The client binds a path of its own, or the reply has nowhere to go.
/// let client = tokio::net::UnixDatagram::bind(dir.path().join("client.sock"))?;
/// client.send_to(b"ping", &path).await?;
/// let mut buf = [0u8; 16];
/// let n = client.recv(&mut buf).await?;
/// assert_eq!(&buf[..n], b"ping");
///
/// server.close().await?;
/// serving.await??;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
pub type UnixDatagramServer<H> = DatagramServer<Unix, H>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a Unix socket file when the server is closed or dropped.
#[derive(Debug)]
struct PathGuard(PathBuf);

impl PathGuard {
    /// Gives up the removal (the server's own guard takes over).
    fn disarm(self) -> PathBuf {
        let mut this = std::mem::ManuallyDrop::new(self);
        std::mem::take(&mut this.0)
    }
}

impl Drop for PathGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.0.display(), error = %e, "could not remove the socket file");
            }
        }
    }
}

/// What every server shares: settings, shutdown, executor, worker pids.
#[derive(Debug)]
struct Core {
    info: Arc<ServerInfo>,
    shutdown: ShutdownHandle,
    exec: Executor,
    path: Mutex<Option<PathGuard>>,
    workers: Arc<Mutex<Vec<Option<u32>>>>,
}

impl Core {
    fn new(address: Address, config: ServerConfig, worker: bool, path: Option<PathBuf>) -> Self {
        let exec = Executor::new(&config);
        let shutdown = ShutdownHandle::default();
        if worker {
            pool::watch_stdin(shutdown.clone());
        }
        Core {
            info: Arc::new(ServerInfo {
                address,
                config,
                worker,
            }),
            shutdown,
            exec,
            path: Mutex::new(path.map(PathGuard)),
            workers: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn pool(&self) -> Option<&crate::config::ProcessPool> {
        match &self.info.config.concurrency {
            Concurrency::Processes(p) if !self.info.worker => Some(p),
            _ => None,
        }
    }

    async fn close(&self) {
        self.shutdown.shutdown().await;
        self.exec.tracker.close();
        if self.info.config.block_on_close {
            self.exec.tracker.wait().await;
        }
        drop(lock(&self.path).take());
    }
}

fn new_socket(domain: Domain, ty: Type, config: &ServerConfig) -> std::io::Result<Socket> {
    let s = Socket::new(domain, ty, None)?;
    if domain != Domain::UNIX {
        s.set_reuse_address(config.reuse_address)?;
        if config.reuse_port {
            s.set_reuse_port(true)?;
        }
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

async fn resolve(addr: impl ToSocketAddrs) -> Result<Vec<std::net::SocketAddr>, ServerError> {
    let addrs: Vec<_> = tokio::net::lookup_host(addr).await?.collect();
    if addrs.is_empty() {
        return Err(ServerError::NoAddress("lookup returned nothing".into()));
    }
    Ok(addrs)
}

/// Tries each address in turn, like `TcpListener::bind`.
pub(crate) fn bind_first<T>(
    addrs: &[std::net::SocketAddr],
    mut f: impl FnMut(std::net::SocketAddr) -> std::io::Result<T>,
) -> Result<T, ServerError> {
    let mut last = None;
    for a in addrs {
        match f(*a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(
        || ServerError::NoAddress("no address".into()),
        ServerError::Io,
    ))
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<(Conn, Address)> {
        match self {
            Listener::Tcp(l) => l
                .accept()
                .await
                .map(|(s, a)| (Conn::Tcp(s), Address::Inet(a))),
            Listener::Unix(l) => l
                .accept()
                .await
                .map(|(s, a)| (Conn::Unix(s), Address::from_unix_tokio(&a))),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l) => l.as_fd(),
        }
    }
}

/// Accept errors such as `EMFILE` or `ECONNABORTED` do not stop a server (Python's
/// `_handle_request_noblock` ignores `OSError` too); back off briefly so that a
/// persistent one does not spin.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
}

/// A server of any kind: [`StreamServer`] ([`TcpServer`], [`UnixStreamServer`]) or
/// [`DatagramServer`] ([`UdpServer`], [`UnixDatagramServer`]).
///
/// The parameter is the kind of server, [`Stream`] or [`Datagram`]; write the aliases
/// rather than `Server` itself. The accessors ([`server_address`](Self::server_address),
/// [`info`](Self::info), [`shutdown_handle`](Self::shutdown_handle),
/// [`worker_pids`](Self::worker_pids)) are the same for every kind; binding and
/// serving are those of each kind.
///
/// # Examples
///
/// ```
/// use weft_server::{Datagram, Server, Stream, Tcp, TcpServer, Udp, UdpServer};
/// # use weft_server::{DatagramRequest, HandlerResult, RequestHandler, StreamRequest};
/// # struct Quiet;
/// # impl RequestHandler<StreamRequest> for Quiet {
/// #     async fn handle(&self, _req: &mut StreamRequest) -> HandlerResult { Ok(()) }
/// # }
/// # impl RequestHandler<DatagramRequest> for Quiet {
/// #     async fn handle(&self, _req: &mut DatagramRequest) -> HandlerResult { Ok(()) }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// let tcp: Server<Stream<Tcp, Quiet>> = TcpServer::bind("127.0.0.1:0", Quiet).await?;
/// let udp: Server<Datagram<Udp, Quiet>> = UdpServer::bind("127.0.0.1:0", Quiet).await?;
/// // The same accessors on both.
/// assert!(tcp.server_address().as_inet().is_some());
/// assert!(udp.server_address().as_inet().is_some());
/// tcp.close().await?;
/// udp.close().await?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
pub struct Server<T> {
    core: Core,
    kind: T,
}

mod sealed {
    /// The kinds of [`Server`](super::Server): [`Stream`](super::Stream) and
    /// [`Datagram`](super::Datagram).
    pub trait Kind {
        /// The name `Debug` shows.
        const NAME: &'static str;
    }
}

impl<T: sealed::Kind> std::fmt::Debug for Server<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(T::NAME)
            .field("address", &self.core.info.address)
            .field("config", &self.core.info.config)
            .finish_non_exhaustive()
    }
}

impl<T> Server<T> {
    /// The address the server is bound to, with the real port (`server_address`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{TcpServer, UdpServer};
    /// # use weft_server::{DatagramRequest, HandlerResult, RequestHandler, StreamRequest};
    /// # struct Quiet;
    /// # impl RequestHandler<StreamRequest> for Quiet {
    /// #     async fn handle(&self, _req: &mut StreamRequest) -> HandlerResult { Ok(()) }
    /// # }
    /// # impl RequestHandler<DatagramRequest> for Quiet {
    /// #     async fn handle(&self, _req: &mut DatagramRequest) -> HandlerResult { Ok(()) }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let server = TcpServer::bind("127.0.0.1:0", Quiet).await?;
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// assert!(addr.ip().is_loopback());
    /// assert_ne!(addr.port(), 0); // the port the kernel picked
    /// tokio::net::TcpStream::connect(addr).await?; // connects (the backlog holds it)
    /// server.close().await?;
    ///
    /// let server = UdpServer::bind("127.0.0.1:0", Quiet).await?;
    /// assert_ne!(server.server_address().as_inet().ok_or("not an IP address")?.port(), 0);
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn server_address(&self) -> &Address {
        &self.core.info.address
    }

    /// The server's address and settings.
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
    /// let config = ServerConfig::new().max_packet_size(1024);
    /// let server = TcpServer::bind_with("127.0.0.1:0", Quiet, config).await?;
    /// let info = server.info();
    /// assert_eq!(info.address(), server.server_address());
    /// assert_eq!(info.config().get_max_packet_size(), 1024);
    /// assert!(!info.is_worker());
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn info(&self) -> &ServerInfo {
        &self.core.info
    }

    /// A handle to stop [`serve_forever`](StreamServer::serve_forever) from elsewhere.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::UdpServer;
    /// # use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
    /// # struct Quiet;
    /// # impl RequestHandler<DatagramRequest> for Quiet {
    /// #     async fn handle(&self, _req: &mut DatagramRequest) -> HandlerResult { Ok(()) }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let server = UdpServer::bind("127.0.0.1:0", Quiet).await?;
    /// let handle = server.shutdown_handle(); // cheap to clone, usable from any thread
    /// let serving = tokio::spawn(async move { server.serve_forever().await });
    ///
    /// handle.shutdown().await;
    /// serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.core.shutdown.clone()
    }

    /// The process ids of the live workers of a [`crate::ProcessPool`].
    ///
    /// # Examples
    ///
    /// Empty unless the server runs [`Concurrency::Processes`] and is serving (the parent
    /// starts its workers in [`serve_forever`](StreamServer::serve_forever)).
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
    /// // Only the parent of a process pool has workers.
    /// let server = TcpServer::bind("127.0.0.1:0", Quiet).await?;
    /// assert!(server.worker_pids().is_empty());
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn worker_pids(&self) -> Vec<u32> {
        lock(&self.core.workers).iter().flatten().copied().collect()
    }
}
/// A stream server over TCP or Unix sockets; use the aliases [`TcpServer`] and
/// [`UnixStreamServer`].
///
/// Life cycle, as in `socketserver`: [`bind`](StreamServer::bind) (binds and listens
/// at once, with the backlog and `SO_REUSEADDR` of the [`ServerConfig`]), then
/// [`serve_forever`](Self::serve_forever) until [`ShutdownHandle::shutdown`], or
/// [`handle_request`](Self::handle_request) for one request at a time; finally
/// [`close`](Self::close) (`server_close`), which releases the socket, removes a Unix
/// socket file and (with `block_on_close`) waits for running handlers. Dropping the
/// server releases the socket and the file too, without waiting.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
/// use weft_server::{HandlerResult, RequestHandler, StreamRequest, TcpServer};
///
/// /// Answers each line with its length, until the client hangs up.
/// struct Lengths;
/// impl RequestHandler<StreamRequest> for Lengths {
///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
///         let mut lines = req.lines();
///         let mut replies = Vec::new();
///         while let Some(line) = lines.next_line().await? {
///             replies.push(format!("{}\n", line.len()));
///         }
///         for reply in replies {
///             req.write_all(reply.as_bytes()).await?;
///         }
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// let server = Arc::new(TcpServer::bind("127.0.0.1:0", Lengths).await?);
/// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
/// let serving = tokio::spawn({
///     let server = server.clone();
///     async move { server.serve_forever().await }
/// });
///
/// let mut client = tokio::net::TcpStream::connect(addr).await?;
/// client.write_all(b"a\nabc\n").await?;
/// client.shutdown().await?; // end of the request
/// let mut replies = BufReader::new(client).lines();
/// assert_eq!(replies.next_line().await?.as_deref(), Some("1"));
/// assert_eq!(replies.next_line().await?.as_deref(), Some("3"));
/// assert_eq!(replies.next_line().await?, None);
///
/// server.close().await?;
/// serving.await??;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
pub type StreamServer<K, H> = Server<Stream<K, H>>;

/// The stream part of a [`StreamServer`]: the listening socket and the handler. `K` is
/// [`Tcp`] or [`Unix`], `H` the handler. Only named in types; the fields are private.
///
/// # Examples
///
/// ```
/// use weft_server::{Server, Stream, Tcp, TcpServer};
/// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
/// # struct Quiet;
/// # impl RequestHandler<StreamRequest> for Quiet {
/// #     async fn handle(&self, _req: &mut StreamRequest) -> HandlerResult { Ok(()) }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// let server: Server<Stream<Tcp, Quiet>> = TcpServer::bind("127.0.0.1:0", Quiet).await?;
/// assert!(format!("{server:?}").starts_with("StreamServer"));
/// server.close().await?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
pub struct Stream<K, H> {
    listener: Mutex<Option<Arc<Listener>>>,
    dispatch: Arc<dyn StreamDispatch>,
    hooks: Arc<dyn Hooks>,
    _kind: PhantomData<fn() -> (K, H)>,
}

impl<K, H> sealed::Kind for Stream<K, H> {
    const NAME: &'static str = "StreamServer";
}

impl<K, H> std::fmt::Debug for Stream<K, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").finish_non_exhaustive()
    }
}

impl<H: StreamService> StreamServer<Tcp, H> {
    /// Binds a TCP server with the default [`ServerConfig`]. Port 0 picks a free port:
    /// read it back with [`server_address`](Self::server_address).
    ///
    /// In a worker process of a [`crate::ProcessPool`] this adopts the inherited
    /// listening socket instead of binding.
    ///
    /// # Errors
    ///
    /// Returns [`ServerError::Io`] if the address cannot be resolved, or if no address
    /// it resolves to can be bound and listened on (`AddrInUse` for a port taken by
    /// another listening socket, `PermissionDenied` for a privileged port),
    /// [`ServerError::NoAddress`] if it resolves to nothing, and, in a pool worker,
    /// [`ServerError::Worker`] if the inherited socket is unusable.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::TcpServer;
    /// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    /// # struct Echo;
    /// # impl RequestHandler<StreamRequest> for Echo {
    /// #     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    /// #         let line = req.read_line().await?;
    /// #         req.write_all(&line).await?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let server = TcpServer::bind("127.0.0.1:0", Echo).await?;
    /// let port = server.server_address().as_inet().ok_or("not an IP address")?.port();
    /// assert_ne!(port, 0);
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs, handler: H) -> Result<Self, ServerError> {
        Self::bind_with(addr, handler, ServerConfig::default()).await
    }

    /// Binds a TCP server with `config`.
    ///
    /// # Errors
    ///
    /// As for [`bind`](Self::bind).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_server::{ServerConfig, TcpServer};
    /// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    /// # struct Echo;
    /// # impl RequestHandler<StreamRequest> for Echo {
    /// #     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    /// #         let line = req.read_line().await?;
    /// #         req.write_all(&line).await?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let config = ServerConfig::new()
    ///     .backlog(16)
    ///     .nodelay(true)
    ///     .request_timeout(Duration::from_secs(30));
    /// let server = TcpServer::bind_with("127.0.0.1:0", Echo, config).await?;
    /// assert_eq!(server.info().config().get_backlog(), 16);
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn bind_with(
        addr: impl ToSocketAddrs,
        handler: H,
        config: ServerConfig,
    ) -> Result<Self, ServerError> {
        let (std_listener, worker) = match pool::take_inherited(Type::STREAM)? {
            Some(sock) => (std::net::TcpListener::from(sock), true),
            None => {
                let addrs = resolve(addr).await?;
                let sock = bind_first(&addrs, |a| {
                    let s = new_socket(Domain::for_address(a), Type::STREAM, &config)?;
                    s.bind(&a.into())?;
                    s.listen(config.backlog)?;
                    Ok(s)
                })?;
                (std::net::TcpListener::from(sock), false)
            }
        };
        std_listener.set_nonblocking(true)?;
        let address = Address::Inet(std_listener.local_addr()?);
        let listener = Listener::Tcp(tokio::net::TcpListener::from_std(std_listener)?);
        Ok(Self::from_parts(
            listener, address, config, worker, None, handler,
        ))
    }
}

impl<H: StreamService> StreamServer<Unix, H> {
    /// Binds a Unix stream server at `path` with the default [`ServerConfig`]. The
    /// path must not exist; [`close`](Self::close) (or drop) removes it.
    ///
    /// # Errors
    ///
    /// Returns [`ServerError::Io`] if the socket cannot be bound at `path` (`AddrInUse`
    /// if the file exists, `NotFound` if its directory does not, `InvalidInput` if the
    /// path is too long for a socket address) or cannot listen, and, in a pool worker,
    /// [`ServerError::Worker`] if the inherited socket is unusable.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use weft_server::{ServerError, UnixStreamServer};
    /// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    /// # struct Echo;
    /// # impl RequestHandler<StreamRequest> for Echo {
    /// #     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    /// #         let line = req.read_line().await?;
    /// #         req.write_all(&line).await?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("echo.sock");
    /// let server = UnixStreamServer::bind(&path, Echo).await?;
    /// assert!(path.exists());
    ///
    /// // The path is taken now.
    /// match UnixStreamServer::bind(&path, Echo).await {
    ///     Err(ServerError::Io(e)) => assert_eq!(e.kind(), ErrorKind::AddrInUse),
    ///     other => panic!("expected AddrInUse, got {other:?}"),
    /// }
    ///
    /// server.close().await?;
    /// assert!(!path.exists());
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn bind(path: impl AsRef<Path>, handler: H) -> Result<Self, ServerError> {
        Self::bind_with(path, handler, ServerConfig::default()).await
    }

    /// Binds a Unix stream server at `path` with `config`.
    ///
    /// # Errors
    ///
    /// As for [`bind`](Self::bind).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{Concurrency, ServerConfig, UnixStreamServer};
    /// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    /// # struct Echo;
    /// # impl RequestHandler<StreamRequest> for Echo {
    /// #     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    /// #         let line = req.read_line().await?;
    /// #         req.write_all(&line).await?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let dir = tempfile::tempdir()?;
    /// let config = ServerConfig::new().concurrency(Concurrency::Sequential);
    /// let server = UnixStreamServer::bind_with(dir.path().join("echo.sock"), Echo, config).await?;
    /// assert!(matches!(
    ///     server.info().config().get_concurrency(),
    ///     Concurrency::Sequential
    /// ));
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn bind_with(
        path: impl AsRef<Path>,
        handler: H,
        config: ServerConfig,
    ) -> Result<Self, ServerError> {
        let path = path.as_ref();
        let (std_listener, worker) = match pool::take_inherited(Type::STREAM)? {
            Some(sock) => (
                std::os::unix::net::UnixListener::from(std::os::fd::OwnedFd::from(sock)),
                true,
            ),
            None => {
                let s = new_socket(Domain::UNIX, Type::STREAM, &config)?;
                s.bind(&SockAddr::unix(path)?)?;
                // From here on the file is ours: remove it if listen fails.
                let guard = PathGuard(path.to_path_buf());
                s.listen(config.backlog)?;
                drop(guard.disarm());
                (
                    std::os::unix::net::UnixListener::from(std::os::fd::OwnedFd::from(s)),
                    false,
                )
            }
        };
        std_listener.set_nonblocking(true)?;
        let address = Address::from_unix_std(&std_listener.local_addr()?);
        let owned_path = (!worker).then(|| path.to_path_buf());
        let listener = Listener::Unix(tokio::net::UnixListener::from_std(std_listener)?);
        Ok(Self::from_parts(
            listener, address, config, worker, owned_path, handler,
        ))
    }
}

impl<K, H: StreamService> StreamServer<K, H> {
    fn from_parts(
        listener: Listener,
        address: Address,
        config: ServerConfig,
        worker: bool,
        path: Option<PathBuf>,
        handler: H,
    ) -> Self {
        tracing::debug!(%address, worker, "server bound");
        let dispatch = handler.into_dispatcher().0;
        Server {
            core: Core::new(address, config, worker, path),
            kind: Stream {
                listener: Mutex::new(Some(Arc::new(listener))),
                hooks: Arc::new(Forward(dispatch.clone())),
                dispatch,
                _kind: PhantomData,
            },
        }
    }
}

impl<K, H> StreamServer<K, H> {
    fn listener(&self) -> Result<Arc<Listener>, ServerError> {
        lock(&self.kind.listener).clone().ok_or(ServerError::Closed)
    }

    async fn process(
        &self,
        conn: Conn,
        client: Address,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        if !dispatch::verify(&*self.kind.hooks, &client, &self.core.info) {
            tracing::debug!(%client, "request refused by verify_request");
            return;
        }
        let job = self
            .kind
            .dispatch
            .job(conn, client.clone(), self.core.info.clone());
        self.core
            .exec
            .run(job, client, self.kind.hooks.clone(), permit)
            .await;
    }

    /// Handles requests until [`ShutdownHandle::shutdown`] is called (or, in a pool
    /// worker, until the parent closes the worker's standard input). With
    /// [`Concurrency::Processes`] the parent process supervises its workers here
    /// instead of accepting.
    ///
    /// Handler errors and panics go to `handle_error`; failed accepts are logged; the
    /// server goes on either way. Returns `Err` only if the server is closed.
    ///
    /// # Errors
    ///
    /// Returns [`ServerError::Closed`] if the server was closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the loop, as a shutdown would, and loses no connection
    /// waiting in the backlog (accepting is cancel safe). Requests already running as
    /// tasks or threads carry on. But a request being handled inside the loop (with
    /// [`Concurrency::Sequential`]) is abandoned mid-way and its connection closed, and in
    /// the parent of a process pool the workers are killed at once instead of being given
    /// their `grace`: prefer [`ShutdownHandle::shutdown`] for a graceful stop.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use weft_server::TcpServer;
    /// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    /// # struct Echo;
    /// # impl RequestHandler<StreamRequest> for Echo {
    /// #     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    /// #         let line = req.read_line().await?;
    /// #         req.write_all(&line).await?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let server = Arc::new(TcpServer::bind("127.0.0.1:0", Echo).await?);
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// let handle = server.shutdown_handle();
    /// let serving = tokio::spawn({
    ///     let server = server.clone();
    ///     async move { server.serve_forever().await }
    /// });
    ///
    /// for word in ["one", "two"] {
    ///     let mut client = tokio::net::TcpStream::connect(addr).await?;
    ///     client.write_all(format!("{word}\n").as_bytes()).await?;
    ///     let mut reply = String::new();
    ///     client.read_to_string(&mut reply).await?;
    ///     assert_eq!(reply, format!("{word}\n"));
    /// }
    ///
    /// handle.shutdown().await; // serve_forever returns...
    /// serving.await??;
    /// server.close().await?; // ...and close waits for the handlers
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn serve_forever(&self) -> Result<(), ServerError> {
        let mut guard = self.core.shutdown.begin();
        let listener = self.listener()?;
        if let Some(pool) = self.core.pool() {
            let pool = pool.clone();
            return pool::supervise(listener.fd(), &pool, &mut guard, &self.core.workers).await;
        }
        loop {
            let permit = tokio::select! {
                biased;
                _ = guard.requested() => break,
                p = self.core.exec.permit() => p,
            };
            tokio::select! {
                biased;
                _ = guard.requested() => break,
                r = listener.accept() => match r {
                    Ok((conn, client)) => self.process(conn, client, permit).await,
                    Err(e) => accept_failed(e).await,
                },
            }
        }
        drop(listener);
        Ok(())
    }

    /// Handles one request (`handle_request`): waits up to the configured `timeout`
    /// for a connection and calls the handler's `handle_timeout` if none came.
    /// Not available in the parent of a process pool.
    ///
    /// # Errors
    ///
    /// Returns [`ServerError::Closed`] if the server was closed, and
    /// [`ServerError::Unsupported`] in the parent of a process pool. A failed accept is
    /// logged, not returned.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits loses no connection (accepting is cancel safe).
    /// Once a connection is accepted, with [`Concurrency::Sequential`] the handler runs
    /// inside this future: dropping it then abandons that request. Use the configured
    /// `timeout` rather than wrapping the call in `tokio::time::timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use weft_server::{Concurrency, ServerConfig, ServerInfo, TcpServer};
    /// use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    ///
    /// struct Echo {
    ///     timeouts: Arc<AtomicUsize>,
    /// }
    /// impl RequestHandler<StreamRequest> for Echo {
    ///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    ///         let line = req.read_line().await?;
    ///         req.write_all(&line).await?;
    ///         Ok(())
    ///     }
    ///     fn handle_timeout(&self, _server: &ServerInfo) {
    ///         self.timeouts.fetch_add(1, Ordering::SeqCst);
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let timeouts = Arc::new(AtomicUsize::new(0));
    /// let config = ServerConfig::new()
    ///     .concurrency(Concurrency::Sequential)
    ///     .timeout(Duration::from_millis(50));
    /// let handler = Echo { timeouts: timeouts.clone() };
    /// let server = TcpServer::bind_with("127.0.0.1:0", handler, config).await?;
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    ///
    /// // Nobody connects within 50 ms: `handle_timeout` runs.
    /// server.handle_request().await?;
    /// assert_eq!(timeouts.load(Ordering::SeqCst), 1);
    ///
    /// // A client is waiting: its request is handled (inline, being `Sequential`).
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// client.write_all(b"once\n").await?;
    /// server.handle_request().await?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply).await?;
    /// assert_eq!(reply, "once\n");
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn handle_request(&self) -> Result<(), ServerError> {
        if self.core.pool().is_some() {
            return Err(ServerError::Unsupported(
                "handle_request in the parent of a process pool",
            ));
        }
        let listener = self.listener()?;
        let permit = self.core.exec.permit().await;
        let accepted = match self.core.info.config.timeout {
            Some(t) => match tokio::time::timeout(t, listener.accept()).await {
                Ok(r) => r,
                Err(_) => {
                    dispatch::timeout(&*self.kind.hooks, &self.core.info);
                    return Ok(());
                }
            },
            None => listener.accept().await,
        };
        match accepted {
            Ok((conn, client)) => self.process(conn, client, permit).await,
            Err(e) => tracing::warn!(error = %e, "accept failed"),
        }
        Ok(())
    }

    /// Stops serving (as [`ShutdownHandle::shutdown`]), releases the socket, removes a
    /// Unix socket file and, with `block_on_close` (the default), waits for running
    /// handlers (`server_close`). Closing twice is harmless.
    ///
    /// # Errors
    ///
    /// None at present: the `Result` is always `Ok`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use weft_server::{ServerError, TcpServer};
    /// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    /// # struct Echo;
    /// # impl RequestHandler<StreamRequest> for Echo {
    /// #     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    /// #         let line = req.read_line().await?;
    /// #         req.write_all(&line).await?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let server = Arc::new(TcpServer::bind("127.0.0.1:0", Echo).await?);
    /// let serving = tokio::spawn({
    ///     let server = server.clone();
    ///     async move { server.serve_forever().await }
    /// });
    /// # while !server.shutdown_handle().is_serving() { tokio::task::yield_now().await }
    ///
    /// server.close().await?; // stops serve_forever too
    /// serving.await??;
    /// server.close().await?; // harmless
    /// assert!(matches!(server.serve_forever().await, Err(ServerError::Closed)));
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn close(&self) -> Result<(), ServerError> {
        self.core.shutdown.shutdown().await;
        drop(lock(&self.kind.listener).take());
        self.core.close().await;
        Ok(())
    }
}

/// Hands a dispatcher's hooks on as a `dyn Hooks` (the dispatch traits extend
/// [`Hooks`], but upcasting a trait object needs Rust 1.86, above this crate's MSRV).
struct Forward<D: ?Sized>(Arc<D>);

impl<D: Hooks + ?Sized> Hooks for Forward<D> {
    fn verify(&self, client: &Address, server: &ServerInfo) -> bool {
        self.0.verify(client, server)
    }
    fn error(&self, client: &Address, error: &crate::HandlerError) {
        self.0.error(client, error)
    }
    fn timeout(&self, server: &ServerInfo) {
        self.0.timeout(server)
    }
}

enum DgramSocket {
    Udp(tokio::net::UdpSocket),
    Unix(tokio::net::UnixDatagram),
}

impl DgramSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, Address)> {
        match self {
            DgramSocket::Udp(s) => s.recv_from(buf).await.map(|(n, a)| (n, Address::Inet(a))),
            DgramSocket::Unix(s) => s
                .recv_from(buf)
                .await
                .map(|(n, a)| (n, Address::from_unix_tokio(&a))),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            DgramSocket::Udp(s) => s.as_fd(),
            DgramSocket::Unix(s) => s.as_fd(),
        }
    }
}

/// A datagram server over UDP or Unix datagram sockets; use the aliases
/// [`UdpServer`] and [`UnixDatagramServer`]. Each datagram is one request
/// ([`crate::DatagramRequest`]); the life cycle is that of [`StreamServer`].
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// use weft_server::{DatagramRequest, HandlerResult, RequestHandler, UdpServer};
///
/// struct Upper;
/// impl RequestHandler<DatagramRequest> for Upper {
///     async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
///         let mut text = String::new();
///         req.rfile.read_to_string(&mut text)?;
///         req.wfile.extend_from_slice(text.to_uppercase().as_bytes());
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = std::sync::Arc::new(UdpServer::bind("127.0.0.1:0", Upper).await?);
/// let addr = server.server_address().as_inet().unwrap();
/// let serving = tokio::spawn({
///     let server = server.clone();
///     async move { server.serve_forever().await }
/// });
///
/// let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
/// client.send_to(b"hello", addr).await?;
/// let mut buf = [0u8; 16];
/// let n = client.recv(&mut buf).await?;
/// assert_eq!(&buf[..n], b"HELLO");
///
/// server.close().await?; // stops serve_forever, releases the socket
/// serving.await??;
/// # Ok(()) }
/// ```
pub type DatagramServer<K, H> = Server<Datagram<K, H>>;

/// The datagram part of a [`DatagramServer`]: the socket and the handler. `K` is
/// [`Udp`] or [`Unix`], `H` the handler. Only named in types; the fields are private.
///
/// # Examples
///
/// ```
/// use weft_server::{Datagram, Server, Udp, UdpServer};
/// # use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
/// # struct Quiet;
/// # impl RequestHandler<DatagramRequest> for Quiet {
/// #     async fn handle(&self, _req: &mut DatagramRequest) -> HandlerResult { Ok(()) }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// let server: Server<Datagram<Udp, Quiet>> = UdpServer::bind("127.0.0.1:0", Quiet).await?;
/// assert!(format!("{server:?}").starts_with("DatagramServer"));
/// server.close().await?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
pub struct Datagram<K, H> {
    socket: Mutex<Option<Arc<DgramSocket>>>,
    sender: Mutex<Option<Arc<DgramSender>>>,
    dispatch: Arc<dyn DgramDispatch>,
    hooks: Arc<dyn Hooks>,
    _kind: PhantomData<fn() -> (K, H)>,
}

impl<K, H> sealed::Kind for Datagram<K, H> {
    const NAME: &'static str = "DatagramServer";
}

impl<K, H> std::fmt::Debug for Datagram<K, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datagram").finish_non_exhaustive()
    }
}

impl<H: DatagramService> DatagramServer<Udp, H> {
    /// Binds a UDP server with the default [`ServerConfig`].
    ///
    /// # Errors
    ///
    /// Returns [`ServerError::Io`] if the address cannot be resolved or no address it
    /// resolves to can be bound (`AddrInUse`, `PermissionDenied`),
    /// [`ServerError::NoAddress`] if it resolves to nothing, and, in a pool worker,
    /// [`ServerError::Worker`] if the inherited socket is unusable.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::UdpServer;
    /// # use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
    /// # struct Echo;
    /// # impl RequestHandler<DatagramRequest> for Echo {
    /// #     async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
    /// #         req.wfile = req.packet().to_vec();
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let server = UdpServer::bind("127.0.0.1:0", Echo).await?;
    /// assert_ne!(server.server_address().as_inet().ok_or("not an IP address")?.port(), 0);
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs, handler: H) -> Result<Self, ServerError> {
        Self::bind_with(addr, handler, ServerConfig::default()).await
    }

    /// Binds a UDP server with `config`.
    ///
    /// # Errors
    ///
    /// As for [`bind`](Self::bind).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{ServerConfig, UdpServer};
    /// # use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
    /// # struct Echo;
    /// # impl RequestHandler<DatagramRequest> for Echo {
    /// #     async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
    /// #         req.wfile = req.packet().to_vec();
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// // Datagrams longer than 512 bytes are truncated.
    /// let config = ServerConfig::new().max_packet_size(512);
    /// let server = UdpServer::bind_with("127.0.0.1:0", Echo, config).await?;
    /// assert_eq!(server.info().config().get_max_packet_size(), 512);
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn bind_with(
        addr: impl ToSocketAddrs,
        handler: H,
        config: ServerConfig,
    ) -> Result<Self, ServerError> {
        let (sock, worker) = match pool::take_inherited(Type::DGRAM)? {
            Some(s) => (std::net::UdpSocket::from(s), true),
            None => {
                let addrs = resolve(addr).await?;
                let s = bind_first(&addrs, |a| {
                    let s = new_socket(Domain::for_address(a), Type::DGRAM, &config)?;
                    s.bind(&a.into())?;
                    Ok(s)
                })?;
                (std::net::UdpSocket::from(s), false)
            }
        };
        sock.set_nonblocking(true)?;
        let address = Address::Inet(sock.local_addr()?);
        let sender = DgramSender::Udp(sock.try_clone()?);
        let socket = DgramSocket::Udp(tokio::net::UdpSocket::from_std(sock)?);
        Ok(Self::from_parts(
            socket, sender, address, config, worker, None, handler,
        ))
    }
}

impl<H: DatagramService> DatagramServer<Unix, H> {
    /// Binds a Unix datagram server at `path` with the default [`ServerConfig`]. To
    /// get replies, clients must bind their own socket to a path.
    ///
    /// # Errors
    ///
    /// Returns [`ServerError::Io`] if the socket cannot be bound at `path` (`AddrInUse`
    /// if the file exists, `NotFound` if its directory does not, `InvalidInput` if the
    /// path is too long for a socket address), and, in a pool worker,
    /// [`ServerError::Worker`] if the inherited socket is unusable.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::UnixDatagramServer;
    /// # use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
    /// # struct Echo;
    /// # impl RequestHandler<DatagramRequest> for Echo {
    /// #     async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
    /// #         req.wfile = req.packet().to_vec();
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("echo.sock");
    /// let server = UnixDatagramServer::bind(&path, Echo).await?;
    /// assert_eq!(server.server_address().as_path(), Some(path.as_path()));
    /// server.close().await?;
    /// assert!(!path.exists());
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn bind(path: impl AsRef<Path>, handler: H) -> Result<Self, ServerError> {
        Self::bind_with(path, handler, ServerConfig::default()).await
    }

    /// Binds a Unix datagram server at `path` with `config`.
    ///
    /// # Errors
    ///
    /// As for [`bind`](Self::bind).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{ServerConfig, UnixDatagramServer};
    /// # use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
    /// # struct Echo;
    /// # impl RequestHandler<DatagramRequest> for Echo {
    /// #     async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
    /// #         req.wfile = req.packet().to_vec();
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let dir = tempfile::tempdir()?;
    /// let config = ServerConfig::new().max_packet_size(2048);
    /// let path = dir.path().join("echo.sock");
    /// let server = UnixDatagramServer::bind_with(&path, Echo, config).await?;
    /// assert_eq!(server.info().config().get_max_packet_size(), 2048);
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn bind_with(
        path: impl AsRef<Path>,
        handler: H,
        config: ServerConfig,
    ) -> Result<Self, ServerError> {
        let path = path.as_ref();
        let (sock, worker) = match pool::take_inherited(Type::DGRAM)? {
            Some(s) => (
                std::os::unix::net::UnixDatagram::from(std::os::fd::OwnedFd::from(s)),
                true,
            ),
            None => {
                let s = new_socket(Domain::UNIX, Type::DGRAM, &config)?;
                s.bind(&SockAddr::unix(path)?)?;
                (
                    std::os::unix::net::UnixDatagram::from(std::os::fd::OwnedFd::from(s)),
                    false,
                )
            }
        };
        let owned_path = (!worker).then(|| path.to_path_buf());
        // Own the file before anything else can fail.
        let guard = owned_path.clone().map(PathGuard);
        sock.set_nonblocking(true)?;
        let address = Address::from_unix_std(&sock.local_addr()?);
        let sender = DgramSender::Unix(sock.try_clone()?);
        let socket = DgramSocket::Unix(tokio::net::UnixDatagram::from_std(sock)?);
        drop(guard.map(PathGuard::disarm));
        Ok(Self::from_parts(
            socket, sender, address, config, worker, owned_path, handler,
        ))
    }
}

impl<K, H: DatagramService> DatagramServer<K, H> {
    fn from_parts(
        socket: DgramSocket,
        sender: DgramSender,
        address: Address,
        config: ServerConfig,
        worker: bool,
        path: Option<PathBuf>,
        handler: H,
    ) -> Self {
        tracing::debug!(%address, worker, "server bound");
        let dispatch = handler.into_dispatcher().0;
        Server {
            core: Core::new(address, config, worker, path),
            kind: Datagram {
                socket: Mutex::new(Some(Arc::new(socket))),
                sender: Mutex::new(Some(Arc::new(sender))),
                hooks: Arc::new(Forward(dispatch.clone())),
                dispatch,
                _kind: PhantomData,
            },
        }
    }
}

impl<K, H> DatagramServer<K, H> {
    fn socket(&self) -> Result<Arc<DgramSocket>, ServerError> {
        lock(&self.kind.socket).clone().ok_or(ServerError::Closed)
    }

    async fn process(
        &self,
        packet: Vec<u8>,
        client: Address,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        if !dispatch::verify(&*self.kind.hooks, &client, &self.core.info) {
            tracing::debug!(%client, "datagram refused by verify_request");
            return;
        }
        let Some(sender) = lock(&self.kind.sender).clone() else {
            return;
        };
        let job = self
            .kind
            .dispatch
            .job(packet, client.clone(), self.core.info.clone(), sender);
        self.core
            .exec
            .run(job, client, self.kind.hooks.clone(), permit)
            .await;
    }

    /// Handles datagrams until [`ShutdownHandle::shutdown`]; see
    /// [`StreamServer::serve_forever`].
    ///
    /// # Errors
    ///
    /// Returns [`ServerError::Closed`] if the server was closed.
    ///
    /// # Cancel safety
    ///
    /// As for [`StreamServer::serve_forever`]: dropping the future stops the loop and
    /// loses no datagram (receiving is cancel safe), but abandons a datagram being handled
    /// inside the loop with [`Concurrency::Sequential`] and kills the workers of a process
    /// pool at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use weft_server::UdpServer;
    /// # use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
    /// # struct Echo;
    /// # impl RequestHandler<DatagramRequest> for Echo {
    /// #     async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
    /// #         req.wfile = req.packet().to_vec();
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let server = Arc::new(UdpServer::bind("127.0.0.1:0", Echo).await?);
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// let handle = server.shutdown_handle();
    /// let serving = tokio::spawn({
    ///     let server = server.clone();
    ///     async move { server.serve_forever().await }
    /// });
    ///
    /// let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    /// client.connect(addr).await?;
    /// for word in [&b"one"[..], b"two"] {
    ///     client.send(word).await?;
    ///     let mut buf = [0u8; 16];
    ///     let n = client.recv(&mut buf).await?;
    ///     assert_eq!(&buf[..n], word);
    /// }
    ///
    /// handle.shutdown().await;
    /// serving.await??;
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn serve_forever(&self) -> Result<(), ServerError> {
        let mut guard = self.core.shutdown.begin();
        let socket = self.socket()?;
        if let Some(pool) = self.core.pool() {
            let pool = pool.clone();
            return pool::supervise(socket.fd(), &pool, &mut guard, &self.core.workers).await;
        }
        let mut buf = vec![0u8; self.core.info.config.max_packet_size];
        loop {
            let permit = tokio::select! {
                biased;
                _ = guard.requested() => break,
                p = self.core.exec.permit() => p,
            };
            tokio::select! {
                biased;
                _ = guard.requested() => break,
                r = socket.recv_from(&mut buf) => match r {
                    Ok((n, client)) => self.process(buf[..n].to_vec(), client, permit).await,
                    Err(e) => accept_failed(e).await,
                },
            }
        }
        drop(socket);
        Ok(())
    }

    /// Handles one datagram, honouring the configured `timeout` (see
    /// [`StreamServer::handle_request`]).
    ///
    /// # Errors
    ///
    /// Returns [`ServerError::Closed`] if the server was closed, and
    /// [`ServerError::Unsupported`] in the parent of a process pool. A failed receive is
    /// logged, not returned.
    ///
    /// # Cancel safety
    ///
    /// As for [`StreamServer::handle_request`]: dropping the future while it waits loses
    /// no datagram; with [`Concurrency::Sequential`], dropping it while the handler runs
    /// abandons that datagram.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_server::{Concurrency, ServerConfig, UdpServer};
    /// # use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
    /// # struct Echo;
    /// # impl RequestHandler<DatagramRequest> for Echo {
    /// #     async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
    /// #         req.wfile = req.packet().to_vec();
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let config = ServerConfig::new()
    ///     .concurrency(Concurrency::Sequential)
    ///     .timeout(Duration::from_millis(50));
    /// let server = UdpServer::bind_with("127.0.0.1:0", Echo, config).await?;
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    ///
    /// // Nothing arrives within 50 ms: the handler's `handle_timeout` runs, and that is all.
    /// server.handle_request().await?;
    ///
    /// let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    /// client.send_to(b"ping", addr).await?;
    /// server.handle_request().await?; // handles this one datagram
    /// let mut buf = [0u8; 16];
    /// let n = client.recv(&mut buf).await?;
    /// assert_eq!(&buf[..n], b"ping");
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn handle_request(&self) -> Result<(), ServerError> {
        if self.core.pool().is_some() {
            return Err(ServerError::Unsupported(
                "handle_request in the parent of a process pool",
            ));
        }
        let socket = self.socket()?;
        let permit = self.core.exec.permit().await;
        let mut buf = vec![0u8; self.core.info.config.max_packet_size];
        let received = match self.core.info.config.timeout {
            Some(t) => match tokio::time::timeout(t, socket.recv_from(&mut buf)).await {
                Ok(r) => r,
                Err(_) => {
                    dispatch::timeout(&*self.kind.hooks, &self.core.info);
                    return Ok(());
                }
            },
            None => socket.recv_from(&mut buf).await,
        };
        match received {
            Ok((n, client)) => self.process(buf[..n].to_vec(), client, permit).await,
            Err(e) => tracing::warn!(error = %e, "receive failed"),
        }
        Ok(())
    }

    /// Stops serving, releases the socket (and the Unix socket file) and, with
    /// `block_on_close`, waits for running handlers.
    ///
    /// # Errors
    ///
    /// None at present: the `Result` is always `Ok`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{ServerError, UdpServer};
    /// # use weft_server::{DatagramRequest, HandlerResult, RequestHandler};
    /// # struct Echo;
    /// # impl RequestHandler<DatagramRequest> for Echo {
    /// #     async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
    /// #         req.wfile = req.packet().to_vec();
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let server = UdpServer::bind("127.0.0.1:0", Echo).await?;
    /// server.close().await?;
    /// server.close().await?; // harmless
    /// assert!(matches!(server.handle_request().await, Err(ServerError::Closed)));
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn close(&self) -> Result<(), ServerError> {
        self.core.shutdown.shutdown().await;
        drop(lock(&self.kind.socket).take());
        drop(lock(&self.kind.sender).take());
        self.core.close().await;
        Ok(())
    }
}
