//! Request handlers: the async [`RequestHandler`] and the [`BlockingRequestHandler`]
//! flavour (wrapped in [`Blocking`]) for threads and forked processes.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::addr::Address;
use crate::error::{HandlerError, HandlerResult};
use crate::request::ServerInfo;

/// An async request handler (`BaseRequestHandler`): `setup`, `handle`, `finish` run
/// for every request, with the request (`R`: [`crate::StreamRequest`] or
/// [`crate::DatagramRequest`]), the client address and the server's settings at hand
/// (through the request).
///
/// One handler value serves every request of a server (it is shared behind an `Arc`);
/// keep per-request state in locals of `handle`. `finish` runs even when `handle`
/// fails, like Python's `try: handle() finally: finish()`. The first error goes to
/// [`handle_error`](Self::handle_error); a panic is caught and reported the same way.
/// Neither stops the server.
///
/// The server-level hooks of `socketserver` (`verify_request`, `handle_error`,
/// `handle_timeout`) are default methods here too.
///
/// ```
/// use weft_server::{HandlerResult, RequestHandler, StreamRequest, TcpServer};
///
/// struct Hello;
/// impl RequestHandler<StreamRequest> for Hello {
///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
///         let greeting = format!("hello {}\n", req.client_address());
///         req.write_all(greeting.as_bytes()).await?;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = TcpServer::bind("127.0.0.1:0", Hello).await?;
/// let addr = server.server_address().as_inet().unwrap();
/// let handle = server.shutdown_handle();
/// let serving = tokio::spawn(async move { server.serve_forever().await });
///
/// use tokio::io::AsyncReadExt;
/// let mut client = tokio::net::TcpStream::connect(addr).await?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply).await?;
/// assert!(reply.starts_with("hello 127.0.0.1:"));
///
/// handle.shutdown().await;
/// serving.await??;
/// # Ok(()) }
/// ```
pub trait RequestHandler<R: Send + 'static>: Send + Sync + 'static {
    /// Runs before `handle`; an error skips `handle` (but not `finish`).
    fn setup(&self, request: &mut R) -> impl Future<Output = HandlerResult> + Send {
        let _ = request;
        async { Ok(()) }
    }

    /// Handles the request.
    fn handle(&self, request: &mut R) -> impl Future<Output = HandlerResult> + Send;

    /// Runs after `handle`, even if it failed.
    fn finish(&self, request: &mut R) -> impl Future<Output = HandlerResult> + Send {
        let _ = request;
        async { Ok(()) }
    }

    /// Called for each new request before anything else; `false` closes the
    /// connection (or drops the datagram) without handling it.
    fn verify_request(&self, client: &Address, server: &ServerInfo) -> bool {
        let _ = (client, server);
        true
    }

    /// Called with an error or panic of `setup`/`handle`/`finish`; logs it by default.
    fn handle_error(&self, client: &Address, error: &HandlerError) {
        tracing::error!(%client, %error, "error while handling a request");
    }

    /// Called by `handle_request` when no request came within the server's timeout.
    fn handle_timeout(&self, server: &ServerInfo) {
        let _ = server;
    }
}

/// A blocking request handler, for [`crate::Concurrency::Threads`] and
/// [`crate::fork::ForkingServer`] (wrap it in [`Blocking`] to give it to the async
/// servers). `R` is [`crate::BlockingStreamRequest`] or [`crate::DatagramRequest`].
///
/// ```
/// use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
///
/// struct Thanks;
/// impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
///     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
///         req.write_all(b"Thank you for connecting")?;
///         Ok(())
///     }
/// }
/// ```
pub trait BlockingRequestHandler<R: Send + 'static>: Send + Sync + 'static {
    /// Runs before `handle`; an error skips `handle` (but not `finish`).
    fn setup(&self, request: &mut R) -> HandlerResult {
        let _ = request;
        Ok(())
    }

    /// Handles the request.
    fn handle(&self, request: &mut R) -> HandlerResult;

    /// Runs after `handle`, even if it failed.
    fn finish(&self, request: &mut R) -> HandlerResult {
        let _ = request;
        Ok(())
    }

    /// See [`RequestHandler::verify_request`].
    fn verify_request(&self, client: &Address, server: &ServerInfo) -> bool {
        let _ = (client, server);
        true
    }

    /// See [`RequestHandler::handle_error`].
    fn handle_error(&self, client: &Address, error: &HandlerError) {
        tracing::error!(%client, %error, "error while handling a request");
    }

    /// See [`RequestHandler::handle_timeout`].
    fn handle_timeout(&self, server: &ServerInfo) {
        let _ = server;
    }
}

/// Marks a [`BlockingRequestHandler`] for an async server: its requests run on a
/// thread (`Threads`), on tokio's blocking pool (`Sequential`, `Tasks`, workers).
///
/// ```
/// use weft_server::{Blocking, Concurrency, ServerConfig, TcpServer};
/// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
/// # struct Thanks;
/// # impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
/// #     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weft_server::ServerError> {
/// let config = ServerConfig::new().concurrency(Concurrency::threads());
/// let server = TcpServer::bind_with("127.0.0.1:0", Blocking(Thanks), config).await?;
/// server.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Blocking<H>(pub H);

/// One request, ready to run.
pub(crate) enum Job {
    Async(BoxFuture<'static, HandlerResult>),
    Blocking(Box<dyn FnOnce() -> HandlerResult + Send>),
}

/// Runs the three steps: `setup`, then `handle` if it succeeded, then `finish`; the
/// first error wins.
pub(crate) async fn run_async<R, H>(h: &H, req: &mut R) -> HandlerResult
where
    R: Send + 'static,
    H: RequestHandler<R>,
{
    let mut result = h.setup(req).await;
    if result.is_ok() {
        result = h.handle(req).await;
    }
    let fin = h.finish(req).await;
    result.and(fin)
}

pub(crate) fn run_blocking<R, H>(h: &H, req: &mut R) -> HandlerResult
where
    R: Send + 'static,
    H: BlockingRequestHandler<R>,
{
    let mut result = h.setup(req);
    if result.is_ok() {
        result = h.handle(req);
    }
    let fin = h.finish(req);
    result.and(fin)
}

/// The hooks every handler flavour has.
pub(crate) trait Hooks: Send + Sync + 'static {
    fn verify(&self, client: &Address, server: &ServerInfo) -> bool;
    fn error(&self, client: &Address, error: &HandlerError);
    fn timeout(&self, server: &ServerInfo);
}

macro_rules! hooks_for {
    ($bound:ident, $req:ty, $ty:ident) => {
        impl<H: $bound<$req>> Hooks for $ty<H> {
            fn verify(&self, client: &Address, server: &ServerInfo) -> bool {
                self.0.verify_request(client, server)
            }
            fn error(&self, client: &Address, error: &HandlerError) {
                self.0.handle_error(client, error)
            }
            fn timeout(&self, server: &ServerInfo) {
                self.0.handle_timeout(server)
            }
        }
    };
}

pub(crate) struct AsyncStream<H>(pub(crate) Arc<H>);
pub(crate) struct BlockingStream<H>(pub(crate) Arc<H>);
pub(crate) struct AsyncDgram<H>(pub(crate) Arc<H>);
pub(crate) struct BlockingDgram<H>(pub(crate) Arc<H>);

hooks_for!(RequestHandler, crate::StreamRequest, AsyncStream);
hooks_for!(
    BlockingRequestHandler,
    crate::BlockingStreamRequest,
    BlockingStream
);
hooks_for!(RequestHandler, crate::DatagramRequest, AsyncDgram);
hooks_for!(
    BlockingRequestHandler,
    crate::DatagramRequest,
    BlockingDgram
);

/// Extracts a readable message from a panic payload.
pub(crate) fn panic_error(payload: Box<dyn std::any::Any + Send>) -> HandlerError {
    let msg = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    };
    format!("handler panicked: {msg}").into()
}
