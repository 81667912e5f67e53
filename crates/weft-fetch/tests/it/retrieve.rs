//! urlretrieve against a real server: reporthook, short bodies, errors, resume.

use std::sync::Arc;

use bytes::Bytes;
use weft_fetch::{Error, Progress, RetrieveOptions};

use crate::server::{Seen, Server, chunked, file_in, opener, resp, stream_resp, within};

fn body_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn ranged(full: Arc<Vec<u8>>, honour_range: bool) -> impl Fn(&Seen) -> crate::server::Resp {
    move |s| {
        let range = s.header("range").and_then(|r| {
            r.strip_prefix("bytes=")
                .map(|x| x.trim_end_matches('-').parse::<usize>().unwrap())
        });
        match range {
            Some(start) if honour_range && start >= full.len() => resp(
                416,
                &[("content-range", &format!("bytes */{}", full.len()))],
                "",
            ),
            Some(start) if honour_range => resp(
                206,
                &[(
                    "content-range",
                    &format!("bytes {start}-{}/{}", full.len() - 1, full.len()),
                )],
                Bytes::copy_from_slice(&full[start..]),
            ),
            _ => resp(200, &[], Bytes::copy_from_slice(&full)),
        }
    }
}

#[tokio::test]
async fn reporthook_sequences() {
    within(20, async {
        let srv = Server::start(|s| {
            let t = s.target.trim_start_matches('/');
            if let Some(n) = t.strip_prefix("chunked/") {
                let n: usize = n.parse().unwrap();
                chunked(
                    200,
                    (0..n / 100).map(|_| Bytes::from(vec![b'c'; 100])).collect(),
                )
            } else {
                let n: usize = t.parse().unwrap();
                resp(200, &[], body_of(n))
            }
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let op = opener();
        for (n, expected_calls) in [
            (0usize, 1u64),
            (5, 2),
            (8192, 2),
            (8193, 3),
            (20000, 4),
            (1 << 20, 129),
        ] {
            let dest = dir.path().join(format!("out{n}"));
            let mut calls: Vec<(u64, usize, i64)> = Vec::new();
            let mut done: Vec<u64> = Vec::new();
            let mut hook = |p: &Progress| {
                calls.push(p.reporthook_args());
                done.push(p.bytes_done);
            };
            let opts = RetrieveOptions::new().dest(&dest);
            let (path, headers) = op
                .retrieve(srv.url(&format!("/{n}")), &opts, Some(&mut hook))
                .await
                .unwrap();
            assert_eq!(path, dest);
            assert_eq!(headers["content-length"], n.to_string().as_str());
            assert_eq!(std::fs::read(&dest).unwrap(), body_of(n));
            let expected: Vec<(u64, usize, i64)> =
                (0..expected_calls).map(|b| (b, 8192, n as i64)).collect();
            assert_eq!(calls, expected, "body of {n} bytes");
            assert_eq!(done.first(), Some(&0));
            assert_eq!(done.last(), Some(&(n as u64)));
        }
        // Chunked: total unknown (-1).
        let mut calls = Vec::new();
        let mut hook = |p: &Progress| calls.push(p.reporthook_args());
        let dest = dir.path().join("chunked");
        op.retrieve(
            srv.url("/chunked/20000"),
            &RetrieveOptions::new().dest(&dest),
            Some(&mut hook),
        )
        .await
        .unwrap();
        assert_eq!(
            calls,
            [(0, 8192, -1), (1, 8192, -1), (2, 8192, -1), (3, 8192, -1)]
        );
        assert_eq!(std::fs::metadata(&dest).unwrap().len(), 20000);
        // Only the downloaded files are in the directory: no leftovers.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 7);
    })
    .await;
}

#[tokio::test]
async fn short_body_leaves_nothing_and_404_creates_nothing() {
    within(10, async {
        let srv = Server::start(|_| resp(404, &[], "nope")).await;
        let short = Server::start_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nFF\n").await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("short.bin");
        let op = opener();
        let err = op
            .retrieve(
                short.url("/short"),
                &RetrieveOptions::new().dest(&dest),
                None,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::ContentTooShort {
                    expected: 100,
                    got: 3
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "too short: got 3 of 100 bytes");
        assert!(!dest.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no temp file left beside"
        );
        // Reading through urlopen reports the same error.
        let mut r = op.open(short.url("/short")).await.unwrap();
        assert!(r.read_to_end().await.unwrap_err().is_content_too_short());
        // Through AsyncRead the typed error survives inside the io::Error.
        let mut r = op.open(short.url("/short")).await.unwrap();
        let mut buf = Vec::new();
        let e = tokio::io::AsyncReadExt::read_to_end(&mut r, &mut buf)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(buf, b"FF\n");
        assert!(matches!(
            Error::from(e),
            Error::ContentTooShort {
                expected: 100,
                got: 3
            }
        ));

        let err = op
            .retrieve(srv.url("/404"), &RetrieveOptions::new().dest(&dest), None)
            .await
            .unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    })
    .await;
}

#[tokio::test]
async fn resume_from_partial_file() {
    within(10, async {
        let full = Arc::new(body_of(100_000));
        let srv = Server::start(ranged(full.clone(), true)).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("big.bin");
        // A partial download at DEST (for example from curl).
        std::fs::write(&dest, &full[..30_000]).unwrap();
        let opts = RetrieveOptions::new().dest(&dest).resume(true);
        let mut last = None;
        let mut hook = |p: &Progress| last = Some((p.bytes_done, p.total));
        let (path, _) = opener()
            .retrieve(srv.url("/f"), &opts, Some(&mut hook))
            .await
            .unwrap();
        assert_eq!(path, dest);
        assert_eq!(std::fs::read(&dest).unwrap(), *full);
        assert_eq!(
            srv.seen()[0].header("range").as_deref(),
            Some("bytes=30000-")
        );
        assert_eq!(last, Some((100_000, Some(100_000))));
        assert!(!dir.path().join("big.bin.part").exists());

        // Already complete: 416 with the same total is success.
        let (path, _) = opener().retrieve(srv.url("/f"), &opts, None).await.unwrap();
        assert_eq!(std::fs::read(path).unwrap(), *full);

        // A server that ignores Range: start over with the 200 body.
        let plain = Server::start(ranged(full.clone(), false)).await;
        std::fs::write(dir.path().join("big.bin.part"), b"garbage garbage").unwrap();
        std::fs::remove_file(&dest).unwrap();
        opener()
            .retrieve(plain.url("/f"), &opts, None)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), *full);
        assert_eq!(
            plain.seen()[0].header("range").as_deref(),
            Some("bytes=15-")
        );
    })
    .await;
}

#[tokio::test]
async fn file_urls_and_large_body() {
    within(20, async {
        let dir = tempfile::tempdir().unwrap();
        let src = file_in(dir.path(), "src.txt", body_of(8193));
        let url = weft_fetch::Url::from_file_path(&src).unwrap();
        // Without dest: the local path, no copy, no hook call.
        let mut calls = 0;
        let mut hook = |_: &Progress| calls += 1;
        let (path, headers) = opener()
            .retrieve(&url, &RetrieveOptions::new(), Some(&mut hook))
            .await
            .unwrap();
        assert_eq!(path, src);
        assert_eq!(headers["content-length"], "8193");
        assert_eq!(calls, 0);
        // With dest: a copy, with urllib's hook sequence.
        let copy = dir.path().join("copy.txt");
        let mut seq = Vec::new();
        let mut hook = |p: &Progress| seq.push(p.reporthook_args());
        opener()
            .retrieve(&url, &RetrieveOptions::new().dest(&copy), Some(&mut hook))
            .await
            .unwrap();
        assert_eq!(std::fs::read(&copy).unwrap(), body_of(8193));
        assert_eq!(seq, [(0, 8192, 8193), (1, 8192, 8193), (2, 8192, 8193)]);

        // 32 MiB streamed from the server arrives intact.
        const N: usize = 32 << 20;
        let srv = Server::start(|_| {
            let chunks = (0..N / 65536).map(|i| Ok(Bytes::from(vec![(i % 256) as u8; 65536])));
            stream_resp(
                200,
                &[("content-length", &N.to_string())],
                futures::stream::iter(chunks),
            )
        })
        .await;
        let dest = dir.path().join("big");
        opener()
            .retrieve(srv.url("/big"), &RetrieveOptions::new().dest(&dest), None)
            .await
            .unwrap();
        let got = std::fs::read(&dest).unwrap();
        assert_eq!(got.len(), N);
        assert!(
            got.chunks(65536)
                .enumerate()
                .all(|(i, c)| c.iter().all(|&b| b == (i % 256) as u8))
        );
    })
    .await;
}
