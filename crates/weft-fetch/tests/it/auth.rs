//! Basic and Digest authentication against a real server.

use std::collections::HashMap;

use md5::{Digest, Md5};
use weft_fetch::{ErrorKind, Opener, Request, StatusCode};

use crate::server::{Resp, Seen, Server, builder, opener_with, resp, text, within};

const BASIC_OK: &str = "Basic dXNlcjpwYXNz"; // user:pass

/// Who asks: the origin server (401, `WWW-Authenticate`, `Authorization`) or a forward
/// proxy (407, `Proxy-Authenticate`, `Proxy-Authorization`).
#[derive(Clone, Copy)]
enum Gate {
    Server,
    Proxy,
}

impl Gate {
    fn status(self) -> u16 {
        match self {
            Gate::Server => 401,
            Gate::Proxy => 407,
        }
    }
    fn challenge_header(self) -> &'static str {
        match self {
            Gate::Server => "www-authenticate",
            Gate::Proxy => "proxy-authenticate",
        }
    }
    fn credentials_header(self) -> &'static str {
        match self {
            Gate::Server => "authorization",
            Gate::Proxy => "proxy-authorization",
        }
    }
    /// 200 `ok` if the request carries `want`, else the challenge with body `no`.
    fn check(self, s: &Seen, want: &str, challenge: &str, ok: &str, no: &str) -> Resp {
        if s.header(self.credentials_header()).as_deref() == Some(want) {
            resp(200, &[], ok.to_string())
        } else {
            resp(
                self.status(),
                &[(self.challenge_header(), challenge)],
                no.to_string(),
            )
        }
    }
    /// The credentials header of every request seen.
    fn sent(self, srv: &Server) -> Vec<Option<String>> {
        srv.seen()
            .iter()
            .map(|s| s.header(self.credentials_header()))
            .collect()
    }
}

fn basic_server(s: &Seen) -> Resp {
    Gate::Server.check(
        s,
        BASIC_OK,
        "Basic realm=\"Test\"",
        "welcome",
        "who are you?",
    )
}

fn auths(srv: &Server) -> Vec<Option<String>> {
    Gate::Server.sent(srv)
}

/// A fresh server answering as `gate` does, and an opener with one password for the whole
/// server (`realm`, `user`, `password` as `add_password` takes them).
async fn gated(
    gate: fn(&Seen) -> Resp,
    realm: &str,
    user: &str,
    password: &str,
) -> (Server, Opener) {
    let srv = Server::start(gate).await;
    let op = opener_with(|b| b.add_password(Some(realm), &srv.url("/"), user, password));
    (srv, op)
}

#[tokio::test]
async fn basic_challenge_retry_and_wrong_password() {
    within(10, async {
        let (srv, op) = gated(basic_server, "Test", "user", "pass").await;
        assert_eq!(text(&op, srv.url("/basic")).await, "welcome");
        assert_eq!(auths(&srv), [None, Some(BASIC_OK.to_string())]);
        // Once accepted, the credentials go up front within that directory (prior auth).
        op.open(srv.url("/other")).await.unwrap();
        assert_eq!(srv.seen().len(), 3);
        assert_eq!(auths(&srv)[2].as_deref(), Some(BASIC_OK));

        // Wrong password: one retry, then the 401 as an error with its body.
        let (srv, op) = gated(basic_server, "Test", "user", "bad").await;
        let err = op.open(srv.url("/basic")).await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(srv.seen().len(), 2);
        let mut r = err.into_response().unwrap();
        assert_eq!(r.text().await.unwrap(), "who are you?");

        // Credentials for another realm are not used: a single request.
        let (srv, op) = gated(basic_server, "Other", "user", "pass").await;
        let err = op.open(srv.url("/basic")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Http);
        assert_eq!(srv.seen().len(), 1);

        // Pre-emptive Basic with any-realm credentials: a single request.
        let srv = Server::start(basic_server).await;
        let op = opener_with(|b| b.credentials("user", "pass").preemptive_basic(true));
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

/// The parameters of a `Digest` credentials header of `s` (none if there is no such header).
fn digest_params(s: &Seen, gate: Gate) -> Option<HashMap<String, String>> {
    let h = s.header(gate.credentials_header())?;
    let rest = h.strip_prefix("Digest ")?;
    Some(
        rest.split(", ")
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim_matches('"').to_string()))
            .collect(),
    )
}

/// True if `p` is a correct qop=auth response for `user:realm:password` and `nonce`, covering
/// the request-target the server saw.
fn digest_ok(s: &Seen, p: &HashMap<String, String>, user_realm_pw: &str, nonce: &str) -> bool {
    let ha1 = md5hex(user_realm_pw);
    let ha2 = md5hex(&format!("{}:{}", s.method, p["uri"]));
    let expected = md5hex(&format!(
        "{ha1}:{nonce}:{}:{}:auth:{ha2}",
        p["nc"], p["cnonce"]
    ));
    p["response"] == expected
        && p["uri"] == s.target
        && Some(p["username"].as_str()) == user_realm_pw.split(':').next()
}

fn digest_server(s: &Seen) -> Resp {
    let challenge =
        "Digest realm=\"digest-realm\", nonce=\"abcdef0123\", qop=\"auth\", opaque=\"op4que\"";
    let Some(p) = digest_params(s, Gate::Server) else {
        return resp(401, &[("www-authenticate", challenge)], "no");
    };
    if digest_ok(s, &p, "alice:digest-realm:secret", "abcdef0123") && p["opaque"] == "op4que" {
        resp(200, &[], "digest ok")
    } else {
        resp(401, &[("www-authenticate", challenge)], "bad digest")
    }
}

#[tokio::test]
async fn digest_challenge_retry_and_wrong_password() {
    within(10, async {
        let (srv, op) = gated(digest_server, "digest-realm", "alice", "secret").await;
        assert_eq!(text(&op, srv.url("/protected?x=1")).await, "digest ok");
        assert_eq!(srv.seen().len(), 2);

        let srv = Server::start(digest_server).await;
        let op = opener_with(|b| b.credentials("alice", "wrong"));
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
        let op = opener_with(|b| {
            b.credentials("user", "pass")
                .preemptive_basic(true)
                .cookie_store(true)
        });
        op.open(first.url("/login")).await.unwrap();
        let req = Request::new(first.url("/go"))
            .unwrap()
            .header_line("Cookie: mine=1")
            .unwrap()
            .header_line("Proxy-Authorization: Basic eDp5")
            .unwrap();
        assert_eq!(text(&op, req).await, "other host");
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

const PROXY_OK: &str = "Basic cHVzZXI6cHBhc3M="; // puser:ppass

/// An opener that sends everything through `proxy`.
fn proxied(proxy: &Server) -> weft_fetch::OpenerBuilder {
    builder().proxy(&proxy.url(""))
}

/// Opens a page through a fresh [`basic_proxy`] with the opener `configure` makes; expects
/// the 407 after `requests` requests, and returns it.
async fn refused_by_proxy(
    configure: impl FnOnce(weft_fetch::OpenerBuilder, &Server) -> weft_fetch::OpenerBuilder,
    requests: usize,
) -> weft_fetch::Error {
    let proxy = Server::start(basic_proxy).await;
    let op = configure(proxied(&proxy), &proxy).build().unwrap();
    let err = op.open("http://example.invalid/page").await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(StatusCode::PROXY_AUTHENTICATION_REQUIRED)
    );
    assert_eq!(proxy.seen().len(), requests);
    err
}

/// A forward proxy that wants Basic credentials in realm "proxy".
fn basic_proxy(s: &Seen) -> Resp {
    Gate::Proxy.check(
        s,
        PROXY_OK,
        "Basic realm=\"proxy\"",
        "via proxy",
        "proxy says no",
    )
}

#[tokio::test]
async fn proxy_basic_challenge_retry_and_wrong_password() {
    within(10, async {
        let proxy = Server::start(basic_proxy).await;
        let op = proxied(&proxy)
            .add_proxy_password(Some("proxy"), &proxy.url(""), "puser", "ppass")
            .build()
            .unwrap();
        assert_eq!(text(&op, "http://example.invalid/page").await, "via proxy");
        assert_eq!(Gate::Proxy.sent(&proxy), [None, Some(PROXY_OK.to_string())]);
        assert_eq!(
            proxy.targets(),
            ["http://example.invalid/page", "http://example.invalid/page"]
        );
        // The origin server never sees the proxy's credentials as its own.
        assert!(
            proxy
                .seen()
                .iter()
                .all(|s| s.header("authorization").is_none())
        );

        // Wrong password: one retry, then the 407 as an error with its body.
        let err = refused_by_proxy(
            |b, proxy| b.add_proxy_password(Some("proxy"), &proxy.url(""), "puser", "wrong"),
            2,
        )
        .await;
        let mut r = err.into_response().unwrap();
        assert_eq!(r.text().await.unwrap(), "proxy says no");

        // Server credentials are not proxy credentials: a single request, then the 407.
        refused_by_proxy(|b, _| b.credentials("puser", "ppass"), 1).await;
    })
    .await;
}

/// A forward proxy that wants Digest credentials; the response covers the absolute URL.
fn digest_proxy(s: &Seen) -> Resp {
    let challenge = "Digest realm=\"proxy-realm\", nonce=\"n0nce\", qop=\"auth\"";
    match digest_params(s, Gate::Proxy) {
        Some(p) if digest_ok(s, &p, "bob:proxy-realm:hunter2", "n0nce") => {
            resp(200, &[], "digest via proxy")
        }
        _ => resp(407, &[("proxy-authenticate", challenge)], "no"),
    }
}

#[tokio::test]
async fn proxy_digest_challenge_covers_the_absolute_url() {
    within(10, async {
        let proxy = Server::start(digest_proxy).await;
        let op = proxied(&proxy)
            .add_proxy_password(None, &proxy.url(""), "bob", "hunter2")
            .build()
            .unwrap();
        assert_eq!(
            text(&op, "http://example.invalid/a?b=c").await,
            "digest via proxy"
        );
        let seen = proxy.seen();
        assert_eq!(seen.len(), 2);
        let second = seen[1].header("proxy-authorization").unwrap();
        assert!(
            second.contains("uri=\"http://example.invalid/a?b=c\""),
            "{second}"
        );
    })
    .await;
}
