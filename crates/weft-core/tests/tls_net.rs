//! TLS over real loopback sockets, against peers no one here wrote: Python's `ssl` module
//! (TLS 1.2 and 1.3, SNI, ALPN, client certificates, clean and truncated closes) and
//! `openssl s_client`; hostile clients (garbage instead of a ClientHello, a stalled
//! handshake, a peer that never reads); many concurrent connections.
//!
//! Tests that need python3 or openssl fail with the install command when it is missing.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::pki_types::ServerName;
use support::pki::Ca;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use weft_core::{DisconnectReason, ListeningPort, Protocol, Reactor, Transport, factory_fn};

const LIMIT: Duration = Duration::from_secs(20);

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test step timed out")
}

/// Fails (never skips) when a program the test needs is missing.
fn need(program: &str, install: &str) {
    let ok = Command::new(program)
        .arg(if program == "openssl" {
            "version"
        } else {
            "--version"
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "this test needs {program}: install it with `{install}`");
}

fn need_python() {
    need("python3", "apt-get install python3");
}

/// Echoes lines; `whoami\n` answers with the client certificate's presence, `bye\n` closes;
/// reports how the connection ended.
struct Echo {
    lost: mpsc::UnboundedSender<DisconnectReason>,
    info: Option<String>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, t: &mut Transport) {
        self.info = t.tls().map(|i| {
            format!(
                "version={:?} alpn={} sni={} client_cert={}",
                i.version,
                i.alpn
                    .as_deref()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .unwrap_or_default(),
                i.server_name.clone().unwrap_or_default(),
                i.peer_certificate().is_some()
            )
        });
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        for line in data.split_inclusive(|b| *b == b'\n') {
            match line {
                b"whoami\n" => {
                    let info = self.info.clone().unwrap_or_else(|| "plain".into());
                    t.write(format!("{info}\n"));
                }
                b"bye\n" => {
                    t.write("bye\n");
                    t.lose_connection();
                }
                _ => t.write(line),
            }
        }
    }
    fn connection_lost(&mut self, reason: DisconnectReason) {
        let _ = self.lost.send(reason);
    }
}

struct Server {
    reactor: Reactor,
    port: ListeningPort,
    lost: mpsc::UnboundedReceiver<DisconnectReason>,
    _dir: tempfile::TempDir,
    ca: Ca,
    dir: PathBuf,
}

impl Server {
    fn addr(&self) -> std::net::SocketAddr {
        self.port.local_addr().as_inet().expect("tcp")
    }
    fn port(&self) -> u16 {
        self.addr().port()
    }
    async fn next_lost(&mut self) -> DisconnectReason {
        within(self.lost.recv()).await.expect("a connection_lost")
    }
}

/// A CA, `localhost.pem` (key and certificate for localhost and 127.0.0.1) in a temporary
/// directory, and a reactor serving `Echo` on `endpoint` (`{dir}`, `{pem}` and `{ca}`
/// substituted).
async fn serve(endpoint: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("weft test CA");
    let pems = dir.path().join("pems");
    std::fs::create_dir(&pems).unwrap();
    ca.leaf(&["localhost", "127.0.0.1"])
        .write_combined(&pems, "localhost");
    ca.leaf(&["*.example.test"]).write_combined(&pems, "wild");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let ep = endpoint
        .replace("{dir}", pems.to_str().unwrap())
        .replace("{pem}", pems.join("localhost.pem").to_str().unwrap())
        .replace("{ca}", dir.path().join("ca.pem").to_str().unwrap());
    let reactor = Reactor::new();
    let (tx, lost) = mpsc::unbounded_channel();
    let port = reactor
        .listen(
            &ep,
            factory_fn(move |_| {
                Some(Echo {
                    lost: tx.clone(),
                    info: None,
                })
            }),
        )
        .await
        .unwrap_or_else(|e| panic!("{ep}: {e}"));
    let dir_path = dir.path().to_path_buf();
    Server {
        reactor,
        port,
        lost,
        _dir: dir,
        ca,
        dir: dir_path,
    }
}

/// Runs a Python `ssl` client script (its stdout is returned; a failure shows stderr).
async fn python(script: &str, args: &[&str]) -> String {
    let script = script.to_owned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("python3")
            .arg("-c")
            .arg(&script)
            .args(&args)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "python failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

const PY_CLIENT: &str = r#"
import socket, ssl, sys
port, ca, name, version, alpn, close = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
cert = sys.argv[7] if len(sys.argv) > 7 else ""
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(ca)
if version == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
elif version == "1.3":
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
if alpn:
    ctx.set_alpn_protocols(alpn.split(","))
if cert:
    ctx.load_cert_chain(cert)
raw = socket.create_connection(("127.0.0.1", int(port)))
s = ctx.wrap_socket(raw, server_hostname=name, suppress_ragged_eofs=False)
print("negotiated", s.version(), s.selected_alpn_protocol())
f = s.makefile("rwb")
for i in range(50):
    f.write(b"line %d\n" % i)
f.write(b"whoami\n")
f.flush()
for i in range(50):
    assert f.readline() == b"line %d\n" % i
print(f.readline().decode().strip())
if close == "unwrap":
    s.unwrap()      # sends close_notify
    raw.close()
elif close == "bye":
    f.write(b"bye\n"); f.flush()
    assert f.readline() == b"bye\n"
    assert s.recv(10) == b""   # the server's close_notify: a clean EOF, no SSLEOFError
    print("clean close")
else:
    raw.close()     # TCP close without close_notify
"#;

/// Runs [`PY_CLIENT`] against `srv`, trusting its CA: `name` for SNI, TLS `version`, `alpn`,
/// how to `close`, the client certificate `cert` if any; what it printed.
async fn py_client(
    srv: &Server,
    name: &str,
    version: &str,
    alpn: &str,
    close: &str,
    cert: Option<&Path>,
) -> String {
    let port = srv.port().to_string();
    let ca = srv.dir.join("ca.pem");
    let mut args = vec![
        port.as_str(),
        ca.to_str().unwrap(),
        name,
        version,
        alpn,
        close,
    ];
    args.extend(cert.map(|c| c.to_str().unwrap()));
    python(PY_CLIENT, &args).await
}

/// Writes `line` to `s`; the line that comes back.
async fn echoed(s: &mut (impl AsyncRead + AsyncWrite + Unpin), line: &str) -> String {
    s.write_all(line.as_bytes()).await.unwrap();
    let mut back = String::new();
    within(BufReader::new(s).read_line(&mut back))
        .await
        .unwrap();
    back
}

#[tokio::test]
async fn python_ssl_speaks_tls12_and_tls13_with_sni_and_alpn() {
    need_python();
    let mut srv = serve("tls:{dir}:port=0:interface=127.0.0.1:alpn=weft-line/1,h2").await;
    for (version, name, want) in [
        ("1.3", "localhost", "TLSv1.3"),
        ("1.2", "localhost", "TLSv1.2"),
        ("1.3", "api.example.test", "TLSv1.3"),
    ] {
        let out = py_client(&srv, name, version, "h2", "unwrap", None).await;
        assert!(out.contains(&format!("negotiated {want} h2")), "{out}");
        assert!(
            out.contains(&format!("alpn=h2 sni={name} client_cert=false")),
            "{out}"
        );
        // close_notify then TCP close: a clean close.
        let reason = srv.next_lost().await;
        assert!(
            matches!(reason, DisconnectReason::ConnectionDone),
            "{reason:?}"
        );
    }
    srv.reactor.shutdown().await;
}

#[tokio::test]
async fn close_notify_truncation_and_lose_connection_are_told_apart() {
    need_python();
    let mut srv = serve("ssl:0:privateKey={pem}:interface=127.0.0.1").await;
    // A TCP close without close_notify: truncated, not a clean EOF.
    py_client(&srv, "localhost", "any", "", "tcp", None).await;
    let reason = srv.next_lost().await;
    assert!(
        matches!(reason, DisconnectReason::TlsTruncated),
        "{reason:?}"
    );
    assert!(!reason.is_clean());
    // Our lose_connection: the buffered reply, then close_notify (Python reads a clean EOF).
    let out = py_client(&srv, "localhost", "any", "", "bye", None).await;
    assert!(out.contains("clean close"), "{out}");
    let reason = srv.next_lost().await;
    assert!(matches!(reason, DisconnectReason::LocalClose), "{reason:?}");
    srv.reactor.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_and_shows_it_to_the_protocol() {
    need_python();
    let mut srv = serve("ssl:0:privateKey={pem}:interface=127.0.0.1:clientCA={ca}").await;
    let ca = srv.dir.join("ca.pem");
    let client = srv.dir.join("client.pem");
    srv.ca
        .leaf(&["client.test"])
        .write_combined(&srv.dir, "client");
    let out = py_client(&srv, "localhost", "1.3", "", "unwrap", Some(&client)).await;
    assert!(out.contains("client_cert=true"), "{out}");
    assert!(matches!(
        srv.next_lost().await,
        DisconnectReason::ConnectionDone
    ));

    // Without a certificate the server refuses the handshake (Python sees an alert).
    let script = r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost")
try:
    s.sendall(b"hello\n")
    data = s.recv(100)
    print("got", data)
except (ssl.SSLError, ConnectionError) as e:
    print("refused", e)
"#;
    let port = srv.port().to_string();
    let out = python(script, &[&port, ca.to_str().unwrap()]).await;
    assert!(out.contains("refused"), "{out}");
    assert!(out.to_lowercase().contains("certificate"), "{out}");
    srv.reactor.shutdown().await;
}

#[tokio::test]
async fn openssl_s_client_gets_its_lines_echoed() {
    need("openssl", "apt-get install openssl");
    let srv = serve("ssl:0:privateKey={pem}:interface=127.0.0.1").await;
    let ca = srv.dir.join("ca.pem");
    let port = srv.port();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-servername",
                "localhost",
                "-CAfile",
                ca.to_str().unwrap(),
                "-verify_return_error",
                "-quiet",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl runs");
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello over openssl\nbye\n").unwrap();
        // Keep stdin open until the server closes (s_client quits on stdin EOF at once).
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        out
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "hello over openssl\nbye\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    srv.reactor.shutdown().await;
}

fn rustls_client(ca: &Path) -> tokio_rustls::TlsConnector {
    let opts = weft_core::tls::ClientTlsOptions::default().trust_roots(ca);
    tokio_rustls::TlsConnector::from(opts.config().unwrap())
}

async fn tls_connect(srv: &Server) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(srv.addr()).await.unwrap();
    rustls_client(&srv.dir.join("ca.pem"))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("handshake")
}

#[tokio::test]
async fn garbage_instead_of_a_client_hello_is_dropped_and_the_server_goes_on() {
    let srv = serve("ssl:0:privateKey={pem}:interface=127.0.0.1").await;
    let mut tcp = TcpStream::connect(srv.addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    // The server answers with an alert at most, then closes.
    within(tcp.read_to_end(&mut buf)).await.ok();
    assert!(buf.len() < 16, "{buf:?}");
    assert!(buf.is_empty() || buf[0] == 0x15, "not an alert: {buf:?}");
    // Served as before.
    let mut s = tls_connect(&srv).await;
    assert_eq!(echoed(&mut s, "still here\n").await, "still here\n");
    srv.reactor.shutdown().await;
}

#[tokio::test]
async fn a_client_stopping_mid_handshake_is_dropped_at_the_timeout() {
    let srv = serve("ssl:0:privateKey={pem}:interface=127.0.0.1:handshakeTimeout=0.3").await;
    // Connects and says nothing.
    let mut silent = TcpStream::connect(srv.addr()).await.unwrap();
    // Sends the first bytes of a ClientHello and stops.
    let mut partial = TcpStream::connect(srv.addr()).await.unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    for s in [&mut silent, &mut partial] {
        // Returns (EOF or a reset) only because the server dropped the connection; without
        // the timeout this would wait for `within`'s 20 s and fail.
        let mut buf = Vec::new();
        let _ = within(s.read_to_end(&mut buf)).await;
        assert!(buf.len() < 16, "{buf:?}");
    }
    srv.reactor.shutdown().await;
}

#[tokio::test]
async fn expired_or_mismatched_certificates_are_clear_at_listen_time() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CA");
    let a = ca.leaf(&["localhost"]);
    let b = ca.leaf(&["localhost"]);
    let (a_key, _) = a.write_split(dir.path(), "a");
    let (_, b_cert) = b.write_split(dir.path(), "b");
    let reactor = Reactor::new();
    let ep = format!(
        "ssl:0:privateKey={}:certKey={}:interface=127.0.0.1",
        a_key.display(),
        b_cert.display()
    );
    let never = factory_fn(|_| None::<Echo>);
    let err = reactor.listen(&ep, never).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let msg = err.to_string();
    assert!(
        msg.contains("a.key.pem") && msg.contains("does not match") && msg.contains("b.crt.pem"),
        "{msg}"
    );

    // Expired: listens, with the warning kept on the port.
    let old = ca
        .expired_leaf(&["localhost"])
        .write_combined(dir.path(), "old");
    let ep = format!("ssl:0:privateKey={}:interface=127.0.0.1", old.display());
    let port = reactor
        .listen(&ep, factory_fn(|_| None::<Echo>))
        .await
        .unwrap();
    let warnings = port.tls().unwrap().warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("old.pem") && w.contains("expired")),
        "{warnings:?}"
    );
    reactor.shutdown().await;
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_tls_peer_that_never_reads_keeps_memory_flat() {
    let srv = serve("ssl:0:privateKey={pem}:interface=127.0.0.1").await;
    let mut s = tls_connect(&srv).await;
    let chunk = vec![b'x'; 64 * 1024];
    let before = rss_kib();
    // Sends and never reads: the server echoes until its buffer passes the high water mark,
    // then stops reading, and our writes stall.
    let mut sent = 0usize;
    let stalled = loop {
        match tokio::time::timeout(Duration::from_millis(500), s.write_all(&chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            Ok(Err(e)) => panic!("write failed: {e}"),
            Err(_) => break true,
        }
        if sent > 256 * 1024 * 1024 {
            break false;
        }
    };
    assert!(
        stalled,
        "the server kept reading {sent} bytes from a peer that never reads"
    );
    let grown = rss_kib().saturating_sub(before);
    // Socket buffers are the kernel's; the process holds at most the water marks and one
    // rustls batch per side.
    assert!(
        grown < 16 * 1024,
        "RSS grew by {grown} KiB after {sent} bytes"
    );
    srv.reactor.shutdown().await;
}

#[tokio::test]
async fn many_concurrent_tls_connections_lose_no_line() {
    // The issue's size: 1000 connections at once x 100 lines each; every line comes back, in
    // order, on its own connection.
    const CONNS: usize = 1000;
    const LINES: usize = 100;
    // This process holds both ends of every connection.
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        limit >= 2 * CONNS as u64 + 64,
        "the descriptor limit {limit} is below {}: raise the hard limit (ulimit -Hn)",
        2 * CONNS + 64
    );
    let srv = Arc::new(serve("tls:{dir}:port=0:interface=127.0.0.1").await);
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..CONNS {
        let (srv, done) = (srv.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let s = tls_connect(&srv).await;
            let (r, mut w) = tokio::io::split(s);
            let writer = tokio::spawn(async move {
                for i in 0..LINES {
                    w.write_all(format!("conn {c} line {i}\n").as_bytes())
                        .await
                        .unwrap();
                }
                w
            });
            let mut lines = BufReader::new(r).lines();
            for i in 0..LINES {
                let line = lines.next_line().await.unwrap().expect("a line");
                assert_eq!(line, format!("conn {c} line {i}"));
            }
            drop(writer.await.unwrap());
            done.fetch_add(1, Ordering::Relaxed);
        }));
    }
    for t in tasks {
        within(t).await.unwrap();
    }
    assert_eq!(done.load(Ordering::Relaxed), CONNS);
    srv.reactor.shutdown().await;
}

/// A Python `ssl` echo server for `rounds` connections; returns the child and its port.
fn python_server(dir: &Path, rounds: usize) -> (std::process::Child, u16) {
    let script = r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1])
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(8)
print(ls.getsockname()[1], flush=True)
for _ in range(int(sys.argv[2])):
    raw, _ = ls.accept()
    try:
        s = ctx.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError) as e:
        print("handshake failed:", e, file=sys.stderr, flush=True)
        continue
    while True:
        data = s.recv(4096)
        if not data:
            break
        s.sendall(data)
    s.unwrap()
    s.close()
"#;
    let rounds = rounds.to_string();
    let (child, line) = spawn_python(script, dir, rounds.as_ref());
    (child, line.trim().parse().expect("a port"))
}

/// Runs a Python `script` with `localhost.pem` of `dir` and `arg` as its arguments (stderr
/// not shown); the child and the first line it printed.
fn spawn_python(script: &str, dir: &Path, arg: &std::ffi::OsStr) -> (std::process::Child, String) {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.join("pems/localhost.pem"))
        .arg(arg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    (child, line)
}

/// Sends `hello\n`, closes after the echo; reports what came back and how it ended.
struct Hello {
    got: Vec<u8>,
    done: mpsc::UnboundedSender<(Vec<u8>, DisconnectReason, bool)>,
    tls: bool,
}

impl Protocol for Hello {
    fn connection_made(&mut self, t: &mut Transport) {
        self.tls = t.tls().is_some_and(|i| i.peer_certificate().is_some());
        t.write("hello\n");
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.got.extend_from_slice(data);
        if self.got.ends_with(b"\n") {
            t.lose_connection();
        }
    }
    fn connection_lost(&mut self, reason: DisconnectReason) {
        let _ = self
            .done
            .send((std::mem::take(&mut self.got), reason, self.tls));
    }
}

/// Connects a [`Hello`] client to `ep` (`expect` says what must work) and waits for it to
/// end: the connection, what it received, how it ended, whether it saw the server's
/// certificate.
async fn hello_client(
    reactor: &Reactor,
    ep: &weft_core::ClientEndpoint,
    expect: &str,
) -> (weft_core::Connection, Vec<u8>, DisconnectReason, bool) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let hello = move |_: &_| {
        Some(Hello {
            got: Vec::new(),
            done: tx.clone(),
            tls: false,
        })
    };
    let conn = within(reactor.connect(ep, factory_fn(hello)))
        .await
        .expect(expect);
    let (got, reason, saw_cert) = within(rx.recv()).await.unwrap();
    (conn, got, reason, saw_cert)
}

#[tokio::test]
async fn tls_client_endpoints_verify_the_host_against_a_python_server() {
    need_python();
    let srv = serve("ssl:0:privateKey={pem}:interface=127.0.0.1").await;
    let (mut child, port) = python_server(&srv.dir, 2);
    let ca = srv.dir.join("ca.pem");
    let reactor = Reactor::new();
    let ep: weft_core::ClientEndpoint = format!("tls:localhost:{port}:trustRoots={}", ca.display())
        .parse()
        .unwrap();
    let (conn, got, reason, saw_cert) =
        hello_client(&reactor, &ep, "connects and verifies localhost").await;
    assert_eq!(got, b"hello\n");
    assert!(saw_cert, "the protocol sees the server's certificate");
    assert!(reason.is_clean(), "{reason:?}");
    let _ = conn.closed().await;

    // The same server under another name: refused, saying why.
    let ep: weft_core::ClientEndpoint = format!(
        r"tls:wrong.test:443:trustRoots={}:endpoint=tcp\:127.0.0.1\:{port}",
        ca.display()
    )
    .parse()
    .unwrap();
    let err = within(reactor.connect(&ep, factory_fn(|_| None::<Hello>)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    reactor.shutdown().await;
    srv.reactor.shutdown().await;
}

#[tokio::test]
async fn the_listener_hands_out_tls_streams_for_async_read_write_servers() {
    use weft_core::listener::{Listener, Stream};
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CA");
    let pem = ca
        .leaf(&["localhost"])
        .write_combined(dir.path(), "localhost");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let listener = Listener::bind(&format!(
        "ssl:0:privateKey={}:interface=127.0.0.1",
        pem.display()
    ))
    .await
    .unwrap();
    assert!(listener.tls().is_some());
    let addr = listener.local_addr().as_inet().unwrap();
    let client = tokio::spawn({
        let ca = dir.path().join("ca.pem");
        async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let mut s = rustls_client(&ca)
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            s.write_all(b"ping").await.unwrap();
            let mut buf = [0; 4];
            s.read_exact(&mut buf).await.unwrap();
            buf
        }
    });
    let incoming = within(listener.accept()).await.unwrap();
    assert!(incoming.needs_setup());
    let mut conn = within(incoming.establish()).await.unwrap();
    assert!(matches!(conn.stream, Stream::Tls(_)));
    let mut buf = [0; 4];
    conn.stream.read_exact(&mut buf).await.unwrap();
    conn.stream.write_all(b"pong").await.unwrap();
    conn.stream.flush().await.unwrap();
    assert_eq!(&buf, b"ping");
    assert_eq!(&within(client).await.unwrap(), b"pong");
}

#[tokio::test]
async fn reload_under_load_drops_no_connection_and_new_ones_see_the_new_certificate() {
    let srv = Arc::new(serve("tls:{dir}:port=0:interface=127.0.0.1").await);
    let leaf_of = |s: &tokio_rustls::client::TlsStream<TcpStream>| {
        s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    // Connections up before the reload, talking through it.
    let mut open = Vec::new();
    for _ in 0..20 {
        open.push(tls_connect(&srv).await);
    }
    let old_leaf = leaf_of(&open[0]);
    // A new certificate for localhost replaces the old file.
    srv.ca
        .leaf(&["localhost", "127.0.0.1"])
        .write_combined(&srv.dir.join("pems"), "localhost");
    let reloading = {
        let srv = srv.clone();
        tokio::spawn(async move { srv.port.reload_tls().unwrap().unwrap() })
    };
    for (i, s) in open.iter_mut().enumerate() {
        let line = format!("still {i}\n");
        assert_eq!(echoed(s, &line).await, line);
    }
    within(reloading).await.unwrap();
    let fresh = tls_connect(&srv).await;
    assert_ne!(
        leaf_of(&fresh),
        old_leaf,
        "a new connection gets the new certificate"
    );
    assert_eq!(leaf_of(&open[0]), old_leaf, "an open one keeps its own");
    srv.reactor.shutdown().await;
}

#[tokio::test]
async fn a_client_hello_sent_a_byte_at_a_time_still_completes() {
    // The handshake reads whatever arrives: a ClientHello cut at every byte is not an error.
    let srv = serve("ssl:0:privateKey={pem}:interface=127.0.0.1").await;
    let tcp = TcpStream::connect(srv.addr()).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let slow = ByteAtATime(tcp);
    let mut s = rustls_client(&srv.dir.join("ca.pem"))
        .connect(ServerName::try_from("localhost").unwrap(), slow)
        .await
        .expect("handshake over one-byte writes");
    assert_eq!(echoed(&mut s, "slow\n").await, "slow\n");
    srv.reactor.shutdown().await;
}

/// A stream that writes one byte per call (and flushes it: TCP_NODELAY).
struct ByteAtATime(TcpStream);

impl tokio::io::AsyncRead for ByteAtATime {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for ByteAtATime {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let n = buf.len().min(1);
        std::pin::Pin::new(&mut self.0).poll_write(cx, &buf[..n])
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn a_tls_client_endpoint_goes_through_a_unix_socket_and_verifies_the_host() {
    need_python();
    let srv = serve("ssl:0:privateKey={pem}:interface=127.0.0.1").await;
    let sock = srv.dir.join("tls.sock");
    let script = r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1])
ls = socket.socket(socket.AF_UNIX)
ls.bind(sys.argv[2])
ls.listen(1)
print("ready", flush=True)
raw, _ = ls.accept()
s = ctx.wrap_socket(raw, server_side=True)
data = s.recv(100)
s.sendall(data)
s.unwrap()
"#;
    let (mut child, line) = spawn_python(script, &srv.dir, sock.as_ref());
    assert_eq!(line, "ready\n");
    let ep: weft_core::ClientEndpoint = format!(
        r"tls:localhost:443:trustRoots={}:endpoint=unix\:{}",
        srv.dir.join("ca.pem").display(),
        sock.display()
    )
    .parse()
    .unwrap();
    let reactor = Reactor::new();
    let (_conn, got, reason, saw_cert) = hello_client(
        &reactor,
        &ep,
        "TLS over the Unix socket, localhost verified",
    )
    .await;
    assert_eq!(got, b"hello\n");
    assert!(saw_cert);
    assert!(reason.is_clean(), "{reason:?}");
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    reactor.shutdown().await;
    srv.reactor.shutdown().await;
}
