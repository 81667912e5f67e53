//! End-to-end tests of `weft connect` against test servers.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::thread;

use assert_cmd::Command as Cmd;
use common::{Printed, Run, Server, WAIT, WEFT};

/// A one-shot server: reads until the client's EOF (so the client must half-close), then
/// answers with what it got and closes.
fn answering_server() -> (String, thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(format!("got {} bytes: ", got.len()).as_bytes())
            .unwrap();
        s.write_all(&got).unwrap();
        got
    });
    (addr, handle)
}

/// Runs `weft ARGS` with `stdin`; expects exit `code` and one line on stderr, which it returns.
fn one_line_failure(args: &[&str], stdin: impl Into<Vec<u8>>, code: i32) -> String {
    let err = Cmd::new(WEFT)
        .args(args)
        .write_stdin(stdin)
        .run()
        .code(code)
        .stderr_text();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn stdin_to_socket_half_close_then_socket_to_stdout() {
    let (addr, server) = answering_server();
    Cmd::new(WEFT)
        .args(["connect", &addr])
        .write_stdin("ping\n")
        .run()
        .success()
        .stdout("got 5 bytes: ping\n");
    assert_eq!(server.join().unwrap(), b"ping\n");
}

#[test]
fn twisted_client_endpoint_syntax() {
    let (addr, server) = answering_server();
    let (host, port) = addr.rsplit_once(':').unwrap();
    Cmd::new(WEFT)
        .args(["connect", &format!("tcp:host={host}:port={port}:timeout=5")])
        .write_stdin("x")
        .run()
        .success()
        .stdout("got 1 bytes: x");
    server.join().unwrap();
}

#[test]
fn exits_when_the_server_closes_even_with_stdin_open() {
    // qotd closes right after the quote; weft must exit without waiting for stdin's end.
    let server = Server::start(&["qotd"]);
    let mut child = std::process::Command::new(WEFT)
        .args(["connect", &server.addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _stdin = child.stdin.take(); // kept open
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = common::wait_exit(
        &mut child,
        "weft connect did not exit after the server closed",
    );
    assert!(status.success());
    assert_eq!(out, "An apple a day keeps the doctor away.\r\n");
}

#[test]
fn talks_to_weft_serve_echo() {
    let server = Server::start(&["echo"]);
    Cmd::new(WEFT)
        .args(["connect", &format!("tcp:{}", server.addr)])
        .write_stdin("hello echo")
        .run()
        .success()
        .stdout("hello echo");
}

#[test]
fn connects_to_a_unix_socket() {
    let (_server, path) = Server::start_unix(&["echo"]);
    let endpoint = format!("unix:{}", path.display());
    Cmd::new(WEFT)
        .args(["connect", &endpoint])
        .write_stdin("unix echo")
        .run()
        .success()
        .stdout("unix echo");
}

#[test]
fn refused_connection_is_a_network_error() {
    let addr = common::closed_addr().to_string();
    let err = one_line_failure(&["connect", &addr], "", 4);
    assert!(err.contains(&format!("cannot connect to {addr}")), "{err}");
}

#[test]
fn bad_endpoint_is_a_usage_error() {
    common::usage_error(&["connect", "nonsense"]);
}

#[test]
fn nc_two_argument_form() {
    let (addr, server) = answering_server();
    let (host, port) = addr.rsplit_once(':').unwrap();
    Cmd::new(WEFT)
        .args(["connect", host, port])
        .write_stdin("two args\n")
        .run()
        .success()
        .stdout("got 9 bytes: two args\n");
    assert_eq!(server.join().unwrap(), b"two args\n");
}

#[test]
fn two_argument_form_needs_a_host_and_a_port() {
    for (host, port) in [("unix:/tmp/x", "80"), ("127.0.0.1", "http")] {
        one_line_failure(&["connect", host, port], "", 2);
    }
}

/// A UDP server that answers each datagram with `echo: ` and the datagram, `n` times;
/// returns its address and what it received.
fn udp_echo(n: usize) -> (String, thread::JoinHandle<Vec<Vec<u8>>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..n {
            let (len, from) = socket.recv_from(&mut buf).unwrap();
            got.push(buf[..len].to_vec());
            let mut reply = b"echo: ".to_vec();
            reply.extend_from_slice(&buf[..len]);
            socket.send_to(&reply, from).unwrap();
        }
        got
    });
    (addr, handle)
}

#[test]
fn udp_sends_a_datagram_per_line_and_prints_the_replies() {
    let forms = |addr: &str| -> Vec<Vec<String>> {
        let (host, port) = addr.rsplit_once(':').unwrap();
        vec![
            vec![format!("udp:{addr}")],
            vec![format!("udp:host={host}:port={port}")],
            vec!["-u".into(), addr.into()],
            vec!["-u".into(), host.into(), port.into()],
        ]
    };
    // The four spellings side by side: each run waits the default second for late replies.
    let runs: Vec<_> = (0..4)
        .map(|i| {
            thread::spawn(move || {
                let (addr, server) = udp_echo(2);
                let args = forms(&addr).swap_remove(i);
                Cmd::new(WEFT)
                    .arg("connect")
                    .args(&args)
                    .write_stdin("one\ntwo\n")
                    .run()
                    .success()
                    .stdout("echo: one\necho: two\n");
                assert_eq!(
                    server.join().unwrap(),
                    [&b"one\n"[..], b"two\n"],
                    "{args:?}"
                );
            })
        })
        .collect();
    for run in runs {
        run.join().unwrap();
    }
}

#[test]
fn udp_to_a_closed_port_is_a_network_error() {
    let addr = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().to_string()
    };
    let err = one_line_failure(&["connect", "-u", &addr], "anyone?\n", 4);
    assert!(err.contains(&format!("nobody listens on {addr}")), "{err}");
}

#[test]
fn udp_needs_a_host_and_port() {
    for target in [
        "unix:/tmp/weft-none.sock",
        "/tmp/weft-none.sock",
        "tls:localhost:1",
    ] {
        one_line_failure(&["connect", "-u", target], "", 2);
    }
}

#[test]
fn udp_line_longer_than_a_datagram_is_refused() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let err = one_line_failure(&["connect", "-u", &addr], vec![b'x'; 70_000], 1);
    assert!(err.contains("does not fit in a datagram"), "{err}");
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    assert!(socket.recv(&mut buf).is_err(), "nothing was sent");
}
