//! Scheme handlers: your own protocols, plus the built-in `file:` and `data:`.

use std::future::Future;
use std::path::PathBuf;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LAST_MODIFIED};
use crate::response::tokio_reader_stream;
use crate::{Error, Request, Response, StatusCode, Url};

/// Opens URLs of one scheme (urllib's `<scheme>_open`). Register it with
/// [`OpenerBuilder::handler`](crate::OpenerBuilder::handler).
///
/// # Examples
///
/// Any `Fn(Request) -> impl Future<Output = Result<Response, Error>>` is a handler:
///
/// ```
/// use weft_fetch::{header::HeaderMap, Opener, Request, Response, StatusCode};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let opener = Opener::builder()
///     .handler("echo", |req: Request| async move {
///         let path = req.url().path().to_string();
///         Ok(Response::from_bytes(req.url().clone(), StatusCode::OK, HeaderMap::new(), path))
///     })
///     .build()?;
/// let mut r = opener.open("echo://host/hello/world").await?;
/// assert_eq!(r.read_to_end().await?, b"/hello/world");
/// # Ok(())
/// # }
/// ```
pub trait SchemeHandler: Send + Sync + 'static {
    /// Opens the request. The URL's scheme is the one this handler was registered under.
    ///
    /// # Errors
    ///
    /// Whatever the handler reports; it is returned as is by [`Opener::open`](crate::Opener::open).
    ///
    /// # Examples
    ///
    /// Implementing the trait on a type of your own (here a tiny in-memory file system):
    ///
    /// ```
    /// use std::collections::HashMap;
    ///
    /// use futures::future::BoxFuture;
    /// use weft_fetch::header::HeaderMap;
    /// use weft_fetch::{Error, Opener, Request, Response, SchemeHandler, StatusCode};
    ///
    /// struct MemFs(HashMap<String, &'static str>);
    ///
    /// impl SchemeHandler for MemFs {
    ///     fn open(&self, request: Request) -> BoxFuture<'static, Result<Response, Error>> {
    ///         let url = request.url().clone();
    ///         let found = self.0.get(url.path()).copied();
    ///         Box::pin(async move {
    ///             let (status, body) = match found {
    ///                 Some(body) => (StatusCode::OK, body),
    ///                 None => (StatusCode::NOT_FOUND, ""),
    ///             };
    ///             Ok(Response::from_bytes(url, status, HeaderMap::new(), body))
    ///         })
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let fs = MemFs(HashMap::from([("/motd".to_string(), "welcome")]));
    /// let opener = Opener::builder().handler("mem", fs).build()?;
    /// assert_eq!(opener.open("mem:///motd").await?.text().await?, "welcome");
    /// assert_eq!(opener.open("mem:///nope").await?.status(), StatusCode::NOT_FOUND);
    /// # Ok(())
    /// # }
    /// ```
    fn open(&self, request: Request) -> BoxFuture<'static, Result<Response, Error>>;
}

impl<F, Fut> SchemeHandler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, Error>> + Send + 'static,
{
    fn open(&self, request: Request) -> BoxFuture<'static, Result<Response, Error>> {
        (self)(request).boxed()
    }
}

/// The `file:` handler: streams a local file.
///
/// The host must be empty, `localhost` or a loopback address, with no port; otherwise
/// [`Error::NotLocalFile`]. Directories and missing files are [`Error::Io`]. Headers:
/// `Content-Type` (guessed from the extension, default `text/plain`), `Content-Length`,
/// `Last-Modified`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("f.html");
/// std::fs::write(&path, "<p>hi</p>\n")?;
/// let url = weft_fetch::Url::from_file_path(&path).expect("an absolute path");
/// let mut r = weft_fetch::urlopen(url).await?;
/// assert_eq!(r.header("content-type"), Some("text/html"));
/// assert_eq!(r.content_length(), Some(10));
/// assert_eq!(r.read_to_end().await?, b"<p>hi</p>\n");
///
/// // Only local hosts are allowed.
/// let err = weft_fetch::urlopen("file://example.com/etc/hosts").await.unwrap_err();
/// assert!(matches!(err, weft_fetch::Error::NotLocalFile { .. }));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct FileHandler;

/// The local path named by a `file:` URL, or an error if it is not local.
///
/// The host may be empty, `localhost`, `127.0.0.1` or `[::1]`, without a port.
///
/// # Errors
///
/// [`Error::NotLocalFile`] for any other host or a port; [`Error::InvalidUrl`] when the
/// path is not a valid local path.
///
/// # Examples
///
/// ```
/// use weft_fetch::{file_url_to_path, Error, Url};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join("report.txt");
/// let url = Url::from_file_path(&path).expect("an absolute path");
/// assert_eq!(file_url_to_path(&url)?, path);
///
/// let remote = Url::parse("file://fileserver/share/report.txt")?;
/// match file_url_to_path(&remote) {
///     Err(Error::NotLocalFile { host }) => assert_eq!(host, "fileserver"),
///     other => panic!("unexpected {other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
pub fn file_url_to_path(url: &Url) -> Result<PathBuf, Error> {
    if let Some(host) = url.host_str() {
        let local = host.is_empty()
            || host.eq_ignore_ascii_case("localhost")
            || host == "127.0.0.1"
            || host == "[::1]";
        if !local || url.port().is_some() {
            return Err(Error::NotLocalFile {
                host: match url.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host.to_string(),
                },
            });
        }
    }
    // `to_file_path` refuses any host but localhost; rebuild the URL without a host.
    let local = Url::parse(&format!("file://{}", url.path())).map_err(|e| Error::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    local.to_file_path().map_err(|()| Error::InvalidUrl {
        url: url.to_string(),
        reason: "not a valid local file path".into(),
    })
}

impl SchemeHandler for FileHandler {
    fn open(&self, request: Request) -> BoxFuture<'static, Result<Response, Error>> {
        async move {
            let url = request.url;
            let path = file_url_to_path(&url)?;
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| Error::io(path.clone(), e))?;
            let meta = file
                .metadata()
                .await
                .map_err(|e| Error::io(path.clone(), e))?;
            if meta.is_dir() {
                return Err(Error::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
                ));
            }
            let mut headers = HeaderMap::new();
            let mime = mime_guess::from_path(&path)
                .first_raw()
                .unwrap_or("text/plain");
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(mime));
            headers.insert(CONTENT_LENGTH, HeaderValue::from(meta.len()));
            if let Ok(modified) = meta.modified() {
                if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
                    headers.insert(LAST_MODIFIED, v);
                }
            }
            tracing::debug!(path = %path.display(), len = meta.len(), "file: open");
            let stream = tokio_reader_stream(file, 256 * 1024);
            Ok(Response::from_stream(url, StatusCode::OK, headers, stream))
        }
        .boxed()
    }
}

/// The `data:` handler (RFC 2397 as refined by WHATWG, through the `data-url` crate).
///
/// The body is the decoded data; `Content-Type` is the media type (default
/// `text/plain;charset=US-ASCII`) and `Content-Length` its length. A request body is ignored.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let mut r = weft_fetch::urlopen("data:text/plain;base64,SGVsbG8sIFdvcmxkIQ==").await?;
/// assert_eq!(r.header("content-type"), Some("text/plain"));
/// assert_eq!(r.read_to_end().await?, b"Hello, World!");
///
/// // Without a media type: US-ASCII text.
/// let r = weft_fetch::urlopen("data:,A%20brief%20note").await?;
/// assert_eq!(r.header("content-type"), Some("text/plain;charset=US-ASCII"));
///
/// let err = weft_fetch::urlopen("data:no-comma").await.unwrap_err();
/// assert!(matches!(err, weft_fetch::Error::InvalidDataUrl { .. }));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct DataHandler;

impl SchemeHandler for DataHandler {
    fn open(&self, request: Request) -> BoxFuture<'static, Result<Response, Error>> {
        let result = decode_data_url(request.url.as_str());
        let url = request.url;
        async move {
            let (mime, body) = result?;
            let mut headers = HeaderMap::new();
            let ct = HeaderValue::from_str(&mime).map_err(|_| Error::InvalidDataUrl {
                reason: format!("bad media type {mime:?}"),
            })?;
            headers.insert(CONTENT_TYPE, ct);
            Ok(Response::from_bytes(url, StatusCode::OK, headers, body))
        }
        .boxed()
    }
}

fn decode_data_url(s: &str) -> Result<(String, Vec<u8>), Error> {
    let du = data_url::DataUrl::process(s).map_err(|e| Error::InvalidDataUrl {
        reason: format!("{e:?}"),
    })?;
    let (body, _fragment) = du.decode_to_vec().map_err(|e| Error::InvalidDataUrl {
        reason: format!("{e:?}"),
    })?;
    Ok((du.mime_type().to_string(), body))
}
