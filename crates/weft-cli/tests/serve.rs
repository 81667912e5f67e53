//! End-to-end tests of `weft serve`: every protocol answered by a plain `TcpStream` client.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::thread;
use std::time::Duration;

use assert_cmd::Command as Cmd;
use common::{
    LOOPBACK, Printed, Run, Server, WAIT, WEFT, echoes, read_exact, read_to_end, usage_error,
};

#[test]
fn listening_line_names_the_real_port() {
    let server = Server::start(&["echo"]);
    let (host, port) = server.addr.rsplit_once(':').unwrap();
    assert_eq!(host, "127.0.0.1");
    assert_ne!(port.parse::<u16>().unwrap(), 0);
}

/// Runs `weft serve PROTOCOL`, lets `talk` drive one client (given its address as the server
/// prints it), closes that client; checks that the server printed exactly `Got connection from
/// ME`, then `printed`, then `ME disconnected`.
fn logs_one_session(
    protocol: &str,
    printed: &str,
    talk: impl FnOnce(&Server, &mut TcpStream, &str),
) {
    let server = Server::start(&[protocol]);
    let (mut c, me) = server.connect_as();
    talk(&server, &mut c, &me);
    drop(c);
    let out = server.stdout.wait_for(&format!("{me} disconnected\n"));
    assert_eq!(
        out,
        format!("Got connection from {me}\n{printed}{me} disconnected\n")
    );
}

#[test]
fn logger_prints_connection_data_and_disconnect() {
    logs_one_session("logger", "partial data and more\n", |server, c, me| {
        server
            .stdout
            .wait_for(&format!("Got connection from {me}\n"));
        // No newline: the logger must print the data at once anyway.
        c.write_all(b"partial data").unwrap();
        server.stdout.wait_for("partial data");
        c.write_all(b" and more\n").unwrap();
    });
}

#[test]
fn line_logger_prints_each_line() {
    logs_one_session("line-logger", "first\nsecond\n", |server, c, _| {
        c.write_all(b"first\r\nsec").unwrap();
        server.stdout.wait_for("first\n");
        c.write_all(b"ond\r\n").unwrap();
        server.stdout.wait_for("second\n");
    });
}

#[test]
fn echo_writes_back_every_byte() {
    let server = Server::start(&["echo"]);
    let mut c = server.connect();
    let data: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    let writer = {
        let mut c = c.try_clone().unwrap();
        let data = data.clone();
        thread::spawn(move || {
            c.write_all(&data).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
        })
    };
    let back = read_to_end(&mut c);
    writer.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data);
}

#[test]
fn line_echo_echoes_lines_and_drops_over_long_ones() {
    let server = Server::start(&["line-echo", "--max-length", "8"]);
    let mut c = server.connect();
    c.write_all(b"one\r\ntwo\r\nthr").unwrap();
    assert_eq!(read_exact(&mut c, 10), b"one\r\ntwo\r\n");
    c.write_all(b"ee\r\n").unwrap();
    assert_eq!(read_exact(&mut c, 7), b"three\r\n");
    // A line longer than 8 bytes closes this connection...
    c.write_all(b"this line is far too long\r\n").unwrap();
    assert_eq!(read_to_end(&mut c), b"");
    // ...and the server goes on.
    let mut c = server.connect();
    echoes(&mut c, b"again\r\n");
}

#[test]
fn line_echo_with_lf_delimiter() {
    let server = Server::start(&["line-echo", "--delimiter", "lf"]);
    let mut c = server.connect();
    echoes(&mut c, b"a\r\nb\n");
}

#[test]
fn discard_drops_everything() {
    let server = Server::start(&["discard"]);
    let mut c = server.connect();
    c.write_all(&[b'x'; 100_000]).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), b"");
}

#[test]
fn daytime_sends_the_date_and_closes() {
    let server = Server::start(&["daytime"]);
    let mut c = server.connect();
    let text = String::from_utf8(read_to_end(&mut c)).unwrap();
    // "Wed Nov 25 14:43:49 2026\r\n"
    assert_eq!(text.len(), 26, "{text:?}");
    assert!(text.ends_with("\r\n"));
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "{text:?}");
    assert!(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&fields[0]));
    assert_eq!(fields[3].len(), 8);
    let year: u32 = fields[4].parse().unwrap();
    assert!(year >= 2024);
}

#[test]
fn qotd_sends_a_quote_and_closes() {
    let server = Server::start(&["qotd"]);
    let mut c = server.connect();
    let text = String::from_utf8(read_to_end(&mut c)).unwrap();
    assert_eq!(text, "An apple a day keeps the doctor away.\r\n");
}

#[test]
fn chargen_streams_rotating_lines() {
    let server = Server::start(&["chargen"]);
    let mut c = server.connect();
    let data = read_exact(&mut c, 74 * 200);
    for (n, line) in data.chunks(74).enumerate() {
        assert_eq!(&line[72..], b"\r\n");
        for (i, &b) in line[..72].iter().enumerate() {
            assert_eq!(b, b' ' + ((n + i) % 95) as u8, "line {n} col {i}");
        }
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn chargen_respects_backpressure() {
    let server = Server::start(&["chargen"]);
    // Several clients that never read: the server must not buffer without bound.
    let clients: Vec<_> = (0..4).map(|_| server.connect()).collect();
    thread::sleep(Duration::from_millis(1500));
    let rss = rss_kib(server.child.id());
    assert!(rss < 64 * 1024, "chargen server grew to {rss} KiB");
    // And it still serves a reader.
    let mut c = server.connect();
    assert_eq!(read_exact(&mut c, 74).len(), 74);
    drop(clients);
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut server = Server::start(&["echo"]);
    let mut c = server.connect();
    echoes(&mut c, b"hi");
    server.kill("-TERM");
    // The open connection is closed by the shutdown, then the process exits cleanly.
    assert_eq!(read_to_end(&mut c), b"");
    let status = server.wait_exit();
    assert!(status.success(), "{status:?}");
}

#[test]
fn serves_on_a_unix_socket() {
    let (server, path) = Server::start_unix(&["echo"]);
    assert_eq!(server.addr, path.display().to_string());
    let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    echoes(&mut c, b"over unix");
}

#[test]
fn bad_endpoint_is_a_usage_error() {
    usage_error(&["serve", "echo", "--listen", "tcp:http"]);
    usage_error(&["serve", "nope"]);
}

#[test]
fn port_in_use_is_a_network_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = Cmd::new(WEFT)
        .args([
            "serve",
            "echo",
            "--listen",
            &format!("tcp:{port}:interface=127.0.0.1"),
        ])
        .run()
        .code(4)
        .stderr_text();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("weft: cannot listen on"), "{err}");
}

#[test]
fn sigint_shuts_down_gracefully() {
    let mut server = Server::start(&["line-logger"]);
    let (mut c, me) = server.connect_as();
    c.write_all(b"bye\r\n").unwrap();
    server.stdout.wait_for("bye\n");
    server.kill("-INT");
    assert_eq!(read_to_end(&mut c), b"");
    assert!(server.wait_exit().success());
    server.stdout.wait_for(&format!("{me} disconnected\n"));
}

#[test]
fn listening_line_comes_first_even_with_verbose_logging() {
    // start_raw fails unless the first stderr line is `listening on ...`.
    let server = Server::start_raw(&["-vv", "serve", "echo", "--listen", LOOPBACK]);
    let mut c = server.connect();
    echoes(&mut c, b"x");
}

#[test]
fn line_protocols_take_lines_from_nc_and_telnet_alike_by_default() {
    // nc sends `\n`, telnet `\r\n`: the logger prints both without the `\r`.
    let server = Server::start(&["line-logger"]);
    let (mut c, me) = server.connect_as();
    c.write_all(b"from nc\nfrom telnet\r\n").unwrap();
    let out = server.stdout.wait_for("from telnet\n");
    assert_eq!(
        out,
        format!("Got connection from {me}\nfrom nc\nfrom telnet\n")
    );

    // The echo sends each line back as it came; the length limit ignores the `\r`.
    let server = Server::start(&["line-echo", "--max-length", "8"]);
    let mut c = server.connect();
    echoes(&mut c, b"lf\ncrlf\r\n12345678\r\n");
    c.write_all(b"123456789\r\n").unwrap();
    assert_eq!(read_to_end(&mut c), b"", "9 bytes before the \\r: too long");
}

/// Issue 16: `--listen` takes the plain forms, and says when it listens on every interface.
#[test]
fn listen_takes_plain_forms_and_names_all_interfaces() {
    let server = Server::serve_on("127.0.0.1:0", &["echo"]);
    assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);
    assert!(!server.addr.contains("all interfaces"), "{}", server.addr);

    for form in ["0", ":0", "tcp:0"] {
        let server = Server::serve_on(form, &["echo"]);
        let port = server
            .addr
            .strip_prefix("0.0.0.0:")
            .and_then(|rest| rest.strip_suffix(" (all interfaces)"))
            .unwrap_or_else(|| panic!("{form}: {:?}", server.addr));
        let mut c = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.write_all(b"x").unwrap();
        assert_eq!(read_exact(&mut c, 1), b"x", "{form}");
    }
}

#[test]
fn an_unreadable_address_lists_the_accepted_forms() {
    let err = usage_error(&["serve", "echo", "--listen", "nowhere"]);
    for form in ["HOST:PORT", "[IPv6]:PORT", ":PORT", "tcp:PORT", "./"] {
        assert!(err.contains(form), "{form} missing from {err}");
    }
}

/// Issue 14: `--listen` is repeatable: one protocol on every endpoint, one `listening on`
/// line each, in order.
#[test]
fn listen_is_repeatable() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(WEFT)
        .current_dir(dir.path())
        .args(["serve", "echo", "--listen", LOOPBACK])
        .args(["--listen", "./echo.sock"])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let guard = common::KillOnDrop(&mut child);
    let mut err = BufReader::new(guard.0.stderr.take().unwrap());
    let mut lines = [String::new(), String::new()];
    for l in &mut lines {
        err.read_line(l).unwrap();
    }
    let tcp = lines[0].trim().strip_prefix("listening on ").unwrap();
    assert_eq!(lines[1].trim(), "listening on ./echo.sock");
    let mut c = std::net::TcpStream::connect(tcp).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    echoes(&mut c, b"t");
    let mut u = std::os::unix::net::UnixStream::connect(dir.path().join("echo.sock")).unwrap();
    u.set_read_timeout(Some(WAIT)).unwrap();
    echoes(&mut u, b"u");
}
