//! [`TransportHandle`]: writing to and closing a connection from other tasks and threads,
//! with handle writes bounded by the connection's water marks and a hard limit.
//!
//! Commands go through an unbounded channel to the connection's task (a command is applied
//! whenever the task runs, so the channel never holds them long), but the *bytes* written are
//! counted in [`Shared`]: `queued` (sent, not yet applied) plus `buffered` (the write buffer as
//! the task last published it, after every flush). A write that would take their sum past the
//! limit fails instead of queueing; writers that want to wait for room await
//! [`TransportHandle::writable`], woken when the task publishes a size under the low mark.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use super::{Command, DEFAULT_HIGH_WATER};

/// Default cap on the bytes buffered for a connection's handle writes: 1 MiB (16 high water
/// marks). See [`Transport::set_handle_limit`](crate::Transport::set_handle_limit).
pub const DEFAULT_HANDLE_LIMIT: usize = 16 * DEFAULT_HIGH_WATER;

/// What a [`TransportHandle::write`] past the connection's handle limit does besides failing
/// (see [`Transport::set_handle_limit`](crate::Transport::set_handle_limit)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverLimit {
    /// The write fails with [`WriteError::Full`]; the connection stays (the default).
    #[default]
    Fail,
    /// The write fails and the connection is aborted: its pending output is dropped and
    /// `connection_lost` gets [`DisconnectReason::Aborted`](crate::DisconnectReason::Aborted).
    Abort,
}

/// The connection behind a [`TransportHandle`] is closed.
///
/// ```
/// let e = weft_core::ConnectionClosed;
/// assert_eq!(e.to_string(), "connection is closed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection is closed")]
pub struct ConnectionClosed;

/// Why a [`TransportHandle::write`] was refused.
///
/// ```
/// use weft_core::{ConnectionClosed, WriteError};
/// let e = WriteError::from(ConnectionClosed);
/// assert_eq!(e, WriteError::Closed);
/// let full = WriteError::Full { buffered: 2_000_000, limit: 1_048_576 };
/// assert_eq!(full.to_string(), "connection write buffer full: 2000000 bytes buffered, limit 1048576");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The connection is gone.
    #[error("connection is closed")]
    Closed,
    /// The peer does not read fast enough: `buffered` bytes wait for it already and this
    /// write would take them past the connection's handle `limit`.
    #[error("connection write buffer full: {buffered} bytes buffered, limit {limit}")]
    Full {
        /// Bytes already buffered for the connection (queued through handles and in its
        /// write buffer).
        buffered: usize,
        /// The connection's handle limit.
        limit: usize,
    },
}

impl From<ConnectionClosed> for WriteError {
    fn from(_: ConnectionClosed) -> Self {
        WriteError::Closed
    }
}

/// What handles and the connection's task share.
#[derive(Debug)]
struct Shared {
    /// Two counters in one atomic, so that a reader sees both at one instant (read apart, a
    /// batch moved from one to the other meanwhile would be counted twice): the low 32 bits
    /// are the bytes written through handles and not yet applied to the write buffer, the
    /// high 32 bits the write buffer's size as the connection's task last published it.
    counts: AtomicU64,
    /// Writes queued through handles and not yet applied: each costs memory besides its
    /// bytes (a channel slot, a `Bytes`), charged as [`QUEUED_WRITE_COST`] against the limit.
    entries: AtomicUsize,
    high: AtomicUsize,
    low: AtomicUsize,
    limit: AtomicUsize,
    abort_over_limit: AtomicBool,
    /// A handle asked for an abort: taken ahead of the commands a spent budget holds back
    /// (an abort drops pending output anyway).
    abort: AtomicBool,
    /// The connection's task while a spent budget keeps it off the channel (so it is not
    /// woken by sends): an abort wakes it through this.
    parked: Mutex<Option<Waker>>,
    /// A writer waits in [`TransportHandle::writable`]: the task notifies `room` when the
    /// buffer drains under the low mark.
    waiting: AtomicBool,
    room: Notify,
}

/// What one queued handle write is charged against the limit besides its bytes: its channel
/// slot and `Bytes` header (about 48 bytes) and a small allocation. Without it, a million
/// 1-byte writes would fit under a 1 MiB limit and hold ~100 MB.
pub(crate) const QUEUED_WRITE_COST: usize = 64;

/// `(queued, buffered)` from [`Shared::counts`].
fn split(v: u64) -> (u64, u64) {
    (v & u64::from(u32::MAX), v >> 32)
}

fn join(queued: u64, buffered: u64) -> u64 {
    queued.min(u64::from(u32::MAX)) | (buffered.min(u64::from(u32::MAX)) << 32)
}

impl Shared {
    /// Bytes buffered for the connection: queued through handles plus its write buffer.
    fn total(&self) -> usize {
        let (queued, buffered) = split(self.counts.load(Ordering::SeqCst));
        (queued + buffered) as usize
    }

    fn update(&self, f: impl Fn(u64, u64) -> (u64, u64)) {
        let _ = self
            .counts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                let (q, b) = split(v);
                let (q, b) = f(q, b);
                Some(join(q, b))
            });
    }
}

/// The connection's own end: the receiving side of the channel and the shared counters.
#[derive(Debug)]
pub(crate) struct Link {
    tx: mpsc::UnboundedSender<Command>,
    rx: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    /// Bytes handle writes added to the write buffer since the protocol was last told
    /// ([`Protocol::handle_written`](crate::Protocol::handle_written)).
    unreported: usize,
    /// Bytes of handle writes the task may still apply before it stops taking commands
    /// (`u64::MAX`: no limit; 0: commands wait in the channel, counted by the handles, until
    /// the budget is raised). Set by a write throttle
    /// ([`Transport::set_handle_budget`](crate::Transport::set_handle_budget)).
    budget: u64,
}

impl Link {
    pub(crate) fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            counts: AtomicU64::new(0),
            entries: AtomicUsize::new(0),
            high: AtomicUsize::new(0),
            low: AtomicUsize::new(0),
            limit: AtomicUsize::new(DEFAULT_HANDLE_LIMIT),
            abort_over_limit: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            parked: Mutex::new(None),
            waiting: AtomicBool::new(false),
            room: Notify::new(),
        });
        Self {
            tx,
            rx,
            shared,
            unreported: 0,
            budget: u64::MAX,
        }
    }

    /// A link whose connection is already gone: its handles fail with `Closed` at once.
    pub(crate) fn closed() -> TransportHandle {
        let mut link = Self::new();
        link.rx.close();
        link.handle()
    }

    pub(crate) fn handle(&self) -> TransportHandle {
        TransportHandle {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }

    pub(crate) fn publish_limits(&self, high: usize, low: usize, limit: usize, abort: bool) {
        let s = &self.shared;
        s.high.store(high, Ordering::SeqCst);
        s.low.store(low, Ordering::SeqCst);
        s.limit.store(limit, Ordering::SeqCst);
        s.abort_over_limit.store(abort, Ordering::SeqCst);
    }

    /// The write buffer holds `buffered` bytes now: wake writers waiting for room if that is
    /// under the low mark.
    #[inline]
    pub(crate) fn publish(&self, buffered: usize) {
        let s = &self.shared;
        s.update(|q, _| (q, buffered as u64));
        if s.waiting.load(Ordering::SeqCst) {
            self.wake_if_room();
        }
    }

    #[cold]
    fn wake_if_room(&self) {
        let s = &self.shared;
        if s.total() <= s.low.load(Ordering::SeqCst) && s.waiting.swap(false, Ordering::SeqCst) {
            s.room.notify_waiters();
        }
    }

    /// The task is about to hand the whole write buffer to the socket: count it as gone
    /// *before* the peer can see it. Published after the write instead, a peer that read
    /// everything and made another connection write again (a chat reader keeping up) could
    /// find the old size still counted, on another worker thread, while this thread was
    /// preempted between the write and the publish: a reader that keeps up looked over its
    /// high water mark. The true remainder is published right after the write
    /// ([`publish`](Self::publish)); until then the count is low by at most what the socket
    /// refuses, so writers can overshoot the limit by at most one write buffer. No wake-up:
    /// the room is not certain yet.
    #[inline]
    pub(crate) fn sending(&self) {
        self.shared.update(|q, _| (q, 0));
    }

    /// A handle write of `len` bytes was applied: `added` bytes went into the write buffer
    /// (fewer when writes are shut), which now holds `buffered` (one atomic step: the bytes
    /// move from one count to the other). They count against the budget and are reported to
    /// the protocol after the batch.
    pub(crate) fn applied(&mut self, len: usize, added: usize, buffered: usize) {
        self.shared
            .update(|q, _| (q.saturating_sub(len as u64), buffered as u64));
        self.shared.entries.fetch_sub(1, Ordering::SeqCst);
        self.unreported += added;
        if self.budget != u64::MAX {
            self.budget = self.budget.saturating_sub(added as u64);
        }
    }

    /// Bytes applied since the last call (what the protocol is told now).
    #[inline]
    pub(crate) fn take_unreported(&mut self) -> usize {
        std::mem::take(&mut self.unreported)
    }

    pub(crate) fn set_budget(&mut self, budget: Option<u64>) {
        self.budget = budget.unwrap_or(u64::MAX);
    }

    pub(crate) fn budget(&self) -> Option<u64> {
        (self.budget != u64::MAX).then_some(self.budget)
    }

    /// The next command, registering `cx` for the next one; `Pending` without registering
    /// while the budget is spent (the throttle that set it wakes the task with its timer),
    /// except for an abort, which goes ahead of what the budget holds back.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Command>> {
        if self.budget == 0 {
            return self.poll_parked(cx);
        }
        self.rx.poll_recv(cx)
    }

    pub(crate) fn try_recv(&mut self) -> Option<Command> {
        if self.budget == 0 {
            return self.held_back_abort();
        }
        self.rx.try_recv().ok()
    }

    /// The budget is spent: only an abort gets through; park the task for one.
    #[cold]
    fn poll_parked(&self, cx: &mut Context<'_>) -> Poll<Option<Command>> {
        *self.shared.parked.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        // Checked after parking: an abort flagged before is seen here, one flagged after
        // finds the waker.
        match self.held_back_abort() {
            Some(abort) => Poll::Ready(Some(abort)),
            None => Poll::Pending,
        }
    }

    #[cold]
    fn held_back_abort(&self) -> Option<Command> {
        self.shared
            .abort
            .swap(false, Ordering::SeqCst)
            .then_some(Command::Abort)
    }
}

impl Drop for Link {
    /// The connection is gone: handles now fail with `Closed`, and waiting writers wake to
    /// see it (the channel is closed before they wake).
    fn drop(&mut self) {
        self.rx.close();
        self.shared.room.notify_waiters();
    }
}

/// A cloneable handle to a connection, for writing and closing from other tasks and threads.
///
/// Commands go through a channel to the task that owns the connection and take effect in
/// order. They fail with [`ConnectionClosed`] (a write with [`WriteError::Closed`]) once the
/// connection is gone.
///
/// Memory stays bounded however slowly the peer reads: bytes written through handles count,
/// with what the protocol itself buffered, toward the connection's water marks
/// ([`is_over_high_water`](Self::is_over_high_water), [`writable`](Self::writable),
/// [`write_when_ready`](Self::write_when_ready) to wait for room) and toward a hard limit
/// ([`Transport::set_handle_limit`](crate::Transport::set_handle_limit), 1 MiB by default)
/// past which [`write`](Self::write) fails with [`WriteError::Full`] instead of growing.
///
/// The connection treats these bytes as its own output once its task takes them: the protocol
/// is told ([`Protocol::handle_written`](crate::Protocol::handle_written), once per batch), so
/// the [policies](crate::policies) see them: an
/// [`IdleTimeout`](crate::policies::IdleTimeout) counts them as activity, a
/// [`Throttle`](crate::policies::Throttle)'s write rate applies to them (over it they wait
/// here, counted: [`buffered`](Self::buffered) grows, [`write`](Self::write) fails with
/// [`WriteError::Full`] at the limit, [`writable`](Self::writable) waits), and the traffic log
/// and metrics count them as bytes out.
///
/// ```
/// use weft_core::testing::MemoryTransport;
/// use weft_core::{Protocol, Transport};
///
/// struct P;
/// impl Protocol for P {
///     fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
/// }
/// let mut conn = MemoryTransport::new(P);
/// let handle = conn.transport_mut().handle();
/// std::thread::spawn(move || handle.write("from a thread")).join().unwrap().unwrap();
/// conn.run_pending();
/// assert_eq!(conn.written(), b"from a thread");
/// ```
#[derive(Debug, Clone)]
pub struct TransportHandle {
    tx: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl TransportHandle {
    fn send(&self, cmd: Command) -> Result<(), ConnectionClosed> {
        self.tx.send(cmd).map_err(|_| ConnectionClosed)
    }

    /// Queues `data` to be written (the connection's `write`). Never waits: `data` is shared,
    /// not copied, until the connection's task appends it to its write buffer.
    ///
    /// # Errors
    /// [`WriteError::Closed`] once the connection is gone; [`WriteError::Full`] if the bytes
    /// already buffered for the connection plus `data` (and 64 bytes for each queued write)
    /// exceed its [handle limit](crate::Transport::set_handle_limit) (a write into an empty
    /// buffer is always accepted). With [`OverLimit::Abort`] the connection is then aborted too.
    ///
    /// See [`TransportHandle`] for an example, and
    /// [`Transport::set_handle_limit`](crate::Transport::set_handle_limit) for the limit.
    pub fn write(&self, data: impl Into<Bytes>) -> Result<(), WriteError> {
        let data = data.into();
        let len = data.len();
        if self.tx.is_closed() {
            return Err(WriteError::Closed);
        }
        let s = &self.shared;
        let limit = s.limit.load(Ordering::SeqCst);
        // Each queued write also costs memory of its own: charged, so that many tiny writes
        // cannot queue far more memory than the limit says.
        let entries = s.entries.fetch_add(1, Ordering::SeqCst);
        let overhead = ((entries + 1) * QUEUED_WRITE_COST) as u64;
        // Check and reserve in one atomic step: concurrent writers cannot both slip under
        // the limit.
        let reserved = s
            .counts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                let (q, b) = split(v);
                let buffered = q + b;
                let fits = (buffered == 0 && entries == 0)
                    || buffered + len as u64 + overhead <= limit as u64;
                let q = q + len as u64;
                (fits && q <= u64::from(u32::MAX)).then(|| join(q, b))
            });
        if let Err(v) = reserved {
            s.entries.fetch_sub(1, Ordering::SeqCst);
            let (q, b) = split(v);
            if s.abort_over_limit.load(Ordering::SeqCst) {
                let _ = self.abort_connection();
            }
            return Err(WriteError::Full {
                buffered: (q + b) as usize,
                limit,
            });
        }
        self.send(Command::Write(data)).map_err(|ConnectionClosed| {
            s.entries.fetch_sub(1, Ordering::SeqCst);
            s.update(|q, b| (q.saturating_sub(len as u64), b));
            WriteError::Closed
        })
    }

    /// Waits until the connection has room ([`writable`](Self::writable)), then
    /// [`write`](Self::write)s `data`: the async write of a producer that must not outrun a
    /// slow peer.
    ///
    /// # Errors
    /// As [`write`](Self::write) ([`WriteError::Full`] only for a write larger than the
    /// limit, or when other writers filled the room first).
    ///
    /// # Cancel safety
    /// Cancel safe: dropped while waiting, nothing was written.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut conn = MemoryTransport::new(P);
    /// let h = conn.transport_mut().handle();
    /// h.write_when_ready("room now").await.unwrap();
    /// conn.run_pending();
    /// assert_eq!(conn.written(), b"room now");
    /// # });
    /// ```
    pub async fn write_when_ready(&self, data: impl Into<Bytes>) -> Result<(), WriteError> {
        self.writable().await?;
        self.write(data)
    }

    /// Returns at once while the bytes buffered for the connection are at most its high water
    /// mark; above it, waits until they drain to the low mark (the moment the protocol would
    /// get `resume_writing`).
    ///
    /// # Errors
    /// [`ConnectionClosed`] once the connection is gone (also while waiting).
    ///
    /// # Cancel safety
    /// Cancel safe.
    ///
    /// See [`write_when_ready`](Self::write_when_ready) for an example.
    pub async fn writable(&self) -> Result<(), ConnectionClosed> {
        let s = &self.shared;
        if self.tx.is_closed() {
            return Err(ConnectionClosed);
        }
        if s.total() <= s.high.load(Ordering::SeqCst) {
            return Ok(());
        }
        loop {
            let notified = s.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Set after enabling, read by the task after it publishes: either this check sees
            // the drained size, or the task sees the flag and wakes us.
            s.waiting.store(true, Ordering::SeqCst);
            if self.tx.is_closed() {
                return Err(ConnectionClosed);
            }
            if s.total() <= s.low.load(Ordering::SeqCst) {
                return Ok(());
            }
            notified.await;
        }
    }

    /// Bytes buffered for the connection and not yet sent: queued through handles plus its
    /// write buffer (as of the connection task's last turn).
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// let h = conn.transport_mut().handle();
    /// h.write(vec![b'x'; 100_000]).unwrap();
    /// assert_eq!(h.buffered(), 100_000);
    /// assert!(h.is_over_high_water()); // above 64 KiB: this peer is not keeping up
    /// conn.run_pending();
    /// assert_eq!(h.buffered(), 100_000); // now in the write buffer
    /// conn.take_written(); // the peer reads it all
    /// assert_eq!(h.buffered(), 0);
    /// ```
    pub fn buffered(&self) -> usize {
        self.shared.total()
    }

    /// True while more than the connection's high water mark is buffered for it: a producer
    /// should hold off (the handle's view of `pause_writing`), or skip this peer.
    ///
    /// See [`buffered`](Self::buffered) for an example.
    pub fn is_over_high_water(&self) -> bool {
        self.buffered() > self.shared.high.load(Ordering::SeqCst)
    }

    /// Flushes, then closes (the connection's `lose_connection`).
    ///
    /// # Errors
    /// [`ConnectionClosed`] once the connection is gone.
    ///
    /// # Examples
    ///
    /// The three ways a handle ends a connection, each applied when the connection's task
    /// runs its commands:
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut closed = MemoryTransport::new(P);
    /// closed.transport_mut().handle().lose_connection().unwrap();
    /// closed.run_pending();
    /// assert!(closed.is_closing());
    ///
    /// let mut aborted = MemoryTransport::new(P);
    /// aborted.transport_mut().handle().abort_connection().unwrap();
    /// aborted.run_pending();
    /// assert!(aborted.is_aborted());
    ///
    /// let mut half = MemoryTransport::new(P);
    /// half.transport_mut().handle().write_eof().unwrap();
    /// half.run_pending();
    /// assert!(half.eof_written());
    /// ```
    pub fn lose_connection(&self) -> Result<(), ConnectionClosed> {
        self.send(Command::LoseConnection)
    }

    /// Drops pending output and closes now (the connection's `abort_connection`). It goes
    /// ahead of handle writes a [`Throttle`](crate::policies::Throttle) holds back (they are
    /// pending output too).
    ///
    /// # Errors
    /// [`ConnectionClosed`] once the connection is gone.
    ///
    /// See [`lose_connection`](Self::lose_connection) for an example.
    pub fn abort_connection(&self) -> Result<(), ConnectionClosed> {
        // Also flagged: a throttle holding the handle writes back lets it through first
        // (waking the task it keeps off the channel).
        self.shared.abort.store(true, Ordering::SeqCst);
        let parked = self
            .shared
            .parked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = parked {
            task.wake();
        }
        self.send(Command::Abort)
    }

    /// Half-closes once pending output is flushed (the connection's `write_eof`).
    ///
    /// # Errors
    /// [`ConnectionClosed`] once the connection is gone.
    ///
    /// See [`lose_connection`](Self::lose_connection) for an example.
    pub fn write_eof(&self) -> Result<(), ConnectionClosed> {
        self.send(Command::WriteEof)
    }

    /// Stops reading from the peer.
    ///
    /// # Errors
    /// [`ConnectionClosed`] once the connection is gone.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// let h = conn.transport_mut().handle();
    /// h.pause_producing().unwrap();
    /// conn.run_pending();
    /// assert!(conn.transport().is_reading_paused());
    /// h.resume_producing().unwrap();
    /// conn.run_pending();
    /// assert!(!conn.transport().is_reading_paused());
    /// ```
    pub fn pause_producing(&self) -> Result<(), ConnectionClosed> {
        self.send(Command::PauseProducing)
    }

    /// Starts reading again.
    ///
    /// # Errors
    /// [`ConnectionClosed`] once the connection is gone.
    ///
    /// See [`pause_producing`](Self::pause_producing) for an example.
    pub fn resume_producing(&self) -> Result<(), ConnectionClosed> {
        self.send(Command::ResumeProducing)
    }

    /// True once the connection is gone.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut conn = MemoryTransport::new(P);
    /// let h = conn.transport_mut().handle();
    /// assert!(!h.is_closed());
    /// drop(conn);
    /// assert!(h.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// True if both handles lead to the same connection.
    ///
    /// ```
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let mut a = MemoryTransport::new(P);
    /// let mut b = MemoryTransport::new(P);
    /// let h = a.transport_mut().handle();
    /// assert!(h.same_connection(&a.transport_mut().handle()));
    /// assert!(!h.same_connection(&b.transport_mut().handle()));
    /// ```
    pub fn same_connection(&self, other: &TransportHandle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::MemoryTransport;
    use crate::{Protocol, Transport};

    struct P;
    impl Protocol for P {
        fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
    }

    /// A handle taken after the connection was lost (in `connection_lost`'s aftermath, or by
    /// a `Registry::join` too late) fails at once instead of queueing into a channel nobody
    /// reads.
    #[test]
    fn a_handle_taken_after_the_connection_is_lost_fails_at_once() {
        let mut conn = MemoryTransport::new(P);
        conn.lose(crate::DisconnectReason::ConnectionDone);
        let h = conn.transport_mut().handle();
        assert!(h.is_closed());
        assert_eq!(h.write("late"), Err(crate::WriteError::Closed));
        assert_eq!(h.lose_connection(), Err(crate::ConnectionClosed));
        assert_eq!(h.buffered(), 0);
    }

    /// Writers on other threads and the connection draining at once: once everything is
    /// written and read, nothing is left counted.
    #[test]
    fn concurrent_writes_and_drains_leave_no_count_behind() {
        let mut conn = MemoryTransport::new(P);
        let h = conn.transport_mut().handle();
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || {
                    let mut ok = 0;
                    for _ in 0..20_000 {
                        if h.write(vec![b'x'; 100]).is_ok() {
                            ok += 100;
                        }
                    }
                    ok
                })
            })
            .collect();
        let mut read = 0;
        while !writers.iter().all(|w| w.is_finished()) {
            conn.run_pending();
            read += conn.take_written().len();
        }
        let sent: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
        conn.run_pending();
        read += conn.take_written().len();
        assert_eq!(read, sent);
        assert_eq!(h.buffered(), 0);
        assert_eq!(
            h.shared.entries.load(std::sync::atomic::Ordering::SeqCst),
            0
        );
    }

    /// A flood of 1-byte writes to a connection that is not draining stops at the limit
    /// counted with each queued write's own cost, not after a million entries.
    #[test]
    fn tiny_writes_are_bounded_by_their_queue_cost_too() {
        let mut conn = MemoryTransport::new(P);
        let h = conn.transport_mut().handle();
        let mut queued = 0;
        while h.write(&b"x"[..]).is_ok() {
            queued += 1;
            assert!(queued <= 1 << 20, "unbounded");
        }
        let per_write = 1 + super::QUEUED_WRITE_COST;
        assert_eq!(queued, super::DEFAULT_HANDLE_LIMIT / per_write);
        conn.run_pending();
        assert_eq!(
            conn.take_written().len(),
            queued,
            "every accepted byte is written"
        );
        assert_eq!(h.buffered(), 0);
        assert!(h.write(&b"again"[..]).is_ok(), "room once applied");
    }
}
