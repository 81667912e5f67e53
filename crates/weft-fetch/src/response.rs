//! The response type shared by every scheme.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures::stream::{BoxStream, StreamExt};
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

use crate::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use crate::{Error, StatusCode, Url, Version};

/// A stream of body chunks, as a [`SchemeHandler`](crate::SchemeHandler) may produce.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use futures::StreamExt;
/// use weft_fetch::{header::HeaderMap, BodyStream, Response, StatusCode, Url};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let chunks = ["one ", "two ", "three"].map(|s| Ok(Bytes::from_static(s.as_bytes())));
/// let body: BodyStream = futures::stream::iter(chunks).boxed();
/// let url = Url::parse("count:123")?;
/// let mut resp = Response::from_stream(url, StatusCode::OK, HeaderMap::new(), body);
/// assert_eq!(resp.text().await?, "one two three");
/// # Ok(())
/// # }
/// ```
pub type BodyStream = BoxStream<'static, Result<Bytes, Error>>;

/// An open URL: status, headers, final URL, and a body you read like a file.
///
/// `Response` implements [`AsyncRead`] and [`AsyncBufRead`], so `tokio::io::AsyncBufReadExt`'s
/// `read_line` and `lines` work. The inherent [`read`](Response::read),
/// [`read_to_end`](Response::read_to_end) and [`chunk`](Response::chunk) return typed
/// [`Error`]s (they take precedence over the `AsyncReadExt` methods of the same name; call those
/// with `AsyncReadExt::read_to_end(&mut resp, &mut buf)` if you want them).
///
/// # Examples
///
/// ```
/// use tokio::io::AsyncBufReadExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let resp = weft_fetch::urlopen("data:,We%0Agot%0Ahere%0A").await?;
/// let mut lines = resp.lines();
/// let mut got = Vec::new();
/// while let Some(line) = lines.next_line().await? {
///     got.push(line);
/// }
/// assert_eq!(got, ["We", "got", "here"]);
/// # Ok(())
/// # }
/// ```
///
/// Copying a body to any `AsyncWrite` with [`tokio::io::copy`]:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let mut resp = weft_fetch::urlopen("data:,copied").await?;
/// let mut out: Vec<u8> = Vec::new();
/// let n = tokio::io::copy(&mut resp, &mut out).await?;
/// assert_eq!((n, &out[..]), (6, &b"copied"[..]));
/// # Ok(())
/// # }
/// ```
pub struct Response {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    url: Url,
    // Mutex only to make the response Sync; it is only ever accessed through `get_mut`.
    body: Mutex<BodyStream>,
    buf: Bytes,
    done: bool,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("url", &self.url.as_str())
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl Response {
    /// Builds a response from its parts and a body stream. Used by scheme handlers.
    ///
    /// # Examples
    ///
    /// A body produced piece by piece, as a handler generating data on the fly would:
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weft_fetch::{header::HeaderMap, Response, StatusCode, Url};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let body = futures::stream::iter(1..=3)
    ///     .map(|i| Ok(bytes::Bytes::from(format!("line {i}\n"))))
    ///     .boxed();
    /// let url = Url::parse("gen:lines")?;
    /// let mut resp = Response::from_stream(url, StatusCode::OK, HeaderMap::new(), body);
    /// assert_eq!(resp.content_length(), None); // unknown up front
    /// assert_eq!(resp.text().await?, "line 1\nline 2\nline 3\n");
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_stream(url: Url, status: StatusCode, headers: HeaderMap, body: BodyStream) -> Self {
        Response {
            status,
            version: Version::HTTP_11,
            headers,
            url,
            body: Mutex::new(body),
            buf: Bytes::new(),
            done: false,
        }
    }

    /// Builds a response whose body is in memory; sets `Content-Length` unless present.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{header::HeaderMap, Response, StatusCode, Url};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let url = Url::parse("echo://host/hi")?;
    /// let mut r = Response::from_bytes(url, StatusCode::OK, HeaderMap::new(), "hi");
    /// assert_eq!(r.content_length(), Some(2));
    /// assert_eq!(r.read_to_end().await?, b"hi");
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_bytes(
        url: Url,
        status: StatusCode,
        mut headers: HeaderMap,
        body: impl Into<Bytes>,
    ) -> Self {
        let body: Bytes = body.into();
        if !headers.contains_key(CONTENT_LENGTH) {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len() as u64));
        }
        let stream = futures::stream::once(async move { Ok(body) }).boxed();
        Self::from_stream(url, status, headers, stream)
    }

    /// Builds a response that streams from any `AsyncRead` (64 KiB reads).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{header::HeaderMap, Response, StatusCode, Url};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let reader = std::io::Cursor::new(vec![b'x'; 100_000]);
    /// let url = Url::parse("mem:big")?;
    /// let mut resp = Response::from_reader(url, StatusCode::OK, HeaderMap::new(), reader);
    /// let first = resp.chunk().await?.expect("some data");
    /// assert_eq!(first.len(), 64 * 1024);
    /// assert_eq!(resp.read_to_end().await?.len(), 100_000 - 64 * 1024);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_reader(
        url: Url,
        status: StatusCode,
        headers: HeaderMap,
        reader: impl AsyncRead + Send + 'static,
    ) -> Self {
        let stream = tokio_reader_stream(reader, 64 * 1024);
        Self::from_stream(url, status, headers, stream)
    }

    /// The status: the HTTP status for `http`/`https`; `200 OK` for `file:` and `data:` (where
    /// urllib says `None`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::StatusCode;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let resp = weft_fetch::urlopen("data:,").await?;
    /// assert_eq!(resp.status(), StatusCode::OK);
    /// assert!(resp.status().is_success());
    /// # Ok(())
    /// # }
    /// ```
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The HTTP version the server answered with (`HTTP/1.1` for responses built by a
    /// [`SchemeHandler`](crate::SchemeHandler), `file:` and `data:`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Version;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let resp = weft_fetch::urlopen("data:,x").await?;
    /// assert_eq!(resp.version(), Version::HTTP_11);
    /// # Ok(())
    /// # }
    /// ```
    pub fn version(&self) -> Version {
        self.version
    }

    /// `HTTP/1.1 200 OK`: the version, the status and its standard reason (the HTTP client
    /// does not keep the server's own reason phrase).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let resp = weft_fetch::urlopen("data:,x").await?;
    /// assert_eq!(resp.status_line(), "HTTP/1.1 200 OK");
    /// # Ok(())
    /// # }
    /// ```
    pub fn status_line(&self) -> String {
        crate::opener::status_line(self.version, self.status)
    }

    pub(crate) fn with_version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// The response headers (for `file:`: `Content-Type`, `Content-Length`, `Last-Modified`;
    /// for `data:`: `Content-Type`, `Content-Length`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::header::{CONTENT_LENGTH, CONTENT_TYPE};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let resp = weft_fetch::urlopen("data:image/svg+xml,<svg/>").await?;
    /// assert_eq!(resp.headers()[CONTENT_TYPE], "image/svg+xml");
    /// assert_eq!(resp.headers()[CONTENT_LENGTH], "6");
    /// # Ok(())
    /// # }
    /// ```
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// One header as a string, if present and visible ASCII. The name is case-insensitive.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let resp = weft_fetch::urlopen("data:application/json,{}").await?;
    /// assert_eq!(resp.header("Content-Type"), Some("application/json"));
    /// assert_eq!(resp.header("etag"), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The final URL, after redirects (urllib's `geturl()`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("notes.txt");
    /// std::fs::write(&path, "n")?;
    /// let url = weft_fetch::Url::from_file_path(&path).expect("an absolute path");
    /// let resp = weft_fetch::urlopen(&url).await?;
    /// assert_eq!(resp.url(), &url);
    /// # Ok(())
    /// # }
    /// ```
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The `Content-Length` header, parsed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let resp = weft_fetch::urlopen("data:;base64,AAECAw==").await?;
    /// assert_eq!(resp.content_length(), Some(4));
    /// # Ok(())
    /// # }
    /// ```
    pub fn content_length(&self) -> Option<u64> {
        content_length(&self.headers)
    }

    /// The next chunk of the body, as it arrives; `None` at the end.
    ///
    /// # Errors
    ///
    /// The error that ended the body: [`Error::ContentTooShort`] when an HTTP body is cut
    /// short, [`Error::Timeout`] on a stall, [`Error::Network`] or [`Error::Io`] otherwise (or
    /// whatever a [`SchemeHandler`](crate::SchemeHandler)'s stream yields). After an error the
    /// body is at its end.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("big.bin");
    /// std::fs::write(&path, vec![0u8; 300 * 1024])?;
    /// let url = weft_fetch::Url::from_file_path(&path).expect("an absolute path");
    /// let mut resp = weft_fetch::urlopen(url).await?;
    /// let mut total = 0;
    /// while let Some(chunk) = resp.chunk().await? {
    ///     total += chunk.len();
    /// }
    /// assert_eq!(total, 300 * 1024);
    /// assert!(resp.chunk().await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if !self.buf.is_empty() {
            return Ok(Some(std::mem::take(&mut self.buf)));
        }
        if self.done {
            return Ok(None);
        }
        loop {
            let next = self.stream().next().await;
            match next {
                Some(Ok(b)) if b.is_empty() => continue,
                Some(Ok(b)) => return Ok(Some(b)),
                Some(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                None => {
                    self.done = true;
                    return Ok(None);
                }
            }
        }
    }

    /// Reads up to `n` bytes (fewer only at the end of the body); empty at EOF, like Python's
    /// `read(n)`.
    ///
    /// # Errors
    ///
    /// The error that ended the body: [`Error::ContentTooShort`] when an HTTP body is cut
    /// short, [`Error::Timeout`] on a stall, [`Error::Network`] or [`Error::Io`] otherwise (or
    /// whatever a [`SchemeHandler`](crate::SchemeHandler)'s stream yields). After an error the
    /// body is at its end.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let mut resp = weft_fetch::urlopen("data:,Hello%2C%20World!").await?;
    /// assert_eq!(resp.read(5).await?, "Hello");
    /// assert_eq!(resp.read(100).await?, ", World!");
    /// assert!(resp.read(100).await?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read(&mut self, n: usize) -> Result<Bytes, Error> {
        let mut out = bytes::BytesMut::new();
        while out.len() < n {
            let Some(mut chunk) = self.chunk().await? else {
                break;
            };
            let want = n - out.len();
            if chunk.len() > want {
                self.buf = chunk.split_off(want);
            }
            if out.is_empty() && chunk.len() == n {
                return Ok(chunk);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    /// Reads the rest of the body.
    ///
    /// The whole body is held in memory, however much the server sends (a body that never
    /// ends never returns): [`read`](Self::read) with a limit (ask for one byte more to tell
    /// a body that fits from one cut off), [`chunk`](Self::chunk) or
    /// [`urlretrieve`](crate::urlretrieve) keep memory bounded.
    ///
    /// # Errors
    ///
    /// The error that ended the body: [`Error::ContentTooShort`] when an HTTP body is cut
    /// short, [`Error::Timeout`] on a stall, [`Error::Network`] or [`Error::Io`] otherwise (or
    /// whatever a [`SchemeHandler`](crate::SchemeHandler)'s stream yields). After an error the
    /// body is at its end.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let mut resp = weft_fetch::urlopen("data:;base64,AAECAw==").await?;
    /// assert_eq!(resp.read(1).await?, &[0u8][..]);
    /// assert_eq!(resp.read_to_end().await?, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_to_end(&mut self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(self.content_length().unwrap_or(0).min(1 << 20) as usize);
        while let Some(chunk) = self.chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Reads the rest of the body as UTF-8 (invalid sequences replaced).
    ///
    /// # Errors
    ///
    /// The error that ended the body: [`Error::ContentTooShort`] when an HTTP body is cut
    /// short, [`Error::Timeout`] on a stall, [`Error::Network`] or [`Error::Io`] otherwise (or
    /// whatever a [`SchemeHandler`](crate::SchemeHandler)'s stream yields). After an error the
    /// body is at its end.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let mut resp = weft_fetch::urlopen("data:,caf%C3%A9%FF").await?;
    /// assert_eq!(resp.text().await?, "café\u{FFFD}");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn text(&mut self) -> Result<String, Error> {
        let v = self.read_to_end().await?;
        Ok(String::from_utf8(v)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    fn stream(&mut self) -> &mut BodyStream {
        self.body.get_mut().unwrap_or_else(|p| p.into_inner())
    }
}

impl AsyncBufRead for Response {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        while this.buf.is_empty() && !this.done {
            match this.stream().as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(b))) => this.buf = b,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Err(e.into()));
                }
                Poll::Ready(None) => this.done = true,
            }
        }
        Poll::Ready(Ok(&this.buf[..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        let amt = amt.min(this.buf.len());
        this.buf.advance(amt);
    }
}

impl AsyncRead for Response {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let avail = match self.as_mut().poll_fill_buf(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(b)) => {
                let n = b.len().min(out.remaining());
                out.put_slice(&b[..n]);
                n
            }
        };
        self.consume(avail);
        Poll::Ready(Ok(()))
    }
}

pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
}

/// Streams an `AsyncRead` as chunks of up to `cap` bytes.
pub(crate) fn tokio_reader_stream(
    reader: impl AsyncRead + Send + 'static,
    cap: usize,
) -> BodyStream {
    let reader = Box::pin(reader);
    futures::stream::unfold(Some(reader), move |state| async move {
        use tokio::io::AsyncReadExt;
        let mut reader = state?;
        let mut buf = bytes::BytesMut::with_capacity(cap);
        match reader.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(buf.freeze()), Some(reader))),
            Err(e) => Some((Err(Error::io(None, e)), None)),
        }
    })
    .boxed()
}

/// Wraps a reqwest response body: maps errors, and turns a body cut short into
/// [`Error::ContentTooShort`].
pub(crate) fn http_body_stream(resp: reqwest::Response, url: Url, head: bool) -> BodyStream {
    let s = resp.status();
    let expected = if head
        || s == StatusCode::NO_CONTENT
        || s == StatusCode::NOT_MODIFIED
        || s.is_informational()
    {
        None
    } else {
        content_length(resp.headers())
    };
    struct St {
        resp: reqwest::Response,
        got: u64,
        expected: Option<u64>,
        url: Url,
    }
    let st = St {
        resp,
        got: 0,
        expected,
        url,
    };
    futures::stream::unfold(Some(st), |state| async move {
        let mut st = state?;
        match st.resp.chunk().await {
            Ok(Some(b)) => {
                st.got += b.len() as u64;
                Some((Ok(b), Some(st)))
            }
            Ok(None) => match st.expected {
                Some(exp) if st.got < exp => Some((
                    Err(Error::ContentTooShort {
                        expected: exp,
                        got: st.got,
                    }),
                    None,
                )),
                _ => None,
            },
            Err(e) => {
                let err = match st.expected {
                    Some(exp) if st.got < exp && !e.is_timeout() => {
                        tracing::debug!(url = %crate::error::redact(&st.url), error = %e.without_url(), "body cut short");
                        Error::ContentTooShort {
                            expected: exp,
                            got: st.got,
                        }
                    }
                    _ => Error::from_reqwest(e, &st.url),
                };
                Some((Err(err), None))
            }
        }
    })
    .boxed()
}

/// A content coding weft decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// `gzip` (or `x-gzip`); several members one after the other are one body.
    Gzip,
    /// `deflate`: the zlib format (RFC 9110 8.4.1.2).
    Deflate,
    /// `br`: Brotli.
    Brotli,
}

impl Coding {
    /// The coding a lowercase `Content-Encoding` element names, if weft decodes it.
    pub(crate) fn parse(name: &str) -> Option<Coding> {
        match name {
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Brotli),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
        }
    }
}

/// `body` with `codings` undone (listed in the order the server applied them), read in pieces
/// of at most 64 KiB however much a piece of the encoded body expands. The errors of `body`
/// itself (a cut, a timeout) come through as they are; encoded bytes that do not decode, or a
/// stream that stops before its end, are a [`Error::Protocol`].
pub(crate) fn decoded_stream(body: BodyStream, codings: &[Coding], url: &Url) -> BodyStream {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZlibDecoder};
    use tokio::io::BufReader;
    let mut reader: Pin<Box<dyn AsyncRead + Send>> =
        Box::pin(tokio_util::io::StreamReader::new(body));
    for coding in codings.iter().rev() {
        let encoded = BufReader::new(reader);
        reader = match coding {
            Coding::Gzip => {
                let mut d = GzipDecoder::new(encoded);
                d.multiple_members(true);
                Box::pin(d)
            }
            Coding::Deflate => Box::pin(ZlibDecoder::new(encoded)),
            Coding::Brotli => Box::pin(BrotliDecoder::new(encoded)),
        };
    }
    let names = codings
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(", ");
    let url = crate::error::redact(url);
    // The state carries the names and the URL an error needs: nothing is copied per piece.
    futures::stream::unfold(Some((reader, names, url)), |state| async move {
        use tokio::io::AsyncReadExt;
        let (mut reader, names, url) = state?;
        let mut buf = bytes::BytesMut::with_capacity(64 * 1024);
        match reader.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(buf.freeze()), Some((reader, names, url)))),
            Err(e) if e.get_ref().is_some_and(|inner| inner.is::<Error>()) => {
                Some((Err(Error::from(e)), None))
            }
            Err(e) => Some((
                Err(Error::Protocol {
                    url: Some(url),
                    reason: format!("the {names} body does not decode: {e}"),
                }),
                None,
            )),
        }
    })
    .boxed()
}

/// Parses `"Name: value"` into a header pair.
pub(crate) fn parse_header_line(line: &str) -> Result<(HeaderName, HeaderValue), Error> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| Error::InvalidHeader(line.to_string()))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| Error::InvalidHeader(line.to_string()))?;
    let value =
        HeaderValue::from_str(value.trim()).map_err(|_| Error::InvalidHeader(line.to_string()))?;
    Ok((name, value))
}
