//! The seed's forking server (14.3.1): `ForkingMixIn` + `TCPServer`, a child process per
//! connection, so a crash in one handler cannot take the others down.
//!
//! ```text
//! cargo run --example forking_server [ADDR]          # default 127.0.0.1:1234; port 0 picks one; ADDR is HOST:PORT, :PORT or an endpoint string (tcp:0:interface=127.0.0.1)
//! cargo run --example forking_server [ADDR] --pool N # async variant: N worker processes
//! nc 127.0.0.1 1234                                  # prints "Thank you for connecting"
//! ```
//!
//! stdout gets `Got connection from HOST:PORT` per client, printed by the process that
//! handles it.
//!
//! By default this is Python's model: a blocking, single-threaded server that `fork()`s per
//! connection ([`weft::server::fork::ForkingServer`]; no tokio runtime may run in this
//! process, since forking a multi-threaded process is unsound). With `--pool N` it is the
//! async form: a tokio server whose `Processes` concurrency re-executes this program as N
//! worker processes sharing the listening socket, restarting any that die. Either way Ctrl-C
//! (SIGINT) or SIGTERM stops it cleanly: exit status 0.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use weft::server::fork::ForkingServer;
use weft::server::{
    BlockingRequestHandler, BlockingStreamRequest, Concurrency, HandlerResult, ProcessPool,
    RequestHandler, ServerConfig, ServerError, StreamRequest, TcpServer,
};

/// The seed's `Handler(StreamRequestHandler)`, for the forked children.
struct Handler;

impl BlockingRequestHandler<BlockingStreamRequest> for Handler {
    fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
        println!("Got connection from {}", req.client_address());
        req.write_all(b"Thank you for connecting")?;
        Ok(())
    }
}

/// The same handler, async, for the worker pool.
impl RequestHandler<StreamRequest> for Handler {
    async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
        println!("Got connection from {}", req.client_address());
        req.write_all(b"Thank you for connecting").await?;
        Ok(())
    }
}

fn main() -> Result<(), ServerError> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .iter()
        .find(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let pool = args
        .iter()
        .position(|a| a == "--pool")
        .map(|i| args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(4));
    match pool {
        None => {
            let mut server = ForkingServer::bind_tcp(
                weft::core::ServerEndpoint::parse_tcp(&addr).map_err(std::io::Error::from)?,
                Handler,
                ServerConfig::new(),
            )?;
            // Ctrl-C and SIGTERM set a flag (a signal handler, no thread: the process must stay
            // single-threaded to fork); `serve_until` sees it within 200 ms.
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [SIGINT, SIGTERM] {
                signal_hook::flag::register(signal, Arc::clone(&stop))?;
            }
            eprintln!("listening on {}", server.server_address());
            server.serve_until(|| stop.load(Ordering::SeqCst))?;
            server.close() // waits for the children still handling a connection
        }
        Some(workers) => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let config = ServerConfig::new()
                    .concurrency(Concurrency::Processes(ProcessPool::new(workers)));
                let server = TcpServer::bind_with(
                    weft::core::ServerEndpoint::parse_tcp(&addr).map_err(std::io::Error::from)?,
                    Handler,
                    config,
                )
                .await?;
                if !server.info().is_worker() {
                    server.shutdown_handle().request_on_signals()?;
                    eprintln!("listening on {}", server.server_address());
                }
                server.serve_forever().await?;
                server.close().await
            })
        }
    }
}
