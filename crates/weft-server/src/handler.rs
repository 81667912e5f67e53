//! Request handlers: the async [`RequestHandler`] and the [`BlockingRequestHandler`]
//! flavour (wrapped in [`Blocking`]) for threads and forked processes.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::error::{HandlerError, HandlerResult};
use crate::exec;
use crate::request::{BlockingStreamRequest, DatagramRequest, StreamRequest};

/// An async request handler (`BaseRequestHandler`): `setup`, `handle`, `finish` run
/// for every request, with the request (`R`: [`crate::StreamRequest`] or
/// [`crate::DatagramRequest`]), the client address and the server's settings at hand
/// (through the request).
///
/// One handler value serves every request of a server (it is shared behind an `Arc`);
/// keep per-request state in locals of `handle`. `finish` runs even when `handle`
/// fails, like Python's `try: handle() finally: finish()`. The first error goes to the
/// server's [`handle_error`](crate::ServerHooks::handle_error); a panic is caught and
/// reported the same way.
/// Neither stops the server.
///
/// The server-level hooks of `socketserver` (`verify_request`, `handle_error`,
/// `handle_timeout`) are the server's, as in Python: [`crate::ServerHooks`], set on the
/// [`crate::ServerConfig`] (so a handler is one `impl` block, of either flavour).
///
/// # Examples
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
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    ///
    /// /// The first line must be the password; then the client is welcome.
    /// struct Guarded;
    /// impl RequestHandler<StreamRequest> for Guarded {
    ///     async fn setup(&self, req: &mut StreamRequest) -> HandlerResult {
    ///         if req.read_line().await? != b"open sesame\n" {
    ///             return Err("wrong password".into()); // skips `handle`
    ///         }
    ///         Ok(())
    ///     }
    ///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    ///         req.write_all(b"welcome\n").await?;
    ///         Ok(())
    ///     }
    ///     async fn finish(&self, req: &mut StreamRequest) -> HandlerResult {
    ///         req.write_all(b"bye\n").await?; // runs either way
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::TcpServer::bind("127.0.0.1:0", Guarded).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// for (password, expected) in [("open sesame", "welcome\nbye\n"), ("let me in", "bye\n")] {
    ///     let mut client = tokio::net::TcpStream::connect(addr).await?;
    ///     client.write_all(format!("{password}\n").as_bytes()).await?;
    ///     let mut reply = String::new();
    ///     client.read_to_string(&mut reply).await?;
    ///     assert_eq!(reply, expected);
    /// }
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    fn setup(&self, request: &mut R) -> impl Future<Output = HandlerResult> + Send {
        let _ = request;
        async { Ok(()) }
    }

    /// Handles the request.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    ///
    /// struct Echo;
    /// impl RequestHandler<StreamRequest> for Echo {
    ///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    ///         let line = req.read_line().await?;
    ///         req.write_all(&line).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::TcpServer::bind("127.0.0.1:0", Echo).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// client.write_all(b"hi\n").await?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply).await?;
    /// assert_eq!(reply, "hi\n");
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    fn handle(&self, request: &mut R) -> impl Future<Output = HandlerResult> + Send;

    /// Runs after `handle`, even if it failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use weft_server::{HandlerResult, RequestHandler, StreamRequest};
    ///
    /// struct Counted {
    ///     finished: Arc<AtomicUsize>,
    /// }
    /// impl RequestHandler<StreamRequest> for Counted {
    ///     async fn handle(&self, _req: &mut StreamRequest) -> HandlerResult {
    ///         Err("this handler always fails".into())
    ///     }
    ///     async fn finish(&self, _req: &mut StreamRequest) -> HandlerResult {
    ///         self.finished.fetch_add(1, Ordering::SeqCst); // still runs
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let finished = Arc::new(AtomicUsize::new(0));
    /// let handler = Counted { finished: finished.clone() };
    /// let server = weft_server::TcpServer::bind("127.0.0.1:0", handler).await?;
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    ///
    /// # use tokio::io::AsyncReadExt;
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// client.read_to_end(&mut Vec::new()).await?; // the server closes after `finish`
    /// assert_eq!(finished.load(Ordering::SeqCst), 1);
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    fn finish(&self, request: &mut R) -> impl Future<Output = HandlerResult> + Send {
        let _ = request;
        async { Ok(()) }
    }
}

/// A blocking request handler, for [`crate::Concurrency::Threads`] and
/// [`crate::fork::ForkingServer`] (wrap it in [`Blocking`] to give it to the async
/// servers). `R` is [`crate::BlockingStreamRequest`] or [`crate::DatagramRequest`].
///
/// # Examples
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
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    ///
    /// struct Guarded;
    /// impl BlockingRequestHandler<BlockingStreamRequest> for Guarded {
    ///     fn setup(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    ///         if req.read_line()? != b"open sesame\n" {
    ///             return Err("wrong password".into()); // skips `handle`
    ///         }
    ///         Ok(())
    ///     }
    ///     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    ///         req.write_all(b"welcome\n")?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::TcpServer::bind("127.0.0.1:0", weft_server::Blocking(Guarded)).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// client.write_all(b"let me in\n").await?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply).await?;
    /// assert_eq!(reply, ""); // refused in `setup`
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    fn setup(&self, request: &mut R) -> HandlerResult {
        let _ = request;
        Ok(())
    }

    /// Handles the request.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use weft_server::{Blocking, BlockingRequestHandler, DatagramRequest, HandlerResult};
    /// use weft_server::UdpServer;
    ///
    /// struct Upper;
    /// impl BlockingRequestHandler<DatagramRequest> for Upper {
    ///     fn handle(&self, req: &mut DatagramRequest) -> HandlerResult {
    ///         let mut text = String::new();
    ///         req.rfile.read_to_string(&mut text)?;
    ///         req.wfile = text.to_uppercase().into_bytes();
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let server = UdpServer::bind("127.0.0.1:0", Blocking(Upper)).await?;
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    /// client.send_to(b"quiet", addr).await?;
    /// let mut buf = [0u8; 16];
    /// let n = client.recv(&mut buf).await?;
    /// assert_eq!(&buf[..n], b"QUIET");
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    fn handle(&self, request: &mut R) -> HandlerResult;

    /// Runs after `handle`, even if it failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
    ///
    /// struct Polite;
    /// impl BlockingRequestHandler<BlockingStreamRequest> for Polite {
    ///     fn handle(&self, _req: &mut BlockingStreamRequest) -> HandlerResult {
    ///         Err("nothing to say".into())
    ///     }
    ///     fn finish(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
    ///         req.write_all(b"goodbye\n")?; // runs although `handle` failed
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// # let server = weft_server::TcpServer::bind("127.0.0.1:0", weft_server::Blocking(Polite)).await?;
    /// # let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    /// # use tokio::io::AsyncReadExt;
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply).await?;
    /// assert_eq!(reply, "goodbye\n");
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    fn finish(&self, request: &mut R) -> HandlerResult {
        let _ = request;
        Ok(())
    }
}

/// Marks a [`BlockingRequestHandler`] for an async server: its requests run on their own
/// thread (`Threads`), on tokio's blocking pool (`Sequential`, `Tasks`, workers), reading
/// and writing the connection through tokio-util's `SyncIoBridge` (so any stream endpoint
/// kind the server accepts works).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use tokio::io::AsyncReadExt;
/// use weft_server::{Blocking, Concurrency, ServerConfig, TcpServer};
/// use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult};
///
/// struct Thanks;
/// impl BlockingRequestHandler<BlockingStreamRequest> for Thanks {
///     fn handle(&self, req: &mut BlockingStreamRequest) -> HandlerResult {
///         req.write_all(b"Thank you for connecting")?; // plain blocking I/O
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = ServerConfig::new().concurrency(Concurrency::threads());
/// let server = TcpServer::bind_with("tcp:0:interface=127.0.0.1", Blocking(Thanks), config).await?;
/// let server = Arc::new(server);
/// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
/// let serving = tokio::spawn({
///     let server = server.clone();
///     async move { server.serve_forever().await }
/// });
///
/// let mut client = tokio::net::TcpStream::connect(addr).await?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply).await?;
/// assert_eq!(reply, "Thank you for connecting");
///
/// server.close().await?; // waits for the handler thread
/// serving.await??;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Blocking<H>(pub H);

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

/// What a server runs for each request of type `R` ([`StreamRequest`] or
/// [`DatagramRequest`]): implemented for every [`RequestHandler<R>`], and for a
/// [`BlockingRequestHandler`] wrapped in [`Blocking`]. Implement one of those, not this;
/// name it to write code generic over the handler flavour.
///
/// A blocking stream handler reads and writes the same connection an async one would,
/// through [`tokio_util::io::SyncIoBridge`], on its request's thread (`Threads`) or on
/// tokio's blocking pool: so it serves every stream kind weft-core's listener accepts
/// (TLS included), not only plain sockets.
///
/// # Examples
///
/// ```
/// use weft_server::{Blocking, Handles, ServerError, StreamRequest, TcpServer};
/// # use weft_server::{BlockingRequestHandler, BlockingStreamRequest, HandlerResult, RequestHandler};
/// # struct AsyncEcho;
/// # impl RequestHandler<StreamRequest> for AsyncEcho {
/// #     async fn handle(&self, _req: &mut StreamRequest) -> HandlerResult { Ok(()) }
/// # }
/// # struct BlockingEcho;
/// # impl BlockingRequestHandler<BlockingStreamRequest> for BlockingEcho {
/// #     fn handle(&self, _req: &mut BlockingStreamRequest) -> HandlerResult { Ok(()) }
/// # }
///
/// async fn local_server<H: Handles<StreamRequest>>(handler: H) -> Result<TcpServer<H>, ServerError> {
///     TcpServer::bind("127.0.0.1:0", handler).await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let a = local_server(AsyncEcho).await?; // a RequestHandler<StreamRequest>
/// let b = local_server(Blocking(BlockingEcho)).await?; // a blocking one, wrapped
/// assert_ne!(a.server_address(), b.server_address());
/// # Ok(()) }
/// ```
pub trait Handles<R>: Send + Sync + 'static {
    /// Runs `setup`, `handle` and `finish` on `request` and hands it back (a datagram's
    /// reply is in its `wfile`) with the first error.
    fn run(self: Arc<Self>, request: R) -> BoxFuture<'static, (R, HandlerResult)>;
}

impl<R: Send + 'static, H: RequestHandler<R>> Handles<R> for H {
    fn run(self: Arc<Self>, mut request: R) -> BoxFuture<'static, (R, HandlerResult)> {
        Box::pin(async move {
            let result = run_async(&*self, &mut request).await;
            (request, result)
        })
    }
}

impl<H: BlockingRequestHandler<BlockingStreamRequest>> Handles<StreamRequest> for Blocking<H> {
    fn run(
        self: Arc<Self>,
        mut request: StreamRequest,
    ) -> BoxFuture<'static, (StreamRequest, HandlerResult)> {
        Box::pin(async move {
            let mut blocking = request.take_blocking();
            let ran = exec::blocking(move || {
                let result = run_blocking(&self.0, &mut blocking);
                // Like StreamRequestHandler.finish: a final socket error is ignored.
                if let Err(e) = blocking.close() {
                    tracing::debug!(client = %blocking.client, error = %e, "error while closing a connection");
                }
                result
            })
            .await;
            (request, ran.and_then(|result| result))
        })
    }
}

impl<H: BlockingRequestHandler<DatagramRequest>> Handles<DatagramRequest> for Blocking<H> {
    fn run(
        self: Arc<Self>,
        request: DatagramRequest,
    ) -> BoxFuture<'static, (DatagramRequest, HandlerResult)> {
        Box::pin(async move {
            // What is left of the request if the handler panics: no reply.
            let lost =
                DatagramRequest::new(Vec::new(), request.client.clone(), request.server.clone());
            let ran = exec::blocking(move || {
                let mut request = request;
                let result = run_blocking(&self.0, &mut request);
                (request, result)
            })
            .await;
            ran.unwrap_or_else(|e| (lost, Err(e)))
        })
    }
}

/// The error a panicking handler is reported with.
pub(crate) fn panic_error(payload: Box<dyn std::any::Any + Send>) -> HandlerError {
    format!(
        "handler panicked: {}",
        weft_core::panic_message(payload.as_ref())
    )
    .into()
}
