//! weft-fetch: open remote files as if they were local.
//!
//! Python's `urllib.request` (and what urllib2 added: authentication, cookies, your own
//! protocols) as an async API on tokio and reqwest:
//!
//! - [`urlopen`] returns a [`Response`] you read like a file ([`tokio::io::AsyncRead`] +
//!   [`tokio::io::AsyncBufRead`]), for `http`, `https` (rustls, certificates checked), `file:`,
//!   `data:` and any scheme you register with a [`SchemeHandler`].
//! - [`urlretrieve`] streams a URL to disk with urllib's `reporthook` progress; [`urlcleanup`]
//!   removes its temporary files.
//! - [`Opener::builder`] is `build_opener`: default headers, timeouts, redirects, proxies,
//!   Basic and Digest authentication, a cookie jar saved as `cookies.txt`; [`install_opener`]
//!   makes the free functions use it.
//!
//! Differences from urllib, on purpose: a status >= 400 is an [`Error::Http`] that carries the
//! response; a stall timeout (120 s) and connect timeout (30 s) are on by default, a total
//! deadline only when asked; a failed `urlretrieve` leaves nothing at the destination; a redirect
//! never carries credentials or caller-set cookies to another scheme, host or port; a 307/308 after a `POST`
//! re-sends the body instead of failing; `file:` and `data:` responses report status 200.
//!
//! An [`Error`]'s `Display` is one line that says each cause once (the URL without its
//! password, the root cause without the HTTP client's wrappers); `source()` does not repeat it,
//! so error reporters that print the chain (anyhow's `{:#}`, eyre, `tracing`) say it once too,
//! and [`Error::get_ref`] gives the underlying error to downcast.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), weft_fetch::Error> {
//! let mut resp = weft_fetch::urlopen("data:,Hello%2C%20World!").await?;
//! assert_eq!(resp.read_to_end().await?, b"Hello, World!");
//! # Ok(())
//! # }
//! ```

mod auth;
mod cookies;
mod error;
mod handler;
mod opener;
mod request;
mod response;
mod retrieve;

use std::path::{Path, PathBuf};
use std::sync::RwLock;

pub use auth::PasswordManager;
pub use cookies::{Cookie, CookieJar};
pub use error::{BoxError, Error, ErrorKind};
pub use handler::{DataHandler, FileHandler, SchemeHandler, file_url_to_path};
pub use opener::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, DEFAULT_USER_AGENT, Exchange, Opener,
    OpenerBuilder,
};
pub use request::{IntoRequest, Request};
pub use response::{BodyStream, Response};
pub use retrieve::{BLOCK_SIZE, Progress, ProgressFn, RetrieveOptions, registered_tempfiles};

pub use reqwest::header;
pub use reqwest::{Method, StatusCode, Version};
pub use url::Url;

static INSTALLED: RwLock<Option<Opener>> = RwLock::new(None);

/// Makes the free functions ([`urlopen`], [`urlretrieve`]) use `opener` from now on.
///
/// # Examples
///
/// An opener with a handler for a custom scheme, used by the free [`urlopen`]:
///
/// ```
/// use weft_fetch::{header::HeaderMap, Opener, Request, Response, StatusCode};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let opener = Opener::builder()
///     .user_agent("demo/1")
///     .handler("hello", |req: Request| async move {
///         Ok(Response::from_bytes(req.url().clone(), StatusCode::OK, HeaderMap::new(), "hi"))
///     })
///     .build()?;
/// weft_fetch::install_opener(opener);
/// assert_eq!(weft_fetch::urlopen("hello:x").await?.text().await?, "hi");
///
/// weft_fetch::urlcleanup(); // also uninstalls it, as urllib does
/// assert!(weft_fetch::installed_opener().is_none());
/// assert!(weft_fetch::urlopen("hello:x").await.is_err()); // back to the default opener
/// # Ok(())
/// # }
/// ```
pub fn install_opener(opener: Opener) {
    *INSTALLED.write().unwrap_or_else(|p| p.into_inner()) = Some(opener);
}

/// The opener set by [`install_opener`], if any.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), weft_fetch::Error> {
/// assert!(weft_fetch::installed_opener().is_none()); // the default opener is not "installed"
///
/// weft_fetch::install_opener(weft_fetch::Opener::builder().max_redirects(3).build()?);
/// assert!(weft_fetch::installed_opener().is_some());
/// # weft_fetch::urlcleanup();
/// # Ok(())
/// # }
/// ```
pub fn installed_opener() -> Option<Opener> {
    INSTALLED.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The lazily built default opener. It keeps no idle connections, so it is safe to use from
/// several tokio runtimes one after the other (as tests do).
static DEFAULT: std::sync::Mutex<Option<Opener>> = std::sync::Mutex::new(None);

fn current_opener() -> Result<Opener, Error> {
    if let Some(o) = installed_opener() {
        return Ok(o);
    }
    let mut default = DEFAULT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(o) = default.as_ref() {
        return Ok(o.clone());
    }
    let o = Opener::builder().keep_alive(false).build()?;
    *default = Some(o.clone());
    Ok(o)
}

/// Opens a URL (a `&str`, [`Url`] or [`Request`]) with the installed opener, or a default one.
///
/// See [`Opener::open`] for what each scheme does.
///
/// # Errors
///
/// Fails with [`Error::InvalidUrl`] for a URL that does not parse,
/// [`Error::UnsupportedScheme`] for a scheme nobody handles, [`Error::Http`] for an HTTP status
/// of 400 or more (the response is inside), and with the other [`Error`] variants for
/// redirect, connection, timeout and local I/O failures.
///
/// # Examples
///
/// ```
/// use weft_fetch::ErrorKind;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let mut resp = weft_fetch::urlopen("data:text/plain,hello").await?;
/// assert_eq!(resp.status(), 200);
/// assert_eq!(resp.text().await?, "hello");
///
/// let err = weft_fetch::urlopen("file:///definitely/not/here").await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Io);
/// assert!(err.is_not_found());
/// # Ok(())
/// # }
/// ```
pub async fn urlopen(request: impl IntoRequest) -> Result<Response, Error> {
    let request = request.into_request()?;
    current_opener()?.open(request).await
}

/// Downloads a URL to `dest` (or a registered temporary file) and returns the path and the
/// headers. See [`Opener::retrieve`] for the details and [`Progress`] for the callback.
///
/// # Errors
///
/// Everything [`urlopen`] can fail with, plus [`Error::ContentTooShort`] for a truncated body
/// and [`Error::Io`] when the file cannot be written. On failure nothing is left at `dest`.
///
/// # Examples
///
/// Without a destination the data goes to a temporary file, removed by [`urlcleanup`]:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let (path, headers) = weft_fetch::urlretrieve("data:,abc", None, None).await?;
/// assert_eq!(std::fs::read(&path)?, b"abc");
/// assert_eq!(headers["content-length"], "3");
/// weft_fetch::urlcleanup();
/// assert!(!path.exists());
/// # Ok(())
/// # }
/// ```
///
/// With a destination and a progress callback:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let dir = tempfile::tempdir()?;
/// let dest = dir.path().join("hello.txt");
/// let mut done = 0;
/// let mut hook = |p: &weft_fetch::Progress| done = p.bytes_done;
/// let (path, _) = weft_fetch::urlretrieve("data:,hello", Some(&dest), Some(&mut hook)).await?;
/// assert_eq!(path, dest);
/// assert_eq!(std::fs::read_to_string(&dest)?, "hello");
/// assert_eq!(done, 5);
/// # Ok(())
/// # }
/// ```
pub async fn urlretrieve(
    request: impl IntoRequest,
    dest: Option<&Path>,
    progress: Option<ProgressFn<'_>>,
) -> Result<(PathBuf, header::HeaderMap), Error> {
    let mut opts = RetrieveOptions::new();
    if let Some(d) = dest {
        opts = opts.dest(d);
    }
    urlretrieve_with(request, &opts, progress).await
}

/// [`urlretrieve`] with [`RetrieveOptions`] (for example resume).
///
/// # Errors
///
/// As [`urlretrieve`]. With [`RetrieveOptions::resume`], the partial data of a failed
/// download stays in `DEST.part` for the next attempt.
///
/// # Examples
///
/// ```
/// use weft_fetch::RetrieveOptions;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let dir = tempfile::tempdir()?;
/// let dest = dir.path().join("data.bin");
/// let opts = RetrieveOptions::new().dest(&dest).resume(true);
/// let (path, _headers) = weft_fetch::urlretrieve_with("data:,0123456789", &opts, None).await?;
/// assert_eq!(path, dest);
/// assert_eq!(std::fs::read(&dest)?, b"0123456789");
/// # Ok(())
/// # }
/// ```
pub async fn urlretrieve_with(
    request: impl IntoRequest,
    options: &RetrieveOptions,
    progress: Option<ProgressFn<'_>>,
) -> Result<(PathBuf, header::HeaderMap), Error> {
    let request = request.into_request()?;
    current_opener()?.retrieve(request, options, progress).await
}

/// Deletes every temporary file made by [`urlretrieve`] without a destination, and uninstalls
/// the opener set by [`install_opener`], as urllib does (the default opener is rebuilt on next
/// use, re-reading the proxy environment variables).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_fetch::Error> {
/// let (tmp, _) = weft_fetch::urlretrieve("data:,scratch", None, None).await?;
/// assert!(weft_fetch::registered_tempfiles().contains(&tmp));
///
/// weft_fetch::urlcleanup();
/// assert!(!tmp.exists());
/// assert!(weft_fetch::registered_tempfiles().is_empty());
/// # Ok(())
/// # }
/// ```
pub fn urlcleanup() {
    retrieve::cleanup_tempfiles();
    *INSTALLED.write().unwrap_or_else(|p| p.into_inner()) = None;
    *DEFAULT.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

#[cfg(test)]
mod no_panic {
    use proptest::prelude::*;

    use crate::header::{HeaderMap, HeaderValue, SET_COOKIE, WWW_AUTHENTICATE};
    use crate::{CookieJar, Opener, PasswordManager, Request, Url};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parsers_never_panic(s in ".{0,80}", t in "[ -~]{0,80}") {
            let url = Url::parse("http://example.com/a/b").unwrap();
            let jar = CookieJar::new();
            jar.set_cookie_str(&s, &url);
            jar.set_cookie_str(&t, &url);
            let _ = jar.cookie_header(&url);
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&t) {
                h.append(WWW_AUTHENTICATE, v.clone());
                h.append(SET_COOKIE, v);
            }
            jar.store_response_cookies(&h, &url);
            let chs = crate::auth::parse_challenges(&h);
            let mut pm = PasswordManager::new();
            pm.add(None, &s, "u", "p");
            pm.add_default("u", "p");
            let _ = crate::auth::authorization_for(&chs, &pm, &url, true, "GET", "/");
            let _ = crate::response::parse_header_line(&s);
            let _ = Request::new(&s);
        }

        #[test]
        fn data_urls_never_panic(s in "[ -~]{0,60}") {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            static OPENER: std::sync::OnceLock<Opener> = std::sync::OnceLock::new();
            let op = OPENER.get_or_init(|| Opener::builder().env_proxies(false).build().unwrap());
            rt.block_on(async {
                if let Ok(mut r) = op.open(format!("data:{s}")).await {
                    let _ = r.read_to_end().await;
                }
                let _ = op.open(format!("file:{s}")).await;
            });
        }
    }
}

#[cfg(test)]
mod send_sync {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn futures_are_send_and_types_are_sync() {
        assert_send_sync::<crate::Response>();
        assert_send_sync::<crate::Error>();
        assert_send_sync::<crate::Opener>();
        assert_send_sync::<crate::CookieJar>();
        let op = crate::Opener::builder().build().unwrap();
        let f = op.open("data:,x");
        assert_send(&f);
        let mut hook = |_: &crate::Progress| {};
        let opts = crate::RetrieveOptions::new();
        let f = op.retrieve("data:,x", &opts, Some(&mut hook));
        assert_send(&f);
        let f = crate::urlopen("data:,x");
        assert_send(&f);
        let f = crate::urlretrieve("data:,x", None, None);
        assert_send(&f);
    }
}
