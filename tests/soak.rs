//! Soak tests through a line echo: many connections, long streams without a delimiter, peers
//! that never read. Bounded to a few seconds each; heavier variants are `#[ignore]`d
//! (`just soak`).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft::core::{Address, ListeningPort, Reactor};
use weft::line::{Control, Receiver, framed_factory};

mod common;
use common::{announce_port, raise_fd_limit, rss_kib, spawn_server_child, within};

/// Echoes every line back (the `weft serve line-echo` protocol).
struct LineEcho;
impl Receiver for LineEcho {
    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
        ctl.send_line(line);
    }
}

async fn line_echo_server(reactor: &Reactor) -> ListeningPort {
    reactor
        .listen_tcp("127.0.0.1:0", framed_factory(|_: &Address| Some(LineEcho)))
        .await
        .expect("listen")
}

/// `conns` clients each send `lines` numbered lines (pipelined) and check every echo, in order.
async fn many_clients(port: u16, conns: usize, lines: usize) {
    let mut tasks = Vec::with_capacity(conns);
    for c in 0..conns {
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(("127.0.0.1", port)).await?;
            let (mut r, mut w) = stream.into_split();
            let writer = tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0..lines {
                    out.extend_from_slice(format!("conn {c} line {i}\r\n").as_bytes());
                }
                w.write_all(&out).await?;
                w.shutdown().await
            });
            let mut got = Vec::new();
            r.read_to_end(&mut got).await?;
            writer.await.expect("writer task")?;
            let text = String::from_utf8(got).expect("utf-8 echo");
            let mut n = 0;
            for (i, line) in text.split_terminator("\r\n").enumerate() {
                assert_eq!(
                    line,
                    format!("conn {c} line {i}"),
                    "lost, duplicated or reordered"
                );
                n += 1;
            }
            assert_eq!(n, lines, "conn {c}: every line back");
            Ok::<_, std::io::Error>(())
        }));
    }
    for t in tasks {
        within(t).await.expect("client task").expect("client io");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_connections_times_hundred_lines_all_come_back_in_order() {
    raise_fd_limit();
    let reactor = Reactor::new();
    let port = line_echo_server(&reactor).await;
    let p = port.local_addr().as_inet().unwrap().port();
    many_clients(p, 1000, 100).await;
    reactor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: run with `just soak`"]
async fn soak_ten_thousand_connections_times_thousand_lines() {
    raise_fd_limit();
    let reactor = Reactor::new();
    let port = line_echo_server(&reactor).await;
    let p = port.local_addr().as_inet().unwrap().port();
    many_clients(p, 10_000, 1000).await;
    reactor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_peers_reset_mid_line_then_a_client_is_served() {
    let reactor = Reactor::new();
    let port = line_echo_server(&reactor).await;
    let p = port.local_addr().as_inet().unwrap().port();
    for _ in 0..200 {
        let mut c = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
        c.write_all(b"a line\r\nhalf a li").await.unwrap();
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c); // RST mid-line
    }
    many_clients(p, 1, 10).await;
    reactor.shutdown().await;
}

// ---- child-process server, so its memory can be read from /proc ----

/// The child side: a line echo server that prints its port. Runs only when asked.
#[test]
#[ignore = "helper process of the memory tests"]
fn child_line_echo_server() {
    if std::env::var_os("WEFT_SOAK_CHILD").is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let reactor = Reactor::new();
        let port = line_echo_server(&reactor).await;
        announce_port(port.local_addr().as_inet().unwrap().port());
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

async fn spawn_child() -> (common::ChildGuard, u16) {
    spawn_server_child("child_line_echo_server", "WEFT_SOAK_CHILD").await
}

/// Warms the server up (per-thread buffers, allocator arenas) so later readings compare like
/// with like.
async fn warm_up(port: u16) {
    many_clients(port, 20, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_delimiter_is_closed_at_the_limit_and_memory_stays_flat() {
    let (child, port) = spawn_child().await;
    let pid = child.pid();
    warm_up(port).await;
    let before = rss_kib(pid);
    // 50 peers each stream up to 4 MiB with no delimiter.
    let mut tasks = Vec::new();
    for _ in 0..50 {
        tasks.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0usize;
            for _ in 0..64 {
                if c.write_all(&chunk).await.is_err() {
                    break;
                }
                sent += chunk.len();
            }
            // The server closed us: a read sees EOF or a reset, never an echo.
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut buf)).await;
            assert!(buf.is_empty(), "no line was echoed");
            sent
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += within(t).await.unwrap();
    }
    assert!(
        total < 50 * 4 * 1024 * 1024,
        "every peer was cut off before sending all it wanted ({total} bytes sent)"
    );
    let after = rss_kib(pid);
    if std::env::var_os("WEFT_SOAK_VERBOSE").is_some() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("server RSS {before} KiB -> {after} KiB");
        }
    }
    assert!(
        after < before + 16 * 1024,
        "server RSS grew from {before} KiB to {after} KiB"
    );
    // And it still serves.
    many_clients(port, 2, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_never_read_keep_server_memory_bounded() {
    let (child, port) = spawn_child().await;
    let pid = child.pid();
    warm_up(port).await;
    let before = rss_kib(pid);
    // 50 peers send lines as fast as they can and never read the echoes.
    let mut streams = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..50 {
        let c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (r, mut w) = c.into_split();
        streams.push(r);
        writers.push(tokio::spawn(async move {
            let block =
                b"0123456789012345678901234567890123456789012345678901234567890\r\n".repeat(1024);
            let mut sent = 0usize;
            loop {
                match tokio::time::timeout(Duration::from_millis(500), w.write_all(&block)).await {
                    Ok(Ok(())) => sent += block.len(),
                    _ => return sent, // stalled: the server stopped reading us
                }
            }
        }));
    }
    let mut total = 0;
    for w in writers {
        total += within(w).await.unwrap();
    }
    let after = rss_kib(pid);
    if std::env::var_os("WEFT_SOAK_VERBOSE").is_some() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("server RSS {before} KiB -> {after} KiB");
        }
    }
    // Per connection: at most the 64 KiB high water mark plus one 64 KiB read in flight.
    let bound = 50 * 128 + 8 * 1024;
    assert!(
        after < before + bound,
        "server RSS grew from {before} KiB to {after} KiB for {total} bytes sent"
    );
    drop(streams);
}
