//! Addresses of servers and clients, for every socket family the servers speak.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A server or client address: an IP socket address or a Unix socket path.
///
/// `Display` prints `HOST:PORT` for IP addresses (`[::1]:80` for IPv6), the path for
/// Unix sockets and `(unnamed)` for unnamed Unix sockets (Python shows `''`).
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use weft_server::Address;
///
/// let inet = Address::from("[::1]:80".parse::<SocketAddr>()?);
/// assert_eq!(inet.to_string(), "[::1]:80");
///
/// let unix = Address::Unix(Some("/run/echo.sock".into()));
/// assert_eq!(unix.to_string(), "/run/echo.sock");
/// assert_eq!(Address::Unix(None).to_string(), "(unnamed)");
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// An IPv4 or IPv6 address with its port.
    Inet(SocketAddr),
    /// A Unix domain socket; `None` for an unnamed (unbound) socket.
    Unix(Option<PathBuf>),
}

impl Address {
    /// The IP socket address, if this is one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use weft_server::Address;
    ///
    /// let addr: SocketAddr = "127.0.0.1:8000".parse()?;
    /// assert_eq!(Address::Inet(addr).as_inet(), Some(addr));
    /// assert_eq!(Address::Unix(None).as_inet(), None);
    /// # Ok::<(), std::net::AddrParseError>(())
    /// ```
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            Address::Inet(a) => Some(*a),
            Address::Unix(_) => None,
        }
    }

    /// The Unix socket path, if this is a named Unix socket.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::path::Path;
    /// use weft_server::Address;
    ///
    /// let named = Address::Unix(Some("/run/echo.sock".into()));
    /// assert_eq!(named.as_path(), Some(Path::new("/run/echo.sock")));
    /// assert_eq!(Address::Unix(None).as_path(), None);
    /// ```
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Address::Unix(Some(p)) => Some(p),
            _ => None,
        }
    }

    pub(crate) fn from_unix_std(a: &std::os::unix::net::SocketAddr) -> Self {
        Address::Unix(a.as_pathname().map(Path::to_path_buf))
    }

    pub(crate) fn from_unix_tokio(a: &tokio::net::unix::SocketAddr) -> Self {
        Address::Unix(a.as_pathname().map(Path::to_path_buf))
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Address::Inet(a)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(a) => write!(f, "{a}"),
            Address::Unix(Some(p)) => write!(f, "{}", p.display()),
            Address::Unix(None) => f.write_str("(unnamed)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display() {
        let a: Address = "127.0.0.1:1234".parse::<SocketAddr>().unwrap().into();
        assert_eq!(a.to_string(), "127.0.0.1:1234");
        assert_eq!(Address::Unix(None).to_string(), "(unnamed)");
        assert_eq!(
            Address::Unix(Some("/tmp/x.sock".into())).to_string(),
            "/tmp/x.sock"
        );
        assert!(a.as_inet().is_some() && a.as_path().is_none());
    }
}
