//! The [`Reactor`]: listen, connect, timers, and graceful shutdown.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpStream, UnixStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::driver::{Driver, Hub, Spanned, Spawn};
use crate::endpoint::{ClientEndpoint, ServerEndpoint};
use crate::factory::FactoryUse;
use crate::listener::{Established, ListenOptions, Listener, Stream};
use crate::protocol::Conn;
use crate::shutdown::ShutdownHandle;
use crate::transport::Origin;
use crate::{
    Address, Backoff, ClientFactory, DisconnectReason, Factory, Transport, TransportHandle,
};

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// Default time connections get to drain at shutdown before they are aborted (5 s); see
/// [`Reactor::set_drain_timeout`].
///
/// ```
/// assert_eq!(weft_core::DEFAULT_DRAIN_TIMEOUT.as_secs(), 5);
/// ```
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

struct Inner {
    /// Stops accept loops, UDP ports and pending calls.
    shutdown: CancellationToken,
    /// Tells connections to close, then to abort.
    hub: Arc<Hub>,
    /// What `stop` asks and `run` waits for.
    stop: ShutdownHandle,
    tracker: TaskTracker,
    drain: Mutex<Duration>,
    signals_installed: std::sync::atomic::AtomicBool,
}

/// Runs protocols: listen and connect over TCP, UDP and Unix sockets, timers, and a graceful
/// shutdown (Twisted's reactor, as a cheap cloneable handle on the current tokio runtime).
///
/// Every connection runs on its own tokio task inside a `tracing` span carrying its connection
/// id and peer address. [`run`](Self::run) serves until Ctrl-C, SIGTERM or [`stop`](Self::stop),
/// then shuts down: stop accepting, ask every connection to close after flushing its output,
/// wait up to the drain timeout, abort the rest; every protocol gets `connection_lost` once.
///
/// ```
/// use weft_core::{factory_fn, Protocol, Reactor, Transport};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
///         t.write(data);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let reactor = Reactor::new();
/// let port = reactor.listen_tcp("127.0.0.1:0", factory_fn(|_| Some(Echo))).await?;
///
/// let addr = port.local_addr().as_inet().expect("a TCP port");
/// let mut client = tokio::net::TcpStream::connect(addr).await?;
/// client.write_all(b"hello").await?;
/// let mut buf = [0; 5];
/// client.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"hello");
///
/// reactor.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Reactor {
    inner: Arc<Inner>,
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("stopping", &self.inner.shutdown.is_cancelled())
            .field("tasks", &self.inner.tracker.len())
            .finish()
    }
}

impl Default for Reactor {
    fn default() -> Self {
        Self::new()
    }
}

impl Reactor {
    /// A new reactor on the current tokio runtime.
    ///
    /// See [`Reactor`] for an example.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                shutdown: CancellationToken::new(),
                hub: Arc::new(Hub::default()),
                stop: ShutdownHandle::default(),
                tracker: TaskTracker::new(),
                drain: Mutex::new(DEFAULT_DRAIN_TIMEOUT),
                signals_installed: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Sets how long connections get to flush and close at shutdown before being aborted.
    ///
    /// ```
    /// let reactor = weft_core::Reactor::new();
    /// reactor.set_drain_timeout(std::time::Duration::from_secs(1));
    /// ```
    pub fn set_drain_timeout(&self, d: Duration) {
        *self.inner.drain.lock().unwrap_or_else(|e| e.into_inner()) = d;
    }

    /// Number of live connections, ports and timers.
    ///
    /// ```
    /// assert_eq!(weft_core::Reactor::new().active_tasks(), 0);
    /// ```
    pub fn active_tasks(&self) -> usize {
        self.inner.tracker.len()
    }

    /// Listens on a Twisted-style endpoint string (`tcp:1234:interface=127.0.0.1`,
    /// `unix:/tmp/sock:mode=600`) or a plain form (`127.0.0.1:1234`, `:1234`, `/tmp/sock`);
    /// see [`ServerEndpoint`].
    ///
    /// # Errors
    /// A malformed endpoint (as `InvalidInput`, with the parser's message), or the bind error.
    ///
    /// ```
    /// # use weft_core::{factory_fn, Protocol, Reactor, Transport};
    /// # struct Echo;
    /// # impl Protocol for Echo { fn data_received(&mut self, d: &[u8], t: &mut Transport) { t.write(d) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let reactor = Reactor::new();
    /// let port = reactor.listen("tcp:0:interface=127.0.0.1", factory_fn(|_| Some(Echo))).await?;
    /// assert_ne!(port.local_addr().as_inet().unwrap().port(), 0);
    /// # Ok(()) }
    /// ```
    pub async fn listen<F: Factory>(
        &self,
        endpoint: &str,
        factory: F,
    ) -> io::Result<ListeningPort> {
        let ep: ServerEndpoint = endpoint.parse().map_err(io::Error::from)?;
        self.listen_endpoint(&ep, factory).await
    }

    /// Listens on a parsed [`ServerEndpoint`] (TCP or Unix).
    ///
    /// # Errors
    /// The bind error; `InvalidInput` for a UDP endpoint (use [`listen_udp`](Self::listen_udp)).
    ///
    /// ```
    /// # use weft_core::{factory_fn, Protocol, Reactor, ServerEndpoint, Transport};
    /// # struct Echo;
    /// # impl Protocol for Echo { fn data_received(&mut self, d: &[u8], t: &mut Transport) { t.write(d) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let ep: ServerEndpoint = "tcp:0:interface=127.0.0.1".parse().unwrap();
    /// let port = Reactor::new().listen_endpoint(&ep, factory_fn(|_| Some(Echo))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn listen_endpoint<F: Factory>(
        &self,
        endpoint: &ServerEndpoint,
        factory: F,
    ) -> io::Result<ListeningPort> {
        let listener = Listener::bind_endpoint(endpoint).await?;
        Ok(self.serve(listener, factory))
    }

    /// Listens for TCP connections on `addr` (port 0 picks a free port: see
    /// [`ListeningPort::local_addr`]).
    ///
    /// # Errors
    /// Address resolution or bind errors.
    ///
    /// See [`Reactor`] for an example.
    pub async fn listen_tcp<F: Factory>(
        &self,
        addr: impl tokio::net::ToSocketAddrs,
        factory: F,
    ) -> io::Result<ListeningPort> {
        let addr = tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on")
        })?;
        self.listen_tcp_with(addr, ListenOptions::default(), factory)
            .await
    }

    /// Listens for TCP connections on `addr` with explicit [`ListenOptions`].
    ///
    /// # Errors
    /// Socket creation or bind errors.
    ///
    /// ```
    /// # use weft_core::{factory_fn, ListenOptions, Protocol, Reactor, Transport};
    /// # struct Echo;
    /// # impl Protocol for Echo { fn data_received(&mut self, d: &[u8], t: &mut Transport) { t.write(d) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opts = ListenOptions::default().backlog(16);
    /// let port = Reactor::new()
    ///     .listen_tcp_with("127.0.0.1:0".parse().unwrap(), opts, factory_fn(|_| Some(Echo)))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn listen_tcp_with<F: Factory>(
        &self,
        addr: SocketAddr,
        opts: ListenOptions,
        factory: F,
    ) -> io::Result<ListeningPort> {
        Ok(self.serve(Listener::bind_tcp(addr, opts)?, factory))
    }

    /// Listens on a Unix stream socket at `path` (a stale socket file is replaced; the file is
    /// removed when the port stops).
    ///
    /// # Errors
    /// Bind errors; `AddrInUse` if `path` exists and is not a socket.
    ///
    /// ```
    /// # use weft_core::{factory_fn, Protocol, Reactor, Transport};
    /// # struct Echo;
    /// # impl Protocol for Echo { fn data_received(&mut self, d: &[u8], t: &mut Transport) { t.write(d) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("echo.sock");
    /// let port = Reactor::new().listen_unix(&path, factory_fn(|_| Some(Echo))).await?;
    /// assert!(path.exists());
    /// port.stop_listening().await;
    /// assert!(!path.exists());
    /// # Ok(()) }
    /// ```
    pub async fn listen_unix<F: Factory>(
        &self,
        path: impl AsRef<Path>,
        factory: F,
    ) -> io::Result<ListeningPort> {
        let listener = Listener::bind_unix(path.as_ref(), ListenOptions::default().backlog)?;
        Ok(self.serve(listener, factory))
    }

    /// Serves connections from `listener` (bound by weft-core's [`Listener`], any endpoint
    /// kind) with `factory`'s protocols: the listener form of [`listen`](Self::listen).
    ///
    /// ```
    /// # use weft_core::{factory_fn, listener::Listener, Protocol, Reactor, Transport};
    /// # struct Echo;
    /// # impl Protocol for Echo { fn data_received(&mut self, d: &[u8], t: &mut Transport) { t.write(d) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let listener = Listener::bind("tcp:0:interface=127.0.0.1").await?;
    /// let port = Reactor::new().serve(listener, factory_fn(|_| Some(Echo)));
    /// assert!(port.local_addr().as_inet().is_some());
    /// # Ok(()) }
    /// ```
    pub fn serve<F: Factory>(&self, listener: Listener, factory: F) -> ListeningPort {
        let local = listener.local_addr().clone();
        let tls = listener.tls().cloned();
        tracing::info!(addr = %local, "listening");
        let stop = CancellationToken::new();
        let reactor = self.clone();
        let use_ = FactoryUse::new(Arc::new(factory));
        let stop2 = stop.clone();
        let span = tracing::info_span!("listen", addr = %local);
        let task = self.inner.tracker.spawn(
            async move {
                reactor.accept_loop(listener, &stop2, &use_).await;
                drop(use_);
            }
            .instrument(span),
        );
        ListeningPort {
            local,
            stop,
            task: Some(task),
            tls,
        }
    }

    /// The one accept loop: plain connections get their driver spawned on the raw socket at
    /// once; connections whose endpoint has per-connection setup are established in a task of
    /// their own first, so a slow client never stalls accepting.
    async fn accept_loop<F: Factory>(
        &self,
        listener: Listener,
        stop: &CancellationToken,
        use_: &FactoryUse<F>,
    ) {
        let shutdown = self.inner.shutdown.clone();
        loop {
            let incoming = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = shutdown.cancelled() => break,
                r = listener.accept() => r,
            };
            let incoming = match incoming {
                Ok(incoming) => incoming,
                Err(e) => {
                    tracing::error!(error = %e, "listening socket failed; stopped accepting");
                    break;
                }
            };
            match incoming.established_now() {
                Ok(conn) => self.spawn_established(conn, use_.factory()),
                Err(incoming) => {
                    let reactor = self.clone();
                    let factory = use_.factory().clone();
                    let shutdown = shutdown.clone();
                    self.inner.tracker.spawn(async move {
                        let peer = incoming.peer().clone();
                        let conn = tokio::select! {
                            _ = shutdown.cancelled() => return,
                            r = incoming.establish() => r,
                        };
                        match conn {
                            Ok(conn) => reactor.spawn_established(conn, &factory),
                            Err(e) => tracing::debug!(%peer, error = %e, "connection setup failed"),
                        }
                    });
                }
            }
        }
        drop(listener);
        tracing::info!("stopped listening");
    }

    fn spawn_established<F: Factory>(&self, conn: Established, factory: &Arc<F>) {
        let Established {
            stream,
            peer,
            host,
            socket_peer,
            socket_host,
            proxy,
            ..
        } = conn;
        // Only a connection that came through a PROXY header carries where it really came
        // from (boxed: the others pay one pointer).
        let origin = proxy.map(|proxy| {
            Box::new(Origin {
                socket_peer,
                socket_host,
                proxy,
            })
        });
        let _ = match stream {
            Stream::Tcp(s) => self.spawn_connection(s, peer, host, origin, factory, false),
            Stream::Unix(s) => self.spawn_connection(s, peer, host, origin, factory, false),
            Stream::Tls(s) => {
                // The handshake is done: the connection runs on the same driver as plain TCP,
                // over the TLS stream's socket operations.
                let (tcp, conn) = s.into_inner();
                let socket = crate::tls_io::TlsSocket::new(tcp, conn, None);
                self.spawn_connection(socket, peer, host, origin, factory, false)
            }
        };
    }

    fn spawn_connection<S: Spawn, F: Factory>(
        &self,
        stream: S,
        peer: Address,
        host: Address,
        origin: Option<Box<Origin>>,
        factory: &Arc<F>,
        with_handle: bool,
    ) -> Option<(JoinHandle<DisconnectReason>, Option<TransportHandle>)> {
        let protocol = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            factory.build_protocol(&peer)
        })) {
            Ok(Some(p)) => p,
            Ok(None) => {
                tracing::debug!(%peer, "factory refused the connection");
                return None;
            }
            Err(payload) => {
                let msg = crate::reason::panic_message(payload.as_ref());
                tracing::error!(%peer, panic = %msg, "build_protocol panicked; connection refused");
                return None;
            }
        };
        let id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("conn", id, peer = %peer);
        let mut transport = Transport::new(id, peer, host);
        transport.origin = origin;
        let handle = with_handle.then(|| transport.handle());
        let conn = Conn::new(protocol, transport);
        let driver = Driver::new(stream, conn, self.inner.hub.clone());
        let task = self
            .inner
            .tracker
            .spawn(Spanned::new(S::task(driver), span));
        Some((task, handle))
    }

    /// Connects over TCP to `addr` (with a connect `timeout`), builds the protocol with
    /// `factory` and runs it. The factory's `client_connection_failed` or, later,
    /// `client_connection_lost` is called.
    ///
    /// # Errors
    /// Resolution, connect and timeout errors (`TimedOut`); `ConnectionRefused` if the factory
    /// built no protocol.
    ///
    /// ```
    /// # use weft_core::{factory_fn, Protocol, Reactor, Transport};
    /// # use std::time::Duration;
    /// struct Hello;
    /// impl Protocol for Hello {
    ///     fn connection_made(&mut self, t: &mut Transport) {
    ///         t.write("hello\n");
    ///         t.lose_connection();
    ///     }
    ///     fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let reactor = Reactor::new();
    /// let conn = reactor
    ///     .connect_tcp(listener.local_addr()?, factory_fn(|_| Some(Hello)), Duration::from_secs(5))
    ///     .await?;
    /// let (_server_side, _) = listener.accept().await?;
    /// assert!(conn.closed().await.is_clean());
    /// # Ok(()) }
    /// ```
    pub async fn connect_tcp<F: ClientFactory>(
        &self,
        addr: impl tokio::net::ToSocketAddrs,
        factory: F,
        timeout: Duration,
    ) -> io::Result<Connection> {
        let factory = Arc::new(factory);
        let use_ = FactoryUse::new(factory.clone());
        let (stream, target_addr) =
            dial(&*factory, addr, timeout, "connect", TcpStream::connect).await?;
        let _ = stream.set_nodelay(true);
        let host = Address::Inet(stream.local_addr()?);
        self.client_connection(stream, target_addr, host, use_)
    }

    /// Connects over TLS to `addr`, verifying the server's certificate for `server_name`
    /// with `config` (see [`ClientTlsOptions::config`](crate::tls::ClientTlsOptions::config));
    /// the protocol is built once the handshake is done, and sees what it negotiated in
    /// [`Transport::tls`]. `timeout` bounds the connect and the handshake together.
    ///
    /// # Errors
    /// As [`connect_tcp`](Self::connect_tcp); a failed handshake is an `InvalidData` error
    /// carrying the [`rustls::Error`] (an unknown issuer, a name mismatch, the server's alert).
    ///
    /// ```no_run
    /// # use weft_core::{factory_fn, Protocol, Reactor, Transport};
    /// # use std::time::Duration;
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = weft_core::tls::ClientTlsOptions::default().config()?; // the system's roots
    /// let conn = Reactor::new()
    ///     .connect_tls("example.com:443", "example.com", config, factory_fn(|_| Some(P)), Duration::from_secs(10))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_tls<F: ClientFactory>(
        &self,
        addr: impl tokio::net::ToSocketAddrs,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
        factory: F,
        timeout: Duration,
    ) -> io::Result<Connection> {
        let factory = Arc::new(factory);
        let use_ = FactoryUse::new(factory.clone());
        let (tls, target_addr) = dial(&*factory, addr, timeout, "TLS connect", |target| {
            crate::tls::connect_stream(target, server_name, config)
        })
        .await?;
        let (tcp, conn) = tls.into_inner();
        let host = Address::Inet(tcp.local_addr()?);
        let socket = crate::tls_io::TlsSocket::new(tcp, conn, Some(server_name.to_owned()));
        self.client_connection(socket, target_addr, host, use_)
    }

    /// Connects to a Unix stream socket at `path`; see [`connect_tcp`](Self::connect_tcp).
    ///
    /// # Errors
    /// Connect errors; `ConnectionRefused` if the factory built no protocol.
    ///
    /// ```no_run
    /// # use weft_core::{factory_fn, Protocol, Reactor, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// # async fn f() -> std::io::Result<()> {
    /// let conn = Reactor::new().connect_unix("/tmp/weft.sock", factory_fn(|_| Some(P))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_unix<F: ClientFactory>(
        &self,
        path: impl AsRef<Path>,
        factory: F,
    ) -> io::Result<Connection> {
        let factory = Arc::new(factory);
        let use_ = FactoryUse::new(factory.clone());
        let target = Address::Unix(Some(path.as_ref().to_path_buf()));
        factory.started_connecting(&target);
        let stream = match UnixStream::connect(path.as_ref()).await {
            Ok(s) => s,
            Err(e) => {
                factory.client_connection_failed(&target, &e);
                return Err(e);
            }
        };
        let host = stream
            .local_addr()
            .map(|a| Address::from_unix(&a))
            .unwrap_or(Address::Unix(None));
        self.client_connection(stream, target, host, use_)
    }

    /// Connects to a parsed [`ClientEndpoint`].
    ///
    /// # Errors
    /// As [`connect_tcp`](Self::connect_tcp) and [`connect_unix`](Self::connect_unix).
    ///
    /// ```no_run
    /// # use weft_core::{factory_fn, ClientEndpoint, Protocol, Reactor, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// # async fn f() -> std::io::Result<()> {
    /// let ep: ClientEndpoint = "tcp:host=127.0.0.1:port=1234:timeout=5".parse().unwrap();
    /// let conn = Reactor::new().connect(&ep, factory_fn(|_| Some(P))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect<F: ClientFactory>(
        &self,
        endpoint: &ClientEndpoint,
        factory: F,
    ) -> io::Result<Connection> {
        match endpoint {
            ClientEndpoint::Tcp {
                host,
                port,
                timeout,
            } => {
                self.connect_tcp((host.as_str(), *port), factory, *timeout)
                    .await
            }
            ClientEndpoint::Unix { path, timeout } => {
                match tokio::time::timeout(*timeout, self.connect_unix(path, factory)).await {
                    Ok(r) => r,
                    Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
                }
            }
            ClientEndpoint::Tls {
                host, timeout, tls, ..
            } => {
                let config = tls
                    .config()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                match endpoint.tcp_target() {
                    Some(target) => {
                        self.connect_tls(target, host, config, factory, *timeout)
                            .await
                    }
                    None => {
                        self.connect_tls_unix(endpoint, host, config, factory, *timeout)
                            .await
                    }
                }
            }
        }
    }

    /// `tls:HOST:PORT:endpoint=unix\:/path`: TLS over a Unix socket, verifying HOST.
    async fn connect_tls_unix<F: ClientFactory>(
        &self,
        endpoint: &ClientEndpoint,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
        factory: F,
        timeout: Duration,
    ) -> io::Result<Connection> {
        let Some(ClientEndpoint::Unix { path, .. }) = (match endpoint {
            ClientEndpoint::Tls { via, .. } => via.as_deref(),
            _ => None,
        }) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a tls: endpoint through a Unix socket",
            ));
        };
        let factory = Arc::new(factory);
        let use_ = FactoryUse::new(factory.clone());
        let target = Address::Unix(Some(path.clone()));
        let attempt = async {
            let unix = UnixStream::connect(path).await?;
            crate::tls::client_handshake(unix, server_name, config).await
        };
        let tls = dial_to(&*factory, &target, timeout, "TLS connect", attempt).await?;
        let (unix, conn) = tls.into_inner();
        let host = unix
            .local_addr()
            .map(|a| Address::from_unix(&a))
            .unwrap_or(Address::Unix(None));
        let socket = crate::tls_io::TlsSocket::new(unix, conn, Some(server_name.to_owned()));
        self.client_connection(socket, target, host, use_)
    }

    fn client_connection<S: Spawn, F: ClientFactory>(
        &self,
        stream: S,
        peer: Address,
        host: Address,
        use_: FactoryUse<F>,
    ) -> io::Result<Connection> {
        let factory = use_.factory().clone();
        let Some((task, handle)) =
            self.spawn_connection(stream, peer.clone(), host.clone(), None, &factory, true)
        else {
            let e = io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "factory built no protocol",
            );
            factory.client_connection_failed(&peer, &e);
            return Err(e);
        };
        let peer2 = peer.clone();
        let done = self.inner.tracker.spawn(async move {
            let reason = task
                .await
                .unwrap_or_else(|e| DisconnectReason::Panicked(e.to_string()));
            factory.client_connection_lost(&peer2, &reason);
            drop(use_);
            reason
        });
        Ok(Connection {
            handle: handle.expect("requested a handle"),
            peer,
            host,
            done,
        })
    }

    /// Connects over TCP and keeps reconnecting with `backoff` whenever the attempt fails or the
    /// connection is lost (Twisted's `ReconnectingClientFactory`). The delay is reset after
    /// every successful connection. Stop it with [`Reconnector::stop_trying`].
    ///
    /// ```
    /// # use weft_core::{factory_fn, Backoff, Protocol, Reactor, Transport};
    /// # use std::time::Duration;
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let reactor = Reactor::new();
    /// let backoff = Backoff::new().initial_delay(Duration::from_millis(10)).max_retries(Some(2));
    /// // Nothing listens on port 1 of localhost: two retries, then it gives up.
    /// let r = reactor.connect_tcp_reconnecting("127.0.0.1:1", factory_fn(|_| Some(P)), backoff, Duration::from_secs(1));
    /// r.finished().await;
    /// # }
    /// ```
    pub fn connect_tcp_reconnecting<F: ClientFactory>(
        &self,
        addr: impl Into<String>,
        factory: F,
        backoff: Backoff,
        timeout: Duration,
    ) -> Reconnector {
        let addr = addr.into();
        let factory: Arc<F> = Arc::new(factory);
        let stop = CancellationToken::new();
        let reset = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reactor = self.clone();
        let (stop2, reset2) = (stop.clone(), reset.clone());
        let task = self.inner.tracker.spawn(async move {
            let mut backoff = backoff;
            let shutdown = reactor.inner.shutdown.clone();
            loop {
                let attempt = tokio::select! {
                    _ = stop2.cancelled() => return,
                    _ = shutdown.cancelled() => return,
                    r = reactor.connect_tcp(addr.as_str(), factory.clone(), timeout) => r,
                };
                if let Ok(conn) = attempt {
                    backoff.reset_delay();
                    tokio::select! {
                        _ = stop2.cancelled() => return,
                        _ = conn.closed() => {}
                    }
                }
                if reset2.swap(false, Ordering::Relaxed) {
                    backoff.reset_delay();
                }
                let Some(delay) = backoff.next_delay() else {
                    tracing::info!(%addr, retries = backoff.retries() - 1, "giving up reconnecting");
                    return;
                };
                tracing::debug!(%addr, ?delay, "reconnecting later");
                tokio::select! {
                    _ = stop2.cancelled() => return,
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        });
        Reconnector { stop, reset, task }
    }

    /// Listens for UDP datagrams on `addr` with one [`DatagramProtocol`](crate::DatagramProtocol).
    ///
    /// # Errors
    /// Bind errors.
    ///
    /// See [`DatagramProtocol`](crate::DatagramProtocol) for an example.
    pub async fn listen_udp<P: crate::DatagramProtocol>(
        &self,
        addr: impl tokio::net::ToSocketAddrs,
        protocol: P,
    ) -> io::Result<crate::UdpPort> {
        crate::udp::listen(self, addr, protocol).await
    }

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Calls `f` after `delay` on the runtime (Twisted's `callLater`); cancel it with the
    /// returned [`DelayedCall`]. Pending calls are dropped at shutdown.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let reactor = weft_core::Reactor::new();
    /// let fired = Arc::new(AtomicBool::new(false));
    /// let f = fired.clone();
    /// let call = reactor.call_later(Duration::from_secs(5), move || f.store(true, Ordering::SeqCst));
    /// assert!(call.is_active());
    /// tokio::time::sleep(Duration::from_secs(6)).await;
    /// assert!(fired.load(Ordering::SeqCst));
    /// assert!(!call.is_active());
    /// # }
    /// ```
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + Send + 'static) -> DelayedCall {
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let shutdown = self.inner.shutdown.clone();
        let task = self.inner.tracker.spawn(async move {
            tokio::select! {
                _ = c.cancelled() => {}
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(delay) => f(),
            }
        });
        DelayedCall { cancel, task }
    }

    /// Asks [`run`](Self::run) to return (after its graceful shutdown).
    ///
    /// See [`run`](Self::run).
    pub fn stop(&self) {
        self.inner.stop.request();
    }

    /// Makes Ctrl-C (SIGINT) and SIGTERM call [`stop`](Self::stop), from now on.
    ///
    /// [`run`](Self::run) does this itself; call it earlier when a signal must not be missed
    /// between announcing the server (`listening on ...`) and calling `run`. Calling it again
    /// does nothing.
    ///
    /// # Errors
    /// Installing the signal handlers failed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let reactor = weft_core::Reactor::new();
    /// reactor.handle_signals()?;
    /// // ... listen, print the address ...
    /// # reactor.stop();
    /// reactor.run().await
    /// # }
    /// ```
    pub fn handle_signals(&self) -> io::Result<()> {
        if self.inner.signals_installed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.stop.request_on_signals()
    }

    /// Serves until Ctrl-C, SIGTERM or [`stop`](Self::stop), then shuts down gracefully
    /// (see [`shutdown`](Self::shutdown)).
    ///
    /// # Errors
    /// Installing the signal handlers failed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let reactor = weft_core::Reactor::new();
    /// let r = reactor.clone();
    /// reactor.call_later(std::time::Duration::from_millis(10), move || r.stop());
    /// reactor.run().await?;
    /// # Ok(()) }
    /// ```
    pub async fn run(&self) -> io::Result<()> {
        self.handle_signals()?;
        let mut serving = self.inner.stop.begin_serving();
        serving.requested().await;
        self.shutdown().await;
        drop(serving);
        Ok(())
    }

    /// Shuts down now: stop accepting on every port, ask every connection to flush and close,
    /// wait up to the drain timeout, then abort what is left. Every protocol gets
    /// `connection_lost` (with [`DisconnectReason::Shutdown`] unless it was already closing),
    /// and every factory `stop_factory`, before this returns.
    ///
    /// See [`Reactor`] for an example.
    pub async fn shutdown(&self) {
        let drain = *self.inner.drain.lock().unwrap_or_else(|e| e.into_inner());
        self.inner.stop.request();
        self.inner.shutdown.cancel();
        self.inner.hub.trigger(true);
        self.inner.tracker.close();
        if tokio::time::timeout(drain, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.inner.tracker.len(),
                "drain timeout; aborting connections"
            );
            self.inner.hub.trigger(false);
            self.inner.tracker.wait().await;
        }
    }
}

/// Resolves `addr` and runs `connect` on it within `timeout`, telling the factory it started
/// and, on failure, why (`what` names the attempt in the timeout error).
async fn dial<F, T, Fut>(
    factory: &F,
    addr: impl tokio::net::ToSocketAddrs,
    timeout: Duration,
    what: &str,
    connect: impl FnOnce(SocketAddr) -> Fut,
) -> io::Result<(T, Address)>
where
    F: ClientFactory,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let target = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to"))?;
    let target_addr = Address::Inet(target);
    let s = dial_to(factory, &target_addr, timeout, what, connect(target)).await?;
    Ok((s, target_addr))
}

/// Runs `connecting` (to `target`) within `timeout`, telling the factory it started and, on
/// failure, why.
async fn dial_to<F, T>(
    factory: &F,
    target: &Address,
    timeout: Duration,
    what: &str,
    connecting: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T>
where
    F: ClientFactory,
{
    factory.started_connecting(target);
    let e = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(s)) => return Ok(s),
        Ok(Err(e)) => e,
        Err(_) => io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} to {target} timed out"),
        ),
    };
    factory.client_connection_failed(target, &e);
    Err(e)
}

/// An established client connection (from [`Reactor::connect_tcp`] and friends).
///
/// ```
/// # use weft_core::{factory_fn, Protocol, Reactor, Transport};
/// # use std::time::Duration;
/// # struct Quiet;
/// # impl Protocol for Quiet { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let reactor = Reactor::new();
/// let conn = reactor
///     .connect_tcp(listener.local_addr()?, factory_fn(|_| Some(Quiet)), Duration::from_secs(5))
///     .await?;
/// assert_eq!(conn.peer().as_inet(), Some(listener.local_addr()?));
/// assert!(conn.host().as_inet().is_some());
/// conn.handle().write("written from outside the protocol").expect("open");
/// conn.handle().lose_connection().expect("open");
/// assert!(conn.closed().await.is_clean());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Connection {
    handle: TransportHandle,
    peer: Address,
    host: Address,
    done: JoinHandle<DisconnectReason>,
}

impl Connection {
    /// A handle to write to and close the connection.
    ///
    /// See [`Connection`] for an example.
    pub fn handle(&self) -> &TransportHandle {
        &self.handle
    }
    /// The remote address.
    ///
    /// See [`Connection`] for an example.
    pub fn peer(&self) -> &Address {
        &self.peer
    }
    /// The local address.
    ///
    /// See [`Connection`] for an example.
    pub fn host(&self) -> &Address {
        &self.host
    }
    /// Waits until the connection ends; returns the reason given to `connection_lost`.
    ///
    /// See [`Reactor::connect_tcp`] for an example.
    pub async fn closed(self) -> DisconnectReason {
        self.done
            .await
            .unwrap_or_else(|e| DisconnectReason::Panicked(e.to_string()))
    }
}

/// A reconnecting client (from [`Reactor::connect_tcp_reconnecting`]).
///
/// See [`Reactor::connect_tcp_reconnecting`] for an example.
#[derive(Debug)]
pub struct Reconnector {
    stop: CancellationToken,
    reset: Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<()>,
}

impl Reconnector {
    /// Stops reconnecting (Twisted's `stopTrying`); a live connection stays up.
    ///
    /// ```
    /// # use weft_core::{factory_fn, Backoff, Protocol, Reactor, Transport};
    /// # use std::time::Duration;
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let r = Reactor::new().connect_tcp_reconnecting(
    ///     "127.0.0.1:1", factory_fn(|_| Some(P)), Backoff::new(), Duration::from_secs(1));
    /// r.reset_delay();
    /// r.stop_trying();
    /// r.finished().await; // returns at once: no more attempts
    /// # }
    /// ```
    pub fn stop_trying(&self) {
        self.stop.cancel();
    }
    /// Resets the delay to the initial delay before the next retry (Twisted's `resetDelay`).
    ///
    /// See [`stop_trying`](Self::stop_trying) for an example.
    pub fn reset_delay(&self) {
        self.reset.store(true, Ordering::Relaxed);
    }
    /// Waits until it gave up (retries used up), was stopped, or the reactor shut down.
    ///
    /// See [`Reactor::connect_tcp_reconnecting`] for an example.
    pub async fn finished(self) {
        let _ = self.task.await;
    }
}

/// A pending [`Reactor::call_later`].
///
/// See [`Reactor::call_later`] and [`DelayedCall::cancel`] for examples.
#[derive(Debug)]
pub struct DelayedCall {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl DelayedCall {
    /// Cancels the call if it has not run yet.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let call = weft_core::Reactor::new().call_later(std::time::Duration::from_secs(60), || unreachable!());
    /// assert!(call.is_active());
    /// call.cancel();
    /// assert!(!call.is_active());
    /// # }
    /// ```
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
    /// True until the call ran or was cancelled.
    ///
    /// See [`Reactor::call_later`].
    pub fn is_active(&self) -> bool {
        !self.task.is_finished() && !self.cancel.is_cancelled()
    }
}

/// A listening port (from [`Reactor::listen_tcp`] and friends).
///
/// See [`Reactor::listen_unix`] for an example.
#[derive(Debug)]
pub struct ListeningPort {
    local: Address,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
    tls: Option<crate::tls::ServerTls>,
}

impl ListeningPort {
    /// The address actually bound (with the real port when 0 was asked for).
    ///
    /// See [`Reactor`] for an example.
    pub fn local_addr(&self) -> &Address {
        &self.local
    }

    /// Re-reads the certificate files of an `ssl:`/`tls:` port and serves the new ones to
    /// connections made from now on; connections already up keep theirs.
    ///
    /// # Errors
    /// A [`TlsError`](crate::tls::TlsError) naming the file and what is wrong with it: the
    /// port then keeps serving the certificates it had. `None` for a port without TLS.
    pub fn reload_tls(&self) -> Option<Result<(), crate::tls::TlsError>> {
        self.tls.as_ref().map(crate::tls::ServerTls::reload)
    }

    /// The TLS configuration of an `ssl:`/`tls:` port.
    pub fn tls(&self) -> Option<&crate::tls::ServerTls> {
        self.tls.as_ref()
    }

    /// Stops accepting new connections (existing ones go on), and waits until the port is
    /// closed (and its factory stopped, if this was its last port).
    ///
    /// See [`Reactor::listen_unix`] for an example.
    pub async fn stop_listening(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}
