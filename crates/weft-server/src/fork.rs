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
//! status 0, or 1 after an error or panic (which the child reports through
//! `handle_error`); a crash in a child cannot hurt the server or the other children.
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
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use crate::addr::Address;
use crate::config::{Concurrency, ServerConfig};
use crate::error::ServerError;
use crate::handler::{BlockingRequestHandler, panic_error, run_blocking};
use crate::request::{BlockingStreamRequest, DatagramRequest, ServerInfo};
use crate::server::bind_first;

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

#[derive(Debug)]
enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

enum StdConn {
    Tcp(std::net::TcpStream, Address),
    Unix(std::os::unix::net::UnixStream, Address),
}

impl StdListener {
    fn set_accept_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        // Linux's accept() honours SO_RCVTIMEO.
        match self {
            StdListener::Tcp(l) => SockRef::from(l).set_read_timeout(t),
            StdListener::Unix(l) => SockRef::from(l).set_read_timeout(t),
        }
    }

    fn accept(&self) -> io::Result<StdConn> {
        match self {
            StdListener::Tcp(l) => l.accept().map(|(s, a)| StdConn::Tcp(s, Address::Inet(a))),
            StdListener::Unix(l) => l
                .accept()
                .map(|(s, a)| StdConn::Unix(s, Address::from_unix_std(&a))),
        }
    }
}

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

/// Runs a server-side hook (`verify_request`, `handle_timeout`) in the serving
/// process: a panic there is logged and yields `fallback` instead of unwinding out of
/// the serve loop.
fn guard_hook<T>(f: impl FnOnce() -> T, fallback: T) -> T {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        tracing::error!("a server hook panicked");
        fallback
    })
}

/// The exit status of a child: 0, or 1 after reporting an error to `handle_error`.
fn child_status<R: Send + 'static, H: BlockingRequestHandler<R>>(
    handler: &H,
    client: &Address,
    result: crate::HandlerResult,
) -> i32 {
    let status = match result {
        Ok(()) => 0,
        Err(e) => {
            handler.handle_error(client, &e);
            1
        }
    };
    let _ = io::Write::flush(&mut io::stdout());
    status
}

/// A blocking server that forks a child per request: [`ForkingServer`] (TCP, Unix
/// stream) or [`ForkingDatagramServer`] (UDP, Unix datagram). See the
/// [module documentation](self).
///
/// `S` is the server's socket, [`StreamSocket`] or [`DatagramSocket`], and `H` its
/// handler; write the aliases rather than `Forking` itself. The accessors and the
/// serving methods are the same for both kinds; binding is that of each kind.
///
/// # Examples
///
/// ```
/// use weft_server::fork::{DatagramSocket, Forking, ForkingDatagramServer};
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
/// let server: Forking<DatagramSocket, Ack> =
///     ForkingDatagramServer::bind_udp("127.0.0.1:0", Ack, ServerConfig::new())?;
/// assert_eq!(server.active_children(), 0);
/// server.close()?;
/// # Ok(()) }
/// ```
pub struct Forking<S, H> {
    socket: Option<S>,
    handler: Arc<H>,
    info: Arc<ServerInfo>,
    children: Children,
    path: Option<PathBuf>,
}

mod sealed {
    use std::time::Duration;

    use crate::error::ServerError;
    use crate::handler::BlockingRequestHandler;

    /// The sockets of a [`Forking`](super::Forking) server: what differs between the
    /// stream and the datagram kind.
    pub trait Socket: Sized {
        /// The name `Debug` shows.
        const NAME: &'static str;
        /// What is logged when receiving a request fails.
        const FAILED: &'static str;
        /// What is logged when `verify_request` refuses a request.
        const REFUSED: &'static str;
        /// The request a handler of this kind gets.
        type Request: Send + 'static;

        /// Sets how long receiving a request may block.
        fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;

        /// Waits up to `timeout` for a request and forks a child for it; returns
        /// whether one came.
        fn fork_next<H: BlockingRequestHandler<Self::Request>>(
            server: &mut super::Forking<Self, H>,
            timeout: Option<Duration>,
            call_timeout: bool,
        ) -> Result<bool, ServerError>;
    }
}

impl<S: sealed::Socket, H> std::fmt::Debug for Forking<S, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(S::NAME)
            .field("address", &self.info.address)
            .field("active_children", &self.children.active.len())
            .finish_non_exhaustive()
    }
}

impl<S, H> Drop for Forking<S, H> {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl<S, H> Forking<S, H> {
    fn new(
        socket: S,
        address: Address,
        config: ServerConfig,
        path: Option<PathBuf>,
        handler: H,
    ) -> Self {
        Forking {
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

    /// The address the server is bound to, with the real port.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::fork::ForkingServer;
    /// use weft_server::ServerConfig;
    /// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    /// # struct Thanks;
    /// # impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
    /// #     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    /// #         req.write_all(b"Thank you for connecting")?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = ForkingServer::bind_tcp("127.0.0.1:0", Thanks, ServerConfig::new())?;
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// assert!(addr.ip().is_loopback() && addr.port() != 0);
    /// # Ok(()) }
    /// ```
    pub fn server_address(&self) -> &Address {
        &self.info.address
    }

    /// The server's address and settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_server::fork::ForkingServer;
    /// use weft_server::ServerConfig;
    /// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    /// # struct Thanks;
    /// # impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
    /// #     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    /// #         req.write_all(b"Thank you for connecting")?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = ServerConfig::new().request_timeout(Duration::from_secs(10));
    /// let server = ForkingServer::bind_tcp("127.0.0.1:0", Thanks, config)?;
    /// assert_eq!(server.info().address(), server.server_address());
    /// assert_eq!(server.info().config().get_request_timeout(), Some(Duration::from_secs(10)));
    /// # Ok(()) }
    /// ```
    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    /// The number of forked children not yet reaped (`active_children`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::fork::ForkingServer;
    /// use weft_server::ServerConfig;
    /// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    /// # struct Thanks;
    /// # impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
    /// #     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    /// #         req.write_all(b"Thank you for connecting")?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = ForkingServer::bind_tcp("127.0.0.1:0", Thanks, ServerConfig::new())?;
    /// assert_eq!(server.active_children(), 0); // nothing forked yet
    /// # Ok(()) }
    /// ```
    pub fn active_children(&self) -> usize {
        self.children.active.len()
    }

    /// Reaps finished children; with `block`, waits until fewer than
    /// `max_children` run (Python's `collect_children`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::fork::ForkingServer;
    /// use weft_server::ServerConfig;
    /// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    /// # struct Thanks;
    /// # impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
    /// #     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    /// #         req.write_all(b"Thank you for connecting")?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut server = ForkingServer::bind_tcp("127.0.0.1:0", Thanks, ServerConfig::new())?;
    /// server.collect_children(false); // reap what has finished, without waiting
    /// assert_eq!(server.active_children(), 0);
    /// # Ok(()) }
    /// ```
    pub fn collect_children(&mut self, block: bool) {
        self.children.collect(block);
    }

    /// Waits for every child to exit.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::fork::ForkingServer;
    /// use weft_server::ServerConfig;
    /// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    /// # struct Thanks;
    /// # impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
    /// #     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    /// #         req.write_all(b"Thank you for connecting")?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut server = ForkingServer::bind_tcp("127.0.0.1:0", Thanks, ServerConfig::new())?;
    /// server.wait_children(); // returns at once: no children
    /// assert_eq!(server.active_children(), 0);
    /// # Ok(()) }
    /// ```
    pub fn wait_children(&mut self) {
        self.children.wait_all();
    }

    /// Closes the socket (listening or datagram), removes a Unix socket file and, with
    /// `block_on_close` (the default), waits for every child (`server_close`).
    ///
    /// # Errors
    ///
    /// None at present: the `Result` is always `Ok`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::fork::{ForkingDatagramServer, ForkingServer};
    /// use weft_server::ServerConfig;
    /// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    /// # struct Thanks;
    /// # impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
    /// #     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    /// #         req.write_all(b"Thank you for connecting")?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # struct Ack;
    /// # impl BlockingRequestHandler<weft_server::DatagramRequest> for Ack {
    /// #     fn handle(&self, req: &mut weft_server::DatagramRequest) -> HandlerResult {
    /// #         req.wfile.extend_from_slice(b"ack");
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("thanks.sock");
    /// let server = ForkingServer::bind_unix(&path, Thanks, ServerConfig::new())?;
    /// server.close()?; // waits for the children, removes the socket file
    /// assert!(!path.exists());
    ///
    /// // The same for a datagram server.
    /// let path = dir.path().join("ack.sock");
    /// let server = ForkingDatagramServer::bind_unix(&path, Ack, ServerConfig::new())?;
    /// server.close()?;
    /// assert!(!path.exists());
    /// # Ok(()) }
    /// ```
    pub fn close(mut self) -> Result<(), ServerError> {
        drop(self.socket.take());
        if self.info.config.block_on_close {
            self.wait_children();
        } else {
            self.collect_children(false);
        }
        Ok(())
    }
}

impl<S: sealed::Socket, H: BlockingRequestHandler<S::Request>> Forking<S, H> {
    /// Handles one request (`handle_request`): waits up to the configured `timeout`
    /// (calling `handle_timeout` if nothing came), then forks a child for the
    /// connection or datagram.
    ///
    /// # Errors
    ///
    /// Returns [`ServerError::NotSingleThreaded`] if a request came while the process
    /// runs more than one thread (nothing is forked then), and [`ServerError::Io`] if
    /// `fork` or setting the receive timeout fails. Failed accepts and receives are
    /// logged, not returned; errors of the handler go to its `handle_error` in the child.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use weft_server::fork::ForkingServer;
    /// use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    /// use weft_server::{ServerConfig, ServerError, ServerInfo};
    ///
    /// struct Thanks(Arc<AtomicBool>);
    /// impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
    ///     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    ///         req.write_all(b"Thank you for connecting")?;
    ///         Ok(())
    ///     }
    ///     fn handle_timeout(&self, _server: &ServerInfo) {
    ///         self.0.store(true, Ordering::SeqCst);
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let timed_out = Arc::new(AtomicBool::new(false));
    /// let config = ServerConfig::new().timeout(Duration::from_millis(20));
    /// let mut server = ForkingServer::bind_tcp("127.0.0.1:0", Thanks(timed_out.clone()), config)?;
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    ///
    /// // Nobody connects: `handle_timeout` runs, nothing is forked.
    /// server.handle_request()?;
    /// assert!(timed_out.load(Ordering::SeqCst));
    ///
    /// // A connection while another thread runs: the server refuses to fork.
    /// let _client = std::net::TcpStream::connect(addr)?;
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let other = std::thread::spawn(move || rx.recv());
    /// assert!(matches!(server.handle_request(), Err(ServerError::NotSingleThreaded(2))));
    /// drop(tx);
    /// let _ = other.join();
    /// # Ok(()) }
    /// ```
    pub fn handle_request(&mut self) -> Result<(), ServerError> {
        let timeout = self.info.config.timeout;
        S::fork_next(self, timeout, true).map(drop)
    }

    /// Handles requests until the server fails. Use
    /// [`serve_until`](Self::serve_until) to stop it.
    ///
    /// # Errors
    ///
    /// As for [`handle_request`](Self::handle_request): in particular
    /// [`ServerError::NotSingleThreaded`] once a request comes while the process has
    /// more than one thread.
    ///
    /// # Examples
    ///
    /// Forks for each connection and never returns on its own, so this is only compiled:
    ///
    /// ```no_run
    /// use weft_server::fork::ForkingServer;
    /// use weft_server::ServerConfig;
    /// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    /// # struct Thanks;
    /// # impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
    /// #     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    /// #         req.write_all(b"Thank you for connecting")?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// fn main() -> Result<(), weft_server::ServerError> {
    ///     let config = ServerConfig::new();
    ///     let mut server = ForkingServer::bind_tcp("127.0.0.1:8000", Thanks, config)?;
    ///     server.serve_forever() // a child per connection, until an error
    /// }
    /// ```
    pub fn serve_forever(&mut self) -> Result<(), ServerError> {
        self.serve_until(|| false)
    }

    /// Handles requests until `stop` returns true; `stop` is checked after each
    /// request and at least every 200 ms (for example, a flag set by a signal handler).
    ///
    /// # Errors
    ///
    /// As for [`handle_request`](Self::handle_request).
    ///
    /// # Examples
    ///
    /// Serving for a while (nobody connects here, so nothing is forked):
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use weft_server::fork::ForkingServer;
    /// use weft_server::ServerConfig;
    /// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    /// # struct Thanks;
    /// # impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
    /// #     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    /// #         req.write_all(b"Thank you for connecting")?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut server = ForkingServer::bind_tcp("127.0.0.1:0", Thanks, ServerConfig::new())?;
    /// let deadline = Instant::now() + Duration::from_millis(100);
    /// server.serve_until(|| Instant::now() >= deadline)?; // serves for about 100 ms
    /// server.close()?;
    /// # Ok(()) }
    /// ```
    pub fn serve_until(&mut self, mut stop: impl FnMut() -> bool) -> Result<(), ServerError> {
        while !stop() {
            S::fork_next(self, Some(POLL_INTERVAL), false)?;
        }
        Ok(())
    }

    /// Waits up to `timeout` for a request (`receive`: a connection or a datagram, and
    /// the client's address), then forks a child that runs `child` for it and exits.
    /// Returns whether a request came.
    fn fork_one<C>(
        &mut self,
        timeout: Option<Duration>,
        call_timeout: bool,
        receive: impl FnOnce(&S, &ServerInfo) -> io::Result<(C, Address)>,
        child: impl FnOnce(&mut Self, C, &Address) -> i32,
    ) -> Result<bool, ServerError> {
        self.children.collect(true);
        let socket = self.socket.as_ref().ok_or(ServerError::Closed)?;
        socket.set_timeout(timeout)?;
        let (request, client) = match receive(socket, &self.info) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if call_timeout {
                    guard_hook(|| self.handler.handle_timeout(&self.info), ());
                }
                self.children.collect(false);
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => {
                tracing::warn!(error = %e, "{}", S::FAILED);
                return Ok(false);
            }
        };
        if !guard_hook(|| self.handler.verify_request(&client, &self.info), false) {
            tracing::debug!(%client, "{}", S::REFUSED);
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
                // The child handles and exits, whatever happens: it must never return
                // into the serve loop, nor remove the parent's socket file.
                self.path = None;
                let status =
                    std::panic::catch_unwind(AssertUnwindSafe(|| child(self, request, &client)))
                        .unwrap_or(1);
                std::process::exit(status)
            }
        }
    }
}
/// A blocking TCP or Unix stream server that forks a child per connection. See the
/// [module documentation](self).
///
/// # Examples
///
/// The life cycle of a forking server, in the `main` of a program that has started no
/// threads. This example forks for each connection, so it is only compiled here.
///
/// ```no_run
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use weft_server::fork::ForkingServer;
/// use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult, ServerConfig};
///
/// struct Thanks;
/// impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
///     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
///         req.write_all(b"Thank you for connecting")?;
///         Ok(())
///     }
/// }
///
/// static STOP: AtomicBool = AtomicBool::new(false); // set by a signal handler, say
///
/// fn main() -> Result<(), weft_server::ServerError> {
///     let mut server = ForkingServer::bind_tcp("127.0.0.1:8000", Thanks, ServerConfig::new())?;
///     server.serve_until(|| STOP.load(Ordering::Relaxed))?;
///     server.close() // waits for the children
/// }
/// ```
pub type ForkingServer<H> = Forking<StreamSocket, H>;

/// The listening socket of a [`ForkingServer`] (TCP or Unix stream). Only named in
/// types; its contents are private.
///
/// # Examples
///
/// ```
/// use weft_server::fork::{Forking, ForkingServer, StreamSocket};
/// use weft_server::ServerConfig;
/// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
/// # struct Thanks;
/// # impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
/// #     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
/// #         req.write_all(b"Thank you for connecting")?;
/// #         Ok(())
/// #     }
/// # }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server: Forking<StreamSocket, Thanks> =
///     ForkingServer::bind_tcp("127.0.0.1:0", Thanks, ServerConfig::new())?;
/// assert!(format!("{server:?}").starts_with("ForkingServer"));
/// server.close()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StreamSocket(StdListener);

impl sealed::Socket for StreamSocket {
    const NAME: &'static str = "ForkingServer";
    const FAILED: &'static str = "accept failed";
    const REFUSED: &'static str = "request refused by verify_request";
    type Request = BlockingStreamRequest;

    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.0.set_accept_timeout(t)
    }

    fn fork_next<H: BlockingRequestHandler<BlockingStreamRequest>>(
        server: &mut ForkingServer<H>,
        timeout: Option<Duration>,
        call_timeout: bool,
    ) -> Result<bool, ServerError> {
        server.fork_one(
            timeout,
            call_timeout,
            |listener, _| {
                let conn = listener.0.accept()?;
                let client = match &conn {
                    StdConn::Tcp(_, a) | StdConn::Unix(_, a) => a.clone(),
                };
                Ok((conn, client))
            },
            |child, conn, client| {
                // The child closes its copy of the listening socket.
                drop(child.socket.take());
                child.run_child(conn, client)
            },
        )
    }
}
impl<H: BlockingRequestHandler<BlockingStreamRequest>> ForkingServer<H> {
    /// Binds a TCP forking server (`ForkingTCPServer`). `max_children` comes from a
    /// [`Concurrency::Processes`] in `config`, else [`DEFAULT_MAX_CHILDREN`].
    ///
    /// # Errors
    ///
    /// Returns [`ServerError::Io`] if the address cannot be resolved or no address it
    /// resolves to can be bound and listened on, and [`ServerError::NoAddress`] if it
    /// resolves to nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::fork::ForkingServer;
    /// use weft_server::ServerConfig;
    /// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    /// # struct Thanks;
    /// # impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
    /// #     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    /// #         req.write_all(b"Thank you for connecting")?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = ForkingServer::bind_tcp("127.0.0.1:0", Thanks, ServerConfig::new())?;
    /// assert_ne!(server.server_address().as_inet().ok_or("not an IP address")?.port(), 0);
    /// server.close()?;
    /// # Ok(()) }
    /// ```
    pub fn bind_tcp(
        addr: impl std::net::ToSocketAddrs,
        handler: H,
        config: ServerConfig,
    ) -> Result<Self, ServerError> {
        let addrs: Vec<_> = addr.to_socket_addrs()?.collect();
        let s = bind_first(&addrs, |a| {
            let s = Socket::new(Domain::for_address(a), Type::STREAM, None)?;
            s.set_reuse_address(config.reuse_address)?;
            if config.reuse_port {
                s.set_reuse_port(true)?;
            }
            s.bind(&a.into())?;
            s.listen(config.backlog)?;
            Ok(s)
        })?;
        let l = std::net::TcpListener::from(s);
        let address = Address::Inet(l.local_addr()?);
        let socket = StreamSocket(StdListener::Tcp(l));
        Ok(Self::new(socket, address, config, None, handler))
    }

    /// Binds a Unix stream forking server (`ForkingUnixStreamServer`) at `path`, which
    /// [`close`](Self::close) (or drop) removes.
    ///
    /// # Errors
    ///
    /// Returns [`ServerError::Io`] if the socket cannot be bound at `path` (`AddrInUse`
    /// if the file exists, `NotFound` if its directory does not) or cannot listen.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::fork::ForkingServer;
    /// use weft_server::ServerConfig;
    /// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    /// # struct Thanks;
    /// # impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
    /// #     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    /// #         req.write_all(b"Thank you for connecting")?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("thanks.sock");
    /// let server = ForkingServer::bind_unix(&path, Thanks, ServerConfig::new())?;
    /// assert_eq!(server.server_address().as_path(), Some(path.as_path()));
    /// server.close()?;
    /// assert!(!path.exists());
    /// # Ok(()) }
    /// ```
    pub fn bind_unix(
        path: impl AsRef<Path>,
        handler: H,
        config: ServerConfig,
    ) -> Result<Self, ServerError> {
        let path = path.as_ref();
        let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        s.bind(&SockAddr::unix(path)?)?;
        if let Err(e) = s.listen(config.backlog) {
            let _ = std::fs::remove_file(path);
            return Err(e.into());
        }
        let l = std::os::unix::net::UnixListener::from(std::os::fd::OwnedFd::from(s));
        let address = Address::from_unix_std(&l.local_addr()?);
        Ok(Self::new(
            StreamSocket(StdListener::Unix(l)),
            address,
            config,
            Some(path.to_path_buf()),
            handler,
        ))
    }

    fn run_child(&self, conn: StdConn, client: &Address) -> i32 {
        let req = match conn {
            StdConn::Tcp(s, a) => {
                let nodelay = self.info.config.nodelay;
                (if nodelay { s.set_nodelay(true) } else { Ok(()) })
                    .and_then(|()| BlockingStreamRequest::from_tcp(s, a, self.info.clone()))
            }
            StdConn::Unix(s, a) => BlockingStreamRequest::from_unix(s, a, self.info.clone()),
        };
        let result = match req {
            Ok(mut req) => {
                let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    run_blocking(&*self.handler, &mut req)
                }))
                .unwrap_or_else(|p| Err(panic_error(p)));
                if let Err(e) = req.close() {
                    tracing::debug!(%client, error = %e, "error while closing a connection");
                }
                r
            }
            Err(e) => Err(e.into()),
        };
        child_status(&*self.handler, client, result)
    }
}

#[derive(Debug)]
enum StdDgram {
    Udp(std::net::UdpSocket),
    Unix(std::os::unix::net::UnixDatagram),
}

impl StdDgram {
    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            StdDgram::Udp(s) => s.set_read_timeout(t),
            StdDgram::Unix(s) => s.set_read_timeout(t),
        }
    }

    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Address)> {
        match self {
            StdDgram::Udp(s) => s.recv_from(buf).map(|(n, a)| (n, Address::Inet(a))),
            StdDgram::Unix(s) => s
                .recv_from(buf)
                .map(|(n, a)| (n, Address::from_unix_std(&a))),
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

/// A blocking UDP or Unix datagram server that forks a child per datagram
/// (`ForkingUDPServer`, `ForkingUnixDatagramServer`); see the
/// [module documentation](self). The child runs the handler and sends `wfile` back,
/// as [`crate::DatagramRequest`] describes.
///
/// # Examples
///
/// In the `main` of a program that has started no threads. This example forks for
/// each datagram, so it is only compiled here.
///
/// ```no_run
/// use weft_server::fork::ForkingDatagramServer;
/// use weft_server::{BlockingRequestHandler, DatagramRequest, HandlerResult, ServerConfig};
///
/// struct Ack;
/// impl BlockingRequestHandler<DatagramRequest> for Ack {
///     fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
///         req.wfile.extend_from_slice(b"ack");
///         Ok(())
///     }
/// }
///
/// fn main() -> Result<(), weft_server::ServerError> {
///     let config = ServerConfig::new();
///     let mut server = ForkingDatagramServer::bind_udp("127.0.0.1:9000", Ack, config)?;
///     server.serve_forever()
/// }
/// ```
pub type ForkingDatagramServer<H> = Forking<DatagramSocket, H>;

/// The socket of a [`ForkingDatagramServer`] (UDP or Unix datagram). Only named in
/// types; its contents are private.
///
/// # Examples
///
/// ```
/// use weft_server::fork::{DatagramSocket, Forking, ForkingDatagramServer};
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
/// let server: Forking<DatagramSocket, Ack> =
///     ForkingDatagramServer::bind_udp("127.0.0.1:0", Ack, ServerConfig::new())?;
/// assert!(format!("{server:?}").starts_with("ForkingDatagramServer"));
/// server.close()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DatagramSocket(StdDgram);

impl sealed::Socket for DatagramSocket {
    const NAME: &'static str = "ForkingDatagramServer";
    const FAILED: &'static str = "receive failed";
    const REFUSED: &'static str = "datagram refused by verify_request";
    type Request = DatagramRequest;

    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.0.set_timeout(t)
    }

    fn fork_next<H: BlockingRequestHandler<DatagramRequest>>(
        server: &mut ForkingDatagramServer<H>,
        timeout: Option<Duration>,
        call_timeout: bool,
    ) -> Result<bool, ServerError> {
        server.fork_one(
            timeout,
            call_timeout,
            |socket, info| {
                let mut buf = vec![0u8; info.config.max_packet_size];
                let (n, client) = socket.0.recv_from(&mut buf)?;
                buf.truncate(n);
                Ok((buf, client))
            },
            |child, packet, client| child.run_child(packet, client),
        )
    }
}
impl<H: BlockingRequestHandler<DatagramRequest>> ForkingDatagramServer<H> {
    /// Binds a UDP forking server.
    ///
    /// # Errors
    ///
    /// Returns [`ServerError::Io`] if the address cannot be resolved or no address it
    /// resolves to can be bound, and [`ServerError::NoAddress`] if it resolves to nothing.
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
    /// let server = ForkingDatagramServer::bind_udp("127.0.0.1:0", Ack, ServerConfig::new())?;
    /// assert_ne!(server.server_address().as_inet().ok_or("not an IP address")?.port(), 0);
    /// server.close()?;
    /// # Ok(()) }
    /// ```
    pub fn bind_udp(
        addr: impl std::net::ToSocketAddrs,
        handler: H,
        config: ServerConfig,
    ) -> Result<Self, ServerError> {
        let addrs: Vec<_> = addr.to_socket_addrs()?.collect();
        let s = bind_first(&addrs, |a| {
            let s = Socket::new(Domain::for_address(a), Type::DGRAM, None)?;
            s.set_reuse_address(config.reuse_address)?;
            s.bind(&a.into())?;
            Ok(std::net::UdpSocket::from(s))
        })?;
        let address = Address::Inet(s.local_addr()?);
        let socket = DatagramSocket(StdDgram::Udp(s));
        Ok(Self::new(socket, address, config, None, handler))
    }

    /// Binds a Unix datagram forking server at `path`, which
    /// [`close`](Self::close) (or drop) removes.
    ///
    /// # Errors
    ///
    /// Returns [`ServerError::Io`] if the socket cannot be bound at `path` (`AddrInUse`
    /// if the file exists, `NotFound` if its directory does not).
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
    /// drop(server); // dropping removes the file too
    /// assert!(!path.exists());
    /// # Ok(()) }
    /// ```
    pub fn bind_unix(
        path: impl AsRef<Path>,
        handler: H,
        config: ServerConfig,
    ) -> Result<Self, ServerError> {
        let path = path.as_ref();
        let s = std::os::unix::net::UnixDatagram::bind(path)?;
        let address = Address::from_unix_std(&s.local_addr()?);
        Ok(Self::new(
            DatagramSocket(StdDgram::Unix(s)),
            address,
            config,
            Some(path.to_path_buf()),
            handler,
        ))
    }

    fn run_child(&self, packet: Vec<u8>, client: &Address) -> i32 {
        let mut req = DatagramRequest {
            rfile: io::Cursor::new(packet),
            wfile: Vec::new(),
            client: client.clone(),
            server: self.info.clone(),
        };
        let mut result =
            std::panic::catch_unwind(AssertUnwindSafe(|| run_blocking(&*self.handler, &mut req)))
                .unwrap_or_else(|p| Err(panic_error(p)));
        if !req.wfile.is_empty() {
            if let Some(DatagramSocket(s)) = &self.socket {
                result = result.and(s.send_to(&req.wfile, client).map_err(Into::into));
            }
        }
        child_status(&*self.handler, client, result)
    }
}
