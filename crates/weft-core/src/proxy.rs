//! The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy, nginx `stream`, AWS NLB
//! and Envoy send it in front of a connection to tell the server who the real client is
//! (`haproxy:` endpoints; HAProxy's `doc/proxy-protocol.txt`).
//!
//! [`parse`] is a pure, incremental parser: it is given everything received so far and says
//! "complete, this long", "need more" or "invalid", so a header may arrive one byte per read.
//! [`header_room`] says how many more bytes certainly belong to the header, so a reader can
//! take the header off a socket without ever reading past it: what follows (a TLS handshake,
//! the protocol's first bytes) stays in the socket for whoever comes next.
//!
//! ```
//! use weft_core::proxy::{parse, Command};
//! let (header, len) = parse(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nHELLO")
//!     .unwrap()
//!     .expect("complete");
//! assert_eq!(len, 45);
//! assert_eq!(header.command, Command::Proxy);
//! assert_eq!(header.source.unwrap().to_string(), "192.0.2.1:56324");
//! assert_eq!(header.destination.unwrap().to_string(), "198.51.100.2:443");
//! // A prefix is "need more", never an error.
//! assert!(parse(b"PROXY TCP4 192.0.2.1 198.51.100.2 5").unwrap().is_none());
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::Address;

/// The 12-byte signature that starts a version 2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest version 1 header, CRLF included (the spec's limit).
pub const V1_MAX_LEN: usize = 107;

/// The longest version 2 header weft accepts (16-byte fixed part, addresses and TLVs). The
/// format allows 64 KiB; real senders stay far below (HAProxy's largest, with every SSL TLV,
/// is a few hundred bytes), and a cap keeps a connection from holding 64 KiB before it is even
/// known.
pub const V2_MAX_LEN: usize = 4096;

/// The shortest valid header (`PROXY UNKNOWN\r\n`): reading this much never reads past one.
const MIN_LEN: usize = 15;

/// Default time a connection gets to send its whole header (5 s; the spec asks for at least
/// 3 s).
///
/// ```
/// assert_eq!(weft_core::proxy::DEFAULT_HEADER_TIMEOUT.as_secs(), 5);
/// ```
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// What is wrong with a PROXY header (or with the connection that should have sent one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The first bytes are neither `PROXY ` nor the version 2 signature: the peer sent no
    /// header (a PROXY port never guesses, so this connection is refused).
    #[error("no PROXY protocol header (the connection did not start with one)")]
    NotProxy,
    /// A version 1 line that breaks the grammar (the reason says where).
    #[error("invalid PROXY v1 header: {0}")]
    InvalidV1(&'static str),
    /// A version 1 line with no CRLF within 107 bytes.
    #[error("PROXY v1 header longer than 107 bytes")]
    V1TooLong,
    /// A version 2 header that breaks the format (the reason says where).
    #[error("invalid PROXY v2 header: {0}")]
    InvalidV2(&'static str),
    /// A version 2 header longer than [`V2_MAX_LEN`].
    #[error("PROXY v2 header of {0} bytes (at most {V2_MAX_LEN} accepted)")]
    V2TooLong(usize),
    /// The connection closed before the header was complete.
    #[error("connection closed in the PROXY header (after {0} bytes)")]
    Truncated(usize),
    /// The header did not arrive within the header timeout.
    #[error("no complete PROXY header within {0:?}")]
    Timeout(Duration),
    /// The connection does not come from a trusted proxy (`trusted=`).
    #[error("connection from {0}, which is not a trusted proxy")]
    Untrusted(Address),
    /// Reading the socket failed.
    #[error("reading the PROXY header: {0}")]
    Io(String),
}

/// What the proxy says the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// A proxied connection: the addresses are the client's and the proxy's front.
    Proxy,
    /// The proxy's own connection (a health check): use the socket's real addresses
    /// (version 2 `LOCAL`, version 1 `UNKNOWN`).
    Local,
}

/// The transport protocol the header names (version 2; version 1 is always a stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// `UNSPEC`: not given.
    Unspecified,
    /// `STREAM`: TCP or a Unix stream socket.
    Stream,
    /// `DGRAM`: UDP or a Unix datagram socket.
    Datagram,
}

/// One type-length-value field of a version 2 header: ALPN, authority (SNI), unique id, SSL
/// information, or anything else the proxy sends (unknown types are kept, not dropped).
///
/// ```
/// use weft_core::proxy::Tlv;
/// let alpn = Tlv { kind: Tlv::ALPN, value: b"h2".to_vec() };
/// assert_eq!(alpn.to_string(), "ALPN=\"h2\"");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Tlv {
    /// The type byte (`PP2_TYPE_*`).
    pub kind: u8,
    /// The value, as sent.
    pub value: Vec<u8>,
}

impl Tlv {
    /// `PP2_TYPE_ALPN`: the application protocol the client negotiated.
    pub const ALPN: u8 = 0x01;
    /// `PP2_TYPE_AUTHORITY`: the host name the client asked for (TLS SNI).
    pub const AUTHORITY: u8 = 0x02;
    /// `PP2_TYPE_CRC32C`: a checksum of the header (not verified by weft).
    pub const CRC32C: u8 = 0x03;
    /// `PP2_TYPE_NOOP`: padding.
    pub const NOOP: u8 = 0x04;
    /// `PP2_TYPE_UNIQUE_ID`: an opaque id of the connection, as the proxy logs it.
    pub const UNIQUE_ID: u8 = 0x05;
    /// `PP2_TYPE_SSL`: the client's TLS session (a client byte, a verify word, sub-TLVs).
    pub const SSL: u8 = 0x20;
    /// `PP2_TYPE_NETNS`: the network namespace the connection was accepted in.
    pub const NETNS: u8 = 0x30;

    fn name(kind: u8) -> Option<&'static str> {
        Some(match kind {
            Self::ALPN => "ALPN",
            Self::AUTHORITY => "AUTHORITY",
            Self::CRC32C => "CRC32C",
            Self::NOOP => "NOOP",
            Self::UNIQUE_ID => "UNIQUE_ID",
            Self::SSL => "SSL",
            Self::NETNS => "NETNS",
            _ => return None,
        })
    }
}

impl fmt::Debug for Tlv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Tlv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Self::name(self.kind) {
            Some(n) => write!(f, "{n}=")?,
            None => write!(f, "0x{:02x}=", self.kind)?,
        }
        write!(f, "{:?}", self.value.escape_ascii().to_string())
    }
}

/// A parsed PROXY header.
///
/// `source` and `destination` are `None` for a `LOCAL` (version 2) or `UNKNOWN` (version 1)
/// header and for the `UNSPEC` family: the connection's own addresses apply then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 (text) or 2 (binary).
    pub version: u8,
    /// Proxied connection or the proxy's own.
    pub command: Command,
    /// Stream or datagram, as the header says.
    pub transport: Transport,
    /// The client (the connection's real source).
    pub source: Option<Address>,
    /// Where the client connected to (the proxy's front address).
    pub destination: Option<Address>,
    /// Version 2 TLVs, in the order sent (empty for version 1).
    pub tlvs: Vec<Tlv>,
}

impl ProxyHeader {
    /// The first TLV of type `kind`, if any.
    ///
    /// ```
    /// use weft_core::proxy::{parse, Tlv};
    /// let mut h = weft_core::proxy::V2_SIGNATURE.to_vec();
    /// h.extend_from_slice(&[0x21, 0x11, 0, 12 + 5]);
    /// h.extend_from_slice(&[192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb]);
    /// h.extend_from_slice(&[Tlv::ALPN, 0, 2, b'h', b'2']);
    /// let (header, _) = parse(&h).unwrap().unwrap();
    /// assert_eq!(header.tlv(Tlv::ALPN), Some(&b"h2"[..]));
    /// ```
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|t| t.kind == kind)
            .map(|t| t.value.as_slice())
    }
}

/// Parses a PROXY header (version 1 or 2) at the start of `buf`.
///
/// Returns `Ok(Some((header, len)))` once the whole header is there (`len` bytes; what
/// follows is the connection's data), `Ok(None)` while every byte so far is a valid start of
/// a header, and an error as soon as one byte makes it invalid. See the
/// [module](self) documentation for an example.
///
/// # Errors
/// [`ProxyError::NotProxy`] if `buf` starts with neither version's signature; the other
/// variants for a malformed or oversized header.
pub fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    match buf.first() {
        None => Ok(None),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err(ProxyError::NotProxy),
    }
}

/// How many more bytes certainly belong to the header that `buf` starts (valid or not):
/// reading at most this many never takes a byte of the connection's data. Never 0 while
/// [`parse`] says "need more".
///
/// ```
/// use weft_core::proxy::header_room;
/// assert_eq!(header_room(b""), 15); // the shortest header is `PROXY UNKNOWN\r\n`
/// assert_eq!(header_room(b"PROXY UNKNOWN\r"), 1);
/// ```
pub fn header_room(buf: &[u8]) -> usize {
    let len = buf.len();
    if len < MIN_LEN {
        return MIN_LEN - len;
    }
    if buf[0] == b'\r' {
        // Version 2: the fixed part, then the length it declares.
        if len < 16 {
            return 16 - len;
        }
        let declared = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        return (16 + declared).saturating_sub(len).max(1);
    }
    // Version 1: a CRLF still to come.
    if buf[len - 1] == b'\r' { 1 } else { 2 }
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    const PREFIX: &[u8] = b"PROXY ";
    let n = buf.len().min(PREFIX.len());
    if buf[..n] != PREFIX[..n] {
        return Err(ProxyError::NotProxy);
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    // Only printable ASCII and the final CRLF: a lone CR or LF, or a binary byte, is refused
    // as soon as it arrives.
    let mut end = None;
    for (i, &b) in window.iter().enumerate() {
        match b {
            b'\r' => match window.get(i + 1) {
                Some(b'\n') => {
                    end = Some(i);
                    break;
                }
                Some(_) => return Err(ProxyError::InvalidV1("CR not followed by LF")),
                None => {}
            },
            b'\n' => return Err(ProxyError::InvalidV1("LF without CR")),
            b' '..=b'~' => {}
            _ => return Err(ProxyError::InvalidV1("a byte that is not printable ASCII")),
        }
    }
    let Some(end) = end else {
        if buf.len() >= V1_MAX_LEN {
            return Err(ProxyError::V1TooLong);
        }
        check_v1_protocol(&buf[PREFIX.len().min(buf.len())..])?;
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[PREFIX.len()..end])
        .map_err(|_| ProxyError::InvalidV1("not ASCII"))?;
    let header = v1_fields(line)?;
    Ok(Some((header, end + 2)))
}

/// Refuses an unknown protocol word as soon as it cannot become `TCP4 `, `TCP6 ` or
/// `UNKNOWN`.
fn check_v1_protocol(rest: &[u8]) -> Result<(), ProxyError> {
    let ok = [&b"TCP4 "[..], b"TCP6 ", b"UNKNOWN"].iter().any(|p| {
        let n = rest.len().min(p.len());
        rest[..n] == p[..n]
    });
    if ok {
        Ok(())
    } else {
        Err(ProxyError::InvalidV1(
            "protocol is not TCP4, TCP6 or UNKNOWN",
        ))
    }
}

fn v1_fields(line: &str) -> Result<ProxyHeader, ProxyError> {
    let local = |_| ProxyHeader {
        version: 1,
        command: Command::Local,
        transport: Transport::Stream,
        source: None,
        destination: None,
        tlvs: Vec::new(),
    };
    // `UNKNOWN` may be followed by anything up to the CRLF, which the receiver ignores.
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return Ok(local(()));
    }
    let mut parts = line.split(' ');
    let proto = parts.next().unwrap_or_default();
    let v6 = match proto {
        "TCP4" => false,
        "TCP6" => true,
        _ => {
            return Err(ProxyError::InvalidV1(
                "protocol is not TCP4, TCP6 or UNKNOWN",
            ));
        }
    };
    let mut next = |what| parts.next().ok_or(ProxyError::InvalidV1(what));
    let (src, dst) = (
        next("missing source address")?,
        next("missing destination address")?,
    );
    let (sport, dport) = (
        next("missing source port")?,
        next("missing destination port")?,
    );
    if parts.next().is_some() {
        return Err(ProxyError::InvalidV1("extra fields after the ports"));
    }
    let ip = |s: &str| -> Result<IpAddr, ProxyError> {
        if v6 {
            s.parse::<Ipv6Addr>().map(IpAddr::V6)
        } else {
            s.parse::<Ipv4Addr>().map(IpAddr::V4)
        }
        .map_err(|_| ProxyError::InvalidV1("address is not of the protocol's family"))
    };
    let port = |s: &str| -> Result<u16, ProxyError> {
        let leading_zero = s.len() > 1 && s.starts_with('0');
        match s.parse::<u16>() {
            Ok(p) if !leading_zero && s.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
            _ => Err(ProxyError::InvalidV1(
                "port is not a number from 0 to 65535",
            )),
        }
    };
    Ok(ProxyHeader {
        version: 1,
        command: Command::Proxy,
        transport: Transport::Stream,
        source: Some(Address::Inet(SocketAddr::new(ip(src)?, port(sport)?))),
        destination: Some(Address::Inet(SocketAddr::new(ip(dst)?, port(dport)?))),
        tlvs: Vec::new(),
    })
}

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(ProxyError::NotProxy);
    }
    let command = match buf.get(12) {
        None => return Ok(None),
        Some(b) if b >> 4 != 2 => return Err(ProxyError::InvalidV2("version is not 2")),
        Some(b) => match b & 0x0f {
            0 => Command::Local,
            1 => Command::Proxy,
            _ => return Err(ProxyError::InvalidV2("command is neither LOCAL nor PROXY")),
        },
    };
    let (family, transport) = match buf.get(13) {
        None => return Ok(None),
        Some(b) => {
            let transport = match b & 0x0f {
                0 => Transport::Unspecified,
                1 => Transport::Stream,
                2 => Transport::Datagram,
                _ => return Err(ProxyError::InvalidV2("unknown transport protocol")),
            };
            if b >> 4 > 3 {
                return Err(ProxyError::InvalidV2("unknown address family"));
            }
            (b >> 4, transport)
        }
    };
    if buf.len() < 16 {
        return Ok(None);
    }
    let declared = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = 16 + declared;
    if total > V2_MAX_LEN {
        return Err(ProxyError::V2TooLong(total));
    }
    let addr_len = match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if command == Command::Proxy && declared < addr_len {
        return Err(ProxyError::InvalidV2(
            "length too short for the addresses of its family",
        ));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let block = &buf[16..total];
    let mut header = ProxyHeader {
        version: 2,
        command,
        transport,
        source: None,
        destination: None,
        tlvs: Vec::new(),
    };
    // LOCAL: "the receiver must use the real connection endpoints and discard the protocol
    // block including the family".
    if command == Command::Local {
        return Ok(Some((header, total)));
    }
    let a = &block[..addr_len];
    let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
    match family {
        1 => {
            let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]));
            header.source = Some(Address::Inet(SocketAddr::new(ip(0), port(8))));
            header.destination = Some(Address::Inet(SocketAddr::new(ip(4), port(10))));
        }
        2 => {
            let ip = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            header.source = Some(Address::Inet(SocketAddr::new(ip(0), port(32))));
            header.destination = Some(Address::Inet(SocketAddr::new(ip(16), port(34))));
        }
        3 => {
            header.source = Some(unix_address(&a[..108]));
            header.destination = Some(unix_address(&a[108..]));
        }
        _ => {}
    }
    header.tlvs = tlvs(&block[addr_len..])?;
    Ok(Some((header, total)))
}

/// A 108-byte `sun_path`: the path up to its first NUL; empty is an unnamed socket.
fn unix_address(raw: &[u8]) -> Address {
    use std::os::unix::ffi::OsStrExt;
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    if end == 0 {
        return Address::Unix(None);
    }
    Address::Unix(Some(PathBuf::from(std::ffi::OsStr::from_bytes(
        &raw[..end],
    ))))
}

fn tlvs(mut rest: &[u8]) -> Result<Vec<Tlv>, ProxyError> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 3 {
            return Err(ProxyError::InvalidV2("a TLV cut in its type or length"));
        }
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let value = rest
            .get(3..3 + len)
            .ok_or(ProxyError::InvalidV2("a TLV longer than the header"))?;
        out.push(Tlv {
            kind: rest[0],
            value: value.to_vec(),
        });
        rest = &rest[3 + len..];
    }
    Ok(out)
}

/// An IP network (`10.0.0.0/8`, `2001:db8::/32`, or one address): `trusted=` takes a list.
///
/// ```
/// use weft_core::proxy::Cidr;
/// let net: Cidr = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// assert!(!net.contains("11.0.0.1".parse().unwrap()));
/// let one: Cidr = "::1".parse().unwrap();
/// assert!(one.contains("::1".parse().unwrap()));
/// assert_eq!(one.to_string(), "::1/128");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an IP address or network (10.0.0.0/8, ::1/128)");
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The options of a `haproxy:` endpoint: `haproxy:headerTimeout=2:trusted=10.0.0.0/8:tcp:1234`.
///
/// ```
/// use weft_core::proxy::ProxyOptions;
/// let opts = ProxyOptions::default();
/// assert_eq!(opts.header_timeout.as_secs(), 5);
/// assert!(opts.trusted.is_empty()); // any source may send a header
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct ProxyOptions {
    /// How long a connection gets to send its whole header before it is closed.
    pub header_timeout: Duration,
    /// The proxies whose connections are accepted (empty: any). A connection from elsewhere
    /// is closed before a byte of it is read.
    pub trusted: Vec<Cidr>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            trusted: Vec::new(),
        }
    }
}

impl ProxyOptions {
    /// Whether a connection from `socket_peer` may send a header. Unix sockets are always
    /// trusted (`trusted=` is refused for them when the endpoint is parsed).
    ///
    /// ```
    /// use weft_core::{proxy::ProxyOptions, Address};
    /// let mut opts = ProxyOptions::default();
    /// opts.trusted = vec!["127.0.0.0/8".parse().unwrap()];
    /// let lo = Address::from("127.0.0.1:9".parse::<std::net::SocketAddr>().unwrap());
    /// let far = Address::from("192.0.2.1:9".parse::<std::net::SocketAddr>().unwrap());
    /// assert!(opts.trusts(&lo) && !opts.trusts(&far));
    /// ```
    pub fn trusts(&self, socket_peer: &Address) -> bool {
        match socket_peer.as_inet() {
            Some(a) => self.trusted.is_empty() || self.trusted.iter().any(|c| c.contains(a.ip())),
            None => true,
        }
    }
}

/// A socket a header can be read from: TCP can look ahead (`MSG_PEEK`), so a version 1 line is
/// taken in one read once its end is seen; a Unix stream socket cannot (std's `peek` is not
/// stable for it), so its reads are bounded by [`header_room`] instead.
pub(crate) trait HeaderSource: tokio::io::AsyncRead + Unpin {
    /// Looks at what is queued without taking it; `None` if this kind of socket cannot.
    fn peek<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl std::future::Future<Output = Option<std::io::Result<usize>>> + Send + 'a;
}

impl HeaderSource for tokio::net::TcpStream {
    async fn peek<'a>(&'a mut self, buf: &'a mut [u8]) -> Option<std::io::Result<usize>> {
        Some(tokio::net::TcpStream::peek(self, buf).await)
    }
}

impl HeaderSource for tokio::net::UnixStream {
    async fn peek<'a>(&'a mut self, _buf: &'a mut [u8]) -> Option<std::io::Result<usize>> {
        None
    }
}

/// Takes the PROXY header off `stream`, and nothing after it: checks `trusted=` first, then
/// reads within the header timeout. What follows the header (the protocol's first bytes, a
/// TLS handshake) is left in the socket.
pub(crate) async fn read_header<S: HeaderSource>(
    stream: &mut S,
    socket_peer: &Address,
    opts: &ProxyOptions,
) -> Result<ProxyHeader, ProxyError> {
    if !opts.trusts(socket_peer) {
        return Err(ProxyError::Untrusted(socket_peer.clone()));
    }
    match tokio::time::timeout(opts.header_timeout, take_header(stream)).await {
        Ok(r) => r,
        Err(_) => Err(ProxyError::Timeout(opts.header_timeout)),
    }
}

async fn take_header<S: HeaderSource>(stream: &mut S) -> Result<ProxyHeader, ProxyError> {
    use tokio::io::AsyncReadExt;
    let io = |e: std::io::Error| ProxyError::Io(e.to_string());
    let mut buf: Vec<u8> = Vec::with_capacity(128);
    let mut look = [0u8; 256];
    loop {
        // How much to take: with a look ahead, everything up to the header's end if it is in
        // view, or all that is in view (it is all header: the parser wants more); without
        // one, what certainly belongs to the header.
        let want = match stream.peek(&mut look).await {
            Some(Ok(0)) => return Err(ProxyError::Truncated(buf.len())),
            Some(Ok(n)) => {
                let start = buf.len();
                buf.extend_from_slice(&look[..n]);
                let parsed = parse(&buf);
                buf.truncate(start);
                match parsed? {
                    Some((_, len)) => len - start,
                    None => n,
                }
            }
            Some(Err(e)) => return Err(io(e)),
            None => header_room(&buf),
        };
        let start = buf.len();
        buf.resize(start + want, 0);
        let mut got = start;
        while got < buf.len() {
            match stream.read(&mut buf[got..]).await.map_err(io)? {
                0 => return Err(ProxyError::Truncated(got)),
                n => got += n,
            }
            // Without a look ahead, one read may be short: parse what came.
            if got < buf.len() {
                buf.truncate(got);
                break;
            }
        }
        if let Some((header, len)) = parse(&buf)? {
            debug_assert_eq!(len, buf.len(), "read past the header");
            return Ok(header);
        }
    }
}
