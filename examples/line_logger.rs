//! The seed's LineReceiver logger (14.4): prints who connected, every line as it is received,
//! and who left.
//!
//! ```text
//! cargo run --example line_logger [ADDR]   # default 127.0.0.1:1234; port 0 picks one; ADDR is HOST:PORT, :PORT or an endpoint string (tcp:0:interface=127.0.0.1)
//! nc 127.0.0.1 1234                        # type lines; they appear on the server
//! ```
//!
//! The first stderr line is `listening on HOST:PORT` (the real address). stdout gets
//! `Got connection from HOST:PORT`, each line (without its delimiter, bytes as received,
//! flushed at once), then `HOST:PORT disconnected`. Lines end with `\n` (plain `nc`) or
//! `\r\n` (`telnet`, `nc -C`) alike (`Delimiter::ANY`: the `\r` is not printed);
//! `LINE_DELIMITER=crlf` keeps Twisted's strict `\r\n`, `LINE_DELIMITER=lf` takes `\n` only.
//! A line longer than 16384 bytes closes that connection. Ctrl-C shuts down gracefully.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

use weft::core::{Address, DisconnectReason, Reactor};
use weft::line::{Control, Delimiter, LineProtocol, Receiver};

/// The seed's `LoggingProtocol`.
struct LineLogger {
    peer: Address,
}

/// Writes `bytes` and a newline to stdout, flushed at once.
fn out(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

impl Receiver for LineLogger {
    fn connection_made(&mut self, _ctl: &mut Control<'_>) {
        out(format!("Got connection from {}", self.peer).as_bytes());
    }

    fn frame_received(&mut self, line: &[u8], _ctl: &mut Control<'_>) {
        out(line);
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        if !reason.is_clean() {
            tracing::info!(peer = %self.peer, %reason, "connection ended");
        }
        out(format!("{} disconnected", self.peer).as_bytes());
    }
}

/// `LINE_DELIMITER`: `crlf`, `lf`, or (the default) either.
fn delimiter_from_env() -> Delimiter {
    match std::env::var("LINE_DELIMITER") {
        Ok(d) if d.eq_ignore_ascii_case("crlf") => Delimiter::from(b"\r\n"),
        Ok(d) if d.eq_ignore_ascii_case("lf") => Delimiter::from(b"\n"),
        _ => Delimiter::ANY,
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let delimiter = delimiter_from_env();
    let reactor = Reactor::new();
    reactor.handle_signals()?; // a Ctrl-C from now on is a clean shutdown
    let factory = weft::core::factory_fn(move |peer: &Address| {
        let logger = LineLogger { peer: peer.clone() };
        Some(LineProtocol::new(logger).with_delimiter(delimiter.clone()))
    });
    let port = reactor.listen(&addr, factory).await?;
    eprintln!("listening on {}", port.local_addr().listening());
    // After the first stderr line, so that it stays first whatever RUST_LOG says.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    reactor.run().await
}
