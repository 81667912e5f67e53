//! The socketserver examples of seed 14.2 and 14.3.
//!
//! The logger loops are driven in-process with several clients sending interleaved data:
//! `select_logger` through `weft::server::loggers`, and the mio `poll_logger` by including
//! the example's source as a module. The server examples are run as programs: `cargo test`
//! builds every example before running tests; run alone (`cargo test --test
//! server_examples`), cargo does not, so build them first (`cargo build --examples`): a
//! check whose example is missing fails and says so, it never passes as skipped. Every
//! server example must exit 0 on SIGINT and SIGTERM.
#![allow(clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

#[allow(dead_code)]
#[path = "../examples/poll_logger.rs"]
mod poll_logger;

const LIMIT: Duration = Duration::from_secs(20);

/// A `Write` sink shared with the test.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Three clients take turns sending; `log` must show every event, in order.
fn interleaved_clients(addr: SocketAddr, log: impl Fn() -> String) {
    let mut clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let names: Vec<String> = clients
        .iter()
        .map(|c| c.local_addr().unwrap().to_string())
        .collect();
    for n in &names {
        wait_for("connection lines", || {
            log().contains(&format!("Got connection from {n}\n"))
        });
    }
    let mut expected: Vec<String> = names
        .iter()
        .map(|n| format!("Got connection from {n}"))
        .collect();
    for round in 0..3 {
        for (i, c) in clients.iter_mut().enumerate() {
            let line = format!("client{i} line{round}\n");
            c.write_all(line.as_bytes()).unwrap();
            // Each chunk shows up at once, before the next client sends.
            wait_for("a data line", || log().ends_with(&line));
            expected.push(line.trim_end().to_string());
        }
    }
    for (c, n) in clients.into_iter().zip(&names) {
        drop(c);
        wait_for("a disconnect line", || {
            log().ends_with(&format!("{n} disconnected\n"))
        });
        expected.push(format!("{n} disconnected"));
    }
    let log = log();
    assert_eq!(log.lines().collect::<Vec<_>>(), expected, "log:\n{log}");
}

#[test]
fn poll_logger_with_interleaved_clients() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let listener = mio::net::TcpListener::from_std(std_listener);
    let sink = Shared::default();
    let stop = Arc::new(AtomicBool::new(false));
    let logger = std::thread::spawn({
        let (mut sink, stop) = (sink.clone(), stop.clone());
        move || poll_logger::poll_logger(listener, &mut sink, &stop)
    });
    interleaved_clients(addr, || sink.text());
    stop.store(true, Ordering::SeqCst);
    logger.join().unwrap().unwrap();
}

#[test]
fn select_logger_with_interleaved_clients() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    // The tokio sink is a pipe whose reader copies into `Shared`.
    let (writer, mut reader) = tokio::io::duplex(1 << 16);
    let sink = Shared::default();
    let copier = rt.spawn({
        let sink = sink.clone();
        async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.0.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
        }
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let logger = rt.spawn(weft::server::loggers::select_logger(
        listener,
        writer,
        async {
            let _ = stop_rx.await;
        },
    ));
    interleaved_clients(addr, || sink.text());
    stop_tx.send(()).unwrap();
    drop(rt.block_on(logger).unwrap().unwrap());
    rt.block_on(copier).unwrap();
}

/// The example binary next to this test binary (`target/<profile>/examples/NAME`); fails the
/// test when it is not built.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "example {name} is not built at {}: run `cargo test` (it builds every example) or \
         `cargo build --examples` first",
        path.display()
    );
    path
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts an example on a free port; returns it and the address of its first stderr line.
fn start(
    path: &PathBuf,
    listen: &str,
    extra: &[&str],
) -> (Running, String, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(path)
        .arg(listen)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let out = BufReader::new(child.stdout.take().unwrap());
    let running = Running(child);
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first stderr line: {first:?}"))
        .trim()
        .to_string();
    assert!(!addr.ends_with(":0"), "the real port: {addr}");
    (running, addr, out)
}

#[test]
fn server_examples_thank_each_client() {
    // The address in either form (issue 16): a plain HOST:PORT or an endpoint string.
    for (name, listen, extra) in [
        ("socketserver_server", "127.0.0.1:0", &[][..]),
        ("threading_server", "tcp:0:interface=127.0.0.1", &[][..]),
        ("forking_server", "tcp:0:interface=127.0.0.1", &[][..]),
        ("forking_server", "127.0.0.1:0", &["--pool", "2"][..]),
    ] {
        let path = example(name);
        let (_running, addr, mut out) = start(&path, listen, extra);
        for _ in 0..3 {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(LIMIT)).unwrap();
            let me = s.local_addr().unwrap();
            let mut reply = String::new();
            s.read_to_string(&mut reply).unwrap();
            assert_eq!(reply, "Thank you for connecting", "{name}");
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert_eq!(line, format!("Got connection from {me}\n"), "{name}");
        }
    }
}

/// Every example that serves (its source announces `listening on`), started on a free port
/// with an idle client connected, exits 0 on SIGINT (Ctrl-C) and on SIGTERM.
#[test]
fn every_server_example_exits_cleanly_on_sigint_and_sigterm() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut servers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            std::fs::read_to_string(path).is_ok_and(|src| src.contains("\"listening on "))
        })
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    servers.sort();
    assert!(servers.len() >= 9, "server examples found: {servers:?}");
    let mut runs: Vec<(&str, &[&str])> = servers.iter().map(|n| (n.as_str(), &[][..])).collect();
    runs.push(("forking_server", &["--pool", "2"]));
    for (name, extra) in runs {
        let path = example(name);
        for signal in ["INT", "TERM"] {
            let (mut running, addr, _out) = start(&path, "127.0.0.1:0", extra);
            let _idle_client = TcpStream::connect(&addr).unwrap();
            let pid = running.0.id().to_string();
            let sent = Command::new("kill")
                .args(["-s", signal, &pid])
                .status()
                .unwrap();
            assert!(sent.success(), "kill -s {signal} {pid}");
            let deadline = Instant::now() + LIMIT;
            let status = loop {
                if let Some(status) = running.0.try_wait().unwrap() {
                    break status;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name} {extra:?} still running {LIMIT:?} after SIG{signal}"
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            assert!(
                status.success(),
                "{name} {extra:?} exited with {status} after SIG{signal}"
            );
        }
    }
}

/// The child side of `poll_logger_serves_again_after_running_out_of_descriptors`: the poll
/// logger limited to 32 descriptors, with a listen backlog of 8.
#[test]
#[ignore = "helper process of poll_logger_serves_again_after_running_out_of_descriptors"]
fn fd_limited_poll_logger() {
    if std::env::var_os("WEFT_POLL_FD_CHILD").is_none() {
        return;
    }
    rlimit::setrlimit(rlimit::Resource::NOFILE, 32, 32).unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(8).unwrap();
    socket.set_nonblocking(true).unwrap();
    let listener = std::net::TcpListener::from(socket);
    let port = listener.local_addr().unwrap().port();
    // Stops by itself should the parent never end it.
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::spawn({
        let stop = stop.clone();
        move || {
            std::thread::sleep(Duration::from_secs(60));
            stop.store(true, Ordering::SeqCst);
        }
    });
    common::announce_port(port);
    let listener = mio::net::TcpListener::from_std(listener);
    poll_logger::poll_logger(listener, &mut std::io::stdout(), &stop).unwrap();
}

/// Issue 11 item 13: out of descriptors with its backlog full, the edge-triggered poll logger
/// gets no new event; it must still accept again once descriptors are free.
#[test]
fn poll_logger_serves_again_after_running_out_of_descriptors() {
    let (_child, port, lines) = common::spawn_child("fd_limited_poll_logger", "WEFT_POLL_FD_CHILD");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // The logger runs once it has logged a first client.
    let mut hogs = vec![TcpStream::connect(addr).unwrap()];
    let first = lines.recv_timeout(LIMIT).unwrap();
    assert!(first.starts_with("Got connection from"), "{first}");
    // More clients than the child has descriptors, all at once: it accepts until EMFILE,
    // its backlog fills, and the rest time out connecting.
    let attempts: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || TcpStream::connect_timeout(&addr, Duration::from_secs(2)))
        })
        .collect();
    hogs.extend(attempts.into_iter().filter_map(|a| a.join().unwrap().ok()));
    let mut log = vec![first];
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(300)) {
        log.push(line);
    }
    let accepted = log
        .iter()
        .filter(|l| l.starts_with("Got connection"))
        .count();
    assert!(
        accepted < hogs.len(),
        "the child accepted all {accepted} connections: it never ran out of descriptors"
    );

    // Free the descriptors: every client leaves, then a new one must be served.
    drop(hogs);
    let deadline = Instant::now() + LIMIT;
    let mut client = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(c) => break c,
            Err(e) => assert!(
                Instant::now() < deadline,
                "no connection {LIMIT:?} after the clients left: {e}"
            ),
        }
    };
    client.write_all(b"back\n").unwrap();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line == "back" => break,
            Ok(_) => {}
            Err(e) => panic!("the poll logger never logged the new client's line: {e}"),
        }
    }
}

#[test]
fn logger_examples_log_interleaved_clients() {
    for (name, listen) in [
        ("select_logger", "127.0.0.1:0"),
        ("poll_logger", "tcp:0:interface=127.0.0.1"),
    ] {
        let path = example(name);
        let (_running, addr, out) = start(&path, listen, &[]);
        let sink = Shared::default();
        std::thread::spawn({
            let mut sink = sink.clone();
            let mut out = out;
            move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = out.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.write_all(&buf[..n]).unwrap();
                }
            }
        });
        interleaved_clients(addr.parse().unwrap(), || sink.text());
    }
}

/// Issue 16: the reactor examples take an endpoint string as well as `HOST:PORT` (they used
/// to fail with `invalid port value` on `tcp:0:interface=127.0.0.1`).
#[test]
fn reactor_examples_take_endpoint_strings() {
    for (name, listen) in [
        ("line_echo", "tcp:0:interface=127.0.0.1"),
        ("line_logger", "tcp:0:interface=127.0.0.1"),
        ("twisted_logger", "127.0.0.1:0"),
    ] {
        let path = example(name);
        let (_running, addr, mut out) = start(&path, listen, &[]);
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let me = s.local_addr().unwrap();
        s.write_all(b"hello\r\n").unwrap();
        if name == "line_echo" {
            let mut back = [0u8; 7];
            s.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"hello\r\n");
        } else {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert_eq!(line, format!("Got connection from {me}\n"), "{name}");
            line.clear();
            out.read_line(&mut line).unwrap();
            assert!(line.starts_with("hello"), "{name}: {line:?}");
        }
    }
}

/// The line examples take what plain `nc` sends (`\n`) as well as `telnet`'s `\r\n`
/// (issue 16: with a strict `\r\n` framing, plain nc's lines were silently dropped).
#[test]
fn line_examples_take_plain_nc_lines() {
    let path = example("line_logger");
    let (_running, addr, mut out) = start(&path, "127.0.0.1:0", &[]);
    let mut c = TcpStream::connect(&addr).unwrap();
    let me = c.local_addr().unwrap();
    c.write_all(b"from nc\nfrom telnet\r\n").unwrap();
    let mut lines = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        lines.push(line);
    }
    assert_eq!(
        lines,
        [
            format!("Got connection from {me}\n"),
            "from nc\n".into(),
            "from telnet\n".into()
        ]
    );

    let path = example("line_echo");
    let (_running, addr, _out) = start(&path, "127.0.0.1:0", &[]);
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    c.write_all(b"from nc\nfrom telnet\r\n").unwrap();
    let mut back = [0u8; 21];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"from nc\nfrom telnet\r\n");
}

/// Issue 14: the logger examples behind a proxy print the client the PROXY header names.
#[test]
fn logger_examples_print_the_client_behind_a_proxy() {
    for name in ["line_logger", "twisted_logger"] {
        let path = example(name);
        let (_running, addr, mut out) = start(&path, "haproxy:tcp:0:interface=127.0.0.1", &[]);
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nhello\n")
            .unwrap();
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "Got connection from 192.0.2.1:56324\n", "{name}");
    }
}

/// A chat client: the stream to write and a line reader.
struct ChatClient {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl ChatClient {
    fn connect(addr: &str) -> Self {
        let w = TcpStream::connect(addr).unwrap();
        w.set_read_timeout(Some(LIMIT)).unwrap();
        let r = BufReader::new(w.try_clone().unwrap());
        Self { w, r }
    }
    #[track_caller]
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        line
    }
    fn send(&mut self, text: &str) {
        self.w.write_all(text.as_bytes()).unwrap();
    }
}

/// examples/chat.rs end to end (issue 12): three clients see each other's lines, names and
/// join/leave notices; a fourth never reads while about 200 MB are broadcast, and the server's
/// memory stays flat (that client is skipped, never slowing the others).
#[test]
fn chat_relays_lines_and_a_client_that_never_reads_keeps_memory_flat() {
    let path = example("chat");
    let (running, addr, _out) = start(&path, "127.0.0.1:0", &[]);
    let pid = running.0.id();
    let welcome =
        |n: &str| format!("Welcome, {n}! /nick NAME changes your name, /quit leaves.\r\n");
    let mut a = ChatClient::connect(&addr);
    assert_eq!(a.line(), welcome("guest-1"));
    let mut b = ChatClient::connect(&addr);
    assert_eq!(b.line(), welcome("guest-2"));
    assert_eq!(a.line(), "* guest-2 joined\r\n");
    let mut c = ChatClient::connect(&addr);
    assert_eq!(c.line(), welcome("guest-3"));
    let mut sleeper = ChatClient::connect(&addr); // never reads until the end
    for x in [&mut a, &mut b] {
        assert_eq!(x.line(), "* guest-3 joined\r\n");
    }
    for x in [&mut a, &mut b, &mut c] {
        assert_eq!(x.line(), "* guest-4 joined\r\n");
    }

    a.send("/nick alice\n");
    assert_eq!(a.line(), "* you are now alice\r\n");
    b.send("hello from telnet\r\n");
    assert_eq!(b.line(), "* guest-1 is now alice\r\n");
    assert_eq!(c.line(), "* guest-1 is now alice\r\n");
    assert_eq!(c.line(), "<guest-2> hello from telnet\r\n");
    assert_eq!(a.line(), "<guest-2> hello from telnet\r\n");

    // About 200 MB in 1 KiB lines from alice, in batches the readers take before the next
    // (40 KiB each: under a reader's 64 KiB high water mark, so they miss none).
    let pad = "x".repeat(1000);
    let batch_lines = 40;
    let batches = 200 * 1024 * 1024 / (batch_lines * 1010);
    let mut before = 0;
    for batch in 0..batches {
        if batch == batches / 20 {
            before = common::rss_kib(pid); // warmed up: buffers, allocator arenas
        }
        let mut out = String::new();
        for i in 0..batch_lines {
            out.push_str(&format!("{batch:06}.{i:02} {pad}\n"));
        }
        a.send(&out);
        for x in [&mut b, &mut c] {
            for i in 0..batch_lines {
                let mut line = String::new();
                if let Err(e) = x.r.read_line(&mut line) {
                    panic!("batch {batch} line {i}: {e} after {line:?}");
                }
                assert!(
                    line.starts_with(&format!("<alice> {batch:06}.{i:02} x")) && line.len() == 1020,
                    "batch {batch} line {i}: {:?}",
                    &line[..line.len().min(40)]
                );
            }
        }
    }
    let after = common::rss_kib(pid);
    eprintln!("chat server RSS {before} KiB -> {after} KiB over {batches} batches");
    assert!(before > 0, "read the server's RSS");
    assert!(
        after < before + 16 * 1024,
        "server RSS grew from {before} KiB to {after} KiB while 200 MB were broadcast"
    );

    // The sleeper is still connected: its queue starts with its welcome.
    assert_eq!(sleeper.line(), welcome("guest-4"));
    c.send("/quit\n");
    assert_eq!(c.line(), "Bye!\r\n");
    assert_eq!(c.line(), "", "closed after /quit");
    for x in [&mut a, &mut b] {
        assert_eq!(x.line(), "* guest-3 left\r\n");
    }
    drop(sleeper);
    for x in [&mut a, &mut b] {
        assert_eq!(x.line(), "* guest-4 left\r\n");
    }
}

/// examples/chat.rs with a 1 s idle timeout (issue 15: reset by bytes in either direction): a
/// client that only listens stays connected for as long as the others' lines reach it through
/// its handle, well past the timeout, and is closed about a second after they stop.
#[test]
fn chat_listener_is_not_idle_while_lines_reach_it() {
    let path = example("chat");
    let (_running, addr, _out) = start(&path, "127.0.0.1:0", &["1"]);
    let mut listener = ChatClient::connect(&addr);
    assert!(listener.line().starts_with("Welcome, guest-1!"));
    let mut talker = ChatClient::connect(&addr);
    assert!(talker.line().starts_with("Welcome, guest-2!"));
    assert_eq!(listener.line(), "* guest-2 joined\r\n");
    let start = Instant::now();
    // 3.5 s of lines every 250 ms: the listener never sends a byte.
    for i in 0..14 {
        std::thread::sleep(Duration::from_millis(250));
        talker.send(&format!("line {i}\n"));
        assert_eq!(
            listener.line(),
            format!("<guest-2> line {i}\r\n"),
            "at {:?}",
            start.elapsed()
        );
    }
    // Then silence: both are idle now and closed about a second later (the talker's "left"
    // notice reaches the listener only if the listener's own timeout did not fire first).
    let quiet = Instant::now();
    let mut rest = Vec::new();
    loop {
        let line = listener.line();
        if line.is_empty() {
            break;
        }
        rest.push(line);
    }
    let waited = quiet.elapsed();
    assert!(
        rest.is_empty() || rest == ["* guest-2 left\r\n"],
        "{rest:?}"
    );
    assert!(
        waited >= Duration::from_millis(500) && waited < LIMIT,
        "closed {waited:?} after the last line"
    );
    // The talker was idle too (the listener's "left" notice may have reset it once).
    let mut line = talker.line();
    if line == "* guest-1 left\r\n" {
        line = talker.line();
    }
    assert_eq!(line, "", "the talker is closed");
}
