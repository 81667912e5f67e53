//! A cookie jar with Netscape `cookies.txt` load and save (the format of curl and wget).

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::header::{HeaderMap, HeaderValue, SET_COOKIE};
use crate::{Error, Url};

/// One cookie.
///
/// # Examples
///
/// ```
/// use weft_fetch::{CookieJar, Url};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let jar = CookieJar::new();
/// let url = Url::parse("https://www.example.com/shop/cart")?;
/// jar.set_cookie_str("sid=abc; Domain=example.com; Secure; HttpOnly", &url);
/// let cookie = &jar.cookies()[0];
/// assert_eq!((cookie.name.as_str(), cookie.value.as_str()), ("sid", "abc"));
/// assert_eq!(cookie.domain, "example.com");
/// assert!(cookie.include_subdomains && cookie.secure && cookie.http_only);
/// assert_eq!(cookie.path, "/shop"); // the default path: the URL's directory
/// assert_eq!(cookie.expires, None); // a session cookie
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cookie {
    /// The domain, without a leading dot.
    pub domain: String,
    /// False for a host-only cookie (no `Domain` attribute); true when subdomains match too.
    pub include_subdomains: bool,
    /// The path.
    pub path: String,
    /// Only sent over https.
    pub secure: bool,
    /// Not visible to scripts (kept for the file format).
    pub http_only: bool,
    /// Expiry, seconds since the epoch; `None` for a session cookie.
    pub expires: Option<u64>,
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
}

impl Cookie {
    fn matches(&self, url: &Url, now: u64) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        if self.expires.is_some_and(|e| e <= now) {
            return false;
        }
        if self.secure && url.scheme() != "https" {
            return false;
        }
        let domain_ok = if self.include_subdomains {
            domain_match(&host, &self.domain)
        } else {
            host == self.domain
        };
        domain_ok && path_match(url.path(), &self.path)
    }
}

fn domain_match(host: &str, domain: &str) -> bool {
    host == domain
        || (host.ends_with(domain)
            && host.as_bytes().get(host.len() - domain.len() - 1) == Some(&b'.')
            && host.parse::<std::net::IpAddr>().is_err())
}

fn path_match(req: &str, cookie: &str) -> bool {
    req == cookie
        || (req.starts_with(cookie)
            && (cookie.ends_with('/') || req[cookie.len()..].starts_with('/')))
}

fn default_path(url: &Url) -> String {
    let p = url.path();
    match p.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => p[..i].into(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A thread-safe cookie store shared by every request of an [`Opener`](crate::Opener).
///
/// # Examples
///
/// ```
/// use weft_fetch::{CookieJar, Url};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let jar = CookieJar::new();
/// let url = Url::parse("http://example.com/a/b")?;
/// jar.set_cookie_str("id=42; Path=/; Max-Age=3600", &url);
/// jar.set_cookie_str("s=1; Path=/", &url);
/// assert_eq!(jar.cookie_header(&url).as_deref(), Some("id=42; s=1"));
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("cookies.txt");
/// jar.save(&file)?;
/// let again = CookieJar::load(&file)?;
/// assert_eq!(again.cookie_header(&url).as_deref(), Some("id=42; s=1"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct CookieJar {
    cookies: Mutex<Vec<Cookie>>,
}

impl CookieJar {
    /// An empty jar.
    ///
    /// # Examples
    ///
    /// ```
    /// let jar = weft_fetch::CookieJar::new();
    /// assert!(jar.cookies().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads a Netscape `cookies.txt` file (an expiry of `0` means a session cookie; lines
    /// starting with `#HttpOnly_` are HttpOnly cookies; other `#` lines are comments).
    ///
    /// A line that cannot be read (not seven tab-separated fields, a bad flag or expiry, a
    /// control character, a domain that is a public suffix) is skipped with a warning, as curl
    /// and wget do: one bad line never stops the request.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{CookieJar, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("cookies.txt");
    /// std::fs::write(
    ///     &path,
    ///     "# Netscape HTTP Cookie File\n\
    ///      .example.com\tTRUE\t/\tFALSE\t0\tsession\tabc\n\
    ///      #HttpOnly_example.com\tFALSE\t/app\tFALSE\t4102444800\ttoken\txyz\n",
    /// )?;
    /// let jar = CookieJar::load(&path)?;
    /// let url = Url::parse("http://example.com/app/home")?;
    /// assert_eq!(jar.cookie_header(&url).as_deref(), Some("token=xyz; session=abc"));
    /// let sub = Url::parse("http://www.example.com/")?;
    /// assert_eq!(jar.cookie_header(&sub).as_deref(), Some("session=abc"));
    ///
    /// // A malformed line is skipped; the others load.
    /// std::fs::write(&path, "example.com\tTRUE\t/\nexample.com\tFALSE\t/\tFALSE\t0\tok\t1\n")?;
    /// let jar = CookieJar::load(&path)?;
    /// assert_eq!(jar.cookie_header(&url).as_deref(), Some("ok=1"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<CookieJar, Error> {
        let jar = CookieJar::new();
        jar.load_from(path)?;
        Ok(jar)
    }

    /// Adds the cookies of a Netscape `cookies.txt` file to this jar.
    ///
    /// A cookie with the same name, domain and path as one already in the jar replaces it.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{CookieJar, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("cookies.txt");
    /// std::fs::write(&path, "example.com\tFALSE\t/\tFALSE\t0\tfrom_file\t1\n")?;
    ///
    /// let jar = CookieJar::new();
    /// let url = Url::parse("http://example.com/")?;
    /// jar.set_cookie_str("in_memory=2", &url);
    /// jar.load_from(&path)?;
    /// assert_eq!(jar.cookies().len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn load_from(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.to_path_buf(), e))?;
        let (parsed, skipped) = parse_netscape(&text);
        for (line, reason) in skipped {
            tracing::warn!(
                "cookie file {}: line {line} skipped: {reason}",
                path.display()
            );
        }
        let mut jar = self.lock();
        for c in parsed {
            insert(&mut jar, c);
        }
        Ok(())
    }

    /// Saves every unexpired cookie, session cookies included (with expiry `0`, as curl does),
    /// in the Netscape format. Writes to a temporary file and renames it into place.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the temporary file cannot be created or written, or renamed to `path`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{CookieJar, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let jar = CookieJar::new();
    /// jar.set_cookie_str("theme=dark; Max-Age=86400", &Url::parse("https://example.com/")?);
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("cookies.txt");
    /// jar.save(&path)?;
    /// let text = std::fs::read_to_string(&path)?;
    /// assert!(text.starts_with("# Netscape HTTP Cookie File"));
    /// assert!(text.contains("\ttheme\tdark\n"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let text = self.to_netscape();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let mut tmp =
            tempfile::NamedTempFile::new_in(&dir).map_err(|e| Error::io(dir.clone(), e))?;
        std::io::Write::write_all(&mut tmp, text.as_bytes())
            .map_err(|e| Error::io(path.to_path_buf(), e))?;
        tmp.persist(path)
            .map_err(|e| Error::io(path.to_path_buf(), e.error))?;
        Ok(())
    }

    /// The jar in Netscape `cookies.txt` format.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{CookieJar, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let jar = CookieJar::new();
    /// jar.set_cookie_str("a=1", &Url::parse("http://example.com/")?);
    /// let text = jar.to_netscape();
    /// assert!(text.ends_with("example.com\tFALSE\t/\tFALSE\t0\ta\t1\n"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_netscape(&self) -> String {
        let t = now();
        let mut out = String::from(
            "# Netscape HTTP Cookie File\n# This file was generated by weft-fetch. Edit at your own risk.\n\n",
        );
        for c in self
            .lock()
            .iter()
            .filter(|c| c.expires.is_none_or(|e| e > t))
            // Never write a line that cannot be read back (refused when set; kept for safety).
            .filter(|c| {
                [&c.domain, &c.path, &c.name, &c.value]
                    .iter()
                    .all(|f| !has_control(f))
            })
        {
            let domain = if c.include_subdomains {
                format!(".{}", c.domain)
            } else {
                c.domain.clone()
            };
            out.push_str(&format!(
                "{}{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                if c.http_only { "#HttpOnly_" } else { "" },
                domain,
                if c.include_subdomains {
                    "TRUE"
                } else {
                    "FALSE"
                },
                c.path,
                if c.secure { "TRUE" } else { "FALSE" },
                c.expires.unwrap_or(0),
                c.name,
                c.value
            ));
        }
        out
    }

    /// Every cookie (expired ones included until they are replaced).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{CookieJar, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let jar = CookieJar::new();
    /// let url = Url::parse("http://example.com/")?;
    /// jar.set_cookie_str("a=1", &url);
    /// jar.set_cookie_str("b=2", &url);
    /// jar.set_cookie_str("a=3", &url); // replaces a=1
    /// let names: Vec<String> = jar
    ///     .cookies()
    ///     .into_iter()
    ///     .map(|c| format!("{}={}", c.name, c.value))
    ///     .collect();
    /// assert_eq!(names, ["a=3", "b=2"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn cookies(&self) -> Vec<Cookie> {
        self.lock().clone()
    }

    /// Removes every cookie.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{CookieJar, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let jar = CookieJar::new();
    /// let url = Url::parse("http://example.com/")?;
    /// jar.set_cookie_str("a=1", &url);
    /// jar.clear();
    /// assert_eq!(jar.cookie_header(&url), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The `Cookie` header value to send to `url`, if any cookie matches (longest paths first).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{CookieJar, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let jar = CookieJar::new();
    /// jar.set_cookie_str("root=1; Path=/", &Url::parse("http://example.com/")?);
    /// jar.set_cookie_str("deep=2; Path=/app", &Url::parse("http://example.com/app/x")?);
    /// jar.set_cookie_str("tls=3; Secure", &Url::parse("https://example.com/")?);
    ///
    /// let app = Url::parse("http://example.com/app/page")?;
    /// assert_eq!(jar.cookie_header(&app).as_deref(), Some("deep=2; root=1"));
    /// let secure = Url::parse("https://example.com/")?;
    /// assert_eq!(jar.cookie_header(&secure).as_deref(), Some("root=1; tls=3"));
    /// assert_eq!(jar.cookie_header(&Url::parse("http://example.org/")?), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn cookie_header(&self, url: &Url) -> Option<String> {
        let t = now();
        let jar = self.lock();
        let mut matching: Vec<&Cookie> = jar.iter().filter(|c| c.matches(url, t)).collect();
        if matching.is_empty() {
            return None;
        }
        matching.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        Some(
            matching
                .iter()
                .map(|c| format!("{}={}", c.name, c.value))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    /// Stores the cookie of one `Set-Cookie` value received from `url`. Returns false when it
    /// was rejected (bad syntax, or a `Domain` the host does not belong to).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{CookieJar, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let jar = CookieJar::new();
    /// let url = Url::parse("http://www.example.com/")?;
    /// assert!(jar.set_cookie_str("pref=1; Domain=example.com", &url));
    /// assert!(!jar.set_cookie_str("evil=1; Domain=attacker.com", &url));
    /// assert!(!jar.set_cookie_str("no equals sign", &url));
    /// // An expiry in the past (here Max-Age=0) deletes the cookie.
    /// assert!(jar.set_cookie_str("pref=; Domain=example.com; Max-Age=0", &url));
    /// assert!(jar.cookies().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_cookie_str(&self, set_cookie: &str, url: &Url) -> bool {
        match parse_set_cookie(set_cookie, url) {
            Some(c) => {
                let mut jar = self.lock();
                if c.expires.is_some_and(|e| e <= now()) {
                    jar.retain(|o| !(o.name == c.name && o.domain == c.domain && o.path == c.path));
                } else {
                    insert(&mut jar, c);
                }
                true
            }
            None => {
                tracing::debug!(set_cookie, url = %crate::error::redact(url), "cookie rejected");
                false
            }
        }
    }

    /// Stores every `Set-Cookie` of a response from `url`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::header::{HeaderMap, HeaderValue, SET_COOKIE};
    /// use weft_fetch::{CookieJar, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut headers = HeaderMap::new();
    /// headers.append(SET_COOKIE, HeaderValue::from_static("a=1; Path=/"));
    /// headers.append(SET_COOKIE, HeaderValue::from_static("b=2; Path=/"));
    /// let url = Url::parse("http://example.com/login")?;
    /// let jar = CookieJar::new();
    /// jar.store_response_cookies(&headers, &url);
    /// assert_eq!(jar.cookie_header(&url).as_deref(), Some("a=1; b=2"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn store_response_cookies(&self, headers: &HeaderMap, url: &Url) {
        for v in headers.get_all(SET_COOKIE) {
            if let Ok(s) = v.to_str() {
                self.set_cookie_str(s, url);
            }
        }
    }

    pub(crate) fn header_value(&self, url: &Url) -> Option<HeaderValue> {
        self.cookie_header(url)
            .and_then(|s| HeaderValue::from_str(&s).ok())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Cookie>> {
        self.cookies.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// RFC 6265 6.1's minimums, which browsers keep to as their limits: a cookie's name and value
/// together, the cookies of one domain, the cookies of a jar. A server (or a domain's other
/// hosts) setting new cookies on every answer cannot grow the jar, nor every request's
/// `Cookie` header, without bound.
const MAX_COOKIE_BYTES: usize = 4096;
const MAX_PER_DOMAIN: usize = 50;
const MAX_COOKIES: usize = 3000;

/// Adds or replaces `c`; past the limits the oldest cookie of its domain (or of the jar) goes.
fn insert(jar: &mut Vec<Cookie>, c: Cookie) {
    if let Some(old) = jar
        .iter_mut()
        .find(|o| o.name == c.name && o.domain == c.domain && o.path == c.path)
    {
        *old = c;
        return;
    }
    if jar.iter().filter(|o| o.domain == c.domain).count() >= MAX_PER_DOMAIN {
        if let Some(oldest) = jar.iter().position(|o| o.domain == c.domain) {
            jar.remove(oldest);
        }
    }
    if jar.len() >= MAX_COOKIES {
        jar.remove(0);
    }
    jar.push(c);
}

fn parse_set_cookie(s: &str, url: &Url) -> Option<Cookie> {
    let host = url.host_str()?.to_ascii_lowercase();
    let mut parts = s.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let name = name.trim();
    let value = value.trim();
    // A control character (a TAB above all) would make a cookies.txt line that cannot be read
    // back; curl refuses such cookies too.
    if name.is_empty()
        || has_control(name)
        || has_control(value)
        || name.len() + value.len() > MAX_COOKIE_BYTES
    {
        return None;
    }
    let mut c = Cookie {
        domain: host.clone(),
        include_subdomains: false,
        path: default_path(url),
        secure: false,
        http_only: false,
        expires: None,
        name: name.to_string(),
        value: value.trim_matches('"').to_string(),
    };
    let mut max_age: Option<i64> = None;
    for attr in parts {
        let (k, v) = match attr.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (attr.trim(), ""),
        };
        match k.to_ascii_lowercase().as_str() {
            "domain" => {
                let d = v.trim_start_matches('.').to_ascii_lowercase();
                if d.is_empty() {
                    continue;
                }
                if !domain_match(&host, &d) {
                    return None;
                }
                // RFC 6265 5.3 step 5: a public suffix ("com", "co.uk", "github.io") is
                // refused as a cookie domain, unless it is the host itself (then the cookie is
                // host-only).
                if is_public_suffix(&d) {
                    if d == host {
                        continue;
                    }
                    return None;
                }
                c.domain = d;
                c.include_subdomains = true;
            }
            "path" if has_control(v) => return None,
            "path" if v.starts_with('/') => c.path = v.to_string(),
            "secure" => c.secure = true,
            "httponly" => c.http_only = true,
            "max-age" => max_age = v.parse().ok(),
            "expires" => {
                if let Ok(t) = httpdate::parse_http_date(v) {
                    c.expires = Some(
                        t.duration_since(UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or(0),
                    );
                }
            }
            _ => {}
        }
    }
    if let Some(ma) = max_age {
        c.expires = Some(if ma <= 0 {
            0
        } else {
            now().saturating_add(ma as u64)
        });
    }
    Some(c)
}

/// A control character (TAB, CR, LF, DEL...): never in a cookie weft keeps.
fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// True when `domain` is a public suffix (the Public Suffix List, private section included, as
/// browsers use it): `com`, `co.uk`, `github.io`. A name the list does not know counts by its
/// last label, the list's default rule.
fn is_public_suffix(domain: &str) -> bool {
    psl::suffix(domain.as_bytes()).is_some_and(|s| s.as_bytes() == domain.as_bytes())
}

/// The cookies of a `cookies.txt` text, and the lines skipped (1-based number, why).
fn parse_netscape(text: &str) -> (Vec<Cookie>, Vec<(usize, String)>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        match parse_netscape_line(raw) {
            Ok(Some(c)) => out.push(c),
            Ok(None) => {}
            Err(reason) => skipped.push((i + 1, reason)),
        }
    }
    (out, skipped)
}

/// One line: a cookie, nothing (a comment or a blank line), or why it cannot be read.
fn parse_netscape_line(raw: &str) -> Result<Option<Cookie>, String> {
    let mut line = raw.trim_end_matches('\r');
    let mut http_only = false;
    if let Some(rest) = line.strip_prefix("#HttpOnly_") {
        line = rest;
        http_only = true;
    } else if line.starts_with('#') || line.trim().is_empty() {
        return Ok(None);
    }
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() != 7 {
        return Err(format!("expected 7 tab-separated fields, got {}", f.len()));
    }
    if let Some(bad) = f.iter().find(|x| has_control(x)) {
        return Err(format!("control character in {bad:?}"));
    }
    let bool_field = |s: &str| -> Result<bool, String> {
        match s.to_ascii_uppercase().as_str() {
            "TRUE" => Ok(true),
            "FALSE" => Ok(false),
            _ => Err(format!("expected TRUE or FALSE, got {s:?}")),
        }
    };
    let include_subdomains = bool_field(f[1])? || f[0].starts_with('.');
    let expires: u64 = f[4].parse().map_err(|_| format!("bad expiry {:?}", f[4]))?;
    let domain = f[0].trim_start_matches('.').to_ascii_lowercase();
    if domain.is_empty() || f[5].is_empty() {
        return Err("empty domain or name".into());
    }
    if include_subdomains && is_public_suffix(&domain) {
        return Err(format!("{domain} is a public suffix"));
    }
    Ok(Some(Cookie {
        domain,
        include_subdomains,
        path: f[2].to_string(),
        secure: bool_field(f[3])?,
        http_only,
        expires: (expires != 0).then_some(expires),
        name: f[5].to_string(),
        value: f[6].to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_only_domain_and_paths() {
        let jar = CookieJar::new();
        let u = Url::parse("http://www.example.com/dir/page").unwrap();
        assert!(jar.set_cookie_str("a=1", &u));
        assert!(jar.set_cookie_str("b=2; Domain=.example.com; Path=/", &u));
        assert!(!jar.set_cookie_str("c=3; Domain=cracker.com", &u));
        assert!(!jar.set_cookie_str("d=4; Domain=com", &u));
        let same = Url::parse("http://www.example.com/dir/x").unwrap();
        assert_eq!(jar.cookie_header(&same).as_deref(), Some("a=1; b=2"));
        let sub = Url::parse("http://other.example.com/dir/x").unwrap();
        assert_eq!(jar.cookie_header(&sub).as_deref(), Some("b=2"));
        let elsewhere = Url::parse("http://www.cracker.com/").unwrap();
        assert_eq!(jar.cookie_header(&elsewhere), None);
        // Max-Age=0 deletes.
        assert!(jar.set_cookie_str("a=; Max-Age=0", &u));
        assert_eq!(jar.cookie_header(&same).as_deref(), Some("b=2"));
    }

    #[test]
    fn netscape_round_trip() {
        let jar = CookieJar::new();
        let u = Url::parse("https://example.com/").unwrap();
        jar.set_cookie_str(
            "sec=1; Secure; HttpOnly; Domain=example.com; Max-Age=100",
            &u,
        );
        jar.set_cookie_str("plain=2", &u);
        let text = jar.to_netscape();
        assert!(text.starts_with("# Netscape HTTP Cookie File"));
        assert!(text.contains("#HttpOnly_.example.com\tTRUE\t/\tTRUE\t"));
        assert!(text.contains("example.com\tFALSE\t/\tFALSE\t0\tplain\t2"));
        let (back, skipped) = parse_netscape(&text);
        assert_eq!(back, jar.cookies());
        assert!(skipped.is_empty());
        let (none, skipped) = parse_netscape("bad line\n");
        assert!(none.is_empty());
        assert_eq!(skipped.len(), 1);
    }
}
