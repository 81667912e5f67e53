//! Requests: URL, method, headers, body.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;

use crate::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use crate::response::parse_header_line;
use crate::{Error, Method, Url};

/// A request: a URL plus an optional method, headers, body and timeout (urllib's `Request`).
///
/// A body without an explicit method makes a `POST` with
/// `Content-Type: application/x-www-form-urlencoded` (unless you set another), as urllib does.
///
/// # Examples
///
/// ```
/// use weft_fetch::{Method, Request};
///
/// let req = Request::new("http://127.0.0.1:8000/form")?
///     .header_line("X-Trace: 1")?
///     .body("a=1&b=2");
/// assert_eq!(req.get_method(), Method::POST);
/// assert_eq!(req.headers()["x-trace"], "1");
/// # Ok::<(), weft_fetch::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Request {
    pub(crate) url: Url,
    pub(crate) method: Option<Method>,
    pub(crate) headers: HeaderMap,
    pub(crate) unredirected: HeaderMap,
    pub(crate) body: Option<Bytes>,
    pub(crate) timeout: Option<Duration>,
}

impl Request {
    /// Parses the URL. A URL without a scheme is an [`Error::InvalidUrl`]; `<URL:...>` wrapping
    /// and surrounding spaces are removed, as urllib does.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] when the URL does not parse.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Error, Request};
    ///
    /// let req = Request::new(" <URL:http://example.com/a b> ")?;
    /// assert_eq!(req.url().as_str(), "http://example.com/a%20b");
    ///
    /// let err = Request::new("example.com/index.html").unwrap_err();
    /// assert!(matches!(err, Error::InvalidUrl { .. }));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(url: impl AsRef<str>) -> Result<Request, Error> {
        let raw = url.as_ref();
        let mut s = raw.trim();
        if let Some(inner) = s.strip_prefix('<').and_then(|x| x.strip_suffix('>')) {
            s = inner.trim();
        }
        if let Some(inner) = s.strip_prefix("URL:") {
            s = inner.trim();
        }
        let url = Url::parse(s).map_err(|e| Error::InvalidUrl {
            url: crate::error::redact_str(raw),
            reason: e.to_string(),
        })?;
        Ok(Self::from_url(url))
    }

    /// A request for an already parsed URL.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Method, Request, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let base = Url::parse("http://example.com/docs/")?;
    /// let req = Request::from_url(base.join("intro.html")?);
    /// assert_eq!(req.url().as_str(), "http://example.com/docs/intro.html");
    /// assert_eq!(req.get_method(), Method::GET);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_url(url: Url) -> Request {
        Request {
            url,
            method: None,
            headers: HeaderMap::new(),
            unredirected: HeaderMap::new(),
            body: None,
            timeout: None,
        }
    }

    /// Sets the method (`"GET"`, `"PUT"`...). An invalid name is kept as an extension method
    /// when it is a valid token, otherwise ignored with a warning.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Method, Request};
    ///
    /// let req = Request::new("http://example.com/item/7")?.method("delete");
    /// assert_eq!(req.get_method(), Method::DELETE);
    ///
    /// let req = Request::new("http://example.com/")?.method("PURGE");
    /// assert_eq!(req.get_method().as_str(), "PURGE");
    ///
    /// let req = Request::new("http://example.com/")?.method("NOT A TOKEN");
    /// assert_eq!(req.get_method(), Method::GET);
    /// # Ok::<(), weft_fetch::Error>(())
    /// ```
    pub fn method(mut self, method: impl AsRef<str>) -> Self {
        match Method::from_bytes(method.as_ref().to_ascii_uppercase().as_bytes()) {
            Ok(m) => self.method = Some(m),
            Err(_) => tracing::warn!(method = method.as_ref(), "invalid HTTP method ignored"),
        }
        self
    }

    /// Adds a header (replacing one of the same name).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::header::{HeaderValue, ACCEPT};
    /// use weft_fetch::Request;
    ///
    /// let req = Request::new("http://example.com/")?
    ///     .header(ACCEPT, HeaderValue::from_static("text/html"))
    ///     .header(ACCEPT, HeaderValue::from_static("application/json"));
    /// assert_eq!(req.headers()[ACCEPT], "application/json");
    /// # Ok::<(), weft_fetch::Error>(())
    /// ```
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Adds a header from a `"Name: value"` line, as curl's `-H`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHeader`] when the line has no `:`, or the name or value is invalid.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Error, Request};
    ///
    /// let req = Request::new("http://example.com/")?.header_line("Accept-Language:  fr, en")?;
    /// assert_eq!(req.headers()["accept-language"], "fr, en");
    ///
    /// let err = Request::new("http://example.com/")?.header_line("no colon").unwrap_err();
    /// assert!(matches!(err, Error::InvalidHeader(_)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn header_line(self, line: &str) -> Result<Self, Error> {
        let (name, value) = parse_header_line(line)?;
        Ok(self.header(name, value))
    }

    /// Adds a header that is not copied to a redirected request (urllib's
    /// `add_unredirected_header`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::header::{HeaderValue, AUTHORIZATION};
    /// use weft_fetch::Request;
    ///
    /// let req = Request::new("http://example.com/private")?
    ///     .unredirected_header(AUTHORIZATION, HeaderValue::from_static("Bearer t0k3n"));
    /// // Kept apart from the ordinary headers: sent on the first hop only.
    /// assert!(req.headers().get(AUTHORIZATION).is_none());
    /// # Ok::<(), weft_fetch::Error>(())
    /// ```
    pub fn unredirected_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.unredirected.insert(name, value);
        self
    }

    /// Sets the body. Without an explicit method this makes a `POST`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Method, Request};
    ///
    /// let post = Request::new("http://example.com/form")?.body("name=weft");
    /// assert_eq!(post.get_method(), Method::POST);
    ///
    /// let put = Request::new("http://example.com/doc")?.method("PUT").body(vec![1u8, 2, 3]);
    /// assert_eq!(put.get_method(), Method::PUT);
    /// assert_eq!(put.get_body().map(|b| b.len()), Some(3));
    /// # Ok::<(), weft_fetch::Error>(())
    /// ```
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sends pre-emptive Basic credentials with this request (never after a redirect).
    ///
    /// The `Authorization` header is an [unredirected](Self::unredirected_header) one, so it
    /// does not show in [`headers`](Self::headers).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Request;
    ///
    /// let req = Request::new("http://127.0.0.1:8080/admin")?.basic_auth("joe", "s3cret");
    /// assert!(req.headers().is_empty());
    /// # Ok::<(), weft_fetch::Error>(())
    /// ```
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        let value = basic_value(user, password);
        self.unredirected_header(AUTHORIZATION, value)
    }

    /// A total deadline for this request, body included (overrides the opener's).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use weft_fetch::Request;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let req = Request::new("data:,quick")?.timeout(Duration::from_secs(5));
    /// let mut resp = weft_fetch::urlopen(req).await?;
    /// assert_eq!(resp.text().await?, "quick");
    /// # Ok(())
    /// # }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The URL.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = weft_fetch::Request::new("HTTP://Example.COM:80/a/./b")?;
    /// assert_eq!(req.url().as_str(), "http://example.com/a/b");
    /// assert_eq!(req.url().host_str(), Some("example.com"));
    /// # Ok::<(), weft_fetch::Error>(())
    /// ```
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The method that will be used: the explicit one, else `POST` with a body, else `GET`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Method, Request};
    ///
    /// let req = Request::new("http://example.com/")?;
    /// assert_eq!(req.get_method(), Method::GET);
    /// let req = req.body("x=1");
    /// assert_eq!(req.get_method(), Method::POST);
    /// let req = req.method("PATCH");
    /// assert_eq!(req.get_method(), Method::PATCH);
    /// # Ok::<(), weft_fetch::Error>(())
    /// ```
    pub fn get_method(&self) -> Method {
        match (&self.method, &self.body) {
            (Some(m), _) => m.clone(),
            (None, Some(_)) => Method::POST,
            (None, None) => Method::GET,
        }
    }

    /// The headers (without the unredirected ones).
    ///
    /// The opener's default headers (`User-Agent`...) are added when the request is sent and
    /// do not appear here.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Request;
    ///
    /// let req = Request::new("http://example.com/")?
    ///     .header_line("X-Request-Id: 17")?
    ///     .header_line("Accept: */*")?;
    /// assert_eq!(req.headers().len(), 2);
    /// assert_eq!(req.headers()["x-request-id"], "17");
    /// # Ok::<(), weft_fetch::Error>(())
    /// ```
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Request;
    ///
    /// let req = Request::new("http://example.com/")?;
    /// assert!(req.get_body().is_none());
    /// let req = req.body(String::from("{\"id\": 1}"));
    /// assert_eq!(req.get_body().map(|b| &b[..]), Some(&b"{\"id\": 1}"[..]));
    /// # Ok::<(), weft_fetch::Error>(())
    /// ```
    pub fn get_body(&self) -> Option<&Bytes> {
        self.body.as_ref()
    }

    /// Headers as sent to the server: default headers, then the request's own, then (on the
    /// first hop only) the unredirected ones, plus the form content type for a body.
    pub(crate) fn effective_headers(&self, defaults: &HeaderMap, unredirected: bool) -> HeaderMap {
        let mut h = defaults.clone();
        for (k, v) in self.headers.iter() {
            h.insert(k.clone(), v.clone());
        }
        if unredirected {
            for (k, v) in self.unredirected.iter() {
                h.insert(k.clone(), v.clone());
            }
        }
        if self.body.is_some() && !h.contains_key(CONTENT_TYPE) {
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        h
    }
}

pub(crate) fn basic_value(user: &str, password: &str) -> HeaderValue {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"))
}

/// Anything that can be turned into a [`Request`]: `&str`, `String`, [`Url`], [`Request`].
///
/// # Examples
///
/// A function that accepts any of them, as [`urlopen`](crate::urlopen) does:
///
/// ```
/// use weft_fetch::{IntoRequest, Request, Url};
///
/// async fn fetch_text(request: impl IntoRequest) -> Result<String, weft_fetch::Error> {
///     weft_fetch::urlopen(request).await?.text().await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// assert_eq!(fetch_text("data:,a").await?, "a");
/// assert_eq!(fetch_text(String::from("data:,b")).await?, "b");
/// assert_eq!(fetch_text(Url::parse("data:,c")?).await?, "c");
/// assert_eq!(fetch_text(Request::new("data:,d")?).await?, "d");
/// # Ok(())
/// # }
/// ```
pub trait IntoRequest {
    /// Converts, parsing the URL if needed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] when a string does not parse as a URL.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::IntoRequest;
    ///
    /// let req = "http://example.com/".into_request()?;
    /// assert_eq!(req.url().path(), "/");
    /// assert!("not a url".into_request().is_err());
    /// # Ok::<(), weft_fetch::Error>(())
    /// ```
    fn into_request(self) -> Result<Request, Error>;
}

impl IntoRequest for Request {
    fn into_request(self) -> Result<Request, Error> {
        Ok(self)
    }
}

impl IntoRequest for &str {
    fn into_request(self) -> Result<Request, Error> {
        Request::new(self)
    }
}

impl IntoRequest for String {
    fn into_request(self) -> Result<Request, Error> {
        Request::new(self)
    }
}

impl IntoRequest for &String {
    fn into_request(self) -> Result<Request, Error> {
        Request::new(self)
    }
}

impl IntoRequest for Url {
    fn into_request(self) -> Result<Request, Error> {
        Ok(Request::from_url(self))
    }
}

impl IntoRequest for &Url {
    fn into_request(self) -> Result<Request, Error> {
        Ok(Request::from_url(self.clone()))
    }
}
