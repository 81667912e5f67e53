//! Server settings: [`ServerConfig`], [`Concurrency`] and [`ProcessPool`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use weft_core::ListenOptions;

use crate::hooks::{Hooks, ServerHooks};

/// How a server runs its requests: the seed's three ways (one at a time, threads,
/// processes) plus tokio tasks.
///
/// Set it with [`ServerConfig::concurrency`]; the default is
/// [`Concurrency::tasks()`].
///
/// # Examples
///
/// ```
/// use weft_server::{Concurrency, ServerConfig};
///
/// // One request at a time, like the seed's first server.
/// let sequential = ServerConfig::new().concurrency(Concurrency::Sequential);
/// assert!(matches!(sequential.get_concurrency(), Concurrency::Sequential));
///
/// // At most 8 handler threads at once (`ThreadingMixIn` with a cap).
/// let threads = ServerConfig::new().concurrency(Concurrency::Threads { limit: Some(8) });
/// assert!(matches!(
///     threads.get_concurrency(),
///     Concurrency::Threads { limit: Some(8) }
/// ));
///
/// // The default: a tokio task per request, no limit.
/// assert!(matches!(
///     ServerConfig::new().get_concurrency(),
///     Concurrency::Tasks { limit: None }
/// ));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Concurrency {
    /// One request at a time, handled inside the serving loop (the seed's first,
    /// synchronous server). A slow client blocks everybody else.
    Sequential,
    /// A tokio task per request (the default). `limit` caps the requests in flight:
    /// when it is reached the server stops accepting until one finishes, so further
    /// clients wait in the listen backlog.
    Tasks {
        /// Maximum number of requests in flight, `None` for no limit.
        limit: Option<usize>,
    },
    /// A thread per request, for blocking handlers (`ThreadingMixIn`): the handler runs
    /// on that one thread. `limit` caps the number of handler threads alive at once. An
    /// async handler is polled on its thread too; both do their I/O through the server's
    /// runtime (a thread has no runtime of its own).
    Threads {
        /// Maximum number of handler threads at once, `None` for no limit.
        limit: Option<usize>,
    },
    /// A pool of worker processes sharing the listening socket (the `ForkingMixIn`
    /// role for async servers): a crash in one worker cannot take the others down, and
    /// dead workers are restarted. See [`ProcessPool`] for how workers are started,
    /// and [`crate::fork`] for Python's fork-per-request from a blocking server.
    Processes(ProcessPool),
}

impl Concurrency {
    /// `Tasks` without a limit (the default).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::Concurrency;
    ///
    /// assert!(matches!(Concurrency::tasks(), Concurrency::Tasks { limit: None }));
    /// assert!(matches!(Concurrency::default(), Concurrency::Tasks { limit: None }));
    /// ```
    pub fn tasks() -> Self {
        Concurrency::Tasks { limit: None }
    }

    /// `Threads` without a limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{Concurrency, ServerConfig};
    ///
    /// let config = ServerConfig::new().concurrency(Concurrency::threads());
    /// assert!(matches!(
    ///     config.get_concurrency(),
    ///     Concurrency::Threads { limit: None }
    /// ));
    /// ```
    pub fn threads() -> Self {
        Concurrency::Threads { limit: None }
    }
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency::tasks()
    }
}

/// The worker-process pool of [`Concurrency::Processes`].
///
/// # Why a pool and not a fork per connection
///
/// `fork()` in a multi-threaded process (and a tokio runtime is one) copies only the
/// calling thread: locks held by the other threads (the allocator's, tokio's) stay
/// locked forever in the child, so anything but `exec` after such a fork may deadlock
/// or worse. Python's `ForkingMixIn` forks per request from a *single-threaded*
/// blocking server; that is [`crate::fork::ForkingServer`] here, which refuses to fork
/// when the process has more than one thread.
///
/// Async servers instead start `max_children` worker processes up front, by
/// re-executing a program (by default the current executable with the current
/// arguments) that inherits the listening socket. When the worker program binds its
/// server (the same code path as the parent: `TcpServer::bind` and friends), the
/// server detects the inherited socket, adopts it instead of binding, and serves with
/// tokio tasks. The kernel spreads the connections (or datagrams) over the workers.
/// A worker that dies is restarted; on shutdown the parent closes each worker's
/// standard input, which makes the worker's server stop, and kills workers that have
/// not exited after `grace`.
///
/// Trade-offs: isolation (a panic with `panic = "abort"`, a segfault or an `abort()` in
/// a handler only kills one worker and the connections it held) at the price of one
/// process per worker, no shared memory between handlers, and a program that must
/// reach its server's `bind` in the worker too (see [`crate::pool::is_worker`]).
/// While a worker is being spawned, the listening descriptor is briefly inheritable:
/// a process spawned at the same moment by another thread inherits it too.
///
/// # Examples
///
/// A program whose `main` serves with four worker processes: the parent supervises
/// the workers, each worker (the same program, re-executed) adopts the inherited
/// socket in `bind_with` and serves it. This example starts processes, so it is only
/// compiled here.
///
/// ```no_run
/// use std::time::Duration;
/// use weft_server::{Concurrency, ProcessPool, ServerConfig, TcpServer};
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
/// #[tokio::main]
/// async fn main() -> Result<(), weft_server::ServerError> {
///     let pool = ProcessPool::new(4).grace(Duration::from_secs(2));
///     let config = ServerConfig::new().concurrency(Concurrency::Processes(pool));
///     let server = TcpServer::bind_with("127.0.0.1:8000", Echo, config).await?;
///     // In the parent: start and supervise the workers until shutdown.
///     // In a worker: serve the inherited socket until the parent says stop.
///     server.serve_forever().await?;
///     server.close().await
/// }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ProcessPool {
    /// The number of worker processes (`ForkingMixIn.max_children`, 40 in Python).
    pub max_children: usize,
    /// The worker program; `None` for the current executable.
    pub program: Option<PathBuf>,
    /// The worker's arguments; `None` for the current process's arguments.
    pub args: Option<Vec<OsString>>,
    /// How long workers get to stop after their standard input is closed.
    pub grace: Duration,
}

impl ProcessPool {
    /// A pool of `max_children` workers running the current executable (at least
    /// one), with the current arguments and a grace period of 5 seconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_server::ProcessPool;
    ///
    /// let pool = ProcessPool::new(4);
    /// assert_eq!(pool.max_children, 4);
    /// assert!(pool.program.is_none() && pool.args.is_none());
    /// assert_eq!(pool.grace, Duration::from_secs(5));
    ///
    /// assert_eq!(ProcessPool::new(0).max_children, 1);
    /// ```
    pub fn new(max_children: usize) -> Self {
        ProcessPool {
            max_children: max_children.max(1),
            program: None,
            args: None,
            grace: Duration::from_secs(5),
        }
    }

    /// Run `program` as the worker instead of the current executable.
    ///
    /// The program must bind its server the same way (see [`crate::pool`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::path::Path;
    /// use weft_server::ProcessPool;
    ///
    /// let pool = ProcessPool::new(2).program("/usr/local/bin/echo-worker");
    /// assert_eq!(pool.program.as_deref(), Some(Path::new("/usr/local/bin/echo-worker")));
    /// ```
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// Give the workers these arguments instead of the current process's.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::ffi::OsString;
    /// use weft_server::ProcessPool;
    ///
    /// let pool = ProcessPool::new(2).args(["serve", "--port", "8000"]);
    /// let expected: Vec<OsString> = vec!["serve".into(), "--port".into(), "8000".into()];
    /// assert_eq!(pool.args, Some(expected));
    /// ```
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// How long workers get to stop gracefully before they are killed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_server::ProcessPool;
    ///
    /// let pool = ProcessPool::new(2).grace(Duration::from_millis(500));
    /// assert_eq!(pool.grace, Duration::from_millis(500));
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

/// The settings of a server, a builder.
///
/// Defaults and how they relate to Python's `socketserver`:
///
/// | setting | default | Python |
/// |---|---|---|
/// | `backlog` | 128 | `request_queue_size = 5` (too small for anything but a demo) |
/// | `reuse_address` | `true` | `allow_reuse_address = False`; tokio sets `SO_REUSEADDR` too |
/// | `timeout` | `None` | `timeout = None` (only used by `handle_request`) |
/// | `concurrency` | `Tasks` | synchronous unless a mix-in is used |
/// | `block_on_close` | `true` | `ThreadingMixIn.block_on_close = True` |
/// | `max_packet_size` | 8192 (a longer datagram is dropped) | `UDPServer.max_packet_size = 8192` (a longer one is cut) |
/// | `request_timeout` | `None` | `StreamRequestHandler.timeout = None` |
/// | `nodelay` | `false` | `StreamRequestHandler.disable_nagle_algorithm = False` |
/// | `hooks` | `()`: all requests verified, errors logged | `BaseServer.verify_request`, `handle_error`, `handle_timeout` |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_server::{Concurrency, ServerConfig};
///
/// let config = ServerConfig::new()
///     .backlog(64)
///     .timeout(Duration::from_millis(500))
///     .concurrency(Concurrency::Tasks { limit: Some(100) })
///     .nodelay(true);
/// assert_eq!(config.get_backlog(), 64);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ServerConfig {
    /// Backlog, `SO_REUSEADDR`, `SO_REUSEPORT`, `TCP_NODELAY`: weft-core's listener options.
    pub(crate) listen: ListenOptions,
    pub(crate) timeout: Option<Duration>,
    pub(crate) concurrency: Concurrency,
    pub(crate) block_on_close: bool,
    pub(crate) max_packet_size: usize,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) hooks: Hooks,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: ListenOptions::default()
                .backlog(128)
                .reuse_address(true)
                .nodelay(false),
            timeout: None,
            concurrency: Concurrency::default(),
            block_on_close: true,
            max_packet_size: 8192,
            request_timeout: None,
            hooks: Hooks::default(),
        }
    }
}

impl ServerConfig {
    /// The defaults (see the table above).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::ServerConfig;
    ///
    /// let config = ServerConfig::new();
    /// assert_eq!(config.get_backlog(), 128);
    /// assert_eq!(config.get_max_packet_size(), 8192);
    /// assert!(config.get_reuse_address() && config.get_block_on_close());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The listen backlog (`request_queue_size`) of stream servers.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::ServerConfig;
    ///
    /// let config = ServerConfig::new().backlog(5); // Python's request_queue_size
    /// assert_eq!(config.get_backlog(), 5);
    /// ```
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.listen.backlog = backlog.min(i32::MAX as u32);
        self
    }

    /// Set `SO_REUSEADDR` before binding (`allow_reuse_address`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::ServerConfig;
    ///
    /// let config = ServerConfig::new().reuse_address(false);
    /// assert!(!config.get_reuse_address());
    /// ```
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.listen.reuse_address = on;
        self
    }

    /// Set `SO_REUSEPORT` before binding (`allow_reuse_port`, Python 3.11).
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
    /// // Two servers sharing one port: the kernel spreads connections over both.
    /// let config = ServerConfig::new().reuse_port(true);
    /// let first = TcpServer::bind_with("127.0.0.1:0", Quiet, config.clone()).await?;
    /// let addr = first.server_address().as_inet().ok_or("not an IP address")?;
    /// let second = TcpServer::bind_with(addr, Quiet, config).await?;
    /// assert_eq!(second.server_address(), first.server_address());
    /// # first.close().await?;
    /// # second.close().await?;
    /// # Ok(()) }
    /// ```
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.listen.reuse_port = on;
        self
    }

    /// How long `handle_request` waits for a request before calling `handle_timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_server::ServerConfig;
    ///
    /// let config = ServerConfig::new().timeout(Duration::from_millis(250));
    /// assert_eq!(config.get_timeout(), Some(Duration::from_millis(250)));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The concurrency model.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{Concurrency, ServerConfig};
    ///
    /// let config = ServerConfig::new().concurrency(Concurrency::Tasks { limit: Some(100) });
    /// assert!(matches!(
    ///     config.get_concurrency(),
    ///     Concurrency::Tasks { limit: Some(100) }
    /// ));
    /// ```
    pub fn concurrency(mut self, concurrency: Concurrency) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Whether `close` waits for running handlers (tasks, threads, forked children).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::ServerConfig;
    ///
    /// // `close` returns at once; running handlers finish on their own.
    /// let config = ServerConfig::new().block_on_close(false);
    /// assert!(!config.get_block_on_close());
    /// ```
    pub fn block_on_close(mut self, on: bool) -> Self {
        self.block_on_close = on;
        self
    }

    /// The largest datagram a datagram server serves; a longer one is dropped with a warning
    /// (Python hands its first `max_packet_size` bytes to the handler as if they were all).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::ServerConfig;
    ///
    /// let config = ServerConfig::new().max_packet_size(65_507);
    /// assert_eq!(config.get_max_packet_size(), 65_507);
    /// assert_eq!(ServerConfig::new().max_packet_size(0).get_max_packet_size(), 1);
    /// ```
    pub fn max_packet_size(mut self, size: usize) -> Self {
        self.max_packet_size = size.max(1);
        self
    }

    /// A timeout for each read and write of a stream request (`StreamRequestHandler.timeout`):
    /// an operation that makes no progress for that long fails with `TimedOut`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_server::ServerConfig;
    ///
    /// // Drop clients that stall for more than 30 seconds.
    /// let config = ServerConfig::new().request_timeout(Duration::from_secs(30));
    /// assert_eq!(config.get_request_timeout(), Some(Duration::from_secs(30)));
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Set `TCP_NODELAY` on accepted TCP connections (`disable_nagle_algorithm`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::ServerConfig;
    ///
    /// let config = ServerConfig::new().nodelay(true);
    /// assert!(config.get_nodelay());
    /// ```
    pub fn nodelay(mut self, on: bool) -> Self {
        self.listen.nodelay = on;
        self
    }

    /// The server's `verify_request`, `handle_error` and `handle_timeout` (see
    /// [`ServerHooks`], where each has an example); replaces the defaults (`()`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{Address, ServerConfig, ServerHooks, ServerInfo};
    ///
    /// /// Serves loopback clients only.
    /// struct LocalOnly;
    /// impl ServerHooks for LocalOnly {
    ///     fn verify_request(&self, client: &Address, _server: &ServerInfo) -> bool {
    ///         client.as_inet().is_some_and(|a| a.ip().is_loopback())
    ///     }
    /// }
    ///
    /// let config = ServerConfig::new().hooks(LocalOnly);
    /// # let _ = config;
    /// ```
    pub fn hooks(mut self, hooks: impl ServerHooks) -> Self {
        self.hooks = Hooks(std::sync::Arc::new(hooks));
        self
    }

    /// The listen backlog.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::ServerConfig;
    ///
    /// assert_eq!(ServerConfig::new().get_backlog(), 128);
    /// assert_eq!(ServerConfig::new().backlog(1024).get_backlog(), 1024);
    /// ```
    pub fn get_backlog(&self) -> u32 {
        self.listen.backlog
    }

    /// Whether `SO_REUSEADDR` is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::ServerConfig;
    ///
    /// assert!(ServerConfig::new().get_reuse_address());
    /// assert!(!ServerConfig::new().reuse_address(false).get_reuse_address());
    /// ```
    pub fn get_reuse_address(&self) -> bool {
        self.listen.reuse_address
    }

    /// The `handle_request` timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_server::ServerConfig;
    ///
    /// assert_eq!(ServerConfig::new().get_timeout(), None);
    /// let config = ServerConfig::new().timeout(Duration::from_secs(1));
    /// assert_eq!(config.get_timeout(), Some(Duration::from_secs(1)));
    /// ```
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The concurrency model.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{Concurrency, ServerConfig};
    ///
    /// let config = ServerConfig::new().concurrency(Concurrency::Sequential);
    /// assert!(matches!(config.get_concurrency(), Concurrency::Sequential));
    /// ```
    pub fn get_concurrency(&self) -> &Concurrency {
        &self.concurrency
    }

    /// Whether `close` waits for running handlers.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::ServerConfig;
    ///
    /// assert!(ServerConfig::new().get_block_on_close());
    /// ```
    pub fn get_block_on_close(&self) -> bool {
        self.block_on_close
    }

    /// The largest datagram received.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::ServerConfig;
    ///
    /// assert_eq!(ServerConfig::new().get_max_packet_size(), 8192);
    /// ```
    pub fn get_max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// The per-operation timeout of stream requests.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_server::ServerConfig;
    ///
    /// assert_eq!(ServerConfig::new().get_request_timeout(), None);
    /// let config = ServerConfig::new().request_timeout(Duration::from_secs(5));
    /// assert_eq!(config.get_request_timeout(), Some(Duration::from_secs(5)));
    /// ```
    pub fn get_request_timeout(&self) -> Option<Duration> {
        self.request_timeout
    }

    /// Whether `TCP_NODELAY` is set on accepted connections.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::ServerConfig;
    ///
    /// assert!(!ServerConfig::new().get_nodelay());
    /// ```
    pub fn get_nodelay(&self) -> bool {
        self.listen.nodelay
    }

    /// The server's hooks, for a handler that wants to report through them.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{Address, HandlerResult, RequestHandler, StreamRequest};
    ///
    /// /// Reports a refused client itself, then serves on.
    /// struct Picky;
    /// impl RequestHandler<StreamRequest> for Picky {
    ///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    ///         if req.read_line().await? != b"please\n" {
    ///             let hooks = req.server().config().get_hooks();
    ///             hooks.handle_error(req.client_address(), &"impolite client".into());
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// ```
    pub fn get_hooks(&self) -> &dyn ServerHooks {
        &*self.hooks.0
    }
}
