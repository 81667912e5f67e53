//! The seed's select logger (14.3.2): one task watches the listening socket and every
//! connection at once (no task per connection) and logs what happens.
//!
//! ```text
//! cargo run --example select_logger [ADDR]   # default 127.0.0.1:1234; port 0 picks one; ADDR is HOST:PORT, :PORT or an endpoint string (tcp:0:interface=127.0.0.1)
//! nc 127.0.0.1 1234                          # type lines; they appear on the server
//! ```
//!
//! stdout gets `Got connection from HOST:PORT`, the data exactly as received (flushed at
//! once), then `HOST:PORT disconnected`. Ctrl-C (SIGINT) or SIGTERM stops it: exit status 0. The loop is
//! [`weft::server::loggers::select_logger`], which the tests drive with several clients.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let listener = TcpListener::bind(weft::core::ServerEndpoint::parse_tcp(&addr)?).await?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    eprintln!("listening on {}", listener.local_addr()?);
    weft::server::loggers::select_logger(listener, tokio::io::stdout(), async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
    .await?;
    Ok(())
}
