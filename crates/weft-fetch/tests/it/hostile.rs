//! What a broken or hostile server sends, byte for byte (raw sockets): resume never splices
//! wrong bytes, a bodiless status saves nothing, encodings are decoded or refused, protocol
//! violations are told apart from network failures.

use weft_fetch::{Error, ErrorKind, RetrieveOptions};

use crate::server::{Seen, Server, closed_addr, opener, opener_with, within};

/// 1000 bytes of a recognisable pattern (version `v` changes every byte).
fn body(v: u8) -> Vec<u8> {
    (0..1000u32).map(|i| (i % 251) as u8 ^ v).collect()
}

/// A raw HTTP/1.1 answer: status line, headers, a blank line, the body.
fn raw(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The start of a `Range: bytes=N-` request, if any.
fn range_start(s: &Seen) -> Option<usize> {
    s.header("range")?
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

/// A 206 with these headers and body.
fn partial(headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    raw("206 Partial Content", headers, body)
}

/// A 416 whose `Content-Range` is `range` (`bytes */LENGTH`).
fn unsatisfiable(range: &str) -> Vec<u8> {
    raw(
        "416 Range Not Satisfiable",
        &[("Content-Range", range), ("Content-Length", "0")],
        b"",
    )
}

/// A 200 with the whole body.
fn whole(full: &[u8]) -> Vec<u8> {
    raw(
        "200 OK",
        &[("Content-Length", &full.len().to_string())],
        full,
    )
}

/// Retrieves `/f` from `srv` with `opts`.
async fn retrieve_f(
    srv: &Server,
    opts: &RetrieveOptions,
) -> Result<(std::path::PathBuf, weft_fetch::header::HeaderMap), Error> {
    opener().retrieve(srv.url("/f"), opts, None).await
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Resumes `f.bin` from a `.part` of the first 300 bytes of `body(0)` against a server that
/// answers a range with `reply_206` and anything else with the whole body: the server, the
/// directory, the destination and the result.
async fn resume_at_300(
    reply_206: Vec<u8>,
) -> (
    Server,
    tempfile::TempDir,
    std::path::PathBuf,
    Result<(std::path::PathBuf, weft_fetch::header::HeaderMap), Error>,
) {
    let full = body(0);
    let srv = Server::start_raw_fn(move |s| match range_start(s) {
        Some(_) => reply_206.clone(),
        None => whole(&full),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    std::fs::write(dir.path().join("f.bin.part"), &body(0)[..300]).unwrap();
    let opts = RetrieveOptions::new().dest(&dest).resume(true);
    let result = retrieve_f(&srv, &opts).await;
    (srv, dir, dest, result)
}

#[tokio::test]
async fn a_206_that_does_not_continue_the_part_is_never_appended() {
    within(20, async {
        let full = body(0);
        // Each wrong 206 a server may send to `Range: bytes=300-`.
        let wrong: Vec<(&str, Vec<u8>)> = vec![
            (
                "starts at 0",
                partial(
                    &[
                        ("Content-Range", "bytes 0-999/1000"),
                        ("Content-Length", "1000"),
                    ],
                    &full,
                ),
            ),
            (
                "no Content-Range",
                partial(&[("Content-Length", "700")], &full[300..]),
            ),
            (
                "multipart",
                partial(
                    &[
                        ("Content-Type", "multipart/byteranges; boundary=XX"),
                        ("Content-Length", "700"),
                    ],
                    &full[300..],
                ),
            ),
            (
                "inconsistent total",
                partial(
                    &[
                        ("Content-Range", "bytes 300-999/2000"),
                        ("Content-Length", "700"),
                    ],
                    &full[300..],
                ),
            ),
        ];
        // Ranges at the end of u64 (an overflow once panicked here).
        let wrong = wrong.into_iter().chain(
            [
                "bytes 300-18446744073709551615/1000",
                "bytes 300-18446744073709551615/18446744073709551615",
                "bytes 300-999/18446744073709551616",
            ]
            .map(|range| (range, partial(&[("Content-Range", range)], &full[300..]))),
        );
        for (what, bad) in wrong {
            let (srv, dir, dest, result) = resume_at_300(bad).await;
            result.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(std::fs::read(&dest).unwrap() == full, "{what}: wrong bytes");
            let seen = srv.seen();
            assert_eq!(seen.len(), 2, "{what}: asked once more, whole");
            assert_eq!(range_start(&seen[0]), Some(300), "{what}");
            assert_eq!(range_start(&seen[1]), None, "{what}");
            assert_eq!(files_in(dir.path()), ["f.bin"], "{what}");
        }

        // A server that answers 206 even without Range: a typed error, nothing at the
        // destination, the partial file kept.
        let always = Server::start_raw_fn(|_| {
            partial(
                &[
                    ("Content-Range", "bytes 0-9/1000"),
                    ("Content-Length", "10"),
                ],
                b"0123456789",
            )
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        std::fs::write(dir.path().join("f.bin.part"), &full[..300]).unwrap();
        let opts = RetrieveOptions::new().dest(&dest).resume(true);
        let err = retrieve_f(&always, &opts).await.unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(err.to_string().contains("asked for no range"), "{err}");
        assert_eq!(files_in(dir.path()), ["f.bin.part"]);
        assert!(std::fs::read(dir.path().join("f.bin.part")).unwrap() == full[..300]);

        // Without resume, a 206 is never a whole body.
        let err = opener()
            .retrieve(always.url("/f"), &RetrieveOptions::new().dest(&dest), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
        assert!(!dest.exists());
    })
    .await;
}

/// A server of a resource whose version (and ETag) the test changes: it honours `If-Range`
/// unless `ignore_if_range`, cuts its 200s after `cut` bytes when set, and answers ranges.
fn versioned(
    version: std::sync::Arc<std::sync::atomic::AtomicU8>,
    cut: Option<usize>,
    ignore_if_range: bool,
) -> impl Fn(&Seen) -> Vec<u8> + Send + Sync + 'static {
    move |s| {
        let v = version.load(std::sync::atomic::Ordering::SeqCst);
        let full = body(v);
        let etag = format!("\"v{v}\"");
        let range_ok = ignore_if_range
            || s.header("if-range")
                .is_none_or(|validator| validator == etag);
        match range_start(s) {
            Some(start) if range_ok && start < full.len() => partial(
                &[
                    ("ETag", &etag),
                    (
                        "Content-Range",
                        &format!("bytes {start}-{}/{}", full.len() - 1, full.len()),
                    ),
                    ("Content-Length", &(full.len() - start).to_string()),
                ],
                &full[start..],
            ),
            _ => {
                let n = cut.unwrap_or(full.len());
                raw(
                    "200 OK",
                    &[("ETag", &etag), ("Content-Length", &full.len().to_string())],
                    &full[..n],
                )
            }
        }
    }
}

#[tokio::test]
async fn if_range_fetches_a_changed_resource_whole() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};
    within(20, async {
        let version = Arc::new(AtomicU8::new(1));
        let cutting = Server::start_raw_fn(versioned(version.clone(), Some(400), false)).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        let opts = RetrieveOptions::new().dest(&dest).resume(true);
        // A first attempt cut short leaves 400 bytes and their ETag.
        let err = retrieve_f(&cutting, &opts).await.unwrap_err();
        assert!(err.is_content_too_short(), "{err:?}");
        assert!(std::fs::read(dir.path().join("f.bin.part")).unwrap() == body(1)[..400]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("f.bin.part.meta")).unwrap(),
            "\"v1\"\n"
        );

        // Unchanged: continued with If-Range.
        let good = Server::start_raw_fn(versioned(version.clone(), None, false)).await;
        retrieve_f(&good, &opts).await.unwrap();
        assert!(std::fs::read(&dest).unwrap() == body(1));
        assert_eq!(good.seen()[0].header("if-range").as_deref(), Some("\"v1\""));
        assert_eq!(range_start(&good.seen()[0]), Some(400));
        assert_eq!(files_in(dir.path()), ["f.bin"]);

        // Changed between two runs: the server's If-Range check sends it whole.
        std::fs::remove_file(&dest).unwrap();
        version.store(1, Ordering::SeqCst);
        retrieve_f(&cutting, &opts).await.unwrap_err();
        version.store(2, Ordering::SeqCst);
        retrieve_f(&good, &opts).await.unwrap();
        assert!(
            std::fs::read(&dest).unwrap() == body(2),
            "spliced two versions"
        );
        assert_eq!(files_in(dir.path()), ["f.bin"]);

        // A server that ignores If-Range and splices anyway: its new ETag gives it away.
        std::fs::remove_file(&dest).unwrap();
        version.store(1, Ordering::SeqCst);
        retrieve_f(&cutting, &opts).await.unwrap_err();
        version.store(3, Ordering::SeqCst);
        let careless = Server::start_raw_fn(versioned(version.clone(), None, true)).await;
        retrieve_f(&careless, &opts).await.unwrap();
        assert!(
            std::fs::read(&dest).unwrap() == body(3),
            "spliced two versions"
        );
        assert_eq!(careless.seen().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_complete_file_stays_and_a_short_restart_never_shrinks_the_part() {
    within(20, async {
        let full = body(0);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        let opts = RetrieveOptions::new().dest(&dest).resume(true);

        // Complete at the destination: the 416 says so; nothing is renamed.
        let done = Server::start_raw_fn(|_| unsatisfiable("bytes */1000")).await;
        std::fs::write(&dest, &full).unwrap();
        let (path, _) = retrieve_f(&done, &opts).await.unwrap();
        assert_eq!(path, dest);
        assert_eq!(files_in(dir.path()), ["f.bin"]);
        // A 416 for another length: an error, and the file is still where it was.
        let other = Server::start_raw_fn(|_| unsatisfiable("bytes */500")).await;
        let err = retrieve_f(&other, &opts).await.unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(416));
        assert_eq!(files_in(dir.path()), ["f.bin"]);
        assert!(std::fs::read(&dest).unwrap() == full);
        std::fs::remove_file(&dest).unwrap();

        // 600 bytes in the .part; a server that ignores Range and is cut after 200: the
        // longer .part stays. Cut after 800: the restarted download replaces it.
        let part = dir.path().join("f.bin.part");
        std::fs::write(&part, &full[..600]).unwrap();
        for (cut, kept) in [(200usize, 600usize), (800, 800)] {
            let full2 = full.clone();
            let srv = Server::start_raw_fn(move |_| {
                raw("200 OK", &[("Content-Length", "1000")], &full2[..cut])
            })
            .await;
            let err = retrieve_f(&srv, &opts).await.unwrap_err();
            assert!(err.is_content_too_short(), "{err:?}");
            assert!(
                std::fs::read(&part).unwrap() == full[..kept],
                "cut at {cut}: the .part should hold {kept} bytes"
            );
            assert_eq!(files_in(dir.path()), ["f.bin.part"], "cut at {cut}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_status_without_a_body_saves_nothing() {
    within(20, async {
        for head in [
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: weft\r\nConnection: upgrade\r\n\r\n",
        ] {
            let srv = Server::start_raw(head.as_bytes()).await;
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("out");
            let err = opener()
                .retrieve(srv.url("/x"), &RetrieveOptions::new().dest(&dest), None)
                .await
                .unwrap_err();
            let code = &head[9..12];
            assert!(matches!(err, Error::NoBody { .. }), "{code}: {err:?}");
            assert_eq!(err.kind(), ErrorKind::Http);
            assert!(
                err.to_string()
                    .starts_with(&format!("nothing to save: the server answered {code}")),
                "{err}"
            );
            assert!(files_in(dir.path()).is_empty(), "{code}");
        }
    })
    .await;
}

/// `hello gzip\n`, gzip-compressed.
const GZIP_HELLO: &[u8] = &[
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57,
    0x48, 0xaf, 0xca, 0x2c, 0xe0, 0x02, 0x00, 0x39, 0x7c, 0x63, 0x56, 0x0b, 0x00, 0x00, 0x00,
];

#[tokio::test]
async fn content_encoding_is_decoded_or_refused() {
    within(20, async {
        let encoded = |enc: &'static str, body: &'static [u8]| {
            Server::start_raw_fn(move |_| {
                raw(
                    "200 OK",
                    &[
                        ("Content-Encoding", enc),
                        ("Content-Length", &body.len().to_string()),
                    ],
                    body,
                )
            })
        };
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let opts = RetrieveOptions::new().dest(&dest);

        // gzip although identity was asked for: decoded.
        let gz = encoded("gzip", GZIP_HELLO).await;
        opener().retrieve(gz.url("/g"), &opts, None).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello gzip\n");
        assert_eq!(
            gz.seen()[0].header("accept-encoding").as_deref(),
            Some("identity")
        );
        std::fs::remove_file(&dest).unwrap();

        // An encoding weft cannot decode: a clear error, no raw bytes saved.
        let zstd = encoded("zstd", b"\x28\xb5\x2f\xfd garbage").await;
        let err = opener()
            .retrieve(zstd.url("/z"), &opts, None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
        assert!(err.to_string().contains("\"zstd\""), "{err}");
        assert!(files_in(dir.path()).is_empty());

        // "gzip" that is not gzip: an error, not the raw bytes.
        let fake = encoded("gzip", b"this is not gzip at all").await;
        let err = retrieve_f(&fake, &opts).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
        assert!(err.to_string().contains("gzip"), "{err}");
        assert!(files_in(dir.path()).is_empty());
    })
    .await;
}

#[tokio::test]
async fn protocol_violations_are_not_network_errors() {
    within(20, async {
        let garbage = Server::start_raw(b"HTTP/9.9 two hundred\r\n\r\nhello").await;
        let err = opener().open(garbage.url("/")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
        assert!(err.to_string().starts_with("protocol error ("), "{err}");

        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        for (what, body, kind) in [
            (
                "a bad chunk size",
                "5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n",
                ErrorKind::Protocol,
            ),
            // A connection closed in the middle of a chunked body is a network failure.
            ("a cut chunk", "5\r\nhel", ErrorKind::Network),
        ] {
            let srv = Server::start_raw(format!("{chunked}{body}")).await;
            let mut resp = opener().open(srv.url("/")).await.unwrap();
            let err = resp.read_to_end().await.unwrap_err();
            assert_eq!(err.kind(), kind, "{what}: {err:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn credentials_never_follow_a_redirect_to_another_scheme() {
    within(20, async {
        // One port, both https and http: only the scheme changes.
        let (srv, pem) = crate::server::Server::start_dual(|s| {
            let port = s
                .header("host")
                .and_then(|h| h.rsplit(':').next().map(str::to_string))
                .unwrap_or_default();
            match s.target.as_str() {
                "/to-http" => crate::server::resp(
                    302,
                    &[("location", &format!("http://127.0.0.1:{port}/landing"))],
                    "",
                ),
                "/to-https" => crate::server::resp(302, &[("location", "/landing")], ""),
                _ => crate::server::resp(200, &[], "landed"),
            }
        })
        .await;
        let op = opener_with(|b| {
            b.add_root_certificate_pem(pem.as_bytes())
                .credentials("joe", "s3cret")
                .preemptive_basic(true)
        });
        let base = format!("https://127.0.0.1:{}", srv.addr.port());
        let with_headers = |url: String| {
            weft_fetch::Request::new(url)
                .unwrap()
                .header_line("Authorization: Bearer t0ken")
                .unwrap()
                .header_line("Cookie: sid=42")
                .unwrap()
                .header_line("X-Kept: yes")
                .unwrap()
        };
        let secret = |s: &Seen| {
            [s.header("authorization"), s.header("cookie")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
        };

        // https -> https on the same origin: kept.
        op.open(with_headers(format!("{base}/to-https")))
            .await
            .unwrap();
        let seen = srv.seen();
        assert_eq!(secret(&seen[1]), ["Bearer t0ken", "sid=42"]);

        // https -> http, same host and port: dropped, other headers kept.
        let mut r = op
            .open(with_headers(format!("{base}/to-http")))
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "landed");
        assert_eq!(r.url().scheme(), "http");
        let seen = srv.seen();
        let landing = &seen[3];
        assert_eq!(landing.target, "/landing");
        assert!(
            secret(landing).is_empty(),
            "sent in clear: {:?}",
            secret(landing)
        );
        assert_eq!(landing.header("x-kept").as_deref(), Some("yes"));

        // -u credentials and a password in the URL: the same.
        let url = format!("https://bob:hunter2@127.0.0.1:{}/to-http", srv.addr.port());
        op.open(url.as_str()).await.unwrap();
        let seen = srv.seen();
        assert!(seen[4].header("authorization").is_some());
        assert!(seen[5].header("authorization").is_none(), "{:?}", seen[5]);
    })
    .await;
}

#[tokio::test]
async fn a_password_in_a_url_is_never_printed() {
    within(20, async {
        let closed = closed_addr();
        let url = format!("http://bob:hunter2@{closed}/x");
        let err = opener().open(url.as_str()).await.unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        let text = err.to_string();
        assert!(!text.contains("hunter2") && !text.contains("bob"), "{text}");
        assert!(text.contains(&format!("http://***@{closed}/x")), "{text}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");

        let looping =
            Server::start_raw(b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n")
                .await;
        let url = format!("http://bob:hunter2@{}/x", looping.addr);
        let err = opener().open(url.as_str()).await.unwrap_err();
        assert!(err.is_redirect(), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");

        let err = weft_fetch::Request::new("http://bob:hunter2@[::1/").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn a_cookie_with_a_tab_is_refused_and_a_public_suffix_domain_too() {
    within(20, async {
        // Byte for byte what a hostile server may send: TABs in name, value and Path.
        let srv = Server::start_raw(
            b"HTTP/1.1 200 OK\r\n\
              Set-Cookie: a\tb=1\r\n\
              Set-Cookie: c=x\ty\r\n\
              Set-Cookie: d=1; Path=/p\tq\r\n\
              Set-Cookie: good=1; Path=/\r\n\
              Content-Length: 0\r\n\r\n",
        )
        .await;
        let jar = std::sync::Arc::new(weft_fetch::CookieJar::new());
        let op = opener_with(|b| b.cookie_jar(jar.clone()));
        op.open(srv.url("/")).await.unwrap();
        let names: Vec<String> = jar.cookies().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["good"]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cookies.txt");
        jar.save(&file).unwrap();
        let again = weft_fetch::CookieJar::load(&file).unwrap();
        assert_eq!(again.cookies(), jar.cookies());

        // A jar with a bad line (8 fields) and a public-suffix domain: both skipped, the rest
        // loads.
        std::fs::write(
            &file,
            "127.0.0.1\tFALSE\t/\tFALSE\t0\ta\tb\tc\n\
             .co.uk\tTRUE\t/\tFALSE\t0\tsuper\t1\n\
             127.0.0.1\tFALSE\t/\tFALSE\t0\tok\t1\n",
        )
        .unwrap();
        let loaded = weft_fetch::CookieJar::load(&file).unwrap();
        let names: Vec<String> = loaded.cookies().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["ok"]);

        // Public suffixes (ICANN and private sections) are not cookie domains.
        let jar = weft_fetch::CookieJar::new();
        let www = weft_fetch::Url::parse("http://www.foo.co.uk/").unwrap();
        assert!(!jar.set_cookie_str("a=1; Domain=co.uk", &www));
        assert!(jar.set_cookie_str("b=1; Domain=foo.co.uk", &www));
        let pages = weft_fetch::Url::parse("https://me.github.io/").unwrap();
        assert!(!jar.set_cookie_str("c=1; Domain=github.io", &pages));
        let evil = weft_fetch::Url::parse("http://evil.co.uk/").unwrap();
        assert_eq!(jar.cookie_header(&evil), None);
        let sibling = weft_fetch::Url::parse("http://shop.foo.co.uk/").unwrap();
        assert_eq!(jar.cookie_header(&sibling).as_deref(), Some("b=1"));
        // Domain equal to the host, which is itself a public suffix: host-only.
        let bare = weft_fetch::Url::parse("http://github.io/").unwrap();
        assert!(jar.set_cookie_str("d=1; Domain=github.io", &bare));
        assert_eq!(jar.cookie_header(&pages), None);
        assert_eq!(jar.cookie_header(&bare).as_deref(), Some("d=1"));
    })
    .await;
}

#[tokio::test]
async fn names_up_to_255_bytes_download_and_resume() {
    within(20, async {
        let full = body(0);
        let srv = Server::start_raw_fn(move |s| match range_start(s) {
            Some(start) => partial(
                &[
                    ("Content-Range", &format!("bytes {start}-999/1000")),
                    ("Content-Length", &(1000 - start).to_string()),
                ],
                &full[start..],
            ),
            None => whole(&full),
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        for len in [243usize, 250, 255] {
            let dest = dir.path().join("n".repeat(len));
            opener()
                .retrieve(srv.url("/f"), &RetrieveOptions::new().dest(&dest), None)
                .await
                .unwrap_or_else(|e| panic!("{len}: {e}"));
            assert!(std::fs::read(&dest).unwrap() == body(0), "{len}");
            std::fs::remove_file(&dest).unwrap();
        }
        // Resume with a 255-byte name: the .part gets a shortened name, found again next time.
        let dest = dir.path().join("r".repeat(255));
        let cut = Server::start_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123").await;
        let opts = RetrieveOptions::new().dest(&dest).resume(true);
        let err = retrieve_f(&cut, &opts).await.unwrap_err();
        assert!(err.is_content_too_short(), "{err:?}");
        let left = files_in(dir.path());
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(
            left[0].ends_with(".part") && left[0].len() <= 255,
            "{left:?}"
        );
        // The cut body was the wrong bytes for this server; put the right ones in.
        std::fs::write(dir.path().join(&left[0]), &body(0)[..4]).unwrap();
        retrieve_f(&srv, &opts).await.unwrap();
        assert!(std::fs::read(&dest).unwrap() == body(0));
        assert_eq!(range_start(srv.seen().last().unwrap()), Some(4));
        assert_eq!(files_in(dir.path()).len(), 1);
    })
    .await;
}

#[tokio::test]
async fn errors_carry_their_cause_once() {
    within(20, async {
        let closed = closed_addr();
        let err = opener()
            .open(format!("http://{closed}/").as_str())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(&format!("cannot connect (http://{closed}/): ")), "{text}");
        assert_eq!(text.matches("onnection refused").count(), 1, "{text}");
        assert!(!text.contains("error sending request") && !text.contains("client error"), "{text}");

        // https against a plain-http server: said in words a user can act on.
        let plain = crate::server::Server::start(|_| crate::server::resp(200, &[], "plain")).await;
        let err = opener()
            .open(format!("https://{}/", plain.addr).as_str())
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot connect (https://{0}/): the server at {0} did not answer TLS (is it plain http?)",
                plain.addr
            )
        );
    })
    .await;
}

#[tokio::test]
async fn on_exchange_sees_every_hop() {
    within(20, async {
        let srv = crate::server::Server::start(|s| match s.target.as_str() {
            "/old" => crate::server::resp(301, &[("location", "/new")], ""),
            _ => crate::server::resp(200, &[("x-answer", "42")], "new"),
        })
        .await;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let op = opener_with(|b| {
            b.on_exchange(move |ex| {
                log.lock().unwrap().push((
                    ex.request_line(),
                    ex.request_headers.get("host").cloned(),
                    ex.status_line(),
                    ex.response_headers.get("x-answer").cloned(),
                ));
            })
        });
        let mut r = op.open(srv.url("/old")).await.unwrap();
        assert_eq!(r.text().await.unwrap(), "new");
        assert_eq!(r.status_line(), "HTTP/1.1 200 OK");
        let seen = seen.lock().unwrap().clone();
        let host = srv.addr.to_string();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, "GET /old HTTP/1.1");
        assert_eq!(
            seen[0].1.as_ref().map(|h| h.to_str().unwrap()),
            Some(host.as_str())
        );
        assert_eq!(seen[0].2, "HTTP/1.1 301 Moved Permanently");
        assert_eq!(seen[1].0, "GET /new HTTP/1.1");
        assert_eq!(seen[1].2, "HTTP/1.1 200 OK");
        assert_eq!(seen[1].3.as_ref().map(|h| h.to_str().unwrap()), Some("42"));
    })
    .await;
}

/// `data` compressed with `encoder` (an async-compression bufread encoder).
async fn compress<E: tokio::io::AsyncRead + Unpin>(
    encoder: impl FnOnce(&'static [u8]) -> E,
    data: Vec<u8>,
) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let data: &'static [u8] = Box::leak(data.into_boxed_slice());
    let mut out = Vec::new();
    encoder(data).read_to_end(&mut out).await.unwrap();
    out
}

async fn gzip(data: &[u8]) -> Vec<u8> {
    compress(
        async_compression::tokio::bufread::GzipEncoder::new,
        data.to_vec(),
    )
    .await
}

/// Retrieves `reply` from a raw server to `dest`: a protocol error that says `needle`, and
/// nothing saved.
async fn refused(reply: Vec<u8>, dest: &std::path::Path, needle: &str) {
    let srv = Server::start_raw(reply).await;
    let opts = RetrieveOptions::new().dest(dest);
    let err = match opener().retrieve(srv.url("/g"), &opts, None).await {
        Ok(_) => panic!("{needle}: saved {:?}", std::fs::read(dest).unwrap()),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::Protocol, "{needle}: {err:?}");
    assert!(err.to_string().contains(needle), "{needle}: {err}");
    assert!(files_in(dest.parent().unwrap()).is_empty(), "{needle}");
}

#[tokio::test]
async fn every_coding_of_a_body_is_decoded_or_the_body_refused() {
    within(20, async {
        let plain = b"hello gzip\n";
        let once = gzip(plain).await;
        let twice = gzip(&once).await;
        let with_head = |head: String, body: &[u8]| {
            let mut reply = format!("HTTP/1.1 200 OK\r\n{head}\r\n").into_bytes();
            reply.extend_from_slice(body);
            reply
        };
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let opts = RetrieveOptions::new().dest(&dest);

        // Gzip twice, said in two headers or in one list: both layers come off (one layer only
        // would save gzip bytes as the file, with success).
        for head in [
            "Content-Encoding: gzip\r\nContent-Encoding: gzip\r\n",
            "Content-Encoding: gzip, x-gzip\r\n",
            "Content-Encoding: GZIP,gzip\r\n",
        ] {
            let reply = with_head(format!("{head}Content-Length: {}\r\n", twice.len()), &twice);
            let srv = Server::start_raw(reply).await;
            opener()
                .retrieve(srv.url("/g"), &opts, None)
                .await
                .unwrap_or_else(|e| panic!("{head:?}: {e}"));
            assert_eq!(std::fs::read(&dest).unwrap(), plain, "{head:?}");
            std::fs::remove_file(&dest).unwrap();
        }

        // deflate (zlib) under br, in one list: both undone, in the server's order.
        let zlib = compress(
            async_compression::tokio::bufread::ZlibEncoder::new,
            plain.to_vec(),
        )
        .await;
        let br = compress(async_compression::tokio::bufread::BrotliEncoder::new, zlib).await;
        let reply = with_head(
            format!(
                "Content-Encoding: deflate, br\r\nContent-Length: {}\r\n",
                br.len()
            ),
            &br,
        );
        let srv = Server::start_raw(reply).await;
        opener().retrieve(srv.url("/g"), &opts, None).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), plain);
        std::fs::remove_file(&dest).unwrap();

        // Six layers (each a decoder in memory; a 400 KB header could list 100 000): refused.
        let reply = with_head(
            format!(
                "Content-Encoding: {}gzip\r\nContent-Length: {}\r\n",
                "gzip, ".repeat(5),
                once.len()
            ),
            &once,
        );
        refused(reply, &dest, "6 times").await;

        // A second coding weft cannot decode, and transfer codings other than chunked: refused,
        // not saved half-decoded or raw.
        let chunk = |b: &[u8]| {
            let mut out = format!("{:x}\r\n", b.len()).into_bytes();
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n0\r\n\r\n");
            out
        };
        for (head, body, needle) in [
            (
                format!(
                    "Content-Encoding: gzip\r\nContent-Encoding: zstd\r\nContent-Length: {}\r\n",
                    once.len()
                ),
                once.clone(),
                "zstd",
            ),
            (
                "Transfer-Encoding: gzip, chunked\r\n".to_string(),
                chunk(&once),
                "gzip",
            ),
            (
                "Transfer-Encoding: gzip\r\n".to_string(),
                once.clone(),
                "gzip",
            ),
        ] {
            refused(with_head(head, &body), &dest, needle).await;
        }

        // A gzip stream that stops in the middle although all Content-Length bytes came: the
        // server's body is broken (a protocol error), not the network.
        for cut in [5, once.len() / 2, once.len() - 3] {
            let reply = with_head(
                format!("Content-Encoding: gzip\r\nContent-Length: {cut}\r\n"),
                &once[..cut],
            );
            refused(reply, &dest, "gzip").await;
        }
        // The connection closed before Content-Length, in the middle of the gzip stream or
        // after its end: too short, as for a plain body.
        for cut in [once.len() / 2, once.len()] {
            let reply = with_head(
                format!(
                    "Content-Encoding: gzip\r\nContent-Length: {}\r\n",
                    once.len() + 10
                ),
                &once[..cut],
            );
            let srv = Server::start_raw(reply).await;
            let err = opener()
                .retrieve(srv.url("/g"), &opts, None)
                .await
                .unwrap_err();
            assert!(err.is_content_too_short(), "cut at {cut}: {err:?}");
            assert!(files_in(dir.path()).is_empty(), "cut at {cut}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_compression_bomb_is_read_in_bounded_pieces() {
    within(30, async {
        // 64 MiB of zeros in about 64 KiB of gzip.
        let size = 64usize << 20;
        let bomb = gzip(&vec![0u8; size]).await;
        assert!(bomb.len() < size / 500, "{}", bomb.len());
        let mut reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            bomb.len()
        )
        .into_bytes();
        reply.extend_from_slice(&bomb);
        let srv = Server::start_raw(reply).await;
        let mut resp = opener().open(srv.url("/bomb")).await.unwrap();
        let (mut total, mut largest) = (0usize, 0usize);
        while let Some(chunk) = resp.chunk().await.unwrap() {
            assert!(chunk.iter().all(|&b| b == 0));
            total += chunk.len();
            largest = largest.max(chunk.len());
        }
        assert_eq!(total, size);
        assert!(largest <= 1 << 20, "a piece of {largest} bytes");
    })
    .await;
}

#[tokio::test]
async fn a_206_whose_body_is_not_the_range_it_names_is_not_spliced() {
    within(20, async {
        let full = body(0);
        // The right Content-Range for `Range: bytes=300-`, no Content-Length (the body runs to
        // the close), and a body 100 bytes longer or 200 bytes shorter than that range.
        for (what, end, extra) in [("longer", 1000usize, 100usize), ("shorter", 800, 0)] {
            let full2 = full.clone();
            let srv = Server::start_raw_fn(move |_| {
                let mut b = full2[300..end].to_vec();
                b.extend(std::iter::repeat_n(b'X', extra));
                partial(&[("Content-Range", "bytes 300-999/1000")], &b)
            })
            .await;
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("f.bin");
            let part = dir.path().join("f.bin.part");
            std::fs::write(&part, &full[..300]).unwrap();
            let opts = RetrieveOptions::new().dest(&dest).resume(true);
            let err = match retrieve_f(&srv, &opts).await {
                Ok(_) => panic!(
                    "{what}: saved {} bytes",
                    std::fs::read(&dest).unwrap().len()
                ),
                Err(e) => e,
            };
            assert!(!dest.exists(), "{what}");
            // What is in the .part is still a prefix of the file, to be continued next time.
            let kept = std::fs::read(&part).unwrap();
            assert!(
                kept[..] == full[..kept.len()],
                "{what}: {} bytes, not a prefix",
                kept.len()
            );
            if what == "shorter" {
                assert!(err.is_content_too_short(), "{what}: {err:?}");
                assert_eq!(kept.len(), 800);
            } else {
                assert_eq!(err.kind(), ErrorKind::Protocol, "{what}: {err:?}");
                assert!(err.to_string().contains("Content-Range"), "{err}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_huge_location_is_refused_in_a_line_of_its_own_size() {
    within(20, async {
        // Too long to request, not a URL, and (60 KB) one that loops back to itself.
        for location in [
            format!("/{}", "a".repeat(100_000)),
            format!("http://[{}", "b".repeat(100_000)),
            format!("/x{}", "c".repeat(60_000)),
        ] {
            let srv = Server::start_raw(format!(
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
            ))
            .await;
            let err = opener().open(srv.url("/x")).await.unwrap_err();
            let text = err.to_string();
            assert!(
                text.len() < 1000,
                "{} bytes: {}...",
                text.len(),
                &text[..200]
            );
            assert!(text.contains(" bytes)"), "{text}");
            assert!(
                matches!(err.kind(), ErrorKind::Redirect | ErrorKind::InvalidInput),
                "{err:?}"
            );
            assert!(srv.seen().len() <= 10);
        }
    })
    .await;
}

#[tokio::test]
async fn lying_lengths_and_oversized_heads_are_protocol_errors() {
    within(20, async {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let ok = "HTTP/1.1 200 OK\r\n";
        for (head, body, needle) in [
            (
                "Content-Length: 5\r\nContent-Length: 7\r\n",
                "hello12",
                "content-length",
            ),
            ("Content-Length: 5, 7\r\n", "hello12", "content-length"),
            ("Content-Length: -5\r\n", "hello", "content-length"),
            ("Content-Length: 5x\r\n", "hello", "content-length"),
            (
                "Transfer-Encoding: chunked\r\n",
                "ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
                "chunk size",
            ),
            (&"X-Many: 1\r\n".repeat(300), "", "too large"),
            (
                &format!("X-Long: {}\r\n", "a".repeat(1 << 20)),
                "",
                "too large",
            ),
            // Control characters (an ESC that would reach the terminal with -i or -v).
            ("X-Ctl: a\x01b\r\n", "", "header"),
            ("Location: /a\x1b[31mb\r\n", "", "header"),
        ] {
            refused(format!("{ok}{head}\r\n{body}").into_bytes(), &dest, needle).await;
        }

        // A chunked body cut at every byte: never a success, nothing saved. Complete (with a
        // trailer), it is saved whole.
        let chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n";
        let reply = |body: &[u8]| {
            let mut r = format!("{ok}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
            r.extend_from_slice(body);
            r
        };
        for cut in 0..chunked.len() {
            let srv = Server::start_raw(reply(&chunked[..cut])).await;
            let opts = RetrieveOptions::new().dest(&dest);
            let err = opener().retrieve(srv.url("/c"), &opts, None).await;
            assert!(err.is_err(), "cut at {cut}: saved");
            assert!(files_in(dir.path()).is_empty(), "cut at {cut}");
        }
        let srv = Server::start_raw(reply(chunked)).await;
        let opts = RetrieveOptions::new().dest(&dest);
        opener().retrieve(srv.url("/c"), &opts, None).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");
    })
    .await;
}

#[cfg(unix)]
#[tokio::test]
async fn resume_never_appends_through_a_symlink() {
    within(20, async {
        let full = body(0);
        // A server that honours any range: what it sends would be appended to the link's target.
        let srv = Server::start_raw_fn(move |s| match range_start(s) {
            Some(start) if start < full.len() => partial(
                &[
                    ("Content-Range", &format!("bytes {start}-999/1000")),
                    ("Content-Length", &(1000 - start).to_string()),
                ],
                &full[start..],
            ),
            _ => whole(&full),
        })
        .await;
        for link in ["f.bin.part", "f.bin"] {
            let dir = tempfile::tempdir().unwrap();
            let elsewhere = tempfile::tempdir().unwrap();
            // Someone else's file, which a link planted in a shared directory points at.
            let victim = elsewhere.path().join("victim");
            std::fs::write(&victim, b"precious\n").unwrap();
            std::os::unix::fs::symlink(&victim, dir.path().join(link)).unwrap();
            let dest = dir.path().join("f.bin");
            let opts = RetrieveOptions::new().dest(&dest).resume(true);
            retrieve_f(&srv, &opts)
                .await
                .unwrap_or_else(|e| panic!("{link}: {e}"));
            assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n", "{link}");
            assert!(std::fs::read(&dest).unwrap() == body(0), "{link}");
            assert!(
                !std::fs::symlink_metadata(&dest).unwrap().is_symlink(),
                "{link}"
            );
            assert_eq!(range_start(srv.seen().last().unwrap()), None, "{link}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_huge_challenge_parameter_is_refused_in_a_line_of_its_own_size() {
    within(20, async {
        let huge = "z".repeat(100_000);
        for challenge in [
            format!("Digest realm=\"r\", nonce=\"n\", algorithm={huge}"),
            format!("Digest realm=\"r\", nonce=\"n\", qop=\"{huge}\""),
            format!("X{huge} realm=\"r\""),
        ] {
            let srv = Server::start_raw(format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Length: 0\r\n\r\n"
            ))
            .await;
            let op = crate::server::opener_with(|b| b.credentials("joe", "s3cret"));
            let err = op.open(srv.url("/x")).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Auth, "{err:?}");
            let text = err.to_string();
            assert!(text.len() < 1000, "{} bytes: {}...", text.len(), &text[..200]);
            assert!(text.contains(" bytes)"), "{text}");
        }
    })
    .await;
}

/// A raw server whose answer to its n-th request (from 0) is `reply(n)`.
async fn numbered(reply: impl Fn(usize) -> Vec<u8> + Send + Sync + 'static) -> Server {
    let n = std::sync::atomic::AtomicUsize::new(0);
    Server::start_raw_fn(move |_| reply(n.fetch_add(1, std::sync::atomic::Ordering::SeqCst))).await
}

#[tokio::test]
async fn a_cookie_flood_is_bounded_as_browsers_bound_it() {
    within(20, async {
        // Each answer sets 90 new cookies and one of 5000 bytes; one opener asks 40 times (a
        // crawler's long-lived jar).
        let srv = numbered(|round| {
            let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
            for i in 0..90 {
                head.push_str(&format!("Set-Cookie: c{round}x{i}=1; Path=/\r\n"));
            }
            head.push_str(&format!(
                "Set-Cookie: big{round}={}\r\n\r\n",
                "v".repeat(5000)
            ));
            head.into_bytes()
        })
        .await;
        let jar = std::sync::Arc::new(weft_fetch::CookieJar::new());
        let op = crate::server::opener_with(|b| b.cookie_jar(jar.clone()));
        for _ in 0..40 {
            op.open(srv.url("/")).await.unwrap();
        }
        let cookies = jar.cookies();
        // RFC 6265 6.1's minimums, which browsers keep to: 50 cookies for one domain, the
        // newest; no cookie over 4096 bytes.
        assert_eq!(cookies.len(), 50);
        assert!(
            cookies.iter().all(|c| c.name.starts_with("c39x")),
            "{:?}",
            &cookies[0].name
        );
        assert!(cookies.iter().all(|c| c.name.len() + c.value.len() <= 4096));
        // What goes back to the server stays a sane header.
        let url = weft_fetch::Url::parse(&srv.url("/")).unwrap();
        assert!(jar.cookie_header(&url).unwrap().len() < 4096);
    })
    .await;
}

#[tokio::test]
async fn a_206_of_a_length_past_u64_is_short_not_a_panic() {
    within(20, async {
        // Consistent, and ending past u64::MAX once added to the 300 bytes already here.
        let reply = partial(
            &[
                ("Content-Range", "bytes 300-18446744073709551615/*"),
                ("Content-Length", "18446744073709551316"),
            ],
            &body(0)[300..],
        );
        let (_srv, dir, dest, result) = resume_at_300(reply).await;
        let err = result.unwrap_err();
        assert!(err.is_content_too_short(), "{err:?}");
        assert!(!dest.exists());
        let kept = std::fs::read(dir.path().join("f.bin.part")).unwrap();
        assert!(kept == body(0), "the .part is the bytes that came");
    })
    .await;
}

#[tokio::test]
async fn a_401_loop_with_ever_stale_nonces_ends() {
    within(20, async {
        // Every answer a new nonce and stale=true: "your credentials were right, try again".
        let srv = numbered(|nonce| {
            format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"r\", \
                 nonce=\"n{nonce}\", qop=\"auth\", stale=true\r\nContent-Length: 0\r\n\r\n"
            )
            .into_bytes()
        })
        .await;
        let op = crate::server::opener_with(|b| b.credentials("joe", "s3cret"));
        let err = op.open(srv.url("/x")).await.unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(401), "{err:?}");
        let seen = srv.seen();
        assert_eq!(seen.len(), 4, "the first request and three answers");
        assert!(
            seen[1..]
                .iter()
                .all(|s| s.header("authorization").is_some())
        );
    })
    .await;
}

#[tokio::test]
async fn max_size_stops_a_body_that_never_ends() {
    within(20, async {
        let full = body(0);
        let too_large = |e: &Error| {
            matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::FileTooLarge)
        };
        // Announced (Content-Length) or not (the body runs to the close, as an endless one).
        for head in [vec![("Content-Length", "1000")], vec![]] {
            let srv = Server::start_raw(raw("200 OK", &head, &full)).await;
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("f.bin");
            let opts = RetrieveOptions::new().dest(&dest).max_size(500);
            let err = retrieve_f(&srv, &opts).await.unwrap_err();
            assert!(too_large(&err), "{head:?}: {err:?}");
            assert_eq!(err.to_string(), format!("{}: larger than the 500 bytes allowed", dest.display()));
            assert!(files_in(dir.path()).is_empty(), "{head:?}");
            // Within the limit: saved.
            let opts = opts.max_size(1000);
            retrieve_f(&srv, &opts).await.unwrap();
            assert!(std::fs::read(&dest).unwrap() == full);
        }
        // Resumed past the limit: the .part keeps only bytes within it.
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        std::fs::write(dir.path().join("f.bin.part"), &full[..300]).unwrap();
        let srv = Server::start_raw(partial(
            &[("Content-Range", "bytes 300-999/1000")],
            &full[300..],
        ))
        .await;
        let opts = RetrieveOptions::new().dest(&dest).resume(true).max_size(600);
        let err = retrieve_f(&srv, &opts).await.unwrap_err();
        assert!(too_large(&err), "{err:?}");
        assert!(!dest.exists());
        let kept = std::fs::read(dir.path().join("f.bin.part")).unwrap();
        assert!(kept.len() <= 600 && kept[..] == full[..kept.len()]);
    })
    .await;
}
