//! urlopen over http: bodies, headers, errors, redirects, timeouts, proxies.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncBufReadExt;
use weft_fetch::{Error, ErrorKind, Opener, Request, StatusCode};

use crate::server::{
    Server, chunked, closed_addr, opener, opener_with, resp, stalling, text, within,
};

#[tokio::test]
async fn get_with_default_headers_and_lines() {
    within(10, async {
        let long = format!("{}\n", "verylong ".repeat(8192));
        let body = format!("We\ngot\nhere\n{long}");
        let srv =
            Server::start(move |_| resp(200, &[("content-type", "text/plain")], body.clone()))
                .await;
        let url = srv.url("/urllib.html#OK");
        let r = opener().open(&url).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.url().as_str(), url, "final URL keeps the fragment");
        assert_eq!(r.header("content-type"), Some("text/plain"));
        let mut lines = r.lines();
        let mut got = Vec::new();
        while let Some(l) = lines.next_line().await.unwrap() {
            got.push(l);
        }
        assert_eq!(got, ["We", "got", "here", long.trim_end_matches('\n')]);
        let seen = &srv.seen()[0];
        assert_eq!(seen.method, "GET");
        assert_eq!(seen.target, "/urllib.html");
        assert_eq!(
            seen.header("user-agent").unwrap(),
            format!("weft-fetch/{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(seen.header("accept-encoding").as_deref(), Some("identity"));
    })
    .await;
}

#[tokio::test]
async fn read_n_and_chunked_bodies() {
    within(10, async {
        let srv = Server::start(|s| match s.target.as_str() {
            "/five" => resp(200, &[], "xxxxx"),
            _ => chunked(200, vec![Bytes::from("hello worl"), Bytes::from("d")]),
        })
        .await;
        let mut r = opener().open(srv.url("/five")).await.unwrap();
        assert_eq!(r.content_length(), Some(5));
        assert_eq!(&r.read(2).await.unwrap()[..], b"xx");
        assert_eq!(&r.read(100).await.unwrap()[..], b"xxx");
        assert!(r.read(10).await.unwrap().is_empty());

        let mut r = opener()
            .open(Request::new(srv.url("/five")).unwrap().method("HEAD"))
            .await
            .unwrap();
        assert_eq!(r.content_length(), Some(5));
        assert!(r.read_to_end().await.unwrap().is_empty());

        let mut r = opener().open(srv.url("/chunked")).await.unwrap();
        assert_eq!(r.content_length(), None);
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert_eq!(r.read_to_end().await.unwrap(), b"hello world");
    })
    .await;
}

#[tokio::test]
async fn post_put_and_header_overrides() {
    within(10, async {
        let srv = Server::start(|_| resp(200, &[], "ok")).await;
        let op = opener_with(|b| b.user_agent("custom/1").header_line("X-Default: d"));
        let req = Request::new(srv.url("/bizarre"))
            .unwrap()
            .body("get=with_feeling");
        op.open(req).await.unwrap();
        let req = Request::new(srv.url("/put"))
            .unwrap()
            .method("put")
            .header_line("Content-Type: application/json")
            .unwrap()
            .header_line("Accept-Encoding: gzip")
            .unwrap()
            .header_line("X-Default: mine")
            .unwrap()
            .body("{}");
        op.open(req).await.unwrap();
        let seen = srv.seen();
        assert_eq!(seen[0].method, "POST");
        assert_eq!(seen[0].target, "/bizarre");
        assert_eq!(&seen[0].body[..], b"get=with_feeling");
        assert_eq!(
            seen[0].header("content-type").as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(seen[0].header("content-length").as_deref(), Some("16"));
        assert_eq!(seen[0].header("user-agent").as_deref(), Some("custom/1"));
        assert_eq!(seen[0].header("x-default").as_deref(), Some("d"));
        assert_eq!(seen[1].method, "PUT");
        assert_eq!(
            seen[1].header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(seen[1].header("accept-encoding").as_deref(), Some("gzip"));
        assert_eq!(seen[1].header("x-default").as_deref(), Some("mine"));
        assert!(
            Request::new("http://x/")
                .unwrap()
                .header_line("no colon")
                .is_err()
        );
    })
    .await;
}

#[tokio::test]
async fn http_error_carries_readable_response() {
    within(10, async {
        let srv = Server::start(|_| resp(404, &[("x-why", "gone")], "Bad bad bad...")).await;
        let err = opener().open(srv.url("/missing")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Http);
        assert!(err.is_http() && err.is_not_found());
        assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
        assert_eq!(err.to_string(), "HTTP Error 404: Not Found");
        let mut r = err.into_response().unwrap();
        assert_eq!(r.header("x-why"), Some("gone"));
        assert_eq!(r.url().path(), "/missing");
        assert_eq!(r.read_to_end().await.unwrap(), b"Bad bad bad...");
    })
    .await;
}

#[tokio::test]
async fn redirect_chain_limit_and_loop() {
    within(10, async {
        let srv = Server::start(|s| {
            let t = s.target.clone();
            if let Some(n) = t.strip_prefix("/chain/") {
                let n: u32 = n.parse().unwrap();
                resp(302, &[("location", &format!("/chain/{}", n + 1))], "")
            } else if let Some(n) = t.strip_prefix("/short/") {
                let n: u32 = n.parse().unwrap();
                if n < 3 {
                    resp(301, &[("location", &format!("/short/{}", n + 1))], "")
                } else {
                    resp(200, &[], format!("arrived {n}"))
                }
            } else if t == "/loop" {
                resp(302, &[("location", "/loop")], "")
            } else {
                resp(200, &[], "")
            }
        })
        .await;
        let op = opener();
        let mut r = op.open(srv.url("/short/0")).await.unwrap();
        assert_eq!(r.url().as_str(), srv.url("/short/3"));
        assert_eq!(r.text().await.unwrap(), "arrived 3");

        let before = srv.seen().len();
        let err = op.open(srv.url("/chain/0")).await.unwrap_err();
        assert!(matches!(&err, Error::TooManyRedirects { count: 10, url } if url.ends_with("/chain/10")), "{err:?}");
        assert!(err.is_redirect());
        assert!(err.to_string().starts_with("too many redirects"));
        assert_eq!(srv.seen().len() - before, 11);

        let before = srv.seen().len();
        let err = op.open(srv.url("/loop")).await.unwrap_err();
        assert!(matches!(err, Error::RedirectLoop { .. }), "{err:?}");
        assert_eq!(srv.seen().len() - before, 5, "urllib's max_repeats = 4");

        let no_follow = opener_with(|b| b.follow_redirects(false));
        let r = no_follow.open(srv.url("/loop")).await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
    })
    .await;
}

#[tokio::test]
async fn relative_location_and_method_changes() {
    within(10, async {
        let srv = Server::start(|s| match s.target.as_str() {
            "/path" => resp(302, &[("location", "?query")], ""),
            "/spaced" => resp(302, &[("location", "/spaced path/")], ""),
            "/post302" => resp(302, &[("location", "/target")], ""),
            "/post307" => resp(307, &[("location", "/target")], ""),
            "/tofile" => resp(302, &[("location", "file:///etc/passwd")], ""),
            _ => resp(200, &[], "fine"),
        })
        .await;
        let op = opener();
        let r = op.open(srv.url("/path")).await.unwrap();
        assert_eq!(r.url().as_str(), srv.url("/path?query"));
        let r = op.open(srv.url("/path#frag")).await.unwrap();
        assert_eq!(r.url().as_str(), srv.url("/path?query#frag"));
        let r = op.open(srv.url("/spaced")).await.unwrap();
        assert_eq!(r.url().path(), "/spaced%20path/");

        op.open(Request::new(srv.url("/post302")).unwrap().body("a=1"))
            .await
            .unwrap();
        op.open(Request::new(srv.url("/post307")).unwrap().body("b=2"))
            .await
            .unwrap();
        let seen = srv.seen();
        let after302 = &seen[seen.len() - 3];
        assert_eq!(
            (after302.method.as_str(), after302.target.as_str()),
            ("GET", "/target")
        );
        assert!(after302.body.is_empty());
        assert_eq!(after302.header("content-type"), None);
        let after307 = seen.last().unwrap();
        assert_eq!(after307.method, "POST");
        assert_eq!(&after307.body[..], b"b=2");

        let err = op.open(srv.url("/tofile")).await.unwrap_err();
        assert!(matches!(err, Error::RedirectNotAllowed { .. }), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn stall_and_total_timeouts() {
    within(15, async {
        let srv = Server::start(|s| match s.target.as_str() {
            "/stall" => stalling(
                &[("content-length", "9")],
                b"12345",
                Duration::from_secs(30),
            ),
            _ => stalling(&[], b"slow", Duration::from_millis(600)),
        })
        .await;
        let op = opener_with(|b| b.read_timeout(Duration::from_millis(300)));
        let start = std::time::Instant::now();
        let mut r = op.open(srv.url("/stall")).await.unwrap();
        assert_eq!(&r.read(5).await.unwrap()[..], b"12345");
        let err = r.read_to_end().await.unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(5));

        // A body that keeps flowing is not killed by the stall timeout...
        let op = opener_with(|b| b.read_timeout(Duration::from_secs(5)));
        let mut r = op.open(srv.url("/slow")).await.unwrap();
        assert_eq!(r.read_to_end().await.unwrap(), b"slowlate");
        // ...but a total deadline is.
        let req = Request::new(srv.url("/slow"))
            .unwrap()
            .timeout(Duration::from_millis(200));
        let err = match op.open(req).await {
            Ok(mut r) => r.read_to_end().await.unwrap_err(),
            Err(e) => e,
        };
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn connect_errors_and_bad_input() {
    within(10, async {
        let port = closed_addr().port();
        let err = opener()
            .open(format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
        assert!(err.is_connect());

        // https to a plain-http server: a TLS failure, reported as a connect error.
        let plain = Server::start(|_| resp(200, &[], "plain")).await;
        let err = opener()
            .open(format!("https://{}/", plain.addr))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");

        let err = opener().open("gopher://example.com/x").await.unwrap_err();
        assert_eq!(err.to_string(), "unsupported scheme gopher");
        let err = opener().open("nourl").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        for bad in [
            "http://",
            "http:///x",
            "http://[::1",
            "",
            "  ",
            "http://a b/",
        ] {
            assert!(opener().open(bad).await.is_err(), "{bad:?}");
        }
        let err = Opener::builder().header_line("broken").build().unwrap_err();
        assert!(matches!(err, Error::InvalidHeader(_)));
    })
    .await;
}

#[tokio::test]
async fn explicit_proxy_receives_absolute_uri() {
    within(10, async {
        let proxy = Server::start(|_| resp(200, &[], "via proxy")).await;
        let op = opener_with(|b| b.proxy(&proxy.url("")));
        assert_eq!(
            text(&op, "http://example.invalid/some/path?q=1").await,
            "via proxy"
        );
        assert_eq!(proxy.targets(), ["http://example.invalid/some/path?q=1"]);
    })
    .await;
}

#[tokio::test]
async fn https_with_certificate_checks() {
    within(10, async {
        let (srv, pem) = Server::start_tls(|_| resp(200, &[], "secret stuff")).await;
        let url = format!("https://{}/tls", srv.addr);
        // Not trusted: the certificate check fails.
        let err = opener().open(&url).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
        // Trusted: fine.
        let op = opener_with(|b| b.add_root_certificate_pem(pem.as_bytes()));
        assert_eq!(text(&op, &url).await, "secret stuff");
        assert_eq!(srv.targets(), ["/tls"]);
    })
    .await;
}
