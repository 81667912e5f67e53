//! weft-server: Python's `socketserver` (seed chapters 14.2 and 14.3) in async Rust.
//!
//! Servers ([`TcpServer`], [`UdpServer`], [`UnixStreamServer`],
//! [`UnixDatagramServer`]) accept requests and hand each to a request handler
//! ([`RequestHandler`], async; or [`BlockingRequestHandler`] wrapped in [`Blocking`])
//! with `setup`, `handle` and `finish`. Stream handlers get a buffered `rfile` and
//! `wfile` ([`StreamRequest`]); datagram handlers get the packet as `rfile` and a
//! `wfile` sent back as the reply ([`DatagramRequest`]).
//!
//! The life cycle is `socketserver`'s: `serve_forever`, [`ShutdownHandle::shutdown`]
//! from any task or thread, `handle_request` with a timeout and `handle_timeout`,
//! `verify_request`, `handle_error` (errors and panics in handlers never stop the
//! server), `server_address` with the real port, and `close`. As in Python, those three
//! hooks are the server's, not the handler's: [`ServerHooks`], set with
//! [`ServerConfig::hooks`], serve both handler flavours.
//!
//! How requests run is the [`Concurrency`] of the [`ServerConfig`]: `Sequential`
//! (the seed's first server), `Threads` (`ThreadingMixIn`), `Processes` (a pool of
//! worker processes; [`fork::ForkingServer`] and [`fork::ForkingDatagramServer`] are
//! the classic fork per request) and
//! `Tasks` (the default: a tokio task per request). [`loggers::select_logger`] is the
//! seed's select-loop logger.
//!
//! Which handler flavour runs where:
//!
//! | concurrency | async [`RequestHandler`] | [`Blocking`] handler |
//! |---|---|---|
//! | `Sequential` | awaited in the serving loop | on tokio's blocking pool, one at a time |
//! | `Tasks { limit }` | a tokio task each | a `spawn_blocking` each |
//! | `Threads { limit }` | a thread each, polling it with the server's runtime | a thread each, running it (one thread per request) |
//! | `Processes(pool)` | tasks in each worker process | `spawn_blocking` in each worker |
//! | [`fork`] servers | — | a forked child each (single-threaded program only) |
//!
//! A `Threads` handler thread has no runtime of its own: the connection stays registered
//! with the server's runtime, whose I/O driver and timers serve it while the thread waits
//! in `Handle::block_on` (on a current-thread runtime, while its thread is in
//! `Runtime::block_on`, serving or waiting in `close`).
//!
//! The servers are a layer on weft-core: they bind and accept through
//! [`weft_core::listener`] (so [`TcpServer::bind`] takes an endpoint string such as
//! `"tcp:1234:interface=127.0.0.1"`, and every stream endpoint kind weft-core knows, TLS
//! included, serves both handler flavours: blocking handlers read and write the connection
//! through tokio-util's `SyncIoBridge`), speak its [`Address`] and stop through its
//! [`ShutdownHandle`]. The [`fork`] servers run without tokio: plain TCP, UDP and Unix
//! sockets only.
//!
//! The seed's server, shortest form:
//!
//! ```no_run
//! use weft_server::{HandlerResult, RequestHandler, StreamRequest, TcpServer};
//!
//! struct Handler;
//! impl RequestHandler<StreamRequest> for Handler {
//!     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
//!         println!("Got connection from {}", req.client_address());
//!         req.write_all(b"Thank you for connecting").await?;
//!         Ok(())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), weft_server::ServerError> {
//!     TcpServer::bind("0.0.0.0:1234", Handler).await?.serve_forever().await
//! }
//! ```

mod config;
mod error;
mod exec;
pub mod fork;
mod handler;
mod hooks;
pub mod loggers;
pub mod pool;
mod request;
mod server;

pub use config::{Concurrency, ProcessPool, ServerConfig};
pub use error::{HandlerError, HandlerResult, ServerError};
pub use handler::{Blocking, BlockingRequestHandler, Handles, RequestHandler};
pub use hooks::ServerHooks;
pub use request::{
    BlockingStreamRequest, DatagramRequest, ServerInfo, StreamReader, StreamRequest, StreamWriter,
    TimeoutIo,
};
pub use server::{BindAddress, TcpServer, UdpServer, UnixDatagramServer, UnixStreamServer};
/// weft-core's address, listener and shutdown handle, which the servers speak.
pub use weft_core::{Address, ShutdownHandle};
