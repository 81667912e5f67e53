//! `weft serve PROTOCOL [--listen ENDPOINT]...`.

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::signal::unix::{SignalKind, signal};
use weft_core::policies::{
    Boxed, FactoryExt, IdleTimeout, LimitPerPeer, LimitTotal, LineTimeout, Metrics, Throttle,
    TrafficLog,
};
use weft_core::{Address, Factory, ListeningPort, Reactor, ServerEndpoint, factory_fn};
use weft_line::{LineOnlyProtocol, LineProtocol};

use crate::exit::{self, Failure};
use crate::units::{self, Setting};
use crate::{prometheus, wire};

/// The default endpoint: port 1234 of the loopback interface.
pub const DEFAULT_LISTEN: &str = "tcp:1234:interface=127.0.0.1";

/// The protocols `weft serve` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolName {
    /// The seed's SimpleLogger: prints who connects, the data as it arrives, who leaves.
    Logger,
    /// The LineReceiver logger: prints who connects, each line, who leaves.
    LineLogger,
    /// Writes back every byte.
    Echo,
    /// Writes back every line, with the delimiter.
    LineEcho,
    /// Drops everything (RFC 863).
    Discard,
    /// Writes the date and time, then closes (RFC 867).
    Daytime,
    /// Streams lines of printable ASCII forever, at the client's pace (RFC 864).
    Chargen,
    /// Writes a quote, then closes (RFC 865).
    Qotd,
}

/// The line delimiter of the line protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Delimiter {
    /// `\n` or `\r\n`, what `nc` and `telnet` send: line-logger prints lines without the
    /// `\r`, line-echo sends each line back as it came.
    Any,
    /// `\r\n` only (Twisted's default).
    Crlf,
    /// `\n` only (a `\r` before it belongs to the line).
    Lf,
}

impl Delimiter {
    /// The library's delimiter.
    pub fn framing(self) -> weft_line::Delimiter {
        match self {
            Delimiter::Any => weft_line::Delimiter::ANY,
            Delimiter::Crlf => weft_line::Delimiter::from(b"\r\n"),
            Delimiter::Lf => weft_line::Delimiter::from(b"\n"),
        }
    }
}

/// Arguments of `weft serve`.
#[derive(Debug, Args)]
#[command(after_help = "\
Where to listen (an endpoint string, Twisted syntax, or a plain form):
  tcp:1234:interface=127.0.0.1   port 1234 on the loopback interface (the default)
  127.0.0.1:1234                 the same
  tcp:0:interface=127.0.0.1      a free port (the first stderr line tells which)
  tcp:1234, :1234, 1234          port 1234 on every IPv4 interface (said on stderr)
  tcp6:1234:interface=\\:\\:1      IPv6; also [::1]:1234
  unix:/tmp/weft.sock            a Unix socket; also /tmp/weft.sock, ./weft.sock
  tcp:1234:reusePort=1           SO_REUSEPORT: several instances share the port
  haproxy:tcp:1234               behind HAProxy/nginx/NLB: a PROXY v1 or v2 header first
  haproxy:headerTimeout=2:trusted=10.0.0.0/8:tcp:1234   with its options
  systemd:domain=INET:index=0    a socket passed by systemd (also name=NAME)
  ssl:8443:privateKey=key.pem:certKey=cert.pem
                                 TLS with one certificate (certKey defaults to the key file)
  tls:./pems:port=8443           TLS with every *.pem in ./pems, chosen by SNI
                                 (try: weft cert self-signed --name localhost --out pems)
  TLS options: :alpn=h2,http/1.1 :handshakeTimeout=SECS (10) :clientCA=ca.pem (mutual TLS)

--listen may be given several times: one protocol served on every endpoint, the
connection limits counting all of them together.
The first lines on stderr are `listening on HOST:PORT` (or the socket path), one per
endpoint, with ` (all interfaces)` after an address on every interface.
Ctrl-C or SIGTERM stops accepting, lets connections finish, and exits. SIGHUP re-reads the
certificates of the TLS endpoints (a failed reload keeps the previous ones and says why).

Durations take s (the default), ms, m, h; rates B (the default), KiB, MiB, GiB, k, M, G;
0 or none turns a limit off.")]
pub struct ServeArgs {
    /// The protocol to serve.
    #[arg(value_enum)]
    pub protocol: ProtocolName,

    /// Where to listen: an endpoint string or HOST:PORT, :PORT, PORT, /path (repeatable).
    #[arg(short, long, value_name = "ENDPOINT", default_value = DEFAULT_LISTEN, value_parser = parse_server_endpoint, action = clap::ArgAction::Append)]
    pub listen: Vec<ServerEndpoint>,

    /// Longest accepted line, delimiter excluded (line protocols); a longer line closes that
    /// connection.
    #[arg(long, value_name = "N", default_value_t = weft_line::DEFAULT_MAX_LINE_LENGTH)]
    pub max_length: usize,

    /// Line delimiter (line protocols).
    #[arg(long, value_enum, default_value_t = Delimiter::Any)]
    pub delimiter: Delimiter,

    /// Close a connection after this long without a byte either way.
    #[arg(long, value_name = "DURATION", default_value = "300", value_parser = units::duration)]
    pub idle_timeout: Setting<Duration>,

    /// Close a connection whose current line is not finished this long after its first byte
    /// (line protocols; a slowloris sending a byte now and then is never idle).
    #[arg(long, value_name = "DURATION", default_value = "none", value_parser = units::duration)]
    pub line_timeout: Setting<Duration>,

    /// At most N connections at once; the ones above are closed at once.
    #[arg(long, value_name = "N", default_value = "none", value_parser = units::count)]
    pub max_connections: Setting<u32>,

    /// At most N connections at once from one IP address (the client's, behind a PROXY
    /// header); the ones above are closed at once.
    #[arg(long, value_name = "N", default_value = "256", value_parser = units::count)]
    pub max_per_peer: Setting<u32>,

    /// Read and write at most this many bytes per second on each connection (each way);
    /// over it reading pauses, nothing is dropped.
    #[arg(long, value_name = "BYTES", default_value = "none", value_parser = units::bytes)]
    pub rate: Setting<u64>,

    /// Log each connection's bytes in and out (at debug level, `weft::traffic`; with -vvv a
    /// hexdump too).
    #[arg(long)]
    pub log_traffic: bool,

    /// Serve metrics in Prometheus text format over HTTP at this endpoint (for example
    /// tcp:9100:interface=127.0.0.1; any path answers).
    #[arg(long, value_name = "ENDPOINT", value_parser = parse_server_endpoint)]
    pub metrics: Option<ServerEndpoint>,
}

/// The connection policies of `weft serve` (`weft_core::policies`), from its options.
#[derive(Debug, Clone, Copy)]
struct Policies {
    idle: Option<Duration>,
    /// Only set for line protocols.
    line: Option<Duration>,
    max_connections: Option<u32>,
    max_per_peer: Option<u32>,
    rate: Option<u64>,
    log_traffic: bool,
    metrics: bool,
}

impl Policies {
    /// Wraps `factory` in the policies that are on; `lines`: the last byte of a line
    /// protocol's delimiter.
    ///
    /// A policy that is off costs a connection no room: every policy but the idle timeout is
    /// boxed (the `Either` of a box and the inner protocol keeps its tag in a spare value of
    /// the inner protocol; one that is on costs one allocation per connection, holding the
    /// protocol it wraps), and the idle timeout boxes its own state. Unboxed, the idle timer
    /// and the per-peer slot took 80 bytes in every connection even when off, which pushed
    /// the connection's task over one of tokio's 128-byte task-size steps.
    fn apply<F: Factory>(self, factory: F, lines: Option<u8>) -> impl Factory + use<F> {
        let line = self
            .line
            .zip(lines)
            .map(|(d, end)| Boxed(LineTimeout::new(d).with_delimiter(&[end])));
        let metrics = self.metrics.then(|| {
            let m = Metrics::new();
            Boxed(match lines {
                Some(end) => m.count_lines(&[end]),
                None => m,
            })
        });
        factory
            .with(self.idle.map(IdleTimeout::new))
            .with(line)
            .with(self.rate.map(|r| Boxed(Throttle::new().per_connection(r))))
            .with(self.log_traffic.then(|| Boxed(TrafficLog::new())))
            .with(self.max_per_peer.map(|n| Boxed(LimitPerPeer::new(n))))
            .with(
                self.max_connections
                    .map(|n| Boxed(LimitTotal::new(n as usize))),
            )
            .with(metrics)
    }
}

/// Parses a server endpoint string for clap.
fn parse_server_endpoint(s: &str) -> Result<ServerEndpoint, String> {
    let ep: ServerEndpoint = s.parse().map_err(|e| format!("{e}"))?;
    if matches!(ep, ServerEndpoint::Udp { .. }) {
        return Err("udp endpoints are not supported by weft serve (stream protocols only)".into());
    }
    Ok(ep)
}

/// Wraps a line receiver in the framing options.
fn framed<R: weft_line::Receiver>(receiver: R, opts: &LineOptions) -> LineProtocol<R> {
    LineProtocol::new(receiver)
        .with_delimiter(opts.delimiter.clone())
        .with_max_length(opts.max_length)
}

/// Listens on every endpoint of `eps` with the protocol `name`, one factory for all of them:
/// the connection limits count the service's connections, whichever endpoint they came in
/// on (as one Twisted factory listening on several ports). Each arm has its own concrete
/// factory, so a connection holds its protocol inline, not behind a `Box<dyn Protocol>`
/// (less memory per connection).
async fn listen(
    reactor: &Reactor,
    eps: &[ServerEndpoint],
    opts: LineOptions,
    name: ProtocolName,
    policies: Policies,
) -> Result<Vec<ListeningPort>, Failure> {
    // What ends a line, for the line timeout and the line count: the delimiter's last byte.
    let lines = opts.delimiter.as_bytes().last().copied();
    // `$build` builds each connection's protocol; `$lines`: what ends a line, for the policies
    // that count or time lines (`None` for protocols without lines).
    macro_rules! serve {
        ($build:expr, $lines:expr) => {{
            let factory = Arc::new(policies.apply(factory_fn($build), $lines));
            let mut ports = Vec::with_capacity(eps.len());
            for ep in eps {
                let port = reactor
                    .listen_endpoint(ep, factory.clone())
                    .await
                    .map_err(|e| listen_failure(ep, &e))?;
                ports.push(port);
            }
            Ok(ports)
        }};
    }
    match name {
        ProtocolName::Logger => {
            serve!(|peer: &Address| Some(wire::Logger::new(peer.clone())), None)
        }
        ProtocolName::LineLogger => serve!(
            move |peer: &Address| Some(framed(wire::LineLogger::new(peer.clone()), &opts)),
            lines
        ),
        ProtocolName::Echo => serve!(|_: &Address| Some(wire::Echo), None),
        ProtocolName::LineEcho => serve!(
            move |_: &Address| {
                Some(
                    LineOnlyProtocol::new(wire::LineEcho)
                        .with_delimiter(opts.delimiter.clone())
                        .with_max_length(opts.max_length),
                )
            },
            lines
        ),
        ProtocolName::Discard => serve!(|_: &Address| Some(wire::Discard), None),
        ProtocolName::Daytime => serve!(|_: &Address| Some(wire::Daytime), None),
        ProtocolName::Chargen => serve!(|_: &Address| Some(wire::Chargen::default()), None),
        ProtocolName::Qotd => serve!(|_: &Address| Some(wire::Qotd), None),
    }
}

/// The framing options of the line protocols.
#[derive(Debug, Clone)]
struct LineOptions {
    delimiter: weft_line::Delimiter,
    max_length: usize,
}

/// Runs `weft serve`: listens, prints `listening on ADDR` on stderr, serves until Ctrl-C or
/// SIGTERM, then shuts down gracefully.
pub async fn run(args: ServeArgs) -> Result<(), Failure> {
    let opts = LineOptions {
        delimiter: args.delimiter.framing(),
        max_length: args.max_length,
    };
    let name = args.protocol;
    let line_protocol = matches!(name, ProtocolName::LineLogger | ProtocolName::LineEcho);
    if args.line_timeout.0.is_some() && !line_protocol {
        return Err(Failure::new(
            exit::USAGE,
            format_args!(
                "--line-timeout is for line protocols (line-logger, line-echo), not {name:?}"
            ),
        ));
    }
    let policies = Policies {
        idle: args.idle_timeout.0,
        line: args.line_timeout.0,
        max_connections: args.max_connections.0,
        max_per_peer: args.max_per_peer.0,
        rate: args.rate.0,
        log_traffic: args.log_traffic,
        metrics: args.metrics.is_some(),
    };
    // Take over SIGINT and SIGTERM before saying we listen: a signal sent right after the
    // `listening on` line must shut down gracefully, not kill the process.
    let (mut interrupt, mut terminate) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => {
            return Err(Failure::new(
                exit::GENERIC,
                format!("cannot handle signals: {e}"),
            ));
        }
    };
    let reactor = Reactor::new();
    let ports = listen(&reactor, &args.listen, opts, name, policies).await?;
    let metrics_port = match &args.metrics {
        Some(ep) => Some(
            prometheus::serve(&reactor, ep)
                .await
                .map_err(|e| listen_failure(ep, &e))?,
        ),
        None => None,
    };
    let mut announce: Vec<String> = ports
        .iter()
        .map(|p| format!("listening on {}", p.local_addr().listening()))
        .collect();
    if let Some(m) = &metrics_port {
        announce.push(format!("metrics on {}", m.local_addr().listening()));
    }
    crate::log::open_gate(Some(&announce.join("\n")));
    for port in &ports {
        tracing::info!(protocol = ?name, addr = %port.local_addr(), "serving");
    }
    // SIGHUP re-reads the certificates of ssl:/tls: endpoints (new connections get them).
    let mut hangup = signal(SignalKind::hangup()).ok();
    // Under systemd (Type=notify), ready once every endpoint listens.
    weft_core::systemd::notify_ready();
    loop {
        tokio::select! {
            _ = interrupt.recv() => {
                tracing::info!("interrupted; shutting down");
                break;
            }
            _ = terminate.recv() => {
                tracing::info!("terminated; shutting down");
                break;
            }
            Some(()) = async { hangup.as_mut()?.recv().await } => reload(&ports),
        }
    }
    weft_core::systemd::notify_stopping();
    reactor.shutdown().await;
    for ep in &args.listen {
        if let ServerEndpoint::Unix { path, .. } = ep {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(())
}

/// Reloads the TLS certificates of every port that has some (SIGHUP) and says how it went
/// on stderr.
fn reload(ports: &[ListeningPort]) {
    if ports.iter().all(|p| p.tls().is_none()) {
        eprintln!("SIGHUP: nothing to reload (no TLS endpoint)");
    }
    for port in ports {
        reload_port(port);
    }
}

fn reload_port(port: &ListeningPort) {
    match port.reload_tls() {
        None => {}
        Some(Ok(())) => {
            let names = port.tls().map(|t| t.names()).unwrap_or_default();
            if names.is_empty() {
                eprintln!("reloaded TLS certificates");
            } else {
                eprintln!("reloaded TLS certificates for {}", names.join(", "));
            }
        }
        Some(Err(e)) => {
            eprintln!("TLS reload failed, still serving the previous certificates: {e}");
        }
    }
}

/// The failure for a listen error: a Unix socket path problem is a local I/O error, the rest
/// (address in use, cannot bind) network errors.
fn listen_failure(ep: &ServerEndpoint, err: &std::io::Error) -> Failure {
    match ep {
        ServerEndpoint::Unix { path, .. }
            if matches!(
                err.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            Failure::local_io(path, err)
        }
        _ => Failure::network(format_args!("cannot listen on {ep}"), err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol_size<F: Factory>(_: &F) -> usize {
        std::mem::size_of::<F::Protocol>()
    }

    const OFF: Policies = Policies {
        idle: None,
        line: None,
        max_connections: None,
        max_per_peer: None,
        rate: None,
        log_traffic: false,
        metrics: false,
    };

    /// Every connection's task holds its protocol: the policy layers `weft serve` wraps it in
    /// take a pointer's room when off (the idle timeout's; the boxed ones none: the line
    /// echo's protocol has spare values for their tags), and a byte echo (a protocol without
    /// spare values) at most a pointer per layer. Unboxed, the idle timer and the per-peer
    /// slot took 80 bytes, enough to cross one of tokio's 128-byte task-size steps.
    #[test]
    fn policies_take_no_room_in_a_connection() {
        let line_echo = || factory_fn(|_: &Address| Some(LineOnlyProtocol::new(wire::LineEcho)));
        let bare = protocol_size(&line_echo());
        let wrapped = protocol_size(&OFF.apply(line_echo(), Some(b'\n')));
        assert!(wrapped <= bare + 8, "{wrapped} bytes wrapped, {bare} bare");
        let echo = OFF.apply(factory_fn(|_: &Address| Some(wire::Echo)), None);
        assert!(protocol_size(&echo) <= 7 * 8, "{}", protocol_size(&echo));
    }
}
