//! `weft serve` deployed as docs/deploy.md says, against the real tools: HAProxy in `mode tcp`
//! with `send-proxy` (v1) and `send-proxy-v2` and `check send-proxy-v2` health checks,
//! `systemd-socket-activate` with and without `--fdname`, a `NOTIFY_SOCKET` that receives
//! READY=1 and STOPPING=1, and two instances on one port with `reusePort=1`.
//!
//! A missing tool fails the test with the command that installs it: these tests never pass
//! silently.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{KillOnDrop, Server, WAIT, WEFT};

/// The path of `tool`, or a failure that says how to install it.
fn require(tool: &str, package: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{tool} is not installed: run `apt-get update && apt-get install -y {package}` (as root)"
    );
}

/// A free loopback port (bound, then released for the tool to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connects to `port`, retrying until something listens there (a tool still starting).
fn connect_when_up(port: u16) -> TcpStream {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                s.set_read_timeout(Some(WAIT)).unwrap();
                return s;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "nothing listens on {port}: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// HAProxy in `mode tcp` in front of `backend` (`HOST:PORT`), started from a generated
/// configuration (the one docs/deploy.md shows) on a free port.
struct Haproxy {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(backend: &str, send_proxy: &str) -> Haproxy {
        let bin = require("haproxy", "haproxy");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            "global\n    log stderr format raw local0 warning\n\
             defaults\n    mode tcp\n    log global\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
             frontend lines\n    bind 127.0.0.1:{port}\n    default_backend weft\n\
             backend weft\n    server w1 {backend} {send_proxy} check send-proxy-v2 inter 100ms\n"
        );
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config).unwrap();
        let check = Command::new(&bin)
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "haproxy -c: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(&bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Haproxy {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn behind_haproxy_the_logger_prints_the_clients_address_and_lines_echo() {
    for send_proxy in ["send-proxy", "send-proxy-v2"] {
        let logger = Server::start_raw(&[
            "serve",
            "line-logger",
            "--listen",
            "haproxy:tcp:0:interface=127.0.0.1",
        ]);
        let echo = Server::start_raw(&[
            "serve",
            "line-echo",
            "--listen",
            "haproxy:tcp:0:interface=127.0.0.1",
        ]);
        let front_logger = Haproxy::start(&logger.addr, send_proxy);
        let front_echo = Haproxy::start(&echo.addr, send_proxy);
        // Let a few health checks (LOCAL headers) run first: they must not disturb.
        std::thread::sleep(Duration::from_millis(350));

        let mut c = connect_when_up(front_logger.port);
        let me = c.local_addr().unwrap().to_string();
        c.write_all(b"first line\r\nsecond line\n").unwrap();
        let out = logger.stdout.wait_for("second line\n");
        assert!(
            out.contains(&format!(
                "Got connection from {me}\nfirst line\nsecond line\n"
            )),
            "{send_proxy}: the logger names the client ({me}), not HAProxy:\n{out}"
        );
        drop(c);
        logger.stdout.wait_for(&format!("{me} disconnected\n"));

        let mut c = connect_when_up(front_echo.port);
        for i in 0..20 {
            let line = format!("line {i} through {send_proxy}\r\n");
            c.write_all(line.as_bytes()).unwrap();
            let mut back = vec![0u8; line.len()];
            c.read_exact(&mut back).unwrap();
            assert_eq!(back, line.as_bytes());
        }
    }
}

/// A connection that does not come through the proxy (no header) is refused, never served as
/// plain: the spec's "never guess".
#[test]
fn a_proxy_port_refuses_connections_without_a_header() {
    let server = Server::start_raw(&[
        "serve",
        "line-echo",
        "--listen",
        "haproxy:tcp:0:interface=127.0.0.1",
    ]);
    let mut c = server.connect();
    c.write_all(b"hello\r\n").unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert_eq!(got, b"");
}

fn socket_activate(extra: &[&str], listen: &str) -> (KillOnDropChild, u16) {
    let bin = require("systemd-socket-activate", "systemd");
    let port = free_port();
    let child = Command::new(bin)
        .arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .arg(WEFT)
        .args(["serve", "line-echo", "--listen", listen])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (KillOnDropChild(child), port)
}

struct KillOnDropChild(Child);

impl Drop for KillOnDropChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn socket_activation_with_and_without_a_descriptor_name() {
    for (extra, listen) in [
        (&[][..], "systemd:domain=INET:index=0"),
        (&["--fdname=lines"][..], "systemd:domain=INET:name=lines"),
        (&["--fdname=lines"][..], "systemd:domain=INET:index=0"),
        (&[][..], "haproxy:systemd:domain=INET:index=0"),
    ] {
        let (_activator, port) = socket_activate(extra, listen);
        // systemd holds the socket: the first connection starts weft, nothing is lost.
        let mut c = connect_when_up(port);
        if listen.starts_with("haproxy:") {
            c.write_all(b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\n")
                .unwrap();
        }
        c.write_all(b"activated\r\n").unwrap();
        let mut back = [0u8; 11];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"activated\r\n", "{extra:?} {listen}");
    }
}

#[test]
fn socket_activation_errors_are_clear() {
    // Not activated at all.
    let out = Command::new(WEFT)
        .args(["serve", "echo", "--listen", "systemd:domain=INET:index=0"])
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("LISTEN_FDS is not set"), "{err}");
    // A name that was not passed, and the wrong family.
    for (listen, says) in [
        (
            "systemd:domain=INET:name=api",
            "no passed socket is named \"api\" (names: unknown)",
        ),
        (
            "systemd:domain=INET6:index=0",
            "is not a listening INET6 stream socket",
        ),
        (
            "systemd:domain=INET:index=1",
            "index=1, but systemd passed 1 socket(s)",
        ),
    ] {
        let bin = require("systemd-socket-activate", "systemd");
        let port = free_port();
        let mut child = Command::new(bin)
            .arg("-l")
            .arg(format!("127.0.0.1:{port}"))
            .arg(WEFT)
            .args(["serve", "echo", "--listen", listen])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let guard = KillOnDrop(&mut child);
        let _c = connect_when_up(port);
        // systemd-socket-activate's own lines come first; then weft's one error line.
        let mut lines = BufReader::new(guard.0.stderr.take().unwrap()).lines();
        let err = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.starts_with("weft:"))
            .unwrap_or_default();
        assert!(err.contains(says), "{listen}: {err}");
    }
    // Exactly one of index and name.
    let out = Command::new(WEFT)
        .args([
            "serve",
            "echo",
            "--listen",
            "systemd:domain=INET:index=0:name=x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exactly one of index=N and name=NAME"));
}

#[test]
fn notify_socket_gets_ready_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut child = Command::new(WEFT)
        .args(["serve", "echo", "--listen", "tcp:0:interface=127.0.0.1"])
        .env("NOTIFY_SOCKET", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(&mut child);
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(buf[..n].trim_ascii(), b"READY=1");
    let pid = guard.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(buf[..n].trim_ascii(), b"STOPPING=1");
    assert!(guard.0.wait().unwrap().success());
}

#[test]
fn two_instances_share_a_port_with_reuse_port() {
    let port = free_port();
    let listen = format!("tcp:{port}:interface=127.0.0.1:reusePort=1");
    let a = Server::start_raw(&["serve", "line-logger", "--listen", &listen]);
    let b = Server::start_raw(&["serve", "line-logger", "--listen", &listen]);
    assert_eq!(a.addr, b.addr);
    // The kernel spreads connections over both; each line lands in exactly one of them.
    let mut sent = Vec::new();
    for i in 0..40 {
        let mut c = connect_when_up(port);
        let line = format!("reuse {i}");
        c.write_all(format!("{line}\n").as_bytes()).unwrap();
        sent.push(line);
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let (ta, tb) = (a.stdout.text(), b.stdout.text());
        let all = sent
            .iter()
            .all(|l| ta.contains(&format!("{l}\n")) ^ tb.contains(&format!("{l}\n")));
        if all {
            assert!(
                ta.contains("reuse ") && tb.contains("reuse "),
                "one instance got nothing"
            );
            break;
        }
        assert!(Instant::now() < deadline, "lines missing:\n{ta}\n--\n{tb}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
