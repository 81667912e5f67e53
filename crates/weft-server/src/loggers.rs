//! The seed's select-loop logger (14.3.2), as one task multiplexing every connection.
//!
//! The mio `poll` version lives in the `poll_logger` example of the `weft` package, so
//! that this crate does not depend on mio.
//!
//! # Examples
//!
//! The seed's logger on port 1234, logging to standard output until Ctrl-C:
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let listener = tokio::net::TcpListener::bind("0.0.0.0:1234").await?;
//!     let stop = async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     };
//!     weft_server::loggers::select_logger(listener, tokio::io::stdout(), stop).await?;
//!     Ok(())
//! }
//! ```

use std::future::Future;
use std::io;

use futures::stream::{SelectAll, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use weft_core::Address;
use weft_core::listener::{Incoming, Listener};

/// What happened on one connection.
enum Event {
    Data(Vec<u8>),
    Disconnected,
}

/// One connection as a stream of events: data chunks, then one `Disconnected`.
fn connection(
    incoming: Incoming,
    addr: Address,
) -> impl futures::Stream<Item = (Address, Event)> + Send {
    // Established on its first turn, inside the select loop's stream: a slow handshake
    // never holds up the other connections.
    let start = async move { incoming.establish().await.ok().map(|c| c.stream) };
    futures::stream::once(start).flat_map(move |stream| {
        let addr = addr.clone();
        futures::stream::unfold(stream, move |state| {
            let addr = addr.clone();
            async move {
                let mut stream = state?;
                let mut buf = vec![0u8; 1024];
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => Some(((addr, Event::Disconnected), None)),
                    Ok(n) => {
                        buf.truncate(n);
                        Some(((addr, Event::Data(buf)), Some(stream)))
                    }
                }
            }
        })
    })
}

/// The seed's `select` server: logs every connection on `listener` to `sink`, from a
/// single task and without a task per connection (the connections are polled together,
/// as `select()` watches all descriptors), until `stop` resolves.
///
/// Writes `Got connection from HOST:PORT\n` for each new client, the data of each
/// `recv` exactly as it arrives (not held back for a newline), and
/// `HOST:PORT disconnected\n` when a client goes (at end of stream or on an error, like
/// the seed). The sink is flushed after every event, so the output of several clients
/// interleaves chunk by chunk as their data does.
/// Returns the sink.
///
/// # Errors
///
/// The first error writing to or flushing `sink`, or the listening socket's own failure.
/// Accepting goes through weft-core's [`Listener`] (a `tokio::net::TcpListener` or
/// `UnixListener` converts into one, or bind any stream endpoint): errors of one
/// connection are skipped, running out of descriptors pauses accepting; a connection's
/// read error counts as its disconnection.
///
/// # Cancel safety
///
/// Dropping the future drops the listener, every connection and the sink with it:
/// resolve `stop` instead to get the sink back.
///
/// # Examples
///
/// The log written into an in-memory pipe and read as it comes (stop only once it has
/// logged what you wait for: a `stop` that comes first ends the log without it):
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let (sink, mut log) = tokio::io::duplex(4096);
/// let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
/// let logger = tokio::spawn(weft_server::loggers::select_logger(listener, sink, async {
///     let _ = stop_rx.await;
/// }));
///
/// let mut client = tokio::net::TcpStream::connect(addr).await?;
/// let me = client.local_addr()?;
/// client.write_all(b"hello\n").await?;
/// drop(client);
/// let want = format!("Got connection from {me}\nhello\n{me} disconnected\n");
/// let mut got = vec![0; want.len()];
/// log.read_exact(&mut got).await?;
/// assert_eq!(String::from_utf8_lossy(&got), want);
/// stop_tx.send(()).unwrap();
/// logger.await.unwrap()?;
/// # Ok(()) }
/// ```
pub async fn select_logger<W, F>(
    listener: impl Into<Listener>,
    mut sink: W,
    stop: F,
) -> io::Result<W>
where
    W: AsyncWrite + Unpin,
    F: Future<Output = ()>,
{
    let listener = listener.into();
    let mut conns = SelectAll::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let incoming = accepted?;
                let addr = incoming.peer().clone();
                sink.write_all(format!("Got connection from {addr}\n").as_bytes()).await?;
                conns.push(Box::pin(connection(incoming, addr)));
            }
            Some((addr, event)) = conns.next(), if !conns.is_empty() => match event {
                Event::Data(data) => {
                    sink.write_all(&data).await?;
                }
                Event::Disconnected => {
                    sink.write_all(format!("{addr} disconnected\n").as_bytes()).await?;
                }
            },
        }
        sink.flush().await?;
    }
    sink.flush().await?;
    Ok(sink)
}
