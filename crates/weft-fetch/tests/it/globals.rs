//! The free functions and their global state (installed opener, temp file registry).
//! Everything touching globals is in this one test so that it runs sequentially.

use weft_fetch::{install_opener, registered_tempfiles, urlcleanup, urlopen, urlretrieve};

use crate::server::{Server, opener_with, resp, within};

#[tokio::test]
async fn install_retrieve_cleanup() {
    within(10, async {
        let srv = Server::start(|_| resp(200, &[], "payload")).await;

        let op = opener_with(|b| b.header_line("X-Custom: yes"));
        install_opener(op);
        urlopen(srv.url("/a")).await.unwrap();
        assert_eq!(srv.seen()[0].header("x-custom").as_deref(), Some("yes"));

        let (path, headers) = urlretrieve(srv.url("/b"), None, None).await.unwrap();
        assert_eq!(headers["content-length"], "7");
        assert_eq!(std::fs::read(&path).unwrap(), b"payload");
        assert!(registered_tempfiles().contains(&path));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(srv.seen()[1].header("x-custom").as_deref(), Some("yes"));

        // A failed retrieval without dest leaves and registers nothing.
        let short = Server::start_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nFF\n").await;
        let before = registered_tempfiles();
        let err = urlretrieve(short.url("/short"), None, None)
            .await
            .unwrap_err();
        assert!(err.is_content_too_short());
        assert_eq!(registered_tempfiles(), before);

        urlcleanup();
        assert!(!path.exists());
        assert!(registered_tempfiles().is_empty());
        // urlcleanup also uninstalled the opener.
        urlopen(srv.url("/c")).await.unwrap();
        assert_eq!(srv.seen().last().unwrap().header("x-custom"), None);
    })
    .await;
}
