//! The error type of weft-fetch.

use std::path::PathBuf;

use crate::Url;
use crate::response::Response;

/// A boxed underlying cause.
///
/// # Examples
///
/// ```
/// use weft_fetch::{BoxError, Error};
///
/// let source: BoxError = "connection reset by peer".into();
/// let err = Error::Network { url: Some("http://example.com/".into()), source };
/// assert_eq!(err.to_string(), "network error (http://example.com/): connection reset by peer");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while opening or reading a URL.
///
/// Match on the variants, or on [`Error::kind`] for a coarse classification (for example to
/// pick an exit code). An HTTP status of 400 or more is [`Error::Http`], which still carries the
/// whole [`Response`] (status, headers and a readable body), like urllib's `HTTPError`.
///
/// # Each cause said once
///
/// The `Display` is one clean line that already says the cause, without the HTTP client's
/// wrappers ("cannot connect (http://127.0.0.1:9/): tcp connect error: Connection refused (os
/// error 111)"). So, following the Rust API guidelines (an error either prints its source or
/// returns it from [`source`](std::error::Error::source), never both), `source()` returns
/// nothing that the `Display` said: reporters that print the chain (anyhow's `{:#}`, eyre,
/// `tracing`, `std::error::Report`) say each cause once. The only chain left is that of an
/// [`Error::Io`], whose `source()` is its I/O error's source, as with `io::Error` itself.
/// The underlying error is still there, for downcasting: [`Error::get_ref`].
///
/// ```
/// use std::error::Error as _;
/// use weft_fetch::Error;
///
/// // What anyhow's `{:#}` prints: the Display, then each source, joined by ": ".
/// fn report(err: &dyn std::error::Error) -> String {
///     let mut text = err.to_string();
///     let mut cur = err.source();
///     while let Some(e) = cur {
///         text = format!("{text}: {e}");
///         cur = e.source();
///     }
///     text
/// }
///
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let err = Error::Connect { url: Some("http://127.0.0.1:9/".into()), source: Box::new(refused) };
/// assert_eq!(report(&err), "cannot connect (http://127.0.0.1:9/): connection refused");
/// assert!(err.source().is_none());
/// let inner = err.get_ref().and_then(|e| e.downcast_ref::<std::io::Error>());
/// assert_eq!(inner.map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionRefused));
/// ```
///
/// # Examples
///
/// ```
/// use weft_fetch::Error;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// match weft_fetch::urlopen("gopher://example.com/").await {
///     Err(Error::UnsupportedScheme { scheme }) => assert_eq!(scheme, "gopher"),
///     other => panic!("unexpected {other:?}"),
/// }
/// let err = weft_fetch::urlopen("gopher://example.com/").await.unwrap_err();
/// assert_eq!(err.kind(), weft_fetch::ErrorKind::UnsupportedScheme);
/// assert_eq!(err.to_string(), "unsupported scheme gopher");
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The URL could not be parsed, or lacks something it needs (a host, a scheme).
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
    /// No handler is registered for this scheme. Raised before any I/O.
    UnsupportedScheme {
        /// The scheme, lower case.
        scheme: String,
    },
    /// A header given by the caller is malformed.
    InvalidHeader(String),
    /// The server answered with a status of 400 or more. The response is still readable.
    Http(Box<Response>),
    /// More than the allowed number of redirects were followed.
    TooManyRedirects {
        /// The URL of the last redirect response.
        url: String,
        /// How many redirects were followed.
        count: usize,
    },
    /// A redirect led back to a URL that was already visited too often.
    RedirectLoop {
        /// The URL visited again.
        url: String,
        /// How many times it was requested.
        visits: usize,
    },
    /// A redirect pointed to a scheme that may not be followed (for example `file:`).
    RedirectNotAllowed {
        /// The target of the redirect.
        location: String,
    },
    /// The body ended before the announced `Content-Length`.
    ContentTooShort {
        /// The announced length.
        expected: u64,
        /// The bytes actually received.
        got: u64,
    },
    /// A connect, read (stall) or total timeout elapsed.
    Timeout {
        /// The URL being fetched, when known.
        url: Option<String>,
        /// The underlying error: the `Display` says "timed out", [`Error::get_ref`] returns it.
        source: Option<BoxError>,
    },
    /// The connection could not be established (refused, DNS failure, TLS handshake...).
    Connect {
        /// The URL being fetched, when known.
        url: Option<String>,
        /// The underlying error: the `Display` says its chain, [`Error::get_ref`] returns it.
        source: BoxError,
    },
    /// Another network or protocol failure during the exchange.
    Network {
        /// The URL being fetched, when known.
        url: Option<String>,
        /// The underlying error: the `Display` says its chain, [`Error::get_ref`] returns it.
        source: BoxError,
    },
    /// The server broke the HTTP protocol: a status line or a chunk that does not parse, a
    /// `206 Partial Content` that does not continue the partial file (or answers a request
    /// that asked for no range), a body in an encoding that was not asked for and that weft
    /// cannot decode. Retrying the same request gets the same answer.
    Protocol {
        /// The URL being fetched, when known (without its user name and password).
        url: Option<String>,
        /// What the server got wrong.
        reason: String,
    },
    /// A download ([`Opener::retrieve`](crate::Opener::retrieve)) got a final status that
    /// carries no body to save: `1xx` (for example `101 Switching Protocols`), `204 No Content`
    /// or `304 Not Modified`.
    NoBody {
        /// The URL (without its user name and password).
        url: String,
        /// The status received.
        status: crate::StatusCode,
    },
    /// A `file:` URL names a host other than the local one.
    NotLocalFile {
        /// The host named in the URL.
        host: String,
    },
    /// A `data:` URL is malformed (no comma, bad base64...).
    InvalidDataUrl {
        /// What is wrong.
        reason: String,
    },
    /// Authentication could not be performed (unsupported scheme or algorithm, bad challenge).
    Auth {
        /// What went wrong.
        reason: String,
    },
    /// A local I/O error (reading a `file:` URL, writing a download...).
    Io {
        /// The file concerned, when known.
        path: Option<PathBuf>,
        /// The underlying error; the `Display` says it, `source()` returns its own source.
        source: std::io::Error,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidUrl { url, reason } => write!(f, "invalid URL {url:?}: {reason}"),
            Error::UnsupportedScheme { scheme } => write!(f, "unsupported scheme {scheme}"),
            Error::InvalidHeader(header) => write!(f, "invalid header {header:?}"),
            Error::Http(r) => write!(
                f,
                "HTTP Error {}: {}",
                r.status().as_u16(),
                r.status().canonical_reason().unwrap_or("Unknown")
            ),
            Error::TooManyRedirects { url, count } => {
                write!(f, "too many redirects ({count}), last URL {url}")
            }
            Error::RedirectLoop { url, visits } => {
                write!(f, "redirect loop: {url} visited {visits} times")
            }
            Error::RedirectNotAllowed { location } => {
                write!(f, "redirection to {location:?} is not allowed")
            }
            Error::ContentTooShort { expected, got } => {
                write!(f, "too short: got {got} of {expected} bytes")
            }
            Error::Timeout { url, .. } => write!(f, "timed out{}", fmt_url(url)),
            Error::Connect { url, source } => write!(
                f,
                "cannot connect{}: {}",
                fmt_url(url),
                cause_text(source.as_ref())
            ),
            Error::Network { url, source } => write!(
                f,
                "network error{}: {}",
                fmt_url(url),
                cause_text(source.as_ref())
            ),
            Error::Protocol { url, reason } => {
                write!(f, "protocol error{}: {reason}", fmt_url(url))
            }
            Error::NoBody { url, status } => write!(
                f,
                "nothing to save: the server answered {} {} ({url})",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ),
            Error::NotLocalFile { host } => write!(f, "file not on local host: {host}"),
            Error::InvalidDataUrl { reason } => write!(f, "invalid data URL: {reason}"),
            Error::Auth { reason } => write!(f, "authentication: {reason}"),
            Error::Io { path, source } => write!(f, "{}{source}", fmt_path(path)),
        }
    }
}

impl std::error::Error for Error {
    /// What the [`Display`](std::fmt::Display) did not already say, which is nothing but the
    /// source of an [`Error::Io`]'s I/O error: `Connect` and `Network` print their whole chain
    /// of causes, `Timeout` says it timed out (its cause says only that, with the HTTP client's
    /// wrapper around it), and an `Io` error prints its I/O error, whose own `source()` is the
    /// rest (as `io::Error` built from a custom error does). [`Error::get_ref`] gives the
    /// underlying error itself.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => source.source(),
            _ => None,
        }
    }
}

fn fmt_url(url: &Option<String>) -> String {
    match url {
        Some(u) => format!(" ({u})"),
        None => String::new(),
    }
}

fn fmt_path(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!("{}: ", p.display()),
        None => String::new(),
    }
}

/// A coarse classification of [`Error`], for exit codes and retries.
///
/// # Examples
///
/// ```
/// use weft_fetch::ErrorKind;
///
/// fn exit_code(kind: ErrorKind) -> i32 {
///     match kind {
///         ErrorKind::InvalidInput | ErrorKind::UnsupportedScheme => 2,
///         ErrorKind::Http => 22, // as curl
///         ErrorKind::Timeout => 28,
///         _ => 1,
///     }
/// }
///
/// let err = weft_fetch::Request::new("no scheme here").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidInput);
/// assert_eq!(exit_code(err.kind()), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad URL or bad header given by the caller.
    InvalidInput,
    /// Scheme not handled.
    UnsupportedScheme,
    /// HTTP status >= 400, or a status without a body where one was needed.
    Http,
    /// Too many redirects, a redirect loop, or a forbidden redirect.
    Redirect,
    /// The body was shorter than announced.
    ContentTooShort,
    /// A timeout.
    Timeout,
    /// Could not connect.
    Connect,
    /// Other network error (connection reset...).
    Network,
    /// The server broke the HTTP protocol ([`Error::Protocol`]).
    Protocol,
    /// Authentication problem.
    Auth,
    /// Local file system error (including `file:` URLs that do not exist).
    Io,
    /// A malformed `data:` URL.
    Format,
}

impl Error {
    /// The coarse kind of this error.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Error, ErrorKind};
    ///
    /// let e = Error::ContentTooShort { expected: 100, got: 3 };
    /// assert_eq!(e.kind(), ErrorKind::ContentTooShort);
    /// assert_eq!(e.to_string(), "too short: got 3 of 100 bytes");
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidUrl { .. } | Error::InvalidHeader(_) => ErrorKind::InvalidInput,
            Error::UnsupportedScheme { .. } => ErrorKind::UnsupportedScheme,
            Error::Http(_) | Error::NoBody { .. } => ErrorKind::Http,
            Error::Protocol { .. } => ErrorKind::Protocol,
            Error::TooManyRedirects { .. }
            | Error::RedirectLoop { .. }
            | Error::RedirectNotAllowed { .. } => ErrorKind::Redirect,
            Error::ContentTooShort { .. } => ErrorKind::ContentTooShort,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Connect { .. } => ErrorKind::Connect,
            Error::Network { .. } => ErrorKind::Network,
            Error::NotLocalFile { .. } | Error::Io { .. } => ErrorKind::Io,
            Error::InvalidDataUrl { .. } => ErrorKind::Format,
            Error::Auth { .. } => ErrorKind::Auth,
        }
    }

    /// The HTTP status, for [`Error::Http`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{header::HeaderMap, Error, Response, StatusCode, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let url = Url::parse("http://example.com/missing")?;
    /// let resp = Response::from_bytes(url, StatusCode::NOT_FOUND, HeaderMap::new(), "gone");
    /// let err = Error::Http(Box::new(resp));
    /// assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    /// assert_eq!(err.to_string(), "HTTP Error 404: Not Found");
    /// assert_eq!(Error::ContentTooShort { expected: 2, got: 1 }.status(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn status(&self) -> Option<crate::StatusCode> {
        match self {
            Error::Http(r) => Some(r.status()),
            _ => None,
        }
    }

    /// The error response, for [`Error::Http`]; read its body like any response.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{header::HeaderMap, Error, Response, StatusCode, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let url = Url::parse("http://example.com/missing")?;
    /// let resp = Response::from_bytes(url, StatusCode::NOT_FOUND, HeaderMap::new(), "gone");
    /// let err = Error::Http(Box::new(resp));
    /// let resp = err.response().expect("an HTTP error has a response");
    /// assert_eq!(resp.url().as_str(), "http://example.com/missing");
    /// assert_eq!(resp.content_length(), Some(4));
    /// # Ok(())
    /// # }
    /// ```
    pub fn response(&self) -> Option<&Response> {
        match self {
            Error::Http(r) => Some(r),
            _ => None,
        }
    }

    /// Takes the error response out, for [`Error::Http`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{header::HeaderMap, Error, Response, StatusCode, Url};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let url = Url::parse("http://example.com/missing")?;
    /// let resp = Response::from_bytes(url, StatusCode::NOT_FOUND, HeaderMap::new(), "gone");
    /// let err = Error::Http(Box::new(resp));
    /// if let Some(mut resp) = err.into_response() {
    ///     assert_eq!(resp.text().await?, "gone");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_response(self) -> Option<Response> {
        match self {
            Error::Http(r) => Some(*r),
            _ => None,
        }
    }

    /// True for any timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Error;
    ///
    /// let err = Error::Timeout { url: Some("http://example.com/".into()), source: None };
    /// assert!(err.is_timeout());
    /// assert_eq!(err.to_string(), "timed out (http://example.com/)");
    /// // Through `std::io::Error` (as `AsyncRead` reports it) and back:
    /// let io: std::io::Error = err.into();
    /// assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    /// assert!(Error::from(io).is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// True for an HTTP status >= 400.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{header::HeaderMap, Error, Response, StatusCode, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let url = Url::parse("http://example.com/missing")?;
    /// let resp = Response::from_bytes(url, StatusCode::NOT_FOUND, HeaderMap::new(), "gone");
    /// let err = Error::Http(Box::new(resp));
    /// assert!(err.is_http());
    /// assert!(!Error::InvalidHeader("X".into()).is_http());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_http(&self) -> bool {
        self.kind() == ErrorKind::Http
    }

    /// True for redirect errors (too many, loop, forbidden target).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Error;
    ///
    /// let err = Error::TooManyRedirects { url: "http://example.com/a".into(), count: 10 };
    /// assert!(err.is_redirect());
    /// let err = Error::RedirectNotAllowed { location: "file:///etc/passwd".into() };
    /// assert!(err.is_redirect());
    /// ```
    pub fn is_redirect(&self) -> bool {
        self.kind() == ErrorKind::Redirect
    }

    /// True when the body was shorter than its `Content-Length`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Error;
    ///
    /// let err = Error::ContentTooShort { expected: 1000, got: 512 };
    /// assert!(err.is_content_too_short());
    /// // Reading a `Response` through `AsyncRead` reports it as an unexpected EOF.
    /// let io: std::io::Error = err.into();
    /// assert_eq!(io.kind(), std::io::ErrorKind::UnexpectedEof);
    /// ```
    pub fn is_content_too_short(&self) -> bool {
        self.kind() == ErrorKind::ContentTooShort
    }

    /// True when a connection could not be made.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Error;
    ///
    /// let err = Error::Connect { url: None, source: "connection refused".into() };
    /// assert!(err.is_connect());
    /// assert_eq!(err.to_string(), "cannot connect: connection refused");
    /// ```
    pub fn is_connect(&self) -> bool {
        self.kind() == ErrorKind::Connect
    }

    /// True when the local resource does not exist (missing `file:`) or the server said 404/410.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let dir = tempfile::tempdir()?;
    /// let url = weft_fetch::Url::from_file_path(dir.path().join("gone.txt")).unwrap();
    /// let err = weft_fetch::urlopen(url).await.unwrap_err();
    /// assert!(err.is_not_found());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            Error::Http(r) => matches!(r.status().as_u16(), 404 | 410),
            _ => false,
        }
    }

    /// The underlying error, for `Connect`, `Network`, `Timeout` (when it has one) and `Io`:
    /// the HTTP client's error (whose `source()` chain leads to the I/O, TLS or DNS error at
    /// the root) or the [`std::io::Error`], as [`std::io::Error::get_ref`] gives the error an
    /// `io::Error` was built from. Its text is already in this error's `Display`, which is why
    /// [`source`](std::error::Error::source) does not return it (reports would say it twice).
    ///
    /// # Examples
    ///
    /// The kind of the I/O error at the root of a failure (for connection refused,
    /// `ConnectionRefused`, found under the HTTP client's wrappers):
    ///
    /// ```
    /// use std::error::Error as _;
    /// use std::io;
    /// use weft_fetch::Error;
    ///
    /// fn io_kind(err: &Error) -> Option<io::ErrorKind> {
    ///     let mut cur = err.get_ref().map(|e| e as &(dyn std::error::Error + 'static));
    ///     while let Some(e) = cur {
    ///         if let Some(io) = e.downcast_ref::<io::Error>() {
    ///             return Some(io.kind());
    ///         }
    ///         cur = e.source();
    ///     }
    ///     None
    /// }
    ///
    /// let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
    /// let err = Error::Connect { url: None, source: Box::new(refused) };
    /// assert_eq!(io_kind(&err), Some(io::ErrorKind::ConnectionRefused));
    /// assert!(err.source().is_none());
    /// assert_eq!(io_kind(&Error::ContentTooShort { expected: 2, got: 1 }), None);
    /// ```
    pub fn get_ref(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            Error::Connect { source, .. } | Error::Network { source, .. } => Some(source.as_ref()),
            Error::Timeout { source, .. } => source.as_deref(),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<Option<PathBuf>>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Classifies a reqwest error. The URL is kept without its user name and password, and
    /// without reqwest's own copy of it (which would print it in full).
    pub(crate) fn from_reqwest(e: reqwest::Error, url: &Url) -> Error {
        let shown = Some(redact(url));
        let e = e.without_url();
        if let Some(reason) = protocol_violation(&e) {
            return Error::Protocol { url: shown, reason };
        }
        if e.is_timeout() {
            Error::Timeout {
                url: shown,
                source: Some(Box::new(e)),
            }
        } else if e.is_connect() {
            if not_tls(&e) {
                let at = match (url.host_str(), url.port_or_known_default()) {
                    (Some(h), Some(p)) if h.contains(':') => format!("[{h}]:{p}"),
                    (Some(h), Some(p)) => format!("{h}:{p}"),
                    _ => url.authority().to_string(),
                };
                return Error::Connect {
                    url: shown,
                    source: format!("the server at {at} did not answer TLS (is it plain http?)")
                        .into(),
                };
            }
            Error::Connect {
                url: shown,
                source: Box::new(e),
            }
        } else if e.is_builder() {
            Error::InvalidUrl {
                url: redact(url),
                reason: e.to_string(),
            }
        } else {
            Error::Network {
                url: shown,
                source: Box::new(e),
            }
        }
    }
}

/// A server's text as an error shows it: at most its first 200 characters, then how long it
/// was (a `Location` or a challenge's parameter can be as long as the header limit allows).
pub(crate) fn shortened(text: &str) -> String {
    const SHOWN: usize = 200;
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}... ({} bytes)", &text[..cut], text.len()),
        None => text.to_string(),
    }
}

/// The URL as it may be printed or logged: any user name and password replaced by `***`.
pub(crate) fn redact(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut u = url.clone();
    // Only URLs that can carry credentials have them; these setters cannot fail there.
    let _ = u.set_password(None);
    let _ = u.set_username("***");
    u.to_string()
}

/// [`redact`] for a URL string that may not even parse: whatever sits between `://` and the
/// last `@` of the authority is replaced by `***`.
pub(crate) fn redact_str(raw: &str) -> String {
    let Some(start) = raw.find("://").map(|i| i + 3) else {
        return raw.to_string();
    };
    let end = raw[start..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |i| start + i);
    match raw[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &raw[start + at..]),
        None => raw.to_string(),
    }
}

/// Every error of a chain, looking inside `io::Error`s too (their `source()` skips the error
/// they wrap, which is where rustls and hyper put theirs).
fn chain<'a>(
    top: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut cur = Some(top);
    while let Some(e) = cur {
        out.push(e);
        if out.len() > 32 {
            break;
        }
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    out
}

/// The causes of `source` as one text, each said once: a cause whose text an outer one already
/// contains is left out, and so are the HTTP client's wrappers ("error sending request",
/// "client error (Connect)") when they have a cause.
pub(crate) fn cause_text(source: &(dyn std::error::Error + 'static)) -> String {
    let errors = chain(source);
    let mut parts: Vec<String> = Vec::new();
    for (i, e) in errors.iter().enumerate() {
        let text = e.to_string();
        let is_wrapper = (e.is::<reqwest::Error>() || e.is::<hyper_util::client::legacy::Error>())
            && i + 1 < errors.len();
        if text.is_empty() || is_wrapper || parts.iter().any(|p| p.contains(&text)) {
            continue;
        }
        // An inner text that contains an outer one replaces it ("tcp connect error: refused"
        // says all that "client error (Connect)" said and more).
        parts.retain(|p| !text.contains(p.as_str()));
        parts.push(text);
    }
    parts.join(": ")
}

/// A server's protocol violation somewhere in the chain: a status line, header or chunk that
/// does not parse. `None` for network failures (reset, refused, closed early).
fn protocol_violation(e: &reqwest::Error) -> Option<String> {
    let errors = chain(e);
    for (i, x) in errors.iter().enumerate() {
        if let Some(h) = x.downcast_ref::<hyper::Error>() {
            if h.is_parse() || h.is_parse_status() {
                return Some(cause_text(*x));
            }
        }
        // A body that does not decode (a bad chunk size line, a gzip body that is not gzip):
        // an I/O error of kind InvalidData or InvalidInput under the body error.
        if i > 0
            && !e.is_connect()
            && x.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
                )
            })
        {
            return Some(cause_text(errors[i.saturating_sub(1)]));
        }
    }
    None
}

/// True when a TLS handshake met something that is not TLS (a plain-http server's answer).
fn not_tls(e: &reqwest::Error) -> bool {
    chain(e).iter().any(|x| {
        matches!(
            x.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))
        )
    })
}

impl From<std::io::Error> for Error {
    /// Recovers a weft-fetch error carried inside an `io::Error` (as returned by the
    /// `AsyncRead` implementation of [`Response`]); other I/O errors become [`Error::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Error, ErrorKind};
    ///
    /// let io: std::io::Error = Error::ContentTooShort { expected: 9, got: 4 }.into();
    /// assert!(matches!(Error::from(io), Error::ContentTooShort { expected: 9, got: 4 }));
    ///
    /// let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    /// assert_eq!(Error::from(other).kind(), ErrorKind::Io);
    /// ```
    fn from(e: std::io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            match e.into_inner().map(|inner| inner.downcast::<Error>()) {
                Some(Ok(err)) => return *err,
                Some(Err(other)) => return Error::io(None, std::io::Error::other(other)),
                None => return Error::io(None, std::io::Error::other("unknown I/O error")),
            }
        }
        Error::io(None, e)
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Timeout { .. } => std::io::ErrorKind::TimedOut,
            Error::ContentTooShort { .. } => std::io::ErrorKind::UnexpectedEof,
            Error::Io { source, .. } => source.kind(),
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}
