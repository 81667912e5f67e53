//! End-to-end tests of `weft fetch` and `weft cat` against an in-process HTTP server.

mod common;

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command as Cmd;
use common::{HttpServer, Printed, Reply, Run, Seen, WAIT, WEFT, file_in};

/// 100 000 bytes of a recognisable pattern.
fn big() -> Vec<u8> {
    (0..100_000u32).map(|i| (i % 251) as u8).collect()
}

/// The routes of the test server.
fn routes(req: &Seen) -> Reply {
    let path = req.path.as_str();
    match path {
        "/hello" => Reply::new(200, "hello world\n"),
        "/missing" => Reply::new(404, "no such page"),
        "/broken" => Reply::new(500, "oops"),
        "/short" => Reply {
            content_length: Some(100),
            ..Reply::new(200, "0123456789")
        },
        "/stall" => Reply {
            content_length: Some(1_000_000),
            hold: Duration::from_secs(5),
            ..Reply::new(200, vec![b'x'; 20_000])
        },
        // 600 bytes, 50 ms apart: 30 s, never a pause long enough for a read timeout.
        "/drip" => Reply {
            drip: Duration::from_millis(50),
            ..Reply::new(200, vec![b'.'; 600])
        },
        "/slow" => Reply {
            delay: Duration::from_secs(5),
            ..Reply::new(200, "late")
        },
        "/echo" => {
            let mut headers: Vec<_> = req.headers.iter().collect();
            headers.sort();
            let mut text = format!("{} {}\n", req.method, req.path);
            for (k, v) in headers {
                text.push_str(&format!("{k}: {v}\n"));
            }
            text.push_str(&String::from_utf8_lossy(&req.body));
            Reply::new(200, text)
        }
        "/basic" => {
            // "user:pass"
            if req.headers.get("authorization").map(String::as_str) == Some("Basic dXNlcjpwYXNz") {
                Reply::new(200, "welcome")
            } else {
                Reply::new(401, "who are you?").header("WWW-Authenticate", "Basic realm=\"test\"")
            }
        }
        "/digest" => match req.headers.get("authorization") {
            Some(a) if a.starts_with("Digest ") && a.contains("username=\"user\"") => {
                Reply::new(200, "digest ok")
            }
            _ => Reply::new(401, "who are you?").header(
                "WWW-Authenticate",
                "Digest realm=\"test\", nonce=\"abc123\", qop=\"auth\", algorithm=MD5",
            ),
        },
        "/cookie/set" => Reply::new(200, "set").header("Set-Cookie", "session=abc123; Path=/"),
        "/cookie/get" => Reply::new(200, req.headers.get("cookie").cloned().unwrap_or_default()),
        "/files/big.bin" => {
            let data = big();
            match req
                .headers
                .get("range")
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|r| r.parse::<usize>().ok())
            {
                Some(start) if start < data.len() => Reply::new(206, data[start..].to_vec())
                    .header(
                        "Content-Range",
                        &format!("bytes {start}-{}/{}", data.len() - 1, data.len()),
                    ),
                _ => Reply::new(200, data),
            }
        }
        "/garbage" => Reply::raw("HTTP/9.9 two hundred\r\n\r\nhello"),
        "/bad-chunk" => {
            Reply::raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
        }
        p if p.starts_with("/loop/") => {
            let n: u32 = p[6..].parse().unwrap_or(0);
            Reply::new(302, "").header("Location", &format!("/loop/{}", n + 1))
        }
        _ => Reply::new(404, "not found"),
    }
}

/// `weft ARGS...`, bounded in time.
fn weft(args: &[&str]) -> assert_cmd::assert::Assert {
    Cmd::new(WEFT)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .run()
}

/// A [`routes`] server and an empty temporary directory.
fn server_and_dir() -> (HttpServer, tempfile::TempDir) {
    (HttpServer::start(routes), tempfile::tempdir().unwrap())
}

/// `weft fetch OPTIONS... -o DEST URL`, bounded in time.
fn fetch_to(options: &[&str], dest: &Path, url: &str) -> assert_cmd::assert::Assert {
    let dest = dest.to_str().unwrap();
    weft(&[&["fetch"], options, &["-o", dest, url]].concat())
}

/// `weft fetch -q URL` run in `dir` (so the file gets its default name there); its stdout.
fn fetch_in(dir: &std::path::Path, url: &str) -> String {
    let out = Cmd::new(WEFT)
        .args(["fetch", "-q", url])
        .current_dir(dir)
        .run()
        .ok_stdout();
    String::from_utf8(out).unwrap()
}

/// [`fails`] with the URL of `path` on a fresh [`routes`] server as the last argument.
fn fails_at(args: &[&str], path: &str, code: i32, needle: &str) -> String {
    let http = HttpServer::start(routes);
    let url = http.url(path);
    fails(&[args, &[url.as_str()]].concat(), code, needle)
}

/// `weft fetch -o DIR/out URL` for `path` on a fresh [`routes`] server, failing as [`fails`]
/// checks, with nothing on stdout and no `out` left behind; returns stderr.
fn fetch_fails_at(path: &str, code: i32, needle: &str) -> String {
    let (http, dir) = server_and_dir();
    let dest = dir.path().join("out");
    let failed = fetch_to(&[], &dest, &http.url(path)).code(code).stdout("");
    assert!(!dest.exists(), "{path}: {dest:?} left behind");
    one_line_error(failed.stderr_text(), needle)
}

/// Runs a failing command; checks the exit code and that stderr is one line containing
/// `needle`; returns stderr.
fn fails(args: &[&str], code: i32, needle: &str) -> String {
    one_line_error(weft(args).code(code).stderr_text(), needle)
}

/// Checks that `err` is one `weft: ` line containing `needle`, no panic; returns it.
fn one_line_error(err: String, needle: &str) -> String {
    assert_eq!(err.lines().count(), 1, "stderr not one line: {err:?}");
    assert!(err.starts_with("weft: "), "{err:?}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
    assert!(!err.contains("panicked"), "{err:?}");
    err
}

#[test]
fn cat_http_body_to_stdout() {
    let http = HttpServer::start(routes);
    weft(&["cat", &http.url("/hello")])
        .success()
        .stdout("hello world\n")
        .stderr("");
}

#[test]
fn cat_data_and_file_urls() {
    weft(&["cat", "data:,Hello%2C%20World!"])
        .success()
        .stdout("Hello, World!");
    let dir = tempfile::tempdir().unwrap();
    let file = file_in(dir.path(), "f.txt", "from a file");
    weft(&["cat", &format!("file://{}", file.display())])
        .success()
        .stdout("from a file");
}

#[test]
fn cat_http_status_error() {
    let http = HttpServer::start(routes);
    fails(&["cat", &http.url("/missing")], 3, "404");
    fails(&["cat", &http.url("/broken")], 3, "500");
}

#[test]
fn cat_too_short() {
    fails_at(&["cat"], "/short", 6, "too short: got 10 of 100 bytes");
}

#[test]
fn cat_too_many_redirects() {
    fails_at(&["cat"], "/loop/0", 9, "too many redirects");
}

#[test]
fn cat_unsupported_scheme_and_bad_url() {
    fails(
        &["cat", "gopher://example.com/"],
        7,
        "unsupported scheme gopher",
    );
    fails(&["cat", "not a url"], 7, "not a url");
}

#[test]
fn cat_timeout() {
    fails_at(&["cat", "--timeout", "0.5"], "/slow", 5, "timed out");
    fails_at(&["cat", "--timeout", "500ms"], "/slow", 5, "timed out");
    let err = common::usage_error(&["cat", "--timeout", "soon", "data:,x"]);
    assert!(err.contains("`soon` is not a number"), "{err}");
}

#[test]
fn max_time_caps_a_slow_drip() {
    // --timeout alone never fires while a byte arrives every 50 ms; --max-time does.
    for cmd in ["cat", "fetch"] {
        let (http, dir) = server_and_dir();
        let dest = dir.path().join("out");
        let dest = dest.to_str().unwrap();
        let mut args = vec![cmd, "--timeout", "5", "--max-time", "0.5", "-o", dest];
        if cmd == "cat" {
            args.truncate(5);
        }
        let url = http.url("/drip");
        fails(&[&args[..], &[url.as_str()]].concat(), 5, "timed out");
        assert!(!Path::new(dest).exists());
    }
}

#[test]
fn max_size_caps_the_saved_file() {
    let (http, dir) = server_and_dir();
    let dest = dir.path().join("big.bin");
    let url = http.url("/files/big.bin");
    let failed = fetch_to(&["--max-size", "1000"], &dest, &url).code(8);
    one_line_error(failed.stderr_text(), "larger than the 1000 bytes allowed");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    fetch_to(&["--max-size", "1MiB"], &dest, &url).success();
    assert_eq!(std::fs::read(&dest).unwrap(), big());
}

#[test]
fn cat_connection_refused() {
    let addr = common::closed_addr();
    fails(&["cat", &format!("http://{addr}/")], 4, "cannot connect");
}

#[test]
fn cat_missing_file() {
    fails(
        &["cat", "file:///definitely/not/here"],
        8,
        "/definitely/not/here",
    );
}

#[test]
fn method_headers_and_body() {
    let http = HttpServer::start(routes);
    let out = weft(&[
        "cat",
        "-X",
        "PUT",
        "-H",
        "X-Test: yes",
        "-d",
        "a=1&b=2",
        &http.url("/echo"),
    ])
    .ok_stdout();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("PUT /echo\n"), "{text}");
    assert!(text.contains("x-test: yes\n"), "{text}");
    assert!(
        text.contains("content-type: application/x-www-form-urlencoded\n"),
        "{text}"
    );
    assert!(text.ends_with("a=1&b=2"), "{text}");
    // -d alone makes a POST.
    let out = weft(&["cat", "-d", "x", &http.url("/echo")]).ok_stdout();
    assert!(String::from_utf8(out).unwrap().starts_with("POST /echo\n"));
}

#[test]
fn malformed_header_is_a_usage_error() {
    fails_at(&["cat", "-H", "no colon here"], "/hello", 2, "header");
}

#[test]
fn basic_auth_on_challenge() {
    let http = HttpServer::start(routes);
    fails(&["cat", &http.url("/basic")], 3, "401");
    weft(&["cat", "-u", "user:pass", &http.url("/basic")])
        .success()
        .stdout("welcome");
    let reqs = http.requests();
    // The credentials were sent only after the challenge.
    let last_two = &reqs[reqs.len() - 2..];
    assert!(!last_two[0].headers.contains_key("authorization"));
    assert!(last_two[1].headers.contains_key("authorization"));
}

#[test]
fn cookie_jar_is_loaded_and_saved() {
    let (http, dir) = server_and_dir();
    let jar = dir.path().join("cookies.txt");
    let jar_s = jar.to_str().unwrap();
    weft(&["cat", "--cookie-jar", jar_s, &http.url("/cookie/set")])
        .success()
        .stdout("set");
    let saved = std::fs::read_to_string(&jar).unwrap();
    assert!(saved.contains("session\tabc123"), "{saved}");
    weft(&["cat", "--cookie-jar", jar_s, &http.url("/cookie/get")])
        .success()
        .stdout("session=abc123");
}

#[test]
fn fetch_saves_and_prints_the_path() {
    let (http, dir) = server_and_dir();
    let dest = dir.path().join("out.bin");
    let out = fetch_to(&[], &dest, &http.url("/files/big.bin"))
        .success()
        .stderr("") // not a terminal: no progress bar
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().last(), Some(dest.to_str().unwrap()));
    assert!(std::fs::read(&dest).unwrap() == big());
}

#[test]
fn fetch_without_output_names_the_file_after_the_url() {
    let (http, dir) = server_and_dir();
    let out = fetch_in(dir.path(), &http.url("/files/big.bin"));
    assert_eq!(out, "big.bin\n");
    assert!(std::fs::read(dir.path().join("big.bin")).unwrap() == big());
}

#[test]
fn fetch_resume_continues_a_partial_download() {
    let (http, dir) = server_and_dir();
    let dest = dir.path().join("big.bin");
    file_in(dir.path(), "big.bin.part", &big()[..30_000]);
    fetch_to(&["--resume"], &dest, &http.url("/files/big.bin")).success();
    assert!(std::fs::read(&dest).unwrap() == big());
    assert!(!dir.path().join("big.bin.part").exists());
    let reqs = http.requests();
    assert_eq!(
        reqs.last()
            .unwrap()
            .headers
            .get("range")
            .map(String::as_str),
        Some("bytes=30000-")
    );
}

#[test]
fn fetch_too_short_leaves_nothing() {
    fetch_fails_at("/short", 6, "too short: got 10 of 100 bytes");
}

#[test]
fn fetch_into_a_missing_directory_is_a_local_io_error() {
    fails_at(
        &["fetch", "-o", "/nonexistent-dir/x/out"],
        "/hello",
        8,
        "/nonexistent-dir/x",
    );
}

#[test]
fn fetch_http_error() {
    fetch_fails_at("/missing", 3, "404");
}

#[test]
fn fetch_into_a_directory_uses_the_default_name() {
    let (http, dir) = server_and_dir();
    let out = fetch_to(&[], dir.path(), &http.url("/files/big.bin")).ok_stdout();
    let expected = dir.path().join("big.bin");
    assert_eq!(
        String::from_utf8(out).unwrap().trim_end(),
        expected.to_str().unwrap()
    );
    assert!(std::fs::read(expected).unwrap() == big());
}

#[test]
fn rust_log_and_verbose_control_tracing() {
    let http = HttpServer::start(routes);
    let quiet = weft(&["cat", &http.url("/hello")]).ok_stderr();
    assert!(quiet.is_empty());
    let out = Cmd::new(WEFT)
        .args(["cat", &http.url("/hello")])
        .env("RUST_LOG", "debug")
        .run()
        .success()
        .stdout("hello world\n")
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&out).contains("DEBUG"),
        "no debug output"
    );
    let out = weft(&["-vv", "cat", &http.url("/hello")]).ok_stderr();
    assert!(
        String::from_utf8_lossy(&out).contains("DEBUG"),
        "no debug output with -vv"
    );
}

#[test]
fn ctrl_c_during_fetch_leaves_nothing() {
    let (http, dir) = server_and_dir();
    let dest = dir.path().join("out");
    let mut child = std::process::Command::new(WEFT)
        .args(["fetch", "-o", dest.to_str().unwrap(), &http.url("/stall")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    // Wait until the transfer has started (the temporary file exists).
    while std::fs::read_dir(dir.path()).unwrap().count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "download never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    common::kill("-INT", child.id());
    let status = common::wait_exit(&mut child, "weft fetch ignored Ctrl-C");
    assert_eq!(status.code(), Some(130));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn digest_auth_on_challenge() {
    let http = HttpServer::start(routes);
    weft(&["cat", "-u", "user:pass", &http.url("/digest")])
        .success()
        .stdout("digest ok");
}

#[test]
fn data_from_a_file() {
    let (http, dir) = server_and_dir();
    let body = file_in(dir.path(), "body.txt", "from file");
    let out = weft(&[
        "cat",
        "-d",
        &format!("@{}", body.display()),
        &http.url("/echo"),
    ])
    .ok_stdout();
    assert!(String::from_utf8(out).unwrap().ends_with("\nfrom file"));
    let missing = dir.path().join("missing.txt");
    fails(
        &[
            "cat",
            "-d",
            &format!("@{}", missing.display()),
            &http.url("/echo"),
        ],
        8,
        missing.to_str().unwrap(),
    );
}

#[test]
fn protocol_violations_have_their_own_exit_code() {
    let http = HttpServer::start(routes);
    fails(&["cat", &http.url("/garbage")], 11, "protocol error");
    fails(&["cat", &http.url("/bad-chunk")], 11, "protocol error");
    fetch_fails_at("/bad-chunk", 11, "protocol error");
}

#[test]
fn a_password_in_the_url_never_reaches_stderr() {
    let addr = common::closed_addr();
    let err = fails(
        &["cat", &format!("http://bob:hunter2@{addr}/")],
        4,
        "cannot connect",
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains(&format!("http://***@{addr}/")), "{err}");
}

#[test]
fn a_bad_cookie_jar_line_is_skipped_with_a_warning() {
    let (http, dir) = server_and_dir();
    let jar = file_in(
        dir.path(),
        "cookies.txt",
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tbad\tline\textra\n127.0.0.1\tFALSE\t/\tFALSE\t0\tgood\t1\n",
    );
    let out = weft(&[
        "cat",
        "--cookie-jar",
        jar.to_str().unwrap(),
        &http.url("/cookie/get"),
    ])
    .success()
    .stdout("good=1")
    .get_output()
    .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1 skipped"), "{err}");
}

#[test]
fn default_names_carry_no_control_characters() {
    let http = HttpServer::start(|_| Reply::new(200, "x"));
    let dir = tempfile::tempdir().unwrap();
    let out = fetch_in(dir.path(), &http.url("/a%0Ab%1B%5B2J"));
    assert_eq!(out, "a%0Ab%1B[2J\n");
    assert!(dir.path().join("a%0Ab%1B[2J").is_file());
}

#[test]
fn a_url_without_a_scheme_is_http() {
    let http = HttpServer::start(routes);
    weft(&["cat", &format!("{}/hello", http.addr)])
        .success()
        .stdout("hello world\n");
}

#[test]
fn fetch_to_dash_writes_stdout() {
    let (http, dir) = server_and_dir();
    Cmd::new(WEFT)
        .args(["fetch", "-o", "-", &http.url("/hello")])
        .current_dir(dir.path())
        .run()
        .success()
        .stdout("hello world\n");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file named -"
    );
}

#[test]
fn cat_include_head_and_verbose() {
    let http = HttpServer::start(routes);
    let out = weft(&["cat", "-i", &http.url("/hello")]).ok_stdout();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(text.contains("content-length: 12\r\n"), "{text:?}");
    assert!(text.ends_with("\r\n\r\nhello world\n"), "{text:?}");

    let out = weft(&["cat", "-I", &http.url("/hello")]).ok_stdout();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\n"),
        "{text:?}"
    );
    assert_eq!(http.requests().last().unwrap().method, "HEAD");

    // -v: curl's heads on stderr, the body alone on stdout, no tracing lines.
    let out = weft(&["cat", "-v", &http.url("/hello")])
        .success()
        .stdout("hello world\n")
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    assert!(
        err.starts_with("> GET /hello HTTP/1.1\n> host: 127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("\n>\n< HTTP/1.1 200 OK\n"), "{err}");
    assert!(err.ends_with("<\n"), "{err}");
    assert!(!err.contains("INFO") && !err.contains("DEBUG"), "{err}");
}

#[test]
fn cat_error_body_still_fails() {
    let http = HttpServer::start(routes);
    weft(&["cat", &http.url("/missing")]).code(3).stdout("");
    let out = weft(&["cat", "--error-body", &http.url("/missing")])
        .code(3)
        .stdout("no such page")
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&out).contains("404"));
    let out = weft(&["cat", "-i", &http.url("/missing")])
        .code(3)
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 404 Not Found\r\n"));
}

#[test]
fn fetch_does_not_replace_a_file_without_force() {
    let (http, dir) = server_and_dir();
    let dest = file_in(dir.path(), "hello.txt", "mine");
    let d = dest.to_str().unwrap();
    fails(&["fetch", "-o", d, &http.url("/hello")], 8, "--force");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "mine");
    assert_eq!(http.requests().len(), 0, "refused before asking");
    weft(&["fetch", "--force", "-o", d, &http.url("/hello")]).success();
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "hello world\n");

    // The default name of `-o DIR` is a directory there: --force does not replace it, and no
    // temporary file is left beside it.
    let sub = dir.path().join("sub");
    std::fs::create_dir_all(sub.join("hello")).unwrap();
    let s = sub.to_str().unwrap();
    fails(
        &["fetch", "--force", "-o", s, &http.url("/hello")],
        8,
        "Is a directory",
    );
    assert!(sub.join("hello").is_dir());
    assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 1);
}

#[test]
fn errors_name_what_the_user_gave() {
    let (http, dir) = server_and_dir();
    let dest = dir.path().join("missing").join("x.txt");
    let err = fails(
        &["fetch", "-o", dest.to_str().unwrap(), &http.url("/hello")],
        8,
        &format!(
            "{}: No such file or directory",
            dir.path().join("missing").display()
        ),
    );
    assert!(!err.contains(".part") && !err.contains(".x.txt"), "{err}");

    // https against a plain-http server, which answers the TLS hello with a 400.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = plain.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        if let Ok((mut s, _)) = plain.accept() {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    fails(
        &["cat", &format!("https://{addr}/hello")],
        4,
        &format!("the server at {addr} did not answer TLS (is it plain http?)"),
    );
}
