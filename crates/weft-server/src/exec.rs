//! How requests run: the configured concurrency, where a blocking handler's work runs,
//! and the reporting of each request's error or panic to the server's `handle_error`.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::task::TaskTracker;
use weft_core::Address;

use crate::config::{Concurrency, ServerConfig};
use crate::error::{HandlerError, HandlerResult};
use crate::handler::panic_error;
use crate::hooks;
use crate::request::ServerInfo;

/// One request's work: build the request, run the handler, finish (close or reply).
pub(crate) type Job = BoxFuture<'static, HandlerResult>;

/// Where a job's outcome goes (the server's `handle_error`).
pub(crate) type Report = Arc<dyn Fn(HandlerResult) + Send + Sync>;

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
    /// error or panic.
    pub(crate) async fn run(&self, job: Job, report: Report, permit: Option<OwnedSemaphorePermit>) {
        match self.mode {
            Mode::Sequential => report(catch(job).await),
            Mode::Tasks => {
                self.tracker.spawn(async move {
                    let r = catch(job).await;
                    drop(permit);
                    report(r);
                });
            }
            Mode::Threads => {
                let token = self.tracker.token();
                let on_thread = report.clone();
                // The runtime serving the socket, whose I/O driver the connection is
                // registered with.
                let runtime = Handle::current();
                let spawned = std::thread::Builder::new()
                    .name("weft-server-handler".into())
                    .spawn(move || {
                        let r = on_this_thread(&runtime, job);
                        drop(permit);
                        on_thread(r);
                        drop(token);
                    });
                if let Err(e) = spawned {
                    report(Err(format!("could not start a handler thread: {e}").into()));
                }
            }
        }
    }
}

/// A blocking handler's work, handed over to its request's thread (see [`blocking`]).
type Work = Box<dyn FnOnce()>;

thread_local! {
    /// Whether this thread is a `Threads` handler thread polling its job, so that the
    /// job's blocking work can run right here ([`on_this_thread`]).
    static POLLING_JOB: Cell<bool> = const { Cell::new(false) };
    /// The blocking work the job handed over in that poll.
    static HANDED_OVER: Cell<Option<Work>> = const { Cell::new(None) };
}

/// The body of a `Threads` handler thread (`ThreadingMixIn`: one thread per request,
/// running its handler): drives `job` with the server's runtime (`runtime`), whose I/O
/// driver and timers serve the connection, and runs the blocking work the job hands over
/// (a [`Blocking`](crate::Blocking) handler's `setup`, `handle` and `finish`) on this
/// thread, between two `block_on`s. No runtime of its own, no blocking-pool thread
/// beside it.
///
/// `Handle::block_on` drives nothing itself: on a multi-thread runtime the workers drive
/// I/O and timers, on a current-thread one the thread in `Runtime::block_on` does (the
/// one serving, or waiting for these threads in `close`).
fn on_this_thread(runtime: &Handle, job: Job) -> HandlerResult {
    // `Handle::current()` works in blocking handlers, as on tokio's blocking pool.
    let _context = runtime.enter();
    let mut job = pin!(catch(job));
    loop {
        let next = runtime.block_on(poll_fn(|cx| {
            POLLING_JOB.set(true);
            // Cannot unwind: `catch` turns the job's panic into its result.
            let polled = job.as_mut().poll(cx);
            POLLING_JOB.set(false);
            match (polled, HANDED_OVER.take()) {
                (Poll::Ready(result), _) => Poll::Ready(ControlFlow::Break(result)),
                (Poll::Pending, Some(work)) => Poll::Ready(ControlFlow::Continue(work)),
                (Poll::Pending, None) => Poll::Pending,
            }
        }));
        match next {
            // Outside `block_on`: the handler's I/O blocks on the runtime in turn.
            ControlFlow::Continue(work) => work(),
            ControlFlow::Break(result) => return result,
        }
    }
}

/// Runs a blocking handler's work: on the request's own thread under `Threads`, else on
/// tokio's blocking pool. Its panic becomes the handler's error.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HandlerError> {
    if POLLING_JOB.get() {
        let (done, result) = oneshot::channel();
        // The job awaits this work before it could hand over more: the slot is empty.
        HANDED_OVER.set(Some(Box::new(move || {
            let _ = done.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
        })));
        return match result.await {
            Ok(ran) => ran.map_err(panic_error),
            Err(_) => Err("the handler thread dropped its work".into()),
        };
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(t) => Ok(t),
        Err(e) if e.is_panic() => Err(panic_error(e.into_panic())),
        Err(e) => Err(format!("handler task failed: {e}").into()),
    }
}

/// Runs a job, its panic turned into the handler's error.
async fn catch(job: Job) -> HandlerResult {
    AssertUnwindSafe(job)
        .catch_unwind()
        .await
        .unwrap_or_else(|p| Err(panic_error(p)))
}

/// The report of a request from `client`: its error goes to the server's `handle_error`.
pub(crate) fn reporter(info: &ServerInfo, client: &Address) -> Report {
    let (hooks, client) = (info.config.hooks.0.clone(), client.clone());
    Arc::new(move |result: HandlerResult| {
        if let Err(e) = result {
            hooks::report(&hooks, &client, &e);
        }
    })
}
