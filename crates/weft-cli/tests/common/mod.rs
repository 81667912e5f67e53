//! Helpers of the end-to-end tests: a `weft serve` child that is always killed, and a tiny
//! in-process HTTP/1.1 server.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// The longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The endpoint [`Server::start`] listens on: a free port on 127.0.0.1.
pub const LOOPBACK: &str = "tcp:0:interface=127.0.0.1";

/// Fails (never skips) unless `program ARGS...` runs and exits 0, saying that `what` is not
/// installed and how to install `package`.
pub fn require_runs(program: &str, args: &[&str], what: &str, package: &str) {
    let ok = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{what} is not installed: run `apt-get update && apt-get install -y {package}` (as root)"
    );
}

/// `python3` with its `ssl` module, or a failure that says how to install it.
pub fn require_python_ssl() {
    require_runs(
        "python3",
        &["-c", "import ssl"],
        "python3 with its ssl module",
        "python3",
    );
}

/// The `openssl` command, or a failure that says how to install it.
pub fn require_openssl() {
    require_runs("openssl", &["version"], "openssl", "openssl");
}

/// `weft` run to its end, bounded by [`WAIT`]: `Cmd::new(WEFT).args(..).run()`.
pub trait Run {
    /// Runs the command (killed after [`WAIT`]); the outcome to check.
    fn run(&mut self) -> assert_cmd::assert::Assert;
}

impl Run for assert_cmd::Command {
    fn run(&mut self) -> assert_cmd::assert::Assert {
        self.timeout(WAIT).assert()
    }
}

/// Runs `weft ARGS...`, checks that it fails as a usage error (exit 2); its stderr.
pub fn usage_error(args: &[&str]) -> String {
    assert_cmd::Command::new(WEFT)
        .args(args)
        .run()
        .code(2)
        .stderr_text()
}

/// A loopback address nothing listens on (a port just bound and released).
pub fn closed_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Sends `signal` (`-TERM`, `-INT`, `-HUP`) to process `pid` with kill(1).
pub fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}: {status:?}");
}

/// Waits up to [`WAIT`] for `child` to exit; kills it and fails naming `what` if it does not.
pub fn wait_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// What a finished command printed.
pub trait Printed {
    /// Its stdout, after checking that it exited 0.
    fn ok_stdout(self) -> Vec<u8>;
    /// Its stderr, after checking that it exited 0.
    fn ok_stderr(self) -> Vec<u8>;
    /// Its stderr as text (invalid UTF-8 replaced), whatever its exit.
    fn stderr_text(&self) -> String;
}

impl Printed for assert_cmd::assert::Assert {
    fn ok_stdout(self) -> Vec<u8> {
        self.success().get_output().stdout.clone()
    }

    fn ok_stderr(self) -> Vec<u8> {
        self.success().get_output().stderr.clone()
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.get_output().stderr).into_owned()
    }
}

/// A `weft serve` child process, killed on drop (even when the test fails).
pub struct Server {
    pub child: Child,
    /// The directory of a [`Server::start_unix`] socket, removed after the child is gone.
    dir: Option<tempfile::TempDir>,
    /// The address from the `listening on ...` line.
    pub addr: String,
    /// What the child prints on stdout, as it arrives.
    pub stdout: Output,
    /// The lines the child prints on stderr after the first, as they arrive.
    pub stderr: Output,
}

/// Collects a child's stdout in the background.
#[derive(Clone)]
pub struct Output(Arc<Mutex<Vec<u8>>>);

impl Output {
    fn collect(mut out: ChildStdout) -> Output {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                b.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Output(buf)
    }

    /// Everything received so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits for a line starting with `prefix`; returns the rest of that line.
    pub fn wait_for_line(&self, prefix: &str) -> String {
        let text = self.wait_for(prefix);
        let line = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_default();
        line[prefix.len()..].to_string()
    }

    /// Waits until the output contains `needle`; panics with the output after [`WAIT`].
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?} in stdout: {text:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Server {
    /// Starts `weft serve ARGS... --listen tcp:0:interface=127.0.0.1`.
    pub fn start(args: &[&str]) -> Server {
        Self::serve_on(LOOPBACK, args)
    }

    /// Starts `weft serve ARGS... --listen ENDPOINT`.
    pub fn serve_on(endpoint: &str, args: &[&str]) -> Server {
        Self::start_raw(&[&["serve"], args, &["--listen", endpoint]].concat())
    }

    /// Starts `weft serve ARGS... --listen unix:DIR/s` in a fresh temporary directory
    /// (removed when the server is dropped); the server and the socket's path.
    pub fn start_unix(args: &[&str]) -> (Server, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut server = Self::serve_on(&format!("unix:{}", path.display()), args);
        server.dir = Some(dir);
        (server, path)
    }

    /// Starts `weft ARGS...` and waits for its `listening on ADDR` line.
    pub fn start_raw(args: &[&str]) -> Server {
        let mut child = Command::new(WEFT)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weft");
        let stdout = Output::collect(child.stdout.take().unwrap());
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let rest = Output(Arc::default());
        let rest2 = rest.clone();
        thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            // Keep the rest (draining it, so the child never blocks on a full pipe).
            for line in lines.map_while(Result::ok) {
                let mut out = rest2.0.lock().unwrap();
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
        });
        let mut server = Server {
            child,
            dir: None,
            addr: String::new(),
            stdout,
            stderr: rest,
        };
        let first = rx.recv_timeout(WAIT).expect("no `listening on` line");
        server.addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first stderr line {first:?}"))
            .to_string();
        server
    }

    /// Connects a plain TCP client, with read and write timeouts.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).expect("connect to weft serve");
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
        s
    }

    /// Connects a plain TCP client as [`connect`](Self::connect) does; the client and its
    /// own address as the server prints it (`Got connection from ME`).
    pub fn connect_as(&self) -> (TcpStream, String) {
        let c = self.connect();
        let me = c.local_addr().unwrap().to_string();
        (c, me)
    }

    /// A loopback address nothing listens on (a port just bound and released).
    pub fn closed_addr() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    /// Sends `signal` (`-TERM`, `-INT`, `-HUP`) to the child.
    pub fn kill(&self, signal: &str) {
        kill(signal, self.child.id());
    }

    /// Waits for the child to exit (after a signal), up to [`WAIT`].
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        wait_exit(&mut self.child, "weft did not exit")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads until EOF (the server closed), bounded by the stream's read timeout.
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("read until the server closes");
    out
}

/// Reads exactly `n` bytes.
pub fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    s.read_exact(&mut out).expect("read");
    out
}

/// Writes `contents` to the file `name` in `dir`; its path.
pub fn file_in(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Writes `msg` and expects it echoed back (over TCP or a Unix socket).
pub fn echoes(c: &mut (impl Read + Write), msg: &[u8]) {
    c.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    c.read_exact(&mut back).expect("read the echo");
    assert_eq!(back, msg);
}

/// One request as the test HTTP server saw it.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// A response of the test server.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Sent as Content-Length instead of the body's length (to test short bodies).
    pub content_length: Option<usize>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Wait this long after the body before closing (a stalled transfer).
    pub hold: Duration,
    /// Send the body a byte at a time, this long apart (a slow drip that never stalls).
    pub drip: Duration,
    /// Send these bytes instead of a well-formed answer (a server breaking the protocol).
    pub raw: Option<Vec<u8>>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            content_length: None,
            delay: Duration::ZERO,
            hold: Duration::ZERO,
            drip: Duration::ZERO,
            raw: None,
        }
    }

    /// An answer of exactly these bytes.
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply {
            raw: Some(bytes.into()),
            ..Reply::new(200, "")
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The routing function of a test server.
pub type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A tiny HTTP/1.1 server on 127.0.0.1:0 (one request per connection, `Connection: close`).
pub struct HttpServer {
    pub addr: SocketAddr,
    /// Every request received, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl HttpServer {
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let s = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                let s = s.clone();
                thread::spawn(move || {
                    let _ = serve_one(stream, &*handler, &s);
                });
            }
        });
        HttpServer { addr, seen }
    }

    /// `http://ADDR/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_one(
    mut stream: TcpStream,
    handler: &Handler,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(WAIT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let mut req = Seen {
        method: parts.next().unwrap_or_default().to_string(),
        path: parts.next().unwrap_or_default().to_string(),
        ..Seen::default()
    };
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            req.headers
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = req
        .headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    req.body = body;
    seen.lock().unwrap().push(req.clone());
    let reply = handler(&req);
    if !reply.delay.is_zero() {
        thread::sleep(reply.delay);
    }
    if let Some(raw) = &reply.raw {
        stream.write_all(raw)?;
        stream.flush()?;
        stream.shutdown(std::net::Shutdown::Write)?;
        let mut sink = [0u8; 1024];
        while matches!(reader.get_mut().read(&mut sink), Ok(n) if n > 0) {}
        return Ok(());
    }
    let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.content_length.unwrap_or(reply.body.len())
    ));
    stream.write_all(head.as_bytes())?;
    if req.method != "HEAD" && reply.drip.is_zero() {
        stream.write_all(&reply.body)?;
    } else if req.method != "HEAD" {
        for byte in &reply.body {
            stream.write_all(&[*byte])?;
            stream.flush()?;
            thread::sleep(reply.drip);
        }
    }
    stream.flush()?;
    if !reply.hold.is_zero() {
        thread::sleep(reply.hold);
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    // Let the client read everything before the socket goes away.
    let mut sink = [0u8; 1024];
    while matches!(reader.get_mut().read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}

/// Kills and reaps a child when dropped (even when the test fails).
pub struct KillOnDrop<'a>(pub &'a mut Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
