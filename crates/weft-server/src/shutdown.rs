//! [`ShutdownHandle`]: stop a serving loop from another task or thread.

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct State {
    requested: bool,
    serving: bool,
}

/// A cloneable handle that stops a server's `serve_forever` (Python's
/// `server.shutdown()`), usable from any task or thread.
///
/// [`shutdown`](Self::shutdown) returns once the serving loop has stopped. If no loop
/// is running, it returns at once and the request stays pending: the next
/// `serve_forever` returns immediately (so "start serving in a thread, then shut down"
/// never hangs, whichever runs first). Requests already being handled are not
/// interrupted; `close` waits for them (see `block_on_close`).
///
/// As in Python, `shutdown().await` from inside a handler of a `Sequential` server would
/// wait for itself (the loop is waiting for that handler): use [`request`](Self::request)
/// there.
///
/// # Examples
///
/// ```
/// use weft_server::{Blocking, Concurrency, ServerConfig, TcpServer};
/// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
/// # struct Quiet;
/// # impl BlockingRequestHandler<BlockingStreamRequest> for Quiet {
/// #     fn handle(&self, _req: &mut BlockingStreamRequest) -> HandlerResult { Ok(()) }
/// # }
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), weft_server::ServerError> {
/// let config = ServerConfig::new().concurrency(Concurrency::threads());
/// let server = TcpServer::bind_with("127.0.0.1:0", Blocking(Quiet), config).await?;
/// let handle = server.shutdown_handle();
///
/// // Python's test_shutdown: stop the server from a plain thread.
/// let stopper = std::thread::spawn(move || handle.shutdown_blocking());
/// server.serve_forever().await?; // returns once the thread asked
/// stopper.join().unwrap();
/// server.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    tx: Arc<watch::Sender<State>>,
}

impl Default for ShutdownHandle {
    fn default() -> Self {
        ShutdownHandle {
            tx: Arc::new(watch::Sender::new(State::default())),
        }
    }
}

impl ShutdownHandle {
    /// Ask the loop to stop, without waiting.
    ///
    /// # Examples
    ///
    /// A `quit` command that stops a `Sequential` server from inside its handler, where
    /// [`shutdown`](Self::shutdown) would wait for itself:
    ///
    /// ```
    /// use std::sync::{Arc, OnceLock};
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use weft_server::{Concurrency, ServerConfig, ShutdownHandle, TcpServer};
    /// use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    ///
    /// struct Quit(Arc<OnceLock<ShutdownHandle>>);
    /// impl RequestHandler<StreamRequest> for Quit {
    ///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    ///         if req.read_line().await? == b"quit\n" {
    ///             if let Some(handle) = self.0.get() {
    ///                 handle.request(); // not `shutdown().await`: the loop is waiting for us
    ///             }
    ///             req.write_all(b"bye\n").await?;
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let slot = Arc::new(OnceLock::new());
    /// let config = ServerConfig::new().concurrency(Concurrency::Sequential);
    /// let server = TcpServer::bind_with("127.0.0.1:0", Quit(slot.clone()), config).await?;
    /// let _ = slot.set(server.shutdown_handle());
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    ///
    /// let client = tokio::spawn(async move {
    ///     let mut stream = tokio::net::TcpStream::connect(addr).await?;
    ///     stream.write_all(b"quit\n").await?;
    ///     let mut reply = String::new();
    ///     stream.read_to_string(&mut reply).await?;
    ///     std::io::Result::Ok(reply)
    /// });
    /// server.serve_forever().await?; // returns after the `quit`
    /// assert_eq!(client.await??, "bye\n");
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn request(&self) {
        self.tx.send_modify(|s| s.requested = true);
    }

    /// Ask the loop to stop and wait until it has.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in the sense that matters: the stop is requested when the future is
    /// first polled, and dropping the future after that (say, in `tokio::time::timeout`)
    /// only gives up the waiting; the server still stops.
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
    /// let handle = server.shutdown_handle();
    /// let serving = tokio::spawn(async move { server.serve_forever().await });
    ///
    /// handle.shutdown().await;
    /// assert!(!handle.is_serving());
    /// serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        self.request();
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|s| !s.serving || !s.requested).await;
    }

    /// [`shutdown`](Self::shutdown) for synchronous code: blocks the calling thread.
    /// Do not call it from a thread that drives the server's runtime (it would wait
    /// for itself); from any other thread it is fine.
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
    /// let handle = server.shutdown_handle();
    ///
    /// // A plain thread, not a thread of the runtime.
    /// let stopper = std::thread::spawn(move || handle.shutdown_blocking());
    /// server.serve_forever().await?;
    /// stopper.join().map_err(|_| "the stopping thread panicked")?;
    /// server.close().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn shutdown_blocking(&self) {
        futures::executor::block_on(self.shutdown());
    }

    /// Requests a stop on the first SIGINT (Ctrl-C) or SIGTERM: what a `KeyboardInterrupt`
    /// does to Python's `serve_forever`, but clean: the loop returns `Ok`, and `close` then
    /// waits for the requests being handled. Call it from within a tokio runtime; the
    /// handlers are installed before it returns, so a signal from then on is caught.
    ///
    /// tokio never uninstalls a signal handler: once this was called, SIGINT and SIGTERM
    /// no longer kill the process by default, and signals after the first are ignored.
    ///
    /// # Errors
    ///
    /// The I/O error if a handler cannot be installed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use weft_server::TcpServer;
    /// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    /// # struct Quiet;
    /// # impl RequestHandler<StreamRequest> for Quiet {
    /// #     async fn handle(&self, _req: &mut StreamRequest) -> HandlerResult { Ok(()) }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = TcpServer::bind("127.0.0.1:1234", Quiet).await?;
    /// server.shutdown_handle().request_on_signals()?;
    /// server.serve_forever().await?; // until Ctrl-C
    /// server.close().await?; // waits for the requests in flight
    /// # Ok(()) }
    /// ```
    pub fn request_on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let handle = self.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            tracing::info!(signal = name, "stopping the server");
            handle.request();
        });
        Ok(())
    }

    /// Whether a serving loop is running.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
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
    /// let server = Arc::new(TcpServer::bind("127.0.0.1:0", Quiet).await?);
    /// let handle = server.shutdown_handle();
    /// assert!(!handle.is_serving());
    ///
    /// let serving = tokio::spawn({
    ///     let server = server.clone();
    ///     async move { server.serve_forever().await }
    /// });
    /// while !handle.is_serving() {
    ///     tokio::task::yield_now().await; // let the loop start
    /// }
    ///
    /// handle.shutdown().await;
    /// assert!(!handle.is_serving());
    /// serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn is_serving(&self) -> bool {
        self.tx.borrow().serving
    }

    /// Whether a stop was requested and not yet acted on.
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
    /// let handle = server.shutdown_handle();
    ///
    /// // Asking before the loop runs: the request stays pending...
    /// handle.request();
    /// assert!(handle.is_requested());
    ///
    /// // ...and the next `serve_forever` returns at once, clearing it.
    /// server.serve_forever().await?;
    /// assert!(!handle.is_requested());
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    pub fn is_requested(&self) -> bool {
        self.tx.borrow().requested
    }

    /// Marks a loop as running; the guard marks it stopped (and clears the request)
    /// when dropped.
    pub(crate) fn begin(&self) -> ServingGuard {
        self.tx.send_modify(|s| s.serving = true);
        ServingGuard {
            handle: self.clone(),
            rx: self.tx.subscribe(),
        }
    }
}

pub(crate) struct ServingGuard {
    handle: ShutdownHandle,
    rx: watch::Receiver<State>,
}

impl ServingGuard {
    /// Resolves when a stop is requested.
    pub(crate) async fn requested(&mut self) {
        if self.rx.wait_for(|s| s.requested).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for ServingGuard {
    fn drop(&mut self) {
        self.handle.tx.send_modify(|s| {
            s.serving = false;
            s.requested = false;
        });
    }
}
