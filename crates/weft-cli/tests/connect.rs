//! End-to-end tests of `weft connect` against test servers.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;

use assert_cmd::Command as Cmd;
use common::{Server, WAIT, WEFT};

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

#[test]
fn stdin_to_socket_half_close_then_socket_to_stdout() {
    let (addr, server) = answering_server();
    Cmd::new(WEFT)
        .args(["connect", &addr])
        .write_stdin("ping\n")
        .timeout(WAIT)
        .assert()
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
        .timeout(WAIT)
        .assert()
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
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("weft connect did not exit after the server closed");
        }
        thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success());
    assert_eq!(out, "An apple a day keeps the doctor away.\r\n");
}

#[test]
fn talks_to_weft_serve_echo() {
    let server = Server::start(&["echo"]);
    Cmd::new(WEFT)
        .args(["connect", &format!("tcp:{}", server.addr)])
        .write_stdin("hello echo")
        .timeout(WAIT)
        .assert()
        .success()
        .stdout("hello echo");
}

#[test]
fn connects_to_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let endpoint = format!("unix:{}", path.display());
    let _server = Server::start_raw(&["serve", "echo", "--listen", &endpoint]);
    Cmd::new(WEFT)
        .args(["connect", &endpoint])
        .write_stdin("unix echo")
        .timeout(WAIT)
        .assert()
        .success()
        .stdout("unix echo");
}

#[test]
fn refused_connection_is_a_network_error() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let out = Cmd::new(WEFT)
        .args(["connect", &addr])
        .write_stdin("")
        .timeout(WAIT)
        .assert()
        .code(4)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("cannot connect to {addr}")), "{err}");
}

#[test]
fn bad_endpoint_is_a_usage_error() {
    Cmd::new(WEFT)
        .args(["connect", "nonsense"])
        .timeout(WAIT)
        .assert()
        .code(2);
}
