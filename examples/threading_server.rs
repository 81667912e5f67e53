//! The seed's threading server (14.3.1): `ThreadingMixIn` + `TCPServer`, a thread per
//! connection running a blocking `StreamRequestHandler`.
//!
//! ```text
//! cargo run --example threading_server [ADDR]   # default 127.0.0.1:1234; port 0 picks one; ADDR is HOST:PORT, :PORT or an endpoint string (tcp:0:interface=127.0.0.1)
//! nc 127.0.0.1 1234                              # prints "Thank you for connecting"
//! ```
//!
//! stdout gets `Got connection from HOST:PORT` per client. Ctrl-C stops it; closing waits
//! for the handler threads still running (`block_on_close`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use weft::server::{
    Blocking, BlockingRequestHandler, BlockingStreamRequest, Concurrency, HandlerResult,
    ServerConfig, TcpServer,
};

/// The seed's `Handler(StreamRequestHandler)`, blocking: it runs on its own thread.
struct Handler;

impl BlockingRequestHandler<BlockingStreamRequest> for Handler {
    fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
        println!("Got connection from {}", req.client_address());
        req.write_all(b"Thank you for connecting")?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), weft::server::ServerError> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let config = ServerConfig::new().concurrency(Concurrency::threads());
    let server = TcpServer::bind_with(
        weft::core::ServerEndpoint::parse_tcp(&addr).map_err(std::io::Error::from)?,
        Blocking(Handler),
        config,
    )
    .await?;
    server.shutdown_handle().request_on_signals()?; // before announcing: Ctrl-C from now on stops serving cleanly
    eprintln!("listening on {}", server.server_address());
    server.serve_forever().await?;
    server.close().await
}
