//! A line echo server: every line received is sent back (with Twisted's `LineReceiver`
//! framing: `\r\n` delimiters, lines up to 16384 bytes).
//!
//! ```text
//! cargo run --example line_echo [ADDR]   # default 127.0.0.1:1234; port 0 picks one; ADDR is HOST:PORT, :PORT or an endpoint string (tcp:0:interface=127.0.0.1)
//! nc -C 127.0.0.1 1234                   # -C sends CRLF line ends
//! ```
//!
//! The first stderr line is `listening on HOST:PORT` (the real address). A line longer than
//! the maximum closes that connection (after what was already echoed). `LINE_DELIMITER=lf`
//! makes `\n` the delimiter. Ctrl-C shuts down gracefully.
#![allow(clippy::print_stderr)]

use weft::core::{Address, Reactor, factory_fn};
use weft::line::{LineControl, LineProtocol, LineReceiver};

/// Sends every line back.
struct LineEcho;

impl LineReceiver for LineEcho {
    fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) {
        ctl.send_line(line);
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let delimiter: &'static [u8] = match std::env::var("LINE_DELIMITER") {
        Ok(d) if d.eq_ignore_ascii_case("lf") => b"\n",
        _ => b"\r\n",
    };
    let reactor = Reactor::new();
    reactor.handle_signals()?; // a Ctrl-C from now on is a clean shutdown
    let factory =
        factory_fn(move |_: &Address| Some(LineProtocol::new(LineEcho).with_delimiter(delimiter)));
    let port = reactor.listen(&addr, factory).await?;
    eprintln!("listening on {}", port.local_addr().listening());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    reactor.run().await
}
