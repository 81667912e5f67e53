//! The seed's Twisted logger (14.4): a `Protocol` that prints who connected, every chunk of
//! data as it arrives, and who left.
//!
//! ```text
//! cargo run --example twisted_logger [ADDR]   # default 127.0.0.1:1234; port 0 picks one; ADDR is HOST:PORT, :PORT or an endpoint string (tcp:0:interface=127.0.0.1)
//! nc 127.0.0.1 1234                           # type lines; they appear on the server
//! ```
//!
//! stdout gets `Got connection from HOST:PORT`, the data exactly as received (flushed at once,
//! not held for a newline), then `HOST:PORT disconnected`. Ctrl-C shuts down gracefully.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

use weft::core::{Address, DisconnectReason, Protocol, Reactor, Transport, factory_fn};

/// The seed's `SimpleLogger`.
struct SimpleLogger {
    peer: Address,
}

impl Protocol for SimpleLogger {
    fn connection_made(&mut self, _t: &mut Transport) {
        println!("Got connection from {}", self.peer);
    }

    fn data_received(&mut self, data: &[u8], _t: &mut Transport) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(data);
        let _ = out.flush();
    }

    fn connection_lost(&mut self, _reason: DisconnectReason) {
        println!("{} disconnected", self.peer);
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let reactor = Reactor::new();
    reactor.handle_signals()?; // before announcing: a Ctrl-C from now on is a clean shutdown
    let factory = factory_fn(|peer: &Address| Some(SimpleLogger { peer: peer.clone() }));
    let port = reactor.listen(&addr, factory).await?;
    eprintln!("listening on {}", port.local_addr().listening());
    reactor.run().await
}
