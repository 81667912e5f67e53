//! Errors built from real failures, reported the way error reporters do (anyhow's `{:#}`,
//! eyre, `tracing`, `std::error::Report`): `Display`, then each `source()`. Every cause must be
//! said once: in `Display` or behind `source()`, never both.

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

/// A server that reads a request head, answers `reply`, then resets the connection.
async fn resetting_server(reply: &'static [u8]) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut tmp = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut tmp).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            }
            if stream.write_all(reply).await.is_err() {
                return;
            }
            // Let the client read the reply before the RST (which drops unread data).
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = stream.set_zero_linger();
            drop(stream);
        }
    });
    addr
}

/// One error of each kind that has a cause, each from a real failure on loopback.
async fn real_failures() -> Vec<(&'static str, ErrorKind, Error)> {
    let mut out = Vec::new();

    let closed = closed_addr();
    let refused = opener()
        .open(format!("http://{closed}/").as_str())
        .await
        .unwrap_err();
    out.push(("connection refused", ErrorKind::Connect, refused));

    // Accepted by the kernel's backlog, never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let timeout = opener_with(|b| b.read_timeout(Duration::from_millis(200)))
        .open(url.as_str())
        .await
        .unwrap_err();
    out.push(("timeout", ErrorKind::Timeout, timeout));

    for (name, reply) in [
        ("reset before the head", &b""[..]),
        (
            "reset mid-body",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n0123\r\n",
        ),
    ] {
        let reset = resetting_server(reply).await;
        let err = match opener().open(format!("http://{reset}/").as_str()).await {
            Ok(mut r) => r.read_to_end().await.unwrap_err(),
            Err(e) => e,
        };
        out.push((name, ErrorKind::Network, err));
    }

    let dir = tempfile::tempdir().unwrap();
    let missing = weft_fetch::Url::from_file_path(dir.path().join("missing.txt")).unwrap();
    let missing = weft_fetch::urlopen(missing).await.unwrap_err();
    out.push(("missing file", ErrorKind::Io, missing));

    let plain = Server::start(|_| resp(200, &[], "plain")).await;
    let not_tls = opener()
        .open(format!("https://{}/", plain.addr).as_str())
        .await
        .unwrap_err();
    out.push(("TLS against a plain server", ErrorKind::Connect, not_tls));

    let (tls, _untrusted_cert) = Server::start_tls(|_| resp(200, &[], "secret")).await;
    let untrusted = opener()
        .open(format!("https://localhost:{}/", tls.addr.port()).as_str())
        .await
        .unwrap_err();
    out.push((
        "TLS with an untrusted certificate",
        ErrorKind::Connect,
        untrusted,
    ));
    out
}

#[tokio::test]
async fn every_cause_is_said_once() {
    within(20, async {
        for (name, kind, err) in real_failures().await {
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
            // The same error carried through `std::io::Error` (as `AsyncRead` reports it).
            let io: std::io::Error = err.into();
            assert_said_once(name, &io);
        }
    })
    .await;
}

#[tokio::test]
async fn the_io_error_under_connection_refused_is_reachable() {
    within(20, async {
        let closed = closed_addr();
        let err = opener()
            .open(format!("http://{closed}/").as_str())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot connect (http://{closed}/): tcp connect error: Connection refused (os error 111)"
            )
        );
        // As a caller would: from `get_ref` down the underlying error's own chain.
        let mut cur = err
            .get_ref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        let mut kind = None;
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                kind = Some(io.kind());
                break;
            }
            cur = e.source();
        }
        assert_eq!(kind, Some(std::io::ErrorKind::ConnectionRefused), "{err:?}");
    })
    .await;
}
