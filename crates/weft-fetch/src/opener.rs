//! Openers: urllib2's `build_opener` / `OpenerDirector`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Once, RwLock};
use std::time::Duration;

use crate::auth::{
    Challenge, PasswordManager, any_stale, authorization_for, origin_form, parse_challenges,
    parse_challenges_in,
};
use crate::cookies::CookieJar;
use crate::error::{redact, shortened};
use crate::handler::{DataHandler, FileHandler, SchemeHandler};
use crate::header::{
    ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE,
    HOST, HeaderMap, HeaderName, HeaderValue, LOCATION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION,
    TRANSFER_ENCODING, USER_AGENT,
};
use crate::request::{IntoRequest, basic_value};
use crate::response::{Coding, decoded_stream, http_body_stream, parse_header_line};
use crate::{Error, Method, Request, Response, StatusCode, Url};

/// The default `User-Agent`: `weft-fetch/VERSION`.
///
/// # Examples
///
/// ```
/// use weft_fetch::{Opener, DEFAULT_USER_AGENT};
///
/// # fn main() -> Result<(), weft_fetch::Error> {
/// assert!(DEFAULT_USER_AGENT.starts_with("weft-fetch/"));
/// let opener = Opener::builder()
///     .user_agent(&format!("my-tool/1.0 {DEFAULT_USER_AGENT}"))
///     .build()?;
/// assert!(format!("{opener:?}").contains("my-tool/1.0 weft-fetch/"));
/// # Ok(())
/// # }
/// ```
pub const DEFAULT_USER_AGENT: &str = concat!("weft-fetch/", env!("CARGO_PKG_VERSION"));

/// Default connect timeout.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use weft_fetch::{Opener, DEFAULT_CONNECT_TIMEOUT};
///
/// # fn main() -> Result<(), weft_fetch::Error> {
/// assert_eq!(DEFAULT_CONNECT_TIMEOUT, Duration::from_secs(30));
/// // A slow link: twice the default.
/// let opener = Opener::builder().connect_timeout(DEFAULT_CONNECT_TIMEOUT * 2).build()?;
/// assert!(format!("{opener:?}").contains("connect_timeout: Some(60s)"));
/// # Ok(())
/// # }
/// ```
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default stall timeout: the longest wait for any single read.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use weft_fetch::{Opener, DEFAULT_READ_TIMEOUT};
///
/// # fn main() -> Result<(), weft_fetch::Error> {
/// assert_eq!(DEFAULT_READ_TIMEOUT, Duration::from_secs(120));
/// let opener = Opener::builder().read_timeout(DEFAULT_READ_TIMEOUT / 4).build()?;
/// assert!(format!("{opener:?}").contains("read_timeout: Some(30s)"));
/// # Ok(())
/// # }
/// ```
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);

fn ensure_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err means another thread installed one first: fine either way.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

/// Opens URLs with a fixed configuration: default headers, timeouts, redirect policy, proxies,
/// credentials, cookies and scheme handlers. Cheap to clone (shared inside).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use weft_fetch::Opener;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let opener = Opener::builder()
///     .header_line("X-Client: demo")
///     .read_timeout(Duration::from_secs(10))
///     .max_redirects(5)
///     .build()?;
/// let mut r = opener.open("data:,hello").await?;
/// assert_eq!(r.read_to_end().await?, b"hello");
///
/// // Clones share everything, cookies and learned credentials included.
/// let worker = opener.clone();
/// tokio::spawn(async move { worker.open("data:,from%20a%20task").await?.text().await })
///     .await
///     .expect("task panicked")?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Opener {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    client: reqwest::Client,
    headers: HeaderMap,
    handlers: HashMap<String, Arc<dyn SchemeHandler>>,
    passwords: RwLock<PasswordManager>,
    /// Credentials for 407 challenges of the proxy, and the proxy they are looked up under.
    proxy_passwords: PasswordManager,
    proxy_url: Option<Url>,
    /// Basic credentials that succeeded, by URL directory: sent up front next time
    /// (urllib's `HTTPPasswordMgrWithPriorAuth`).
    prior_auth: RwLock<Vec<(String, HeaderValue)>>,
    cookies: Option<Arc<CookieJar>>,
    on_exchange: Option<ExchangeHook>,
    settings: Settings,
}

/// An opener's settings: what the builder sets, the opener follows, and `Debug` shows (never a
/// password: credentials are counted, proxies redacted).
#[derive(Debug, Clone)]
struct Settings {
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    timeout: Option<Duration>,
    follow_redirects: bool,
    max_redirects: usize,
    max_repeats: usize,
    #[expect(dead_code, reason = "filled by build() to be shown by Debug")]
    proxies: Vec<String>,
    env_proxies: bool,
    #[expect(dead_code, reason = "filled by build() to be shown by Debug")]
    credentials: usize,
    #[expect(dead_code, reason = "filled by build() to be shown by Debug")]
    proxy_credentials: usize,
    preemptive_basic: bool,
    #[expect(dead_code, reason = "filled by build() to be shown by Debug")]
    extra_root_certificates: usize,
    keep_alive: bool,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut schemes: Vec<&String> = self.inner.handlers.keys().collect();
        schemes.sort();
        f.debug_struct("Opener")
            .field("headers", &self.inner.headers)
            .field("schemes", &schemes)
            .field("cookies", &self.inner.cookies.is_some())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// One HTTP request and the head of its answer, as given to the
/// [`on_exchange`](OpenerBuilder::on_exchange) callback: one per request sent, so a redirect or
/// an authentication retry makes several (what `curl -v` prints).
///
/// # Examples
///
/// ```
/// use weft_fetch::{Exchange, Method, StatusCode, Url, Version};
/// use weft_fetch::header::{HeaderMap, HeaderValue, HOST};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut sent = HeaderMap::new();
/// sent.insert(HOST, HeaderValue::from_static("example.com"));
/// let ex = Exchange::new(
///     Method::GET,
///     Url::parse("http://example.com/a?b")?,
///     sent,
///     Version::HTTP_11,
///     StatusCode::OK,
///     HeaderMap::new(),
/// );
/// assert_eq!(ex.request_line(), "GET /a?b HTTP/1.1");
/// assert_eq!(ex.status_line(), "HTTP/1.1 200 OK");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Exchange {
    /// The method sent.
    pub method: Method,
    /// The URL requested.
    pub url: Url,
    /// The headers sent, `Host` first (the HTTP client adds `Host` itself, and `Accept: */*`
    /// when none is set: both are shown here as they go out).
    pub request_headers: HeaderMap,
    /// The version of the answer (the request used the same).
    pub version: crate::Version,
    /// The status of the answer.
    pub status: StatusCode,
    /// The headers of the answer.
    pub response_headers: HeaderMap,
}

impl Exchange {
    /// An exchange from its parts (for tests of a callback).
    pub fn new(
        method: Method,
        url: Url,
        request_headers: HeaderMap,
        version: crate::Version,
        status: StatusCode,
        response_headers: HeaderMap,
    ) -> Exchange {
        Exchange {
            method,
            url,
            request_headers,
            version,
            status,
            response_headers,
        }
    }

    /// `GET /path?query HTTP/1.1`.
    pub fn request_line(&self) -> String {
        format!(
            "{} {} {:?}",
            self.method,
            origin_form(&self.url),
            self.version
        )
    }

    /// `HTTP/1.1 200 OK`.
    pub fn status_line(&self) -> String {
        status_line(self.version, self.status)
    }
}

/// `HTTP/1.1 200 OK` (the reason is the standard one: the client does not keep the server's).
pub(crate) fn status_line(version: crate::Version, status: StatusCode) -> String {
    format!(
        "{version:?} {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim_end()
    .to_string()
}

/// The callback of [`OpenerBuilder::on_exchange`].
type ExchangeHook = Arc<dyn Fn(&Exchange) + Send + Sync>;

/// Configures an [`Opener`]; see [`Opener::builder`].
///
/// Every setting has a default (urllib's, plus weft's fixes), so only what differs needs a
/// call; [`build`](Self::build) reports the first invalid setting.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use weft_fetch::Opener;
///
/// # fn main() -> Result<(), weft_fetch::Error> {
/// let opener = Opener::builder()
///     .user_agent("crawler/2.0")
///     .connect_timeout(Duration::from_secs(5))
///     .max_redirects(3)
///     .cookie_store(true)
///     .build()?;
/// assert!(opener.cookie_jar().is_some());
///
/// let err = Opener::builder().header_line("not a header").build().unwrap_err();
/// assert!(matches!(err, weft_fetch::Error::InvalidHeader(_)));
/// # Ok(())
/// # }
/// ```
#[must_use = "an OpenerBuilder does nothing until .build()"]
pub struct OpenerBuilder {
    settings: Settings,
    headers: HeaderMap,
    handlers: HashMap<String, Arc<dyn SchemeHandler>>,
    proxies: Vec<String>,
    passwords: PasswordManager,
    proxy_passwords: PasswordManager,
    cookies: Option<Arc<CookieJar>>,
    root_certs: Vec<Vec<u8>>,
    on_exchange: Option<ExchangeHook>,
    error: Option<Error>,
}

impl fmt::Debug for OpenerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenerBuilder")
            .field("headers", &self.headers)
            .field("max_redirects", &self.settings.max_redirects)
            .field("proxies", &redacted(&self.proxies))
            .finish_non_exhaustive()
    }
}

impl Default for OpenerBuilder {
    fn default() -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static(DEFAULT_USER_AGENT));
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        let mut handlers: HashMap<String, Arc<dyn SchemeHandler>> = HashMap::new();
        handlers.insert("file".into(), Arc::new(FileHandler));
        handlers.insert("data".into(), Arc::new(DataHandler));
        OpenerBuilder {
            settings: Settings {
                connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
                read_timeout: Some(DEFAULT_READ_TIMEOUT),
                timeout: None,
                follow_redirects: true,
                max_redirects: 10,
                max_repeats: 4,
                proxies: Vec::new(),
                env_proxies: true,
                credentials: 0,
                proxy_credentials: 0,
                preemptive_basic: false,
                extra_root_certificates: 0,
                keep_alive: true,
            },
            headers,
            handlers,
            proxies: Vec::new(),
            passwords: PasswordManager::new(),
            proxy_passwords: PasswordManager::new(),
            cookies: None,
            root_certs: Vec::new(),
            on_exchange: None,
            error: None,
        }
    }
}

impl OpenerBuilder {
    /// Sets a default header sent with every request (a request's own header wins).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::header::{HeaderValue, ACCEPT_LANGUAGE};
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder()
    ///     .header(ACCEPT_LANGUAGE, HeaderValue::from_static("de, en;q=0.5"))
    ///     .build()?;
    /// assert!(format!("{opener:?}").contains("de, en;q=0.5"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Sets a default header from a `"Name: value"` line; a malformed line makes
    /// [`build`](Self::build) fail with [`Error::InvalidHeader`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Error, Opener};
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().header_line("X-Api-Key: 1234").build()?;
    /// assert!(format!("{opener:?}").contains(r#""x-api-key": "1234""#));
    ///
    /// let err = Opener::builder().header_line("X-Api-Key 1234").build().unwrap_err();
    /// assert!(matches!(err, Error::InvalidHeader(_)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn header_line(mut self, line: &str) -> Self {
        match parse_header_line(line) {
            Ok((k, v)) => {
                self.headers.insert(k, v);
            }
            Err(e) => self.error = Some(e),
        }
        self
    }

    /// Removes a default header (for example `Accept-Encoding`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::header::ACCEPT_ENCODING;
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().remove_header(ACCEPT_ENCODING).build()?;
    /// assert!(!format!("{opener:?}").contains("accept-encoding"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn remove_header(mut self, name: HeaderName) -> Self {
        self.headers.remove(name);
        self
    }

    /// Sets the `User-Agent`.
    ///
    /// A value that is not a valid header value makes [`build`](Self::build) fail with
    /// [`Error::InvalidHeader`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Error, Opener};
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().user_agent("Mozilla/5.0 (compatible; weft)").build()?;
    /// assert!(format!("{opener:?}").contains("Mozilla/5.0 (compatible; weft)"));
    ///
    /// let err = Opener::builder().user_agent("bad\nagent").build().unwrap_err();
    /// assert!(matches!(err, Error::InvalidHeader(_)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn user_agent(self, ua: &str) -> Self {
        match HeaderValue::from_str(ua) {
            Ok(v) => self.header(USER_AGENT, v),
            Err(_) => {
                let mut s = self;
                s.error = Some(Error::InvalidHeader(format!("User-Agent: {ua}")));
                s
            }
        }
    }

    /// Timeout for establishing a connection (default 30 s; `None`: none).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let quick = Opener::builder().connect_timeout(Duration::from_secs(3)).build()?;
    /// assert!(format!("{quick:?}").contains("connect_timeout: Some(3s)"));
    /// let patient = Opener::builder().connect_timeout(None).build()?;
    /// assert!(format!("{patient:?}").contains("connect_timeout: None"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect_timeout(mut self, t: impl Into<Option<Duration>>) -> Self {
        self.settings.connect_timeout = t.into();
        self
    }

    /// Stall timeout: the longest wait for the response or for any single read of the body
    /// (default 120 s; `None`: none). Large downloads are never killed while data flows.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().read_timeout(Duration::from_secs(15)).build()?;
    /// assert!(format!("{opener:?}").contains("read_timeout: Some(15s)"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_timeout(mut self, t: impl Into<Option<Duration>>) -> Self {
        self.settings.read_timeout = t.into();
        self
    }

    /// A total deadline per request, body included. Off by default: it kills large downloads.
    ///
    /// A [`Request::timeout`] overrides it for one request.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use weft_fetch::{Opener, Request};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().timeout(Duration::from_secs(60)).build()?;
    /// // One request may take longer.
    /// let req = Request::new("data:,big")?.timeout(Duration::from_secs(600));
    /// assert_eq!(opener.open(req).await?.text().await?, "big");
    /// # Ok(())
    /// # }
    /// ```
    pub fn timeout(mut self, t: impl Into<Option<Duration>>) -> Self {
        self.settings.timeout = t.into();
        self
    }

    /// Whether to follow redirects (default true). When false, a 3xx is returned as is.
    ///
    /// Useful to inspect a `Location` header yourself:
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use weft_fetch::{header::LOCATION, Opener};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().follow_redirects(false).build()?;
    /// let resp = opener.open("http://127.0.0.1:8000/old-page").await?;
    /// if resp.status().is_redirection() {
    ///     assert!(resp.headers().contains_key(LOCATION));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.settings.follow_redirects = follow;
        self
    }

    /// The most redirects followed for one request (default 10, as urllib).
    ///
    /// One more is [`Error::TooManyRedirects`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().max_redirects(2).build()?;
    /// assert!(format!("{opener:?}").contains("max_redirects: 2"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_redirects(mut self, n: usize) -> Self {
        self.settings.max_redirects = n;
        self
    }

    /// How often a redirect may lead to the same URL before it is a
    /// [`Error::RedirectLoop`] (default 4, as urllib).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// // Some login flows bounce through the same URL a few times: allow up to 8 visits.
    /// let opener = Opener::builder().max_repeats(8).max_redirects(20).build()?;
    /// assert!(format!("{opener:?}").contains("max_repeats: 8"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_repeats(mut self, n: usize) -> Self {
        self.settings.max_repeats = n;
        self
    }

    /// Sends every http and https request through this proxy (`http://[user:pass@]host:port`).
    ///
    /// `file:`, `data:` and custom schemes never go through the proxy.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Opener;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().proxy("http://user:pass@127.0.0.1:3128").build()?;
    /// // Shown without its password:
    /// assert!(format!("{opener:?}").contains(r#"proxies: ["http://***@127.0.0.1:3128"]"#));
    /// // Not proxied:
    /// assert_eq!(opener.open("data:,local").await?.text().await?, "local");
    /// # Ok(())
    /// # }
    /// ```
    pub fn proxy(mut self, url: &str) -> Self {
        self.proxies.push(url.to_string());
        self
    }

    /// Whether to use the `http_proxy`, `https_proxy`, `all_proxy` and `no_proxy` environment
    /// variables (default true).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// // Ignore http_proxy and friends, for example for a loopback test server.
    /// let opener = Opener::builder().env_proxies(false).build()?;
    /// assert!(format!("{opener:?}").contains("env_proxies: false"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn env_proxies(mut self, on: bool) -> Self {
        self.settings.env_proxies = on;
        self
    }

    /// Uses this password manager for 401 challenges.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Opener, PasswordManager};
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let mut pm = PasswordManager::new();
    /// pm.add(Some("intranet"), "https://wiki.example.com/", "joe", "s3cret");
    /// pm.add(None, "https://ci.example.com/", "bot", "t0ken");
    /// let opener = Opener::builder().password_manager(pm).build()?;
    /// assert!(format!("{opener:?}").contains("credentials: 2"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn password_manager(mut self, pm: PasswordManager) -> Self {
        self.passwords = pm;
        self
    }

    /// Adds credentials for `realm` (`None`: any realm) under the URL prefix `uri`.
    ///
    /// They answer Basic and Digest challenges (see [`PasswordManager::add`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder()
    ///     .add_password(Some("Private"), "http://127.0.0.1:8080/private/", "joe", "s3cret")
    ///     .build()?;
    /// assert!(format!("{opener:?}").contains("credentials: 1"));
    /// assert!(!format!("{opener:?}").contains("s3cret"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_password(
        mut self,
        realm: Option<&str>,
        uri: &str,
        user: &str,
        password: &str,
    ) -> Self {
        self.passwords.add(realm, uri, user, password);
        self
    }

    /// Adds credentials for the proxy's 407 challenges (urllib's `ProxyBasicAuthHandler` and
    /// `ProxyDigestAuthHandler`): `realm` as for [`add_password`](Self::add_password), `uri`
    /// the proxy's URL (any URL matches when no [`proxy`](Self::proxy) is set, e.g. with
    /// `http_proxy`).
    ///
    /// They answer Basic and Digest challenges on plain-http requests, which a proxy sees
    /// whole. An https request reaches its server through a `CONNECT` tunnel that reqwest
    /// opens itself: for that, put the credentials in the proxy URL
    /// (`http://user:pass@host:port`), which sends them as Basic up front.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder()
    ///     .proxy("http://127.0.0.1:3128")
    ///     .add_proxy_password(Some("squid"), "http://127.0.0.1:3128", "joe", "s3cret")
    ///     .build()?;
    /// assert!(format!("{opener:?}").contains("proxy_credentials: 1"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_proxy_password(
        mut self,
        realm: Option<&str>,
        uri: &str,
        user: &str,
        password: &str,
    ) -> Self {
        self.proxy_passwords.add(realm, uri, user, password);
        self
    }

    /// Credentials for any realm, used only on the host of the original request (curl's `-u`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().credentials("joe", "s3cret").build()?;
    /// assert!(format!("{opener:?}").contains("credentials: 1"));
    /// assert!(!format!("{opener:?}").contains("s3cret"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn credentials(mut self, user: &str, password: &str) -> Self {
        self.passwords.add_default(user, password);
        self
    }

    /// Sends Basic credentials before any challenge (never to another scheme, host or port
    /// after a redirect).
    ///
    /// Saves a round trip with servers known to want Basic authentication.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder()
    ///     .credentials("deploy", "t0ken")
    ///     .preemptive_basic(true)
    ///     .build()?;
    /// assert!(format!("{opener:?}").contains("preemptive_basic: true"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn preemptive_basic(mut self, on: bool) -> Self {
        self.settings.preemptive_basic = on;
        self
    }

    /// Shares this cookie jar with every request of the opener.
    ///
    /// Keep an [`Arc`] of it to save the cookies later (or share one jar between openers).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use weft_fetch::{CookieJar, Opener};
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let dir = tempfile::tempdir()?;
    /// let jar = Arc::new(CookieJar::new());
    /// let opener = Opener::builder().cookie_jar(Arc::clone(&jar)).build()?;
    /// // Requests through `opener` fill the jar; it is the same jar:
    /// assert!(Arc::ptr_eq(opener.cookie_jar().expect("a jar"), &jar));
    /// jar.save(dir.path().join("cookies.txt"))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn cookie_jar(mut self, jar: Arc<CookieJar>) -> Self {
        self.cookies = Some(jar);
        self
    }

    /// Keeps cookies in a fresh in-memory jar (see [`Opener::cookie_jar`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().cookie_store(true).build()?;
    /// assert!(opener.cookie_jar().is_some());
    /// let opener = Opener::builder().cookie_store(false).build()?;
    /// assert!(opener.cookie_jar().is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn cookie_store(mut self, on: bool) -> Self {
        self.cookies = on.then(|| Arc::new(CookieJar::new()));
        self
    }

    /// Trusts this PEM certificate (in addition to the system roots).
    ///
    /// For a private CA or a self-signed test server. The data may hold several
    /// certificates (a bundle); data holding none, or a block that does not decode, makes
    /// [`build`](Self::build) fail with [`Error::Io`](crate::Error::Io) (`InvalidData`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    /// let opener = Opener::builder()
    ///     .add_root_certificate_pem(ca.cert.pem().as_bytes())
    ///     .build()?;
    /// assert!(format!("{opener:?}").contains("extra_root_certificates: 1"));
    ///
    /// // PEM data without a certificate is refused at build time, not silently ignored.
    /// assert!(Opener::builder().add_root_certificate_pem(b"junk").build().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_root_certificate_pem(mut self, pem: &[u8]) -> Self {
        self.root_certs.push(pem.to_vec());
        self
    }

    /// Whether to keep idle connections for reuse (default true).
    ///
    /// Turn it off when the opener outlives the tokio runtime it was first used on.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().keep_alive(false).build()?;
    /// assert!(format!("{opener:?}").contains("keep_alive: false"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.settings.keep_alive = on;
        self
    }

    /// Registers a handler for `scheme` (replacing any, including `file`, `data`, `http`).
    ///
    /// The scheme is matched case-insensitively. See [`SchemeHandler`] for writing one.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{header::HeaderMap, Error, Opener, Request, Response, StatusCode};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder()
    ///     // Refuse local files.
    ///     .handler("file", |req: Request| async move {
    ///         Err(Error::Auth { reason: format!("{} is off limits", req.url()) })
    ///     })
    ///     .handler("Upper", |req: Request| async move {
    ///         let body = req.url().path().to_uppercase();
    ///         Ok(Response::from_bytes(req.url().clone(), StatusCode::OK, HeaderMap::new(), body))
    ///     })
    ///     .build()?;
    /// assert_eq!(opener.open("upper:shout").await?.text().await?, "SHOUT");
    /// assert!(opener.open("file:///etc/hosts").await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn handler(mut self, scheme: &str, handler: impl SchemeHandler) -> Self {
        self.handlers
            .insert(scheme.to_ascii_lowercase(), Arc::new(handler));
        self
    }

    /// Calls `f` with every HTTP request sent and the head of its answer (each hop of a
    /// redirect, each authentication retry): what `curl -v` shows. Called before the body is
    /// read; a library logs nothing of it by itself.
    ///
    /// # Examples
    ///
    /// A `curl -v`-like trace on stderr (in a program; a library would log it):
    ///
    /// ```no_run
    /// use weft_fetch::Opener;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder()
    ///     .on_exchange(|ex| {
    ///         eprintln!("> {}", ex.request_line());
    ///         for (name, value) in &ex.request_headers {
    ///             eprintln!("> {name}: {}", String::from_utf8_lossy(value.as_bytes()));
    ///         }
    ///         eprintln!("< {}", ex.status_line());
    ///     })
    ///     .build()?;
    /// opener.open("http://127.0.0.1:8000/").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_exchange(mut self, f: impl Fn(&Exchange) + Send + Sync + 'static) -> Self {
        self.on_exchange = Some(Arc::new(f));
        self
    }

    /// Builds the opener.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHeader`] for a bad [`header_line`](Self::header_line) or
    /// [`user_agent`](Self::user_agent), [`Error::InvalidUrl`] for a bad [`proxy`](Self::proxy),
    /// [`Error::Network`] for a bad certificate or when the HTTP client cannot be set up.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Error, Opener};
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().build()?;
    /// assert!(format!("{opener:?}").contains(r#"schemes: ["data", "file"]"#));
    /// let err = Opener::builder().proxy("http://[::1").build().unwrap_err();
    /// assert!(matches!(err, Error::InvalidUrl { .. }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn build(self) -> Result<Opener, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        ensure_crypto_provider();
        let mut cb = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(30));
        if !self.settings.env_proxies {
            cb = cb.no_proxy();
        }
        if let Some(t) = self.settings.connect_timeout {
            cb = cb.connect_timeout(t);
        }
        if let Some(t) = self.settings.read_timeout {
            cb = cb.read_timeout(t);
        }
        if !self.settings.keep_alive {
            cb = cb.pool_max_idle_per_host(0);
        }
        for p in &self.proxies {
            let proxy = reqwest::Proxy::all(p.as_str()).map_err(|e| Error::InvalidUrl {
                url: p.clone(),
                reason: format!("bad proxy: {e}"),
            })?;
            cb = cb.proxy(proxy);
        }
        for pem in &self.root_certs {
            // `Certificate::from_pem` only copies the bytes under rustls (a junk PEM would be
            // accepted and trust nothing): parse the bundle here so a bad one fails `build`.
            let bad = |reason: String| Error::Io {
                path: None,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
            };
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| bad(format!("root certificate PEM does not parse: {e}")))?;
            if certs.is_empty() {
                return Err(bad(
                    "no CERTIFICATE block in the root certificate PEM".into()
                ));
            }
            for cert in certs {
                cb = cb.add_root_certificate(cert);
            }
        }
        let client = cb.build().map_err(|e| Error::Network {
            url: None,
            source: Box::new(e),
        })?;
        let settings = Settings {
            proxies: redacted(&self.proxies),
            credentials: self.passwords.len(),
            proxy_credentials: self.proxy_passwords.len(),
            extra_root_certificates: self.root_certs.len(),
            ..self.settings
        };
        Ok(Opener {
            inner: Arc::new(Inner {
                client,
                headers: self.headers,
                handlers: self.handlers,
                passwords: RwLock::new(self.passwords),
                proxy_passwords: self.proxy_passwords,
                proxy_url: self.proxies.first().and_then(|p| Url::parse(p).ok()),
                prior_auth: RwLock::new(Vec::new()),
                cookies: self.cookies,
                on_exchange: self.on_exchange,
                settings,
            }),
        })
    }
}

/// The credentials answering one kind of challenge (a server's 401 or a proxy's 407) during
/// one `open`: the header value to send, and how many challenges were answered.
#[derive(Default)]
struct Answer {
    value: Option<HeaderValue>,
    attempts: u32,
}

impl Answer {
    /// Answers `challenges` with what `build` makes of them: the first time, or again only
    /// when a Digest nonce went stale, and at most three times. True: send the request again.
    fn retry(
        &mut self,
        challenges: &[Challenge],
        build: impl FnOnce(&[Challenge]) -> Result<Option<HeaderValue>, Error>,
    ) -> Result<bool, Error> {
        if self.attempts >= 3 || (self.attempts > 0 && !any_stale(challenges)) {
            return Ok(false);
        }
        match build(challenges)? {
            Some(v) => {
                self.value = Some(v);
                self.attempts += 1;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Proxy URLs as they may be shown.
fn redacted(proxies: &[String]) -> Vec<String> {
    proxies
        .iter()
        .map(|p| crate::error::redact_str(p))
        .collect()
}

/// Same scheme, host and port: where credentials may follow a redirect (curl's rule, after
/// CVE-2022-27774/27776: https to http on the same host would send them in clear).
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme().eq_ignore_ascii_case(b.scheme())
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `scheme://host:port/dir/` of a URL: the scope where Basic credentials that worked are
/// sent again up front.
fn auth_scope(url: &Url) -> String {
    let path = url.path();
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    format!(
        "{}://{}:{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0),
        if dir.is_empty() { "/" } else { dir }
    )
}

/// The request headers as they go out: `Host` first and `Accept: */*` when none is set (the
/// HTTP client adds both), then the rest.
fn shown_headers(url: &Url, sent: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    };
    if let Ok(v) = HeaderValue::from_str(&host) {
        out.insert(HOST, v);
    }
    for (k, v) in sent {
        out.append(k.clone(), v.clone());
    }
    if !out.contains_key(ACCEPT) {
        out.insert(ACCEPT, HeaderValue::from_static("*/*"));
    }
    out
}

fn is_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

impl Opener {
    /// A builder with urllib's defaults plus weft's fixes.
    ///
    /// The defaults: `User-Agent: weft-fetch/VERSION` and `Accept-Encoding: identity`, a
    /// [connect timeout](DEFAULT_CONNECT_TIMEOUT) of 30 s and a
    /// [stall timeout](DEFAULT_READ_TIMEOUT) of 120 s, up to 10 redirects, proxies from the
    /// environment, no cookies, and handlers for `file:` and `data:` besides `http` and `https`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Opener;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().build()?;
    /// assert_eq!(opener.open("data:,defaults").await?.text().await?, "defaults");
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> OpenerBuilder {
        OpenerBuilder::default()
    }

    /// The cookie jar, if this opener keeps cookies.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Opener, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let opener = Opener::builder().cookie_store(true).build()?;
    /// let jar = opener.cookie_jar().expect("cookie_store(true)");
    /// let url = Url::parse("http://example.com/")?;
    /// jar.set_cookie_str("lang=en", &url);
    /// assert_eq!(jar.cookie_header(&url).as_deref(), Some("lang=en"));
    /// assert!(Opener::builder().build()?.cookie_jar().is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn cookie_jar(&self) -> Option<&Arc<CookieJar>> {
        self.inner.cookies.as_ref()
    }

    /// Adds credentials at run time (see [`OpenerBuilder::add_password`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::Opener;
    ///
    /// # fn main() -> Result<(), weft_fetch::Error> {
    /// let opener = Opener::builder().build()?;
    /// // Later, for example after asking the user:
    /// opener.add_password(None, "https://files.example.com/", "joe", "s3cret");
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_password(&self, realm: Option<&str>, uri: &str, user: &str, password: &str) {
        self.inner
            .passwords
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .add(realm, uri, user, password);
    }

    /// Opens a URL or a [`Request`]. A status >= 400 is [`Error::Http`], carrying the response.
    ///
    /// A handler registered for the URL's scheme opens it (built in: `file:` and `data:`);
    /// otherwise `http` and `https` go through the HTTP client, following redirects and answering
    /// authentication challenges as configured.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] for a URL that does not parse or has no host,
    /// [`Error::UnsupportedScheme`] for a scheme without a handler, [`Error::Http`] for a status of
    /// 400 or more, [`Error::TooManyRedirects`], [`Error::RedirectLoop`] and
    /// [`Error::RedirectNotAllowed`] for redirects, [`Error::Connect`], [`Error::Timeout`] and
    /// [`Error::Network`] for network failures, [`Error::Auth`] for an authentication challenge
    /// that cannot be answered, and whatever a [`SchemeHandler`] returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{Opener, Request, Url};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_fetch::Error> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("page.html");
    /// std::fs::write(&path, "<h1>Hi</h1>")?;
    ///
    /// let opener = Opener::builder().build()?;
    /// let url = Url::from_file_path(&path).expect("an absolute path");
    /// let mut resp = opener.open(&url).await?;
    /// assert_eq!(resp.header("content-type"), Some("text/html"));
    /// assert_eq!(resp.text().await?, "<h1>Hi</h1>");
    ///
    /// let req = Request::new("data:,payload")?.header_line("X-Trace: 7")?;
    /// assert_eq!(opener.open(req).await?.text().await?, "payload");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(&self, request: impl IntoRequest) -> Result<Response, Error> {
        let request = request.into_request()?;
        let scheme = request.url.scheme().to_ascii_lowercase();
        if let Some(h) = self.inner.handlers.get(&scheme) {
            tracing::debug!(url = %redact(&request.url), scheme, "open with handler");
            return h.open(request).await;
        }
        match scheme.as_str() {
            "http" | "https" => self.open_http(request).await,
            _ => Err(Error::UnsupportedScheme { scheme }),
        }
    }

    async fn open_http(&self, req: Request) -> Result<Response, Error> {
        let inner = &*self.inner;
        if req.url.host_str().is_none_or(str::is_empty) {
            return Err(Error::InvalidUrl {
                url: redact(&req.url),
                reason: "no host".into(),
            });
        }
        let first = req.url.clone();
        let mut url = req.url.clone();
        let mut method = req.get_method();
        let mut body = req.body.clone();
        let mut headers = req.effective_headers(&inner.headers, true);
        let timeout = req.timeout.or(inner.settings.timeout);
        let mut visits: HashMap<String, usize> = HashMap::new();
        let mut hops = 0usize;
        let mut auth = Answer::default();
        let mut proxy_auth = Answer::default();
        loop {
            let on_first_host = same_origin(&url, &first);
            let mut h = headers.clone();
            if let Some(jar) = &inner.cookies {
                if let Some(v) = jar.header_value(&url) {
                    let merged = match h.get(COOKIE).and_then(|x| x.to_str().ok()) {
                        Some(own) => {
                            HeaderValue::from_str(&format!("{own}; {}", v.to_str().unwrap_or("")))
                                .unwrap_or(v)
                        }
                        None => v,
                    };
                    h.insert(COOKIE, merged);
                }
            }
            if let Some(a) = &auth.value {
                h.insert(AUTHORIZATION, a.clone());
            } else if !h.contains_key(AUTHORIZATION) {
                let key = auth_scope(&url);
                let prior = inner.prior_auth.read().unwrap_or_else(|p| p.into_inner());
                if let Some((_, v)) = prior
                    .iter()
                    .filter(|(k, _)| key.starts_with(k.as_str()))
                    .max_by_key(|(k, _)| k.len())
                {
                    h.insert(AUTHORIZATION, v.clone());
                } else if inner.settings.preemptive_basic {
                    let pm = inner.passwords.read().unwrap_or_else(|p| p.into_inner());
                    if let Some((u, p)) = pm.lookup(None, &url, on_first_host) {
                        h.insert(AUTHORIZATION, basic_value(u, p));
                    }
                }
            }
            if let Some(a) = &proxy_auth.value {
                h.insert(PROXY_AUTHORIZATION, a.clone());
            }
            let identity_only = h
                .get(ACCEPT_ENCODING)
                .is_none_or(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
            let shown = inner.on_exchange.as_ref().map(|_| shown_headers(&url, &h));
            let mut rb = inner.client.request(method.clone(), url.clone()).headers(h);
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            if let Some(t) = timeout {
                rb = rb.timeout(t);
            }
            tracing::debug!(url = %redact(&url), %method, hops, "http request");
            let resp = rb.send().await.map_err(|e| Error::from_reqwest(e, &url))?;
            let status = resp.status();
            tracing::debug!(url = %redact(&url), status = status.as_u16(), "http response");
            if let (Some(hook), Some(sent)) = (&inner.on_exchange, shown) {
                hook(&Exchange {
                    method: method.clone(),
                    url: url.clone(),
                    request_headers: sent,
                    version: resp.version(),
                    status,
                    response_headers: resp.headers().clone(),
                });
            }
            if let Some(jar) = &inner.cookies {
                jar.store_response_cookies(resp.headers(), &url);
            }

            if status == StatusCode::UNAUTHORIZED
                && auth.retry(&parse_challenges(resp.headers()), |challenges| {
                    let pm = inner.passwords.read().unwrap_or_else(|p| p.into_inner());
                    authorization_for(
                        challenges,
                        &pm,
                        &url,
                        on_first_host,
                        method.as_str(),
                        &origin_form(&url),
                    )
                })?
            {
                tracing::debug!(url = %redact(&url), "retrying with credentials");
                continue;
            }

            if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED
                && !inner.proxy_passwords.is_empty()
                && proxy_auth.retry(
                    &parse_challenges_in(resp.headers(), PROXY_AUTHENTICATE),
                    |challenges| {
                        // A proxy sees the request-target in absolute form: that is what a
                        // Digest response covers.
                        let mut target = url.clone();
                        target.set_fragment(None);
                        authorization_for(
                            challenges,
                            &inner.proxy_passwords,
                            inner.proxy_url.as_ref().unwrap_or(&url),
                            true,
                            method.as_str(),
                            target.as_str(),
                        )
                    },
                )?
            {
                tracing::debug!(url = %redact(&url), "retrying with proxy credentials");
                continue;
            }

            if inner.settings.follow_redirects && is_redirect(status) {
                if let Some(loc) = resp
                    .headers()
                    .get(LOCATION)
                    .or_else(|| resp.headers().get("uri"))
                {
                    let loc = String::from_utf8_lossy(loc.as_bytes()).into_owned();
                    let mut next = url.join(loc.trim()).map_err(|e| Error::InvalidUrl {
                        url: shortened(&loc),
                        reason: format!("bad redirect target: {e}"),
                    })?;
                    if next.as_str().len() > MAX_URL_LEN {
                        return Err(Error::RedirectNotAllowed {
                            location: shortened(&redact(&next)),
                        });
                    }
                    // RFC 9110 10.2.2: a Location without a fragment inherits the original one.
                    if next.fragment().is_none() && url.fragment().is_some() {
                        next.set_fragment(url.fragment());
                    }
                    if !matches!(next.scheme(), "http" | "https") {
                        return Err(Error::RedirectNotAllowed {
                            location: redact(&next),
                        });
                    }
                    hops += 1;
                    if hops > inner.settings.max_redirects {
                        return Err(Error::TooManyRedirects {
                            url: shortened(&redact(&url)),
                            count: hops - 1,
                        });
                    }
                    let seen = visits.entry(next.to_string()).or_insert(0);
                    if *seen >= inner.settings.max_repeats {
                        return Err(Error::RedirectLoop {
                            url: shortened(&redact(&next)),
                            visits: *seen + 1,
                        });
                    }
                    *seen += 1;
                    let to_get = match status.as_u16() {
                        303 => method != Method::HEAD,
                        301 | 302 => method == Method::POST,
                        _ => false,
                    };
                    // Unredirected headers (explicit Basic credentials) stay behind.
                    headers = req.effective_headers(&inner.headers, false);
                    if to_get {
                        method = Method::GET;
                        body = None;
                    }
                    if body.is_none() && req.body.is_some() {
                        headers.remove(CONTENT_TYPE);
                        headers.remove(CONTENT_LENGTH);
                    }
                    if !same_origin(&next, &first) {
                        headers.remove(AUTHORIZATION);
                        headers.remove(COOKIE);
                        headers.remove(PROXY_AUTHORIZATION);
                    }
                    tracing::debug!(from = %redact(&url), to = %redact(&next), status = status.as_u16(), "redirect");
                    auth = Answer::default();
                    proxy_auth = Answer::default();
                    url = next;
                    continue;
                }
            }

            if let Some(a) = &auth.value {
                let basic = a.as_bytes().starts_with(b"Basic ");
                if basic && status.is_success() {
                    let scope = auth_scope(&url);
                    let mut prior = inner.prior_auth.write().unwrap_or_else(|p| p.into_inner());
                    prior.retain(|(k, _)| k != &scope);
                    prior.push((scope, a.clone()));
                }
            }
            let mut resp_headers = resp.headers().clone();
            let bodiless = method == Method::HEAD
                || status == StatusCode::NO_CONTENT
                || status == StatusCode::NOT_MODIFIED
                || status.is_informational()
                || crate::response::content_length(&resp_headers) == Some(0);
            let decode = if bodiless {
                Vec::new()
            } else {
                body_codings(&mut resp_headers, identity_only, status, &url)?
            };
            let version = resp.version();
            let mut body_stream = http_body_stream(resp, url.clone(), method == Method::HEAD);
            if !decode.is_empty() {
                body_stream = decoded_stream(body_stream, &decode, &url);
            }
            let response =
                Response::from_stream(url, status, resp_headers, body_stream).with_version(version);
            if status.as_u16() >= 400 {
                return Err(Error::Http(Box::new(response)));
            }
            return Ok(response);
        }
    }
}

/// The most content codings one body may carry (curl's limit): each is a decoder in memory.
const MAX_CODINGS: usize = 5;

/// The codings of a response body, every `Content-Encoding` header and every element of its
/// list, `identity` left out (lowercase, in the order the server applied them).
fn listed(headers: &HeaderMap, name: HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty() && c != "identity")
        .collect()
}

/// The content codings weft undoes for this body (then `Content-Encoding` and the encoded
/// `Content-Length` are removed from `headers`), or an error for a body that would otherwise
/// be handed over encoded although only `identity` was asked for: a transfer coding other than
/// chunked (hyper undoes only that one), a content coding weft cannot decode, or more than
/// [`MAX_CODINGS`]. A body whose codings the caller asked for (its own `Accept-Encoding`) or
/// an error page is then given as it came.
fn body_codings(
    headers: &mut HeaderMap,
    identity_only: bool,
    status: StatusCode,
    url: &Url,
) -> Result<Vec<Coding>, Error> {
    let refuse = status.as_u16() < 400;
    let protocol = |reason: String| Error::Protocol {
        url: Some(redact(url)),
        reason,
    };
    let transfer: Vec<String> = listed(headers, TRANSFER_ENCODING)
        .into_iter()
        .filter(|c| c != "chunked")
        .collect();
    if refuse && !transfer.is_empty() {
        return Err(protocol(format!(
            "the body is sent with transfer coding {:?}, which weft cannot decode",
            transfer.join(", ")
        )));
    }
    let codings = listed(headers, CONTENT_ENCODING);
    if codings.is_empty() {
        return Ok(Vec::new());
    }
    let known: Option<Vec<Coding>> = codings.iter().map(|c| Coding::parse(c)).collect();
    match known {
        Some(list) if list.len() <= MAX_CODINGS => {
            headers.remove(CONTENT_ENCODING);
            headers.remove(CONTENT_LENGTH);
            Ok(list)
        }
        Some(list) if refuse => Err(protocol(format!(
            "the body is encoded {} times over, more than the {MAX_CODINGS} weft decodes",
            list.len()
        ))),
        None if refuse && identity_only => Err(protocol(format!(
            "the body is encoded with {:?}, which was not asked for and which weft cannot decode",
            codings.join(", ")
        ))),
        _ => Ok(Vec::new()),
    }
}

/// The longest URL a redirect may lead to: the longest request target the HTTP client can
/// send (`http::Uri`'s limit).
const MAX_URL_LEN: usize = 65_534;
