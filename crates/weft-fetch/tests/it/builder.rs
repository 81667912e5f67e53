//! The opener's settings do what they say, over loopback (the doc examples check only that
//! they are taken).

use weft_fetch::{Error, PasswordManager};

use crate::server::{Server, builder, resp, text, within};

#[tokio::test]
async fn max_redirects_stops_after_that_many() {
    within(10, async {
        let srv = Server::start(|s| {
            let n: u32 = s.target.trim_start_matches('/').parse().unwrap_or(0);
            resp(302, &[("location", &format!("/{}", n + 1))], "")
        })
        .await;
        let op = builder().max_redirects(2).build().unwrap();
        let err = op.open(srv.url("/0")).await.unwrap_err();
        assert!(
            matches!(&err, Error::TooManyRedirects { count: 2, url } if url.ends_with("/2")),
            "{err:?}"
        );
        assert_eq!(srv.targets(), ["/0", "/1", "/2"]);
        // Not following at all: the 302 itself.
        let op = builder().follow_redirects(false).build().unwrap();
        assert_eq!(op.open(srv.url("/0")).await.unwrap().status().as_u16(), 302);
    })
    .await;
}

#[tokio::test]
async fn a_password_manager_answers_the_challenge() {
    within(10, async {
        let srv = Server::start(|s| match s.header("authorization").as_deref() {
            // joe:s3cret
            Some("Basic am9lOnMzY3JldA==") => resp(200, &[], "in"),
            _ => resp(401, &[("www-authenticate", "Basic realm=\"r\"")], ""),
        })
        .await;
        let mut pm = PasswordManager::new();
        pm.add(Some("r"), &srv.url("/"), "joe", "s3cret");
        let op = builder().password_manager(pm).build().unwrap();
        assert_eq!(text(&op, srv.url("/x")).await, "in");
        // Another realm: not answered.
        let mut pm = PasswordManager::new();
        pm.add(Some("other"), &srv.url("/"), "joe", "s3cret");
        let op = builder().password_manager(pm).build().unwrap();
        assert_eq!(
            op.open(srv.url("/x"))
                .await
                .unwrap_err()
                .status()
                .map(|s| s.as_u16()),
            Some(401)
        );
    })
    .await;
}

#[tokio::test]
async fn remove_header_and_keep_alive() {
    within(10, async {
        let srv = Server::start(|_| resp(200, &[], "ok")).await;
        let op = builder()
            .remove_header(weft_fetch::header::USER_AGENT)
            .keep_alive(false)
            .build()
            .unwrap();
        text(&op, srv.url("/")).await;
        assert_eq!(srv.seen()[0].header("user-agent"), None);
        let op = builder().build().unwrap();
        op.open(srv.url("/")).await.unwrap();
        assert!(
            srv.seen()[1]
                .header("user-agent")
                .unwrap()
                .starts_with("weft-fetch/")
        );
    })
    .await;
}
