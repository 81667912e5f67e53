//! `Transport::start_tls` over loopback: the STARTTLS example's server driven by Python's
//! `ssl` module (`SSLObject` over the plain socket after the clear exchange, the
//! `ClientHello` pipelined behind `STARTTLS` or sent after the go-ahead), the example's
//! client against its server, and hostile peers: plaintext injected behind `STARTTLS`, a
//! handshake that never finishes, a peer that never reads once upgraded. Every connection
//! reports `connection_lost` exactly once, with the reason checked.
//!
//! The Python test fails with the install command when python3 is missing.
#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use weft::core::tls::{CertSource, ClientTlsOptions, ServerTls, ServerTlsOptions, TlsUpgrade};
use weft::core::{
    Address, DEFAULT_HIGH_WATER, DisconnectReason, Protocol, Reactor, TimeoutKind, TimerId,
    Transport, factory_fn,
};
use weft::line::LineProtocol;

#[allow(dead_code)]
#[path = "../examples/starttls.rs"]
mod starttls;

const LIMIT: Duration = Duration::from_secs(20);

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test step timed out")
}

/// Forwards every callback and reports `connection_lost`'s reason (each one: a second call
/// would show up as a second message).
struct Recorded<P> {
    inner: P,
    lost: mpsc::UnboundedSender<DisconnectReason>,
}

impl<P: Protocol> Protocol for Recorded<P> {
    fn connection_made(&mut self, t: &mut Transport) {
        self.inner.connection_made(t);
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.inner.data_received(data, t);
    }
    fn eof_received(&mut self, t: &mut Transport) -> bool {
        self.inner.eof_received(t)
    }
    fn connection_lost(&mut self, reason: DisconnectReason) {
        let _ = self.lost.send(reason.clone());
        self.inner.connection_lost(reason);
    }
    fn pause_writing(&mut self, t: &mut Transport) {
        self.inner.pause_writing(t);
    }
    fn resume_writing(&mut self, t: &mut Transport) {
        self.inner.resume_writing(t);
    }
    fn timer_fired(&mut self, id: TimerId, t: &mut Transport) {
        self.inner.timer_fired(id, t);
    }
    fn reading_resumed(&mut self, t: &mut Transport) {
        self.inner.reading_resumed(t);
    }
}

/// The example's server on a loopback port, with its certificate.
struct Server {
    _reactor: Reactor,
    port: u16,
    cert: PathBuf,
    lost: mpsc::UnboundedReceiver<DisconnectReason>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// The one `connection_lost` of the next connection to end (and no second one).
    async fn reason(&mut self) -> DisconnectReason {
        let r = within(self.lost.recv()).await.expect("a reason");
        tokio::task::yield_now().await;
        assert!(self.lost.try_recv().is_err(), "connection_lost twice");
        r
    }
}

fn certificate() -> (tempfile::TempDir, PathBuf, TlsUpgrade, ServerTls) {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = starttls::certificate(dir.path()).unwrap();
    let tls = ServerTls::load(&ServerTlsOptions::new(CertSource::files(
        key,
        Some(cert.clone()),
        None,
    )))
    .unwrap();
    (dir, cert, TlsUpgrade::from(&tls), tls)
}

/// Serves `make(upgrade)` on 127.0.0.1, each connection's end reported.
async fn serve<P: Protocol>(
    timeout: Duration,
    make: impl Fn(TlsUpgrade) -> P + Send + Sync + 'static,
) -> Server {
    serve_on(None, timeout, make).await
}

/// Serves `make(upgrade)` on `unix` (a socket path) or 127.0.0.1.
async fn serve_on<P: Protocol>(
    unix: Option<&std::path::Path>,
    timeout: Duration,
    make: impl Fn(TlsUpgrade) -> P + Send + Sync + 'static,
) -> Server {
    let (dir, cert, upgrade, _) = certificate();
    let upgrade = upgrade.handshake_timeout(timeout);
    let (tx, lost) = mpsc::unbounded_channel();
    let reactor = Reactor::new();
    let up = upgrade;
    let factory = factory_fn(move |_: &Address| {
        Some(Recorded {
            inner: make(up.clone()),
            lost: tx.clone(),
        })
    });
    let endpoint = match unix {
        Some(path) => format!("unix:{}", path.display()),
        None => "tcp:0:interface=127.0.0.1".into(),
    };
    let listening = reactor.listen(&endpoint, factory).await.unwrap();
    let port = listening.local_addr().as_inet().map_or(0, |a| a.port());
    std::mem::forget(listening); // serves until the test's runtime ends
    Server {
        _reactor: reactor,
        port,
        cert,
        lost,
        _dir: dir,
    }
}

async fn example_server(timeout: Duration) -> Server {
    serve(timeout, |upgrade| {
        LineProtocol::new(starttls::Server { upgrade })
    })
    .await
}

/// Reads until EOF (or an error such as a reset), within the limit.
async fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match within(s.read(&mut buf)).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one `\r\n` line (byte by byte: nothing after it is consumed).
async fn read_line(s: &mut TcpStream) -> Vec<u8> {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        let b = within(s.read_u8()).await.expect("a line");
        line.push(b);
    }
    line
}

const PYTHON: &str = r#"
import socket, ssl, sys
port, cafile, pipelined = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
s = socket.create_connection(("127.0.0.1", port), timeout=15)
buf = b""
def line():
    global buf
    while b"\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise SystemExit("EOF in the clear part")
        buf += d
    l, buf = buf.split(b"\r\n", 1)
    return l.decode()
print(line())
s.sendall(b"hello\r\n")
print(line())
ctx = ssl.create_default_context(cafile=cafile)   # verifies the chain and the name
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
if pipelined:
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    s.sendall(b"STARTTLS\r\n" + out.read())   # the ClientHello in the same segment
    print(line())
else:
    s.sendall(b"STARTTLS\r\n")
    print(line())
inc.write(buf)   # whatever came after the go-ahead is TLS
def pump():
    if out.pending:
        s.sendall(out.read())
    d = s.recv(65536)
    if not d:
        inc.write_eof()
    inc.write(d)
while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        pump()
if out.pending:
    s.sendall(out.read())
print(tls.version())
tls.write(b"secret\r\nQUIT\r\n")
s.sendall(out.read())
got = b""
while True:
    try:
        d = tls.read(4096)
        if not d:
            break
        got += d
    except ssl.SSLWantReadError:
        pump()
    except ssl.SSLZeroReturnError:
        break
print(got.decode().replace("\r\n", "|"))
"#;

/// Python's `ssl` (not written here) upgrades after the clear exchange: clear lines before,
/// encrypted after, the server's certificate verified, a clean close (`close_notify`) at the
/// end; the `ClientHello` pipelined behind `STARTTLS` or sent after the go-ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ssl_object_upgrades_after_the_clear_exchange() {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs python3: install it with `apt-get install python3`"
    );
    let mut srv = example_server(Duration::from_secs(10)).await;
    for pipelined in ["1", "0"] {
        let (port, cert) = (srv.port.to_string(), srv.cert.clone());
        let out = within(tokio::task::spawn_blocking(move || {
            Command::new("python3")
                .arg("-c")
                .arg(PYTHON)
                .args([port.as_str(), cert.to_str().unwrap(), pipelined])
                .output()
                .expect("python3 runs")
        }))
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "python failed (pipelined={pipelined}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 5, "{stdout}");
        assert_eq!(lines[0], "220 ready");
        assert_eq!(lines[1], "clear: hello");
        assert_eq!(lines[2], "220 go ahead");
        assert!(lines[3].starts_with("TLSv1."), "{stdout}");
        assert_eq!(lines[4], "tls: secret|221 bye|", "pipelined={pipelined}");
        assert!(matches!(srv.reason().await, DisconnectReason::LocalClose));
    }
}

/// The weft client of the example against its server: clear greeting and go-ahead, the
/// lines and replies over TLS, `QUIT`, and the server's `close_notify` read as a clean EOF;
/// over TCP and over a Unix socket (both plain kinds can upgrade, on both sides).
#[tokio::test]
async fn the_example_client_talks_to_the_example_server_over_tls() {
    let sockets = tempfile::tempdir().unwrap();
    let path = sockets.path().join("starttls.sock");
    for unix in [None, Some(path.as_path())] {
        example_client_and_server(unix).await;
    }
}

async fn example_client_and_server(unix: Option<&std::path::Path>) {
    let mut srv = serve_on(unix, Duration::from_secs(10), |upgrade| {
        LineProtocol::new(starttls::Server { upgrade })
    })
    .await;
    let config = ClientTlsOptions::default()
        .trust_roots(&srv.cert)
        .config()
        .unwrap();
    let upgrade = TlsUpgrade::client(config, "localhost").unwrap();
    let replies = Arc::new(Mutex::new(Vec::new()));
    let sink = replies.clone();
    let lines = vec!["hello".to_string(), "world".to_string()];
    let endpoint: weft::core::ClientEndpoint = match unix {
        Some(path) => format!("unix:{}", path.display()),
        None => format!("tcp:127.0.0.1:{}", srv.port),
    }
    .parse()
    .unwrap();
    let reactor = Reactor::new();
    let conn = reactor
        .connect(
            &endpoint,
            factory_fn(move |_: &Address| {
                let c = starttls::Client::new(upgrade.clone(), lines.clone(), sink.clone());
                Some(LineProtocol::new(c))
            }),
        )
        .await
        .unwrap();
    let reason = within(conn.closed()).await;
    assert!(
        matches!(reason, DisconnectReason::ConnectionDone),
        "client ({unix:?}): {reason}"
    );
    assert_eq!(*replies.lock().unwrap(), ["tls: hello", "tls: world"]);
    assert!(matches!(srv.reason().await, DisconnectReason::LocalClose));
}

/// The STARTTLS command injection: plaintext behind `STARTTLS\r\n`, in the same segment or
/// in the next one, is never delivered as a line (no `clear: EVIL` reply): it goes to TLS,
/// which refuses it with an alert, and the connection ends with a TLS reason.
#[tokio::test]
async fn plaintext_injected_after_starttls_is_never_delivered() {
    let mut srv = example_server(Duration::from_secs(10)).await;
    for split in [false, true] {
        let mut s = TcpStream::connect(("127.0.0.1", srv.port)).await.unwrap();
        assert_eq!(read_line(&mut s).await, b"220 ready\r\n");
        if split {
            s.write_all(b"STARTTLS\r\n").await.unwrap();
            assert_eq!(read_line(&mut s).await, b"220 go ahead\r\n");
            s.write_all(b"EVIL\r\nQUIT\r\n").await.unwrap();
        } else {
            s.write_all(b"STARTTLS\r\nEVIL\r\nQUIT\r\n").await.unwrap();
            assert_eq!(read_line(&mut s).await, b"220 go ahead\r\n");
        }
        let rest = read_to_end(&mut s).await;
        // A TLS alert record (content type 21), and nothing in clear.
        assert_eq!(rest.first(), Some(&0x15), "split={split}: {rest:?}");
        assert!(!rest.windows(4).any(|w| w == b"EVIL"), "{rest:?}");
        let reason = srv.reason().await;
        assert!(
            matches!(reason, DisconnectReason::Tls(_)),
            "split={split}: {reason}"
        );
    }
}

/// A client that sends `STARTTLS` and then nothing, or a few bytes of a `ClientHello`, is
/// dropped at the handshake timeout.
#[tokio::test]
async fn a_handshake_that_never_finishes_is_dropped_at_the_timeout() {
    let mut srv = example_server(Duration::from_millis(300)).await;
    for tail in [&b""[..], b"\x16\x03\x01\x02\x00\x01"] {
        let mut s = TcpStream::connect(("127.0.0.1", srv.port)).await.unwrap();
        assert_eq!(read_line(&mut s).await, b"220 ready\r\n");
        s.write_all(b"STARTTLS\r\n").await.unwrap();
        s.write_all(tail).await.unwrap();
        assert_eq!(read_line(&mut s).await, b"220 go ahead\r\n");
        let rest = read_to_end(&mut s).await;
        assert!(!rest.windows(5).any(|w| w == b"clear"), "{rest:?}");
        let reason = srv.reason().await;
        assert!(
            matches!(reason, DisconnectReason::TimedOut(TimeoutKind::Handshake)),
            "{reason}"
        );
    }
}

/// A raw `data_received` protocol: `STARTTLS\r\n` upgrades (the rest of the read handed to
/// TLS); once upgraded, any input starts a flood of 16 KiB writes, written only while the
/// transport is not paused, with the largest write buffer seen recorded.
struct Flood {
    upgrade: TlsUpgrade,
    upgraded: bool,
    flooding: bool,
    paused: Arc<AtomicBool>,
    max_buffer: Arc<AtomicUsize>,
    written: Arc<AtomicUsize>,
}

const CHUNK: usize = 16 * 1024;

impl Flood {
    fn fill(&mut self, t: &mut Transport) {
        while self.flooding && !self.paused.load(Ordering::SeqCst) && !t.is_closing() {
            t.write([b'x'; CHUNK]);
            self.written.fetch_add(CHUNK, Ordering::SeqCst);
            self.max_buffer
                .fetch_max(t.write_buffer_size(), Ordering::SeqCst);
            if t.write_buffer_size() > DEFAULT_HIGH_WATER {
                break; // pause_writing comes when this callback returns
            }
        }
    }
}

impl Protocol for Flood {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        if !self.upgraded {
            if let Some(rest) = data.strip_prefix(b"STARTTLS\r\n") {
                t.write("220 go ahead\r\n");
                t.start_tls(self.upgrade.clone(), rest).unwrap();
                self.upgraded = true;
            }
            return;
        }
        assert!(t.tls().is_some(), "input after the upgrade comes over TLS");
        self.flooding = true;
        self.fill(t);
    }
    fn pause_writing(&mut self, _: &mut Transport) {
        self.paused.store(true, Ordering::SeqCst);
    }
    fn resume_writing(&mut self, t: &mut Transport) {
        self.paused.store(false, Ordering::SeqCst);
        self.fill(t);
    }
}

/// A peer that upgrades and then never reads: the write buffer (plaintext the protocol
/// wrote) stops at the high water mark, `pause_writing` is called, and the protocol's writes
/// stop (bounded by the socket buffers and one rustls batch), as on `ssl:` endpoints.
#[tokio::test]
async fn a_peer_that_never_reads_after_the_upgrade_keeps_memory_bounded() {
    let paused = Arc::new(AtomicBool::new(false));
    let max_buffer = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(AtomicUsize::new(0));
    let (p, m, w) = (paused.clone(), max_buffer.clone(), written.clone());
    let srv = serve(Duration::from_secs(10), move |upgrade| Flood {
        upgrade,
        upgraded: false,
        flooding: false,
        paused: p.clone(),
        max_buffer: m.clone(),
        written: w.clone(),
    })
    .await;
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).await.unwrap();
    s.write_all(b"STARTTLS\r\n").await.unwrap();
    assert_eq!(read_line(&mut s).await, b"220 go ahead\r\n");
    let config = ClientTlsOptions::default()
        .trust_roots(&srv.cert)
        .config()
        .unwrap();
    let mut tls = within(weft::core::tls::client_handshake(s, "localhost", config))
        .await
        .unwrap();
    tls.write_all(b"go\r\n").await.unwrap();
    tls.flush().await.unwrap();
    // Never read from here on.
    within(async {
        while !paused.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let at_pause = written.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        paused.load(Ordering::SeqCst),
        "still paused: the peer reads nothing"
    );
    assert_eq!(
        written.load(Ordering::SeqCst),
        at_pause,
        "no write while paused"
    );
    assert!(
        max_buffer.load(Ordering::SeqCst) <= DEFAULT_HIGH_WATER + CHUNK,
        "write buffer grew to {}",
        max_buffer.load(Ordering::SeqCst)
    );
    // Loopback socket buffers are a few MiB at most: the flood stopped long before 64 MiB.
    assert!(
        at_pause < 64 << 20,
        "wrote {at_pause} bytes to a peer that reads nothing"
    );
    drop(tls);
}

/// After the upgrade the connection ends as one from an `ssl:` endpoint does: the peer's
/// `close_notify` is a clean EOF (`ConnectionDone`), a TCP close without it is
/// `TlsTruncated`.
#[tokio::test]
async fn close_notify_and_truncation_after_the_upgrade_read_as_on_ssl_endpoints() {
    let mut srv = example_server(Duration::from_secs(10)).await;
    let config = ClientTlsOptions::default()
        .trust_roots(&srv.cert)
        .config()
        .unwrap();
    for clean in [true, false] {
        let mut s = TcpStream::connect(("127.0.0.1", srv.port)).await.unwrap();
        assert_eq!(read_line(&mut s).await, b"220 ready\r\n");
        s.write_all(b"STARTTLS\r\n").await.unwrap();
        assert_eq!(read_line(&mut s).await, b"220 go ahead\r\n");
        let mut tls = within(weft::core::tls::client_handshake(
            s,
            "localhost",
            config.clone(),
        ))
        .await
        .unwrap();
        tls.write_all(b"ping\r\n").await.unwrap();
        let mut reply = [0u8; 11];
        within(tls.read_exact(&mut reply)).await.unwrap();
        assert_eq!(&reply, b"tls: ping\r\n");
        if clean {
            tls.shutdown().await.unwrap(); // close_notify, then FIN
            let rest = read_to_end_tls(&mut tls).await;
            assert!(rest.is_empty(), "{rest:?}");
        } else {
            drop(tls.into_inner().0); // a FIN without close_notify
        }
        let reason = srv.reason().await;
        if clean {
            assert!(
                matches!(reason, DisconnectReason::ConnectionDone),
                "{reason}"
            );
        } else {
            assert!(matches!(reason, DisconnectReason::TlsTruncated), "{reason}");
        }
    }
}

/// Reads a TLS stream until its end (the server's `close_notify` answering ours).
async fn read_to_end_tls(s: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = within(s.read_to_end(&mut got)).await;
    got
}
