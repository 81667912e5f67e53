//! End-to-end tests of `weft serve`'s connection policies (issue 15): idle and line timeouts,
//! connection limits, throttling, the Prometheus endpoint. Real sockets on loopback against a
//! `weft serve` child.

mod common;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{LOOPBACK, Server, WAIT, echoes, read_exact, usage_error};

/// True once the server closed `c` (EOF or a reset), waiting at most `wait`.
fn closed_within(c: &mut TcpStream, wait: Duration) -> bool {
    c.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true, // reset
        }
    }
}

/// File descriptors the process `pid` holds.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// 5000 idle connections against `--idle-timeout 1` are all closed within 3 s of the last one
/// being opened, and the server's descriptors come back.
#[test]
fn idle_timeout_closes_5000_idle_connections() {
    const N: usize = 5000;
    // Both ends: this process holds N client sockets, the server N accepted ones (a child
    // inherits the raised limit).
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        limit >= 2 * N as u64,
        "the descriptor limit {limit} is below {}: raise the hard limit (ulimit -Hn)",
        2 * N
    );
    let server = Server::start(&["discard", "--idle-timeout", "1", "--max-per-peer", "none"]);
    let pid = server.child.id();
    let before = fds(pid);
    let mut conns = Vec::with_capacity(N);
    for _ in 0..N {
        conns.push(TcpStream::connect(&server.addr).unwrap());
    }
    let last = Instant::now();
    for c in &mut conns {
        let left = (last + Duration::from_secs(3)).saturating_duration_since(Instant::now());
        assert!(
            closed_within(c, left.max(Duration::from_millis(1))),
            "a connection was still open 3 s after the last connect"
        );
    }
    drop(conns);
    let deadline = Instant::now() + WAIT;
    while fds(pid) > before {
        assert!(
            Instant::now() < deadline,
            "server holds {} fds, {before} before",
            fds(pid)
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A slowloris sending one byte per 0.5 s is never idle: `--idle-timeout 1` keeps it (its line
/// is echoed when it finally ends), `--line-timeout 2` closes it 2 s after the line began.
#[test]
fn line_timeout_closes_a_slowloris_that_idle_timeout_keeps() {
    let trickle = |c: &mut TcpStream, n: usize| {
        for _ in 0..n {
            if c.write_all(b"x").is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(500));
        }
    };

    let idle_only = Server::start(&["line-echo", "--idle-timeout", "1"]);
    let mut c = idle_only.connect();
    trickle(&mut c, 6);
    echoes_line(&mut c, b"xxxxxx");

    let with_line = Server::start(&["line-echo", "--idle-timeout", "1", "--line-timeout", "2"]);
    let mut c = with_line.connect();
    let mut watcher = c.try_clone().unwrap();
    let start = Instant::now();
    let closed = thread::spawn(move || {
        assert!(closed_within(&mut watcher, WAIT), "never closed");
        start.elapsed()
    });
    trickle(&mut c, 8);
    let after = closed.join().unwrap();
    assert!(
        after >= Duration::from_millis(1900) && after < Duration::from_secs(4),
        "closed after {after:?}, not about 2 s"
    );
}

fn echoes_line(c: &mut TcpStream, sent: &[u8]) {
    c.write_all(b"\n").unwrap();
    let mut want = sent.to_vec();
    want.push(b'\n');
    assert_eq!(read_exact(c, want.len()), want);
}

/// `--max-connections 10`: the 11th connection is closed at once, the 12th is served once one
/// of the first ten has left. Twisted's ThrottlingTests.test_limit, end to end.
#[test]
fn max_connections_closes_the_eleventh_and_serves_the_twelfth_after_one_leaves() {
    let server = Server::start(&["echo", "--max-connections", "10"]);
    let mut ten: Vec<TcpStream> = (0..10).map(|_| server.connect()).collect();
    for (i, c) in ten.iter_mut().enumerate() {
        echoes(c, format!("hello {i}").as_bytes());
    }
    let mut eleventh = server.connect();
    assert!(closed_within(&mut eleventh, WAIT), "the 11th was served");
    drop(ten.remove(0));
    let deadline = Instant::now() + WAIT;
    loop {
        let mut twelfth = server.connect();
        let _ = twelfth.write_all(b"ping");
        let mut buf = [0u8; 4];
        match twelfth.read_exact(&mut buf) {
            Ok(()) => {
                assert_eq!(&buf, b"ping");
                break;
            }
            // The server has not seen the leaving client's close yet.
            Err(_) => assert!(Instant::now() < deadline, "the 12th was never served"),
        }
        thread::sleep(Duration::from_millis(20));
    }
    for c in &mut ten {
        echoes(c, b"still here");
    }
}

/// With several `--listen`, the limits count the service's connections, not each endpoint's:
/// `--max-connections 2` over two ports serves one on each and closes a third on either.
#[test]
fn limits_count_the_connections_of_every_endpoint_together() {
    let server = Server::start_raw(&[
        "serve",
        "echo",
        "--max-connections",
        "2",
        "--listen",
        LOOPBACK,
        "--listen",
        LOOPBACK,
    ]);
    let second = server.stderr.wait_for_line("listening on ");
    assert_ne!(second, server.addr, "two ports");
    let connect = |addr: &str| {
        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        c
    };
    let mut a = connect(&server.addr);
    let mut b = connect(&second);
    echoes(&mut a, b"first port");
    echoes(&mut b, b"second port");
    for addr in [&server.addr, &second] {
        let mut third = connect(addr);
        assert!(closed_within(&mut third, WAIT), "a third served on {addr}");
    }
    echoes(&mut a, b"still here");
}

/// `--max-per-peer 2`: a third connection from 127.0.0.1 is closed at once; the default limit
/// (256) leaves ordinary use alone. Behind HAProxy and a PROXY header (the header's address
/// counts): `max_per_peer_behind_haproxy_counts_the_headers_address` in deploy.rs.
#[test]
fn max_per_peer_closes_the_third_from_one_address() {
    let server = Server::start(&["echo", "--max-per-peer", "2"]);
    let mut a = server.connect();
    let mut b = server.connect();
    echoes(&mut a, b"a");
    echoes(&mut b, b"b");
    let mut c = server.connect();
    assert!(closed_within(&mut c, WAIT));
    echoes(&mut a, b"a again");
}

/// `--rate 100KiB`: an echo client that sends as fast as it can gets 100 KiB/s back, within
/// 10 % over 5 s (a correctness check of the throttle, not a speed test).
#[test]
fn rate_throttles_echo_to_100_kib_per_second() {
    let server = Server::start(&["echo", "--rate", "100KiB"]);
    let mut c = server.connect();
    let mut writer = c.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let chunk = vec![b'x'; 16 * 1024];
        while writer.write_all(&chunk).is_ok() {}
    });
    let mut buf = vec![0u8; 64 * 1024];
    let n = c.read(&mut buf).unwrap();
    assert!(n > 0);
    let start = Instant::now();
    let mut got = 0usize;
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while start.elapsed() < Duration::from_secs(5) {
        match c.read(&mut buf) {
            Ok(0) => panic!("the server closed"),
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let rate = got as f64 / start.elapsed().as_secs_f64();
    let _ = c.shutdown(Shutdown::Both);
    sender.join().unwrap();
    let want = 100.0 * 1024.0;
    assert!(
        (rate - want).abs() <= want * 0.10,
        "{rate:.0} B/s, not within 10 % of {want} B/s"
    );
}

/// Scrapes the metrics endpoint: `name{labels}` → value.
fn scrape(addr: &str) -> HashMap<String, f64> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: weft\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("`name value`");
            (k.to_string(), v.parse().expect("a number"))
        })
        .collect()
}

/// `--metrics`: a Prometheus scrape parses, and its counters move with the traffic.
#[test]
fn metrics_endpoint_counts_connections_bytes_and_reasons() {
    let server = Server::start(&[
        "line-echo",
        "--metrics",
        "tcp:0:interface=127.0.0.1",
        "--max-connections",
        "1",
    ]);
    let metrics = server.stderr.wait_for_line("metrics on ");
    let before = scrape(&metrics);
    let get = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);

    let mut c = server.connect();
    echoes(&mut c, b"one\ntwo\n");
    let mut refused = server.connect();
    assert!(closed_within(&mut refused, WAIT));
    c.shutdown(Shutdown::Write).unwrap();
    assert!(closed_within(&mut c, WAIT));

    let deadline = Instant::now() + WAIT;
    let after = loop {
        let m = scrape(&metrics);
        if get(&m, "weft_connections_open") == 0.0 && get(&m, "weft_bytes_received_total") > 0.0 {
            break m;
        }
        assert!(Instant::now() < deadline, "counters did not move: {m:?}");
        thread::sleep(Duration::from_millis(20));
    };
    let moved = |k: &str| get(&after, k) - get(&before, k);
    assert_eq!(moved("weft_connections_accepted_total"), 2.0);
    assert_eq!(moved("weft_connections_refused_total"), 1.0);
    assert_eq!(moved("weft_connections_closed_total{reason=\"done\"}"), 1.0);
    assert_eq!(moved("weft_bytes_received_total"), 8.0);
    assert_eq!(moved("weft_bytes_sent_total"), 8.0);
    assert_eq!(moved("weft_lines_received_total"), 2.0);
}

/// Bad values are usage errors (exit 2) that name the option; `--line-timeout` is refused
/// for a protocol without lines.
#[test]
fn bad_policy_values_are_usage_errors() {
    for args in [
        &["serve", "echo", "--idle-timeout", "soon"][..],
        &["serve", "echo", "--rate", "1TiB"],
        &["serve", "echo", "--max-connections", "many"],
    ] {
        let err = usage_error(args);
        assert!(err.contains(args[2]), "{args:?}: {err}");
    }
    let err = usage_error(&["serve", "echo", "--line-timeout", "5", "--listen", LOOPBACK]);
    assert!(
        err.contains("--line-timeout is for line protocols"),
        "{err}"
    );
}
