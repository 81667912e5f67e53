//! The seed's first program (14.1.1): a small server that thanks each client and hangs up.
//!
//! Plain tokio (weft only reads the address): this is the baseline the rest of the toolkit
//! improves on.
//!
//! ```text
//! cargo run --example small_server [ADDR]     # default 127.0.0.1:1234; port 0 picks one; ADDR is HOST:PORT, :PORT or an endpoint string (tcp:0:interface=127.0.0.1)
//! nc 127.0.0.1 1234                           # prints "Thank you for connecting"
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let listener = TcpListener::bind(weft::core::ServerEndpoint::parse_tcp(&addr)?).await?;
    // Ctrl-C (SIGINT) or SIGTERM ends the loop: the program exits 0.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    eprintln!("listening on {}", listener.local_addr()?);
    loop {
        let (mut client, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = interrupt.recv() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        };
        println!("Got connection from {peer}");
        tokio::spawn(async move {
            let _ = client.write_all(b"Thank you for connecting").await;
            let _ = client.shutdown().await;
        });
    }
}
