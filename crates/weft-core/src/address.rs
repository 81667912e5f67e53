//! Connection addresses: an IP socket address, a Unix socket path, or an in-memory name.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The address of one end of a connection, as `peer()` and `host()` return it.
///
/// It prints the way the seed's programs print addresses: `HOST:PORT` for IP
/// (`[::1]:80` for IPv6), the path for a Unix socket.
///
/// ```
/// use weft_core::Address;
/// let a = Address::from("127.0.0.1:1234".parse::<std::net::SocketAddr>().unwrap());
/// assert_eq!(a.to_string(), "127.0.0.1:1234");
/// assert_eq!(a.as_inet().map(|s| s.port()), Some(1234));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// TCP or UDP over IPv4 or IPv6.
    Inet(SocketAddr),
    /// A Unix domain socket; `None` for an unnamed (unbound) socket.
    Unix(Option<PathBuf>),
    /// An in-memory endpoint (see [`testing`](crate::testing)).
    Memory(String),
}

impl Address {
    /// The IP socket address, if this is one.
    ///
    /// ```
    /// use weft_core::Address;
    /// assert!(Address::Unix(None).as_inet().is_none());
    /// ```
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            Self::Inet(a) => Some(*a),
            _ => None,
        }
    }

    /// Shows a listening address the way `weft serve` announces it: `0.0.0.0:5000 (all
    /// interfaces)` for an address on every interface (`0.0.0.0` or `::`, reachable from other
    /// machines), the address alone otherwise.
    ///
    /// ```
    /// use weft_core::Address;
    /// let all = Address::from("0.0.0.0:5000".parse::<std::net::SocketAddr>().unwrap());
    /// assert_eq!(all.listening().to_string(), "0.0.0.0:5000 (all interfaces)");
    /// let lo = Address::from("127.0.0.1:5000".parse::<std::net::SocketAddr>().unwrap());
    /// assert_eq!(lo.listening().to_string(), "127.0.0.1:5000");
    /// ```
    pub fn listening(&self) -> impl fmt::Display + '_ {
        struct Listening<'a>(&'a Address);
        impl fmt::Display for Listening<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)?;
                match self.0 {
                    Address::Inet(a) if a.ip().is_unspecified() => f.write_str(" (all interfaces)"),
                    _ => Ok(()),
                }
            }
        }
        Listening(self)
    }

    /// The Unix socket path, if this is a named Unix socket.
    ///
    /// ```
    /// use weft_core::Address;
    /// let named = Address::Unix(Some("/run/echo.sock".into()));
    /// assert_eq!(named.as_path(), Some(std::path::Path::new("/run/echo.sock")));
    /// assert_eq!(Address::Unix(None).as_path(), None);
    /// ```
    pub fn as_path(&self) -> Option<&std::path::Path> {
        match self {
            Self::Unix(Some(p)) => Some(p),
            _ => None,
        }
    }

    pub(crate) fn from_unix(addr: &tokio::net::unix::SocketAddr) -> Self {
        Self::Unix(addr.as_pathname().map(PathBuf::from))
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Self::Inet(a)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inet(a) => a.fmt(f),
            Self::Unix(Some(p)) => p.display().fmt(f),
            Self::Unix(None) => f.write_str("unix:unnamed"),
            Self::Memory(name) => f.write_str(name),
        }
    }
}
