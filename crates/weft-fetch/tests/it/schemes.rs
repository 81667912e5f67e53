//! file:, data: and custom scheme handlers (vectors from CPython's test_urllib).

use weft_fetch::header::HeaderMap;
use weft_fetch::{Error, ErrorKind, Opener, Request, Response, StatusCode, Url};

use crate::server::{file_in, opener, within};

#[tokio::test]
async fn data_url_vectors() {
    within(10, async {
        let op = opener();
        let cases: &[(&str, &str, &[u8])] = &[
            ("data:,", "text/plain;charset=US-ASCII", b""),
            ("data:,Hello%2C%20World!", "text/plain;charset=US-ASCII", b"Hello, World!"),
            ("data:text/plain;base64,SGVsbG8sIFdvcmxkIQ==", "text/plain", b"Hello, World!"),
            ("data:;base64,SGVsbG8=", "text/plain;charset=US-ASCII", b"Hello"),
            ("data:text/html;charset=utf-8,%3Ch1%3EHi%3C%2Fh1%3E", "text/html;charset=utf-8", b"<h1>Hi</h1>"),
            (
                "data:text/plain;charset=UTF-8,test%20data%20URLs%20%3A%3B%2C%25%3D%26%20%C3%B6%20%C3%84%20",
                "text/plain;charset=UTF-8",
                "test data URLs :;,%=& ö Ä ".as_bytes(),
            ),
            (
                "data:text/plain;charset=ISO-8859-1;base64,dGVzdCBkYXRhIFVSTHMgOjssJT0mIPYgxCA%3D",
                "text/plain;charset=ISO-8859-1",
                b"test data URLs :;,%=& \xf6 \xc4 ",
            ),
            ("data:,a+b", "text/plain;charset=US-ASCII", b"a+b"),
            ("data:,x#frag", "text/plain;charset=US-ASCII", b"x"),
        ];
        for (url, ct, body) in cases {
            let mut r = op.open(*url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.header("content-type"), Some(*ct), "{url}");
            assert_eq!(r.content_length(), Some(body.len() as u64), "{url}");
            assert_eq!(&r.read_to_end().await.unwrap()[..], *body, "{url}");
            assert_eq!(r.url().as_str(), *url);
        }
        // The PNG vector, with whitespace and percent-escaped whitespace inside.
        let png = concat!(
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAIAAAB7\n",
            "QOjdAAAAAXNSR0IArs4c6QAAAA9JREFUCNdj%0AYGBg%2BP//PwAGAQL%2BCm8 ",
            "vHgAAAABJRU5ErkJggg%3D%3D%0A%20"
        );
        let mut r = op.open(png).await.unwrap();
        let bytes = r.read_to_end().await.unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(bytes.len(), 85);
        assert_eq!(r.content_length(), Some(85));
        // Bad ones are errors, not panics; a POST body is ignored.
        for bad in ["data:text/plain", "data:;base64,Cg=", "data:;base64,SGVs!bG8="] {
            let err = op.open(bad).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Format, "{bad}");
        }
        let mut r = op.open(Request::new("data:,abc").unwrap().body("zzz")).await.unwrap();
        assert_eq!(r.read_to_end().await.unwrap(), b"abc");
    })
    .await;
}

#[tokio::test]
async fn file_url_vectors() {
    within(10, async {
        let dir = tempfile::tempdir().unwrap();
        let path = file_in(dir.path(), "f.html", "<p>hi</p>\n");
        let spaced = file_in(dir.path(), "a b.txt", "spaced");
        let p = path.to_str().unwrap();
        let op = opener();
        for url in [format!("file://{p}"), format!("file://localhost{p}"), format!("file://127.0.0.1{p}"), format!("file:{p}")] {
            let mut r = op.open(&url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(r.header("content-type"), Some("text/html"), "{url}");
            assert_eq!(r.header("content-length"), Some("10"));
            assert!(r.header("last-modified").unwrap().ends_with("GMT"));
            assert_eq!(r.read_to_end().await.unwrap(), b"<p>hi</p>\n");
        }
        let url = Url::from_file_path(&spaced).unwrap();
        assert!(url.as_str().ends_with("a%20b.txt"));
        let mut r = op.open(url).await.unwrap();
        assert_eq!(r.read_to_end().await.unwrap(), b"spaced");

        let err = op.open("file:///file_does_not_exist.txt").await.unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        assert!(matches!(&err, Error::Io { path: Some(p), .. } if p.ends_with("file_does_not_exist.txt")));
        for remote in [format!("file://example.invalid{p}"), format!("file://localhost:80{p}"), "file://not-a-local-host.com//dir/file.txt".into()] {
            let err = op.open(&remote).await.unwrap_err();
            // urllib: 'file not on local host'; a port is already refused by the URL parser.
            assert!(matches!(err, Error::NotLocalFile { .. } | Error::InvalidUrl { .. }), "{remote}: {err:?}");
        }
        let err = op.open(Url::from_directory_path(dir.path()).unwrap()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
    })
    .await;
}

#[tokio::test]
async fn custom_scheme_handler() {
    within(10, async {
        let op = Opener::builder()
            .handler("echo", |req: Request| async move {
                let sel = req.url().path().to_string();
                let mut h = HeaderMap::new();
                h.insert("x-echo", "1".parse().unwrap());
                Ok(Response::from_reader(
                    req.url().clone(),
                    StatusCode::OK,
                    h,
                    std::io::Cursor::new(sel.into_bytes()),
                ))
            })
            .build()
            .unwrap();
        let mut r = op.open("echo://host/hello/world").await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.header("x-echo"), Some("1"));
        assert_eq!(r.read_to_end().await.unwrap(), b"/hello/world");
        // Retrieve works through it too.
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("echo.txt");
        let opts = weft_fetch::RetrieveOptions::new().dest(&dest);
        op.retrieve("echo://h/x/y", &opts, None).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"/x/y");
        // Other openers do not know the scheme; nothing is attempted.
        let err = opener().open("echo://host/").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedScheme);
    })
    .await;
}
