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
    pub fn request(&self) {
        self.tx.send_modify(|s| s.requested = true);
    }

    /// Ask the loop to stop and wait until it has.
    pub async fn shutdown(&self) {
        self.request();
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|s| !s.serving || !s.requested).await;
    }

    /// [`shutdown`](Self::shutdown) for synchronous code: blocks the calling thread.
    /// Do not call it from a thread that drives the server's runtime (it would wait
    /// for itself); from any other thread it is fine.
    pub fn shutdown_blocking(&self) {
        futures::executor::block_on(self.shutdown());
    }

    /// Whether a serving loop is running.
    pub fn is_serving(&self) -> bool {
        self.tx.borrow().serving
    }

    /// Whether a stop was requested and not yet acted on.
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
