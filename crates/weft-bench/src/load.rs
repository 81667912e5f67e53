//! The load generator: async client modes, run on a current-thread runtime so the client
//! takes at most one of the machine's cores. Every mode speaks plain TCP, TLS (tokio-rustls)
//! or TCP with a PROXY protocol header first ([`Wire`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

/// Length of every line, delimiter included.
pub const LINE_LEN: usize = 64;

/// Writes line number `seq` of connection `conn` (63 bytes and `\n`) into `out`.
pub fn make_line(conn: u32, seq: u64, out: &mut [u8]) {
    const TEMPLATE: &[u8; LINE_LEN] =
        b"c0000 s0000000000000000 weft-bench line echo payload abcdefghij\n";
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out[..LINE_LEN].copy_from_slice(TEMPLATE);
    for i in 0..4 {
        out[1 + i] = HEX[((conn >> (12 - 4 * i)) & 0xf) as usize];
    }
    for i in 0..16 {
        out[7 + i] = HEX[((seq >> (60 - 4 * i)) & 0xf) as usize];
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// How the load generator talks to a server.
#[derive(Debug, Clone)]
pub enum Wire {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP with this client configuration (verifying [`crate::tls::SERVER_NAME`]).
    Tls(Arc<rustls::ClientConfig>),
    /// TCP with a PROXY protocol header first, as HAProxy's `send-proxy` sends it.
    Proxy(ProxyVersion),
}

/// Which PROXY protocol header the load generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// Text: `PROXY TCP4 SRC DST SPORT DPORT\r\n`.
    V1,
    /// Binary, command PROXY, TCP over IPv4/IPv6.
    V2,
}

/// The PROXY header for a connection from `src` to `dst`.
pub fn proxy_header(v: ProxyVersion, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    match v {
        ProxyVersion::V1 => {
            let fam = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {fam} {} {} {} {}\r\n",
                src.ip(),
                dst.ip(),
                src.port(),
                dst.port()
            )
            .into_bytes()
        }
        ProxyVersion::V2 => {
            let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
            h.push(0x21); // version 2, PROXY
            match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    h.push(0x11); // TCP over IPv4
                    h.extend_from_slice(&12u16.to_be_bytes());
                    h.extend_from_slice(&s.octets());
                    h.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    let v6 = |ip: IpAddr| match ip {
                        IpAddr::V4(a) => a.to_ipv6_mapped(),
                        IpAddr::V6(a) => a,
                    };
                    h.push(0x21); // TCP over IPv6
                    h.extend_from_slice(&36u16.to_be_bytes());
                    h.extend_from_slice(&v6(s).octets());
                    h.extend_from_slice(&v6(d).octets());
                }
            }
            h.extend_from_slice(&src.port().to_be_bytes());
            h.extend_from_slice(&dst.port().to_be_bytes());
            h
        }
    }
}

/// A client connection: plain TCP (also after a PROXY header) or TLS (handshake done).
pub type Stream = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// Connects over `wire` (TCP_NODELAY; the TLS handshake, or the PROXY header) and writes
/// `first` (with the PROXY header in one write: one segment, as a proxy sends it).
pub async fn dial(addr: SocketAddr, wire: &Wire, first: &[u8]) -> io::Result<Stream> {
    let mut s = connect(addr).await?;
    match wire {
        Wire::Tcp => {
            if !first.is_empty() {
                s.write_all(first).await?;
            }
            Ok(Either::Left(s))
        }
        Wire::Proxy(v) => {
            let mut h = proxy_header(*v, s.local_addr()?, s.peer_addr()?);
            h.extend_from_slice(first);
            s.write_all(&h).await?;
            Ok(Either::Left(s))
        }
        Wire::Tls(config) => {
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            let mut t = connector.connect(crate::tls::server_name(), s).await?;
            if !first.is_empty() {
                t.write_all(first).await?;
                t.flush().await?;
            }
            Ok(Either::Right(Box::new(t)))
        }
    }
}

/// Closes: TLS sends `close_notify` first (a clean close, which servers log as such); TCP
/// just closes.
pub async fn close(s: Stream) {
    if let Either::Right(mut t) = s {
        let _ = t.shutdown().await;
    }
}

/// Result of a line-echo run.
#[derive(Debug, Clone, Copy)]
pub struct LineResult {
    /// Lines echoed and verified.
    pub lines: u64,
    /// Wall time from the first write to the last verified line.
    pub elapsed: Duration,
}

/// Pipelined line echo: `conns` connections, each keeping `window` lines in flight, sending
/// for `secs` and then draining. Every echoed line is checked byte for byte and in order.
/// `before_start` runs once every connection is up, just before the first write.
pub async fn line_echo(
    addr: SocketAddr,
    wire: &Wire,
    conns: usize,
    window: usize,
    secs: f64,
    before_start: impl FnOnce(),
) -> io::Result<LineResult> {
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        streams.push(dial(addr, wire, &[]).await?);
    }
    before_start();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::with_capacity(conns);
    for (i, s) in streams.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut s = s;
            let n = line_conn(&mut s, i as u32, window, deadline).await;
            close(s).await;
            n
        }));
    }
    let mut lines = 0;
    for t in tasks {
        lines += t.await.map_err(io::Error::other)??;
    }
    Ok(LineResult {
        lines,
        elapsed: start.elapsed(),
    })
}

async fn line_conn(s: &mut Stream, conn: u32, window: usize, deadline: Instant) -> io::Result<u64> {
    let window = window as u64;
    let (mut sent, mut recv) = (0u64, 0u64);
    let mut wbuf = vec![0u8; window as usize * LINE_LEN];
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut rlen = 0;
    let mut expected = [0u8; LINE_LEN];
    let mut sending = true;
    loop {
        if sending && Instant::now() >= deadline {
            sending = false;
        }
        if sending && sent - recv < window {
            let n = (window - (sent - recv)) as usize;
            for k in 0..n {
                make_line(conn, sent + k as u64, &mut wbuf[k * LINE_LEN..]);
            }
            s.write_all(&wbuf[..n * LINE_LEN]).await?;
            s.flush().await?;
            sent += n as u64;
        }
        if sent == recv {
            return Ok(recv);
        }
        let n = s.read(&mut rbuf[rlen..]).await?;
        if n == 0 {
            return Err(bad(format!(
                "conn {conn}: server closed after {recv} of {sent} lines"
            )));
        }
        rlen += n;
        let mut pos = 0;
        while rlen - pos >= LINE_LEN {
            make_line(conn, recv, &mut expected);
            let got = &rbuf[pos..pos + LINE_LEN];
            if got != expected {
                return Err(bad(format!(
                    "conn {conn}: line {recv} echoed wrong: {:?}",
                    String::from_utf8_lossy(got)
                )));
            }
            pos += LINE_LEN;
            recv += 1;
        }
        if recv > sent {
            return Err(bad(format!("conn {conn}: more lines echoed than sent")));
        }
        rbuf.copy_within(pos..rlen, 0);
        rlen -= pos;
    }
}

/// Result of a connection-rate run.
#[derive(Debug, Clone)]
pub struct RateResult {
    /// Connections completed (connect, one line echoed, close).
    pub conns: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Per-connection latency (connect to echo verified), sorted, in microseconds.
    pub latencies_us: Vec<u32>,
}

impl RateResult {
    /// The `p`-th percentile latency in microseconds.
    pub fn percentile(&self, p: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p / 100.0).round() as usize;
        self.latencies_us[i]
    }
}

/// Connection rate: `parallel` clients, each in a loop connecting (over TLS: a full
/// handshake, no resumption), sending one line, reading its echo and closing, for `secs`.
pub async fn conn_rate(
    addr: SocketAddr,
    wire: &Wire,
    parallel: usize,
    secs: f64,
    before_start: impl FnOnce(),
) -> io::Result<RateResult> {
    before_start();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for i in 0..parallel {
        let wire = wire.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut line = [0u8; LINE_LEN];
            let mut got = [0u8; LINE_LEN];
            let mut seq = 0u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                make_line(i as u32, seq, &mut line);
                let mut s = dial(addr, &wire, &line).await?;
                s.read_exact(&mut got).await?;
                if got != line {
                    return Err(bad(format!(
                        "conn-rate: wrong echo {:?}",
                        String::from_utf8_lossy(&got)
                    )));
                }
                close(s).await;
                lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                seq += 1;
            }
            Ok::<_, io::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(io::Error::other)??);
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    Ok(RateResult {
        conns: all.len() as u64,
        elapsed,
        latencies_us: all,
    })
}

/// Result of a bulk run.
#[derive(Debug, Clone, Copy)]
pub struct BulkResult {
    /// Bytes echoed and verified.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

fn pattern(offset: u64, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        *b = ((offset + i as u64) % 251) as u8;
    }
}

/// Bulk byte echo over one connection: a writer sends 64 KiB chunks for `secs`, then shuts
/// down its side; a reader checks every byte echoed.
pub async fn bulk(
    addr: SocketAddr,
    wire: &Wire,
    secs: f64,
    before_start: impl FnOnce(),
) -> io::Result<BulkResult> {
    match dial(addr, wire, &[]).await? {
        Either::Left(s) => {
            let (r, w) = s.into_split();
            bulk_on(r, w, secs, before_start).await
        }
        Either::Right(s) => {
            let (r, w) = tokio::io::split(*s);
            bulk_on(r, w, secs, before_start).await
        }
    }
}

async fn bulk_on<R, W>(
    mut r: R,
    mut w: W,
    secs: f64,
    before_start: impl FnOnce(),
) -> io::Result<BulkResult>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    const CHUNK: usize = 64 * 1024;
    // A chunk of the 251-periodic pattern, with slack so any offset can be sliced out of it.
    let mut pat = vec![0u8; CHUNK + 251];
    pattern(0, &mut pat);
    before_start();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let pat_w = pat.clone();
    let writer = tokio::spawn(async move {
        let mut off = 0u64;
        while Instant::now() < deadline {
            let p = (off % 251) as usize;
            w.write_all(&pat_w[p..p + CHUNK]).await?;
            off += CHUNK as u64;
        }
        w.shutdown().await?;
        Ok::<_, io::Error>((off, w))
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let mut k = 0;
        while k < n {
            let m = (n - k).min(CHUNK);
            let p = ((got + k as u64) % 251) as usize;
            if buf[k..k + m] != pat[p..p + m] {
                return Err(bad(format!(
                    "bulk: wrong byte near offset {}",
                    got + k as u64
                )));
            }
            k += m;
        }
        got += n as u64;
    }
    let elapsed = start.elapsed();
    let (sent, _w) = writer.await.map_err(io::Error::other)??;
    if sent != got {
        return Err(bad(format!("bulk: sent {sent} bytes, got {got} back")));
    }
    Ok(BulkResult {
        bytes: got,
        elapsed,
    })
}

/// Idle connections held open: `k` connections, before and after each carried one line.
#[derive(Debug)]
pub struct IdleConns {
    streams: Vec<Stream>,
}

impl IdleConns {
    /// Opens `k` connections (no data; TLS connections finish their handshake).
    pub async fn open(addr: SocketAddr, wire: &Wire, k: usize) -> io::Result<Self> {
        let mut streams = Vec::with_capacity(k);
        for _ in 0..k {
            streams.push(dial(addr, wire, &[]).await?);
        }
        Ok(Self { streams })
    }

    /// Closes every connection (TLS: `close_notify` first).
    pub async fn close(self) {
        for s in self.streams {
            close(s).await;
        }
    }

    /// Sends one line on every connection and checks its echo.
    pub async fn one_line_each(&mut self) -> io::Result<()> {
        let mut line = [0u8; LINE_LEN];
        let mut got = [0u8; LINE_LEN];
        for (i, s) in self.streams.iter_mut().enumerate() {
            make_line(i as u32, 0, &mut line);
            s.write_all(&line).await?;
            s.flush().await?;
        }
        for (i, s) in self.streams.iter_mut().enumerate() {
            make_line(i as u32, 0, &mut line);
            s.read_exact(&mut got).await?;
            if got != line {
                return Err(bad("idle: wrong echo".into()));
            }
        }
        Ok(())
    }
}

/// Warms a server up: `n` connections exchanging a few hundred lines each at once, so every
/// worker thread's buffers exist before memory is measured.
pub async fn warm_up(addr: SocketAddr, wire: &Wire, n: usize) -> io::Result<()> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let wire = wire.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = dial(addr, &wire, &[]).await?;
            let far = Instant::now() + Duration::from_millis(100);
            let n = line_conn(&mut s, i as u32, 64, far).await;
            close(s).await;
            n
        }));
    }
    for t in tasks {
        t.await.map_err(io::Error::other)??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_headers_follow_the_spec() {
        // (source, destination, the v1 header, the v2 header after its 12-byte signature:
        // version and command, family and protocol, address length, addresses, ports).
        let cases = [
            (
                "192.0.2.1:56324",
                "198.51.100.7:443",
                "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n",
                "21 11 000c c0000201 c6336407 dc04 01bb",
            ),
            (
                "[2001:db8::1]:1000",
                "[2001:db8::2]:2000",
                "PROXY TCP6 2001:db8::1 2001:db8::2 1000 2000\r\n",
                "21 21 0024 20010db8000000000000000000000001 \
                 20010db8000000000000000000000002 03e8 07d0",
            ),
        ];
        for (src, dst, v1, v2) in cases {
            let (src, dst) = (src.parse().unwrap(), dst.parse().unwrap());
            assert_eq!(
                String::from_utf8_lossy(&proxy_header(ProxyVersion::V1, src, dst)),
                v1,
                "{src}"
            );
            let hex: String = v2.split_whitespace().collect();
            let mut want = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
            want.extend(
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()),
            );
            assert_eq!(proxy_header(ProxyVersion::V2, src, dst), want, "{src}");
        }
    }
}
