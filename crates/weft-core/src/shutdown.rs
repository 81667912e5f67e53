//! [`ShutdownHandle`]: ask a serving loop to stop, from any task or thread, and wait until it
//! has. The one stop mechanism of weft: the [`Reactor`](crate::Reactor)'s `stop`/`run` and
//! weft-server's `serve_forever` both use it.

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Debug, Default, Clone, Copy)]
struct State {
    requested: bool,
    serving: bool,
}

/// A cloneable handle that stops a serving loop (Python's `server.shutdown()`, Twisted's
/// `reactor.stop()`), usable from any task or thread.
///
/// A loop marks itself running with [`begin_serving`](Self::begin_serving) and watches
/// [`ServingGuard::requested`]. [`shutdown`](Self::shutdown) asks and returns once the loop has
/// stopped. If no loop is running, it returns at once and the request stays pending: the next
/// loop returns immediately (so "start serving in a thread, then shut down" never hangs,
/// whichever runs first).
///
/// Asking from inside the loop itself (a handler of a sequential server) must not wait for
/// the loop: use [`request`](Self::request) there.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handle = weft_core::ShutdownHandle::default();
/// let mut guard = handle.begin_serving();
/// assert!(handle.is_serving());
/// let serving = tokio::spawn(async move {
///     guard.requested().await; // the loop's "until stopped"
/// });
/// handle.shutdown().await; // asks, then waits until the guard is gone
/// assert!(!handle.is_serving());
/// serving.await.unwrap();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    tx: Arc<watch::Sender<State>>,
}

impl Default for ShutdownHandle {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(State::default())),
        }
    }
}

impl ShutdownHandle {
    /// Asks the loop to stop, without waiting.
    ///
    /// ```
    /// let handle = weft_core::ShutdownHandle::default();
    /// handle.request();
    /// assert!(handle.is_requested()); // pending until a loop sees it
    /// drop(handle.begin_serving()); // a loop that returned at once clears it
    /// assert!(!handle.is_requested());
    /// ```
    pub fn request(&self) {
        self.tx.send_modify(|s| s.requested = true);
    }

    /// Asks the loop to stop and waits until it has.
    ///
    /// # Cancel safety
    ///
    /// The stop is requested when the future is first polled; dropping it after that only
    /// gives up the waiting, the loop still stops.
    ///
    /// See [`ShutdownHandle`] for an example.
    pub async fn shutdown(&self) {
        self.request();
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|s| !s.serving || !s.requested).await;
    }

    /// [`shutdown`](Self::shutdown) for synchronous code: blocks the calling thread. Do not
    /// call it from a thread that drives the loop's runtime (it would wait for itself); from
    /// any other thread it is fine.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handle = weft_core::ShutdownHandle::default();
    /// let mut guard = handle.begin_serving();
    /// let stopper = std::thread::spawn({
    ///     let handle = handle.clone();
    ///     move || handle.shutdown_blocking()
    /// });
    /// guard.requested().await;
    /// drop(guard);
    /// stopper.join().unwrap();
    /// # }
    /// ```
    pub fn shutdown_blocking(&self) {
        // The wait needs no I/O or timer driver: a bare current-thread runtime runs it.
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt.block_on(self.shutdown()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot wait for the shutdown; only requesting it");
                self.request();
            }
        }
    }

    /// Requests a stop on the first SIGINT (Ctrl-C) or SIGTERM: the loop returns cleanly.
    /// Call it from within a tokio runtime; the handlers are installed before it returns, so
    /// a signal from then on is caught.
    ///
    /// tokio never uninstalls a signal handler: once this was called, SIGINT and SIGTERM no
    /// longer kill the process by default, and signals after the first are ignored.
    ///
    /// # Errors
    /// The I/O error if a handler cannot be installed.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let handle = weft_core::ShutdownHandle::default();
    /// handle.request_on_signals()?;
    /// let mut guard = handle.begin_serving();
    /// guard.requested().await; // until Ctrl-C
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
            tracing::info!(signal = name, "stopping");
            handle.request();
        });
        Ok(())
    }

    /// Whether a serving loop is running.
    ///
    /// See [`ShutdownHandle`] for an example.
    pub fn is_serving(&self) -> bool {
        self.tx.borrow().serving
    }

    /// Whether a stop was requested and not yet acted on.
    ///
    /// See [`request`](Self::request) for an example.
    pub fn is_requested(&self) -> bool {
        self.tx.borrow().requested
    }

    /// Marks a serving loop as running, for the loop itself: it watches the returned guard's
    /// [`requested`](ServingGuard::requested), and dropping the guard marks it stopped (and
    /// clears the request).
    ///
    /// See [`ShutdownHandle`] for an example.
    pub fn begin_serving(&self) -> ServingGuard {
        self.tx.send_modify(|s| s.serving = true);
        ServingGuard {
            handle: self.clone(),
            rx: self.tx.subscribe(),
        }
    }
}

/// A running loop's side of a [`ShutdownHandle`] (from
/// [`ShutdownHandle::begin_serving`]).
///
/// See [`ShutdownHandle`] for an example.
#[derive(Debug)]
pub struct ServingGuard {
    handle: ShutdownHandle,
    rx: watch::Receiver<State>,
}

impl ServingGuard {
    /// Resolves when a stop is requested (at once if one is pending).
    ///
    /// See [`ShutdownHandle`] for an example.
    pub async fn requested(&mut self) {
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
