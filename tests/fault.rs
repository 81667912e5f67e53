//! Fault tests: peers that misbehave, resources that run out, shutdown under load.
//! Each is bounded to a few seconds; heavier variants are `#[ignore]`d (`just soak`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use weft::core::{DisconnectReason, Protocol, Reactor, Transport, factory_fn};

mod common;
use common::{announce_port, raise_fd_limit, spawn_server_child, within};

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        t.write(data);
    }
}

/// Echoes, but panics on a line starting with "panic".
struct Fragile {
    lost: Arc<AtomicUsize>,
}
impl Protocol for Fragile {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        if data.starts_with(b"panic") {
            panic!("peer asked for a panic");
        }
        t.write(data);
    }
    fn connection_lost(&mut self, _reason: DisconnectReason) {
        self.lost.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_callbacks_on_1000_connections_leave_the_server_serving() {
    raise_fd_limit();
    let lost = Arc::new(AtomicUsize::new(0));
    let l = lost.clone();
    let reactor = Reactor::new();
    let port = reactor
        .listen_tcp(
            "127.0.0.1:0",
            factory_fn(move |_| Some(Fragile { lost: l.clone() })),
        )
        .await
        .unwrap();
    let addr = port.local_addr().as_inet().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        tasks.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await?;
            c.write_all(b"panic now").await?;
            let mut buf = Vec::new();
            let _ = c.read_to_end(&mut buf).await; // closed (reset or EOF), nothing echoed
            Ok::<_, std::io::Error>(buf.len())
        }));
    }
    for t in tasks {
        assert_eq!(within(t).await.unwrap().unwrap(), 0);
    }
    // Every panicking connection got its connection_lost, and the server still serves.
    within(async {
        while lost.load(Ordering::SeqCst) < 1000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let mut buf = [0; 5];
    within(c.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"hello");
    reactor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_reset_mid_stream_do_not_disturb_the_next_client() {
    let reactor = Reactor::new();
    let port = reactor
        .listen_tcp("127.0.0.1:0", factory_fn(|_| Some(Echo)))
        .await
        .unwrap();
    let addr = port.local_addr().as_inet().unwrap();
    for _ in 0..200 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"half a li").await.unwrap();
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c); // RST
    }
    let c = TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = c.into_split();
    let mut lines = BufReader::new(r).lines();
    w.write_all(b"a whole line\n").await.unwrap();
    assert_eq!(
        within(lines.next_line()).await.unwrap().as_deref(),
        Some("a whole line")
    );
    reactor.shutdown().await;
}

/// Counts connection_lost per reason.
struct Tracked {
    lost: Arc<AtomicUsize>,
    shutdown: Arc<AtomicUsize>,
}
impl Protocol for Tracked {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        t.write(data);
    }
    fn connection_lost(&mut self, reason: DisconnectReason) {
        self.lost.fetch_add(1, Ordering::SeqCst);
        if matches!(reason, DisconnectReason::Shutdown) {
            self.shutdown.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_load_flushes_and_loses_each_connection_once() {
    raise_fd_limit();
    let lost = Arc::new(AtomicUsize::new(0));
    let shut = Arc::new(AtomicUsize::new(0));
    let (l, s) = (lost.clone(), shut.clone());
    let reactor = Reactor::new();
    reactor.set_drain_timeout(Duration::from_secs(5));
    let port = reactor
        .listen_tcp(
            "127.0.0.1:0",
            factory_fn(move |_| {
                Some(Tracked {
                    lost: l.clone(),
                    shutdown: s.clone(),
                })
            }),
        )
        .await
        .unwrap();
    let addr = port.local_addr().as_inet().unwrap();
    const N: usize = 200;
    let mut clients = Vec::new();
    for _ in 0..N {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&[b'x'; 10_000]).await.unwrap();
        clients.push(c);
    }
    // Each client reads its whole echo, then EOF: the pending output was flushed before close.
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                c.read_to_end(&mut buf).await.map(|_| buf.len())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    within(reactor.shutdown()).await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "within the drain deadline"
    );
    for r in readers {
        assert_eq!(within(r).await.unwrap().unwrap(), 10_000);
    }
    assert_eq!(lost.load(Ordering::SeqCst), N, "connection_lost once each");
    assert_eq!(shut.load(Ordering::SeqCst), N);
    assert_eq!(reactor.active_tasks(), 0);
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are 12 and 13 after the command name.
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// The child side of `accept_backs_off_when_descriptors_run_out`: an echo server limited to
/// 32 descriptors. Runs only when the parent test asks for it.
#[test]
#[ignore = "helper process of accept_backs_off_when_descriptors_run_out"]
fn fd_limited_echo_server() {
    if std::env::var_os("WEFT_FD_CHILD").is_none() {
        return;
    }
    rlimit::setrlimit(rlimit::Resource::NOFILE, 32, 32).unwrap();
    // Logs go to stderr, which the parent reads.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let reactor = Reactor::new();
        let port = reactor
            .listen_tcp("127.0.0.1:0", factory_fn(|_| Some(Echo)))
            .await
            .unwrap();
        announce_port(port.local_addr().as_inet().unwrap().port());
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

#[tokio::test]
async fn accept_backs_off_when_descriptors_run_out() {
    raise_fd_limit();
    let (mut child, port) = spawn_server_child("fd_limited_echo_server", "WEFT_FD_CHILD").await;
    let pid = child.pid();

    // Exhaust the child's descriptors: far more connections than its limit.
    let mut hogs = Vec::new();
    for _ in 0..60 {
        if let Ok(Ok(c)) = tokio::time::timeout(
            Duration::from_millis(500),
            TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            hogs.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spent = cpu_ticks(pid) - before;
    // A spinning accept loop burns ~100 ticks per second; backing off costs almost nothing.
    assert!(spent < 30, "accept loop spun: {spent} ticks in 1 s");
    assert!(child.0.try_wait().unwrap().is_none(), "server crashed");
    // About ten pauses so far: the first is logged, the rest wait for the 10 s summary
    // (issue 11 item 14: no log line every 100 ms).
    let log = child.stderr_lines();
    let failed = log.iter().filter(|l| l.contains("accept failed")).count();
    assert_eq!(failed, 1, "one line for the first pause: {log:#?}");
    assert!(
        !log.iter().any(|l| l.contains("accept paused")),
        "no summary before 10 s: {log:#?}"
    );

    // Free descriptors: serving resumes.
    drop(hogs);
    let mut c = within(TcpStream::connect(("127.0.0.1", port)))
        .await
        .unwrap();
    c.write_all(b"back").await.unwrap();
    let mut buf = [0; 4];
    within(c.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"back");
}
