//! Where to listen and where to connect: one parser for Twisted-style endpoint strings
//! (`tcp:1234:interface=127.0.0.1`, `unix:/tmp/sock:mode=600`, `tcp:host=example.com:port=80`)
//! and the plain forms people type (`127.0.0.1:1234`, `[::1]:1234`, `:1234`, `1234`,
//! `/run/weft.sock`, `./weft.sock`).
//!
//! The endpoint syntax is Twisted's: a type, then `:`-separated arguments, positional or
//! `key=value`; a backslash escapes the next character (`tcp6:80:interface=\:\:1`). A string
//! whose first segment is not an endpoint type is read as a plain form; anything else is an
//! error whose message lists every accepted form ([`FORMS`]).
//!
//! | plain form | server (listen) | client (connect) |
//! |---|---|---|
//! | `HOST:PORT` | `tcp:PORT:interface=HOST` (HOST an IPv4 address or `localhost`) | `tcp:HOST:PORT` |
//! | `[IPv6]:PORT` | `tcp6:PORT:interface=IPv6` | `tcp:IPv6:PORT` |
//! | `:PORT`, `PORT` | `tcp:PORT` (every IPv4 interface) | `tcp:localhost:PORT` |
//! | `/path`, `./path`, `../path` | `unix:PATH` | `unix:PATH` |

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::proxy::{Cidr, ProxyOptions};
use crate::tls::{CertSource, ClientTlsOptions, ServerTlsOptions, TlsVersion};

/// What is wrong with an endpoint string.
///
/// ```
/// use weft_core::{EndpointError, ServerEndpoint};
/// let err = "tcp:http".parse::<ServerEndpoint>().unwrap_err();
/// assert_eq!(err, EndpointError::InvalidNumber { key: "port".into(), value: "http".into() });
/// assert_eq!(err.to_string(), "invalid port: \"http\" is not a number in range");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The string is empty.
    #[error("empty endpoint string")]
    Empty,
    /// Neither an endpoint string of a known type nor a plain form: the message lists the
    /// accepted forms ([`FORMS`]).
    #[error("cannot read {0:?} as an address; {FORMS}")]
    UnknownType(String),
    /// A required argument is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A number (port, backlog, mode, timeout) does not parse or is out of range.
    #[error("invalid {key}: {value:?} is not a number in range")]
    InvalidNumber {
        /// The argument's name.
        key: String,
        /// What was given.
        value: String,
    },
    /// The interface is not an IP address of the right family (or `localhost`).
    #[error(
        "invalid interface {0:?} (listen on an IP address such as 127.0.0.1, 0.0.0.0 or ::1, or on localhost)"
    )]
    InvalidInterface(String),
    /// An argument this endpoint type does not take.
    #[error("unknown argument {0:?}")]
    UnknownArgument(String),
    /// The same argument was given twice (often an IPv6 interface whose colons were not
    /// escaped).
    #[error("argument {0:?} given twice{hint}", hint = if .0 == "interface" { r" (escape the colons of an IPv6 address: interface=\:\:1)" } else { "" })]
    Duplicate(String),
    /// Too many positional arguments.
    #[error("unexpected positional argument {0:?}")]
    ExtraPositional(String),
    /// The string ends with a lone backslash.
    #[error("trailing backslash")]
    TrailingBackslash,
    /// An argument weft understands but cannot honour (for example `dhParameters=`).
    #[error("{key}= is not supported: {reason}")]
    Unsupported {
        /// The argument's name.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// A value that is not one of the accepted ones.
    #[error("invalid {key}: {value:?} (expected {expected})")]
    InvalidValue {
        /// The argument's name.
        key: String,
        /// What was given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// A valid endpoint of a kind this program does not serve (a Unix path given to a
    /// TCP-only program, say).
    #[error("{endpoint} is not a TCP endpoint (this program listens on TCP only)")]
    NotTcp {
        /// The endpoint, as an endpoint string.
        endpoint: String,
    },
    /// A combination of arguments or endpoint types that does not make sense (the message
    /// says which).
    #[error("{0}")]
    Conflict(&'static str),
}

/// An endpoint error is an `InvalidInput` I/O error, so a program's `main` can use `?` on it.
///
/// ```
/// fn main() -> std::io::Result<()> {
///     let addr = weft_core::ServerEndpoint::parse_tcp("127.0.0.1:0")?;
///     assert_eq!(addr.port(), 0);
///     Ok(())
/// }
/// ```
impl From<EndpointError> for std::io::Error {
    fn from(e: EndpointError) -> Self {
        // The message itself, so that even a `main` that prints errors with `{:?}` shows the
        // accepted forms.
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
    }
}

/// The accepted forms of an address, as every parse error that cannot tell what was meant
/// shows them.
///
/// ```
/// let err = "nowhere".parse::<weft_core::ServerEndpoint>().unwrap_err();
/// assert!(err.to_string().ends_with(weft_core::endpoint::FORMS));
/// ```
pub const FORMS: &str = "expected HOST:PORT, [IPv6]:PORT, :PORT, PORT, a Unix socket path \
starting with / or ./, or an endpoint string (tcp:PORT:interface=IP, tcp6:PORT, unix:PATH, \
udp:PORT, ssl:PORT:privateKey=KEY.pem, tls:PEM_DIR:port=PORT, haproxy:ENDPOINT, \
systemd:domain=INET:index=N)";

/// The endpoint types this parser knows: a string starting with one of them and `:` is an
/// endpoint string; anything else is tried as a plain form.
const KINDS: &[&str] = &[
    "tcp", "tcp6", "unix", "udp", "udp6", "ssl", "tls", "haproxy", "systemd",
];

/// Where to listen: parsed from a Twisted server endpoint string or a plain form (see the
/// [module](self) documentation).
///
/// | string | meaning |
/// |---|---|
/// | `tcp:1234` or `tcp:port=1234` | TCP on every IPv4 interface |
/// | `tcp:1234:interface=127.0.0.1:backlog=50` | one interface, backlog 50 |
/// | `tcp6:1234:interface=\:\:1` | IPv6 (interface default `::`) |
/// | `unix:/tmp/sock` or `unix:address=/tmp/sock:mode=660:backlog=50` | Unix socket, octal mode |
/// | `udp:5353:interface=127.0.0.1` | UDP |
/// | `tcp:1234:reusePort=1` | SO_REUSEPORT: several processes (or listeners) share the port |
/// | `haproxy:tcp:1234` | a PROXY protocol (v1 or v2) header first on every connection |
/// | `haproxy:headerTimeout=2:trusted=10.0.0.0/8:tcp:1234` | with the wrapper's options |
/// | `systemd:domain=INET:index=0`, `systemd:domain=UNIX:name=web` | a socket passed by systemd |
/// | `127.0.0.1:1234`, `[::1]:1234`, `:1234`, `1234`, `/tmp/sock`, `./sock` | the plain forms |
///
/// ```
/// use weft_core::ServerEndpoint;
/// let ep: ServerEndpoint = "tcp:1234:interface=127.0.0.1".parse().unwrap();
/// assert_eq!(ep, ServerEndpoint::Tcp { addr: "127.0.0.1:1234".parse().unwrap(), backlog: None, reuse_port: false });
/// assert_eq!(ep.to_string(), "tcp:1234:interface=127.0.0.1");
/// assert_eq!("127.0.0.1:1234".parse::<ServerEndpoint>(), Ok(ep));
/// assert_eq!(":80".parse::<ServerEndpoint>().unwrap().to_string(), "tcp:80:interface=0.0.0.0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEndpoint {
    /// TCP (`tcp:` and `tcp6:`).
    Tcp {
        /// Interface and port.
        addr: SocketAddr,
        /// Listen backlog, if given.
        backlog: Option<u32>,
        /// SO_REUSEPORT (`reusePort=1`): other sockets with the option may bind the same port,
        /// and the kernel spreads new connections over them. A listener that closes resets
        /// the connections still queued on it, so an instance drains by stopping accepting
        /// only as it exits (or uses systemd socket activation, which keeps one queue).
        reuse_port: bool,
    },
    /// A Unix stream socket.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// Permissions of the socket file (octal in the string).
        mode: Option<u32>,
        /// Listen backlog, if given.
        backlog: Option<u32>,
    },
    /// UDP.
    Udp {
        /// Interface and port.
        addr: SocketAddr,
    },
    /// TLS over TCP: `ssl:` (one key and certificate) and `tls:` (a directory of PEM files,
    /// chosen by SNI); see [`tls`](crate::tls).
    Tls {
        /// Interface and port (`ssl:` defaults to IPv4 `0.0.0.0`, `tls:` to `::`, which also
        /// takes IPv4 connections).
        addr: SocketAddr,
        /// Listen backlog, if given.
        backlog: Option<u32>,
        /// Certificates and TLS options.
        tls: Box<ServerTlsOptions>,
    },
    /// `haproxy:[OPTIONS:]ENDPOINT`: every connection starts with a PROXY protocol header
    /// (v1 or v2), which gives the client's real address; a connection without a valid one
    /// within the header timeout is closed before the protocol sees it.
    Proxied {
        /// The endpoint that accepts the connections (tcp, tcp6, unix or systemd).
        inner: Box<ServerEndpoint>,
        /// `headerTimeout=SECS` and `trusted=CIDR,...`.
        options: ProxyOptions,
    },
    /// `systemd:domain=INET|INET6|UNIX:index=N|name=NAME`: a listening socket passed by
    /// systemd socket activation (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`).
    Systemd {
        /// The socket family the unit must have passed.
        domain: SocketDomain,
        /// Which of the passed sockets.
        socket: SystemdSocket,
    },
}

/// The family of a socket passed by systemd (`domain=` of a `systemd:` endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketDomain {
    /// `INET`: TCP over IPv4.
    Inet,
    /// `INET6`: TCP over IPv6.
    Inet6,
    /// `UNIX`: a Unix stream socket.
    Unix,
}

/// Which passed socket a `systemd:` endpoint takes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SystemdSocket {
    /// `index=N`: the N-th passed descriptor (fd 3 + N).
    Index(usize),
    /// `name=NAME`: the descriptor whose `FileDescriptorName=` is NAME.
    Name(String),
}

impl ServerEndpoint {
    /// Plain TCP on `addr`, as `tcp:PORT:interface=IP` says.
    ///
    /// ```
    /// use weft_core::ServerEndpoint;
    /// let ep = ServerEndpoint::tcp("127.0.0.1:80".parse().unwrap());
    /// assert_eq!(ep.to_string(), "tcp:80:interface=127.0.0.1");
    /// assert_eq!(ServerEndpoint::udp("127.0.0.1:53".parse().unwrap()).to_string(), "udp:53:interface=127.0.0.1");
    /// ```
    pub fn tcp(addr: SocketAddr) -> Self {
        Self::Tcp {
            addr,
            backlog: None,
            reuse_port: false,
        }
    }

    /// UDP on `addr`, as `udp:PORT:interface=IP` says.
    ///
    /// See [`tcp`](Self::tcp) for an example.
    pub fn udp(addr: SocketAddr) -> Self {
        Self::Udp { addr }
    }

    /// The IP socket address of a TCP or UDP endpoint, for code that binds its own socket
    /// (`None` for a Unix endpoint).
    ///
    /// ```
    /// use weft_core::ServerEndpoint;
    /// let ep: ServerEndpoint = "tcp:0:interface=127.0.0.1".parse().unwrap();
    /// assert_eq!(ep.socket_addr(), Some("127.0.0.1:0".parse().unwrap()));
    /// assert_eq!("/tmp/s".parse::<ServerEndpoint>().unwrap().socket_addr(), None);
    /// ```
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp { addr, .. } | Self::Udp { addr } | Self::Tls { addr, .. } => Some(*addr),
            Self::Proxied { inner, .. } => inner.socket_addr(),
            Self::Unix { .. } | Self::Systemd { .. } => None,
        }
    }

    /// Parses `s` (an endpoint string or a plain form) as a TCP address to listen on, for
    /// programs that bind their own TCP socket.
    ///
    /// # Errors
    /// What [`from_str`](std::str::FromStr::from_str) says, or [`EndpointError::NotTcp`] for
    /// a Unix or UDP endpoint.
    ///
    /// ```
    /// use weft_core::{EndpointError, ServerEndpoint};
    /// assert_eq!(ServerEndpoint::parse_tcp("tcp:0:interface=127.0.0.1"), Ok("127.0.0.1:0".parse().unwrap()));
    /// assert!(matches!(ServerEndpoint::parse_tcp("/tmp/s"), Err(EndpointError::NotTcp { .. })));
    /// ```
    pub fn parse_tcp(s: &str) -> Result<SocketAddr, EndpointError> {
        match s.parse()? {
            Self::Tcp { addr, .. } => Ok(addr),
            other => Err(EndpointError::NotTcp {
                endpoint: other.to_string(),
            }),
        }
    }
}

/// Where to connect: parsed from a Twisted client endpoint string or a plain form (see the
/// [module](self) documentation).
///
/// `tcp:host=example.com:port=80:timeout=30` or `tcp:example.com:80`; `unix:path=/tmp/sock`
/// or `unix:/tmp/sock`; or `example.com:80`, `[::1]:80`, `/tmp/sock`. The timeout (seconds)
/// defaults to 30, as in Twisted.
///
/// ```
/// use weft_core::ClientEndpoint;
/// let ep: ClientEndpoint = "tcp:localhost:1234".parse().unwrap();
/// assert!(matches!(ep, ClientEndpoint::Tcp { ref host, port: 1234, .. } if host == "localhost"));
/// assert_eq!("localhost:1234".parse::<ClientEndpoint>(), Ok(ep));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEndpoint {
    /// TCP.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Connect timeout.
        timeout: Duration,
    },
    /// A Unix stream socket.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// Connect timeout.
        timeout: Duration,
    },
    /// TLS to `host:port` with the server's certificate verified for `host`
    /// (`tls:example.com:443`); with `via` set (`endpoint=`), the connection goes there (a
    /// Unix socket, another address) while the certificate is still verified for `host`.
    Tls {
        /// The name the certificate must be valid for (and where to connect unless `via`).
        host: String,
        /// Port.
        port: u16,
        /// Connect (and handshake) timeout.
        timeout: Duration,
        /// Trust roots and client certificate.
        tls: ClientTlsOptions,
        /// Where to connect instead of `host:port` (`endpoint=`, an escaped endpoint string).
        via: Option<Box<ClientEndpoint>>,
    },
}

impl ClientEndpoint {
    /// The TCP host and port a connection to this endpoint goes to: a `tcp:` endpoint's own,
    /// and for `tls:` its `endpoint=` when given (the certificate is still verified for the
    /// `tls:` host). `None` for Unix sockets (and `tls:` through one).
    ///
    /// ```
    /// use weft_core::ClientEndpoint;
    /// let ep: ClientEndpoint = r"tls:example.com:443:endpoint=tcp\:10.0.0.7\:8443".parse().unwrap();
    /// assert_eq!(ep.tcp_target(), Some(("10.0.0.7", 8443)));
    /// ```
    pub fn tcp_target(&self) -> Option<(&str, u16)> {
        match self {
            Self::Tcp { host, port, .. } => Some((host, *port)),
            Self::Tls { via: Some(via), .. } => via.tcp_target(),
            Self::Tls { host, port, .. } => Some((host, *port)),
            Self::Unix { .. } => None,
        }
    }
}

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One `:`-separated argument, unescaped.
enum Arg {
    Positional(String),
    Keyword(String, String),
}

/// Splits `s` into its type and arguments.
fn tokenize(s: &str) -> Result<(String, Vec<Arg>), EndpointError> {
    if s.is_empty() {
        return Err(EndpointError::Empty);
    }
    let mut segments: Vec<(String, Option<usize>)> = vec![(String::new(), None)];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let (cur, eq) = segments.last_mut().expect("never empty");
        match c {
            '\\' => cur.push(chars.next().ok_or(EndpointError::TrailingBackslash)?),
            ':' => segments.push((String::new(), None)),
            '=' if eq.is_none() => {
                *eq = Some(cur.len());
                cur.push('=');
            }
            c => cur.push(c),
        }
    }
    let mut it = segments.into_iter();
    let (kind, _) = it.next().expect("never empty");
    let args = it
        .map(|(seg, eq)| match eq {
            Some(i) => Arg::Keyword(seg[..i].to_owned(), seg[i + 1..].to_owned()),
            None => Arg::Positional(seg),
        })
        .collect();
    Ok((kind, args))
}

/// Binds positional arguments to `names` and collects keyword arguments, rejecting unknown and
/// duplicate ones.
fn bind(args: Vec<Arg>, names: &[&'static str]) -> Result<Args, EndpointError> {
    let mut out: Vec<Option<String>> = vec![None; names.len()];
    let mut next_pos = 0;
    for arg in args {
        let (i, value) = match arg {
            Arg::Positional(v) => {
                if next_pos >= names.len() {
                    return Err(EndpointError::ExtraPositional(v));
                }
                next_pos += 1;
                (next_pos - 1, v)
            }
            Arg::Keyword(k, v) => {
                let i = names
                    .iter()
                    .position(|n| *n == k)
                    .ok_or_else(|| EndpointError::UnknownArgument(k.clone()))?;
                (i, v)
            }
        };
        if out[i].is_some() {
            return Err(EndpointError::Duplicate(names[i].to_owned()));
        }
        out[i] = Some(value);
    }
    Ok(Args(out.into_iter()))
}

/// The values [`bind`] read, in the order of the names it was given.
struct Args(std::vec::IntoIter<Option<String>>);

impl Args {
    /// The next argument's value, if it was given.
    fn arg(&mut self) -> Option<String> {
        self.0.next().flatten()
    }

    /// The next argument's value: `Missing(what)` when it was not given or is empty.
    fn required(&mut self, what: &'static str) -> Result<String, EndpointError> {
        self.arg()
            .filter(|v| !v.is_empty())
            .ok_or(EndpointError::Missing(what))
    }
}

fn number<T: FromStr>(key: &str, v: &str) -> Result<T, EndpointError> {
    v.parse().map_err(|_| EndpointError::InvalidNumber {
        key: key.to_owned(),
        value: v.to_owned(),
    })
}

fn port(v: Option<String>) -> Result<u16, EndpointError> {
    number("port", &v.ok_or(EndpointError::Missing("port"))?)
}

fn interface(v: Option<String>, v6: bool) -> Result<IpAddr, EndpointError> {
    match v {
        None if v6 => Ok(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        None => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        Some(s) => {
            let ip = ip_or_localhost(&s, v6)?;
            if ip.is_ipv6() != v6 {
                return Err(EndpointError::InvalidInterface(s));
            }
            Ok(ip)
        }
    }
}

/// An IP address, or `localhost` (the loopback address of the family).
fn ip_or_localhost(s: &str, v6: bool) -> Result<IpAddr, EndpointError> {
    match s {
        "localhost" if v6 => Ok(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        "localhost" => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        s => s
            .parse()
            .map_err(|_| EndpointError::InvalidInterface(s.to_owned())),
    }
}

fn timeout(v: Option<String>) -> Result<Duration, EndpointError> {
    match v {
        None => Ok(DEFAULT_CONNECT_TIMEOUT),
        Some(s) => {
            let secs: f64 = number("timeout", &s)?;
            Duration::try_from_secs_f64(secs).map_err(|_| EndpointError::InvalidNumber {
                key: "timeout".into(),
                value: s,
            })
        }
    }
}

/// A duration in seconds (`0.5`, `10`) greater than zero, for the argument `key`.
fn positive_secs(key: &str, v: String) -> Result<Duration, EndpointError> {
    number::<f64>(key, &v)
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .filter(|d| !d.is_zero())
        .ok_or(EndpointError::InvalidNumber {
            key: key.to_owned(),
            value: v,
        })
}

/// A plain form, read before the endpoint grammar when the string does not start with a
/// known endpoint type.
#[derive(Debug)]
enum Plain<'a> {
    /// `HOST:PORT` or `[IPv6]:PORT` (`host` without brackets).
    HostPort(&'a str, u16),
    /// `:PORT` or `PORT`.
    Port(u16),
    /// `/path`, `./path`, `../path`.
    Path(&'a str),
}

/// Whether `s` starts with a known endpoint type followed by `:` (or is one alone).
fn is_endpoint_string(s: &str) -> bool {
    let kind = s.split(':').next().unwrap_or(s);
    KINDS.contains(&kind)
}

/// Reads `s` as a plain form, if it is one.
fn plain(s: &str) -> Option<Plain<'_>> {
    if s.starts_with('/') || s.starts_with("./") || s.starts_with("../") {
        return Some(Plain::Path(s));
    }
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if digits(port_only) {
        return port_only.parse().ok().map(Plain::Port);
    }
    let (host, port) = s.rsplit_once(':')?;
    if !digits(port) {
        return None;
    }
    let port = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']')?,
        // An unbracketed host with a colon is an IPv6 address whose port cannot be told apart.
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty()).then_some(Plain::HostPort(host, port))
}

impl FromStr for ServerEndpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, EndpointError> {
        if !is_endpoint_string(s) {
            match plain(s) {
                Some(Plain::Path(p)) => {
                    return Ok(Self::Unix {
                        path: PathBuf::from(p),
                        mode: None,
                        backlog: None,
                    });
                }
                Some(Plain::Port(port)) => {
                    return Ok(Self::Tcp {
                        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                        backlog: None,
                        reuse_port: false,
                    });
                }
                Some(Plain::HostPort(host, port)) => {
                    let ip = ip_or_localhost(host, false)?;
                    return Ok(Self::Tcp {
                        addr: SocketAddr::new(ip, port),
                        backlog: None,
                        reuse_port: false,
                    });
                }
                None if s.is_empty() => return Err(EndpointError::Empty),
                None => return Err(EndpointError::UnknownType(s.to_owned())),
            }
        }
        let (kind, args) = tokenize(s)?;
        Self::from_parts(s, &kind, args)
    }
}

/// `1`/`true`/`yes` or `0`/`false`/`no`.
fn flag(key: &'static str, v: &str) -> Result<bool, EndpointError> {
    match v {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(EndpointError::InvalidValue {
            key: key.to_owned(),
            value: v.to_owned(),
            expected: "1 or 0",
        }),
    }
}

impl ServerEndpoint {
    /// Builds the endpoint of type `kind` from its arguments (`s` is the whole string, for
    /// messages).
    fn from_parts(s: &str, kind: &str, args: Vec<Arg>) -> Result<Self, EndpointError> {
        match kind {
            "tcp" | "tcp6" => {
                // reusePort is a weft extension: keyword only, so Twisted's three positional
                // arguments keep their meaning.
                let mut reuse = None;
                let mut rest = Vec::with_capacity(args.len());
                for arg in args {
                    match arg {
                        Arg::Keyword(k, v) if k == "reusePort" => {
                            if reuse.replace(v).is_some() {
                                return Err(EndpointError::Duplicate(k));
                            }
                        }
                        other => rest.push(other),
                    }
                }
                let mut a = bind(rest, &["port", "interface", "backlog"])?;
                let port = port(a.arg())?;
                let ip = interface(a.arg(), kind == "tcp6")?;
                let backlog = backlog(a.arg())?;
                let reuse_port = reuse
                    .map(|v| flag("reusePort", &v))
                    .transpose()?
                    .unwrap_or(false);
                Ok(Self::Tcp {
                    addr: SocketAddr::new(ip, port),
                    backlog,
                    reuse_port,
                })
            }
            "haproxy" => Self::proxied(args),
            "systemd" => {
                let mut a = bind(args, &["domain", "index", "name"])?;
                let domain = match a.arg().as_deref() {
                    Some("INET") => SocketDomain::Inet,
                    Some("INET6") => SocketDomain::Inet6,
                    Some("UNIX") => SocketDomain::Unix,
                    Some(other) => {
                        return Err(EndpointError::InvalidValue {
                            key: "domain".into(),
                            value: other.to_owned(),
                            expected: "INET, INET6 or UNIX",
                        });
                    }
                    None => return Err(EndpointError::Missing("domain (INET, INET6 or UNIX)")),
                };
                let socket = match (a.arg(), a.arg()) {
                    (Some(i), None) => SystemdSocket::Index(number("index", &i)?),
                    (None, Some(n)) if !n.is_empty() => SystemdSocket::Name(n),
                    _ => {
                        return Err(EndpointError::Conflict(
                            "give exactly one of index=N and name=NAME",
                        ));
                    }
                };
                Ok(Self::Systemd { domain, socket })
            }
            "udp" | "udp6" => {
                let mut a = bind(args, &["port", "interface"])?;
                let port = port(a.arg())?;
                let ip = interface(a.arg(), kind == "udp6")?;
                Ok(Self::Udp {
                    addr: SocketAddr::new(ip, port),
                })
            }
            "unix" => {
                let mut a = bind(args, &["address", "mode", "backlog", "lockfile"])?;
                let path = a.required("address (the socket path)")?;
                let mode = a
                    .arg()
                    .map(|m| {
                        u32::from_str_radix(&m, 8)
                            .ok()
                            .filter(|m| *m <= 0o7777)
                            .ok_or(EndpointError::InvalidNumber {
                                key: "mode".into(),
                                value: m,
                            })
                    })
                    .transpose()?;
                let backlog = backlog(a.arg())?;
                Ok(Self::Unix {
                    path: PathBuf::from(path),
                    mode,
                    backlog,
                })
            }
            "ssl" => parse_ssl(args),
            "tls" => parse_tls_server(args),
            _ => Err(EndpointError::UnknownType(s.to_owned())),
        }
    }

    /// `haproxy:` arguments: the wrapper's own `key=value` options first, then the inner
    /// endpoint's type and arguments.
    fn proxied(args: Vec<Arg>) -> Result<Self, EndpointError> {
        let mut options = ProxyOptions::default();
        let mut it = args.into_iter();
        let inner_kind = loop {
            match it.next() {
                Some(Arg::Keyword(k, v)) if k == "headerTimeout" => {
                    options.header_timeout = positive_secs("headerTimeout", v)?;
                }
                Some(Arg::Keyword(k, v)) if k == "trusted" => {
                    options.trusted = v
                        .split(',')
                        .map(|c| c.trim().parse::<Cidr>())
                        .collect::<Result<_, _>>()
                        .map_err(|_| EndpointError::InvalidValue {
                            key: "trusted".into(),
                            value: v.clone(),
                            expected: r"IP networks separated by commas, e.g. 10.0.0.0/8,\:\:1",
                        })?;
                }
                Some(Arg::Keyword(k, _)) => return Err(EndpointError::UnknownArgument(k)),
                Some(Arg::Positional(kind)) if !kind.is_empty() => break kind,
                Some(Arg::Positional(_)) | None => {
                    return Err(EndpointError::Missing(
                        "the endpoint after haproxy: (e.g. haproxy:tcp:1234)",
                    ));
                }
            }
        };
        let rest: Vec<Arg> = it.collect();
        let inner = Self::from_parts(&inner_kind, &inner_kind, rest)?;
        match &inner {
            Self::Udp { .. } => Err(EndpointError::Conflict(
                "haproxy: wraps stream endpoints (tcp, tcp6, unix, systemd), not udp",
            )),
            Self::Proxied { .. } => Err(EndpointError::Conflict("haproxy: given twice")),
            Self::Unix { .. } if !options.trusted.is_empty() => Err(EndpointError::Conflict(
                "trusted= takes IP networks: a unix socket's peers have none (use its mode=)",
            )),
            _ => Ok(Self::Proxied {
                inner: Box::new(inner),
                options,
            }),
        }
    }
}

/// An interface of either family (`ssl:` and `tls:` take IPv6 too).
fn any_interface(v: Option<String>, default: IpAddr) -> Result<IpAddr, EndpointError> {
    match v {
        None => Ok(default),
        Some(s) => s.parse().map_err(|_| EndpointError::InvalidInterface(s)),
    }
}

fn backlog(v: Option<String>) -> Result<Option<u32>, EndpointError> {
    v.map(|b| number("backlog", &b)).transpose()
}

fn path(v: Option<String>) -> Option<PathBuf> {
    v.filter(|p| !p.is_empty()).map(PathBuf::from)
}

/// The arguments `ssl:` and `tls:` end with, read by [`tls_server`].
const TLS_SERVER_OPTIONS: [&str; 3] = ["alpn", "handshakeTimeout", "clientCA"];

/// The TLS server endpoint on `ip:port`, its [`TLS_SERVER_OPTIONS`] the rest of `a`.
fn tls_server(
    mut opts: ServerTlsOptions,
    a: &mut Args,
    ip: IpAddr,
    port: u16,
    backlog: Option<u32>,
) -> Result<ServerEndpoint, EndpointError> {
    let (alpn, handshake, client_ca) = (a.arg(), a.arg(), a.arg());
    if let Some(a) = alpn {
        let protos: Vec<String> = a.split(',').map(str::trim).map(str::to_owned).collect();
        if protos.iter().any(|p| p.is_empty() || p.len() > 255) {
            return Err(EndpointError::InvalidValue {
                key: "alpn".into(),
                value: a,
                expected: "a comma-separated list of protocol names, like h2,http/1.1",
            });
        }
        opts.alpn = protos;
    }
    if let Some(h) = handshake {
        opts.handshake_timeout = positive_secs("handshakeTimeout", h)?;
    }
    opts.client_ca = path(client_ca);
    Ok(ServerEndpoint::Tls {
        addr: SocketAddr::new(ip, port),
        backlog,
        tls: Box::new(opts),
    })
}

/// `ssl:PORT:privateKey=KEY:certKey=CERT:...`, Twisted's argument order.
fn parse_ssl(args: Vec<Arg>) -> Result<ServerEndpoint, EndpointError> {
    let names = [
        "port",
        "privateKey",
        "certKey",
        "sslmethod",
        "interface",
        "backlog",
        "extraCertChain",
        "dhParameters",
    ];
    let mut a = bind(args, &[&names[..], &TLS_SERVER_OPTIONS].concat())?;
    let port = port(a.arg())?;
    let private_key = path(a.arg()).unwrap_or_else(|| PathBuf::from("server.pem"));
    let cert = path(a.arg());
    let method = a.arg();
    let ip = any_interface(a.arg(), IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
    let backlog = backlog(a.arg())?;
    let chain = path(a.arg());
    if a.arg().is_some() {
        return Err(EndpointError::Unsupported {
            key: "dhParameters".into(),
            reason: "rustls has no finite-field DHE; its ECDHE key exchange (X25519, P-256) needs no parameters file: remove the argument",
        });
    }
    let mut opts = ServerTlsOptions::new(CertSource::files(private_key, cert, chain));
    if let Some(m) = method {
        opts.min_version =
            TlsVersion::from_method(&m).ok_or_else(|| EndpointError::InvalidValue {
                key: "sslmethod".into(),
                value: m,
                expected: "TLSv1_2_METHOD or TLSv1_3_METHOD (rustls speaks TLS 1.2 and 1.3 only)",
            })?;
    }
    tls_server(opts, &mut a, ip, port, backlog)
}

/// `tls:DIR:port=443:interface=::`, Twisted 26's SNI endpoint.
fn parse_tls_server(args: Vec<Arg>) -> Result<ServerEndpoint, EndpointError> {
    let names = ["directory", "port", "interface", "backlog"];
    let mut a = bind(args, &[&names[..], &TLS_SERVER_OPTIONS].concat())?;
    let dir = path(a.arg()).ok_or(EndpointError::Missing(
        "the directory of PEM files (tls:DIR:port=443)",
    ))?;
    let port = match a.arg() {
        None => 443,
        Some(p) => port(Some(p))?,
    };
    let ip = any_interface(a.arg(), IpAddr::V6(Ipv6Addr::UNSPECIFIED))?;
    let backlog = backlog(a.arg())?;
    let opts = ServerTlsOptions::new(CertSource::Directory(dir));
    tls_server(opts, &mut a, ip, port, backlog)
}

/// `tls:HOST:PORT:timeout=:trustRoots=:certificate=:privateKey=:endpoint=`, Twisted's
/// client grammar.
fn parse_tls_client(args: Vec<Arg>) -> Result<ClientEndpoint, EndpointError> {
    let mut a = bind(
        args,
        &[
            "host",
            "port",
            "timeout",
            "bindAddress",
            "certificate",
            "privateKey",
            "trustRoots",
            "endpoint",
            "alpn",
        ],
    )?;
    let host = a.required("host")?;
    let port = port(a.arg())?;
    let timeout = timeout(a.arg())?;
    if a.arg().is_some() {
        return Err(EndpointError::Unsupported {
            key: "bindAddress".into(),
            reason: "weft does not bind client sockets to a local address yet",
        });
    }
    let mut tls = ClientTlsOptions {
        certificate: path(a.arg()),
        private_key: path(a.arg()),
        trust_roots: path(a.arg()),
        ..ClientTlsOptions::default()
    };
    let via = a
        .arg()
        .map(|e| e.parse::<ClientEndpoint>().map(Box::new))
        .transpose()?;
    if let Some(a) = a.arg() {
        tls.alpn = a.split(',').map(str::trim).map(str::to_owned).collect();
    }
    if tls.private_key.is_some() && tls.certificate.is_none() {
        return Err(EndpointError::Missing(
            "certificate (privateKey= needs its certificate=)",
        ));
    }
    Ok(ClientEndpoint::Tls {
        host,
        port,
        timeout,
        tls,
        via,
    })
}

impl FromStr for ClientEndpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, EndpointError> {
        if !is_endpoint_string(s) {
            let (host, port) = match plain(s) {
                Some(Plain::Path(p)) => {
                    return Ok(Self::Unix {
                        path: PathBuf::from(p),
                        timeout: DEFAULT_CONNECT_TIMEOUT,
                    });
                }
                Some(Plain::Port(port)) => ("localhost", port),
                Some(Plain::HostPort(host, port)) => (host, port),
                None if s.is_empty() => return Err(EndpointError::Empty),
                None => return Err(EndpointError::UnknownType(s.to_owned())),
            };
            return Ok(Self::Tcp {
                host: host.to_owned(),
                port,
                timeout: DEFAULT_CONNECT_TIMEOUT,
            });
        }
        let (kind, args) = tokenize(s)?;
        match kind.as_str() {
            "tcp" | "tcp6" => {
                let mut a = bind(args, &["host", "port", "timeout", "bindAddress"])?;
                let host = a.required("host")?;
                let port = port(a.arg())?;
                let timeout = timeout(a.arg())?;
                Ok(Self::Tcp {
                    host,
                    port,
                    timeout,
                })
            }
            "unix" => {
                let mut a = bind(args, &["path", "timeout", "checkPID"])?;
                let path = a.required("path")?;
                let timeout = timeout(a.arg())?;
                Ok(Self::Unix {
                    path: PathBuf::from(path),
                    timeout,
                })
            }
            "tls" => parse_tls_client(args),
            _ => Err(EndpointError::UnknownType(s.to_owned())),
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace('=', "\\=")
}

impl fmt::Display for ServerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp {
                addr,
                backlog,
                reuse_port,
            } => {
                let kind = if addr.is_ipv6() { "tcp6" } else { "tcp" };
                write!(
                    f,
                    "{kind}:{}:interface={}",
                    addr.port(),
                    escape(&addr.ip().to_string())
                )?;
                if let Some(b) = backlog {
                    write!(f, ":backlog={b}")?;
                }
                if *reuse_port {
                    f.write_str(":reusePort=1")?;
                }
                Ok(())
            }
            Self::Proxied { inner, options } => {
                f.write_str("haproxy:")?;
                if options.header_timeout != crate::proxy::DEFAULT_HEADER_TIMEOUT {
                    write!(f, "headerTimeout={}:", options.header_timeout.as_secs_f64())?;
                }
                if !options.trusted.is_empty() {
                    let list: Vec<String> =
                        options.trusted.iter().map(ToString::to_string).collect();
                    write!(f, "trusted={}:", escape(&list.join(",")))?;
                }
                inner.fmt(f)
            }
            Self::Systemd { domain, socket } => {
                let domain = match domain {
                    SocketDomain::Inet => "INET",
                    SocketDomain::Inet6 => "INET6",
                    SocketDomain::Unix => "UNIX",
                };
                match socket {
                    SystemdSocket::Index(i) => write!(f, "systemd:domain={domain}:index={i}"),
                    SystemdSocket::Name(n) => {
                        write!(f, "systemd:domain={domain}:name={}", escape(n))
                    }
                }
            }
            Self::Unix {
                path,
                mode,
                backlog,
            } => {
                write!(f, "unix:{}", escape(&path.to_string_lossy()))?;
                if let Some(m) = mode {
                    write!(f, ":mode={m:o}")?;
                }
                if let Some(b) = backlog {
                    write!(f, ":backlog={b}")?;
                }
                Ok(())
            }
            Self::Udp { addr } => {
                let kind = if addr.is_ipv6() { "udp6" } else { "udp" };
                write!(
                    f,
                    "{kind}:{}:interface={}",
                    addr.port(),
                    escape(&addr.ip().to_string())
                )
            }
            Self::Tls { addr, backlog, tls } => {
                let p = |p: &std::path::Path| escape(&p.to_string_lossy());
                match &tls.certs {
                    CertSource::Files {
                        private_key,
                        cert,
                        chain,
                    } => {
                        write!(f, "ssl:{}:privateKey={}", addr.port(), p(private_key))?;
                        if let Some(c) = cert {
                            write!(f, ":certKey={}", p(c))?;
                        }
                        if let Some(c) = chain {
                            write!(f, ":extraCertChain={}", p(c))?;
                        }
                        if let Some(v) = tls.min_version {
                            write!(f, ":sslmethod={}", v.method())?;
                        }
                    }
                    CertSource::Directory(dir) => write!(f, "tls:{}:port={}", p(dir), addr.port())?,
                }
                write!(f, ":interface={}", escape(&addr.ip().to_string()))?;
                if let Some(b) = backlog {
                    write!(f, ":backlog={b}")?;
                }
                if !tls.alpn.is_empty() {
                    write!(f, ":alpn={}", escape(&tls.alpn.join(",")))?;
                }
                if tls.handshake_timeout != crate::tls::DEFAULT_HANDSHAKE_TIMEOUT {
                    write!(
                        f,
                        ":handshakeTimeout={}",
                        tls.handshake_timeout.as_secs_f64()
                    )?;
                }
                if let Some(ca) = &tls.client_ca {
                    write!(f, ":clientCA={}", p(ca))?;
                }
                Ok(())
            }
        }
    }
}
