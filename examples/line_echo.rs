//! A line echo server: every line received is sent back (Twisted's `LineReceiver` framing,
//! lines up to 16384 bytes, ending in `\n` or `\r\n` alike: each goes back with the line end
//! it came with).
//!
//! ```text
//! cargo run --example line_echo [ADDR]   # default 127.0.0.1:1234; port 0 picks one; ADDR is HOST:PORT, :PORT or an endpoint string (tcp:0:interface=127.0.0.1)
//! nc 127.0.0.1 1234                      # type lines; each comes back
//! ```
//!
//! The first stderr line is `listening on HOST:PORT` (the real address). A line longer than
//! the maximum closes that connection (after what was already echoed). `LINE_DELIMITER=crlf`
//! keeps Twisted's strict `\r\n`, `LINE_DELIMITER=lf` takes `\n` only. Ctrl-C shuts down
//! gracefully.
#![allow(clippy::print_stderr)]

use weft::core::{Address, Reactor, factory_fn};
use weft::line::{Control, Delimiter, LineProtocol, Receiver};

/// Sends every line back.
struct LineEcho;

impl Receiver for LineEcho {
    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
        ctl.send_line(line);
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let delimiter = match std::env::var("LINE_DELIMITER") {
        Ok(d) if d.eq_ignore_ascii_case("crlf") => Delimiter::from(b"\r\n"),
        Ok(d) if d.eq_ignore_ascii_case("lf") => Delimiter::from(b"\n"),
        _ => Delimiter::ANY,
    };
    let reactor = Reactor::new();
    reactor.handle_signals()?; // a Ctrl-C from now on is a clean shutdown
    let factory = factory_fn(move |_: &Address| {
        Some(LineProtocol::new(LineEcho).with_delimiter(delimiter.clone()))
    });
    let port = reactor.listen(&addr, factory).await?;
    eprintln!("listening on {}", port.local_addr().listening());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    reactor.run().await
}
