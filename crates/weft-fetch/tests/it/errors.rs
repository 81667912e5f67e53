//! Errors built from real failures, reported the way error reporters do (anyhow's `{:#}`,
//! eyre, `tracing`, `std::error::Report`): `Display`, then each `source()`. Every cause must be
//! said once: in `Display` or behind `source()`, never both.

use std::io;
use std::time::Duration;

use weft_fetch::{Error, ErrorKind};

use crate::server::{Server, closed_addr, opener, opener_with, resp, within};

/// What anyhow's `{:#}` prints: the error's `Display`, then each `source()`, joined by ": ".
fn report(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        parts.push(e.to_string());
        assert!(
            parts.len() < 32,
            "a source chain that does not end: {parts:?}"
        );
        cur = e.source();
    }
    parts.join(": ")
}

/// Fails when a piece of the report (the text between two ": ") is said more than once.
fn assert_said_once(name: &str, err: &(dyn std::error::Error + 'static)) {
    let text = report(err);
    for piece in text.split(": ").filter(|p| p.len() > 3) {
        assert_eq!(
            text.matches(piece).count(),
            1,
            "{name}: {piece:?} is said twice in {text:?}"
        );
    }
}

/// The kind of the first `io::Error` under `err`, found as a caller would: from
/// [`Error::get_ref`] down the underlying error's own `source()` chain.
fn io_kind(err: &Error) -> Option<io::ErrorKind> {
    let mut cur = err
        .get_ref()
        .map(|e| e as &(dyn std::error::Error + 'static));
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        cur = e.source();
    }
    None
}

/// One error of each kind that has a cause, each from a real failure on loopback, with the kind
/// it must have and, where the OS names it, the kind of the `io::Error` under it.
async fn real_failures() -> Vec<(&'static str, ErrorKind, Option<io::ErrorKind>, Error)> {
    let mut out = Vec::new();

    let closed = closed_addr();
    let refused = opener()
        .open(format!("http://{closed}/").as_str())
        .await
        .unwrap_err();
    out.push((
        "connection refused",
        ErrorKind::Connect,
        Some(io::ErrorKind::ConnectionRefused),
        refused,
    ));

    // Accepted by the kernel's backlog, never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let timeout = opener_with(|b| b.read_timeout(Duration::from_millis(200)))
        .open(url.as_str())
        .await
        .unwrap_err();
    out.push(("timeout", ErrorKind::Timeout, None, timeout));

    for (name, reply) in [
        ("reset before the head", &b""[..]),
        (
            "reset mid-body",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n0123\r\n",
        ),
    ] {
        let reset = Server::start_raw_reset(reply).await;
        let err = match opener().open(reset.url("/").as_str()).await {
            Ok(mut r) => r.read_to_end().await.unwrap_err(),
            Err(e) => e,
        };
        out.push((
            name,
            ErrorKind::Network,
            Some(io::ErrorKind::ConnectionReset),
            err,
        ));
    }

    let dir = tempfile::tempdir().unwrap();
    let missing = weft_fetch::Url::from_file_path(dir.path().join("missing.txt")).unwrap();
    let missing = weft_fetch::urlopen(missing).await.unwrap_err();
    out.push((
        "missing file",
        ErrorKind::Io,
        Some(io::ErrorKind::NotFound),
        missing,
    ));

    let plain = Server::start(|_| resp(200, &[], "plain")).await;
    let not_tls = opener()
        .open(format!("https://{}/", plain.addr).as_str())
        .await
        .unwrap_err();
    out.push((
        "TLS against a plain server",
        ErrorKind::Connect,
        None,
        not_tls,
    ));

    let (tls, _untrusted_cert) = Server::start_tls(|_| resp(200, &[], "secret")).await;
    let untrusted = opener()
        .open(format!("https://localhost:{}/", tls.addr.port()).as_str())
        .await
        .unwrap_err();
    out.push((
        "TLS with an untrusted certificate",
        ErrorKind::Connect,
        None,
        untrusted,
    ));
    out
}

#[tokio::test]
async fn every_cause_is_said_once() {
    within(20, async {
        for (name, kind, root, err) in real_failures().await {
            assert_eq!(err.kind(), kind, "{name}: {err:?}");
            // The cause is in the one-line Display (what the CLI prints), without the HTTP
            // client's wrappers ...
            let text = err.to_string();
            assert!(
                !text.contains("error sending request") && !text.contains("client error"),
                "{name}: {text}"
            );
            // ... so reporters that walk `source()` find nothing more to say.
            assert_said_once(name, &err);
            assert_eq!(report(&err), err.to_string(), "{name}");
            // The underlying error is still there for whoever wants to downcast it.
            assert!(err.get_ref().is_some(), "{name}: {err:?}");
            if root.is_some() {
                assert_eq!(io_kind(&err), root, "{name}: {err:?}");
            }
            // The same error carried through `std::io::Error` (as `AsyncRead` reports it).
            let io: io::Error = err.into();
            assert_said_once(name, &io);
        }
    })
    .await;
}
