//! `ForkingMixIn`: blocking servers that fork a child process per request:
//! [`ForkingServer`] (TCP, Unix stream) and [`ForkingDatagramServer`] (UDP, Unix
//! datagram).
//!
//! Python's `ForkingTCPServer` forks from a single-threaded, blocking server, and that
//! is the only setting where a fork per request is sound: after `fork()` in a
//! multi-threaded process, the child has only the forking thread, and locks held by
//! the other threads (allocator, runtime, stdio) stay held forever. So
//! these servers are blocking (no tokio) and **refuse to fork** when the process
//! has more than one thread ([`ServerError::NotSingleThreaded`]): run it from `main`
//! of a program that has started no threads (no tokio runtime, no test harness).
//! For async servers use [`crate::Concurrency::Processes`], a
//! pool of re-executed worker processes.
//!
//! Each child runs the [`BlockingRequestHandler`] for its connection and exits with
//! status 0, or 1 after an error or panic (which the child reports through the
//! server's [`handle_error`](crate::ServerHooks::handle_error)); a crash in a child cannot hurt the server or the other children.
//! The server reaps its children after each request, waits when `max_children` are
//! running (40 by default, like Python), and waits for them all on
//! [`close`](ForkingServer::close) when `block_on_close` is set. It never reaps child
//! processes it did not fork.
//!
//! ```no_run
//! use weft_server::fork::ForkingServer;
//! use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult, ServerConfig};
//!
//! struct Handler;
//! impl BlockingRequestHandler<BlockingStreamRequest> for Handler {
//!     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
//!         req.write_all(b"Thank you for connecting")?;
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> Result<(), weft_server::ServerError> {
//!     let mut server = ForkingServer::bind_tcp("127.0.0.1:1234", Handler, ServerConfig::new())?;
//!     server.serve_forever()
//! }
//! ```

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use socket2::{Domain, SockAddr, SockRef, Socket, Type};
use weft_core::Address;

use crate::config::{Concurrency, ServerConfig};
use crate::error::{HandlerResult, ServerError};
use crate::handler::{BlockingRequestHandler, panic_error, run_blocking};
use crate::hooks;
use crate::request::{BlockingStreamRequest, DatagramRequest, ServerInfo};

/// `ForkingMixIn.max_children` when the config does not say.
///
/// # Examples
///
/// ```
/// use weft_server::fork::DEFAULT_MAX_CHILDREN;
/// use weft_server::{Concurrency, ProcessPool, ServerConfig};
///
/// assert_eq!(DEFAULT_MAX_CHILDREN, 40); // as in Python
///
/// // A different cap comes from a `Processes` concurrency in the config.
/// let config = ServerConfig::new().concurrency(Concurrency::Processes(ProcessPool::new(8)));
/// # let _ = config;
/// ```
pub const DEFAULT_MAX_CHILDREN: usize = 40;

/// How often `serve_forever` wakes up to reap children (`poll_interval`).
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The number of threads of this process, from `/proc/self/status`.
///
/// # Errors
///
/// Fails if `/proc/self/status` cannot be read or has no `Threads:` line (a system
/// without Linux's `/proc`).
///
/// # Examples
///
/// ```
/// use weft_server::fork::thread_count;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let before = thread_count()?;
/// let (tx, rx) = std::sync::mpsc::channel::<()>();
/// let helper = std::thread::spawn(move || rx.recv());
/// assert_eq!(thread_count()?, before + 1); // too many to fork now
/// drop(tx);
/// let _ = helper.join();
/// # Ok(()) }
/// ```
pub fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads: line in /proc/self/status"))
}

/// Forks, after checking that this process has a single thread.
#[allow(unsafe_code)] // fork() is the point of this module.
fn fork_single_threaded() -> Result<ForkResult, ServerError> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(ServerError::NotSingleThreaded(threads));
    }
    // SAFETY: `fork` is unsafe because in a multi-threaded process the child may only
    // call async-signal-safe functions (other threads' locks are copied in whatever
    // state they were). We have just checked that this process has exactly one
    // thread: the one running this function, which cannot start another thread
    // between the check and the fork. So the child is a complete copy of a
    // single-threaded process, in which any code may run; it runs the handler and
    // leaves through `process::exit` without returning into the serve loop.
    let r = unsafe { nix::unistd::fork() };
    r.map_err(|e| ServerError::Io(e.into()))
}

/// The forked children of a server (`active_children`).
#[derive(Debug)]
struct Children {
    active: HashSet<Pid>,
    max: usize,
}

impl Children {
    fn new(config: &ServerConfig) -> Self {
        let max = match &config.concurrency {
            Concurrency::Processes(p) => p.max_children,
            _ => DEFAULT_MAX_CHILDREN,
        };
        Children {
            active: HashSet::new(),
            max,
        }
    }

    /// Reaps finished children; with `block`, waits until fewer than `max` run.
    fn collect(&mut self, block: bool) {
        loop {
            self.active.retain(|pid| {
                !matches!(
                    waitpid(*pid, Some(WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(_)
                )
            });
            if !block || self.active.len() < self.max {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_all(&mut self) {
        while !self.active.is_empty() {
            self.collect(false);
            if !self.active.is_empty() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// The exit status of a child: 0, or 1 after reporting an error to `handle_error`.
fn child_status(info: &ServerInfo, client: &Address, result: crate::HandlerResult) -> i32 {
    let status = match result {
        Ok(()) => 0,
        Err(e) => {
            hooks::report(&info.config.hooks.0, client, &e);
            1
        }
    };
    let _ = io::Write::flush(&mut io::stdout());
    status
}

/// What differs between the two kinds of forking server: the socket, how a request is
/// received, and what the child does with it.
trait ForkRequest: Send + Sized + 'static {
    /// A listening socket, or a datagram socket.
    type Socket: AsFd;
    /// An accepted connection, or a datagram's bytes.
    type Raw;
    /// Whether the child keeps the server's socket (to send a datagram's reply).
    const CHILD_KEEPS_SOCKET: bool;
    /// The server's socket, bound.
    fn adopt(s: Socket) -> Self::Socket;
    fn receive(socket: &Self::Socket, info: &ServerInfo) -> io::Result<(Self::Raw, Address)>;
    /// In the child: runs the handler on the request, replies or closes.
    fn run_child<H: BlockingRequestHandler<Self>>(
        server: &Forks<Self, H>,
        raw: Self::Raw,
        client: &Address,
    ) -> HandlerResult;
}

fn address_of(a: &SockAddr) -> Address {
    match a.as_socket() {
        Some(inet) => Address::Inet(inet),
        None => Address::Unix(a.as_pathname().map(Path::to_path_buf)),
    }
}

impl ForkRequest for BlockingStreamRequest {
    type Socket = Socket;
    type Raw = Socket;
    const CHILD_KEEPS_SOCKET: bool = false;

    fn adopt(s: Socket) -> Socket {
        s
    }

    fn receive(listener: &Socket, _: &ServerInfo) -> io::Result<(Socket, Address)> {
        let (conn, addr) = listener.accept()?;
        Ok((conn, address_of(&addr)))
    }

    fn run_child<H: BlockingRequestHandler<Self>>(
        server: &Forks<Self, H>,
        conn: Socket,
        client: &Address,
    ) -> HandlerResult {
        if server.info.config.get_nodelay() && client.as_inet().is_some() {
            conn.set_tcp_nodelay(true)?;
        }
        let mut req =
            BlockingStreamRequest::from_socket(conn, client.clone(), server.info.clone())?;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            run_blocking(&*server.handler, &mut req)
        }))
        .unwrap_or_else(|p| Err(panic_error(p)));
        if let Err(e) = req.close() {
            tracing::debug!(%client, error = %e, "error while closing a connection");
        }
        result
    }
}

impl ForkRequest for DatagramRequest {
    type Socket = StdDgram;
    type Raw = Vec<u8>;
    const CHILD_KEEPS_SOCKET: bool = true;

    fn adopt(s: Socket) -> StdDgram {
        if s.domain().is_ok_and(|d| d == Domain::UNIX) {
            StdDgram::Unix(std::os::fd::OwnedFd::from(s).into())
        } else {
            StdDgram::Udp(s.into())
        }
    }

    fn receive(socket: &StdDgram, info: &ServerInfo) -> io::Result<(Vec<u8>, Address)> {
        let mut buf = crate::server::datagram_buffer(&info.config);
        loop {
            let (n, client) = socket.recv_from(&mut buf)?;
            if crate::server::datagram(&buf, n, &client).is_some() {
                buf.truncate(n);
                return Ok((buf, client));
            }
        }
    }

    fn run_child<H: BlockingRequestHandler<Self>>(
        server: &Forks<Self, H>,
        packet: Vec<u8>,
        client: &Address,
    ) -> HandlerResult {
        let mut req = DatagramRequest::new(packet, client.clone(), server.info.clone());
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            run_blocking(&*server.handler, &mut req)
        }))
        .unwrap_or_else(|p| Err(panic_error(p)));
        match &server.socket {
            Some(s) if !req.wfile.is_empty() => result.and(Ok(s.send_to(&req.wfile, client)?)),
            _ => result,
        }
    }
}

/// A blocking datagram socket: UDP or Unix.
#[derive(Debug)]
enum StdDgram {
    Udp(std::net::UdpSocket),
    Unix(std::os::unix::net::UnixDatagram),
}

impl StdDgram {
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Address)> {
        match self {
            StdDgram::Udp(s) => s.recv_from(buf).map(|(n, a)| (n, Address::Inet(a))),
            StdDgram::Unix(s) => s
                .recv_from(buf)
                .map(|(n, a)| (n, Address::Unix(a.as_pathname().map(Path::to_path_buf)))),
        }
    }

    fn send_to(&self, data: &[u8], to: &Address) -> io::Result<()> {
        match (self, to) {
            (StdDgram::Udp(s), Address::Inet(a)) => s.send_to(data, a).map(drop),
            (StdDgram::Unix(s), Address::Unix(Some(p))) => s.send_to(data, p).map(drop),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot reply to {to}"),
            )),
        }
    }
}

impl AsFd for StdDgram {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            StdDgram::Udp(s) => s.as_fd(),
            StdDgram::Unix(s) => s.as_fd(),
        }
    }
}

/// The forking serve loop under both forking server types.
struct Forks<R: ForkRequest, H> {
    socket: Option<R::Socket>,
    handler: Arc<H>,
    info: Arc<ServerInfo>,
    children: Children,
    /// The Unix socket file to remove on close or drop (never in a child).
    path: Option<PathBuf>,
}

impl<R: ForkRequest, H> Drop for Forks<R, H> {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl<R: ForkRequest, H: BlockingRequestHandler<R>> Forks<R, H> {
    fn new(
        socket: R::Socket,
        address: Address,
        config: ServerConfig,
        path: Option<PathBuf>,
        handler: H,
    ) -> Self {
        Forks {
            socket: Some(socket),
            handler: Arc::new(handler),
            children: Children::new(&config),
            info: Arc::new(ServerInfo {
                address,
                config,
                worker: false,
            }),
            path,
        }
    }

    fn close(mut self) -> Result<(), ServerError> {
        drop(self.socket.take());
        if self.info.config.get_block_on_close() {
            self.children.wait_all();
        } else {
            self.children.collect(false);
        }
        Ok(())
    }

    fn serve_until(&mut self, mut stop: impl FnMut() -> bool) -> Result<(), ServerError> {
        while !stop() {
            self.fork_next(Some(POLL_INTERVAL), false)?;
        }
        Ok(())
    }

    /// Waits up to `timeout` for a request, then forks a child that handles it and exits.
    /// Returns whether a request came.
    fn fork_next(
        &mut self,
        timeout: Option<Duration>,
        call_timeout: bool,
    ) -> Result<bool, ServerError> {
        self.children.collect(true);
        let socket = self.socket.as_ref().ok_or(ServerError::Closed)?;
        // Linux's accept() honours SO_RCVTIMEO too.
        SockRef::from(socket).set_read_timeout(timeout)?;
        let (request, client) = match R::receive(socket, &self.info) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if call_timeout {
                    hooks::timeout(&self.info);
                }
                self.children.collect(false);
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => {
                tracing::warn!(error = %e, "receiving a request failed");
                return Ok(false);
            }
        };
        if !hooks::verify(&self.info, &client) {
            tracing::debug!(%client, "request refused by verify_request");
            return Ok(true);
        }
        match fork_single_threaded()? {
            ForkResult::Parent { child: pid } => {
                tracing::debug!(%client, pid = pid.as_raw(), "forked a child");
                self.children.active.insert(pid);
                drop(request);
                self.children.collect(false);
                Ok(true)
            }
            ForkResult::Child => {
                // The child handles and exits, whatever happens: it must never return into
                // the serve loop, nor remove the parent's socket file.
                self.path = None;
                if !R::CHILD_KEEPS_SOCKET {
                    drop(self.socket.take());
                }
                let status = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    let result = R::run_child(self, request, &client);
                    child_status(&self.info, &client, result)
                }))
                .unwrap_or(1);
                std::process::exit(status)
            }
        }
    }
}

/// Declares one of the two forking server types over `Forks`, with what they share
/// (written once here for both).
macro_rules! forking_type {
    ($(#[$doc:meta])* $name:ident($request:ty), $bind_inet:ident($ty:expr, $kind:literal)) => {
        $(#[$doc])*
        pub struct $name<H: BlockingRequestHandler<$request>> {
            forks: Forks<$request, H>,
        }

        impl<H: BlockingRequestHandler<$request>> std::fmt::Debug for $name<H> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("address", &self.forks.info.address)
                    .field("active_children", &self.forks.children.active.len())
                    .finish_non_exhaustive()
            }
        }

        impl<H: BlockingRequestHandler<$request>> $name<H> {
            #[doc = concat!("Binds a ", $kind, " forking server. `max_children` comes from a")]
            /// [`Concurrency::Processes`] in `config`, else [`DEFAULT_MAX_CHILDREN`].
            ///
            /// # Errors
            ///
            /// [`ServerError::Io`] if the address cannot be resolved or no address it
            /// resolves to can be bound (and listened on), and [`ServerError::NoAddress`] if
            /// it resolves to nothing.
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn $bind_inet(
                addr: impl std::net::ToSocketAddrs,
                handler: H,
                config: ServerConfig,
            ) -> Result<Self, ServerError> {
                let s = bind_first(addr, |a| bound(&a.into(), $ty, &config))?;
                Self::from_socket(s, None, config, handler)
            }

            /// Binds at `path` a Unix socket, which [`close`](Self::close) (or drop) removes.
            ///
            /// # Errors
            ///
            /// [`ServerError::Io`] if the socket cannot be bound at `path` (`AddrInUse` if the
            /// file exists, `NotFound` if its directory does not).
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn bind_unix(
                path: impl AsRef<Path>,
                handler: H,
                config: ServerConfig,
            ) -> Result<Self, ServerError> {
                let path = path.as_ref();
                let s = bound(&SockAddr::unix(path)?, $ty, &config)?;
                Self::from_socket(s, Some(path), config, handler)
            }

            fn from_socket(
                s: Socket,
                path: Option<&Path>,
                config: ServerConfig,
                handler: H,
            ) -> Result<Self, ServerError> {
                let address = address_of(&s.local_addr()?);
                let socket = <$request as ForkRequest>::adopt(s);
                let path = path.map(Path::to_path_buf);
                Ok(Self {
                    forks: Forks::new(socket, address, config, path, handler),
                })
            }

            /// The address the server is bound to, with the real port (`server_address`).
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn server_address(&self) -> &Address {
                &self.forks.info.address
            }

            /// The server's address and settings.
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn info(&self) -> &ServerInfo {
                &self.forks.info
            }

            /// The number of forked children not yet reaped (`active_children`).
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn active_children(&self) -> usize {
                self.forks.children.active.len()
            }

            /// Reaps finished children; with `block`, waits until fewer than `max_children`
            /// run (Python's `collect_children`).
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn collect_children(&mut self, block: bool) {
                self.forks.children.collect(block);
            }

            /// Waits for every child to exit.
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn wait_children(&mut self) {
                self.forks.children.wait_all();
            }

            /// Closes the socket, removes a Unix socket file and, with `block_on_close` (the
            /// default), waits for every child (`server_close`).
            ///
            /// # Errors
            ///
            /// None at present: the `Result` is always `Ok`.
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn close(self) -> Result<(), ServerError> {
                self.forks.close()
            }

            /// Handles one request (`handle_request`): waits up to the configured `timeout`
            /// (calling `handle_timeout` if nothing came), then forks a child for it.
            ///
            /// # Errors
            ///
            /// [`ServerError::NotSingleThreaded`] if a request came while the process runs
            /// more than one thread (nothing is forked then), and [`ServerError::Io`] if
            /// `fork` or setting the receive timeout fails. Failed accepts and receives are
            /// logged, not returned; errors of the handler go to the server's `handle_error` in the
            /// child.
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn handle_request(&mut self) -> Result<(), ServerError> {
                let timeout = self.forks.info.config.get_timeout();
                self.forks.fork_next(timeout, true).map(drop)
            }

            /// Handles requests until the server fails; use
            /// [`serve_until`](Self::serve_until) to stop it.
            ///
            /// # Errors
            ///
            /// As for [`handle_request`](Self::handle_request).
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn serve_forever(&mut self) -> Result<(), ServerError> {
                self.forks.serve_until(|| false)
            }

            /// Handles requests until `stop` returns true; `stop` is checked after each
            /// request and at least every 200 ms (for example, a flag set by a signal
            /// handler).
            ///
            /// # Errors
            ///
            /// As for [`handle_request`](Self::handle_request).
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn serve_until(&mut self, stop: impl FnMut() -> bool) -> Result<(), ServerError> {
                self.forks.serve_until(stop)
            }
        }
    };
}

forking_type! {
    /// A blocking TCP or Unix stream server that forks a child per connection
    /// (`ForkingTCPServer`, `ForkingUnixStreamServer`). See the [module
    /// documentation](self): plain sockets only (it runs without tokio, so endpoint kinds
    /// with per-connection setup, TLS or PROXY, are for the async servers).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::time::{Duration, Instant};
    /// use weft_server::fork::ForkingServer;
    /// use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    /// use weft_server::{ServerConfig, ServerError, ServerHooks, ServerInfo};
    ///
    /// struct Thanks;
    /// impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
    ///     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    ///         req.write_all(b"Thank you for connecting")?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// struct Idle(AtomicBool);
    /// impl ServerHooks for Idle {
    ///     fn handle_timeout(&self, _server: &ServerInfo) {
    ///         self.0.store(true, Ordering::SeqCst);
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let idle = Arc::new(Idle(AtomicBool::new(false)));
    /// let config = ServerConfig::new()
    ///     .timeout(Duration::from_millis(20))
    ///     .hooks(idle.clone());
    /// let mut server = ForkingServer::bind_tcp("127.0.0.1:0", Thanks, config)?;
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    ///
    /// // Nobody connects: `handle_timeout` runs, nothing is forked.
    /// server.handle_request()?;
    /// assert!(idle.0.load(Ordering::SeqCst));
    /// assert_eq!(server.active_children(), 0);
    ///
    /// // A connection while another thread runs: the server refuses to fork.
    /// let _client = std::net::TcpStream::connect(addr)?;
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let other = std::thread::spawn(move || rx.recv());
    /// assert!(matches!(server.handle_request(), Err(ServerError::NotSingleThreaded(2))));
    /// drop(tx);
    /// let _ = other.join();
    ///
    /// // Serving for a while, then closing (which waits for the children).
    /// let deadline = Instant::now() + Duration::from_millis(50);
    /// server.serve_until(|| Instant::now() >= deadline)?;
    /// server.close()?;
    /// # Ok(()) }
    /// ```
    ForkingServer(BlockingStreamRequest),
    bind_tcp(Type::STREAM, "TCP")
}

forking_type! {
    /// A blocking UDP or Unix datagram server that forks a child per datagram
    /// (`ForkingUDPServer`); the child sends the handler's `wfile` back as the reply. See
    /// the [module documentation](self).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::fork::ForkingDatagramServer;
    /// use weft_server::ServerConfig;
    /// # use weft_server::{BlockingRequestHandler, DatagramRequest, HandlerResult};
    /// # struct Ack;
    /// # impl BlockingRequestHandler<DatagramRequest> for Ack {
    /// #     fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
    /// #         req.wfile.extend_from_slice(b"ack");
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("ack.sock");
    /// let server = ForkingDatagramServer::bind_unix(&path, Ack, ServerConfig::new())?;
    /// assert_eq!(server.server_address().as_path(), Some(path.as_path()));
    /// server.close()?; // waits for the children, removes the socket file
    /// assert!(!path.exists());
    /// # Ok(()) }
    /// ```
    ForkingDatagramServer(DatagramRequest),
    bind_udp(Type::DGRAM, "UDP")
}

/// Binds the first address `addr` resolves to that `bind` manages to bind.
fn bind_first<T>(
    addr: impl std::net::ToSocketAddrs,
    mut bind: impl FnMut(SocketAddr) -> io::Result<T>,
) -> Result<T, ServerError> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match bind(a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(
        || ServerError::NoAddress("no address".into()),
        ServerError::Io,
    ))
}

/// A socket of `ty` bound to `addr` (an IP address, or a Unix path), with the config's
/// reuse options; listening if it is a stream socket.
fn bound(addr: &SockAddr, ty: Type, config: &ServerConfig) -> io::Result<Socket> {
    let s = Socket::new(addr.domain(), ty, None)?;
    if addr.domain() != Domain::UNIX {
        s.set_reuse_address(config.get_reuse_address())?;
    }
    s.bind(addr)?;
    if ty == Type::STREAM {
        if let Err(e) = s.listen(config.get_backlog().min(i32::MAX as u32) as i32) {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    }
    Ok(s)
}
