//! Proxy settings from the environment. The variables are set on a child process (this test
//! binary run again), never with `set_var` in a running multi-threaded test process.

#[allow(dead_code)]
#[path = "it/server.rs"]
mod server;

use weft_fetch::Opener;

use crate::server::{Server, resp, within};

/// The child side: builds openers under the inherited environment and uses them.
#[tokio::test]
#[ignore = "helper process of env_proxies_and_no_proxy"]
async fn child_uses_env_proxies() {
    let Ok(direct) = std::env::var("WEFT_DIRECT_URL") else {
        return;
    };
    let env_op = Opener::builder().build().unwrap();
    let no_env = Opener::builder().env_proxies(false).build().unwrap();
    let mut r = env_op.open("http://example.invalid/x").await.unwrap();
    assert_eq!(r.text().await.unwrap(), "via env proxy");
    // 127.0.0.1 is in no_proxy: straight to the server.
    env_op.open(direct.as_str()).await.unwrap();
    let err = no_env.open("http://example.invalid/x").await.unwrap_err();
    assert!(
        matches!(err.kind(), weft_fetch::ErrorKind::Connect),
        "{err:?}"
    );
}

#[tokio::test]
async fn env_proxies_and_no_proxy() {
    within(30, async {
        let srv = Server::start(|_| resp(200, &[], "payload")).await;
        let proxy = Server::start(|_| resp(200, &[], "via env proxy")).await;
        let status = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "child_uses_env_proxies",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env("WEFT_DIRECT_URL", srv.url("/direct"))
            .env("http_proxy", proxy.url(""))
            .env("no_proxy", "localhost, 127.0.0.1")
            .env_remove("HTTP_PROXY")
            .env_remove("NO_PROXY")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .env_remove("REQUEST_METHOD")
            .status()
            .await
            .unwrap();
        assert!(status.success(), "the child's checks failed");
        assert_eq!(proxy.targets(), ["http://example.invalid/x"]);
        assert_eq!(srv.targets(), ["/direct"]);
    })
    .await;
}
