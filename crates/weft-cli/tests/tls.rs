//! `weft cert`, `weft serve` on ssl:/tls: endpoints with SIGHUP reload, `weft connect tls:`.

mod common;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::Command as Cmd;
use common::{Printed, Run, Server, WAIT, WEFT};

/// `weft cert self-signed --name NAME --out DIR`; returns the (key+cert, cert) paths.
fn self_signed(dir: &Path, name: &str) -> (String, String) {
    let out = Cmd::new(WEFT)
        .args(["cert", "self-signed", "--name", name, "--out"])
        .arg(dir)
        .run()
        .ok_stdout();
    let out = String::from_utf8(out).unwrap();
    let mut lines = out.lines();
    let pem = lines.next().unwrap().to_owned();
    let crt = lines.next().unwrap().to_owned();
    assert!(
        pem.ends_with(&format!("{name}.pem")) && crt.ends_with(&format!("{name}.crt")),
        "{out}"
    );
    (pem, crt)
}

fn port(server: &Server) -> &str {
    server.addr.rsplit_once(':').unwrap().1
}

/// `weft connect ENDPOINT` with `input` on stdin.
fn connect(endpoint: &str, input: &str) -> assert_cmd::assert::Assert {
    Cmd::new(WEFT)
        .args(["connect", endpoint])
        .write_stdin(input)
        .run()
}

#[test]
fn the_two_line_tls_session_works() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, crt) = self_signed(dir.path(), "localhost");
    let server = Server::start_raw(&[
        "serve",
        "line-echo",
        "--listen",
        &format!("ssl:0:privateKey={pem}:interface=127.0.0.1"),
    ]);
    let ep = format!("tls:localhost:{}:trustRoots={crt}", port(&server));
    connect(&ep, "hello over tls\nsecond line\n")
        .success()
        .stdout("hello over tls\nsecond line\n");
    // Without trusting the certificate: refused, saying why.
    let ep = format!(
        r"tls:localhost:{}:trustRoots={}",
        port(&server),
        WEFT_CA_MISSING
    );
    connect(&ep, "").failure();
    let ep = format!("tls:localhost:{}", port(&server));
    let assert = connect(&ep, "x\n").failure();
    let err = assert.stderr_text();
    assert!(
        err.contains("certificate") || err.contains("trust roots"),
        "{err}"
    );
}

const WEFT_CA_MISSING: &str = "/nonexistent/ca.pem";

#[test]
fn a_tls_directory_reloads_on_sighup_and_a_broken_reload_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let pems = dir.path().join("pems");
    let spare = dir.path().join("spare");
    let (_, crt) = self_signed(&pems, "localhost");
    let (other_pem, other_crt) = self_signed(&spare, "other.test");
    let mut server = Server::start_raw(&[
        "serve",
        "line-echo",
        "--listen",
        &format!("tls:{}:port=0:interface=127.0.0.1", pems.display()),
    ]);
    let p = port(&server).to_owned();
    let other = format!(r"tls:other.test:{p}:trustRoots={other_crt}:endpoint=tcp\:127.0.0.1\:{p}");
    connect(&format!("tls:localhost:{p}:trustRoots={crt}"), "a\n")
        .success()
        .stdout("a\n");
    // other.test is not served yet; copying its file in changes nothing until SIGHUP (the
    // server never reads the directory for an unknown name).
    std::fs::copy(&other_pem, pems.join("other.test.pem")).unwrap();
    connect(&other, "b\n").failure();
    let hup = |server: &Server| {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &server.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    hup(&server);
    let deadline = Instant::now() + WAIT;
    loop {
        let out = Cmd::new(WEFT)
            .args(["connect", &other])
            .write_stdin("b\n")
            .timeout(WAIT)
            .output()
            .unwrap();
        if out.status.success() {
            assert_eq!(out.stdout, b"b\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "other.test never served after SIGHUP"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // A broken file: the reload fails and both names are still served.
    std::fs::write(
        pems.join("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nnope\n",
    )
    .unwrap();
    hup(&server);
    thread::sleep(Duration::from_millis(200));
    connect(&other, "c\n").success().stdout("c\n");
    connect(&format!("tls:localhost:{p}:trustRoots={crt}"), "d\n")
        .success()
        .stdout("d\n");
    assert!(server.child.try_wait().unwrap().is_none(), "still running");
    let _ = &mut server;
}

#[test]
fn a_mismatched_key_fails_at_listen_time_naming_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = self_signed(&dir.path().join("a"), "localhost");
    let (_, b_crt) = self_signed(&dir.path().join("b"), "localhost");
    let assert = Cmd::new(WEFT)
        .args([
            "serve",
            "line-echo",
            "--listen",
            &format!("ssl:0:privateKey={a}:certKey={b_crt}:interface=127.0.0.1"),
        ])
        .run()
        .failure();
    let err = assert.stderr_text();
    assert!(
        err.contains("does not match the certificate") && err.contains(&b_crt),
        "{err}"
    );
    // dhParameters: refused with the reason, before anything is read.
    let assert = Cmd::new(WEFT)
        .args([
            "serve",
            "echo",
            "--listen",
            &format!("ssl:0:privateKey={a}:dhParameters=dh.pem"),
        ])
        .run()
        .failure();
    let err = assert.stderr_text();
    assert!(err.contains("finite-field DHE"), "{err}");
}

/// `weft connect tls:HOST:PORT:endpoint=unix\:/PATH`: TLS through a Unix socket (to a Python
/// `ssl` server, which no one here wrote), the certificate still verified for HOST; a wrong
/// HOST fails verification (exit 4).
#[test]
fn connect_tls_goes_through_a_unix_socket_endpoint_and_verifies_the_host() {
    common::require_python_ssl();
    let dir = tempfile::tempdir().unwrap();
    let (pem, crt) = self_signed(dir.path(), "localhost");
    let sock = dir.path().join("tls.sock");
    let script = r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1])
ls = socket.socket(socket.AF_UNIX)
ls.bind(sys.argv[2])
ls.listen(2)
ls.settimeout(20)
print("ready", flush=True)
for _ in range(2):
    raw, _ = ls.accept()
    try:
        s = ctx.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError):
        raw.close()   # the client refused our certificate
        continue
    data = b""
    while not data.endswith(b"\n"):
        d = s.recv(100)
        if not d:
            break
        data += d
    s.sendall(b"unix: " + data)
    try:
        s.unwrap()    # close_notify both ways; the client may have closed first
    except (ssl.SSLError, OSError):
        pass
    s.close()
"#;
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&pem)
        .arg(&sock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let ready = std::io::BufRead::lines(out).next();
    assert!(
        matches!(ready, Some(Ok(ref l)) if l == "ready"),
        "{ready:?}"
    );
    let via = format!(r"endpoint=unix\:{}", sock.display());
    // A name the certificate is not for: refused, never connected in clear.
    connect(&format!("tls:other.test:443:trustRoots={crt}:{via}"), "x\n")
        .code(4)
        .stdout("");
    connect(
        &format!("tls:localhost:443:trustRoots={crt}:{via}"),
        "hello\n",
    )
    .success()
    .stdout("unix: hello\n");
    let status = child.wait().unwrap();
    assert!(status.success(), "python server: {status}");
}
