//! The worker-process pool of [`crate::Concurrency::Processes`]:
//! the parent starts workers that inherit the listening socket, restarts the ones that
//! die, and stops them on shutdown. See [`ProcessPool`] for the design.
//!
//! # Examples
//!
//! The worker is the same program: its `main` reaches the same `bind_with`, which
//! adopts the inherited socket instead of binding. Whatever else `main` does (here,
//! a one-time setup) can be skipped in workers with [`is_worker`]. This example starts
//! processes, so it is only compiled here.
//!
//! ```no_run
//! use weft_server::{pool, Concurrency, ProcessPool, ServerConfig, TcpServer};
//! # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
//! # struct Echo;
//! # impl RequestHandler<StreamRequest> for Echo {
//! #     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
//! #         let line = req.read_line().await?;
//! #         req.write_all(&line).await?;
//! #         Ok(())
//! #     }
//! # }
//! # fn prepare_data_directory() -> std::io::Result<()> { Ok(()) }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     if !pool::is_worker() {
//!         prepare_data_directory()?; // once, in the parent
//!     }
//!     let config = ServerConfig::new().concurrency(Concurrency::Processes(ProcessPool::new(4)));
//!     let server = TcpServer::bind_with("127.0.0.1:8000", Echo, config).await?;
//!     server.serve_forever().await?; // parent: supervise; worker: serve
//!     server.close().await?;
//!     Ok(())
//! }
//! ```

use std::os::fd::{AsRawFd, BorrowedFd};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{SockRef, Socket, Type};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::config::ProcessPool;
use crate::error::ServerError;
use weft_core::{ServingGuard, ShutdownHandle};

/// The environment variable that tells a worker which descriptor is its inherited
/// listening socket.
///
/// # Examples
///
/// ```
/// use weft_server::pool::LISTEN_FD_ENV;
///
/// assert_eq!(LISTEN_FD_ENV, "WEFT_SERVER_LISTEN_FD");
/// // Set in workers only (a doc test is not one).
/// let inherited_fd = std::env::var(LISTEN_FD_ENV).ok();
/// # let _ = inherited_fd;
/// ```
pub const LISTEN_FD_ENV: &str = "WEFT_SERVER_LISTEN_FD";

/// The environment variable with the pid of the pool's parent: a process whose parent is
/// another (say, a program started by a worker, which inherits the environment but not
/// the descriptor) is not a worker.
///
/// # Examples
///
/// ```
/// use weft_server::pool::PARENT_PID_ENV;
///
/// assert_eq!(PARENT_PID_ENV, "WEFT_SERVER_PARENT_PID");
/// // A worker's parent is the pool's parent; anything else merely inherited the variable.
/// let is_pool_child = std::env::var(PARENT_PID_ENV)
///     .ok()
///     .and_then(|pid| pid.parse::<u32>().ok())
///     == Some(std::os::unix::process::parent_id());
/// assert_eq!(is_pool_child, weft_server::pool::is_worker());
/// ```
pub const PARENT_PID_ENV: &str = "WEFT_SERVER_PARENT_PID";

/// Whether this process is a worker of a [`ProcessPool`]: the next server bound in it
/// adopts the inherited socket. Programs whose `main` does more than run the server
/// can check this to skip the rest.
///
/// # Examples
///
/// ```
/// use weft_server::pool;
///
/// if pool::is_worker() {
///     // A worker: only bind and serve.
/// } else {
///     // The parent (or a program without a pool): do the one-time work too.
/// }
/// assert!(!pool::is_worker()); // a doc test was not started by a pool
/// ```
pub fn is_worker() -> bool {
    std::env::var_os(LISTEN_FD_ENV).is_some()
        && std::env::var(PARENT_PID_ENV)
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            == Some(std::os::unix::process::parent_id())
}

static TAKEN: AtomicBool = AtomicBool::new(false);

/// Takes ownership of the inherited listening socket, once per process.
#[allow(unsafe_code)] // Adopting an inherited descriptor needs `from_raw_fd`.
pub(crate) fn take_inherited(expected: Type) -> Result<Option<Socket>, ServerError> {
    if !is_worker() {
        return Ok(None);
    }
    let Some(value) = std::env::var_os(LISTEN_FD_ENV) else {
        return Ok(None);
    };
    if TAKEN.swap(true, Ordering::SeqCst) {
        // A second server in a worker binds normally.
        return Ok(None);
    }
    let fd: i32 = value
        .to_str()
        .and_then(|s| s.parse().ok())
        .filter(|fd| *fd > 2)
        .ok_or_else(|| ServerError::Worker(format!("bad {LISTEN_FD_ENV} value {value:?}")))?;
    // Check that the descriptor is open before owning it.
    if nix::fcntl::fcntl(
        // SAFETY: `borrow_raw` only requires the descriptor to stay open while the
        // borrow lives; the borrow is used for this one `fcntl` call, which fails
        // cleanly (EBADF) if it is not open, and nothing closes it meanwhile.
        unsafe { BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .is_err()
    {
        return Err(ServerError::Worker(format!(
            "inherited descriptor {fd} is not open"
        )));
    }
    // SAFETY: the parent (`spawn_worker` below) started this process with `fd` being
    // an open listening socket it let us inherit, and set LISTEN_FD_ENV to it (and
    // PARENT_PID_ENV to its pid, which `is_worker` checked against our parent, so the
    // variables were not merely inherited from a worker); the check above confirms it
    // is open. `TAKEN` guarantees this happens at most once per
    // process, so exactly one owner ever exists and the descriptor is closed once.
    let sock = unsafe { <Socket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    sock.set_cloexec(true)?;
    let ty = sock.r#type()?;
    if ty != expected {
        return Err(ServerError::Worker(format!(
            "inherited descriptor {fd} has socket type {ty:?}, expected {expected:?}"
        )));
    }
    tracing::debug!(fd, "worker adopted the inherited socket");
    Ok(Some(sock))
}

/// In a worker: stop the server when the parent closes our standard input.
pub(crate) fn watch_stdin(handle: ShutdownHandle) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        tracing::debug!("worker: standard input closed, shutting down");
        handle.request();
    });
}

/// Serialises the moments when the listening descriptor is inheritable.
static SPAWN_LOCK: Mutex<()> = Mutex::new(());

fn spawn_worker(fd: BorrowedFd<'_>, pool: &ProcessPool) -> std::io::Result<tokio::process::Child> {
    let program = match &pool.program {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let args: Vec<_> = match &pool.args {
        Some(a) => a.clone(),
        None => std::env::args_os().skip(1).collect(),
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env(LISTEN_FD_ENV, fd.as_raw_fd().to_string())
        .env(PARENT_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::piped())
        .kill_on_drop(true);
    let sock = SockRef::from(&fd);
    let _lock = SPAWN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    sock.set_cloexec(false)?;
    let child = cmd.spawn();
    sock.set_cloexec(true)?;
    child
}

async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

/// Keeps worker slot `slot` alive until `stop`.
async fn run_slot(
    slot: usize,
    fd: BorrowedFd<'_>,
    pool: &ProcessPool,
    mut stop: watch::Receiver<bool>,
    pids: &Mutex<Vec<Option<u32>>>,
) {
    let set_pid = |pid: Option<u32>| {
        if let Some(p) = pids.lock().unwrap_or_else(|e| e.into_inner()).get_mut(slot) {
            *p = pid;
        }
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        if *stop.borrow() {
            return;
        }
        let mut child = match spawn_worker(fd, pool) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(slot, error = %e, "could not start a worker");
                if sleep_or_stop(backoff, &mut stop).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let started = Instant::now();
        // `Child::wait` closes the child's stdin: keep it out of reach, it is the
        // worker's life line.
        let stdin = child.stdin.take();
        set_pid(child.id());
        tracing::debug!(slot, pid = ?child.id(), "worker started");
        let exited = tokio::select! {
            status = child.wait() => Some(status),
            _ = stop.wait_for(|s| *s) => None,
        };
        match exited {
            Some(status) => {
                set_pid(None);
                tracing::warn!(slot, ?status, "worker exited; restarting it");
                if started.elapsed() > Duration::from_secs(1) {
                    backoff = Duration::from_millis(50);
                } else {
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                if sleep_or_stop(backoff, &mut stop).await {
                    return;
                }
            }
            None => {
                drop(stdin);
                if tokio::time::timeout(pool.grace, child.wait())
                    .await
                    .is_err()
                {
                    tracing::warn!(slot, "worker did not stop in time; killing it");
                    let _ = child.kill().await;
                }
                set_pid(None);
                return;
            }
        }
    }
}

/// The parent's `serve_forever`: keep `max_children` workers running until shutdown.
pub(crate) async fn supervise(
    fd: BorrowedFd<'_>,
    pool: &ProcessPool,
    guard: &mut ServingGuard,
    pids: &Mutex<Vec<Option<u32>>>,
) -> Result<(), ServerError> {
    *pids.lock().unwrap_or_else(|e| e.into_inner()) = vec![None; pool.max_children];
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = futures::future::join_all(
        (0..pool.max_children).map(|slot| run_slot(slot, fd, pool, stop_rx.clone(), pids)),
    );
    let mut slots = std::pin::pin!(slots);
    tokio::select! {
        _ = &mut slots => {}
        _ = guard.requested() => {
            let _ = stop_tx.send(true);
            slots.await;
        }
    }
    Ok(())
}
