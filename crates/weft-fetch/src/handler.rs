//! Scheme handlers: your own protocols, plus the built-in `file:` and `data:`.

use std::future::Future;
use std::path::PathBuf;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LAST_MODIFIED};
use crate::response::tokio_reader_stream;
use crate::{Error, Request, Response, StatusCode, Url};

/// Opens URLs of one scheme (urllib's `<scheme>_open`). Register it with
/// [`OpenerBuilder::handler`](crate::OpenerBuilder::handler).
///
/// Any `Fn(Request) -> impl Future<Output = Result<Response, Error>>` is a handler:
///
/// ```
/// use weft_fetch::{header::HeaderMap, Opener, Request, Response, StatusCode};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let opener = Opener::builder()
///     .handler("echo", |req: Request| async move {
///         let path = req.url().path().to_string();
///         Ok(Response::from_bytes(req.url().clone(), StatusCode::OK, HeaderMap::new(), path))
///     })
///     .build()
///     .unwrap();
/// let mut r = opener.open("echo://host/hello/world").await.unwrap();
/// assert_eq!(r.read_to_end().await.unwrap(), b"/hello/world");
/// # });
/// ```
pub trait SchemeHandler: Send + Sync + 'static {
    /// Opens the request. The URL's scheme is the one this handler was registered under.
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
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("f.html");
/// std::fs::write(&path, "<p>hi</p>\n").unwrap();
/// let url = weft_fetch::Url::from_file_path(&path).unwrap();
/// let mut r = weft_fetch::urlopen(url).await.unwrap();
/// assert_eq!(r.header("content-type"), Some("text/html"));
/// assert_eq!(r.content_length(), Some(10));
/// assert_eq!(r.read_to_end().await.unwrap(), b"<p>hi</p>\n");
/// # });
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct FileHandler;

/// The local path named by a `file:` URL, or an error if it is not local.
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
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut r = weft_fetch::urlopen("data:text/plain;base64,SGVsbG8sIFdvcmxkIQ==").await.unwrap();
/// assert_eq!(r.header("content-type"), Some("text/plain"));
/// assert_eq!(r.read_to_end().await.unwrap(), b"Hello, World!");
/// # });
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
