//! One place that binds any server endpoint and accepts its connections: [`Listener`].
//!
//! The reactor's accept loop ([`Reactor::listen`](crate::Reactor::listen)) and weft-server's
//! socketserver family both sit on it, so an endpoint kind weft-core learns reaches every kind
//! of server without code elsewhere.
//!
//! Accepting is split in two, so that a slow client never stalls the accept loop:
//! - [`Listener::accept`] is quick: it takes the next connection from the kernel (skipping
//!   errors that concern one connection, backing off when descriptors run out) and returns an
//!   [`Incoming`]: the raw socket and its addresses, nothing read or written yet.
//! - [`Incoming::establish`] runs the endpoint's per-connection setup (nothing for plain
//!   `tcp:`/`unix:`; a PROXY header or a TLS handshake for the kinds that have one) and
//!   returns an [`Established`] connection: a [`Stream`] and the addresses to report. Call it
//!   in the connection's own task.
//!
//! ```
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use weft_core::listener::Listener;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let listener = Listener::bind("tcp:0:interface=127.0.0.1").await?;
//! let addr = listener.local_addr().as_inet().expect("a TCP listener");
//! let mut client = tokio::net::TcpStream::connect(addr).await?;
//!
//! let incoming = listener.accept().await?;
//! let mut conn = incoming.establish().await?; // in the connection's own task, as a rule
//! assert_eq!(conn.peer.as_inet(), Some(client.local_addr()?));
//! conn.stream.write_all(b"hello").await?;
//! let mut buf = [0; 5];
//! client.read_exact(&mut buf).await?;
//! assert_eq!(&buf, b"hello");
//! # Ok(()) }
//! ```
//!
//! # Adding an endpoint kind
//!
//! An endpoint kind (`ssl:`, `haproxy:`, `systemd:`, an option such as `reusePort`) touches
//! three places, all in weft-core:
//!
//! 1. **Parse** it in [`endpoint.rs`](crate::endpoint): a [`ServerEndpoint`] variant or field.
//! 2. **Bind** it in [`Listener::bind_with`]: where the socket comes from (bound here, or
//!    adopted from an inherited descriptor with [`Listener::from_std_tcp`] /
//!    [`Listener::from_std_unix`] for `systemd:`) and any socket option (`reusePort` is
//!    [`ListenOptions::reuse_port`]). A kind that wraps another (`haproxy:tcp:...`,
//!    `ssl:...`) binds the inner endpoint, then records its per-connection work in the
//!    listener's private `Setup`.
//! 3. **Set each connection up** in `Setup::run` (called by [`Incoming::establish`]): read the
//!    PROXY header and set [`Established::peer`] to the client it names (keeping the real
//!    socket's peer in [`Established::socket_peer`]); run the TLS handshake and return a new
//!    [`Stream`] variant. Bound it with the kind's timeout: it runs in the connection's task,
//!    never in the accept loop. An empty `Setup` keeps the fast path: the reactor then spawns
//!    its connection driver straight on the raw socket (no extra task, no wrapper), and only
//!    endpoints with setup pay for one.
//!
//! A new [`Stream`] variant must also be served by the reactor's driver (`driver.rs` drives a
//! readiness-based socket; a TLS stream needs its own I/O path there) and implement
//! `AsyncRead`/`AsyncWrite` here, which is all weft-server's handlers need: they then serve it
//! without a line of weft-server code.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream};
use tokio::time::Instant;

use crate::Address;
use crate::endpoint::ServerEndpoint;
use crate::proxy::{ProxyHeader, ProxyOptions};
use crate::tls::ServerTls;

/// How long `accept` waits when the process or system is out of descriptors or memory.
const BACKOFF: Duration = Duration::from_millis(100);
/// How often, at most, pauses are summarised in the log.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Options for binding a stream listener.
///
/// ```
/// use weft_core::ListenOptions;
/// let opts = ListenOptions::default().backlog(50).nodelay(false);
/// assert_eq!(opts.backlog, 50);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct ListenOptions {
    /// Listen backlog (default 1024).
    pub backlog: u32,
    /// Set TCP_NODELAY on accepted connections (default true: a protocol's writes are
    /// already batched per callback).
    pub nodelay: bool,
    /// SO_REUSEADDR (default true, as Twisted and tokio do on Unix).
    pub reuse_address: bool,
    /// SO_REUSEPORT: several sockets (processes) share one port (default false).
    pub reuse_port: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            backlog: 1024,
            nodelay: true,
            reuse_address: true,
            reuse_port: false,
        }
    }
}

impl ListenOptions {
    /// Sets the listen backlog.
    ///
    /// See [`ListenOptions`] for an example.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }
    /// Sets TCP_NODELAY on accepted connections.
    ///
    /// See [`ListenOptions`] for an example.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }
    /// Sets SO_REUSEADDR on the listening socket.
    ///
    /// See [`ListenOptions`] for an example.
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = on;
        self
    }
    /// Sets SO_REUSEPORT on the listening socket.
    ///
    /// See [`ListenOptions`] for an example.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }
}

/// A bound stream endpoint (TCP or Unix, and the kinds built on them) accepting connections.
///
/// Dropping it closes the socket and removes a Unix socket file it created.
/// See the [module documentation](self) for an example.
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    local: Address,
    nodelay: bool,
    /// The endpoint's per-connection setup; `None` for plain tcp/unix (the fast path).
    setup: Option<Arc<Setup>>,
    /// The Unix socket file this listener created, removed on drop.
    unlink: Option<PathBuf>,
    pauses: Mutex<Pauses>,
}

#[derive(Debug)]
enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(path) = &self.unlink {
            if let Err(e) = std::fs::remove_file(path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove the socket file");
                }
            }
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.socket {
            Socket::Tcp(l) => l.as_fd(),
            Socket::Unix(l) => l.as_fd(),
        }
    }
}

fn invalid(e: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

impl Listener {
    /// Binds an endpoint string (`tcp:1234:interface=127.0.0.1`, `unix:/run/echo.sock`; see
    /// [`ServerEndpoint`]) with the default [`ListenOptions`].
    ///
    /// # Errors
    /// A malformed endpoint (`InvalidInput`, with the parser's message), a datagram endpoint
    /// (`InvalidInput`), or the bind error.
    ///
    /// See the [module documentation](self) for an example.
    pub async fn bind(endpoint: &str) -> io::Result<Listener> {
        let ep: ServerEndpoint = endpoint.parse().map_err(invalid)?;
        Self::bind_endpoint(&ep).await
    }

    /// Binds a parsed [`ServerEndpoint`] with the default [`ListenOptions`].
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use weft_core::{listener::Listener, ServerEndpoint};
    /// let dir = tempfile::tempdir()?;
    /// let ep: ServerEndpoint = format!("unix:{}:mode=600", dir.path().join("s").display()).parse().unwrap();
    /// let listener = Listener::bind_endpoint(&ep).await?;
    /// assert_eq!(listener.local_addr().as_path(), Some(dir.path().join("s").as_path()));
    /// drop(listener); // removes the socket file
    /// assert!(!dir.path().join("s").exists());
    /// # Ok(()) }
    /// ```
    pub async fn bind_endpoint(endpoint: &ServerEndpoint) -> io::Result<Listener> {
        Self::bind_with(endpoint, ListenOptions::default()).await
    }

    /// Binds a parsed [`ServerEndpoint`] with `opts`; a backlog given in the endpoint wins
    /// over the one in `opts`.
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use weft_core::{listener::Listener, ListenOptions};
    /// let ep = "tcp:0:interface=127.0.0.1".parse().unwrap();
    /// let listener = Listener::bind_with(&ep, ListenOptions::default().backlog(16)).await?;
    /// assert!(listener.local_addr().as_inet().is_some());
    /// # Ok(()) }
    /// ```
    pub async fn bind_with(endpoint: &ServerEndpoint, opts: ListenOptions) -> io::Result<Listener> {
        match endpoint {
            ServerEndpoint::Tcp {
                addr,
                backlog,
                reuse_port,
            } => {
                let opts = ListenOptions {
                    backlog: backlog.unwrap_or(opts.backlog),
                    reuse_port: opts.reuse_port || *reuse_port,
                    ..opts
                };
                Self::bind_tcp(*addr, opts)
            }
            ServerEndpoint::Proxied { inner, options } => {
                let mut listener = Box::pin(Self::bind_with(inner, opts)).await?;
                let mut setup = listener.setup.as_deref().cloned().unwrap_or_default();
                setup.proxy = Some(options.clone());
                listener.setup = Some(Arc::new(setup));
                Ok(listener)
            }
            ServerEndpoint::Systemd { domain, socket } => {
                match crate::systemd::take(*domain, socket).map_err(io::Error::other)? {
                    crate::systemd::Taken::Tcp(l) => Self::from_std_tcp(l),
                    crate::systemd::Taken::Unix(l) => Self::from_std_unix(l),
                }
            }
            ServerEndpoint::Unix {
                path,
                mode,
                backlog,
            } => {
                let listener = Self::bind_unix(path, backlog.unwrap_or(opts.backlog))?;
                if let Some(mode) = mode {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))?;
                }
                Ok(listener)
            }
            ServerEndpoint::Udp { .. } => Err(invalid(
                "a udp endpoint takes datagrams, not connections: bind a UDP socket",
            )),
            ServerEndpoint::Tls { addr, backlog, tls } => {
                // Certificates first: a bad file is an error before anything is bound.
                let tls = ServerTls::load(tls).map_err(invalid)?;
                let opts = ListenOptions {
                    backlog: backlog.unwrap_or(opts.backlog),
                    ..opts
                };
                let mut listener = Self::bind_tcp(*addr, opts)?;
                listener.setup = Some(Arc::new(Setup {
                    tls: Some(tls),
                    ..Setup::default()
                }));
                Ok(listener)
            }
        }
    }

    /// The TLS configuration of an `ssl:`/`tls:` listener (to
    /// [`reload`](ServerTls::reload) its certificates).
    pub fn tls(&self) -> Option<&ServerTls> {
        self.setup.as_deref().and_then(|s| s.tls.as_ref())
    }

    /// Binds TCP on `addr` (port 0 picks a free port: see [`local_addr`](Self::local_addr)).
    ///
    /// # Errors
    /// Socket creation, option or bind errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use weft_core::{listener::Listener, ListenOptions};
    /// let listener = Listener::bind_tcp("127.0.0.1:0".parse().unwrap(), ListenOptions::default())?;
    /// assert_ne!(listener.local_addr().as_inet().unwrap().port(), 0);
    /// # Ok(()) }
    /// ```
    pub fn bind_tcp(addr: SocketAddr, opts: ListenOptions) -> io::Result<Listener> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(opts.reuse_address)?;
        if opts.reuse_port {
            socket.set_reuseport(true)?;
        }
        socket.bind(addr)?;
        let listener = socket.listen(opts.backlog)?;
        let local = Address::Inet(listener.local_addr()?);
        Ok(Self::new(Socket::Tcp(listener), local, opts.nodelay, None))
    }

    /// Binds a Unix stream socket at `path`. A stale socket file (nothing answers there) is
    /// replaced; the file is removed when the listener is dropped.
    ///
    /// # Errors
    /// Bind errors; `AddrInUse` if `path` exists and is not a socket, or a server answers
    /// there.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use weft_core::listener::Listener;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("echo.sock");
    /// let listener = Listener::bind_unix(&path, 128)?;
    /// let err = Listener::bind_unix(&path, 128).unwrap_err(); // a live server answers there
    /// assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    /// # Ok(()) }
    /// ```
    pub fn bind_unix(path: &Path, backlog: u32) -> io::Result<Listener> {
        use std::os::unix::fs::FileTypeExt;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            // A live server still answers there: do not steal its address.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by another server", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let std_listener = std::os::unix::net::UnixListener::bind(path)?;
        // The file is ours from here on: the listener removes it, even if what follows fails.
        let mut listener = Self::from_std_unix(std_listener)?;
        listener.unlink = Some(path.to_path_buf());
        socket2::SockRef::from(&listener).listen(backlog.min(i32::MAX as u32) as i32)?;
        Ok(listener)
    }

    /// Adopts a listening TCP socket bound elsewhere (inherited from a parent process, or from
    /// systemd): accepted connections get TCP_NODELAY. Needs a tokio runtime.
    ///
    /// # Errors
    /// The socket cannot be made non-blocking or registered with the runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = std_listener.local_addr()?;
    /// let listener = weft_core::listener::Listener::from_std_tcp(std_listener)?;
    /// assert_eq!(listener.local_addr().as_inet(), Some(addr));
    /// # Ok(()) }
    /// ```
    pub fn from_std_tcp(listener: std::net::TcpListener) -> io::Result<Listener> {
        listener.set_nonblocking(true)?;
        let local = Address::Inet(listener.local_addr()?);
        let listener = TcpListener::from_std(listener)?;
        Ok(Self::new(Socket::Tcp(listener), local, true, None))
    }

    /// Adopts a listening Unix stream socket bound elsewhere; its file is left alone when the
    /// listener is dropped. Needs a tokio runtime.
    ///
    /// # Errors
    /// The socket cannot be made non-blocking or registered with the runtime.
    ///
    /// See [`from_std_tcp`](Self::from_std_tcp) for the TCP form.
    pub fn from_std_unix(listener: std::os::unix::net::UnixListener) -> io::Result<Listener> {
        listener.set_nonblocking(true)?;
        let local = Address::Unix(listener.local_addr()?.as_pathname().map(Path::to_path_buf));
        let listener = UnixListener::from_std(listener)?;
        Ok(Self::new(Socket::Unix(listener), local, false, None))
    }

    /// Sets whether accepted TCP connections get TCP_NODELAY (no effect on Unix sockets).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mut listener = weft_core::listener::Listener::bind("tcp:0:interface=127.0.0.1").await?;
    /// listener.set_nodelay(false);
    /// # Ok(()) }
    /// ```
    pub fn set_nodelay(&mut self, on: bool) {
        self.nodelay = on;
    }

    fn new(socket: Socket, local: Address, nodelay: bool, setup: Option<Setup>) -> Self {
        Self {
            socket,
            local,
            nodelay,
            setup: setup.map(Arc::new),
            unlink: None,
            pauses: Mutex::new(Pauses::default()),
        }
    }

    /// The address actually bound (with the real port when 0 was asked for).
    ///
    /// See the [module documentation](self) for an example.
    pub fn local_addr(&self) -> &Address {
        &self.local
    }

    /// The next connection.
    ///
    /// Errors that concern one connection (reset or aborted before it was accepted) are
    /// skipped. When descriptors or memory run out (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`)
    /// it backs off 100 ms and tries again, until it succeeds: the first such pause is logged
    /// as an error, the following ones are summarised every 10 s ("accept paused N times in
    /// the last 10 s") instead of one line each.
    ///
    /// Cancel safe: dropping the future loses no connection.
    ///
    /// # Errors
    /// Only errors that mean the listening socket itself is unusable (`EBADF`, `EINVAL`,
    /// `ENOTSOCK`).
    ///
    /// See the [module documentation](self) for an example.
    pub async fn accept(&self) -> io::Result<Incoming> {
        loop {
            let due = self.pauses().summary_due();
            let accepted = match due {
                Some(at) => tokio::select! {
                    r = self.accept_raw() => r,
                    _ = tokio::time::sleep_until(at) => {
                        self.pauses().flush(Instant::now());
                        continue;
                    }
                },
                None => self.accept_raw().await,
            };
            match accepted {
                Ok((stream, peer)) => {
                    self.pauses().flush_if_due(Instant::now());
                    return Ok(Incoming {
                        stream,
                        peer,
                        host: self.local.clone(),
                        setup: self.setup.clone(),
                    });
                }
                Err(e) => match classify(&e) {
                    AcceptError::OneConnection => {
                        tracing::debug!(error = %e, "accept failed for one connection");
                    }
                    AcceptError::Resources => {
                        metrics::counter!(crate::policies::names::ACCEPT_PAUSES).increment(1);
                        self.pauses().paused(Instant::now(), &e);
                        tokio::time::sleep(BACKOFF).await;
                    }
                    AcceptError::Fatal => return Err(e),
                },
            }
        }
    }

    fn pauses(&self) -> std::sync::MutexGuard<'_, Pauses> {
        self.pauses.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn accept_raw(&self) -> io::Result<(Stream, Address)> {
        match &self.socket {
            Socket::Tcp(l) => {
                let (s, a) = l.accept().await?;
                if self.nodelay {
                    let _ = s.set_nodelay(true);
                }
                Ok((Stream::Tcp(s), Address::Inet(a)))
            }
            Socket::Unix(l) => {
                let (s, a) = l.accept().await?;
                Ok((Stream::Unix(s), Address::from_unix(&a)))
            }
        }
    }
}

/// Adopts a bound tokio listener (accepted connections get TCP_NODELAY).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let tokio_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = tokio_listener.local_addr()?;
/// let listener = weft_core::listener::Listener::from(tokio_listener);
/// assert_eq!(listener.local_addr().as_inet(), Some(addr));
/// # Ok(()) }
/// ```
impl From<TcpListener> for Listener {
    fn from(listener: TcpListener) -> Self {
        let local = listener
            .local_addr()
            .map(Address::Inet)
            .unwrap_or(Address::Unix(None));
        Self::new(Socket::Tcp(listener), local, true, None)
    }
}

/// Adopts a bound tokio Unix listener; its file is left alone when the listener is dropped.
///
/// See the [`TcpListener` form](#impl-From%3CTcpListener%3E-for-Listener) for an example.
impl From<UnixListener> for Listener {
    fn from(listener: UnixListener) -> Self {
        let local = listener
            .local_addr()
            .map(|a| Address::from_unix(&a))
            .unwrap_or(Address::Unix(None));
        Self::new(Socket::Unix(listener), local, false, None)
    }
}

enum AcceptError {
    /// The connection went away before it was accepted, or the network refused it: go on.
    OneConnection,
    /// Out of descriptors or memory: back off, serving resumes when they free up.
    Resources,
    /// The listening socket itself is unusable.
    Fatal,
}

fn classify(e: &io::Error) -> AcceptError {
    use io::ErrorKind as K;
    match e.raw_os_error() {
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EFAULT) => AcceptError::Fatal,
        // Linux hands over network errors pending on the new socket: retry at once.
        Some(
            libc::EPROTO
            | libc::ENOPROTOOPT
            | libc::ENETDOWN
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ETIMEDOUT
            | libc::EPERM,
        ) => AcceptError::OneConnection,
        _ if matches!(
            e.kind(),
            K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset | K::Interrupted
        ) =>
        {
            AcceptError::OneConnection
        }
        // EMFILE, ENFILE, ENOBUFS, ENOMEM, and anything unforeseen: backing off never spins.
        _ => AcceptError::Resources,
    }
}

/// What the log says about accept pauses: the first of a run at once, then one summary per
/// 10 s while they go on (issue 11 item 14: not one line every 100 ms).
#[derive(Debug, Default)]
struct Pauses {
    /// Start of the current summary window, and pauses counted in it.
    window: Option<(Instant, u32)>,
}

/// A line [`Pauses`] asks to log.
#[derive(Debug, PartialEq, Eq)]
enum PauseLog {
    /// The first pause of a run.
    First,
    /// `count` pauses in the window of `secs` seconds that just ended.
    Summary { count: u32, secs: u64 },
}

impl Pauses {
    /// Records a pause at `now`; returns what to log.
    fn pause(&mut self, now: Instant) -> Option<PauseLog> {
        match &mut self.window {
            None => {
                self.window = Some((now, 1));
                Some(PauseLog::First)
            }
            Some((start, count)) if now.duration_since(*start) >= SUMMARY_EVERY => {
                let line = Self::summary(*start, *count, now);
                // The window goes on: this pause opens the next one.
                self.window = Some((now, 1));
                line
            }
            Some((_, count)) => {
                *count += 1;
                None
            }
        }
    }

    /// Ends a window that is over (or none); returns its summary.
    fn end(&mut self, now: Instant) -> Option<PauseLog> {
        match self.window {
            Some((start, count)) if now.duration_since(start) >= SUMMARY_EVERY => {
                self.window = None;
                Self::summary(start, count, now)
            }
            _ => None,
        }
    }

    /// A window holding only its first pause (already logged) needs no summary.
    fn summary(start: Instant, count: u32, now: Instant) -> Option<PauseLog> {
        (count > 1).then(|| PauseLog::Summary {
            count,
            secs: now.duration_since(start).as_secs(),
        })
    }

    fn summary_due(&self) -> Option<Instant> {
        self.window.map(|(start, _)| start + SUMMARY_EVERY)
    }

    fn paused(&mut self, now: Instant, e: &io::Error) {
        match self.pause(now) {
            Some(PauseLog::First) => {
                tracing::error!(error = %e, "accept failed; backing off 100 ms at a time (summarised every 10 s)");
            }
            Some(line) => Self::log(line),
            None => {}
        }
    }

    fn flush_if_due(&mut self, now: Instant) {
        if self.window.is_some() {
            self.flush(now);
        }
    }

    fn flush(&mut self, now: Instant) {
        if let Some(line) = self.end(now) {
            Self::log(line);
        }
    }

    fn log(line: PauseLog) {
        if let PauseLog::Summary { count, secs } = line {
            tracing::warn!("accept paused {count} times in the last {secs} s");
        }
    }
}

/// An accepted connection whose per-connection setup has not run yet (from
/// [`Listener::accept`]).
///
/// See the [module documentation](self) for an example.
#[derive(Debug)]
pub struct Incoming {
    stream: Stream,
    peer: Address,
    host: Address,
    setup: Option<Arc<Setup>>,
}

impl Incoming {
    /// The peer of the socket (before any PROXY header is read).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let listener = weft_core::listener::Listener::bind("tcp:0:interface=127.0.0.1").await?;
    /// let client = tokio::net::TcpStream::connect(listener.local_addr().as_inet().unwrap()).await?;
    /// let incoming = listener.accept().await?;
    /// assert_eq!(incoming.peer().as_inet(), Some(client.local_addr()?));
    /// assert!(!incoming.needs_setup()); // plain tcp
    /// # Ok(()) }
    /// ```
    pub fn peer(&self) -> &Address {
        &self.peer
    }

    /// True if [`establish`](Self::establish) has work to do (a PROXY header, a TLS
    /// handshake); false for plain tcp/unix, where
    /// [`established_now`](Self::established_now) succeeds.
    ///
    /// See [`peer`](Self::peer) for an example.
    pub fn needs_setup(&self) -> bool {
        self.setup.is_some()
    }

    /// Runs the endpoint's per-connection setup (PROXY header, TLS handshake; nothing for
    /// plain tcp/unix), bounded by its timeouts. Call it in the connection's own task, so a
    /// slow client never stalls the accept loop.
    ///
    /// # Errors
    /// The setup failed (a malformed PROXY header, a failed handshake, its timeout).
    ///
    /// See the [module documentation](self) for an example.
    pub async fn establish(self) -> io::Result<Established> {
        match self.established_now() {
            Ok(established) => Ok(established),
            Err(incoming) => {
                let setup = incoming.setup.clone().expect("needs setup");
                setup.run(incoming).await
            }
        }
    }

    /// The connection at once when the endpoint has no per-connection setup (plain
    /// tcp/unix: what the reactor's fast path uses); otherwise the `Incoming` back, for
    /// [`establish`](Self::establish).
    ///
    /// # Errors
    /// Gives `self` back when there is setup to run.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("s");
    /// let listener = weft_core::listener::Listener::bind_unix(&path, 16)?;
    /// let _client = tokio::net::UnixStream::connect(&path).await?;
    /// let conn = listener.accept().await?.established_now().expect("plain unix");
    /// assert!(matches!(conn.stream, weft_core::listener::Stream::Unix(_)));
    /// assert_eq!(conn.host.as_path(), Some(path.as_path()));
    /// # Ok(()) }
    /// ```
    #[allow(clippy::result_large_err)] // the error is `self`, handed back
    pub fn established_now(self) -> Result<Established, Incoming> {
        if self.setup.is_some() {
            return Err(self);
        }
        Ok(Established {
            stream: self.stream,
            socket_peer: self.peer.clone(),
            socket_host: self.host.clone(),
            peer: self.peer,
            host: self.host,
            proxy: None,
        })
    }
}

/// The per-connection work of an endpoint kind, shared by every connection of one
/// [`Listener`]: a struct of optional layers, run in order: the PROXY header first, read in
/// clear (what HAProxy's `send-proxy` sends before the TLS handshake), then TLS. So
/// `haproxy:` composes with whatever it wraps. Plain tcp/unix have none (`Listener::setup` is
/// `None`).
#[derive(Debug, Clone, Default)]
struct Setup {
    /// `haproxy:`: a PROXY protocol header before anything else.
    proxy: Option<ProxyOptions>,
    /// `ssl:`/`tls:`: the TLS handshake, bounded by the handshake timeout.
    tls: Option<ServerTls>,
}

impl Setup {
    /// Turns an accepted connection into an established one.
    async fn run(&self, incoming: Incoming) -> io::Result<Established> {
        let Incoming {
            stream, peer, host, ..
        } = incoming;
        let mut conn = Established {
            stream,
            socket_peer: peer.clone(),
            socket_host: host.clone(),
            peer,
            host,
            proxy: None,
        };
        if let Some(opts) = &self.proxy {
            let header = match &mut conn.stream {
                Stream::Tcp(s) => crate::proxy::read_header(s, &conn.socket_peer, opts).await,
                Stream::Unix(s) => crate::proxy::read_header(s, &conn.socket_peer, opts).await,
                // The PROXY layer runs first, on the raw socket: TLS comes after it.
                Stream::Tls(_) => return Err(invalid("a PROXY header is read before TLS")),
            }
            .map_err(|e| {
                use crate::proxy::ProxyError as E;
                let kind = match e {
                    E::Timeout(_) => io::ErrorKind::TimedOut,
                    E::Untrusted(_) => io::ErrorKind::PermissionDenied,
                    E::Truncated(_) => io::ErrorKind::UnexpectedEof,
                    _ => io::ErrorKind::InvalidData,
                };
                io::Error::new(kind, e)
            })?;
            // LOCAL (a health check) and UNKNOWN keep the socket's own addresses.
            if let Some(source) = &header.source {
                conn.peer = source.clone();
            }
            if let Some(destination) = &header.destination {
                conn.host = destination.clone();
            }
            conn.proxy = Some(header);
        }
        if let Some(tls) = &self.tls {
            let Stream::Tcp(tcp) = conn.stream else {
                return Err(invalid("TLS runs over TCP only"));
            };
            let timeout = tls.options().handshake_timeout;
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            let stream = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("TLS handshake not finished after {timeout:?}"),
                    ));
                }
            };
            conn.stream = Stream::Tls(Box::new(stream));
        }
        Ok(conn)
    }
}

/// A connection ready to carry the protocol's bytes (from [`Incoming::establish`]).
///
/// See the [module documentation](self) for an example.
#[derive(Debug)]
#[non_exhaustive]
pub struct Established {
    /// The byte stream.
    pub stream: Stream,
    /// The client: the socket's peer, or the client a PROXY header names.
    pub peer: Address,
    /// The local address the client reached.
    pub host: Address,
    /// The socket's own peer (a proxy's address when a PROXY header named another client).
    pub socket_peer: Address,
    /// The socket's own local address (the header's destination is in `host`).
    pub socket_host: Address,
    /// The PROXY header the connection started with (`haproxy:` endpoints), TLVs included.
    pub proxy: Option<ProxyHeader>,
}

/// The byte stream of an [`Established`] connection: `AsyncRead + AsyncWrite` whatever the
/// endpoint kind (TLS adds a variant).
///
/// See [`Incoming::established_now`] for an example.
#[derive(Debug)]
#[non_exhaustive]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix stream connection.
    Unix(UnixStream),
    /// TLS over TCP (`ssl:`, `tls:`), handshake done; boxed (rustls' state is large).
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
            Stream::Tls(s) => s.get_ref().0.as_fd(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_pauses_logs_the_first_then_one_summary_per_window() {
        let t0 = Instant::now();
        let mut p = Pauses::default();
        assert_eq!(p.pause(t0), Some(PauseLog::First));
        // 100 pauses 100 ms apart: nothing more until the window is over.
        let mut logged = Vec::new();
        for i in 1..=100u64 {
            logged.extend(p.pause(t0 + Duration::from_millis(100 * i)));
        }
        assert_eq!(
            logged,
            [PauseLog::Summary {
                count: 100,
                secs: 10
            }]
        );
        assert_eq!(p.summary_due(), Some(t0 + Duration::from_secs(20)));
        // Accepting again before that window is over says nothing; once over, the summary.
        assert_eq!(p.end(t0 + Duration::from_secs(15)), None);
        p.pause(t0 + Duration::from_millis(10_100));
        assert_eq!(
            p.end(t0 + Duration::from_secs(21)),
            Some(PauseLog::Summary { count: 2, secs: 11 })
        );
        // The next run starts with a first line again.
        assert_eq!(p.pause(t0 + Duration::from_secs(30)), Some(PauseLog::First));
    }

    #[test]
    fn a_single_pause_needs_no_summary() {
        let t0 = Instant::now();
        let mut p = Pauses::default();
        assert_eq!(p.pause(t0), Some(PauseLog::First));
        assert_eq!(p.end(t0 + Duration::from_secs(11)), None);
        assert_eq!(p.summary_due(), None);
    }

    #[test]
    fn accept_errors_are_classified() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert!(matches!(classify(&e(libc::EMFILE)), AcceptError::Resources));
        assert!(matches!(classify(&e(libc::ENFILE)), AcceptError::Resources));
        assert!(matches!(
            classify(&e(libc::ENOBUFS)),
            AcceptError::Resources
        ));
        assert!(matches!(classify(&e(libc::ENOMEM)), AcceptError::Resources));
        assert!(matches!(
            classify(&e(libc::ECONNABORTED)),
            AcceptError::OneConnection
        ));
        assert!(matches!(
            classify(&e(libc::EPROTO)),
            AcceptError::OneConnection
        ));
        assert!(matches!(classify(&e(libc::EBADF)), AcceptError::Fatal));
    }
}
