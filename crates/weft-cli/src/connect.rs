//! `weft connect ENDPOINT` (or `HOST PORT`, `-u` for UDP): the seed's small client grown into a
//! netcat.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket, UnixStream};
use weft_core::ClientEndpoint;

use crate::exit::{self, Failure};

/// Arguments of `weft connect`.
#[derive(Debug, Args)]
#[command(after_help = "\
Endpoints (Twisted syntax, or a plain form):
  127.0.0.1:1234, [::1]:1234     TCP
  127.0.0.1 1234                 the same, nc's two arguments
  :1234, 1234                    TCP to localhost
  tcp:host=example.com:port=80   TCP, with :timeout=SECS for the connect timeout (default 30)
  tcp:example.com:80             the same, positional
  unix:/tmp/weft.sock            a Unix socket; also /tmp/weft.sock, ./weft.sock
  udp:127.0.0.1:5353             UDP (or -u with any TCP form above)
  tls:example.com:443            TLS, the certificate verified for example.com against the
                                 system's roots; :trustRoots=ca.pem for a private CA,
                                 :certificate=me.pem for a client certificate

stdin goes to the socket; when stdin ends, weft half-closes the connection (sends EOF) and
keeps printing what the server sends; it exits when the server closes.
With UDP (as nc -u) each line of stdin, newline included, is one datagram and every reply is
printed as it comes; after stdin ends, weft waits --wait seconds for more replies.")]
pub struct ConnectArgs {
    /// Where to connect: an endpoint, or a host followed by PORT.
    #[arg(value_name = "ENDPOINT|HOST")]
    pub target: String,
    /// The port, when the first argument is a host (nc's `HOST PORT`).
    #[arg(value_name = "PORT")]
    pub port: Option<String>,
    /// UDP instead of TCP, as `nc -u`: one datagram per line of stdin.
    #[arg(short = 'u', long)]
    pub udp: bool,
    /// UDP: how long to keep printing replies after stdin ends and after each reply (seconds).
    #[arg(short = 'w', long, value_name = "SECS", default_value_t = 1.0)]
    pub wait: f64,
}

/// Parses a client endpoint string or a plain form (`HOST:PORT`, `[::1]:80`, `/path`): weft-core's
/// one address parser.
pub fn parse_client_endpoint(s: &str) -> Result<ClientEndpoint, String> {
    s.parse::<ClientEndpoint>().map_err(|e| e.to_string())
}

/// Where `weft connect` goes.
#[derive(Debug, PartialEq)]
enum Target {
    /// A stream socket (TCP or Unix).
    Stream(ClientEndpoint),
    /// UDP datagrams to this host and port.
    Datagram { host: String, port: u16 },
}

/// Reads the arguments as a target. `HOST PORT` is `HOST:PORT` (`[HOST]:PORT` for an IPv6
/// address); `udp:REST` takes the same host and port arguments as a TCP client endpoint, so it
/// is read as `tcp:REST` by the one endpoint parser; `-u` turns a TCP target into UDP.
fn target(args: &ConnectArgs) -> Result<Target, String> {
    let joined;
    let text = match &args.port {
        None => args.target.as_str(),
        Some(port) => {
            if port.parse::<u16>().is_err() {
                return Err(format!("PORT is a number from 0 to 65535, not {port:?}"));
            }
            let host = args.target.as_str();
            if host.contains(['/', '=']) || host.starts_with("tcp:") || host.starts_with("udp:") {
                return Err(format!(
                    "with a PORT argument, the first argument is a host: {host:?} is not one \
                     (give one endpoint instead, or HOST PORT)"
                ));
            }
            joined = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            joined.as_str()
        }
    };
    let (udp, endpoint) = match text.strip_prefix("udp:") {
        Some(rest) => (true, parse_client_endpoint(&format!("tcp:{rest}"))?),
        None => (args.udp, parse_client_endpoint(text)?),
    };
    match endpoint {
        ClientEndpoint::Tcp { host, port, .. } if udp => Ok(Target::Datagram { host, port }),
        _ if udp => Err(format!(
            "UDP needs HOST:PORT (or HOST PORT); {text:?} is not a TCP address"
        )),
        ep => Ok(Target::Stream(ep)),
    }
}

/// Runs `weft connect`.
pub async fn run(args: ConnectArgs) -> Result<(), Failure> {
    let target = target(&args).map_err(|e| Failure::new(exit::USAGE, e))?;
    let endpoint = match target {
        Target::Stream(ep) => ep,
        Target::Datagram { host, port } => {
            let wait = Duration::try_from_secs_f64(args.wait).map_err(|_| {
                Failure::new(exit::USAGE, format!("--wait {}: not a duration", args.wait))
            })?;
            return datagrams(&host, port, wait).await;
        }
    };
    match &endpoint {
        ClientEndpoint::Tcp {
            host,
            port,
            timeout,
        } => {
            let target = format!("{host}:{port}");
            let connecting = TcpStream::connect((host.as_str(), *port));
            let stream = dial(&target, "", *timeout, connecting).await?;
            let _ = stream.set_nodelay(true);
            tracing::info!(peer = %target, "connected");
            let (r, w) = stream.into_split();
            pump(r, w, &target).await
        }
        ClientEndpoint::Unix { path, timeout } => {
            let target = path.display().to_string();
            let stream = dial(&target, "", *timeout, UnixStream::connect(path)).await?;
            tracing::info!(peer = %target, "connected");
            let (r, w) = stream.into_split();
            pump(r, w, &target).await
        }
        ClientEndpoint::Tls {
            host,
            timeout,
            tls,
            via,
            ..
        } => {
            let config = tls
                .config()
                .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
            let how = format!(" over TLS as {host}");
            if let Some(ClientEndpoint::Unix { path, .. }) = via.as_deref() {
                // endpoint=unix\:/path: TLS through a Unix socket, still verifying HOST.
                let target = path.display().to_string();
                let connecting = async {
                    let unix = UnixStream::connect(path).await?;
                    weft_core::tls::client_handshake(unix, host, config).await
                };
                let stream = dial(&target, &how, *timeout, connecting).await?;
                tracing::info!(peer = %target, name = %host, "connected over TLS");
                let (r, w) = tokio::io::split(stream);
                return pump(r, w, &target).await;
            }
            let Some((to_host, to_port)) = endpoint.tcp_target() else {
                return Err(Failure::new(
                    exit::USAGE,
                    "endpoint= takes a tcp: or unix: endpoint",
                ));
            };
            let target = format!("{to_host}:{to_port}");
            let connecting = weft_core::tls::connect_stream((to_host, to_port), host, config);
            let stream = dial(&target, &how, *timeout, connecting).await?;
            tracing::info!(peer = %target, name = %host, "connected over TLS");
            let (r, w) = tokio::io::split(stream);
            pump(r, w, &target).await
        }
        other => Err(Failure::new(
            exit::USAGE,
            format!("unsupported endpoint {other:?}"),
        )),
    }
}

/// Awaits `connecting` for at most `timeout`: a failure says "cannot connect to TARGET" (with
/// `how`, e.g. " over TLS as NAME", after it), a timeout exits with [`exit::TIMEOUT`].
async fn dial<S>(
    target: &str,
    how: &str,
    timeout: Duration,
    connecting: impl std::future::Future<Output = io::Result<S>>,
) -> Result<S, Failure> {
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(Failure::network(
            format!("cannot connect to {target}{how}"),
            &e,
        )),
        Err(_) => Err(Failure::new(
            exit::TIMEOUT,
            format!("cannot connect to {target}: timed out after {timeout:?}"),
        )),
    }
}

/// The largest UDP payload (65535 minus the IPv4 and UDP headers).
const MAX_DATAGRAM: usize = 65_507;

/// `nc -u`: sends each line of stdin (newline included) as one datagram to `host:port` and
/// prints every datagram that comes back, until stdin has ended and no reply came for `wait`.
async fn datagrams(host: &str, port: u16, wait: Duration) -> Result<(), Failure> {
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let cannot = |e: &io::Error| Failure::network(format!("cannot send to {target}"), e);
    let addr = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| cannot(&e))?
        .next()
        .ok_or_else(|| Failure::new(exit::NETWORK, format!("{host}: no address")))?;
    let local: SocketAddr = if addr.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| cannot(&e))?;
    // Connected: only the target's datagrams are received, and an ICMP "port unreachable"
    // comes back as ECONNREFUSED.
    socket.connect(addr).await.map_err(|e| cannot(&e))?;
    let socket = Arc::new(socket);
    let mut upstream = tokio::spawn({
        let socket = Arc::clone(&socket);
        async move {
            let mut stdin = BufReader::new(tokio::io::stdin());
            let mut line = Vec::new();
            loop {
                line.clear();
                if stdin.read_until(b'\n', &mut line).await? == 0 {
                    return Ok::<_, io::Error>(());
                }
                if line.len() > MAX_DATAGRAM {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "a line of {} bytes does not fit in a datagram ({MAX_DATAGRAM} at most)",
                            line.len()
                        ),
                    ));
                }
                socket.send(&line).await?;
            }
        }
    });
    tracing::info!(peer = %target, "sending datagrams");
    let mut stdout = tokio::io::stdout();
    let mut buf = vec![0u8; 64 * 1024];
    let mut stdin_open = true;
    let quiet = tokio::time::sleep(Duration::MAX);
    tokio::pin!(quiet);
    let failed = |e: &io::Error| match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            Failure::network(format!("nobody listens on {target} (UDP)"), e)
        }
        _ => Failure::network(format!("datagrams to {target}"), e),
    };
    loop {
        tokio::select! {
            sent = &mut upstream, if stdin_open => {
                stdin_open = false;
                match sent {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidInput => {
                        return Err(Failure::new(exit::GENERIC, e));
                    }
                    Ok(Err(e)) => return Err(failed(&e)),
                    Err(e) => return Err(Failure::new(exit::GENERIC, format!("stdin: {e}"))),
                }
                tracing::debug!("stdin ended; waiting {wait:?} for replies");
                quiet.as_mut().reset(tokio::time::Instant::now() + wait);
            }
            received = socket.recv(&mut buf) => {
                let n = received.map_err(|e| failed(&e))?;
                if !print(&mut stdout, &buf[..n]).await? {
                    return Ok(());
                }
                if !stdin_open {
                    quiet.as_mut().reset(tokio::time::Instant::now() + wait);
                }
            }
            () = &mut quiet => return Ok(()),
        }
    }
}

/// Copies stdin to `w` (half-closing at stdin's end) and `r` to stdout until the peer closes.
async fn pump<R, W>(mut r: R, mut w: W, target: &str) -> Result<(), Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let upstream = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = stdin.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n]).await?;
        }
        tracing::debug!("stdin ended; sending EOF");
        w.shutdown().await?;
        // Keep the write half alive: dropping it is fine too, but this makes the intent clear.
        Ok::<_, io::Error>(w)
    });
    let mut stdout = tokio::io::stdout();
    let mut buf = vec![0u8; 64 * 1024];
    let result = loop {
        let n = match r.read(&mut buf).await {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(Failure::network(format!("connection to {target}"), &e)),
        };
        match print(&mut stdout, &buf[..n]).await {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(failure) => break Err(failure),
        }
    };
    tracing::debug!("server closed the connection");
    if upstream.is_finished() {
        if let Ok(Err(e)) = upstream.await {
            if e.kind() != io::ErrorKind::BrokenPipe && e.kind() != io::ErrorKind::ConnectionReset {
                tracing::warn!(error = %e, "sending stdin failed");
            }
        }
    } else {
        upstream.abort();
    }
    result
}

/// Writes what the peer sent to stdout at once. False when nobody reads stdout any more
/// (`weft connect ... | head`): the caller stops quietly.
async fn print(stdout: &mut tokio::io::Stdout, bytes: &[u8]) -> Result<bool, Failure> {
    let written = async {
        stdout.write_all(bytes).await?;
        stdout.flush().await
    }
    .await;
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Failure::new(exit::LOCAL_IO, format!("stdout: {e}"))),
    }
}
