//! `weft connect ENDPOINT`: the seed's small client grown into a netcat.

use std::io;

use clap::Args;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use weft_core::ClientEndpoint;

use crate::exit::{self, Failure};

/// Arguments of `weft connect`.
#[derive(Debug, Args)]
#[command(after_help = "\
Endpoints (Twisted syntax, or plain HOST:PORT):
  127.0.0.1:1234                 TCP
  tcp:host=example.com:port=80   TCP, with :timeout=SECS for the connect timeout (default 30)
  tcp:example.com:80             the same, positional
  unix:/tmp/weft.sock            a Unix socket
  tls:example.com:443            TLS, the certificate verified for example.com against the
                                 system's roots; :trustRoots=ca.pem for a private CA,
                                 :certificate=me.pem for a client certificate

stdin goes to the socket; when stdin ends, weft half-closes the connection (sends EOF) and
keeps printing what the server sends; it exits when the server closes.")]
pub struct ConnectArgs {
    /// Where to connect.
    #[arg(value_name = "ENDPOINT", value_parser = parse_client_endpoint)]
    pub endpoint: ClientEndpoint,
}

/// Parses a client endpoint string, or a plain `HOST:PORT` (`[::1]:80` for IPv6).
pub fn parse_client_endpoint(s: &str) -> Result<ClientEndpoint, String> {
    match s.parse::<ClientEndpoint>() {
        Ok(ep) => Ok(ep),
        Err(err) => {
            if let Some((host, port)) = s.rsplit_once(':') {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if let (false, Ok(port)) = (host.is_empty(), port.parse::<u16>()) {
                    if let Ok(ep) = format!("tcp:host={}:port={port}", escape(host)).parse() {
                        return Ok(ep);
                    }
                }
            }
            Err(err.to_string())
        }
    }
}

/// Escapes `:` and `\` for an endpoint string.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace(':', "\\:")
}

/// Runs `weft connect`.
pub async fn run(args: ConnectArgs) -> Result<(), Failure> {
    match &args.endpoint {
        ClientEndpoint::Tcp {
            host,
            port,
            timeout,
        } => {
            let target = format!("{host}:{port}");
            let stream =
                match tokio::time::timeout(*timeout, TcpStream::connect((host.as_str(), *port)))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        return Err(Failure::network(format!("cannot connect to {target}"), &e));
                    }
                    Err(_) => {
                        return Err(Failure::new(
                            exit::TIMEOUT,
                            format!("cannot connect to {target}: timed out after {timeout:?}"),
                        ));
                    }
                };
            let _ = stream.set_nodelay(true);
            tracing::info!(peer = %target, "connected");
            let (r, w) = stream.into_split();
            pump(r, w, &target).await
        }
        ClientEndpoint::Unix { path, timeout } => {
            let target = path.display().to_string();
            let stream = match tokio::time::timeout(*timeout, UnixStream::connect(path)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    return Err(Failure::network(format!("cannot connect to {target}"), &e));
                }
                Err(_) => {
                    return Err(Failure::new(
                        exit::TIMEOUT,
                        format!("cannot connect to {target}: timed out after {timeout:?}"),
                    ));
                }
            };
            tracing::info!(peer = %target, "connected");
            let (r, w) = stream.into_split();
            pump(r, w, &target).await
        }
        ClientEndpoint::Tls {
            host, timeout, tls, ..
        } => {
            let config = tls
                .config()
                .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
            let Some((to_host, to_port)) = args.endpoint.tcp_target() else {
                return Err(Failure::new(
                    exit::USAGE,
                    "endpoint= takes a tcp: endpoint for now",
                ));
            };
            let target = format!("{to_host}:{to_port}");
            let connecting = weft_core::tls::connect_stream((to_host, to_port), host, config);
            let stream = match tokio::time::timeout(*timeout, connecting).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    return Err(Failure::network(
                        format!("cannot connect to {target} over TLS as {host}"),
                        &e,
                    ));
                }
                Err(_) => {
                    return Err(Failure::new(
                        exit::TIMEOUT,
                        format!("cannot connect to {target}: timed out after {timeout:?}"),
                    ));
                }
            };
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
        let written = async {
            stdout.write_all(&buf[..n]).await?;
            stdout.flush().await
        }
        .await;
        match written {
            Ok(()) => {}
            // Nobody reads our output any more (`weft connect ... | head`): stop quietly.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break Ok(()),
            Err(e) => break Err(Failure::new(exit::LOCAL_IO, format!("stdout: {e}"))),
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
