//! Proxy settings from the environment. Alone in its own test binary: setting environment
//! variables while other threads may read them (every opener build does) is a data race, so
//! this test must not share a process with the others.

#[allow(dead_code)]
#[path = "it/server.rs"]
mod server;

use weft_fetch::Opener;

use crate::server::{resp, within, Server};

#[tokio::test]
async fn env_proxies_and_no_proxy() {
    within(10, async {
        let srv = Server::start(|_| resp(200, &[], "payload")).await;
        // Proxy environment variables, with no_proxy (only openers built meanwhile see them).
        let proxy = Server::start(|_| resp(200, &[], "via env proxy")).await;
        std::env::set_var("http_proxy", proxy.url(""));
        std::env::set_var("no_proxy", "localhost, 127.0.0.1");
        let env_op = Opener::builder().build().unwrap();
        let no_env = Opener::builder().env_proxies(false).build().unwrap();
        std::env::remove_var("http_proxy");
        std::env::remove_var("no_proxy");
        let mut r = env_op.open("http://example.invalid/x").await.unwrap();
        assert_eq!(r.text().await.unwrap(), "via env proxy");
        env_op.open(srv.url("/direct")).await.unwrap();
        assert_eq!(proxy.targets(), ["http://example.invalid/x"]);
        let err = no_env.open("http://example.invalid/x").await.unwrap_err();
        assert!(
            matches!(err.kind(), weft_fetch::ErrorKind::Connect),
            "{err:?}"
        );
        assert_eq!(srv.targets(), ["/direct"]);
    })
    .await;
}
