//! The servers: [`StreamServer`] ([`TcpServer`], [`UnixStreamServer`]) and
//! [`DatagramServer`] ([`UdpServer`], [`UnixDatagramServer`]).

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
#[derive(Debug)]
pub enum Tcp {}
/// Marker for UDP servers ([`UdpServer`]).
#[derive(Debug)]
pub enum Udp {}
/// Marker for Unix-domain servers ([`UnixStreamServer`], [`UnixDatagramServer`]).
#[derive(Debug)]
pub enum Unix {}

/// A TCP server (`socketserver.TCPServer`).
pub type TcpServer<H> = StreamServer<Tcp, H>;
/// A Unix stream server (`socketserver.UnixStreamServer`).
pub type UnixStreamServer<H> = StreamServer<Unix, H>;
/// A UDP server (`socketserver.UDPServer`).
pub type UdpServer<H> = DatagramServer<Udp, H>;
/// A Unix datagram server (`socketserver.UnixDatagramServer`).
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
fn bind_first<T>(
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
pub struct StreamServer<K, H> {
    core: Core,
    listener: Mutex<Option<Arc<Listener>>>,
    dispatch: Arc<dyn StreamDispatch>,
    hooks: Arc<dyn Hooks>,
    _kind: PhantomData<fn() -> (K, H)>,
}

impl<K, H> std::fmt::Debug for StreamServer<K, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamServer")
            .field("address", &self.core.info.address)
            .field("config", &self.core.info.config)
            .finish_non_exhaustive()
    }
}

impl<H: StreamService> StreamServer<Tcp, H> {
    /// Binds a TCP server with the default [`ServerConfig`]. Port 0 picks a free port:
    /// read it back with [`server_address`](Self::server_address).
    ///
    /// In a worker process of a [`crate::ProcessPool`] this adopts the inherited
    /// listening socket instead of binding.
    pub async fn bind(addr: impl ToSocketAddrs, handler: H) -> Result<Self, ServerError> {
        Self::bind_with(addr, handler, ServerConfig::default()).await
    }

    /// Binds a TCP server with `config`.
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
    pub async fn bind(path: impl AsRef<Path>, handler: H) -> Result<Self, ServerError> {
        Self::bind_with(path, handler, ServerConfig::default()).await
    }

    /// Binds a Unix stream server at `path` with `config`.
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
        StreamServer {
            core: Core::new(address, config, worker, path),
            listener: Mutex::new(Some(Arc::new(listener))),
            hooks: Arc::new(StreamHooks(dispatch.clone())),
            dispatch,
            _kind: PhantomData,
        }
    }
}

impl<K, H> StreamServer<K, H> {
    /// The address the server is bound to, with the real port (`server_address`).
    pub fn server_address(&self) -> &Address {
        &self.core.info.address
    }

    /// The server's address and settings.
    pub fn info(&self) -> &ServerInfo {
        &self.core.info
    }

    /// A handle to stop [`serve_forever`](Self::serve_forever) from elsewhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.core.shutdown.clone()
    }

    /// The process ids of the live workers of a [`crate::ProcessPool`].
    pub fn worker_pids(&self) -> Vec<u32> {
        lock(&self.core.workers).iter().flatten().copied().collect()
    }

    fn listener(&self) -> Result<Arc<Listener>, ServerError> {
        lock(&self.listener).clone().ok_or(ServerError::Closed)
    }

    async fn process(
        &self,
        conn: Conn,
        client: Address,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        if !dispatch::verify(&*self.hooks, &client, &self.core.info) {
            tracing::debug!(%client, "request refused by verify_request");
            return;
        }
        let job = self
            .dispatch
            .job(conn, client.clone(), self.core.info.clone());
        self.core
            .exec
            .run(job, client, self.hooks.clone(), permit)
            .await;
    }

    /// Handles requests until [`ShutdownHandle::shutdown`] is called (or, in a pool
    /// worker, until the parent closes the worker's standard input). With
    /// [`Concurrency::Processes`] the parent process supervises its workers here
    /// instead of accepting.
    ///
    /// Handler errors and panics go to `handle_error`; failed accepts are logged; the
    /// server goes on either way. Returns `Err` only if the server is closed.
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
                    dispatch::timeout(&*self.hooks, &self.core.info);
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
    pub async fn close(&self) -> Result<(), ServerError> {
        self.core.shutdown.shutdown().await;
        drop(lock(&self.listener).take());
        self.core.close().await;
        Ok(())
    }
}

struct StreamHooks(Arc<dyn StreamDispatch>);

impl Hooks for StreamHooks {
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

struct DgramHooks(Arc<dyn DgramDispatch>);

impl Hooks for DgramHooks {
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
pub struct DatagramServer<K, H> {
    core: Core,
    socket: Mutex<Option<Arc<DgramSocket>>>,
    sender: Mutex<Option<Arc<DgramSender>>>,
    dispatch: Arc<dyn DgramDispatch>,
    hooks: Arc<dyn Hooks>,
    _kind: PhantomData<fn() -> (K, H)>,
}

impl<K, H> std::fmt::Debug for DatagramServer<K, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramServer")
            .field("address", &self.core.info.address)
            .field("config", &self.core.info.config)
            .finish_non_exhaustive()
    }
}

impl<H: DatagramService> DatagramServer<Udp, H> {
    /// Binds a UDP server with the default [`ServerConfig`].
    pub async fn bind(addr: impl ToSocketAddrs, handler: H) -> Result<Self, ServerError> {
        Self::bind_with(addr, handler, ServerConfig::default()).await
    }

    /// Binds a UDP server with `config`.
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
    pub async fn bind(path: impl AsRef<Path>, handler: H) -> Result<Self, ServerError> {
        Self::bind_with(path, handler, ServerConfig::default()).await
    }

    /// Binds a Unix datagram server at `path` with `config`.
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
        DatagramServer {
            core: Core::new(address, config, worker, path),
            socket: Mutex::new(Some(Arc::new(socket))),
            sender: Mutex::new(Some(Arc::new(sender))),
            hooks: Arc::new(DgramHooks(dispatch.clone())),
            dispatch,
            _kind: PhantomData,
        }
    }
}

impl<K, H> DatagramServer<K, H> {
    /// The address the server is bound to, with the real port (`server_address`).
    pub fn server_address(&self) -> &Address {
        &self.core.info.address
    }

    /// The server's address and settings.
    pub fn info(&self) -> &ServerInfo {
        &self.core.info
    }

    /// A handle to stop [`serve_forever`](Self::serve_forever) from elsewhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.core.shutdown.clone()
    }

    /// The process ids of the live workers of a [`crate::ProcessPool`].
    pub fn worker_pids(&self) -> Vec<u32> {
        lock(&self.core.workers).iter().flatten().copied().collect()
    }

    fn socket(&self) -> Result<Arc<DgramSocket>, ServerError> {
        lock(&self.socket).clone().ok_or(ServerError::Closed)
    }

    async fn process(
        &self,
        packet: Vec<u8>,
        client: Address,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        if !dispatch::verify(&*self.hooks, &client, &self.core.info) {
            tracing::debug!(%client, "datagram refused by verify_request");
            return;
        }
        let Some(sender) = lock(&self.sender).clone() else {
            return;
        };
        let job = self
            .dispatch
            .job(packet, client.clone(), self.core.info.clone(), sender);
        self.core
            .exec
            .run(job, client, self.hooks.clone(), permit)
            .await;
    }

    /// Handles datagrams until [`ShutdownHandle::shutdown`]; see
    /// [`StreamServer::serve_forever`].
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
                    dispatch::timeout(&*self.hooks, &self.core.info);
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
    pub async fn close(&self) -> Result<(), ServerError> {
        self.core.shutdown.shutdown().await;
        drop(lock(&self.socket).take());
        drop(lock(&self.sender).take());
        self.core.close().await;
        Ok(())
    }
}
