//! HTTP authentication: a password manager, challenge parsing, Basic and Digest.

use std::sync::atomic::{AtomicU64, Ordering};

use md5::Digest as _;

use crate::error::shortened;
use crate::header::{HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use crate::{Error, Url};

#[derive(Clone)]
struct Entry {
    realm: Option<String>,
    /// None: any URL (only ever sent to the host of the first request).
    prefix: Option<UriPrefix>,
    user: String,
    password: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct UriPrefix {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
    path: String,
}

impl UriPrefix {
    fn parse(uri: &str) -> Option<UriPrefix> {
        if uri.contains("://") {
            let u = Url::parse(uri).ok()?;
            Some(UriPrefix {
                scheme: Some(u.scheme().to_string()),
                host: u.host_str()?.to_ascii_lowercase(),
                port: u.port_or_known_default(),
                path: u.path().to_string(),
            })
        } else {
            // "host[:port][/path]" without a scheme.
            let u = Url::parse(&format!("http://{uri}")).ok()?;
            Some(UriPrefix {
                scheme: None,
                host: u.host_str()?.to_ascii_lowercase(),
                port: u.port(),
                path: u.path().to_string(),
            })
        }
    }

    /// Matches `url`; returns the length of the matched path prefix.
    fn matches(&self, url: &Url) -> Option<usize> {
        let host = url.host_str()?.to_ascii_lowercase();
        if host != self.host {
            return None;
        }
        match &self.scheme {
            Some(s) => {
                if s != url.scheme() || self.port != url.port_or_known_default() {
                    return None;
                }
            }
            None => {
                if self.port != url.port() {
                    return None;
                }
            }
        }
        let path = url.path();
        let base = self.path.as_str();
        let ok = base == "/"
            || path == base
            || (path.starts_with(base)
                && (base.ends_with('/') || path[base.len()..].starts_with('/')));
        ok.then_some(base.len())
    }
}

/// Credentials keyed by realm and URL prefix (urllib's `HTTPPasswordMgrWithDefaultRealm`).
///
/// Lookups pick the most specific match: the longest URL path prefix, an exact realm before
/// the default realm (`None`), then the entry added first. URLs compare scheme, host and port
/// (a missing port is the scheme's default); a URI given without a scheme matches any scheme.
///
/// # Examples
///
/// ```
/// use weft_fetch::{Opener, PasswordManager, Url};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut pm = PasswordManager::new();
/// pm.add(Some("Some Realm"), "http://example.com/", "joe", "password");
/// pm.add(Some("Some Realm"), "http://example.com/ni", "ni", "ni");
/// let u = Url::parse("http://example.com/ni/x")?;
/// assert_eq!(pm.find(Some("Some Realm"), &u), Some(("ni", "ni")));
/// let other = Url::parse("http://example.org/")?;
/// assert_eq!(pm.find(Some("Some Realm"), &other), None);
///
/// // Hand it to an opener, which answers 401 challenges with it.
/// let opener = Opener::builder().password_manager(pm).build()?;
/// assert!(format!("{opener:?}").contains("credentials: 2"));
/// // Debug output never shows a password.
/// assert!(!format!("{opener:?}").contains("password"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct PasswordManager {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Entry {
    /// Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("realm", &self.realm)
            .field("prefix", &self.prefix)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl PasswordManager {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// An empty manager.
    ///
    /// # Examples
    ///
    /// ```
    /// let pm = weft_fetch::PasswordManager::new();
    /// assert!(pm.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds credentials for `realm` (`None` = any realm) under the URL prefix `uri`.
    ///
    /// `uri` is a URL (`https://host[:port]/path`) or, matching any scheme,
    /// `host[:port][/path]`. A path prefix matches whole segments: `/ni` covers `/ni` and
    /// `/ni/x`, not `/nix`. An unparsable `uri` is ignored with a warning.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{PasswordManager, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut pm = PasswordManager::new();
    /// pm.add(None, "example.com:8080/api", "svc", "k3y");
    /// pm.add(Some("Admin"), "https://example.com/admin/", "root", "r00t");
    ///
    /// let api = Url::parse("http://example.com:8080/api/v1")?;
    /// assert_eq!(pm.find(Some("any realm"), &api), Some(("svc", "k3y")));
    /// let nope = Url::parse("http://example.com:8080/apiary")?;
    /// assert_eq!(pm.find(None, &nope), None);
    /// let admin = Url::parse("https://example.com/admin/users")?;
    /// assert_eq!(pm.find(Some("Admin"), &admin), Some(("root", "r00t")));
    /// assert_eq!(pm.find(Some("Other"), &admin), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn add(&mut self, realm: Option<&str>, uri: &str, user: &str, password: &str) {
        match UriPrefix::parse(uri) {
            Some(prefix) => self.entries.push(Entry {
                realm: realm.map(str::to_string),
                prefix: Some(prefix),
                user: user.into(),
                password: password.into(),
            }),
            None => tracing::warn!(uri, "password manager: unparsable URI ignored"),
        }
    }

    /// Adds credentials for any realm and any URL. They are only used for the host of the
    /// original request, never after a redirect to another scheme, host or port (curl's `-u`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{PasswordManager, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut pm = PasswordManager::new();
    /// pm.add_default("joe", "s3cret");
    /// assert!(!pm.is_empty());
    /// // Not tied to a URL, so `find` does not return them; the opener uses them for the
    /// // host it was asked to open.
    /// assert_eq!(pm.find(None, &Url::parse("http://example.com/")?), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_default(&mut self, user: &str, password: &str) {
        self.entries.push(Entry {
            realm: None,
            prefix: None,
            user: user.into(),
            password: password.into(),
        });
    }

    /// Finds credentials for `realm` at `url` (entries without a URL prefix are not included:
    /// see [`add_default`](Self::add_default)).
    ///
    /// The longest matching path prefix wins, then an exact realm over the default one.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_fetch::{PasswordManager, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut pm = PasswordManager::new();
    /// pm.add(None, "http://example.com/", "anyone", "a");
    /// pm.add(Some("Staff"), "http://example.com/", "staff", "s");
    /// let url = Url::parse("http://example.com/index.html")?;
    /// assert_eq!(pm.find(Some("Staff"), &url), Some(("staff", "s")));
    /// assert_eq!(pm.find(Some("Guests"), &url), Some(("anyone", "a")));
    /// // Another port is another site.
    /// let other = Url::parse("http://example.com:8080/index.html")?;
    /// assert_eq!(pm.find(Some("Staff"), &other), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn find(&self, realm: Option<&str>, url: &Url) -> Option<(&str, &str)> {
        self.lookup(realm, url, false)
    }

    pub(crate) fn lookup(
        &self,
        realm: Option<&str>,
        url: &Url,
        allow_any: bool,
    ) -> Option<(&str, &str)> {
        let mut best: Option<((usize, u8), &Entry)> = None;
        for e in &self.entries {
            let realm_score = match (&e.realm, realm) {
                (None, _) | (Some(_), None) => 0u8,
                (Some(r), Some(want)) if r == want => 1,
                _ => continue,
            };
            let path_score = match &e.prefix {
                Some(p) => match p.matches(url) {
                    Some(n) => n + 1,
                    None => continue,
                },
                None if allow_any => 0,
                None => continue,
            };
            let score = (path_score, realm_score);
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, e));
            }
        }
        best.map(|(_, e)| (e.user.as_str(), e.password.as_str()))
    }

    /// True when nothing was added.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pm = weft_fetch::PasswordManager::new();
    /// assert!(pm.is_empty());
    /// pm.add(None, "http://example.com/", "joe", "pw");
    /// assert!(!pm.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses every challenge in every `WWW-Authenticate` header.
pub(crate) fn parse_challenges(headers: &HeaderMap) -> Vec<Challenge> {
    parse_challenges_in(headers, WWW_AUTHENTICATE)
}

/// Parses every challenge in every header `name` (`WWW-Authenticate` or
/// `Proxy-Authenticate`).
pub(crate) fn parse_challenges_in(headers: &HeaderMap, name: HeaderName) -> Vec<Challenge> {
    let mut out = Vec::new();
    for v in headers.get_all(name) {
        if let Ok(s) = v.to_str() {
            parse_challenge_str(s, &mut out);
        }
    }
    out
}

fn parse_challenge_str(s: &str, out: &mut Vec<Challenge>) {
    let mut items = split_list(s).into_iter().peekable();
    while let Some(item) = items.next() {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        // "Scheme" or "Scheme k=v" or "Scheme token68".
        let (scheme, rest) = match item.split_once(char::is_whitespace) {
            Some((s, r)) if !s.contains('=') => (s, r.trim()),
            None if !item.contains('=') => (item, ""),
            _ => continue, // a stray parameter without a scheme
        };
        let mut ch = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: Vec::new(),
        };
        if let Some(p) = parse_param(rest) {
            ch.params.push(p);
        }
        while let Some(next) = items.peek() {
            let n = next.trim();
            let first_word = n.split(char::is_whitespace).next().unwrap_or("");
            if !first_word.is_empty()
                && !first_word.contains('=')
                && n.contains(char::is_whitespace)
            {
                break; // next challenge
            }
            if !n.contains('=') {
                break;
            }
            if let Some(p) = parse_param(n) {
                ch.params.push(p);
            }
            items.next();
        }
        out.push(ch);
    }
}

fn parse_param(s: &str) -> Option<(String, String)> {
    let (k, v) = s.split_once('=')?;
    let v = v.trim();
    let v = if v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
    {
        unescape(&v[1..v.len() - 1])
    } else {
        v.to_string()
    };
    Some((k.trim().to_ascii_lowercase(), v))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        if esc {
            out.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits at commas outside double quotes (urllib's `parse_http_list`, keeping quotes).
fn split_list(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut esc = false;
    for c in s.chars() {
        if esc {
            cur.push(c);
            esc = false;
            continue;
        }
        match c {
            '\\' if quoted => {
                cur.push(c);
                esc = true;
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

static CNONCE_COUNTER: AtomicU64 = AtomicU64::new(0);

fn make_cnonce() -> String {
    let n = CNONCE_COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("{t}:{n}:{}", std::process::id());
    hex(&md5::Md5::digest(seed.as_bytes()))[..16].to_string()
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn hash(algo: &str, data: &str) -> Option<String> {
    let base = algo.trim_end_matches("-sess").trim_end_matches("-SESS");
    match base.to_ascii_uppercase().as_str() {
        "MD5" => Some(hex(&md5::Md5::digest(data.as_bytes()))),
        "SHA" | "SHA1" | "SHA-1" => Some(hex(&sha1::Sha1::digest(data.as_bytes()))),
        "SHA-256" => Some(hex(&sha2::Sha256::digest(data.as_bytes()))),
        "SHA-512-256" => Some(hex(&sha2::Sha512_256::digest(data.as_bytes()))),
        _ => None,
    }
}

/// Inputs of a Digest response computation (RFC 2617 / RFC 7616).
#[derive(Debug)]
pub(crate) struct DigestInput<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub nc: u32,
    pub cnonce: Option<&'a str>,
}

/// Computes the `Authorization: Digest ...` value for a challenge.
pub(crate) fn digest_authorization(ch: &Challenge, inp: &DigestInput<'_>) -> Result<String, Error> {
    let realm = ch.param("realm").unwrap_or("");
    let nonce = ch.param("nonce").ok_or_else(|| Error::Auth {
        reason: "digest challenge without nonce".into(),
    })?;
    let algorithm = ch.param("algorithm").unwrap_or("MD5").to_string();
    let qop = match ch.param("qop") {
        None => None,
        Some(q) => {
            if q.split(',').any(|x| x.trim().eq_ignore_ascii_case("auth")) {
                Some("auth")
            } else {
                return Err(Error::Auth {
                    reason: format!("qop {:?} is not supported", shortened(q)),
                });
            }
        }
    };
    let unsupported = || Error::Auth {
        reason: format!(
            "unsupported digest authentication algorithm {:?}",
            shortened(&algorithm)
        ),
    };
    let generated;
    let cnonce = match inp.cnonce {
        Some(c) => c,
        None => {
            generated = make_cnonce();
            &generated
        }
    };
    let mut ha1 = hash(
        &algorithm,
        &format!("{}:{realm}:{}", inp.user, inp.password),
    )
    .ok_or_else(unsupported)?;
    if algorithm.to_ascii_lowercase().ends_with("-sess") {
        ha1 = hash(&algorithm, &format!("{ha1}:{nonce}:{cnonce}")).ok_or_else(unsupported)?;
    }
    let ha2 = hash(&algorithm, &format!("{}:{}", inp.method, inp.uri)).ok_or_else(unsupported)?;
    let nc = format!("{:08x}", inp.nc);
    let response = match qop {
        Some(q) => hash(
            &algorithm,
            &format!("{ha1}:{nonce}:{nc}:{cnonce}:{q}:{ha2}"),
        ),
        None => hash(&algorithm, &format!("{ha1}:{nonce}:{ha2}")),
    }
    .ok_or_else(unsupported)?;
    let mut v = format!(
        "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{}\", response=\"{response}\"",
        inp.user, inp.uri
    );
    if let Some(op) = ch.param("opaque") {
        v.push_str(&format!(", opaque=\"{op}\""));
    }
    if ch.param("algorithm").is_some() {
        v.push_str(&format!(", algorithm={algorithm}"));
    }
    if let Some(q) = qop {
        v.push_str(&format!(", qop={q}, nc={nc}, cnonce=\"{cnonce}\""));
    }
    Ok(v)
}

/// True if a Digest challenge says `stale=true`: the nonce expired, the credentials were right,
/// so one more try is worth it.
pub(crate) fn any_stale(challenges: &[Challenge]) -> bool {
    challenges.iter().any(|c| {
        c.scheme == "digest"
            && c.param("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true"))
    })
}

/// The request-target of `url` in origin form (`/path?query`), the Digest `uri` for a server.
pub(crate) fn origin_form(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Chooses a challenge and builds the `Authorization` (or `Proxy-Authorization`) header for
/// it. Digest is preferred over Basic, as urllib tries its Digest handler first. Credentials
/// are looked up for `url`; `uri` is the request-target the Digest response covers.
pub(crate) fn authorization_for(
    challenges: &[Challenge],
    pm: &PasswordManager,
    url: &Url,
    allow_any: bool,
    method: &str,
    uri: &str,
) -> Result<Option<HeaderValue>, Error> {
    let find = |realm: Option<&str>| pm.lookup(realm, url, allow_any);
    if let Some(ch) = challenges.iter().find(|c| c.scheme == "digest") {
        if let Some((user, password)) = find(ch.param("realm")) {
            let v = digest_authorization(
                ch,
                &DigestInput {
                    user,
                    password,
                    method,
                    uri,
                    nc: 1,
                    cnonce: None,
                },
            )?;
            return HeaderValue::from_str(&v)
                .map(Some)
                .map_err(|_| Error::Auth {
                    reason: "credentials not encodable in a header".into(),
                });
        }
    }
    if let Some(ch) = challenges.iter().find(|c| c.scheme == "basic") {
        if let Some((user, password)) = find(ch.param("realm")) {
            return Ok(Some(crate::request::basic_value(user, password)));
        }
        return Ok(None);
    }
    if let Some(ch) = challenges.first() {
        if !challenges.iter().any(|c| c.scheme == "digest") && !pm.is_empty() {
            return Err(Error::Auth {
                reason: format!(
                    "unsupported authentication scheme {:?}",
                    shortened(&ch.scheme)
                ),
            });
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Vec<Challenge> {
        let mut v = Vec::new();
        parse_challenge_str(s, &mut v);
        v
    }

    #[test]
    fn realm_vectors_from_cpython() {
        let r = "realm2@example.com";
        for s in [
            "Basic realm=\"realm2@example.com\"",
            "Basic realm='realm2@example.com'",
            "Basic realm=\"realm2@example.com\", charset=\"UTF-8\"",
            "Basic realm=\"realm2@example.com\", Basic realm=\"realm2@example.com\"",
            "Basic realm=\"realm2@example.com\", Otherscheme xxx",
            "Otherscheme xxx, Basic realm=\"realm2@example.com\"",
            "Digest realm=\"digest\", nonce=\"abc\", Basic realm=\"realm2@example.com\"",
            "Basic realm=\"realm2@example.com\", Digest realm=\"digest\", nonce=\"abc\"",
        ] {
            let chs = parse(s);
            let basic = chs.iter().find(|c| c.scheme == "basic").expect(s);
            assert_eq!(basic.param("realm"), Some(r), "{s}");
        }
        let chs = parse("Digest realm=\"x\", nonce=\"n, with comma\", qop=\"auth,auth-int\"");
        assert_eq!(chs.len(), 1);
        assert_eq!(chs[0].param("nonce"), Some("n, with comma"));
        assert_eq!(chs[0].param("qop"), Some("auth,auth-int"));
    }

    #[test]
    fn rfc2617_digest_vector() {
        let ch = Challenge {
            scheme: "digest".into(),
            params: vec![
                ("realm".into(), "testrealm@host.com".into()),
                ("qop".into(), "auth,auth-int".into()),
                ("nonce".into(), "dcd98b7102dd2f0e8b11d0f600bfb0c093".into()),
                ("opaque".into(), "5ccc069c403ebaf9f0171e9517f40e41".into()),
            ],
        };
        let v = digest_authorization(
            &ch,
            &DigestInput {
                user: "Mufasa",
                password: "Circle Of Life",
                method: "GET",
                uri: "/dir/index.html",
                nc: 1,
                cnonce: Some("0a4f113b"),
            },
        )
        .unwrap();
        assert!(
            v.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{v}"
        );
        assert!(v.contains("nc=00000001"));
    }

    #[test]
    fn rfc7616_sha256_and_md5_vectors() {
        for (algo, expected) in [
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ] {
            let ch = Challenge {
                scheme: "digest".into(),
                params: vec![
                    ("realm".into(), "http-auth@example.org".into()),
                    ("qop".into(), "auth, auth-int".into()),
                    ("algorithm".into(), algo.into()),
                    (
                        "nonce".into(),
                        "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
                    ),
                    (
                        "opaque".into(),
                        "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS".into(),
                    ),
                ],
            };
            let v = digest_authorization(
                &ch,
                &DigestInput {
                    user: "Mufasa",
                    password: "Circle of Life",
                    method: "GET",
                    uri: "/dir/index.html",
                    nc: 1,
                    cnonce: Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
                },
            )
            .unwrap();
            assert!(
                v.contains(&format!("response=\"{expected}\"")),
                "{algo}: {v}"
            );
            assert!(v.contains(&format!("algorithm={algo}")));
        }
        let bad = Challenge {
            scheme: "digest".into(),
            params: vec![
                ("nonce".into(), "n".into()),
                ("algorithm".into(), "SHA-999".into()),
            ],
        };
        let input = DigestInput {
            user: "u",
            password: "p",
            method: "GET",
            uri: "/",
            nc: 1,
            cnonce: None,
        };
        assert!(matches!(
            digest_authorization(&bad, &input),
            Err(Error::Auth { .. })
        ));
        let auth_int = Challenge {
            scheme: "digest".into(),
            params: vec![
                ("nonce".into(), "n".into()),
                ("qop".into(), "auth-int".into()),
            ],
        };
        assert!(matches!(
            digest_authorization(&auth_int, &input),
            Err(Error::Auth { .. })
        ));
    }

    #[test]
    fn password_manager_vectors() {
        let mut pm = PasswordManager::new();
        pm.add(Some("Some Realm"), "http://example.com/", "joe", "password");
        pm.add(Some("Some Realm"), "http://example.com/ni", "ni", "ni");
        pm.add(Some("Some Realm"), "http://c.example.com:3128", "3", "c");
        pm.add(Some("c"), "http://example.com/foo", "foo", "ni");
        pm.add(Some("c"), "http://example.com/bar", "bar", "nini");
        pm.add(Some("f"), "http://g.example.com:80", "10", "j");
        let u = |s: &str| Url::parse(s).unwrap();
        for (realm, url, want) in [
            // Most specific prefix wins (urllib: first added).
            ("Some Realm", "http://example.com/ni", Some(("ni", "ni"))),
            (
                "Some Realm",
                "http://example.com/spam",
                Some(("joe", "password")),
            ),
            ("c", "http://example.com/foo/bar", Some(("foo", "ni"))),
            ("c", "http://example.com/foobar", None),
            ("Some Realm", "http://c.example.com/", None),
            (
                "Some Realm",
                "http://c.example.com:3128/x",
                Some(("3", "c")),
            ),
            ("f", "http://g.example.com/", Some(("10", "j"))),
            ("other", "http://example.com/", None),
        ] {
            assert_eq!(pm.find(Some(realm), &u(url)), want, "{realm} {url}");
        }
        pm.add_default("any", "one");
        assert_eq!(pm.find(Some("other"), &u("http://example.com/")), None);
        assert_eq!(
            pm.lookup(Some("other"), &u("http://example.com/"), true),
            Some(("any", "one"))
        );
    }

    #[test]
    fn split_list_vector() {
        assert_eq!(
            split_list("a, b, \"c\", \"d\", \"e,f\", g, h"),
            ["a", "b", "\"c\"", "\"d\"", "\"e,f\"", "g", "h"]
        );
    }
}
