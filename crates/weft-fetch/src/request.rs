//! Requests: URL, method, headers, body.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;

use crate::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use crate::response::parse_header_line;
use crate::{Error, Method, Url};

/// A request: a URL plus an optional method, headers, body and timeout (urllib's `Request`).
///
/// A body without an explicit method makes a `POST` with
/// `Content-Type: application/x-www-form-urlencoded` (unless you set another), as urllib does.
///
/// ```
/// use weft_fetch::{Method, Request};
/// let req = Request::new("http://127.0.0.1:8000/form")?
///     .header_line("X-Trace: 1")?
///     .body("a=1&b=2");
/// assert_eq!(req.get_method(), Method::POST);
/// assert_eq!(req.headers()["x-trace"], "1");
/// # Ok::<(), weft_fetch::Error>(())
/// ```
#[derive(Debug, Clone)]
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
            url: raw.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self::from_url(url))
    }

    /// A request for an already parsed URL.
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
    pub fn method(mut self, method: impl AsRef<str>) -> Self {
        match Method::from_bytes(method.as_ref().to_ascii_uppercase().as_bytes()) {
            Ok(m) => self.method = Some(m),
            Err(_) => tracing::warn!(method = method.as_ref(), "invalid HTTP method ignored"),
        }
        self
    }

    /// Adds a header (replacing one of the same name).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Adds a header from a `"Name: value"` line, as curl's `-H`.
    pub fn header_line(self, line: &str) -> Result<Self, Error> {
        let (name, value) = parse_header_line(line)?;
        Ok(self.header(name, value))
    }

    /// Adds a header that is not copied to a redirected request (urllib's
    /// `add_unredirected_header`).
    pub fn unredirected_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.unredirected.insert(name, value);
        self
    }

    /// Sets the body. Without an explicit method this makes a `POST`.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sends pre-emptive Basic credentials with this request (never after a redirect).
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        let value = basic_value(user, password);
        self.unredirected_header(AUTHORIZATION, value)
    }

    /// A total deadline for this request, body included (overrides the opener's).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The method that will be used: the explicit one, else `POST` with a body, else `GET`.
    pub fn get_method(&self) -> Method {
        match (&self.method, &self.body) {
            (Some(m), _) => m.clone(),
            (None, Some(_)) => Method::POST,
            (None, None) => Method::GET,
        }
    }

    /// The headers (without the unredirected ones).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body, if any.
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
pub trait IntoRequest {
    /// Converts, parsing the URL if needed.
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
