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
use crate::tls_io::TlsSocket;
use crate::transport::{self, pool};
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
    /// True while a TLS handshake runs (or has just failed): the driver reads even when the
    /// protocol paused reading, as the handshake cannot finish otherwise. Plain sockets:
    /// constant `false`.
    #[inline(always)]
    fn handshaking(&self) -> bool {
        false
    }
}

/// How a connection's task is spawned for a stream: plain TCP and Unix sockets get an
/// [`Upgradable`] driver (so `Transport::start_tls` can switch them to TLS), a stream that
/// already carries TLS gets its [`Driver`] as is.
pub(crate) trait Spawn: RawStream + Sized {
    type Task<P: Protocol>: Future<Output = DisconnectReason> + Unpin + Send + 'static;
    fn task<P: Protocol>(driver: Driver<Self, P>) -> Self::Task<P>;
}

impl Spawn for TcpStream {
    type Task<P: Protocol> = Upgradable<Self, P>;
    fn task<P: Protocol>(driver: Driver<Self, P>) -> Self::Task<P> {
        Upgradable::Plain(driver)
    }
}

impl Spawn for UnixStream {
    type Task<P: Protocol> = Upgradable<Self, P>;
    fn task<P: Protocol>(driver: Driver<Self, P>) -> Self::Task<P> {
        Upgradable::Plain(driver)
    }
}

impl<T: crate::tls_io::Socket> Spawn for TlsSocket<T> {
    type Task<P: Protocol> = Driver<Self, P>;
    fn task<P: Protocol>(driver: Driver<Self, P>) -> Self::Task<P> {
        driver
    }
}

/// A connection's task inside its tracing span, entered around every poll and around the
/// drop (as `tracing::Instrumented` does), but boxed, and only when the span is enabled: a
/// disabled span (the usual case: `info` spans under a `warn` filter) still took 40 bytes in
/// every connection's task inside `Instrumented`; here it takes a pointer.
pub(crate) struct Spanned<F> {
    /// `None` once dropped (so that the drop runs inside the span).
    task: Option<F>,
    span: Option<Box<tracing::Span>>,
}

impl<F> Spanned<F> {
    pub(crate) fn new(task: F, span: tracing::Span) -> Self {
        Self {
            task: Some(task),
            span: (!span.is_disabled()).then(|| Box::new(span)),
        }
    }
}

impl<F: Future + Unpin> Future for Spanned<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _entered = this.span.as_deref().map(tracing::Span::enter);
        match this.task.as_mut() {
            Some(task) => Pin::new(task).poll(cx),
            None => Poll::Pending,
        }
    }
}

impl<F> Drop for Spanned<F> {
    fn drop(&mut self) {
        let _entered = self.span.as_deref().map(tracing::Span::enter);
        self.task = None;
    }
}

/// A plain connection's task: its driver, which becomes a TLS driver on the same socket
/// when the protocol calls [`Transport::start_tls`](crate::Transport::start_tls).
///
/// The plain driver notices the request with the test it already makes for an abort (one
/// comparison of the close state per turn, as before), stops at once (nothing more is read
/// in clear) and returns; this wrapper then moves the socket, the connection and the
/// driver's state into a [`TlsSocket`] driver, boxed so that a plain connection's task does
/// not grow by a TLS session's size. What a plain connection pays is this enum's one
/// comparison per poll of its task (not per read or per line).
// The plain variant is the large one on purpose: it is what nearly every connection runs,
// unboxed; the TLS variant is boxed so that it adds nothing to it.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Upgradable<S: crate::tls_io::Socket + RawStream, P: Protocol> {
    Plain(Driver<S, P>),
    Tls(Box<Driver<TlsSocket<S>, P>>),
    Done,
}

impl<S: crate::tls_io::Socket + RawStream, P: Protocol> Unpin for Upgradable<S, P> {}

impl<S: crate::tls_io::Socket + RawStream, P: Protocol> Future for Upgradable<S, P> {
    type Output = DisconnectReason;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<DisconnectReason> {
        let this = &mut *self;
        if let Upgradable::Plain(d) = this {
            let reason = match Pin::new(d).poll(cx) {
                Poll::Ready(r) => r,
                Poll::Pending => return Poll::Pending,
            };
            if !matches!(this, Upgradable::Plain(d) if d.conn.transport.is_upgrading()) {
                return Poll::Ready(reason);
            }
            let Upgradable::Plain(d) = std::mem::replace(this, Upgradable::Done) else {
                unreachable!("checked above")
            };
            match d.upgrade() {
                Ok(tls) => *this = Upgradable::Tls(Box::new(tls)),
                Err(reason) => return Poll::Ready(reason),
            }
        }
        match this {
            Upgradable::Tls(d) => Pin::new(&mut **d).poll(cx),
            _ => Poll::Ready(DisconnectReason::Shutdown),
        }
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
///
/// # Yielding
///
/// [`poll`](Future::poll) loops (settle, next event, handle it) until nothing is ready, with
/// no iteration bound of its own, yet a peer that floods cannot hold a worker thread: every
/// source the loop waits on — `poll_read_ready`, `poll_write_ready`, the handle channel's
/// `poll_recv`, the timer's `Sleep` — spends tokio's cooperative budget (128 units per task
/// poll), and once it is spent they return `Pending` after scheduling the task again. So the
/// driver gives the thread back after at most about 128 events, as hyper's HTTP/1 dispatcher
/// does with its own bound (16 turns of its `poll_loop`, then a yield). A new source added to
/// `next_event` must spend the budget too (tokio's own futures do), or the loop needs a bound.
pub(crate) struct Driver<S: RawStream, P: Protocol> {
    stream: S,
    /// `connection_lost` is delivered if the driver is dropped before it finished.
    conn: Live<P>,
    reg: Registration,
    /// The protocol's earliest timer, created when it arms the first one and reset (not
    /// reallocated) when the earliest deadline changes.
    timer: Option<Pin<Box<Timer>>>,
}

pin_project_lite::pin_project! {
    /// The driver's timer and whether it holds this task's waker (polled `Pending` with
    /// budget left since it was made or reset). A driver is always polled by the one task it
    /// was spawned as, so the waker never changes. In the timer's box: the driver future
    /// stays within its size (`an_idle_connection_task_stays_small`).
    struct Timer {
        #[pin]
        sleep: Sleep,
        registered: bool,
    }
}

// No field is ever pinned structurally (the timer is boxed), so the driver can move freely
// whatever the protocol type is.
impl<S: RawStream, P: Protocol> Unpin for Driver<S, P> {}

impl<S: RawStream, P: Protocol> Driver<S, P> {
    pub(crate) fn new(stream: S, conn: Conn<P>, hub: Arc<Hub>) -> Self {
        Self {
            stream,
            conn: Live(conn),
            reg: Registration {
                hub,
                slot: NO_SLOT,
                started: false,
                shutting_down: false,
                eof_seen: false,
                eof_sent: false,
            },
            timer: None,
        }
    }

    /// Applies what the protocol asked for: flush, half-close, close. `Some` once finished.
    fn settle(&mut self) -> Option<DisconnectReason> {
        let conn = &mut self.conn;
        if conn.transport.is_aborted_or_upgrading() {
            if conn.transport.is_upgrading() {
                // `start_tls`: this driver stops here, before reading anything more in clear;
                // `Upgradable` carries on over TLS (the reason is not used).
                return Some(DisconnectReason::LocalClose);
            }
            return conn.requested_reason();
        }
        if let Err(e) = flush(&self.stream, conn) {
            return Some(e);
        }
        // What the stream itself holds (TLS records) goes out after the buffer, before a close.
        if self.stream.pending() {
            if let Err(e) = self.stream.flush_pending() {
                // Our write side was shut down with nothing else pending, so only the
                // `close_notify` was left: a peer that is gone already (EPIPE at once on a
                // Unix socket, after it closed first) ends the close that was asked for.
                let t = &conn.transport;
                if self.reg.eof_sent && t.is_closing() && !t.is_aborted() {
                    return conn.requested_reason();
                }
                return Some(DisconnectReason::from_io(e));
            }
        }
        let t = &conn.transport;
        let mut drained = t.pending_output().is_empty() && !self.stream.pending();
        if drained && t.wants_write_shutdown() && !self.reg.eof_sent {
            self.reg.eof_sent = true;
            if let Err(e) = self.stream.shutdown_write() {
                if !t.is_closing() {
                    return Some(DisconnectReason::from_io(e));
                }
            }
            drained = !self.stream.pending();
        }
        if drained && t.is_closing() {
            // Discard what the peer already sent, so that closing does not turn into a reset
            // that could destroy our last replies in the peer's receive queue.
            if !self.reg.eof_seen {
                discard_pending_input(&self.stream);
            }
            return Some(
                conn.requested_reason()
                    .unwrap_or(DisconnectReason::LocalClose),
            );
        }
        match (t.next_deadline(), &mut self.timer) {
            (Some(at), Some(timer)) if timer.sleep.deadline() != at => {
                let timer = timer.as_mut().project();
                timer.sleep.reset(at);
                *timer.registered = false;
            }
            (Some(at), None) => {
                self.timer = Some(Box::pin(Timer {
                    sleep: tokio::time::sleep_until(at),
                    registered: false,
                }));
            }
            _ => {}
        }
        None
    }

    /// The next thing to do, in priority order.
    fn next_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        match self.reg.hub.state() {
            FORCE => return Poll::Ready(Event::Force),
            GRACEFUL if !self.reg.shutting_down => return Poll::Ready(Event::Shutdown),
            _ => {}
        }
        if let Poll::Ready(Some(cmd)) = self.conn.transport.poll_command(cx) {
            self.conn.apply_command(cmd);
            return Poll::Ready(Event::Command);
        }
        let t = &self.conn.transport;
        if (!t.pending_output().is_empty() || self.stream.pending())
            && self.stream.poll_write_ready(cx).is_ready()
        {
            return Poll::Ready(Event::Writable);
        }
        let want_read = !self.reg.eof_seen
            && (t.is_closing() || !t.is_reading_paused() || self.stream.handshaking());
        if want_read && self.stream.poll_read_ready(cx).is_ready() {
            return Poll::Ready(Event::Readable);
        }
        if t.pending_timers() != 0 {
            if let Some(timer) = self.timer.as_mut() {
                // Polling the Sleep again would only re-register the same waker (about 100
                // instructions on every turn of a connection with a timer, e.g. an idle
                // timeout): once it holds this task's waker, it is polled when it fired.
                let timer = timer.as_mut().project();
                if !*timer.registered || timer.sleep.is_elapsed() {
                    // A poll that finds the task's budget spent registers no waker.
                    let budget = tokio::task::coop::has_budget_remaining();
                    if timer.sleep.poll(cx).is_ready() {
                        return Poll::Ready(Event::Timer);
                    }
                    *timer.registered = budget;
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
                self.reg.shutting_down = true;
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
                        if !conn.transport.is_closing() {
                            transport::deliver(&mut conn.0, &buf[..n], |bufs| match bufs {
                                [one] => stream.try_write(one),
                                _ => stream.try_write_vectored(bufs),
                            })?;
                        }
                        Ok(true)
                    }
                    Err(e) => Err(e),
                });
                match res {
                    Ok(true) => {}
                    Ok(false) => {
                        self.reg.eof_seen = true;
                        if !conn.transport.is_closing() {
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
                        // A read error after a graceful close whose output is all out: the
                        // close the protocol asked for is what happened.
                        let t = &conn.transport;
                        if t.is_closing() && !t.is_aborted() && t.pending_output().is_empty() {
                            return t.requested_close();
                        }
                        return Some(DisconnectReason::from_io(e));
                    }
                }
            }
        }
        None
    }

    fn finish(&mut self, reason: DisconnectReason) -> DisconnectReason {
        if self.conn.transport.is_upgrading() {
            return reason; // not finished: `Upgradable` goes on with TLS
        }
        if self.conn.transport.is_aborted() {
            self.stream.set_reset_on_close();
        }
        tracing::debug!(%reason, "connection lost");
        self.conn.lost(reason.clone());
        self.reg.release();
        reason
    }
}

impl<S: crate::tls_io::Socket + RawStream, P: Protocol> Driver<S, P> {
    /// The same connection over TLS, after `start_tls`: the bytes written before the call go
    /// out first in clear, the peer's bytes after the upgrade point are fed to the new TLS
    /// session before anything read later, and the handshake runs within its timeout.
    /// `Err`: finished (`connection_lost` delivered) because rustls refused the configuration.
    fn upgrade(mut self) -> Result<Driver<TlsSocket<S>, P>, DisconnectReason> {
        let up = self
            .conn
            .transport
            .take_upgrade()
            .expect("called for a pending start_tls");
        let (session, name) = match up.tls.connection() {
            Ok(c) => c,
            Err(e) => {
                // A configuration rustls refuses: the connection cannot go on.
                self.conn.transport.abort_connection();
                return Err(self.finish(DisconnectReason::Tls(Arc::new(e))));
            }
        };
        let clear = self.conn.transport.split_clear(up.clear);
        tracing::debug!(clear = clear.len(), early = up.early.len(), "starting TLS");
        let socket = TlsSocket::upgrade(self.stream, session, name, &up, clear);
        Ok(Driver {
            stream: socket,
            conn: self.conn,
            reg: self.reg,
            timer: self.timer,
        })
    }
}

/// A connection driven by a driver: `connection_lost` once, even if the driver is dropped
/// before it finished (its runtime went away). A field of its own (not `Drop` on the
/// driver), so that `Driver::upgrade` can move the connection into the TLS driver.
struct Live<P: Protocol>(Conn<P>);

impl<P: Protocol> std::ops::Deref for Live<P> {
    type Target = Conn<P>;
    fn deref(&self) -> &Conn<P> {
        &self.0
    }
}

impl<P: Protocol> std::ops::DerefMut for Live<P> {
    fn deref_mut(&mut self) -> &mut Conn<P> {
        &mut self.0
    }
}

impl<P: Protocol> Drop for Live<P> {
    fn drop(&mut self) {
        if !self.0.is_lost() {
            self.0.lost(DisconnectReason::Shutdown);
        }
    }
}

/// This connection's waker slot in the [`Hub`] (`NO_SLOT` until the first poll registers
/// it; freed when the connection finishes or is dropped). Registered once, so shutdown can
/// wake an idle connection without a per-poll lock; an upgrade to TLS keeps it (same task).
///
/// The driver's flags live here too, packed beside `slot` (the driver future's size is an
/// idle connection's memory).
struct Registration {
    hub: Arc<Hub>,
    slot: u32,
    /// `connection_made` has run (on the first poll, inside the connection's task and tracing
    /// span, not in the accept loop).
    started: bool,
    /// The hub's graceful level has been seen and turned into a close with
    /// `DisconnectReason::Shutdown`: seen once, so the connection drains rather than
    /// re-handling the level on every turn.
    shutting_down: bool,
    /// The peer sent EOF (a read returned 0): never read again — a readable socket at EOF
    /// stays readable, and polling it would spin.
    eof_seen: bool,
    /// We shut down our write side (sent FIN) once the buffer drained after `write_eof` or a
    /// close: done once.
    eof_sent: bool,
}

impl Registration {
    fn release(&mut self) {
        if self.slot != NO_SLOT {
            self.hub.deregister(self.slot);
            self.slot = NO_SLOT;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.release();
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
        if !this.reg.started {
            this.reg.started = true;
            tracing::debug!("connection made");
            this.conn.made();
            this.conn.run_commands();
        }
        if this.reg.slot == NO_SLOT {
            // Register before reading the state: a trigger in between still wakes us.
            this.reg.slot = this.reg.hub.register(cx.waker());
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

/// Writes as much of the outgoing buffer as the socket takes now.
///
/// Handles stop counting the buffer before it is written and get the remainder after
/// (`publish_sending`, then `publish`): counted down only after the write, bytes the peer
/// already read stayed counted for as long as this thread was preempted in between, and
/// another worker saw a reader that keeps up as over its high water mark.
fn flush<S: RawStream, P: Protocol>(
    stream: &S,
    conn: &mut Conn<P>,
) -> Result<(), DisconnectReason> {
    if !conn.transport.pending_output().is_empty() {
        conn.transport.publish_sending();
    }
    while !conn.transport.pending_output().is_empty() {
        match stream.try_write(conn.transport.pending_output()) {
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
    conn.transport.publish();
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

    /// A socket that takes what it is given (up to `take` bytes per call) and records what a
    /// handle reports buffered at the moment it takes them, i.e. once the peer could read them.
    struct Recording {
        handle: std::sync::Mutex<Option<crate::TransportHandle>>,
        take: usize,
        seen: std::sync::Mutex<Vec<usize>>,
    }

    impl RawStream for Recording {
        fn poll_read_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
        fn poll_write_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn read_some(&self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }
        fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
            let mut seen = self.seen.lock().unwrap();
            if !seen.is_empty() && self.take < usize::MAX {
                return Err(io::ErrorKind::WouldBlock.into()); // one partial write, then full
            }
            let h = self.handle.lock().unwrap();
            seen.push(h.as_ref().map_or(usize::MAX, |h| h.buffered()));
            Ok(buf.len().min(self.take))
        }
        fn try_write_vectored(&self, _: &[io::IoSlice<'_>]) -> io::Result<usize> {
            unreachable!("flush writes one slice")
        }
        fn shutdown_write(&self) -> io::Result<()> {
            Ok(())
        }
        fn set_reset_on_close(&self) {}
    }

    /// Bytes the socket took are no longer counted by handles by the time the peer can read
    /// them (the chat regression: a reader that had read everything was still counted with
    /// its last 40 KiB on another worker thread, and skipped as over its high water mark);
    /// what the socket refuses is counted again once the write returns.
    #[test]
    fn handles_stop_counting_bytes_before_the_socket_takes_them() {
        for (take, during, after) in [(usize::MAX, 0, 0), (10_000, 0, 30_000)] {
            let mut conn = Conn::new(
                P,
                Transport::new(0, Address::Unix(None), Address::Unix(None)),
            );
            let h = conn.transport.handle();
            h.write(vec![b'x'; 40_000]).unwrap();
            conn.run_commands();
            assert_eq!(h.buffered(), 40_000);
            let stream = Recording {
                handle: std::sync::Mutex::new(Some(h.clone())),
                take,
                seen: std::sync::Mutex::new(Vec::new()),
            };
            flush(&stream, &mut conn).unwrap();
            assert_eq!(*stream.seen.lock().unwrap(), [during], "take {take}");
            assert_eq!(h.buffered(), after, "take {take}");
            assert_eq!(conn.transport.write_buffer_size(), after);
        }
    }

    /// Idle memory per connection is mostly this future (inside its task): keep it small.
    /// It was 872 bytes as an `async fn` with two cancellation futures; 296 as a struct; 304
    /// with the flags packed beside the hub slot (312 before); 264 once the panic message
    /// moved into the transport's closing state and that state was boxed. Spawned, it is
    /// inside `Spanned` (8 bytes: the span boxed, only when enabled; `tracing::Instrumented`
    /// took 40) and the task tracker's future (8 bytes). A tokio task is its future plus 96
    /// bytes, allocated in 128-byte steps (tokio's `Cell` is 128-aligned on x86_64): with
    /// `weft serve line-echo`'s protocol (112 bytes with its policies off) the task is 512
    /// bytes, 24 bytes under the step to 640 (see `weft-cli`'s
    /// `policies_take_no_room_in_a_connection`).
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
        assert!(size <= 264, "the driver future grew to {size} bytes");
        // What a plain connection's task runs: the same size (the TLS driver is boxed, and
        // the enum's tag lives in a niche of the driver).
        let task = <TcpStream as Spawn>::task(driver);
        let task_size = std::mem::size_of_val(&task);
        assert!(
            task_size <= size,
            "start_tls grew the task to {task_size} bytes"
        );
        let spanned = Spanned::new(task, tracing::Span::none());
        let spanned_size = std::mem::size_of_val(&spanned);
        assert!(
            spanned_size <= size + 8,
            "the span takes {} bytes",
            spanned_size - size
        );
    }
}
