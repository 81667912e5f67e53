//! Error types of the servers and of the request handlers.

use std::io;

/// The error a request handler returns: any error type, boxed.
///
/// Handlers return `Result<(), HandlerError>`, so `?` works on `std::io::Error`
/// and on any other `std::error::Error + Send + Sync`.
///
/// # Examples
///
/// ```
/// use weft_server::{HandlerError, HandlerResult, RequestHandler, StreamRequest};
///
/// struct Adder;
/// impl RequestHandler<StreamRequest> for Adder {
///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
///         let line = String::from_utf8(req.read_line().await?)?; // FromUtf8Error
///         let mut sum = 0i64;
///         for word in line.split_whitespace() {
///             sum += word.parse::<i64>()?; // ParseIntError
///         }
///         if sum < 0 {
///             // Any message works too.
///             return Err(HandlerError::from(format!("negative sum {sum}")));
///         }
///         req.write_all(format!("{sum}\n").as_bytes()).await?; // io::Error
///         Ok(())
///     }
/// }
/// ```
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result of one handler step (`setup`, `handle` or `finish`).
///
/// # Examples
///
/// ```
/// use weft_server::{BlockingRequestHandler, DatagramRequest, HandlerResult};
///
/// struct Ack;
/// impl BlockingRequestHandler<DatagramRequest> for Ack {
///     fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
///         if req.packet().is_empty() {
///             return Err("empty datagram".into());
///         }
///         req.wfile.extend_from_slice(b"ack");
///         Ok(())
///     }
/// }
/// ```
pub type HandlerResult = Result<(), HandlerError>;

/// Errors of the server life cycle (binding, accepting, closing).
///
/// Errors raised *inside* a request handler are not `ServerError`s: they go to the
/// handler's `handle_error` and the server carries on.
///
/// # Examples
///
/// Binding a port that is taken fails with [`ServerError::Io`]; using a closed server
/// fails with [`ServerError::Closed`]:
///
/// ```
/// use std::io::ErrorKind;
/// use weft_server::{ServerError, TcpServer};
/// # use weft_server::{HandlerResult, RequestHandler, StreamRequest};
/// # struct Quiet;
/// # impl RequestHandler<StreamRequest> for Quiet {
/// #     async fn handle(&self, _req: &mut StreamRequest) -> HandlerResult { Ok(()) }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = TcpServer::bind("127.0.0.1:0", Quiet).await?;
/// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
///
/// // The port is taken: an I/O error.
/// match TcpServer::bind(addr, Quiet).await {
///     Err(ServerError::Io(e)) => assert_eq!(e.kind(), ErrorKind::AddrInUse),
///     other => panic!("expected AddrInUse, got {other:?}"),
/// }
///
/// // The server is closed: `Closed`.
/// server.close().await?;
/// assert!(matches!(server.handle_request().await, Err(ServerError::Closed)));
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// An I/O error while binding, listening, accepting or receiving.
    #[error("server I/O error: {0}")]
    Io(#[from] io::Error),
    /// The address did not resolve to anything bindable.
    #[error("address {0:?} resolved to no usable socket address")]
    NoAddress(String),
    /// The server was already closed.
    #[error("the server is closed")]
    Closed,
    /// The operation is not available in the configured concurrency mode.
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    /// Forking was refused because the process runs more than one thread.
    #[error(
        "refusing to fork: the process has {0} threads (fork is only sound from a single-threaded process)"
    )]
    NotSingleThreaded(usize),
    /// A worker process could not be started.
    #[error("could not start a worker process: {0}")]
    Worker(String),
}
