//! Error types of the servers and of the request handlers.

use std::io;

/// The error a request handler returns: any error type, boxed.
///
/// Handlers return `Result<(), HandlerError>`, so `?` works on `std::io::Error`
/// and on any other `std::error::Error + Send + Sync`.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result of one handler step (`setup`, `handle` or `finish`).
pub type HandlerResult = Result<(), HandlerError>;

/// Errors of the server life cycle (binding, accepting, closing).
///
/// Errors raised *inside* a request handler are not `ServerError`s: they go to the
/// handler's `handle_error` and the server carries on.
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
    #[error("refusing to fork: the process has {0} threads (fork is only sound from a single-threaded process)")]
    NotSingleThreaded(usize),
    /// A worker process could not be started.
    #[error("could not start a worker process: {0}")]
    Worker(String),
}
