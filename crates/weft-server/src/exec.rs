//! How requests run: the configured concurrency, and the reporting of each request's
//! error or panic to the server's `handle_error`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;
use weft_core::Address;

use crate::config::{Concurrency, ServerConfig};
use crate::error::HandlerResult;
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
                let spawned = std::thread::Builder::new()
                    .name("weft-server-handler".into())
                    .spawn(move || {
                        let r = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map_err(Into::into)
                            .and_then(|rt| rt.block_on(catch(job)));
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
