//! The per-connection driver: one task per connection reads from the socket straight into a
//! protocol and flushes what it wrote, with no channel, lock or allocation per read or write.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::net::{TcpStream, UnixStream};
use tokio::time::{Instant, Sleep};

use crate::protocol::Conn;
use crate::transport::{Closing, pool};
use crate::{DisconnectReason, Protocol};

/// The socket operations the driver needs; implemented for TCP and Unix streams.
pub(crate) trait RawStream: Send + 'static {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Reads what is there (`WouldBlock` if nothing). After a short read, which (with epoll's
    /// edge-triggered events) shows the receive queue was drained, it forgets the read
    /// readiness, saving the `EAGAIN` read that would otherwise follow every wakeup — as
    /// tokio's own `poll_read` does, and race-free in the same way: only the readiness event
    /// seen *before* the read is cleared, so data arriving during the read keeps the socket
    /// readable (clearing afterwards would lose that wakeup).
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize>;
    fn shutdown_write(&self) -> io::Result<()>;
    /// Makes the coming close send a reset (SO_LINGER 0).
    fn set_reset_on_close(&self);
    /// True while the stream itself holds output the socket has not taken yet (TLS records,
    /// a `close_notify`, an unfinished handshake). Plain sockets hold none: this is a
    /// constant `false` for them, which the compiler removes from their path.
    #[inline(always)]
    fn pending(&self) -> bool {
        false
    }
    /// Makes what a TLS stream negotiated visible to [`Transport::tls`](crate::Transport::tls)
    /// while the driver runs connection `id`'s callbacks (until the guard drops). Plain
    /// sockets: nothing.
    #[inline(always)]
    fn enter(&self, id: u64) -> Option<crate::tls_io::Entered> {
        let _ = id;
        None
    }
    /// Sends what [`pending`](Self::pending) holds, as far as the socket takes it.
    #[inline(always)]
    fn flush_pending(&self) -> io::Result<()> {
        Ok(())
    }
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
            fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
                use std::io::Read;
                let mut got = None;
                // `try_io` captures the readiness event before running the closure and clears
                // exactly that event when the closure says `WouldBlock`: a short read says so
                // (its count kept aside).
                let r = self.try_io(tokio::io::Interest::READABLE, || {
                    let n = (&*socket2::SockRef::from(self)).read(buf)?;
                    got = Some(n);
                    if n > 0 && n < buf.len() {
                        Err(io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(n)
                    }
                });
                match got {
                    Some(n) => Ok(n),
                    None => r,
                }
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$t>::try_write(self, buf)
            }
            fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
                <$t>::try_write_vectored(self, bufs)
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

/// Shutdown levels broadcast by a [`Hub`] (it starts at 0: running).
const GRACEFUL: u8 = 1;
const FORCE: u8 = 2;
const NO_SLOT: u32 = u32::MAX;

/// Tells every connection of a reactor to shut down, gracefully then by force.
///
/// A connection registers its waker once; afterwards it only reads an atomic on each turn, so
/// the hot path takes no lock (a `CancellationToken` future would lock a mutex on every poll
/// and cost 72 bytes per connection).
#[derive(Debug, Default)]
pub(crate) struct Hub {
    state: AtomicU8,
    wakers: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    entries: Vec<Option<Waker>>,
    free: Vec<u32>,
}

impl Hub {
    fn register(&self, waker: &Waker) -> u32 {
        let mut s = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        match s.free.pop() {
            Some(i) => {
                s.entries[i as usize] = Some(waker.clone());
                i
            }
            None => {
                s.entries.push(Some(waker.clone()));
                (s.entries.len() - 1) as u32
            }
        }
    }

    fn deregister(&self, slot: u32) {
        let mut s = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = s.entries.get_mut(slot as usize) {
            *e = None;
            s.free.push(slot);
        }
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::SeqCst)
    }

    /// Raises the level and wakes every registered connection.
    pub(crate) fn trigger(&self, graceful: bool) {
        self.state
            .fetch_max(if graceful { GRACEFUL } else { FORCE }, Ordering::SeqCst);
        let wakers: Vec<Waker> = {
            let s = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
            s.entries.iter().flatten().cloned().collect()
        };
        for w in wakers {
            w.wake();
        }
    }
}

enum Event {
    Command,
    Readable,
    Writable,
    Timer,
    Shutdown,
    Force,
}

/// Drives one connection to its end; resolves to the reason given to `connection_lost`.
///
/// A hand-written future rather than an `async fn`: its state is just these fields, which
/// keeps an idle connection's task small.
pub(crate) struct Driver<S: RawStream, P: Protocol> {
    stream: S,
    conn: Conn<P>,
    hub: Arc<Hub>,
    timer: Option<Pin<Box<Sleep>>>,
    slot: u32,
    started: bool,
    shutting_down: bool,
    eof_seen: bool,
    eof_sent: bool,
}

// No field is ever pinned structurally (the timer is boxed), so the driver can move freely
// whatever the protocol type is.
impl<S: RawStream, P: Protocol> Unpin for Driver<S, P> {}

impl<S: RawStream, P: Protocol> Driver<S, P> {
    pub(crate) fn new(stream: S, conn: Conn<P>, hub: Arc<Hub>) -> Self {
        Self {
            stream,
            conn,
            hub,
            timer: None,
            slot: NO_SLOT,
            started: false,
            shutting_down: false,
            eof_seen: false,
            eof_sent: false,
        }
    }

    /// Applies what the protocol asked for: flush, half-close, close. `Some` once finished.
    fn settle(&mut self) -> Option<DisconnectReason> {
        let conn = &mut self.conn;
        if matches!(conn.transport.closing, Some(Closing::Abort)) {
            return conn.requested_reason();
        }
        if let Err(e) = flush(&self.stream, conn) {
            return Some(e);
        }
        // What the stream itself holds (TLS records) goes out after the buffer, before a close.
        if self.stream.pending() {
            if let Err(e) = self.stream.flush_pending() {
                return Some(DisconnectReason::from_io(e));
            }
        }
        let mut drained = conn.transport.wbuf.is_empty() && !self.stream.pending();
        if drained
            && (conn.transport.eof_requested || conn.transport.closing.is_some())
            && !self.eof_sent
        {
            self.eof_sent = true;
            if let Err(e) = self.stream.shutdown_write() {
                if conn.transport.closing.is_none() {
                    return Some(DisconnectReason::from_io(e));
                }
            }
            drained = !self.stream.pending();
        }
        if drained && conn.transport.closing.is_some() {
            // Discard what the peer already sent, so that closing does not turn into a reset
            // that could destroy our last replies in the peer's receive queue.
            if !self.eof_seen {
                discard_pending_input(&self.stream);
            }
            return Some(
                conn.requested_reason()
                    .unwrap_or(DisconnectReason::LocalClose),
            );
        }
        match (conn.transport.next_deadline(), &mut self.timer) {
            (Some(at), Some(t)) if t.deadline() != at => t.as_mut().reset(at),
            (Some(at), None) => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            _ => {}
        }
        None
    }

    /// The next thing to do, in priority order.
    fn next_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        match self.hub.state() {
            FORCE => return Poll::Ready(Event::Force),
            GRACEFUL if !self.shutting_down => return Poll::Ready(Event::Shutdown),
            _ => {}
        }
        if let Some(rx) = self.conn.transport.cmd_rx.as_mut() {
            if let Poll::Ready(Some(cmd)) = rx.poll_recv(cx) {
                self.conn.apply_command(cmd);
                return Poll::Ready(Event::Command);
            }
        }
        let t = &mut self.conn.transport;
        if (!t.wbuf.is_empty() || self.stream.pending())
            && self.stream.poll_write_ready(cx).is_ready()
        {
            return Poll::Ready(Event::Writable);
        }
        let want_read = !self.eof_seen && (t.closing.is_some() || !t.is_reading_paused());
        if want_read && self.stream.poll_read_ready(cx).is_ready() {
            return Poll::Ready(Event::Readable);
        }
        if !t.timers.is_empty() {
            if let Some(timer) = self.timer.as_mut() {
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Timer);
                }
            }
        }
        Poll::Pending
    }

    /// Handles one event; `Some` once finished.
    fn handle(&mut self, event: Event) -> Option<DisconnectReason> {
        let conn = &mut self.conn;
        match event {
            Event::Command => conn.run_commands(),
            Event::Writable => {} // flushed by `settle`
            Event::Timer => conn.fire_due_timers(Instant::now()),
            Event::Shutdown => {
                self.shutting_down = true;
                conn.transport.close_gracefully(DisconnectReason::Shutdown);
            }
            Event::Force => {
                conn.transport.abort_connection();
                return Some(DisconnectReason::Shutdown);
            }
            Event::Readable => {
                let stream = &self.stream;
                let res = pool::with_read_buffer(|buf| match stream.read_some(buf) {
                    Ok(0) => Ok(false),
                    Ok(n) => {
                        // While closing, input is read and discarded.
                        if conn.transport.closing.is_none() {
                            let data = &buf[..n];
                            conn.transport.in_read = true;
                            pool::with_read_window(data, || conn.data(data));
                            conn.transport.in_read = false;
                            send_direct(stream, conn, data)?;
                        }
                        Ok(true)
                    }
                    Err(e) => Err(e),
                });
                match res {
                    Ok(true) => {}
                    Ok(false) => {
                        self.eof_seen = true;
                        if conn.transport.closing.is_none() {
                            tracing::trace!("peer sent EOF");
                            conn.eof();
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => {
                        if let Some(Closing::Graceful(r)) = &conn.transport.closing {
                            if conn.transport.wbuf.is_empty() {
                                return Some(r.clone());
                            }
                        }
                        return Some(DisconnectReason::from_io(e));
                    }
                }
            }
        }
        None
    }

    fn finish(&mut self, reason: DisconnectReason) -> DisconnectReason {
        if matches!(self.conn.transport.closing, Some(Closing::Abort)) {
            self.stream.set_reset_on_close();
        }
        tracing::debug!(%reason, "connection lost");
        self.conn.lost(reason.clone());
        if self.slot != NO_SLOT {
            self.hub.deregister(self.slot);
            self.slot = NO_SLOT;
        }
        reason
    }
}

impl<S: RawStream, P: Protocol> Future for Driver<S, P> {
    type Output = DisconnectReason;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<DisconnectReason> {
        let this = &mut *self;
        if this.conn.is_lost() {
            return Poll::Ready(DisconnectReason::Shutdown);
        }
        let _tls = this.stream.enter(this.conn.transport.connection_id());
        if !this.started {
            this.started = true;
            tracing::debug!("connection made");
            this.conn.made();
            this.conn.run_commands();
        }
        if this.slot == NO_SLOT {
            // Register before reading the state: a trigger in between still wakes us.
            this.slot = this.hub.register(cx.waker());
        }
        loop {
            if let Some(reason) = this.settle() {
                return Poll::Ready(this.finish(reason));
            }
            let event = match this.next_event(cx) {
                Poll::Ready(e) => e,
                Poll::Pending => return Poll::Pending,
            };
            if let Some(reason) = this.handle(event) {
                return Poll::Ready(this.finish(reason));
            }
        }
    }
}

impl<S: RawStream, P: Protocol> Drop for Driver<S, P> {
    /// A driver dropped before it finished (its runtime shut down) still delivers
    /// `connection_lost`, once.
    fn drop(&mut self) {
        if !self.conn.is_lost() {
            self.conn.lost(DisconnectReason::Shutdown);
        }
        if self.slot != NO_SLOT {
            self.hub.deregister(self.slot);
        }
    }
}

/// Reads and drops whatever input is already queued (bounded: at most 1 MiB).
fn discard_pending_input<S: RawStream>(stream: &S) {
    pool::with_read_buffer(|buf| {
        for _ in 0..16 {
            match stream.read_some(buf) {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
    });
}

/// Sends a write that `data_received` left in the read buffer (`data`), with whatever it
/// buffered after it in one vectored write; keeps what the socket does not take.
fn send_direct<S: RawStream, P: Protocol>(
    stream: &S,
    conn: &mut Conn<P>,
    data: &[u8],
) -> io::Result<()> {
    let (off, len) = conn.transport.direct;
    if len == 0 {
        return Ok(());
    }
    let bytes = &data[off as usize..(off + len) as usize];
    let t = &mut conn.transport;
    let sent = if t.wbuf.is_empty() {
        stream.try_write(bytes)
    } else {
        stream.try_write_vectored(&[io::IoSlice::new(bytes), io::IoSlice::new(&t.wbuf)])
    };
    let sent = match sent {
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            0
        }
        Err(e) => {
            t.settle_direct(bytes, 0);
            return Err(e);
        }
    };
    t.settle_direct(bytes, sent);
    Ok(())
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
                ))));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Address, Transport};

    struct P;
    impl Protocol for P {
        fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
    }

    /// Idle memory per connection is mostly this future (inside its task): keep it small.
    /// It was 872 bytes as an `async fn` with two cancellation futures; 296 as a struct.
    #[tokio::test]
    async fn an_idle_connection_task_stays_small() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let conn = Conn::new(
            P,
            Transport::new(0, Address::Unix(None), Address::Unix(None)),
        );
        let driver = Driver::new(s, conn, Arc::new(Hub::default()));
        let size = std::mem::size_of_val(&driver);
        assert!(size <= 320, "the driver future grew to {size} bytes");
    }
}
