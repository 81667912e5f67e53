//! Basic and Digest authentication against a real server.

use std::collections::HashMap;

use md5::{Digest, Md5};
use weft_fetch::{ErrorKind, Opener, Request, StatusCode};

use crate::server::{Seen, Server, resp, within};

const BASIC_OK: &str = "Basic dXNlcjpwYXNz"; // user:pass

fn basic_server(s: &Seen) -> crate::server::Resp {
    if s.header("authorization").as_deref() == Some(BASIC_OK) {
        resp(200, &[], "welcome")
    } else {
        resp(
            401,
            &[("www-authenticate", "Basic realm=\"Test\"")],
            "who are you?",
        )
    }
}

fn auths(srv: &Server) -> Vec<Option<String>> {
    srv.seen()
        .iter()
        .map(|s| s.header("authorization"))
        .collect()
}

#[tokio::test]
async fn basic_challenge_retry_and_wrong_password() {
    within(10, async {
        let srv = Server::start(basic_server).await;
        let op = Opener::builder()
            .env_proxies(false)
            .add_password(Some("Test"), &srv.url("/"), "user", "pass")
            .build()
            .unwrap();
        let mut r = op.open(srv.url("/basic")).await.unwrap();
        assert_eq!(r.text().await.unwrap(), "welcome");
        assert_eq!(auths(&srv), [None, Some(BASIC_OK.to_string())]);
        // Once accepted, the credentials go up front within that directory (prior auth).
        op.open(srv.url("/other")).await.unwrap();
        assert_eq!(srv.seen().len(), 3);
        assert_eq!(auths(&srv)[2].as_deref(), Some(BASIC_OK));

        // Wrong password: one retry, then the 401 as an error with its body.
        let srv = Server::start(basic_server).await;
        let op = Opener::builder()
            .env_proxies(false)
            .add_password(Some("Test"), &srv.url("/"), "user", "bad")
            .build()
            .unwrap();
        let err = op.open(srv.url("/basic")).await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(srv.seen().len(), 2);
        let mut r = err.into_response().unwrap();
        assert_eq!(r.text().await.unwrap(), "who are you?");

        // Credentials for another realm are not used: a single request.
        let srv = Server::start(basic_server).await;
        let op = Opener::builder()
            .env_proxies(false)
            .add_password(Some("Other"), &srv.url("/"), "user", "pass")
            .build()
            .unwrap();
        let err = op.open(srv.url("/basic")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Http);
        assert_eq!(srv.seen().len(), 1);

        // Pre-emptive Basic with any-realm credentials: a single request.
        let srv = Server::start(basic_server).await;
        let op = Opener::builder()
            .env_proxies(false)
            .credentials("user", "pass")
            .preemptive_basic(true)
            .build()
            .unwrap();
        op.open(srv.url("/basic")).await.unwrap();
        assert_eq!(auths(&srv), [Some(BASIC_OK.to_string())]);

        // Per-request Basic credentials.
        let srv = Server::start(basic_server).await;
        let req = Request::new(srv.url("/basic"))
            .unwrap()
            .basic_auth("user", "pass");
        crate::server::opener().open(req).await.unwrap();
        assert_eq!(srv.seen().len(), 1);
    })
    .await;
}

fn md5hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn digest_server(s: &Seen) -> crate::server::Resp {
    let challenge =
        "Digest realm=\"digest-realm\", nonce=\"abcdef0123\", qop=\"auth\", opaque=\"op4que\"";
    let Some(h) = s.header("authorization") else {
        return resp(401, &[("www-authenticate", challenge)], "no");
    };
    let Some(rest) = h.strip_prefix("Digest ") else {
        return resp(400, &[], "not digest");
    };
    let p: HashMap<String, String> = rest
        .split(", ")
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim_matches('"').to_string()))
        .collect();
    let ha1 = md5hex("alice:digest-realm:secret");
    let ha2 = md5hex(&format!("{}:{}", s.method, p["uri"]));
    let expected = md5hex(&format!(
        "{ha1}:abcdef0123:{}:{}:auth:{ha2}",
        p["nc"], p["cnonce"]
    ));
    if p["response"] == expected
        && p["uri"] == s.target
        && p["opaque"] == "op4que"
        && p["username"] == "alice"
    {
        resp(200, &[], "digest ok")
    } else {
        resp(401, &[("www-authenticate", challenge)], "bad digest")
    }
}

#[tokio::test]
async fn digest_challenge_retry_and_wrong_password() {
    within(10, async {
        let srv = Server::start(digest_server).await;
        let op = Opener::builder()
            .env_proxies(false)
            .add_password(Some("digest-realm"), &srv.url("/"), "alice", "secret")
            .build()
            .unwrap();
        let mut r = op.open(srv.url("/protected?x=1")).await.unwrap();
        assert_eq!(r.text().await.unwrap(), "digest ok");
        assert_eq!(srv.seen().len(), 2);

        let srv = Server::start(digest_server).await;
        let op = Opener::builder()
            .env_proxies(false)
            .credentials("alice", "wrong")
            .build()
            .unwrap();
        let err = op.open(srv.url("/protected")).await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(srv.seen().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn no_credentials_or_cookies_to_another_host() {
    within(10, async {
        // 127.0.0.2 is another host on loopback.
        let other = Server::start_on("127.0.0.2", |_| resp(200, &[], "other host")).await;
        let target = other.url("/landing");
        let first = Server::start(move |s| match s.target.as_str() {
            "/login" => resp(200, &[("set-cookie", "sid=secret; Path=/")], "ok"),
            _ => resp(302, &[("location", &target)], ""),
        })
        .await;
        let op = Opener::builder()
            .env_proxies(false)
            .credentials("user", "pass")
            .preemptive_basic(true)
            .cookie_store(true)
            .build()
            .unwrap();
        op.open(first.url("/login")).await.unwrap();
        let req = Request::new(first.url("/go"))
            .unwrap()
            .header_line("Cookie: mine=1")
            .unwrap()
            .header_line("Proxy-Authorization: Basic eDp5")
            .unwrap();
        let mut r = op.open(req).await.unwrap();
        assert_eq!(r.text().await.unwrap(), "other host");
        let go = &first.seen()[1];
        assert_eq!(go.header("authorization").as_deref(), Some(BASIC_OK));
        assert_eq!(go.header("cookie").as_deref(), Some("mine=1; sid=secret"));
        let landed = &other.seen()[0];
        assert_eq!(landed.target, "/landing");
        assert_eq!(landed.header("authorization"), None);
        assert_eq!(landed.header("cookie"), None);
        assert_eq!(landed.header("proxy-authorization"), None);
    })
    .await;
}
