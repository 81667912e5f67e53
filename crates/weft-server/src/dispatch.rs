//! How requests reach handlers: turning a connection or datagram into a [`Job`] for
//! the handler flavour, and running jobs with the configured concurrency.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use crate::addr::Address;
use crate::config::{Concurrency, ServerConfig};
use crate::error::HandlerResult;
use crate::handler::{
    AsyncDgram, AsyncStream, Blocking, BlockingDgram, BlockingRequestHandler, BlockingStream,
    Hooks, Job, RequestHandler, panic_error, run_async, run_blocking,
};
use crate::request::{BlockingStreamRequest, DatagramRequest, ServerInfo, StreamRequest};

/// An accepted connection.
pub(crate) enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// A blocking duplicate of a datagram server's socket, used to send replies from any
/// thread.
#[derive(Debug)]
pub(crate) enum DgramSender {
    Udp(std::net::UdpSocket),
    Unix(std::os::unix::net::UnixDatagram),
}

impl DgramSender {
    pub(crate) fn send_to(&self, data: &[u8], to: &Address) -> io::Result<()> {
        // The duplicate shares the non-blocking file description with the tokio
        // socket: retry briefly when the send buffer is full.
        for _ in 0..200 {
            let r = match (self, to) {
                (DgramSender::Udp(s), Address::Inet(a)) => s.send_to(data, a).map(drop),
                (DgramSender::Unix(s), Address::Unix(Some(p))) => s.send_to(data, p).map(drop),
                (DgramSender::Unix(_), Address::Unix(None)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "the client's Unix datagram socket is unnamed: no address to reply to",
                    ));
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "address family mismatch",
                    ));
                }
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                other => return other,
            }
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "send buffer full",
        ))
    }
}

pub(crate) trait StreamDispatch: Hooks {
    fn job(&self, conn: Conn, client: Address, info: Arc<ServerInfo>) -> Job;
}

pub(crate) trait DgramDispatch: Hooks {
    fn job(
        &self,
        packet: Vec<u8>,
        client: Address,
        info: Arc<ServerInfo>,
        sender: Arc<DgramSender>,
    ) -> Job;
}

/// Type-erased stream dispatcher (an implementation detail of [`StreamService`]).
#[doc(hidden)]
pub struct StreamDispatcher(pub(crate) Arc<dyn StreamDispatch>);

impl std::fmt::Debug for StreamDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamDispatcher")
    }
}

/// Type-erased datagram dispatcher (an implementation detail of [`DatagramService`]).
#[doc(hidden)]
pub struct DatagramDispatcher(pub(crate) Arc<dyn DgramDispatch>);

impl std::fmt::Debug for DatagramDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatagramDispatcher")
    }
}

/// What a stream server ([`crate::TcpServer`], [`crate::UnixStreamServer`]) accepts as
/// its handler: any [`RequestHandler<StreamRequest>`], or a
/// [`BlockingRequestHandler<BlockingStreamRequest>`] wrapped in [`Blocking`].
/// Implemented by this crate only.
///
/// # Examples
///
/// Code generic over the handler flavour takes `H: StreamService`:
///
/// ```
/// use weft_server::{Blocking, ServerError, StreamService, TcpServer};
/// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
/// # use weft_server::{RequestHandler, StreamRequest};
/// # struct AsyncEcho;
/// # impl RequestHandler<StreamRequest> for AsyncEcho {
/// #     async fn handle(&self, _req: &mut StreamRequest) -> HandlerResult { Ok(()) }
/// # }
/// # struct BlockingEcho;
/// # impl BlockingRequestHandler<BlockingStreamRequest> for BlockingEcho {
/// #     fn handle(&self, _req: &mut BlockingStreamRequest) -> HandlerResult { Ok(()) }
/// # }
///
/// async fn local_server<H: StreamService>(handler: H) -> Result<TcpServer<H>, ServerError> {
///     TcpServer::bind("127.0.0.1:0", handler).await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// let a = local_server(AsyncEcho).await?; // a RequestHandler<StreamRequest>
/// let b = local_server(Blocking(BlockingEcho)).await?; // a blocking one, wrapped
/// assert_ne!(a.server_address(), b.server_address());
/// a.close().await?;
/// b.close().await?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
pub trait StreamService: Send + Sync + 'static {
    /// Erases the handler type.
    #[doc(hidden)]
    fn into_dispatcher(self) -> StreamDispatcher;
}

/// What a datagram server ([`crate::UdpServer`], [`crate::UnixDatagramServer`])
/// accepts as its handler: any [`RequestHandler<DatagramRequest>`], or a
/// [`BlockingRequestHandler<DatagramRequest>`] wrapped in [`Blocking`].
/// Implemented by this crate only.
///
/// # Examples
///
/// ```
/// use weft_server::{Blocking, DatagramService, ServerError, UdpServer};
/// # use weft_server::{BlockingRequestHandler, DatagramRequest, HandlerResult, RequestHandler};
/// # struct AsyncAck;
/// # impl RequestHandler<DatagramRequest> for AsyncAck {
/// #     async fn handle(&self, _req: &mut DatagramRequest) -> HandlerResult { Ok(()) }
/// # }
/// # struct BlockingAck;
/// # impl BlockingRequestHandler<DatagramRequest> for BlockingAck {
/// #     fn handle(&self, _req: &mut DatagramRequest) -> HandlerResult { Ok(()) }
/// # }
///
/// async fn local_server<H: DatagramService>(handler: H) -> Result<UdpServer<H>, ServerError> {
///     UdpServer::bind("127.0.0.1:0", handler).await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
/// let a = local_server(AsyncAck).await?; // a RequestHandler<DatagramRequest>
/// let b = local_server(Blocking(BlockingAck)).await?; // a blocking one, wrapped
/// assert_ne!(a.server_address(), b.server_address());
/// a.close().await?;
/// b.close().await?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).await?
/// # }
/// ```
pub trait DatagramService: Send + Sync + 'static {
    /// Erases the handler type.
    #[doc(hidden)]
    fn into_dispatcher(self) -> DatagramDispatcher;
}

impl<H: RequestHandler<StreamRequest>> StreamService for H {
    fn into_dispatcher(self) -> StreamDispatcher {
        StreamDispatcher(Arc::new(AsyncStream(Arc::new(self))))
    }
}

impl<H: BlockingRequestHandler<BlockingStreamRequest>> StreamService for Blocking<H> {
    fn into_dispatcher(self) -> StreamDispatcher {
        StreamDispatcher(Arc::new(BlockingStream(Arc::new(self.0))))
    }
}

impl<H: RequestHandler<DatagramRequest>> DatagramService for H {
    fn into_dispatcher(self) -> DatagramDispatcher {
        DatagramDispatcher(Arc::new(AsyncDgram(Arc::new(self))))
    }
}

impl<H: BlockingRequestHandler<DatagramRequest>> DatagramService for Blocking<H> {
    fn into_dispatcher(self) -> DatagramDispatcher {
        DatagramDispatcher(Arc::new(BlockingDgram(Arc::new(self.0))))
    }
}

impl<H: RequestHandler<StreamRequest>> StreamDispatch for AsyncStream<H> {
    fn job(&self, conn: Conn, client: Address, info: Arc<ServerInfo>) -> Job {
        let h = self.0.clone();
        Job::Async(Box::pin(async move {
            let mut req = match conn {
                Conn::Tcp(s) => {
                    if info.config.nodelay {
                        s.set_nodelay(true)?;
                    }
                    let (r, w) = s.into_split();
                    StreamRequest::new(r, w, client, info)
                }
                Conn::Unix(s) => {
                    let (r, w) = s.into_split();
                    StreamRequest::new(r, w, client, info)
                }
            };
            let result = run_async(&*h, &mut req).await;
            // Like StreamRequestHandler.finish: a final socket error is ignored.
            if let Err(e) = req.close().await {
                tracing::debug!(client = %req.client, error = %e, "error while closing a connection");
            }
            result
        }))
    }
}

impl<H: BlockingRequestHandler<BlockingStreamRequest>> StreamDispatch for BlockingStream<H> {
    fn job(&self, conn: Conn, client: Address, info: Arc<ServerInfo>) -> Job {
        let req = match conn {
            Conn::Tcp(s) => {
                let nodelay = info.config.nodelay;
                s.into_std().and_then(|s| {
                    if nodelay {
                        s.set_nodelay(true)?;
                    }
                    BlockingStreamRequest::from_tcp(s, client, info)
                })
            }
            Conn::Unix(s) => s
                .into_std()
                .and_then(|s| BlockingStreamRequest::from_unix(s, client, info)),
        };
        let mut req = match req {
            Ok(r) => r,
            Err(e) => return Job::Async(Box::pin(async move { Err(e.into()) })),
        };
        let h = self.0.clone();
        Job::Blocking(Box::new(move || {
            let result = run_blocking(&*h, &mut req);
            if let Err(e) = req.close() {
                tracing::debug!(client = %req.client, error = %e, "error while closing a connection");
            }
            result
        }))
    }
}

fn reply(req: &DatagramRequest, sender: &DgramSender, result: HandlerResult) -> HandlerResult {
    if req.wfile.is_empty() {
        return result;
    }
    let sent = sender.send_to(&req.wfile, &req.client);
    result.and(sent.map_err(Into::into))
}

impl<H: RequestHandler<DatagramRequest>> DgramDispatch for AsyncDgram<H> {
    fn job(
        &self,
        packet: Vec<u8>,
        client: Address,
        info: Arc<ServerInfo>,
        sender: Arc<DgramSender>,
    ) -> Job {
        let h = self.0.clone();
        Job::Async(Box::pin(async move {
            let mut req = DatagramRequest {
                rfile: io::Cursor::new(packet),
                wfile: Vec::new(),
                client,
                server: info,
            };
            let result = run_async(&*h, &mut req).await;
            reply(&req, &sender, result)
        }))
    }
}

impl<H: BlockingRequestHandler<DatagramRequest>> DgramDispatch for BlockingDgram<H> {
    fn job(
        &self,
        packet: Vec<u8>,
        client: Address,
        info: Arc<ServerInfo>,
        sender: Arc<DgramSender>,
    ) -> Job {
        let h = self.0.clone();
        Job::Blocking(Box::new(move || {
            let mut req = DatagramRequest {
                rfile: io::Cursor::new(packet),
                wfile: Vec::new(),
                client,
                server: info,
            };
            let result = run_blocking(&*h, &mut req);
            reply(&req, &sender, result)
        }))
    }
}

/// How jobs run, derived from [`Concurrency`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Sequential,
    Tasks,
    Threads,
}

/// Runs jobs and keeps track of them so `close` can wait.
#[derive(Debug)]
pub(crate) struct Executor {
    pub(crate) mode: Mode,
    limit: Option<Arc<Semaphore>>,
    pub(crate) tracker: TaskTracker,
}

impl Executor {
    pub(crate) fn new(config: &ServerConfig) -> Self {
        let (mode, limit) = match &config.concurrency {
            Concurrency::Sequential => (Mode::Sequential, None),
            Concurrency::Tasks { limit } => (Mode::Tasks, *limit),
            Concurrency::Threads { limit } => (Mode::Threads, *limit),
            // Only workers run requests (the pool's parent supervises): as tasks.
            Concurrency::Processes(_) => (Mode::Tasks, None),
        };
        Executor {
            mode,
            limit: limit.map(|n| Arc::new(Semaphore::new(n.max(1)))),
            tracker: TaskTracker::new(),
        }
    }

    /// Waits for room under the limit (before accepting the next request).
    pub(crate) async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        match &self.limit {
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        }
    }

    /// Runs `job` (inline for `Sequential`, else in the background) and reports its
    /// error or panic to the handler's `handle_error`.
    pub(crate) async fn run(
        &self,
        job: Job,
        client: Address,
        hooks: Arc<dyn Hooks>,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        match self.mode {
            Mode::Sequential => {
                let r = run_job(job).await;
                report(&*hooks, &client, r);
            }
            Mode::Tasks => {
                self.tracker.spawn(async move {
                    let r = run_job(job).await;
                    drop(permit);
                    report(&*hooks, &client, r);
                });
            }
            Mode::Threads => {
                let token = self.tracker.token();
                let c2 = client.clone();
                let h2 = hooks.clone();
                let spawned = std::thread::Builder::new()
                    .name("weft-server-handler".into())
                    .spawn(move || {
                        let r = run_job_on_thread(job);
                        drop(permit);
                        report(&*hooks, &client, r);
                        drop(token);
                    });
                if let Err(e) = spawned {
                    report(
                        &*h2,
                        &c2,
                        Err(format!("could not start a handler thread: {e}").into()),
                    );
                }
            }
        }
    }
}

fn report(hooks: &dyn Hooks, client: &Address, result: HandlerResult) {
    if let Err(e) = result {
        let reported = std::panic::catch_unwind(AssertUnwindSafe(|| hooks.error(client, &e)));
        if reported.is_err() {
            tracing::error!(%client, error = %e, "handle_error panicked while reporting this error");
        }
    }
}

/// `verify_request`, with a panic counting as a refusal reported to `handle_error`
/// (Python sends exceptions of `verify_request` to `handle_error` too).
pub(crate) fn verify(hooks: &dyn Hooks, client: &Address, info: &ServerInfo) -> bool {
    match std::panic::catch_unwind(AssertUnwindSafe(|| hooks.verify(client, info))) {
        Ok(ok) => ok,
        Err(p) => {
            report(hooks, client, Err(panic_error(p)));
            false
        }
    }
}

/// `handle_timeout`, whose panic is logged and does not stop the server.
pub(crate) fn timeout(hooks: &dyn Hooks, info: &ServerInfo) {
    if std::panic::catch_unwind(AssertUnwindSafe(|| hooks.timeout(info))).is_err() {
        tracing::error!(server = %info.address, "handle_timeout panicked");
    }
}

async fn run_job(job: Job) -> HandlerResult {
    match job {
        Job::Async(f) => AssertUnwindSafe(f)
            .catch_unwind()
            .await
            .unwrap_or_else(|p| Err(panic_error(p))),
        Job::Blocking(f) => {
            match tokio::task::spawn_blocking(move || std::panic::catch_unwind(AssertUnwindSafe(f)))
                .await
            {
                Ok(Ok(r)) => r,
                Ok(Err(p)) => Err(panic_error(p)),
                Err(e) => Err(format!("handler task failed: {e}").into()),
            }
        }
    }
}

fn run_job_on_thread(job: Job) -> HandlerResult {
    match job {
        Job::Blocking(f) => {
            std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panic_error(p)))
        }
        Job::Async(f) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(AssertUnwindSafe(f).catch_unwind())
                .unwrap_or_else(|p| Err(panic_error(p)))
        }
    }
}
