//! The per-connection driver: one task per connection reads from the socket straight into a
//! protocol and flushes what it wrote, with no channel, lock or allocation per read or write.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::{TcpStream, UnixStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::protocol::Conn;
use crate::transport::{pool, Closing};
use crate::{DisconnectReason, Protocol};

/// The socket operations the driver needs; implemented for TCP and Unix streams.
pub(crate) trait RawStream: Send + Sync + 'static {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    fn shutdown_write(&self) -> io::Result<()>;
    /// Makes the coming close send a reset (SO_LINGER 0).
    fn set_reset_on_close(&self);
}

macro_rules! raw_stream {
    ($t:ty) => {
        impl RawStream for $t {
            fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$t>::poll_read_ready(self, cx)
            }
            fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$t>::poll_write_ready(self, cx)
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                <$t>::try_read(self, buf)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$t>::try_write(self, buf)
            }
            fn shutdown_write(&self) -> io::Result<()> {
                socket2::SockRef::from(self).shutdown(std::net::Shutdown::Write)
            }
            fn set_reset_on_close(&self) {
                let _ = socket2::SockRef::from(self).set_linger(Some(Duration::ZERO));
            }
        }
    };
}
raw_stream!(TcpStream);
raw_stream!(UnixStream);

/// Signals from the reactor: `shutdown` asks for a graceful close, `force` for an abort.
#[derive(Clone, Debug)]
pub(crate) struct Signals {
    pub(crate) shutdown: CancellationToken,
    pub(crate) force: CancellationToken,
}

enum Event {
    Command,
    Readable,
    Writable,
    Timer,
    Shutdown,
    Force,
}

/// Drives one connection to its end; returns the reason given to `connection_lost`.
pub(crate) async fn drive<S: RawStream, P: Protocol>(
    stream: S,
    mut conn: Conn<P>,
    signals: Signals,
) -> DisconnectReason {
    tracing::debug!("connection made");
    conn.made();
    conn.run_commands();
    let reason = run(&stream, &mut conn, &signals).await;
    if matches!(
        reason,
        DisconnectReason::Aborted | DisconnectReason::Panicked(_)
    ) {
        stream.set_reset_on_close();
    }
    tracing::debug!(%reason, "connection lost");
    conn.lost(reason.clone());
    drop(stream);
    reason
}

async fn run<S: RawStream, P: Protocol>(
    stream: &S,
    conn: &mut Conn<P>,
    signals: &Signals,
) -> DisconnectReason {
    let mut shutdown = std::pin::pin!(signals.shutdown.cancelled());
    let mut force = std::pin::pin!(signals.force.cancelled());
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    let mut shutting_down = false;
    let mut eof_seen = false;
    let mut eof_sent = false;

    loop {
        // Settle what the protocol asked for.
        if let Some(reason) = conn.requested_reason() {
            if matches!(conn.transport.closing, Some(Closing::Abort)) {
                return reason;
            }
        }
        if let Err(e) = flush(stream, conn) {
            return e;
        }
        let drained = conn.transport.wbuf.is_empty();
        if drained
            && (conn.transport.eof_requested || conn.transport.closing.is_some())
            && !eof_sent
        {
            eof_sent = true;
            if let Err(e) = stream.shutdown_write() {
                if conn.transport.closing.is_none() {
                    return DisconnectReason::from_io(e);
                }
            }
        }
        if drained && conn.transport.closing.is_some() {
            // Discard what the peer already sent, so that closing does not turn into a reset
            // that could destroy our last replies in the peer's receive queue.
            if !eof_seen {
                discard_pending_input(stream);
            }
            return conn
                .requested_reason()
                .unwrap_or(DisconnectReason::LocalClose);
        }
        match (conn.transport.next_deadline(), &mut timer) {
            (Some(at), Some(t)) if t.deadline() != at => t.as_mut().reset(at),
            (Some(at), None) => timer = Some(Box::pin(tokio::time::sleep_until(at))),
            _ => {}
        }

        let closing = conn.transport.closing.is_some();
        let want_read = !eof_seen && (closing || !conn.transport.is_reading_paused());
        let want_write = !conn.transport.wbuf.is_empty();
        let has_timers = !conn.transport.timers.is_empty();

        let event = poll_fn(|cx| {
            if let Some(rx) = conn.transport.cmd_rx.as_mut() {
                if !rx.is_empty() {
                    return Poll::Ready(Event::Command);
                }
                // Registers the waker for new commands.
                if let Poll::Ready(Some(cmd)) = rx.poll_recv(cx) {
                    conn.transport.apply(cmd);
                    return Poll::Ready(Event::Command);
                }
            }
            if force.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Force);
            }
            if !shutting_down && shutdown.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Shutdown);
            }
            if want_write && stream.poll_write_ready(cx).is_ready() {
                return Poll::Ready(Event::Writable);
            }
            if want_read && stream.poll_read_ready(cx).is_ready() {
                return Poll::Ready(Event::Readable);
            }
            if has_timers {
                if let Some(t) = timer.as_mut() {
                    if t.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::Timer);
                    }
                }
            }
            Poll::Pending
        })
        .await;

        match event {
            Event::Command => conn.run_commands(),
            Event::Writable => {} // flushed at the top of the loop
            Event::Timer => conn.fire_due_timers(Instant::now()),
            Event::Shutdown => {
                shutting_down = true;
                conn.transport.close_gracefully(DisconnectReason::Shutdown);
            }
            Event::Force => {
                conn.transport.abort_connection();
                stream.set_reset_on_close();
                return DisconnectReason::Shutdown;
            }
            Event::Readable => {
                let res = pool::with_read_buffer(|buf| match stream.try_read(buf) {
                    Ok(0) => Ok(false),
                    Ok(n) => {
                        // While closing, input is read and discarded.
                        if conn.transport.closing.is_none() {
                            conn.data(&buf[..n]);
                        }
                        Ok(true)
                    }
                    Err(e) => Err(e),
                });
                match res {
                    Ok(true) => {}
                    Ok(false) => {
                        eof_seen = true;
                        if conn.transport.closing.is_none() {
                            tracing::trace!("peer sent EOF");
                            conn.eof();
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        if let Some(Closing::Graceful(r)) = &conn.transport.closing {
                            if conn.transport.wbuf.is_empty() {
                                return r.clone();
                            }
                        }
                        return DisconnectReason::from_io(e);
                    }
                }
            }
        }
    }
}

/// Reads and drops whatever input is already queued (bounded: at most 1 MiB).
fn discard_pending_input<S: RawStream>(stream: &S) {
    pool::with_read_buffer(|buf| {
        for _ in 0..16 {
            match stream.try_read(buf) {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
    });
}

/// Writes as much of the outgoing buffer as the socket takes now.
fn flush<S: RawStream, P: Protocol>(
    stream: &S,
    conn: &mut Conn<P>,
) -> Result<(), DisconnectReason> {
    while !conn.transport.wbuf.is_empty() {
        match stream.try_write(&conn.transport.wbuf) {
            Ok(0) => {
                return Err(DisconnectReason::Io(std::sync::Arc::new(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "socket accepted no bytes",
                ))))
            }
            Ok(n) => conn.transport.consume(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DisconnectReason::from_io(e)),
        }
    }
    conn.check_water();
    Ok(())
}
