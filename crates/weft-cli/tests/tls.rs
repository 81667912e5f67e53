//! `weft cert`, `weft serve` on ssl:/tls: endpoints with SIGHUP reload, `weft connect tls:`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::Command as Cmd;
use common::{KillOnDrop, Printed, Run, Server, WAIT, WEFT};

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
    let server = Server::serve_on(
        &format!("ssl:0:privateKey={pem}:interface=127.0.0.1"),
        &["line-echo"],
    );
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
    let mut server = Server::serve_on(
        &format!("tls:{}:port=0:interface=127.0.0.1", pems.display()),
        &["line-echo"],
    );
    let p = port(&server).to_owned();
    let other = format!(r"tls:other.test:{p}:trustRoots={other_crt}:endpoint=tcp\:127.0.0.1\:{p}");
    connect(&format!("tls:localhost:{p}:trustRoots={crt}"), "a\n")
        .success()
        .stdout("a\n");
    // other.test is not served yet; copying its file in changes nothing until SIGHUP (the
    // server never reads the directory for an unknown name).
    std::fs::copy(&other_pem, pems.join("other.test.pem")).unwrap();
    connect(&other, "b\n").failure();
    server.kill("-HUP");
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
    server.kill("-HUP");
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

/// `weft connect tls:HOST:PORT:endpoint=unix\:/PATH`: TLS through a Unix socket (to `openssl
/// s_server`, which no one here wrote, echoing each line reversed), the certificate still
/// verified for HOST; a wrong HOST fails verification (exit 4).
#[test]
fn connect_tls_goes_through_a_unix_socket_endpoint_and_verifies_the_host() {
    common::require_openssl();
    let dir = tempfile::tempdir().unwrap();
    let (pem, crt) = self_signed(dir.path(), "localhost");
    let sock = dir.path().join("tls.sock");
    // Two connections (the refused one counts), then it exits.
    let sock_path = sock.to_str().unwrap();
    let (mut child, _, out) = openssl_server(
        dir.path(),
        &["-rev", "-naccept", "2", "-cert", &pem, "-unix", sock_path],
    );
    let server = KillOnDrop(&mut child);
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
    .stdout("olleh\n");
    let status = common::wait_exit(server.0, "openssl s_server did not exit after two clients");
    assert!(status.success(), "openssl s_server: {status}");
    drop(out);
}

/// `openssl s_server ARGS` run in `cwd`, returned once it prints `ACCEPT ADDR`, with that
/// line. Its statistics come at exit: its stdout stays open in the returned lines.
fn openssl_server(cwd: &Path, args: &[&str]) -> (std::process::Child, String, Lines) {
    common::require_openssl();
    let mut child = Command::new("openssl")
        .arg("s_server")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl runs");
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = out
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("ACCEPT"));
    match ready {
        Some(line) => (child, line, out),
        None => {
            let _ = child.kill();
            panic!("openssl s_server {args:?} never listened");
        }
    }
}

type Lines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// `weft cat --cacert FILE https://...` trusts a self-signed server (openssl's `-WWW` file
/// server, which no one here wrote); without it the certificate is refused (exit 4, nothing
/// on stdout); a file without a certificate is a usage error naming the file.
#[test]
fn cat_over_https_trusts_the_cacert_given() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, crt) = self_signed(dir.path(), "localhost");
    let body = "a private CA's secret\n".repeat(1000);
    common::file_in(dir.path(), "secret.txt", &body);
    // `-WWW` serves files relative to its working directory; one connection per request.
    let (mut server, accept, _out) = openssl_server(
        dir.path(),
        &[
            "-WWW",
            "-naccept",
            "2",
            "-cert",
            &pem,
            "-accept",
            "127.0.0.1:0",
        ],
    );
    let server_guard = KillOnDrop(&mut server);
    let port = accept.rsplit_once(':').unwrap().1;
    let url = format!("https://localhost:{port}/secret.txt");

    let err = Cmd::new(WEFT)
        .args(["cat", &url])
        .run()
        .code(4)
        .stdout("")
        .stderr_text();
    assert!(err.contains("certificate"), "{err}");
    let got = Cmd::new(WEFT)
        .args(["cat", "--cacert", &crt, &url])
        .run()
        .ok_stdout();
    assert_eq!(String::from_utf8(got).unwrap(), body);
    common::wait_exit(
        server_guard.0,
        "openssl s_server did not exit after two requests",
    );

    // A file without a certificate: refused before any connection, naming the file.
    let junk = common::file_in(dir.path(), "junk.pem", "not a certificate\n");
    let err = common::usage_error(&["cat", "--cacert", junk.to_str().unwrap(), &url]);
    assert!(
        err.contains("junk.pem") && err.contains("CERTIFICATE"),
        "{err}"
    );
}
