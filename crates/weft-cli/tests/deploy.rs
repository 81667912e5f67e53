//! `weft serve` deployed as docs/deploy.md says, against the real tools. The tests read the
//! doc's snippets (HAProxy's `haproxy.cfg`, nginx's `stream` block, the systemd units, the
//! `weft` command lines, the Kubernetes `args`) from the file itself, move ports and paths,
//! and run them: HAProxy in `mode tcp` with `send-proxy` (v1) and `send-proxy-v2` and
//! `check send-proxy-v2` health checks, in front of plain and TLS endpoints and of a rolling
//! restart; nginx `stream` with `proxy_protocol on`; `--max-per-peer` behind a PROXY header;
//! `systemd-analyze verify` and `systemd-socket-activate` with and without `--fdname`, a
//! `NOTIFY_SOCKET` that receives READY=1 and STOPPING=1; two instances on one port with
//! `reusePort=1`; the SIGTERM drain a Kubernetes pod relies on.
//!
//! HAProxy and nginx run from generated configurations on free ports, in the foreground, and
//! are killed on drop. A missing tool fails the test with the command that installs it: these
//! tests never pass silently.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{KillOnDrop, Server, WAIT, WEFT, file_in, require_python_ssl};

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

/// Whether a socket listens on 127.0.0.1:`port` (read from /proc/net/tcp, without
/// connecting: a probe connection would reach the backend behind a balancer).
fn listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A")
    })
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

/// docs/deploy.md: the tests run its snippets as they are written there.
const DEPLOY_MD: &str = include_str!("../../../docs/deploy.md");

/// The fenced block of docs/deploy.md whose first line starts with `first` (a comment that
/// names the file, e.g. `# haproxy.cfg`).
fn doc_snippet(first: &str) -> String {
    DEPLOY_MD
        .split("```")
        .skip(1)
        .step_by(2)
        .filter_map(|block| block.split_once('\n').map(|(_, body)| body))
        .find(|body| body.starts_with(first))
        .unwrap_or_else(|| panic!("docs/deploy.md has no snippet starting with {first:?}"))
        .to_string()
}

/// A `weft ...` command line of docs/deploy.md, with `replace`'s substitutions (ports, paths)
/// applied, as arguments after `weft`.
fn doc_command(line: &str, replace: &[(&str, &str)]) -> Vec<String> {
    assert!(
        DEPLOY_MD.contains(line),
        "docs/deploy.md no longer shows `{line}`"
    );
    let mut line = line.to_string();
    for (from, to) in replace {
        assert!(line.contains(from), "`{line}` has no {from}");
        line = line.replace(from, to);
    }
    let mut words = line.split_whitespace().map(str::to_string);
    assert_eq!(words.next().as_deref(), Some("weft"));
    words.collect()
}

/// Starts `weft ARGS`.
fn weft(args: &[String]) -> Server {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_raw(&args)
}

/// Sends SIGTERM to a `weft serve` and waits for its exit.
fn terminate(server: &mut Server) -> std::process::ExitStatus {
    server.kill("-TERM");
    server.wait_exit()
}

/// Sends SIGTERM to a `weft serve` started with `NOTIFY_SOCKET` at `notify`: it says
/// STOPPING=1 and exits 0.
fn stops_notifying(child: &mut Child, notify: &std::os::unix::net::UnixDatagram) {
    common::kill("-TERM", child.id());
    let mut buf = [0u8; 64];
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(buf[..n].trim_ascii(), b"STOPPING=1");
    assert!(child.wait().unwrap().success());
}

/// A load balancer in front of weft (HAProxy or nginx), run in the foreground from a
/// generated configuration on a free port, killed on drop.
struct Front {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    /// Its log, in `dir`.
    log: &'static str,
}

impl Front {
    /// HAProxy in `mode tcp` from docs/deploy.md's `haproxy.cfg`, its frontend moved to a
    /// free port and its servers to `backends` (the doc's servers in order, those past
    /// `backends` left out), plus a stats socket the tests ask for the servers' health. With
    /// `v1`, the servers get `send-proxy` instead of `send-proxy-v2` (the health checks stay
    /// v2: LOCAL).
    fn haproxy(backends: &[&str], v1: bool) -> Front {
        let bin = require("haproxy", "haproxy");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let doc = doc_snippet("# haproxy.cfg");
        assert!(doc.contains("bind 127.0.0.1:8000"), "{doc}");
        let mut config = format!(
            "global\n    stats socket {} level admin\n",
            dir.path().join("stats.sock").display()
        );
        let mut servers = 0;
        for line in doc.lines() {
            let line = line.replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"));
            let Some(server) = line.trim_start().strip_prefix("server ") else {
                config.push_str(&line);
                config.push('\n');
                continue;
            };
            let Some(backend) = backends.get(servers) else {
                continue;
            };
            servers += 1;
            let mut words: Vec<&str> = server.split_whitespace().collect();
            words[1] = backend;
            if v1 {
                assert_eq!(words[2], "send-proxy-v2", "{line}");
                words[2] = "send-proxy";
            }
            config.push_str(&format!("    server {}\n", words.join(" ")));
        }
        assert_eq!(
            servers,
            backends.len(),
            "docs/deploy.md's haproxy.cfg has too few servers"
        );
        let cfg = file_in(dir.path(), "haproxy.cfg", &config);
        let mut check = Command::new(&bin);
        check.arg("-c").arg("-f").arg(&cfg);
        let mut run = Command::new(&bin);
        run.arg("-db").arg("-f").arg(&cfg);
        Front::launch(check, run, &config, port, dir, "haproxy.log")
    }

    /// Runs `check` (the tool's configuration test) and then `run`, its log into `log` in
    /// `dir`.
    fn launch(
        mut check: Command,
        mut run: Command,
        config: &str,
        port: u16,
        dir: tempfile::TempDir,
        log: &'static str,
    ) -> Front {
        let checked = check.stdin(Stdio::null()).output().unwrap();
        assert!(
            checked.status.success(),
            "{check:?}: {}\n{config}",
            String::from_utf8_lossy(&checked.stderr)
        );
        let file = std::fs::File::create(dir.path().join(log)).unwrap();
        let child = run
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        let front = Front {
            child,
            port,
            dir,
            log,
        };
        // Return only once it listens: `free_port` can hand the same port out again until
        // then, and HAProxy binds with SO_REUSEPORT, so a second front started meanwhile
        // would share the port and take the first one's clients.
        let deadline = Instant::now() + WAIT;
        while !listening(port) {
            assert!(
                Instant::now() < deadline,
                "nothing listens on {port}: {}",
                front.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        front
    }

    /// The `status` column of `show stat` for server `name` (`UP`, `DOWN`, `UP 1/3`, ...).
    fn status(&self, name: &str) -> Option<String> {
        let mut s =
            std::os::unix::net::UnixStream::connect(self.dir.path().join("stats.sock")).ok()?;
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(b"show stat\n").ok()?;
        let mut csv = String::new();
        s.read_to_string(&mut csv).ok()?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let col = header.iter().position(|h| *h == "status")?;
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f.get(1) == Some(&name))
            .and_then(|f| f.get(col).map(|s| s.to_string()))
    }

    /// Waits until HAProxy's health checks say `name` is `want` (`UP` or `DOWN`).
    fn wait_status(&self, name: &str, want: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let status = self.status(name);
            if status.as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "HAProxy's server {name} is {status:?}, not {want}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Front {
    /// What the balancer logged.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(self.log)).unwrap_or_default()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The doc's line-logger and line-echo behind a balancer started by `front` (given the
/// backend's address): the logger names the client (the health checks' connections may come
/// and go in between), lines echo, and the echo's traffic log names the client too.
fn logger_and_echo_behind(what: &str, front: impl Fn(&str) -> Front) {
    let logger = weft(&doc_command(
        "weft serve line-logger --listen haproxy:tcp:1234:interface=127.0.0.1",
        &[("1234", "0")],
    ));
    let echo = weft(&doc_command(
        "weft serve line-echo --log-traffic --listen haproxy:tcp:1234:interface=127.0.0.1",
        &[("1234", "0")],
    ));
    let front_logger = front(&logger.addr);
    let front_echo = front(&echo.addr);

    let mut c = connect_when_up(front_logger.port);
    let me = c.local_addr().unwrap().to_string();
    c.write_all(b"first line\r\nsecond line\n").unwrap();
    let out = logger.stdout.wait_for("second line\n");
    let out: String = out
        .lines()
        .filter(|l| {
            let other = |s: Option<&str>| s.is_some_and(|peer| peer != me);
            !other(l.strip_prefix("Got connection from "))
                && !other(l.strip_suffix(" disconnected"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        out.contains(&format!(
            "Got connection from {me}\nfirst line\nsecond line\n"
        )),
        "{what}: the logger names the client ({me}), not the balancer:\n{out}\n{}",
        front_logger.log()
    );
    drop(c);
    logger.stdout.wait_for(&format!("{me} disconnected\n"));

    let mut c = connect_when_up(front_echo.port);
    let me = c.local_addr().unwrap().to_string();
    for i in 0..20 {
        let line = format!("line {i} through {what}\r\n");
        c.write_all(line.as_bytes()).unwrap();
        let mut back = vec![0u8; line.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, line.as_bytes());
    }
    echo.stderr
        .wait_for(&format!("peer={me} host=127.0.0.1:{}", front_echo.port));
}

#[test]
fn behind_haproxy_the_logger_prints_the_clients_address_and_lines_echo() {
    for (what, v1) in [("send-proxy", true), ("send-proxy-v2", false)] {
        logger_and_echo_behind(what, |backend| {
            let front = Front::haproxy(&[backend], v1);
            // The health checks (LOCAL headers) have run: they must not disturb.
            front.wait_status("a", "UP");
            front
        });
    }
}

/// A connection that does not come through the proxy (no header) is refused, never served as
/// plain: the spec's "never guess".
#[test]
fn a_proxy_port_refuses_connections_without_a_header() {
    let server = Server::serve_on("haproxy:tcp:0:interface=127.0.0.1", &["line-echo"]);
    let mut c = server.connect();
    c.write_all(b"hello\r\n").unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert_eq!(got, b"");
}

/// `systemd-socket-activate -l 127.0.0.1:PORT OPTIONS... COMMAND...` (stdin and stdout
/// closed; it gives its child a clean environment: only `LISTEN_*` and what `--setenv`
/// names).
fn activator(port: u16, options: &[&str], command: &[&str]) -> Command {
    let mut cmd = Command::new(require("systemd-socket-activate", "systemd"));
    cmd.arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .args(options)
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

fn socket_activate(extra: &[&str], listen: &str) -> (KillOnDropChild, u16) {
    let port = free_port();
    let child = activator(
        port,
        extra,
        &[WEFT, "serve", "line-echo", "--listen", listen],
    )
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
        let port = free_port();
        let mut child = activator(port, &[], &[WEFT, "serve", "echo", "--listen", listen])
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
    let err = common::usage_error(&[
        "serve",
        "echo",
        "--listen",
        "systemd:domain=INET:index=0:name=x",
    ]);
    assert!(
        err.contains("exactly one of index=N and name=NAME"),
        "{err}"
    );
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
    stops_notifying(guard.0, &sock);
}

#[test]
fn two_instances_share_a_port_with_reuse_port() {
    let port = free_port();
    let args = doc_command(
        "weft serve line-logger --listen tcp:1234:interface=127.0.0.1:reusePort=1",
        &[("1234", &port.to_string())],
    );
    let a = weft(&args);
    let b = weft(&args);
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

/// A Python `ssl` client (OpenSSL, not rustls): connects to 127.0.0.1:PORT trusting CAFILE,
/// checks the certificate for `localhost`, sends N lines and expects each echoed, prints its
/// own address and the TLS version.
const PY_TLS_CLIENT: &str = r#"
import socket, ssl, sys
port, cafile, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=cafile)
with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    me = "%s:%d" % s.getsockname()[:2]
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        f = t.makefile("rwb")
        for i in range(n):
            line = b"line %d over TLS through HAProxy\r\n" % i
            f.write(line)
            f.flush()
            back = f.readline()
            assert back == line, (back, line)
        print(me, t.version())
        t.unwrap()
"#;

/// `weft cert self-signed --name localhost --out DIR`: the key+certificate file and the
/// certificate.
fn self_signed(dir: &Path) -> (String, String) {
    let out = Command::new(WEFT)
        .args(["cert", "self-signed", "--name", "localhost", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().map(str::to_string);
    (lines.next().unwrap(), lines.next().unwrap())
}

/// HAProxy in `mode tcp` passes TLS through: it sends the PROXY header in clear, then the
/// client's handshake. `haproxy:ssl:` and `haproxy:tls:DIR` read the header before the
/// handshake; a Python `ssl` client through HAProxy gets its lines echoed, and the log names
/// the client, not HAProxy. The health checks (a LOCAL header, then a close without a
/// handshake) never reach the protocol.
#[test]
fn haproxy_passes_tls_through_and_weft_reads_the_header_before_the_handshake() {
    require_python_ssl();
    let dir = tempfile::tempdir().unwrap();
    let pems = dir.path().join("pems");
    let (pem, crt) = self_signed(&pems);
    let pems = pems.display().to_string();
    for (line, v1) in [
        (
            "weft serve line-echo --log-traffic --listen haproxy:ssl:1234:privateKey=pems/localhost.pem:interface=127.0.0.1",
            false,
        ),
        (
            "weft serve line-echo --log-traffic --listen haproxy:tls:pems:port=1234:interface=127.0.0.1",
            true,
        ),
    ] {
        let args = doc_command(
            line,
            &[
                (":1234", ":0"),
                ("=1234", "=0"),
                ("pems/localhost.pem", &pem),
                (":pems:", &format!(":{pems}:")),
            ]
            .into_iter()
            .filter(|(from, _)| line.contains(from))
            .collect::<Vec<_>>(),
        );
        let server = weft(&args);
        let front = Front::haproxy(&[&server.addr], v1);
        front.wait_status("a", "UP");
        let out = Command::new("python3")
            .args(["-c", PY_TLS_CLIENT, &front.port.to_string(), &crt, "5"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{line}: the Python client failed: {}\nweft: {}",
            String::from_utf8_lossy(&out.stderr),
            server.stderr.text()
        );
        let said = String::from_utf8(out.stdout).unwrap();
        let (me, version) = said.trim().split_once(' ').unwrap();
        assert!(version.starts_with("TLSv1."), "{said}");
        let log = server
            .stderr
            .wait_for(&format!("peer={me} host=127.0.0.1:{}", front.port));
        let made = log.matches("connection made").count();
        assert_eq!(
            made, 1,
            "{line}: only the client reaches the protocol:\n{log}"
        );
    }
}

/// What one client of the rolling restart saw.
#[derive(Debug)]
struct Talked {
    /// Lines sent (each once, or again on a new connection when it was not answered).
    lines: usize,
    /// Connections that ended under it (it reconnected after each).
    reconnects: usize,
    /// Lines sent again on a new connection (sent, not answered when the old one ended).
    resent: usize,
    /// Bytes of the answers it received.
    bytes: usize,
}

/// Lines a client keeps in flight (sent, not yet answered).
const WINDOW: usize = 4;

/// A client that keeps talking through `port` until `stop`: up to [`WINDOW`] lines
/// `c{id} {n}` in flight; when its connection ends (EOF or error) it reconnects and resends,
/// in order, only the lines that were not answered. Every answer must be the oldest unanswered
/// line, whole: so each line is answered exactly once, in order, and an answer cut short
/// fails the test. `answered` counts the answers as they come.
fn keep_talking(port: u16, id: usize, stop: &AtomicBool, answered: &AtomicUsize) -> Talked {
    use std::collections::VecDeque;
    let line = |n: usize| format!("c{id} {n}\n");
    let mut unanswered: VecDeque<usize> = VecDeque::new();
    let (mut next, mut reconnects, mut resent, mut bytes) = (0, 0, 0, 0);
    let deadline = Instant::now() + 4 * WAIT;
    loop {
        assert!(Instant::now() < deadline, "client {id} never finished");
        let c = connect_when_up(port);
        let mut reader = BufReader::new(c.try_clone().unwrap());
        let mut w = c;
        let resend: String = unanswered.iter().map(|&n| line(n)).collect();
        resent += unanswered.len();
        let mut alive = w.write_all(resend.as_bytes()).is_ok();
        while alive {
            let stopping = stop.load(Ordering::Relaxed);
            if stopping && unanswered.is_empty() {
                return Talked {
                    lines: next,
                    reconnects,
                    resent,
                    bytes,
                };
            }
            while !stopping && unanswered.len() < WINDOW {
                if w.write_all(line(next).as_bytes()).is_err() {
                    alive = false;
                    break;
                }
                unanswered.push_back(next);
                next += 1;
            }
            let mut answer = String::new();
            match reader.read_line(&mut answer) {
                Ok(0) => break,
                Ok(_) if answer.ends_with('\n') => {
                    let want = unanswered.pop_front().map(line);
                    assert_eq!(
                        Some(&answer),
                        want.as_ref(),
                        "client {id}: an answer out of order, twice, or never sent"
                    );
                    bytes += answer.len();
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => panic!("client {id}: an answer cut short at EOF: {answer:?}"),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("client {id}: no answer within {WAIT:?}")
                }
                Err(e) => {
                    assert!(
                        answer.is_empty(),
                        "client {id}: an answer cut short ({e}): {answer:?}"
                    );
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        reconnects += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The bytes every connection of a `weft serve --log-traffic` wrote (its `connection lost`
/// lines' `bytes_out`), once its log is complete (as many `connection lost` as `connection
/// made`: the process has exited and its stderr is read to the end).
fn bytes_out(server: &Server) -> usize {
    let deadline = Instant::now() + WAIT;
    let log = loop {
        let log = server.stderr.text();
        if log.matches("connection made").count() == log.matches("connection lost").count() {
            break log;
        }
        assert!(Instant::now() < deadline, "the log never completed:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    };
    log.lines()
        .filter(|l| l.contains("connection lost"))
        .map(|l| {
            let n = l.split("bytes_out=").nth(1).expect("bytes_out in the log");
            n.trim().parse::<usize>().expect("a number")
        })
        .sum()
}

/// The rolling restart of docs/deploy.md: two instances behind HAProxy (its `haproxy.cfg`),
/// clients that keep talking. Instance a gets SIGTERM (it answers what it read, closes every
/// connection, exits 0), is started again, and once HAProxy's checks see it UP, b does the
/// same. "Loses no line" means: every line a client sent is answered exactly once, whole, in
/// order (each client checks it as it goes), and the servers wrote exactly the bytes the
/// clients received (no answer lost in flight, none written twice) — counted over the four
/// server lifetimes.
#[test]
fn rolling_restart_behind_haproxy_loses_no_line() {
    const CLIENTS: usize = 4;
    // Both held while the second is chosen, so they differ.
    let ports = {
        let (a, b) = (
            TcpListener::bind("127.0.0.1:0").unwrap(),
            TcpListener::bind("127.0.0.1:0").unwrap(),
        );
        [
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        ]
    };
    // The doc's a listens on 1234, b on 1235.
    let start = |i: usize| {
        let doc_port = ["1234", "1235"][i];
        weft(&doc_command(
            &format!(
                "weft serve line-echo --log-traffic --listen haproxy:tcp:{doc_port}:interface=127.0.0.1"
            ),
            &[(doc_port, &ports[i].to_string())],
        ))
    };
    let mut a = start(0);
    let mut b = start(1);
    let front = Front::haproxy(&[&a.addr, &b.addr], false);
    front.wait_status("a", "UP");
    front.wait_status("b", "UP");

    let stop = Arc::new(AtomicBool::new(false));
    let answered: Arc<Vec<AtomicUsize>> =
        Arc::new((0..CLIENTS).map(|_| AtomicUsize::new(0)).collect());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (stop, answered, port) = (stop.clone(), answered.clone(), front.port);
            std::thread::spawn(move || keep_talking(port, id, &stop, &answered[id]))
        })
        .collect();
    // Every client gets 20 more lines answered.
    let progress = |answered: &[AtomicUsize]| {
        let marks: Vec<usize> = answered.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        let deadline = Instant::now() + WAIT;
        while answered
            .iter()
            .zip(&marks)
            .any(|(a, m)| a.load(Ordering::Relaxed) < m + 20)
        {
            assert!(
                Instant::now() < deadline,
                "the clients stopped getting answers"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    progress(&answered);

    let mut done = Vec::new();
    for (i, name, server) in [(0, "a", &mut a), (1, "b", &mut b)] {
        let status = terminate(server);
        assert!(
            status.success(),
            "{name} did not drain and exit 0: {status:?}"
        );
        assert!(
            !server.stderr.text().contains("drain timeout"),
            "{name} was aborted at the drain deadline"
        );
        progress(&answered);
        let restarted = start(i);
        front.wait_status(name, "UP");
        done.push(std::mem::replace(server, restarted));
        progress(&answered);
    }
    stop.store(true, Ordering::Relaxed);
    let talked: Vec<Talked> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    for server in [&mut a, &mut b] {
        assert!(terminate(server).success());
    }
    done.push(a);
    done.push(b);

    let received: usize = talked.iter().map(|t| t.bytes).sum();
    let written: usize = done.iter().map(bytes_out).sum();
    for (id, t) in talked.iter().enumerate() {
        assert_eq!(answered[id].load(Ordering::Relaxed), t.lines, "client {id}");
        // Every connection went to a or b, and both restarted.
        assert!(t.reconnects >= 1, "client {id} was never moved: {t:?}");
        // Its window is never empty: each connection ended with lines in flight.
        assert!(
            t.resent >= t.reconnects,
            "client {id} resent nothing: {t:?}"
        );
    }
    assert_eq!(
        written, received,
        "the servers wrote {written} bytes, the clients got {received}: {talked:?}"
    );
}

/// A connection to 127.0.0.1:`port` from the local address `source` (any 127.x.y.z is ours).
fn connect_from(source: [u8; 4], port: u16) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from((source, 0)).into())
        .unwrap();
    s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// True when `c` is answered `msg` back; false when it is closed without an answer.
fn served(c: &mut TcpStream, msg: &str) -> bool {
    let _ = c.write_all(msg.as_bytes());
    let mut back = String::new();
    match BufReader::new(c.try_clone().unwrap()).read_line(&mut back) {
        Ok(0) | Err(_) => false,
        Ok(_) => {
            assert_eq!(back, msg);
            true
        }
    }
}

/// `--max-per-peer 2` behind HAProxy counts the address of the PROXY header, not HAProxy's:
/// three connections from 127.0.0.2 through HAProxy, the third is closed; one from 127.0.0.3
/// through HAProxy and a direct header naming 192.0.2.9 are served; a direct header naming
/// 127.0.0.2 is closed (the socket's own address, 127.0.0.1, has no connection counted);
/// when one of the two leaves, 127.0.0.2 is served again. (The health checks' LOCAL headers
/// count against HAProxy's own address, 127.0.0.1.)
#[test]
fn max_per_peer_behind_haproxy_counts_the_headers_address() {
    for v1 in [false, true] {
        let server = weft(&doc_command(
            "weft serve line-echo --max-per-peer 2 --listen haproxy:tcp:1234:interface=127.0.0.1",
            &[("1234", "0")],
        ));
        let front = Front::haproxy(&[&server.addr], v1);
        front.wait_status("a", "UP");
        let mut first = connect_from([127, 0, 0, 2], front.port);
        let mut second = connect_from([127, 0, 0, 2], front.port);
        assert!(served(&mut first, "first\n"), "v1={v1}");
        assert!(served(&mut second, "second\n"));
        let mut third = connect_from([127, 0, 0, 2], front.port);
        assert!(
            !served(&mut third, "third\n"),
            "v1={v1}: the third was served"
        );
        let mut other = connect_from([127, 0, 0, 3], front.port);
        assert!(served(&mut other, "from another address\n"));

        let direct = |header: &str| {
            let mut c = TcpStream::connect(&server.addr).unwrap();
            c.set_read_timeout(Some(WAIT)).unwrap();
            c.write_all(header.as_bytes()).unwrap();
            c
        };
        let mut named = direct("PROXY TCP4 192.0.2.9 127.0.0.1 5000 1234\r\n");
        assert!(served(&mut named, "named 192.0.2.9\n"));
        let mut third_direct = direct("PROXY TCP4 127.0.0.2 127.0.0.1 5001 1234\r\n");
        assert!(!served(&mut third_direct, "a third 127.0.0.2\n"));

        drop(first);
        let deadline = Instant::now() + WAIT;
        loop {
            let mut again = connect_from([127, 0, 0, 2], front.port);
            if served(&mut again, "again\n") {
                break;
            }
            // The server has not seen the first one leave yet.
            assert!(
                Instant::now() < deadline,
                "127.0.0.2 was never served again"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(served(&mut second, "still here\n"));
    }
}

/// Where Debian's `libnginx-mod-stream` puts the module.
const NGINX_STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

impl Front {
    /// nginx in the foreground with docs/deploy.md's `stream` block (the `stream` module
    /// loaded, `daemon off`, one process, its log on stderr into a file, everything in a
    /// temporary prefix), listening on a free port in front of `backend`.
    fn nginx(backend: &str) -> Front {
        let bin = require("nginx", "nginx libnginx-mod-stream");
        assert!(
            Path::new(NGINX_STREAM_MODULE).exists(),
            "nginx's stream module is not installed: run `apt-get update && apt-get install -y libnginx-mod-stream` (as root)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let doc = doc_snippet("# nginx.conf");
        for needle in ["server 127.0.0.1:1234;", "listen 127.0.0.1:8000;"] {
            assert!(doc.contains(needle), "{doc}");
        }
        let stream = doc
            .replace("server 127.0.0.1:1234;", &format!("server {backend};"))
            .replace(
                "listen 127.0.0.1:8000;",
                &format!("listen 127.0.0.1:{port};"),
            );
        let config = format!(
            "load_module {NGINX_STREAM_MODULE};\ndaemon off;\nmaster_process off;\n\
             error_log stderr warn;\npid {}/nginx.pid;\nevents {{}}\n{stream}",
            dir.path().display()
        );
        let conf = file_in(dir.path(), "nginx.conf", &config);
        let nginx = |test: bool| {
            let mut cmd = Command::new(&bin);
            if test {
                cmd.arg("-t");
            }
            cmd.arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg("stderr");
            cmd
        };
        Front::launch(nginx(true), nginx(false), &config, port, dir, "nginx.log")
    }
}

/// docs/deploy.md's nginx `stream` block with `proxy_protocol on` in front of `weft serve`:
/// the logger names the client, lines echo.
#[test]
fn behind_nginx_stream_the_logger_prints_the_clients_address_and_lines_echo() {
    logger_and_echo_behind("nginx", Front::nginx);
}

/// The value of `key=` in a unit file.
fn unit_key<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in\n{unit}"))
}

/// docs/deploy.md's `.socket` + `.service` pair, without a running systemd: `systemd-analyze
/// verify` accepts both (the service's `ExecStart` pointed at the binary under test), and the
/// service's command runs under `systemd-socket-activate` with the socket file's options
/// (`ListenStream=`, `FileDescriptorName=`) and a `NOTIFY_SOCKET` (`Type=notify`): READY=1
/// once it listens, lines echo, STOPPING=1 and exit 0 on SIGTERM.
#[test]
fn the_systemd_units_verify_and_run_with_the_socket_files_options() {
    let analyze = require("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    let socket_unit = doc_snippet("# /etc/systemd/system/weft-lines.socket");
    let doc_service = doc_snippet("# /etc/systemd/system/weft-lines.service");
    assert!(doc_service.contains("ExecStart=/usr/local/bin/weft "));
    let service_unit = doc_service.replace("/usr/local/bin/weft", WEFT);
    let socket_path = file_in(dir.path(), "weft-lines.socket", &socket_unit);
    let service_path = file_in(dir.path(), "weft-lines.service", &service_unit);
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&socket_path)
        .arg(&service_path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !said.contains("weft-lines"),
        "systemd-analyze verify: {said}"
    );

    let listen = unit_key(&socket_unit, "ListenStream");
    assert_eq!(listen, "127.0.0.1:1234");
    let port = free_port();
    let name = unit_key(&socket_unit, "FileDescriptorName");
    assert_eq!(unit_key(&service_unit, "Type"), "notify");
    let exec: Vec<&str> = unit_key(&service_unit, "ExecStart")
        .split_whitespace()
        .collect();
    assert_eq!(exec[0], WEFT);
    let notify_path = dir.path().join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(WAIT)).unwrap();
    let options = [
        format!("--fdname={name}"),
        format!("--setenv=NOTIFY_SOCKET={}", notify_path.display()),
    ];
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let mut child = activator(port, &options, &exec)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(&mut child);
    // systemd-socket-activate starts weft at the first connection, as systemd does.
    let mut c = connect_when_up(port);
    let mut buf = [0u8; 64];
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(buf[..n].trim_ascii(), b"READY=1");
    c.write_all(b"activated as the units say\n").unwrap();
    let mut back = String::new();
    BufReader::new(c).read_line(&mut back).unwrap();
    assert_eq!(back, "activated as the units say\n");
    // systemd-socket-activate execs the service: the pid is weft's.
    stops_notifying(guard.0, &notify);
}

/// What the Kubernetes snippet relies on (the manifest itself is not run: there is no
/// cluster here). Readiness is "the port accepts"; SIGTERM makes new connections refused at
/// once (the probe fails, no new connection lands on a stopping pod); a connection that can
/// finish is closed at once; one that cannot (a client that never reads its answers) is
/// aborted at the drain deadline (5 s); then weft exits 0, well within
/// `terminationGracePeriodSeconds: 30`.
#[test]
fn kubernetes_sigterm_refuses_new_connections_drains_until_the_deadline_and_exits_0() {
    let args_line = r#"args: ["serve", "line-echo", "--listen", "tcp:1234"]"#;
    assert!(
        DEPLOY_MD.contains(args_line),
        "docs/deploy.md's manifest changed"
    );
    assert!(DEPLOY_MD.contains("terminationGracePeriodSeconds: 30"));
    let port = free_port();
    // The manifest's arguments, on the loopback interface rather than every interface.
    let args: Vec<String> = args_line["args: [".len()..args_line.len() - 1]
        .split(", ")
        .map(|a| {
            a.trim_matches('"')
                .replace("tcp:1234", &format!("tcp:{port}:interface=127.0.0.1"))
        })
        .collect();
    let mut server = weft(&args);
    // readinessProbe: tcpSocket.
    let mut polite = connect_when_up(port);
    polite.write_all(b"ready?\n").unwrap();
    let mut back = [0u8; 7];
    polite.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ready?\n");
    // A client that sends lines and never reads the answers: once every buffer is full the
    // server stops reading it, and its answers can never be flushed.
    let mut rude = connect_when_up(port);
    rude.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let line = [&[b'x'; 1023][..], b"\n"].concat();
    let mut sent = 0usize;
    while sent < 256 << 20 && rude.write_all(&line).is_ok() {
        sent += line.len();
    }
    assert!(sent < 256 << 20, "the server never stopped reading");

    let t0 = Instant::now();
    server.kill("-TERM");
    // The connection that can finish is closed at once, while the rude one keeps weft alive.
    let mut rest = Vec::new();
    polite.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "weft exited before the drain deadline"
    );
    // New connections are refused: the readiness probe fails.
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = server.wait_exit();
    let took = t0.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_secs(5),
        "exited after {took:?}, before the 5 s drain deadline"
    );
    let log = server
        .stderr
        .wait_for("drain timeout; aborting connections");
    assert!(log.contains("left=1"), "{log}");
}

/// `--listen` repeated over two activated sockets of different families, told apart by
/// name (docs/deploy.md's `public` TCP port and `admin` Unix socket): both are served.
#[test]
fn one_service_takes_two_activated_sockets_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin.sock");
    let args = doc_command(
        "weft serve line-echo --listen systemd:domain=INET:name=public --listen systemd:domain=UNIX:name=admin",
        &[],
    );
    assert!(DEPLOY_MD.contains("-l /run/weft/admin.sock --fdname=public:admin"));
    let port = free_port();
    let admin_path = admin.display().to_string();
    let mut command = vec![WEFT];
    command.extend(args.iter().map(String::as_str));
    let child = activator(
        port,
        &["-l", &admin_path, "--fdname=public:admin"],
        &command,
    )
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let _guard = KillOnDropChild(child);
    let mut tcp = connect_when_up(port);
    tcp.write_all(b"public\n").unwrap();
    let mut back = String::new();
    BufReader::new(tcp).read_line(&mut back).unwrap();
    assert_eq!(back, "public\n");
    let unix = std::os::unix::net::UnixStream::connect(&admin).unwrap();
    unix.set_read_timeout(Some(WAIT)).unwrap();
    (&unix).write_all(b"admin\n").unwrap();
    let mut back = String::new();
    BufReader::new(unix).read_line(&mut back).unwrap();
    assert_eq!(back, "admin\n");
}
