//! Tests that need a process to themselves (this binary has no libtest harness):
//!
//! - fork per connection ([`ForkingServer`]) must run in a single-threaded process: the
//!   test re-executes this binary in the `fork-server` role, whose `main` forks;
//! - the worker-process pool re-executes this binary as its workers;
//! - the descriptor-leak check counts `/proc/self/fd`, which only works when no other
//!   test opens sockets at the same time.
//!
//! It takes libtest's arguments and reports as libtest does (through `libtest-mimic`):
//! `cargo test --test isolated -- NAME` runs only the tests whose name contains NAME.

// The `fork-server` role tells its parent the address over stdout.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use weft_server::fork::{ForkingDatagramServer, ForkingServer, thread_count};
use weft_server::{
    Blocking, BlockingRequestHandler, BlockingStreamRequest, Concurrency, DatagramRequest,
    HandlerResult, Handles, ProcessPool, RequestHandler, ServerConfig, ServerError, StreamRequest,
    TcpServer, UdpServer, UnixDatagramServer, UnixStreamServer,
};

const ROLE: &str = "WEFT_ISOLATED_ROLE";
const LIMIT: Duration = Duration::from_secs(20);

/// Replies `PID LINE`; `panic` panics, `abort` kills the process.
#[derive(Debug, Clone, Copy)]
struct PidEcho;

fn reply(line: &[u8]) -> Vec<u8> {
    match line {
        b"panic\n" => panic!("Test panic"),
        b"abort\n" => std::process::abort(),
        _ => {}
    }
    let mut out = format!("{} ", std::process::id()).into_bytes();
    out.extend_from_slice(line);
    out
}

impl BlockingRequestHandler<BlockingStreamRequest> for PidEcho {
    fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
        let line = req.read_line()?;
        req.write_all(&reply(&line))?;
        Ok(())
    }
}

impl RequestHandler<StreamRequest> for PidEcho {
    async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
        let line = req.read_line().await?;
        req.write_all(&reply(&line)).await?;
        Ok(())
    }
}

impl RequestHandler<DatagramRequest> for PidEcho {
    async fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
        let r = reply(req.packet());
        req.wfile.extend_from_slice(&r);
        Ok(())
    }
}

impl BlockingRequestHandler<DatagramRequest> for PidEcho {
    fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
        let r = reply(req.packet());
        req.wfile.extend_from_slice(&r);
        Ok(())
    }
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    if let Ok(role) = std::env::var(ROLE) {
        match role.as_str() {
            "fork-tcp" | "fork-unix" | "fork-udp" | "fork-unix-dgram" => fork_role(&role),
            other => panic!("unknown role {other}"),
        }
        return;
    }
    if weft_server::pool::is_worker() {
        let kind = std::env::args().nth(1).unwrap_or_default();
        worker_role(&kind);
        return;
    }
    let tests: &[(&str, fn())] = &[
        ("no_descriptor_or_thread_leaks_after_close", no_leaks),
        (
            "threads_concurrency_costs_one_thread_per_request",
            one_thread_per_request,
        ),
        ("forking_tcp_server_forks_a_child_per_connection", || {
            forking("fork-tcp")
        }),
        ("forking_unix_server_forks_a_child_per_connection", || {
            forking("fork-unix")
        }),
        ("forking_udp_server_forks_a_child_per_datagram", || {
            forking_dgram("fork-udp")
        }),
        (
            "forking_unix_datagram_server_forks_a_child_per_datagram",
            || forking_dgram("fork-unix-dgram"),
        ),
        (
            "forking_server_refuses_to_fork_a_multi_threaded_process",
            refuses_multi_threaded,
        ),
        ("process_pool_tcp_restarts_dead_workers", pool_tcp),
        ("process_pool_udp", pool_udp),
        ("process_pool_unix_stream", pool_unix),
        ("process_pool_unix_datagram", pool_unix_dgram),
    ];
    // libtest's command line, listing (`--list`, which cargo-nextest uses) and report
    // (`test result: ...`), so totals add up with the other test binaries. One test at a
    // time on the main thread, whatever `--test-threads` says: this process must stay
    // single-threaded while no test runs.
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads = Some(1);
    let trials = tests
        .iter()
        .map(|&(name, test)| {
            libtest_mimic::Trial::test(name, move || {
                test();
                Ok(())
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

// ---------------------------------------------------------------- fork per connection

/// Runs in a fresh, single-threaded process: serves `WEFT_REQUESTS` requests by
/// forking, then closes (waiting for the children) and exits.
fn fork_role(role: &str) {
    // The children's expected panics are reported through handle_error: keep the
    // default hook's message and backtrace out of the test output.
    std::panic::set_hook(Box::new(|_| {}));
    let n: usize = std::env::var("WEFT_REQUESTS").unwrap().parse().unwrap();
    let path = || std::env::var("WEFT_PATH").unwrap();
    let three = ServerConfig::new().concurrency(Concurrency::Processes(ProcessPool::new(3)));
    let config = ServerConfig::new();
    // The two fork server types share no trait: one body for both.
    macro_rules! serve {
        ($server:expr, $max_children:expr) => {{
            let mut server = $server.unwrap();
            assert_eq!(thread_count().unwrap(), 1);
            println!("{}", server.server_address());
            std::io::stdout().flush().unwrap();
            for _ in 0..n {
                server.handle_request().unwrap();
                assert!(server.active_children() <= $max_children);
            }
            server.close().unwrap();
            println!("closed");
        }};
    }
    match role {
        "fork-tcp" => serve!(ForkingServer::bind_tcp("127.0.0.1:0", PidEcho, three), 3),
        "fork-unix" => serve!(ForkingServer::bind_unix(path(), PidEcho, three), 3),
        "fork-udp" => serve!(
            ForkingDatagramServer::bind_udp("127.0.0.1:0", PidEcho, config),
            usize::MAX
        ),
        _ => serve!(
            ForkingDatagramServer::bind_unix(path(), PidEcho, config),
            usize::MAX
        ),
    }
}

/// Sends a datagram, waits up to the duration for the reply.
type Ask = Box<dyn Fn(&[u8], Duration) -> Option<String>>;

fn forking_dgram(role: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fork-dgram.sock");
    let server = RoleChild::start(role, 5, &path);
    let (server_pid, addr) = (server.pid, server.addr.clone());
    // std's UdpSocket and UnixDatagram have the same methods but no shared trait.
    macro_rules! ask_over {
        ($socket:expr) => {{
            let s = $socket.unwrap();
            let addr = addr.clone();
            Box::new(move |d: &[u8], wait| {
                s.set_read_timeout(Some(wait)).unwrap();
                s.send_to(d, &addr).unwrap();
                let mut buf = [0u8; 100];
                let n = s.recv(&mut buf).ok()?;
                Some(String::from_utf8(buf[..n].to_vec()).unwrap())
            })
        }};
    }
    let ask: Ask = if role == "fork-udp" {
        ask_over!(std::net::UdpSocket::bind("127.0.0.1:0"))
    } else {
        ask_over!(std::os::unix::net::UnixDatagram::bind(
            dir.path().join("client.sock")
        ))
    };
    let mut pids = std::collections::HashSet::new();
    for i in 0..3 {
        let r = ask(format!("d{i}").as_bytes(), LIMIT).unwrap();
        let (pid, rest) = r.split_once(' ').unwrap();
        assert_eq!(rest, format!("d{i}"));
        let pid: u32 = pid.parse().unwrap();
        assert_ne!(pid, server_pid);
        pids.insert(pid);
    }
    assert_eq!(pids.len(), 3, "one child per datagram");
    let quiet = Duration::from_millis(300);
    assert_eq!(
        ask(b"panic\n", quiet),
        None,
        "a panicking child sends nothing"
    );
    // Longer than max_packet_size (8192): dropped in the parent, no child, no request used.
    assert_eq!(
        ask(&[b'x'; 8193], quiet),
        None,
        "a datagram over max_packet_size is served cut short"
    );
    assert!(ask(b"last", LIMIT).unwrap().ends_with(" last"));
    let log = server.finish();
    assert!(log.contains("handler panicked: Test panic"), "{log}");
    assert!(!path.exists());
}

/// This binary re-executed in a fork-server `role`, serving `requests` requests on `path`
/// (Unix roles) or a free port; its stderr (errors only) is captured, not printed.
struct RoleChild {
    child: Child,
    pid: u32,
    addr: String,
    out: BufReader<std::process::ChildStdout>,
    err: std::thread::JoinHandle<String>,
}

impl RoleChild {
    fn start(role: &str, requests: usize, path: &std::path::Path) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(ROLE, role)
            .env("WEFT_REQUESTS", requests.to_string())
            .env("WEFT_PATH", path)
            .env("RUST_LOG", "error")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = child.stderr.take().unwrap();
        let err = std::thread::spawn(move || {
            let mut log = String::new();
            let _ = err.read_to_string(&mut log);
            log
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut addr = String::new();
        out.read_line(&mut addr).unwrap();
        RoleChild {
            pid: child.id(),
            addr: addr.trim().to_string(),
            child,
            out,
            err,
        }
    }

    /// Waits for the server to exit after its last request; returns what it logged.
    fn finish(mut self) -> String {
        let status = wait_child(self.child);
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        let log = self.err.join().unwrap();
        assert!(status.success(), "{status:?}\n{log}");
        assert_eq!(rest, "closed\n", "{log}");
        log
    }
}

fn wait_child(mut child: Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("child process did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

fn forking(role: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fork.sock");
    let server = RoleChild::start(role, 7, &path);
    let (server_pid, addr) = (server.pid, server.addr.clone());
    let connect = || -> Box<dyn Conn> {
        if role == "fork-tcp" {
            let s = TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(LIMIT)).unwrap();
            Box::new(s)
        } else {
            let s = std::os::unix::net::UnixStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(LIMIT)).unwrap();
            Box::new(s)
        }
    };
    let ask = |line: &[u8]| -> String {
        let mut s = connect();
        s.write_all(line).unwrap();
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf
    };
    let mut pids = std::collections::HashSet::new();
    for i in 0..3 {
        let r = ask(format!("hello {i}\n").as_bytes());
        let (pid, rest) = r.split_once(' ').unwrap();
        assert_eq!(rest, format!("hello {i}\n"));
        let pid: u32 = pid.parse().unwrap();
        assert_ne!(
            pid, server_pid,
            "handled in a forked child, not in the server"
        );
        pids.insert(pid);
    }
    assert_eq!(pids.len(), 3, "one child per connection");
    // A child that panics, and one that crashes, take nobody else down.
    assert_eq!(ask(b"panic\n"), "");
    assert_eq!(ask(b"abort\n"), "");
    // Two at once: the first holds its connection open while the second is served.
    let mut first = connect();
    let second = ask(b"second\n");
    assert!(second.ends_with(" second\n"), "{second}");
    first.write_all(b"first\n").unwrap();
    let mut buf = String::new();
    first.read_to_string(&mut buf).unwrap();
    assert!(buf.ends_with(" first\n"), "{buf}");
    drop(first);
    let log = server.finish();
    // The panic went to the handler's handle_error, which logs it.
    assert!(log.contains("handler panicked: Test panic"), "{log}");
    assert!(!path.exists(), "close removed the socket file");
}

fn refuses_multi_threaded() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let mut server = ForkingServer::bind_tcp("127.0.0.1:0", PidEcho, ServerConfig::new()).unwrap();
    let addr = server.server_address().as_inet().unwrap();
    let client = TcpStream::connect(addr).unwrap();
    match server.handle_request() {
        Err(ServerError::NotSingleThreaded(n)) => assert!(n >= 2),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(server.active_children(), 0);
    drop(client);
    server.close().unwrap();
    tx.send(()).unwrap();
    helper.join().unwrap();
}

// ---------------------------------------------------------------- worker pool

fn worker_role(kind: &str) {
    runtime().block_on(async {
        let config = ServerConfig::new().concurrency(Concurrency::Processes(ProcessPool::new(2)));
        // The four server types share no trait: one body for all.
        macro_rules! work {
            ($bound:expr) => {{
                let server = $bound.await.unwrap();
                assert!(server.info().is_worker());
                server.serve_forever().await.unwrap();
                server.close().await.unwrap();
            }};
        }
        // The Unix path is the parent's; the worker adopts the inherited socket.
        let path = "/nonexistent/ignored.sock";
        match kind {
            "worker-tcp" => work!(TcpServer::bind_with("127.0.0.1:0", PidEcho, config)),
            "worker-udp" => work!(UdpServer::bind_with(
                "127.0.0.1:0",
                Blocking(PidEcho),
                config
            )),
            "worker-unix" => work!(UnixStreamServer::bind_with(path, PidEcho, config)),
            "worker-unix-dgram" => {
                work!(UnixDatagramServer::bind_with(
                    path,
                    Blocking(PidEcho),
                    config
                ))
            }
            other => panic!("unknown worker kind {other}"),
        }
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn ask_tcp(addr: std::net::SocketAddr, line: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(line).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(LIMIT, s.read_to_end(&mut buf))
        .await
        .unwrap();
    String::from_utf8(buf).unwrap()
}

/// Spawns `serve_forever` of `server` (a pool parent in an `Arc`) and waits for its two
/// workers; the serving task.
macro_rules! serve_pool {
    ($server:expr) => {{
        let s2 = $server.clone();
        let serving = tokio::spawn(async move { s2.serve_forever().await });
        wait_for("two workers", || $server.worker_pids().len() == 2).await;
        serving
    }};
}

/// Waits for a serving task to end after close or shutdown.
async fn served(serving: tokio::task::JoinHandle<Result<(), ServerError>>) {
    tokio::time::timeout(LIMIT, serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

fn pool_tcp() {
    runtime().block_on(async {
        let pool = ProcessPool::new(2)
            .args(["worker-tcp"])
            .grace(Duration::from_secs(5));
        let config = ServerConfig::new().concurrency(Concurrency::Processes(pool));
        let server = Arc::new(
            TcpServer::bind_with("127.0.0.1:0", PidEcho, config)
                .await
                .unwrap(),
        );
        let addr = server.server_address().as_inet().unwrap();
        assert!(matches!(
            server.handle_request().await,
            Err(ServerError::Unsupported(_))
        ));
        let serving = serve_pool!(server);
        let before = server.worker_pids();
        let me = std::process::id();
        for i in 0..10 {
            let r = ask_tcp(addr, format!("hi {i}\n").as_bytes()).await;
            let (pid, rest) = r.split_once(' ').unwrap();
            let pid: u32 = pid.parse().unwrap();
            assert_ne!(pid, me);
            assert!(before.contains(&pid), "{pid} not in {before:?}");
            assert_eq!(rest, format!("hi {i}\n"));
        }
        // A crash kills one worker (and the connection it held) ...
        assert_eq!(ask_tcp(addr, b"abort\n").await, "");
        // ... which is restarted, while the other goes on serving.
        wait_for("a restarted worker", || {
            let now = server.worker_pids();
            now.len() == 2 && now != before
        })
        .await;
        let after = server.worker_pids();
        assert_eq!(
            after.iter().filter(|p| before.contains(p)).count(),
            1,
            "{before:?} -> {after:?}"
        );
        for i in 0..10 {
            let r = ask_tcp(addr, format!("again {i}\n").as_bytes()).await;
            assert!(r.ends_with(&format!(" again {i}\n")), "{r}");
        }
        server.shutdown_handle().shutdown().await;
        served(serving).await;
        assert!(server.worker_pids().is_empty());
        for pid in after {
            // Gone and reaped.
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "worker {pid} still there"
            );
        }
        server.close().await.unwrap();
    });
}

/// Serves `server` (a pool parent) while `n` messages (`msg(i)`) go through `ask` and come
/// back from its workers, then closes it: the workers are gone.
macro_rules! serve_through_pool {
    ($server:expr, $n:expr, $msg:expr, $ask:expr) => {
        async {
            let ask = $ask;
            let server = Arc::new($server);
            let serving = serve_pool!(server);
            let workers = server.worker_pids();
            for i in 0..$n {
                let msg: String = $msg(i);
                let reply = tokio::time::timeout(LIMIT, ask(msg.clone().into_bytes()))
                    .await
                    .unwrap();
                assert_worker_reply(&workers, &reply, &msg);
            }
            server.close().await.unwrap();
            served(serving).await;
            assert!(server.worker_pids().is_empty());
        }
    };
}

/// [`serve_through_pool!`] with ten datagrams from `client` (a `&` tokio UDP or Unix
/// datagram socket) to `to`.
macro_rules! datagrams_through_pool {
    ($server:expr, $client:expr, $to:expr) => {
        serve_through_pool!(
            $server,
            10,
            |i| format!("d{i}"),
            move |msg: Vec<u8>| async move {
                $client.send_to(&msg, $to).await.unwrap();
                let mut buf = [0u8; 64];
                let n = $client.recv(&mut buf).await.unwrap();
                buf[..n].to_vec()
            }
        )
    };
}

/// A pool of two workers running this binary as `worker`.
fn pool_of_two(worker: &str) -> ServerConfig {
    let pool = ProcessPool::new(2).args([worker]);
    ServerConfig::new().concurrency(Concurrency::Processes(pool))
}

fn pool_udp() {
    runtime().block_on(async {
        let server = UdpServer::bind_with("127.0.0.1:0", PidEcho, pool_of_two("worker-udp"))
            .await
            .unwrap();
        let addr = server.server_address().as_inet().unwrap();
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = &client;
        datagrams_through_pool!(server, client, addr).await;
    });
}

fn pool_unix() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool.sock");
    runtime().block_on(async {
        let server = UnixStreamServer::bind_with(&path, PidEcho, pool_of_two("worker-unix"))
            .await
            .unwrap();
        let path = &path;
        serve_through_pool!(
            server,
            6,
            |i| format!("u{i}\n"),
            move |msg: Vec<u8>| async move {
                let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
                s.write_all(&msg).await.unwrap();
                let mut buf = Vec::new();
                s.read_to_end(&mut buf).await.unwrap();
                buf
            }
        )
        .await;
        assert!(
            !path.exists(),
            "the parent removed its socket file, the workers left it"
        );
    });
}

fn pool_unix_dgram() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool-dgram.sock");
    runtime().block_on(async {
        let server =
            UnixDatagramServer::bind_with(&path, PidEcho, pool_of_two("worker-unix-dgram"))
                .await
                .unwrap();
        // A client needs an address of its own to get replies.
        let client = tokio::net::UnixDatagram::bind(dir.path().join("client.sock")).unwrap();
        let (client, to) = (&client, &path);
        datagrams_through_pool!(server, client, to).await;
        assert!(!path.exists(), "the parent removed its socket file");
    });
}

/// A worker's reply is `PID DATA`: `DATA` is `want` and `PID` one of `workers`.
fn assert_worker_reply(workers: &[u32], reply: &[u8], want: &str) {
    let r = std::str::from_utf8(reply).unwrap();
    let (pid, rest) = r.split_once(' ').unwrap();
    assert!(
        workers.contains(&pid.parse().unwrap()),
        "{r:?} from {workers:?}"
    );
    assert_eq!(rest, want);
}

// ---------------------------------------------------------------- leaks

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn handler_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.starts_with("weft-server"))
        .count()
}

/// Spawns `serve_forever` of each server (each an `Arc`); the join handles, in order.
macro_rules! serve_all {
    ($($server:expr),* $(,)?) => {
        vec![$(tokio::spawn({
            let s = $server.clone();
            async move { s.serve_forever().await }
        })),*]
    };
}

async fn leak_round(dir: &std::path::Path, round: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for mode in [
        Concurrency::Sequential,
        Concurrency::tasks(),
        Concurrency::threads(),
    ] {
        let config = ServerConfig::new().concurrency(mode);
        // TCP, async and blocking handlers.
        let tcp = Arc::new(
            TcpServer::bind_with("127.0.0.1:0", PidEcho, config.clone())
                .await
                .unwrap(),
        );
        let tcp_b = Arc::new(
            TcpServer::bind_with("127.0.0.1:0", Blocking(PidEcho), config.clone())
                .await
                .unwrap(),
        );
        let udp = Arc::new(
            UdpServer::bind_with("127.0.0.1:0", PidEcho, config.clone())
                .await
                .unwrap(),
        );
        let upath = dir.join(format!("s{round}.sock"));
        let unix = Arc::new(
            UnixStreamServer::bind_with(&upath, PidEcho, config.clone())
                .await
                .unwrap(),
        );
        let dpath = dir.join(format!("d{round}.sock"));
        let udgram = Arc::new(
            UnixDatagramServer::bind_with(&dpath, PidEcho, config.clone())
                .await
                .unwrap(),
        );
        let tasks = serve_all!(tcp, tcp_b, udp, unix, udgram);
        for a in [tcp.server_address(), tcp_b.server_address()] {
            let r = ask_tcp(a.as_inet().unwrap(), b"x\n").await;
            assert!(r.ends_with(" x\n"));
        }
        let mut us = tokio::net::UnixStream::connect(&upath).await.unwrap();
        us.write_all(b"u\n").await.unwrap();
        let mut buf = Vec::new();
        us.read_to_end(&mut buf).await.unwrap();
        assert!(buf.ends_with(b" u\n"));
        drop(us);
        let c = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.send_to(b"p", udp.server_address().as_inet().unwrap())
            .await
            .unwrap();
        let mut b = [0u8; 64];
        tokio::time::timeout(LIMIT, c.recv(&mut b))
            .await
            .unwrap()
            .unwrap();
        drop(c);
        let cpath = dir.join(format!("c{round}.sock"));
        let c = tokio::net::UnixDatagram::bind(&cpath).unwrap();
        c.send_to(b"p", &dpath).await.unwrap();
        tokio::time::timeout(LIMIT, c.recv(&mut b))
            .await
            .unwrap()
            .unwrap();
        drop(c);
        std::fs::remove_file(&cpath).unwrap();
        tcp.close().await.unwrap();
        tcp_b.close().await.unwrap();
        udp.close().await.unwrap();
        unix.close().await.unwrap();
        udgram.close().await.unwrap();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(!upath.exists() && !dpath.exists());
    }
}

fn no_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    rt.block_on(async {
        // Warm up: lazily created runtime resources (blocking pool, stdin, timers).
        leak_round(dir.path(), 0).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let fds = open_fds();
        for round in 1..4 {
            leak_round(dir.path(), round).await;
        }
        // test_tcpserver_bind_leak: failed binds release their sockets.
        let taken = TcpServer::bind("127.0.0.1:0", PidEcho).await.unwrap();
        let addr = taken.server_address().as_inet().unwrap();
        let taken_udp = UdpServer::bind("127.0.0.1:0", PidEcho).await.unwrap();
        let udp_addr = taken_udp.server_address().as_inet().unwrap();
        let fds_with_taken = open_fds();
        let no_reuse = ServerConfig::new().reuse_address(false);
        for _ in 0..200 {
            assert!(TcpServer::bind(addr, PidEcho).await.is_err());
            assert!(
                UdpServer::bind_with(udp_addr, PidEcho, no_reuse.clone())
                    .await
                    .is_err()
            );
        }
        assert_eq!(open_fds(), fds_with_taken, "failed binds leaked");
        taken_udp.close().await.unwrap();
        taken.close().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(open_fds(), fds, "descriptors leaked");
        wait_for("handler threads to end", || handler_threads() == 0).await;
    });
}

// ---------------------------------------------------------------- one thread per request

/// Requests held at once by [`one_thread_per_request`].
const PARKED: usize = 4;

/// A handler that holds its request until the test lets it go: a stream request waits for
/// its client's line (in the blocking handler, inside the `SyncIoBridge`), a datagram one
/// for `gate`. Replies with the line, or the packet.
#[derive(Clone, Default)]
struct Parked {
    started: Arc<AtomicUsize>,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl Parked {
    fn open_gate(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }
}

impl BlockingRequestHandler<BlockingStreamRequest> for Parked {
    fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
        self.started.fetch_add(1, Ordering::SeqCst);
        let line = req.read_line()?;
        req.write_all(&line)?;
        Ok(())
    }
}

impl RequestHandler<StreamRequest> for Parked {
    async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
        self.started.fetch_add(1, Ordering::SeqCst);
        let line = req.read_line().await?;
        req.write_all(&line).await?;
        Ok(())
    }
}

impl BlockingRequestHandler<DatagramRequest> for Parked {
    fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
        self.started.fetch_add(1, Ordering::SeqCst);
        let (open, opened) = &*self.gate;
        drop(
            opened
                .wait_while(open.lock().unwrap(), |open| !*open)
                .unwrap(),
        );
        req.wfile = req.packet().to_vec();
        Ok(())
    }
}

/// `ThreadingMixIn` runs each request on one thread: under `Threads`, `PARKED` requests
/// held in their handlers add `PARKED` threads to the process (not two each: no
/// blocking-pool thread beside the handler's), whatever the handler flavour, on a
/// multi-thread runtime as on a current-thread one (whose I/O driver and timers the
/// handler threads use while the serving thread drives them).
fn one_thread_per_request() {
    for flavor in ["multi-thread", "current-thread"] {
        let rt = match flavor {
            "multi-thread" => runtime(),
            _ => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        };
        rt.block_on(async {
            let p = Parked::default();
            let added = stream_threads(Blocking(p.clone()), &p).await;
            assert_eq!(added, PARKED, "{flavor} runtime, blocking stream handlers");
            let p = Parked::default();
            let added = stream_threads(p.clone(), &p).await;
            assert_eq!(added, PARKED, "{flavor} runtime, async stream handlers");
            let added = datagram_threads().await;
            assert_eq!(
                added, PARKED,
                "{flavor} runtime, blocking datagram handlers"
            );
        });
    }
}

/// The threads `PARKED` connections held in `handler` (whose counter `p` is) add to the
/// process under `Threads`; checks their replies and that the threads end.
async fn stream_threads<H: Handles<StreamRequest>>(handler: H, p: &Parked) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = ServerConfig::new().concurrency(Concurrency::threads());
    let server = Arc::new(
        TcpServer::bind_with("127.0.0.1:0", handler, config)
            .await
            .unwrap(),
    );
    let addr = server.server_address().as_inet().unwrap();
    let tasks = serve_all!(server);
    let before = thread_count().unwrap();
    let mut clients = Vec::new();
    for _ in 0..PARKED {
        clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    wait_for("the handlers to start", || {
        p.started.load(Ordering::SeqCst) == PARKED
    })
    .await;
    let during = thread_count().unwrap();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("line {i}\n").as_bytes()).await.unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let mut reply = String::new();
        tokio::time::timeout(LIMIT, c.read_to_string(&mut reply))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reply, format!("line {i}\n"));
    }
    server.close().await.unwrap();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    wait_for("handler threads to end", || handler_threads() == 0).await;
    during - before
}

/// The same for `PARKED` datagrams held in a blocking handler.
async fn datagram_threads() -> usize {
    let p = Parked::default();
    let config = ServerConfig::new().concurrency(Concurrency::threads());
    let server = Arc::new(
        UdpServer::bind_with("127.0.0.1:0", Blocking(p.clone()), config)
            .await
            .unwrap(),
    );
    let addr = server.server_address().as_inet().unwrap();
    let tasks = serve_all!(server);
    let before = thread_count().unwrap();
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..PARKED {
        client
            .send_to(format!("packet {i}").as_bytes(), addr)
            .await
            .unwrap();
    }
    wait_for("the handlers to start", || {
        p.started.load(Ordering::SeqCst) == PARKED
    })
    .await;
    let during = thread_count().unwrap();
    p.open_gate();
    let mut replies = Vec::new();
    let mut buf = [0u8; 64];
    for _ in 0..PARKED {
        let n = tokio::time::timeout(LIMIT, client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        replies.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    replies.sort();
    let sent: Vec<_> = (0..PARKED).map(|i| format!("packet {i}")).collect();
    assert_eq!(replies, sent);
    server.close().await.unwrap();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    wait_for("handler threads to end", || handler_threads() == 0).await;
    during - before
}
