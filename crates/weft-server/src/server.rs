//! The four servers of `socketserver`: [`TcpServer`], [`UnixStreamServer`], [`UdpServer`]
//! and [`UnixDatagramServer`]. Each is a thin type over one private serving loop
//! (`Served`): a stream server serves the connections weft-core's
//! [`Listener`] accepts (so every stream endpoint kind weft-core knows), a datagram server
//! the datagrams of its socket.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use socket2::{Domain, Socket, Type};
use weft_core::listener::Listener;
use weft_core::{Address, ListenOptions, ServerEndpoint, ShutdownHandle};

use crate::config::{Concurrency, ProcessPool, ServerConfig};
use crate::error::{HandlerResult, ServerError};
use crate::exec::{self, Executor, Job};
use crate::handler::Handles;
use crate::hooks;
use crate::pool;
use crate::request::{DatagramRequest, ServerInfo, StreamRequest};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a [`TcpServer`] or [`UdpServer`] binds: an endpoint string, `HOST:PORT`, or a
/// socket address.
///
/// Text is read as a weft-core [`ServerEndpoint`] first (`tcp:8000:interface=127.0.0.1`,
/// `udp:5353`, or any stream kind weft-core learns: TLS, PROXY, `systemd:`), else as
/// `HOST:PORT`, resolved (every address it resolves to is tried in turn).
///
/// ```
/// use weft_server::BindAddress;
/// let a: BindAddress = "tcp:0:interface=127.0.0.1".into();
/// let b: BindAddress = "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into();
/// assert_ne!(a, b);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindAddress {
    /// An endpoint string or `HOST:PORT`.
    Text(String),
    /// A socket address.
    Socket(SocketAddr),
}

/// Text: `&str`, `&String`, `&Cow<str>` and the like.
impl<S: AsRef<str> + ?Sized> From<&S> for BindAddress {
    fn from(s: &S) -> Self {
        Self::Text(s.as_ref().to_owned())
    }
}

impl From<String> for BindAddress {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<SocketAddr> for BindAddress {
    fn from(a: SocketAddr) -> Self {
        Self::Socket(a)
    }
}

impl BindAddress {
    /// The endpoints this stands for (`inet` makes one of a socket address).
    async fn endpoints(
        self,
        inet: fn(SocketAddr) -> ServerEndpoint,
    ) -> Result<Vec<ServerEndpoint>, ServerError> {
        let text = match self {
            Self::Socket(a) => return Ok(vec![inet(a)]),
            Self::Text(t) => t,
        };
        let parse_error = match text.parse::<ServerEndpoint>() {
            // A plain `HOST:PORT` parses as TCP: for a datagram server it means UDP.
            Ok(ServerEndpoint::Tcp { addr, .. })
                if !text.starts_with("tcp:") && !text.starts_with("tcp6:") =>
            {
                return Ok(vec![inet(addr)]);
            }
            Ok(ep) => return Ok(vec![ep]),
            Err(e) => e,
        };
        let addrs: Vec<_> = match tokio::net::lookup_host(text.as_str()).await {
            Ok(addrs) => addrs.map(inet).collect(),
            Err(_) => {
                return Err(ServerError::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{text:?} is neither an endpoint ({parse_error}) nor HOST:PORT"),
                )));
            }
        };
        if addrs.is_empty() {
            return Err(ServerError::NoAddress(text));
        }
        Ok(addrs)
    }

    /// A listener on the first of its stream endpoints that binds.
    async fn bind_listener(self, opts: ListenOptions) -> Result<Listener, ServerError> {
        let bind = move |ep: ServerEndpoint| async move { Listener::bind_with(&ep, opts).await };
        self.bind_first(ServerEndpoint::tcp, bind).await
    }

    /// A socket on the first of its datagram endpoints that binds.
    async fn bind_datagram(self, opts: ListenOptions) -> Result<Dgram, ServerError> {
        let bind = move |ep: ServerEndpoint| async move { Dgram::bind(&ep, opts) };
        self.bind_first(ServerEndpoint::udp, bind).await
    }

    /// Binds the first of its endpoints that `bind` manages to bind.
    async fn bind_first<T, F: Future<Output = io::Result<T>>>(
        self,
        inet: fn(SocketAddr) -> ServerEndpoint,
        mut bind: impl FnMut(ServerEndpoint) -> F,
    ) -> Result<T, ServerError> {
        let mut last = None;
        for ep in self.endpoints(inet).await? {
            match bind(ep).await {
                Ok(t) => return Ok(t),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(
            || ServerError::NoAddress("no address".into()),
            ServerError::Io,
        ))
    }
}

/// A bound datagram socket: UDP, or a Unix datagram socket whose file it removes when
/// dropped.
#[derive(Debug)]
pub(crate) enum Dgram {
    Udp(tokio::net::UdpSocket),
    Unix(tokio::net::UnixDatagram, Option<PathBuf>),
}

impl Drop for Dgram {
    fn drop(&mut self) {
        if let Dgram::Unix(_, Some(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Dgram {
    fn bind(ep: &ServerEndpoint, opts: ListenOptions) -> io::Result<Dgram> {
        let ServerEndpoint::Udp { addr } = ep else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{ep} is not a datagram endpoint"),
            ));
        };
        let s = Socket::new(Domain::for_address(*addr), Type::DGRAM, None)?;
        s.set_reuse_address(opts.reuse_address)?;
        if opts.reuse_port {
            s.set_reuse_port(true)?;
        }
        s.bind(&(*addr).into())?;
        Self::adopt(s)
    }

    fn bind_unix(path: &Path) -> io::Result<Dgram> {
        let s = std::os::unix::net::UnixDatagram::bind(path)?;
        // The file is ours from here on: removed when the socket is dropped, or if what
        // follows fails.
        let mut dgram = Self::adopt(Socket::from(OwnedFd::from(s))).inspect_err(|_| {
            let _ = std::fs::remove_file(path);
        })?;
        if let Dgram::Unix(_, file) = &mut dgram {
            *file = Some(path.to_path_buf());
        }
        Ok(dgram)
    }

    /// A bound datagram socket (a pool worker's inherited one, or one just bound).
    fn adopt(s: Socket) -> io::Result<Dgram> {
        s.set_nonblocking(true)?;
        if s.domain()? == Domain::UNIX {
            let s = std::os::unix::net::UnixDatagram::from(OwnedFd::from(s));
            Ok(Dgram::Unix(tokio::net::UnixDatagram::from_std(s)?, None))
        } else {
            Ok(Dgram::Udp(tokio::net::UdpSocket::from_std(s.into())?))
        }
    }

    fn local_addr(&self) -> io::Result<Address> {
        Ok(match self {
            Dgram::Udp(s) => Address::Inet(s.local_addr()?),
            Dgram::Unix(s, _) => Address::Unix(s.local_addr()?.as_pathname().map(Into::into)),
        })
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Address)> {
        match self {
            Dgram::Udp(s) => s.recv_from(buf).await.map(|(n, a)| (n, Address::Inet(a))),
            Dgram::Unix(s, _) => s
                .recv_from(buf)
                .await
                .map(|(n, a)| (n, Address::Unix(a.as_pathname().map(Into::into)))),
        }
    }

    /// Sends a reply, waiting for room in the socket's buffer (never blocking a thread).
    pub(crate) async fn send_to(&self, data: &[u8], to: &Address) -> io::Result<()> {
        match (self, to) {
            (Dgram::Udp(s), Address::Inet(a)) => s.send_to(data, a).await.map(drop),
            (Dgram::Unix(s, _), Address::Unix(Some(p))) => s.send_to(data, p).await.map(drop),
            (Dgram::Unix(..), Address::Unix(None)) => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the client's Unix datagram socket is unnamed: no address to reply to",
            )),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot reply to {to}"),
            )),
        }
    }
}

impl AsFd for Dgram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Dgram::Udp(s) => s.as_fd(),
            Dgram::Unix(s, _) => s.as_fd(),
        }
    }
}

/// What a server serves from: a request per accepted connection ([`Listener`]) or per
/// datagram ([`Dgram`]).
trait Source: AsFd + Send + Sync + Sized + 'static {
    /// What the handler gets.
    type Request: Send + 'static;
    /// What [`next`](Self::next) yields, before the request is built.
    type Item: Send + 'static;
    /// The socket type a pool worker inherits.
    const TYPE: Type;

    /// A pool worker's inherited socket.
    fn adopt(s: Socket, opts: ListenOptions) -> io::Result<Self>;
    fn local_addr(&self) -> io::Result<Address>;
    /// The receive buffer of a serving loop.
    fn buffer(config: &ServerConfig) -> Vec<u8>;
    /// The next connection or datagram, and its client.
    fn next<'a>(
        self: &'a Arc<Self>,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(Self::Item, Address)>> + Send + 'a;
    /// The request, built in the request's own task (a connection is established there).
    fn request(
        item: Self::Item,
        client: Address,
        info: Arc<ServerInfo>,
    ) -> impl Future<Output = io::Result<Self::Request>> + Send;
    fn client(request: &Self::Request) -> &Address;
    /// After the handler: close the connection, or send the datagram's reply.
    fn finish(request: Self::Request) -> impl Future<Output = HandlerResult> + Send;
}

impl Source for Listener {
    type Request = StreamRequest;
    type Item = weft_core::listener::Incoming;
    const TYPE: Type = Type::STREAM;

    fn adopt(s: Socket, opts: ListenOptions) -> io::Result<Self> {
        let mut listener = if s.domain()? == Domain::UNIX {
            Listener::from_std_unix(OwnedFd::from(s).into())?
        } else {
            Listener::from_std_tcp(s.into())?
        };
        listener.set_nodelay(opts.nodelay);
        Ok(listener)
    }
    fn local_addr(&self) -> io::Result<Address> {
        Ok(Listener::local_addr(self).clone())
    }
    fn buffer(_: &ServerConfig) -> Vec<u8> {
        Vec::new()
    }
    async fn next<'a>(self: &'a Arc<Self>, _: &'a mut [u8]) -> io::Result<(Self::Item, Address)> {
        let incoming = self.accept().await?;
        let peer = incoming.peer().clone();
        Ok((incoming, peer))
    }
    async fn request(
        incoming: Self::Item,
        _: Address,
        info: Arc<ServerInfo>,
    ) -> io::Result<StreamRequest> {
        let conn = incoming.establish().await?;
        Ok(StreamRequest::new(conn.stream, conn.peer, info))
    }
    fn client(request: &StreamRequest) -> &Address {
        &request.client
    }
    async fn finish(mut request: StreamRequest) -> HandlerResult {
        // Like StreamRequestHandler.finish: a final socket error is ignored.
        if let Err(e) = request.close().await {
            tracing::debug!(client = %request.client, error = %e, "error while closing a connection");
        }
        Ok(())
    }
}

impl Source for Dgram {
    type Request = DatagramRequest;
    type Item = (Vec<u8>, Arc<Dgram>);
    const TYPE: Type = Type::DGRAM;

    fn adopt(s: Socket, _: ListenOptions) -> io::Result<Self> {
        Dgram::adopt(s)
    }
    fn local_addr(&self) -> io::Result<Address> {
        Dgram::local_addr(self)
    }
    fn buffer(config: &ServerConfig) -> Vec<u8> {
        datagram_buffer(config)
    }
    async fn next<'a>(self: &'a Arc<Self>, buf: &'a mut [u8]) -> io::Result<(Self::Item, Address)> {
        loop {
            match self.recv_from(buf).await {
                Ok((n, client)) => {
                    if let Some(packet) = datagram(buf, n, &client) {
                        return Ok(((packet.to_vec(), self.clone()), client));
                    }
                }
                // An earlier reply's ICMP error, a signal: about one datagram, not the socket.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    tracing::debug!(error = %e, "receive failed");
                }
                Err(e) => return Err(e),
            }
        }
    }
    async fn request(
        (packet, socket): Self::Item,
        client: Address,
        info: Arc<ServerInfo>,
    ) -> io::Result<DatagramRequest> {
        let mut request = DatagramRequest::new(packet, client, info);
        request.reply_from = Some(socket);
        Ok(request)
    }
    fn client(request: &DatagramRequest) -> &Address {
        &request.client
    }
    async fn finish(request: DatagramRequest) -> HandlerResult {
        match &request.reply_from {
            Some(socket) if !request.wfile.is_empty() => {
                Ok(socket.send_to(&request.wfile, &request.client).await?)
            }
            _ => Ok(()),
        }
    }
}

/// A datagram server's receive buffer: one byte more than the largest datagram served, to
/// tell a longer one (see [`datagram`]).
pub(crate) fn datagram_buffer(config: &ServerConfig) -> Vec<u8> {
    vec![0; config.max_packet_size.saturating_add(1)]
}

/// The datagram of `n` bytes from `client` in `buf` (a [`datagram_buffer`]), or `None` for
/// one longer than `max_packet_size` (the socket cut it to fill the buffer): dropped and
/// logged, never handed to the handler cut short (Python's `socketserver` hands over the
/// first `max_packet_size` bytes as if they were the whole request).
pub(crate) fn datagram<'a>(buf: &'a [u8], n: usize, client: &Address) -> Option<&'a [u8]> {
    if n < buf.len() {
        return Some(&buf[..n]);
    }
    tracing::warn!(
        %client,
        max_packet_size = buf.len() - 1,
        "datagram longer than max_packet_size dropped (raise ServerConfig::max_packet_size to serve it)"
    );
    None
}

/// The one serving loop under the four server types: the socket (until `close`), the
/// handler, the settings, the shutdown handle, how requests run.
struct Served<S, H> {
    /// The socket until `close`: the serving loop and running requests hold clones, so it
    /// closes once `close` dropped this one and they let go.
    socket: Mutex<Option<Arc<S>>>,
    handler: Arc<H>,
    info: Arc<ServerInfo>,
    shutdown: ShutdownHandle,
    exec: Executor,
    /// The process ids of a process pool's workers (the parent's).
    workers: Mutex<Vec<Option<u32>>>,
}

impl<S: Source, H> Served<S, H> {
    /// Adopts a pool worker's inherited socket, or binds with `bind`.
    async fn bind<F: Future<Output = Result<S, ServerError>>>(
        config: ServerConfig,
        handler: H,
        bind: impl FnOnce(ListenOptions) -> F,
    ) -> Result<Self, ServerError> {
        let (socket, worker) = match pool::take_inherited(S::TYPE)? {
            Some(s) => (S::adopt(s, config.listen)?, true),
            None => (bind(config.listen).await?, false),
        };
        let address = socket.local_addr()?;
        tracing::debug!(%address, worker, "server bound");
        let shutdown = ShutdownHandle::default();
        if worker {
            pool::watch_stdin(shutdown.clone());
        }
        Ok(Served {
            socket: Mutex::new(Some(Arc::new(socket))),
            handler: Arc::new(handler),
            exec: Executor::new(&config),
            info: Arc::new(ServerInfo {
                address,
                config,
                worker,
            }),
            shutdown,
            workers: Mutex::new(Vec::new()),
        })
    }

    fn socket(&self) -> Result<Arc<S>, ServerError> {
        lock(&self.socket).clone().ok_or(ServerError::Closed)
    }

    fn pool(&self) -> Option<&ProcessPool> {
        match &self.info.config.concurrency {
            Concurrency::Processes(p) if !self.info.worker => Some(p),
            _ => None,
        }
    }

    fn fmt(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("address", &self.info.address)
            .field("config", &self.info.config)
            .finish_non_exhaustive()
    }
}

impl<S: Source, H: Handles<S::Request>> Served<S, H> {
    async fn serve_forever(&self) -> Result<(), ServerError> {
        let mut guard = self.shutdown.begin_serving();
        let socket = self.socket()?;
        if let Some(pool) = self.pool() {
            return pool::supervise(socket.as_fd(), pool, &mut guard, &self.workers).await;
        }
        let mut buf = S::buffer(&self.info.config);
        loop {
            let permit = tokio::select! {
                biased;
                _ = guard.requested() => break,
                p = self.exec.permit() => p,
            };
            let next = tokio::select! {
                biased;
                _ = guard.requested() => break,
                r = socket.next(&mut buf) => r,
            };
            match next {
                Ok((item, client)) => self.process(item, client, permit).await,
                Err(e) => {
                    tracing::error!(error = %e, "the server's socket failed; stopped serving");
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    async fn handle_request(&self) -> Result<(), ServerError> {
        if self.pool().is_some() {
            return Err(ServerError::Unsupported(
                "handle_request in the parent of a process pool",
            ));
        }
        let socket = self.socket()?;
        let permit = self.exec.permit().await;
        let mut buf = S::buffer(&self.info.config);
        let next = match self.info.config.timeout {
            Some(t) => match tokio::time::timeout(t, socket.next(&mut buf)).await {
                Ok(r) => r,
                Err(_) => {
                    hooks::timeout(&self.info);
                    return Ok(());
                }
            },
            None => socket.next(&mut buf).await,
        };
        match next {
            Ok((item, client)) => self.process(item, client, permit).await,
            Err(e) => tracing::warn!(error = %e, "accept failed"),
        }
        Ok(())
    }

    async fn process(
        &self,
        item: S::Item,
        client: Address,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        let report = exec::reporter(&self.info, &client);
        let job = self.job(item, client);
        self.exec.run(job, report, permit).await;
    }

    /// One request, from the raw connection or datagram to its close or reply.
    fn job(&self, item: S::Item, client: Address) -> Job {
        let (handler, info) = (self.handler.clone(), self.info.clone());
        Box::pin(async move {
            let request = S::request(item, client, info.clone()).await?;
            if !hooks::verify(&info, S::client(&request)) {
                tracing::debug!(client = %S::client(&request), "request refused by verify_request");
                return Ok(());
            }
            let (request, result) = handler.run(request).await;
            result.and(S::finish(request).await)
        })
    }

    async fn close(&self) -> Result<(), ServerError> {
        self.shutdown.shutdown().await;
        drop(lock(&self.socket).take());
        self.exec.tracker.close();
        if self.info.config.block_on_close {
            self.exec.tracker.wait().await;
        }
        Ok(())
    }
}

/// Declares one of the four server types over `Served`, with what they share: the
/// accessors and the `socketserver` life cycle (written once here for all four).
macro_rules! server_type {
    (
        $(#[$doc:meta])* $name:ident($source:ty, $request:ty),
        $(#[$bind_doc:meta])* bind($addr:ident: $addr_ty:ty) with $binder:expr
    ) => {
        $(#[$doc])*
        pub struct $name<H> {
            served: Served<$source, H>,
        }

        impl<H> fmt::Debug for $name<H> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.served.fmt(stringify!($name), f)
            }
        }

        impl<H> $name<H> {
            /// The address the server is bound to, with the real port (`server_address`).
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn server_address(&self) -> &Address {
                &self.served.info.address
            }

            /// The server's address and settings.
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn info(&self) -> &ServerInfo {
                &self.served.info
            }

            /// A handle to stop [`serve_forever`](Self::serve_forever) from another task or
            /// thread (`shutdown`), or on Ctrl-C.
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn shutdown_handle(&self) -> ShutdownHandle {
                self.served.shutdown.clone()
            }

            /// The process ids of the live workers of a [`ProcessPool`]: empty unless the
            /// server runs [`Concurrency::Processes`] and is serving (the parent starts its
            /// workers in [`serve_forever`](Self::serve_forever)).
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub fn worker_pids(&self) -> Vec<u32> {
                lock(&self.served.workers).iter().flatten().copied().collect()
            }
        }

        impl<H: Handles<$request>> $name<H> {
            $(#[$bind_doc])*
            pub async fn bind($addr: $addr_ty, handler: H) -> Result<Self, ServerError> {
                Self::bind_with($addr, handler, ServerConfig::default()).await
            }

            /// Binds with `config`; see [`bind`](Self::bind).
            ///
            /// # Errors
            ///
            /// As for [`bind`](Self::bind).
            ///
            /// See [`ServerConfig`] for an example.
            pub async fn bind_with(
                $addr: $addr_ty,
                handler: H,
                config: ServerConfig,
            ) -> Result<Self, ServerError> {
                let served = Served::bind(config, handler, $binder).await?;
                Ok(Self { served })
            }

            /// Handles requests until [`ShutdownHandle::shutdown`] is called (or, in a pool
            /// worker, until the parent closes the worker's standard input). With
            /// [`Concurrency::Processes`] the parent process supervises its workers here
            /// instead of serving.
            ///
            /// Handler errors and panics go to `handle_error`; the server goes on either way.
            ///
            /// # Errors
            ///
            /// [`ServerError::Closed`] if the server was closed; [`ServerError::Io`] if the
            /// socket itself failed (not for errors of one connection or datagram, nor for
            /// running out of descriptors, which pauses accepting until they free up).
            ///
            /// # Cancel safety
            ///
            /// Dropping the future stops the loop, as a shutdown would, and loses no
            /// connection or datagram waiting in the kernel. Requests already running as
            /// tasks or threads carry on; a request handled inside the loop (with
            /// [`Concurrency::Sequential`]) is abandoned mid-way, and the workers of a
            /// process pool are killed at once instead of being given their `grace`: prefer
            /// [`ShutdownHandle::shutdown`] for a graceful stop.
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub async fn serve_forever(&self) -> Result<(), ServerError> {
                self.served.serve_forever().await
            }

            /// Handles one request (`handle_request`): waits up to the configured `timeout`
            /// for it, and calls the server's `handle_timeout` if none came. A failed accept
            /// or receive is logged, not returned.
            ///
            /// # Errors
            ///
            /// [`ServerError::Closed`] if the server was closed, and
            /// [`ServerError::Unsupported`] in the parent of a process pool.
            ///
            /// # Cancel safety
            ///
            /// Dropping the future while it waits loses nothing; with
            /// [`Concurrency::Sequential`], dropping it while the handler runs abandons that
            /// request. Use the configured `timeout` rather than wrapping the call in
            /// `tokio::time::timeout`.
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub async fn handle_request(&self) -> Result<(), ServerError> {
                self.served.handle_request().await
            }

            /// Stops serving (as [`ShutdownHandle::shutdown`]), releases the socket (and
            /// removes a Unix socket file) and, with `block_on_close` (the default), waits
            /// for running handlers (`server_close`). Closing twice is harmless. Dropping the
            /// server releases the socket and the file too, without waiting.
            ///
            /// # Errors
            ///
            /// None at present: the `Result` is always `Ok`.
            ///
            #[doc = concat!("See [`", stringify!($name), "`] for an example.")]
            pub async fn close(&self) -> Result<(), ServerError> {
                self.served.close().await
            }
        }
    };
}

server_type! {
    /// A TCP server (`socketserver.TCPServer`), or a server of any stream endpoint kind
    /// weft-core knows ([`BindAddress`]): a request per connection, handled by a
    /// [`RequestHandler<StreamRequest>`](crate::RequestHandler) or a blocking handler in
    /// [`Blocking`](crate::Blocking).
    ///
    /// Life cycle, as in `socketserver`: [`bind`](Self::bind) (binds and listens at once,
    /// with the backlog and `SO_REUSEADDR` of the [`ServerConfig`]), then
    /// [`serve_forever`](Self::serve_forever) until [`ShutdownHandle::shutdown`], or
    /// [`handle_request`](Self::handle_request) for one request at a time; finally
    /// [`close`](Self::close). Wrap it in an `Arc` to close it from another task.
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
    /// let server = Arc::new(TcpServer::bind("tcp:0:interface=127.0.0.1", Echo).await?);
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// assert_ne!(addr.port(), 0); // the port the kernel picked
    /// assert!(server.worker_pids().is_empty()); // only a process pool's parent has workers
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
    /// server.shutdown_handle().shutdown().await; // serve_forever returns...
    /// serving.await??;
    /// server.close().await?; // ...and close waits for the handlers, then releases the port
    /// # Ok(()) }
    /// ```
    TcpServer(Listener, StreamRequest),
    /// Binds with the default [`ServerConfig`]: an endpoint string
    /// (`tcp:8000:interface=127.0.0.1`, any stream kind weft-core knows), `HOST:PORT`, or a
    /// socket address ([`BindAddress`]). Port 0 picks a free port: read it back with
    /// [`server_address`](Self::server_address).
    ///
    /// In a worker process of a [`ProcessPool`] this adopts the inherited listening socket
    /// instead of binding.
    ///
    /// # Errors
    ///
    /// [`ServerError::Io`] if the address is neither an endpoint nor `HOST:PORT`
    /// (`InvalidInput`), or if no address it stands for can be bound and listened on
    /// (`AddrInUse` for a port another socket listens on, `PermissionDenied` for a
    /// privileged port); [`ServerError::NoAddress`] if it resolves to nothing; in a pool
    /// worker, [`ServerError::Worker`] if the inherited socket is unusable.
    ///
    /// See [`TcpServer`] for an example.
    bind(addr: impl Into<BindAddress>) with |opts| Into::<BindAddress>::into(addr).bind_listener(opts)
}

server_type! {
    /// A Unix stream server (`socketserver.UnixStreamServer`): a [`TcpServer`] bound to a
    /// socket file, which [`close`](Self::close) (or drop) removes.
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
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("echo.sock");
    /// let server = Arc::new(UnixStreamServer::bind(&path, Echo).await?);
    /// assert_eq!(server.server_address().as_path(), Some(path.as_path()));
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
    /// server.close().await?; // stops serve_forever too, and removes the socket file
    /// serving.await??;
    /// assert!(!path.exists());
    /// # Ok(()) }
    /// ```
    UnixStreamServer(Listener, StreamRequest),
    /// Binds at `path` with the default [`ServerConfig`]. A stale socket file (nothing
    /// answers there) is replaced; [`close`](Self::close) (or drop) removes the file.
    ///
    /// # Errors
    ///
    /// [`ServerError::Io`] if the socket cannot be bound at `path` (`AddrInUse` if a server
    /// answers there or the path is not a socket, `NotFound` if its directory does not
    /// exist, `InvalidInput` if the path is too long for a socket address) or cannot listen;
    /// in a pool worker, [`ServerError::Worker`] if the inherited socket is unusable.
    ///
    /// See [`UnixStreamServer`] for an example.
    bind(path: impl AsRef<Path>) with |opts: ListenOptions| async move {
        Ok(Listener::bind_unix(path.as_ref(), opts.backlog)?)
    }
}

server_type! {
    /// A UDP server (`socketserver.UDPServer`): each datagram is one request
    /// ([`DatagramRequest`]); what the handler writes to its `wfile` is sent back as the
    /// reply. The life cycle is that of [`TcpServer`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use std::sync::Arc;
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
    /// let server = Arc::new(UdpServer::bind("udp:0:interface=127.0.0.1", Upper).await?);
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
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
    UdpServer(Dgram, DatagramRequest),
    /// Binds with the default [`ServerConfig`]: `udp:PORT:interface=IP`, `HOST:PORT`, or a
    /// socket address ([`BindAddress`]).
    ///
    /// # Errors
    ///
    /// As for [`TcpServer::bind`]; a stream endpoint string is `InvalidInput`.
    ///
    /// See [`UdpServer`] for an example.
    bind(addr: impl Into<BindAddress>) with |opts| Into::<BindAddress>::into(addr).bind_datagram(opts)
}

server_type! {
    /// A Unix datagram server (`socketserver.UnixDatagramServer`): a [`UdpServer`] bound to
    /// a socket file, which [`close`](Self::close) (or drop) removes. To get replies,
    /// clients must bind their own socket to a path.
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
    /// assert!(!path.exists());
    /// # Ok(()) }
    /// ```
    UnixDatagramServer(Dgram, DatagramRequest),
    /// Binds at `path` with the default [`ServerConfig`]; [`close`](Self::close) (or drop)
    /// removes the file.
    ///
    /// # Errors
    ///
    /// [`ServerError::Io`] if the socket cannot be bound at `path` (`AddrInUse` if the file
    /// exists, `NotFound` if its directory does not, `InvalidInput` if the path is too long
    /// for a socket address); in a pool worker, [`ServerError::Worker`] if the inherited
    /// socket is unusable.
    ///
    /// See [`UnixDatagramServer`] for an example.
    bind(path: impl AsRef<Path>) with |_| async move { Ok(Dgram::bind_unix(path.as_ref())?) }
}
