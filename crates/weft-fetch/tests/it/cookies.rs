//! Cookies: set, sent back, saved to and loaded from cookies.txt.

use std::sync::Arc;

use weft_fetch::CookieJar;

use crate::server::{Server, opener_with, resp, within};

#[tokio::test]
async fn cookies_set_then_sent_and_file_round_trip() {
    within(10, async {
        let srv = Server::start(|s| match s.target.as_str() {
            "/set" => {
                let mut r = resp(200, &[("set-cookie", "a=1; Path=/; Max-Age=3600")], "");
                r.headers_mut().append("set-cookie", "s=2; Path=/".parse().unwrap());
                r.headers_mut().append("set-cookie", "deep=3; Path=/deep".parse().unwrap());
                r
            }
            _ => resp(200, &[], ""),
        })
        .await;
        let jar = Arc::new(CookieJar::new());
        let op = opener_with(|b| b.cookie_jar(jar.clone()));
        op.open(srv.url("/set")).await.unwrap();
        op.open(srv.url("/check")).await.unwrap();
        op.open(srv.url("/deep/x")).await.unwrap();
        let seen = srv.seen();
        assert_eq!(seen[0].header("cookie"), None);
        assert_eq!(seen[1].header("cookie").as_deref(), Some("a=1; s=2"));
        assert_eq!(seen[2].header("cookie").as_deref(), Some("deep=3; a=1; s=2"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cookies.txt");
        jar.save(&file).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("# Netscape HTTP Cookie File\n"));
        assert!(text.contains("127.0.0.1\tFALSE\t/\tFALSE\t0\ts\t2\n"), "{text}");
        assert!(text.contains("127.0.0.1\tFALSE\t/deep\tFALSE\t0\tdeep\t3\n"));
        let a_line = text.lines().find(|l| l.ends_with("\ta\t1")).unwrap();
        let expiry: u64 = a_line.split('\t').nth(4).unwrap().parse().unwrap();
        assert!(expiry > 0);

        // A fresh opener with the loaded jar sends them.
        let loaded = Arc::new(CookieJar::load(&file).unwrap());
        assert_eq!(loaded.cookies(), jar.cookies());
        let op2 = opener_with(|b| b.cookie_jar(loaded));
        op2.open(srv.url("/again")).await.unwrap();
        assert_eq!(srv.seen()[3].header("cookie").as_deref(), Some("a=1; s=2"));

        // A curl-written file loads too; a malformed line is skipped (with a warning).
        let curl = dir.path().join("curl.txt");
        std::fs::write(
            &curl,
            "# Netscape HTTP Cookie File\n# https://curl.se/docs/http-cookies.html\n\n#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t0\tcurl\tyes\n",
        )
        .unwrap();
        let j = CookieJar::load(&curl).unwrap();
        assert!(j.cookies()[0].http_only);
        std::fs::write(&curl, "127.0.0.1\tFALSE\t/\n").unwrap();
        assert!(CookieJar::load(&curl).unwrap().cookies().is_empty());
    })
    .await;
}
