//! [`ServerHooks`]: the server-level hooks of `socketserver` (`verify_request`,
//! `handle_error`, `handle_timeout`), set once on the [`ServerConfig`] whatever the
//! handler's flavour.

use std::fmt;
use std::sync::Arc;

use weft_core::Address;

use crate::error::HandlerError;
use crate::request::ServerInfo;
#[cfg(doc)]
use crate::{BlockingRequestHandler, RequestHandler, ServerConfig};

/// The server-level hooks of `socketserver`: `verify_request`, `handle_error` and
/// `handle_timeout`, each with the default Python has.
///
/// As in Python, where they are methods of `BaseServer` (not of the request handler),
/// they belong to the server: set them with [`ServerConfig::hooks`]. So a handler, async
/// ([`RequestHandler`]) or blocking ([`BlockingRequestHandler`]), is one `impl` block
/// with `setup`/`handle`/`finish`, and the same hooks serve both flavours and every
/// server type, the forking ones included. A hook's panic never stops the server.
///
/// To share state between the hooks and the handler, give both an `Arc` of it: the
/// hooks are implemented for `Arc<T>` where `T` has them (and `()` is the defaults).
///
/// # Examples
///
/// A handler and hooks that count into the same place:
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use weft_server::{Address, HandlerError, HandlerResult, RequestHandler, ServerConfig};
/// use weft_server::{ServerHooks, StreamRequest, TcpServer};
///
/// #[derive(Default)]
/// struct Stats {
///     served: AtomicUsize,
///     failed: AtomicUsize,
/// }
/// impl ServerHooks for Stats {
///     fn handle_error(&self, _client: &Address, _error: &HandlerError) {
///         self.failed.fetch_add(1, Ordering::SeqCst);
///     }
/// }
///
/// struct Counted(Arc<Stats>);
/// impl RequestHandler<StreamRequest> for Counted {
///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
///         self.0.served.fetch_add(1, Ordering::SeqCst);
///         req.write_all(b"hello\n").await?;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let stats = Arc::new(Stats::default());
/// let config = ServerConfig::new().hooks(stats.clone());
/// let server = TcpServer::bind_with("127.0.0.1:0", Counted(stats.clone()), config).await?;
/// # server.close().await?;
/// # Ok(()) }
/// ```
pub trait ServerHooks: Send + Sync + 'static {
    /// Called for each new request before anything else; `false` closes the
    /// connection (or drops the datagram) without handling it. A panic counts as
    /// `false` and goes to [`handle_error`](Self::handle_error), as Python sends
    /// `verify_request`'s exceptions to `handle_error`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use weft_server::{Address, HandlerResult, RequestHandler, ServerConfig, ServerHooks};
    /// use weft_server::{ServerInfo, StreamRequest};
    ///
    /// /// Serves the listed hosts only.
    /// struct AllowList(Vec<IpAddr>);
    /// impl ServerHooks for AllowList {
    ///     fn verify_request(&self, client: &Address, _server: &ServerInfo) -> bool {
    ///         client.as_inet().is_some_and(|a| self.0.contains(&a.ip()))
    ///     }
    /// }
    ///
    /// struct Hello;
    /// impl RequestHandler<StreamRequest> for Hello {
    ///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    ///         req.write_all(b"hello, friend\n").await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let config = ServerConfig::new().hooks(AllowList(vec!["10.1.2.3".parse()?]));
    /// let server = weft_server::TcpServer::bind_with("127.0.0.1:0", Hello, config).await?;
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    /// # let handle = server.shutdown_handle();
    /// # let serving = tokio::spawn(async move { server.serve_forever().await });
    ///
    /// // 127.0.0.1 is not on the list: the connection is closed unanswered.
    /// # use tokio::io::AsyncReadExt;
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// let mut reply = Vec::new();
    /// client.read_to_end(&mut reply).await?;
    /// assert!(reply.is_empty());
    /// # handle.shutdown().await;
    /// # serving.await??;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    fn verify_request(&self, client: &Address, server: &ServerInfo) -> bool {
        let _ = (client, server);
        true
    }

    /// Called with an error or panic of a handler's `setup`/`handle`/`finish` (or of
    /// `verify_request`); logs it by default. The server goes on either way; this hook
    /// only decides what is reported, and how. In a forking server it runs in the child.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weft_server::{Address, Concurrency, HandlerError, HandlerResult, ServerConfig};
    /// use weft_server::{RequestHandler, ServerHooks, StreamRequest, TcpServer};
    ///
    /// #[derive(Default)]
    /// struct Errors(Mutex<Vec<String>>);
    /// impl ServerHooks for Errors {
    ///     fn handle_error(&self, client: &Address, error: &HandlerError) {
    ///         let mut errors = self.0.lock().unwrap_or_else(|e| e.into_inner());
    ///         errors.push(format!("{client}: {error}"));
    ///     }
    /// }
    ///
    /// struct Strict;
    /// impl RequestHandler<StreamRequest> for Strict {
    ///     async fn handle(&self, req: &mut StreamRequest) -> HandlerResult {
    ///         let line = String::from_utf8(req.read_line().await?)?;
    ///         let _n: u32 = line.trim().parse()?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let errors = Arc::new(Errors::default());
    /// // `Sequential`: `handle_request` returns after the handler and its `handle_error`.
    /// let config = ServerConfig::new()
    ///     .concurrency(Concurrency::Sequential)
    ///     .hooks(errors.clone());
    /// let server = TcpServer::bind_with("127.0.0.1:0", Strict, config).await?;
    /// let addr = server.server_address().as_inet().ok_or("not an IP address")?;
    ///
    /// # use tokio::io::AsyncWriteExt;
    /// let mut client = tokio::net::TcpStream::connect(addr).await?;
    /// client.write_all(b"forty-two\n").await?;
    /// server.handle_request().await?;
    ///
    /// let errors = errors.0.lock().unwrap_or_else(|e| e.into_inner());
    /// assert_eq!(errors.len(), 1);
    /// assert!(errors[0].ends_with("invalid digit found in string"));
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    fn handle_error(&self, client: &Address, error: &HandlerError) {
        tracing::error!(%client, %error, "error while handling a request");
    }

    /// Called by `handle_request` when no request came within the server's
    /// [`timeout`](ServerConfig::timeout).
    ///
    /// # Examples
    ///
    /// The hooks serve a blocking handler as they serve an async one:
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use weft_server::{Blocking, BlockingRequestHandler, DatagramRequest, HandlerResult};
    /// use weft_server::{ServerConfig, ServerHooks, ServerInfo, UdpServer};
    ///
    /// struct Idle(AtomicUsize);
    /// impl ServerHooks for Idle {
    ///     fn handle_timeout(&self, _server: &ServerInfo) {
    ///         self.0.fetch_add(1, Ordering::SeqCst);
    ///     }
    /// }
    ///
    /// struct Ignore;
    /// impl BlockingRequestHandler<DatagramRequest> for Ignore {
    ///     fn handle(&self, _req: &mut DatagramRequest) -> HandlerResult {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// let idle = Arc::new(Idle(AtomicUsize::new(0)));
    /// let config = ServerConfig::new()
    ///     .timeout(Duration::from_millis(20))
    ///     .hooks(idle.clone());
    /// let server = UdpServer::bind_with("127.0.0.1:0", Blocking(Ignore), config).await?;
    /// server.handle_request().await?; // no datagram comes
    /// server.handle_request().await?;
    /// assert_eq!(idle.0.load(Ordering::SeqCst), 2);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).await?
    /// # }
    /// ```
    fn handle_timeout(&self, server: &ServerInfo) {
        let _ = server;
    }
}

/// The defaults: every request verified, errors logged, timeouts ignored.
impl ServerHooks for () {}

impl<T: ServerHooks + ?Sized> ServerHooks for Arc<T> {
    fn verify_request(&self, client: &Address, server: &ServerInfo) -> bool {
        (**self).verify_request(client, server)
    }
    fn handle_error(&self, client: &Address, error: &HandlerError) {
        (**self).handle_error(client, error)
    }
    fn handle_timeout(&self, server: &ServerInfo) {
        (**self).handle_timeout(server)
    }
}

/// The hooks a [`ServerConfig`] holds.
#[derive(Clone)]
pub(crate) struct Hooks(pub(crate) Arc<dyn ServerHooks>);

impl Default for Hooks {
    fn default() -> Self {
        Hooks(Arc::new(()))
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerHooks")
    }
}

/// `verify_request`, with a panic counting as a refusal reported to `handle_error`
/// (Python sends exceptions of `verify_request` to `handle_error` too).
pub(crate) fn verify(info: &ServerInfo, client: &Address) -> bool {
    let hooks = &info.config.hooks.0;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        hooks.verify_request(client, info)
    })) {
        Ok(ok) => ok,
        Err(p) => {
            report(hooks, client, &crate::handler::panic_error(p));
            false
        }
    }
}

/// `handle_error`, whose own panic is logged.
pub(crate) fn report(hooks: &Arc<dyn ServerHooks>, client: &Address, error: &HandlerError) {
    let reported = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        hooks.handle_error(client, error)
    }));
    if reported.is_err() {
        tracing::error!(%client, %error, "handle_error panicked while reporting this error");
    }
}

/// `handle_timeout`, whose panic is logged and does not stop the server.
pub(crate) fn timeout(info: &ServerInfo) {
    let hooks = &info.config.hooks.0;
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hooks.handle_timeout(info)))
        .is_err()
    {
        tracing::error!(server = %info.address, "handle_timeout panicked");
    }
}
