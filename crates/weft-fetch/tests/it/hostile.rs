//! What a broken or hostile server sends, byte for byte (raw sockets): resume never splices
//! wrong bytes, a bodiless status saves nothing, encodings are decoded or refused, protocol
//! violations are told apart from network failures.

use weft_fetch::{Error, ErrorKind, RetrieveOptions};

use crate::server::{Seen, Server, opener, within};

/// 1000 bytes of a recognisable pattern (version `v` changes every byte).
fn body(v: u8) -> Vec<u8> {
    (0..1000u32).map(|i| (i % 251) as u8 ^ v).collect()
}

/// A raw HTTP/1.1 answer: status line, headers, a blank line, the body.
fn raw(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The start of a `Range: bytes=N-` request, if any.
fn range_start(s: &Seen) -> Option<usize> {
    s.header("range")?
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

/// A 200 with the whole body.
fn whole(full: &[u8]) -> Vec<u8> {
    raw(
        "200 OK",
        &[("Content-Length", full.len().to_string())],
        full,
    )
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_206_that_does_not_continue_the_part_is_never_appended() {
    within(20, async {
        let full = body(0);
        // Each wrong 206 a server may send to `Range: bytes=300-`.
        let wrong: Vec<(&str, Vec<u8>)> = vec![
            (
                "starts at 0",
                raw(
                    "206 Partial Content",
                    &[
                        ("Content-Range", "bytes 0-999/1000".into()),
                        ("Content-Length", "1000".into()),
                    ],
                    &full,
                ),
            ),
            (
                "no Content-Range",
                raw(
                    "206 Partial Content",
                    &[("Content-Length", "700".into())],
                    &full[300..],
                ),
            ),
            (
                "multipart",
                raw(
                    "206 Partial Content",
                    &[
                        ("Content-Type", "multipart/byteranges; boundary=XX".into()),
                        ("Content-Length", "700".into()),
                    ],
                    &full[300..],
                ),
            ),
            (
                "inconsistent total",
                raw(
                    "206 Partial Content",
                    &[
                        ("Content-Range", "bytes 300-999/2000".into()),
                        ("Content-Length", "700".into()),
                    ],
                    &full[300..],
                ),
            ),
        ];
        for (what, bad) in wrong {
            let full2 = full.clone();
            let srv = Server::start_raw_fn(move |s| match range_start(s) {
                Some(_) => bad.clone(),
                None => whole(&full2),
            })
            .await;
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("f.bin");
            std::fs::write(dir.path().join("f.bin.part"), &full[..300]).unwrap();
            let opts = RetrieveOptions::new().dest(&dest).resume(true);
            opener()
                .retrieve(srv.url("/f"), &opts, None)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(std::fs::read(&dest).unwrap() == full, "{what}: wrong bytes");
            let seen = srv.seen();
            assert_eq!(seen.len(), 2, "{what}: asked once more, whole");
            assert_eq!(range_start(&seen[0]), Some(300), "{what}");
            assert_eq!(range_start(&seen[1]), None, "{what}");
            assert_eq!(files_in(dir.path()), ["f.bin"], "{what}");
        }

        // A server that answers 206 even without Range: a typed error, nothing at the
        // destination, the partial file kept.
        let always = Server::start_raw_fn(|_| {
            raw(
                "206 Partial Content",
                &[
                    ("Content-Range", "bytes 0-9/1000".into()),
                    ("Content-Length", "10".into()),
                ],
                b"0123456789",
            )
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        std::fs::write(dir.path().join("f.bin.part"), &full[..300]).unwrap();
        let opts = RetrieveOptions::new().dest(&dest).resume(true);
        let err = opener()
            .retrieve(always.url("/f"), &opts, None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(err.to_string().contains("asked for no range"), "{err}");
        assert_eq!(files_in(dir.path()), ["f.bin.part"]);
        assert!(std::fs::read(dir.path().join("f.bin.part")).unwrap() == full[..300]);

        // Without resume, a 206 is never a whole body.
        let err = opener()
            .retrieve(always.url("/f"), &RetrieveOptions::new().dest(&dest), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
        assert!(!dest.exists());
    })
    .await;
}

/// A server of a resource whose version (and ETag) the test changes: it honours `If-Range`
/// unless `ignore_if_range`, cuts its 200s after `cut` bytes when set, and answers ranges.
fn versioned(
    version: std::sync::Arc<std::sync::atomic::AtomicU8>,
    cut: Option<usize>,
    ignore_if_range: bool,
) -> impl Fn(&Seen) -> Vec<u8> + Send + Sync + 'static {
    move |s| {
        let v = version.load(std::sync::atomic::Ordering::SeqCst);
        let full = body(v);
        let etag = format!("\"v{v}\"");
        let range_ok = ignore_if_range
            || s.header("if-range")
                .is_none_or(|validator| validator == etag);
        match range_start(s) {
            Some(start) if range_ok && start < full.len() => raw(
                "206 Partial Content",
                &[
                    ("ETag", etag.clone()),
                    (
                        "Content-Range",
                        format!("bytes {start}-{}/{}", full.len() - 1, full.len()),
                    ),
                    ("Content-Length", (full.len() - start).to_string()),
                ],
                &full[start..],
            ),
            _ => {
                let n = cut.unwrap_or(full.len());
                raw(
                    "200 OK",
                    &[
                        ("ETag", etag.clone()),
                        ("Content-Length", full.len().to_string()),
                    ],
                    &full[..n],
                )
            }
        }
    }
}

#[tokio::test]
async fn if_range_fetches_a_changed_resource_whole() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};
    within(20, async {
        let version = Arc::new(AtomicU8::new(1));
        let cutting = Server::start_raw_fn(versioned(version.clone(), Some(400), false)).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        let opts = RetrieveOptions::new().dest(&dest).resume(true);
        // A first attempt cut short leaves 400 bytes and their ETag.
        let err = opener()
            .retrieve(cutting.url("/f"), &opts, None)
            .await
            .unwrap_err();
        assert!(err.is_content_too_short(), "{err:?}");
        assert!(std::fs::read(dir.path().join("f.bin.part")).unwrap() == body(1)[..400]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("f.bin.part.meta")).unwrap(),
            "\"v1\"\n"
        );

        // Unchanged: continued with If-Range.
        let good = Server::start_raw_fn(versioned(version.clone(), None, false)).await;
        opener()
            .retrieve(good.url("/f"), &opts, None)
            .await
            .unwrap();
        assert!(std::fs::read(&dest).unwrap() == body(1));
        assert_eq!(good.seen()[0].header("if-range").as_deref(), Some("\"v1\""));
        assert_eq!(range_start(&good.seen()[0]), Some(400));
        assert_eq!(files_in(dir.path()), ["f.bin"]);

        // Changed between two runs: the server's If-Range check sends it whole.
        std::fs::remove_file(&dest).unwrap();
        version.store(1, Ordering::SeqCst);
        opener()
            .retrieve(cutting.url("/f"), &opts, None)
            .await
            .unwrap_err();
        version.store(2, Ordering::SeqCst);
        opener()
            .retrieve(good.url("/f"), &opts, None)
            .await
            .unwrap();
        assert!(
            std::fs::read(&dest).unwrap() == body(2),
            "spliced two versions"
        );
        assert_eq!(files_in(dir.path()), ["f.bin"]);

        // A server that ignores If-Range and splices anyway: its new ETag gives it away.
        std::fs::remove_file(&dest).unwrap();
        version.store(1, Ordering::SeqCst);
        opener()
            .retrieve(cutting.url("/f"), &opts, None)
            .await
            .unwrap_err();
        version.store(3, Ordering::SeqCst);
        let careless = Server::start_raw_fn(versioned(version.clone(), None, true)).await;
        opener()
            .retrieve(careless.url("/f"), &opts, None)
            .await
            .unwrap();
        assert!(
            std::fs::read(&dest).unwrap() == body(3),
            "spliced two versions"
        );
        assert_eq!(careless.seen().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_complete_file_stays_and_a_short_restart_never_shrinks_the_part() {
    within(20, async {
        let full = body(0);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        let opts = RetrieveOptions::new().dest(&dest).resume(true);

        // Complete at the destination: the 416 says so; nothing is renamed.
        let done = Server::start_raw_fn(|_| {
            raw(
                "416 Range Not Satisfiable",
                &[
                    ("Content-Range", "bytes */1000".into()),
                    ("Content-Length", "0".into()),
                ],
                b"",
            )
        })
        .await;
        std::fs::write(&dest, &full).unwrap();
        let (path, _) = opener()
            .retrieve(done.url("/f"), &opts, None)
            .await
            .unwrap();
        assert_eq!(path, dest);
        assert_eq!(files_in(dir.path()), ["f.bin"]);
        // A 416 for another length: an error, and the file is still where it was.
        let other = Server::start_raw_fn(|_| {
            raw(
                "416 Range Not Satisfiable",
                &[
                    ("Content-Range", "bytes */500".into()),
                    ("Content-Length", "0".into()),
                ],
                b"",
            )
        })
        .await;
        let err = opener()
            .retrieve(other.url("/f"), &opts, None)
            .await
            .unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(416));
        assert_eq!(files_in(dir.path()), ["f.bin"]);
        assert!(std::fs::read(&dest).unwrap() == full);
        std::fs::remove_file(&dest).unwrap();

        // 600 bytes in the .part; a server that ignores Range and is cut after 200: the
        // longer .part stays. Cut after 800: the restarted download replaces it.
        let part = dir.path().join("f.bin.part");
        std::fs::write(&part, &full[..600]).unwrap();
        for (cut, kept) in [(200usize, 600usize), (800, 800)] {
            let full2 = full.clone();
            let srv = Server::start_raw_fn(move |_| {
                raw(
                    "200 OK",
                    &[("Content-Length", "1000".into())],
                    &full2[..cut],
                )
            })
            .await;
            let err = opener()
                .retrieve(srv.url("/f"), &opts, None)
                .await
                .unwrap_err();
            assert!(err.is_content_too_short(), "{err:?}");
            assert!(
                std::fs::read(&part).unwrap() == full[..kept],
                "cut at {cut}: the .part should hold {kept} bytes"
            );
            assert_eq!(files_in(dir.path()), ["f.bin.part"], "cut at {cut}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_status_without_a_body_saves_nothing() {
    within(20, async {
        for head in [
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: weft\r\nConnection: upgrade\r\n\r\n",
        ] {
            let srv = Server::start_raw(head.as_bytes()).await;
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("out");
            let err = opener()
                .retrieve(srv.url("/x"), &RetrieveOptions::new().dest(&dest), None)
                .await
                .unwrap_err();
            let code = &head[9..12];
            assert!(matches!(err, Error::NoBody { .. }), "{code}: {err:?}");
            assert_eq!(err.kind(), ErrorKind::Http);
            assert!(
                err.to_string()
                    .starts_with(&format!("nothing to save: the server answered {code}")),
                "{err}"
            );
            assert!(files_in(dir.path()).is_empty(), "{code}");
        }
    })
    .await;
}

/// `hello gzip\n`, gzip-compressed.
const GZIP_HELLO: &[u8] = &[
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57,
    0x48, 0xaf, 0xca, 0x2c, 0xe0, 0x02, 0x00, 0x39, 0x7c, 0x63, 0x56, 0x0b, 0x00, 0x00, 0x00,
];

#[tokio::test]
async fn content_encoding_is_decoded_or_refused() {
    within(20, async {
        let encoded = |enc: &'static str, body: &'static [u8]| {
            Server::start_raw_fn(move |_| {
                raw(
                    "200 OK",
                    &[
                        ("Content-Encoding", enc.into()),
                        ("Content-Length", body.len().to_string()),
                    ],
                    body,
                )
            })
        };
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let opts = RetrieveOptions::new().dest(&dest);

        // gzip although identity was asked for: decoded.
        let gz = encoded("gzip", GZIP_HELLO).await;
        opener().retrieve(gz.url("/g"), &opts, None).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello gzip\n");
        assert_eq!(
            gz.seen()[0].header("accept-encoding").as_deref(),
            Some("identity")
        );
        std::fs::remove_file(&dest).unwrap();

        // An encoding weft cannot decode: a clear error, no raw bytes saved.
        let zstd = encoded("zstd", b"\x28\xb5\x2f\xfd garbage").await;
        let err = opener()
            .retrieve(zstd.url("/z"), &opts, None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
        assert!(err.to_string().contains("\"zstd\""), "{err}");
        assert!(files_in(dir.path()).is_empty());

        // "gzip" that is not gzip: an error, not the raw bytes.
        let fake = encoded("gzip", b"this is not gzip at all").await;
        let err = opener()
            .retrieve(fake.url("/f"), &opts, None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
        assert!(err.to_string().contains("gzip"), "{err}");
        assert!(files_in(dir.path()).is_empty());
    })
    .await;
}

#[tokio::test]
async fn protocol_violations_are_not_network_errors() {
    within(20, async {
        let garbage = Server::start_raw(b"HTTP/9.9 two hundred\r\n\r\nhello").await;
        let err = opener().open(garbage.url("/")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
        assert!(err.to_string().starts_with("protocol error ("), "{err}");

        let bad_chunk = Server::start_raw(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n",
        )
        .await;
        let mut resp = opener().open(bad_chunk.url("/")).await.unwrap();
        let err = resp.read_to_end().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");

        // A connection closed in the middle of a chunked body is a network failure.
        let cut = Server::start_raw(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        )
        .await;
        let mut resp = opener().open(cut.url("/")).await.unwrap();
        let err = resp.read_to_end().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Network, "{err:?}");
    })
    .await;
}
