//! Idle and line timeouts (Twisted's `TimeoutMixin`, `TimeoutFactory`), on one timer each
//! that is never re-armed per read.

use std::time::Duration;

use tokio::time::Instant;

use super::{Wrapper, counting_writes, forward};
use crate::{DisconnectReason, Protocol, TimeoutKind, TimerId, Transport};

/// A timeout a protocol embeds and steers itself (Twisted's `TimeoutMixin`).
///
/// It keeps a deadline and one transport timer ([`Transport::call_later`]): activity
/// ([`reset_timeout`](Self::reset_timeout)) only moves the deadline, which costs one clock
/// read, and the timer, when it fires before the deadline, is armed again for the deadline.
/// So a busy connection arms about one timer per period, not one per read.
///
/// Route [`Protocol::timer_fired`] through [`timer_fired`](Self::timer_fired): it says when
/// the timeout expired, and the protocol then does what it wants (Twisted's
/// `timeoutConnection`; [`timeout_connection`] is the default, a close that says why).
/// What counts as activity is the protocol's choice: [`IdleTimeout`] calls
/// [`reset_timeout`](Self::reset_timeout) for every read, for what each callback writes and
/// from [`Protocol::handle_written`] (bytes other tasks wrote through handles).
///
/// ```
/// use std::time::Duration;
/// use weft_core::policies::{timeout_connection, IdleTimer, TimerOutcome};
/// use weft_core::testing::MemoryTransport;
/// use weft_core::{Protocol, TimeoutKind, TimerId, Transport};
///
/// /// A login prompt: 10 s to say something, then no limit.
/// #[derive(Default)]
/// struct Login {
///     timer: IdleTimer,
/// }
/// impl Protocol for Login {
///     fn connection_made(&mut self, t: &mut Transport) {
///         self.timer.set_timeout(t, Some(Duration::from_secs(10)));
///     }
///     fn data_received(&mut self, _: &[u8], t: &mut Transport) {
///         self.timer.set_timeout(t, None);
///     }
///     fn timer_fired(&mut self, id: TimerId, t: &mut Transport) {
///         if self.timer.timer_fired(id, t) == TimerOutcome::Expired {
///             t.write("too slow\r\n");
///             timeout_connection(t, TimeoutKind::Idle);
///         }
///     }
/// }
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let mut conn = MemoryTransport::new(Login::default());
/// conn.advance(Duration::from_secs(11)).await;
/// assert!(conn.is_closing());
/// assert_eq!(conn.written(), b"too slow\r\n");
/// # });
/// ```
#[derive(Debug, Default)]
pub struct IdleTimer {
    period: Option<Duration>,
    /// When the timeout expires; `None`: not counting (off, or stopped until the next start).
    deadline: Option<Instant>,
    /// The transport timer armed for it, if any (it may fire early: see `timer_fired`).
    timer: Option<TimerId>,
}

/// What [`IdleTimer::timer_fired`] made of a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerOutcome {
    /// Not this timeout's timer: handle it yourself.
    NotMine,
    /// This timeout's timer, but the deadline moved on (there was activity): nothing to do.
    Pending,
    /// The timeout expired: close the connection, or whatever the protocol does then.
    Expired,
}

impl IdleTimer {
    /// A timeout that is off until [`set_timeout`](Self::set_timeout).
    ///
    /// See [`IdleTimer`] for an example.
    pub fn new() -> Self {
        Self::default()
    }

    /// A timer with `period`, not counting until the connection starts it.
    fn with_period(period: Duration) -> Self {
        Self {
            period: Some(period),
            ..Self::default()
        }
    }

    /// Sets the period (`None`: no timeout) and starts counting it from now. Returns the
    /// previous period (Twisted's `setTimeout`). Turning it off cancels the timer.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use weft_core::policies::IdleTimer;
    /// # use weft_core::{testing::MemoryTransport, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let mut conn = MemoryTransport::new(P);
    /// let mut timer = IdleTimer::new();
    /// let t = conn.transport_mut();
    /// assert_eq!(timer.set_timeout(t, Some(Duration::from_secs(5))), None);
    /// assert_eq!(timer.set_timeout(t, None), Some(Duration::from_secs(5)));
    /// assert_eq!(timer.set_timeout(t, None), None); // cancelling twice is fine
    /// assert_eq!(t.pending_timers(), 0);
    /// # });
    /// ```
    pub fn set_timeout(&mut self, t: &mut Transport, period: Option<Duration>) -> Option<Duration> {
        let old = std::mem::replace(&mut self.period, period);
        match period {
            Some(_) => self.start(t, Instant::now()),
            None => {
                self.deadline = None;
                if let Some(id) = self.timer.take() {
                    t.cancel_timer(id);
                }
            }
        }
        old
    }

    /// The period, if the timeout is on.
    ///
    /// ```
    /// assert_eq!(weft_core::policies::IdleTimer::new().timeout(), None);
    /// ```
    pub fn timeout(&self) -> Option<Duration> {
        self.period
    }

    /// There was activity: the period starts again from now. Does nothing while the timeout
    /// is off (as Twisted's `resetTimeout`). One clock read; the timer is not touched.
    ///
    /// See [`IdleTimeout`] for a protocol that calls it on every byte.
    #[inline]
    pub fn reset_timeout(&mut self) {
        if let (Some(p), Some(d)) = (self.period, self.deadline.as_mut()) {
            *d = Instant::now() + p;
        }
    }

    /// Starts counting from `now` (arming the timer if none is armed).
    pub(crate) fn start(&mut self, t: &mut Transport, now: Instant) {
        let Some(period) = self.period else {
            return;
        };
        self.deadline = Some(now + period);
        if self.timer.is_none() {
            self.timer = Some(t.call_later(period));
        }
    }

    /// Stops counting without cancelling the timer (which then fires and is not re-armed):
    /// cheaper than a cancel when counting may start again soon.
    pub(crate) fn stop(&mut self) {
        self.deadline = None;
    }

    /// True while the period is being counted.
    pub(crate) fn is_counting(&self) -> bool {
        self.deadline.is_some()
    }

    /// Call from [`Protocol::timer_fired`]: tells whether `id` was this timeout's timer and
    /// whether the timeout expired. An early timer (the deadline moved) is armed again for the
    /// deadline. After [`Expired`](TimerOutcome::Expired) the timeout counts one more period
    /// from now.
    ///
    /// See [`IdleTimer`] for an example.
    pub fn timer_fired(&mut self, id: TimerId, t: &mut Transport) -> TimerOutcome {
        if self.timer != Some(id) {
            return TimerOutcome::NotMine;
        }
        self.timer = None;
        let Some(deadline) = self.deadline else {
            return TimerOutcome::Pending;
        };
        let now = Instant::now();
        if now >= deadline {
            self.start(t, now);
            TimerOutcome::Expired
        } else {
            self.timer = Some(t.call_later(deadline - now));
            TimerOutcome::Pending
        }
    }
}

/// The default reaction to a timeout: close after flushing, with
/// [`DisconnectReason::TimedOut`]; if the connection is already closing (the last timeout's
/// close could not flush: the peer does not read), abort it.
///
/// See [`IdleTimer`] for an example.
pub fn timeout_connection(t: &mut Transport, kind: TimeoutKind) {
    if t.is_closing() {
        tracing::debug!(?kind, "timed out again while closing; aborting");
        t.abort_connection();
    } else {
        tracing::debug!(?kind, "timed out; closing");
        t.close_gracefully(DisconnectReason::TimedOut(kind));
    }
}

/// Closes connections on which no byte went either way for a period (Twisted's
/// `TimeoutFactory`).
///
/// Bytes received, bytes the protocol writes from its callbacks and bytes written from other
/// tasks through a [`TransportHandle`](crate::TransportHandle) (a chat client that only
/// receives the others' lines) all count as activity, as the connection's task takes them
/// ([`Protocol::handle_written`]): a deadline moved, never a timer re-armed per read or
/// write. A handle write refused because the peer does not read
/// ([`WriteError::Full`](crate::WriteError::Full)) is no activity. After a period without
/// any, the connection is closed after flushing, with
/// [`DisconnectReason::TimedOut`]`(`[`TimeoutKind::Idle`]`)`; if it cannot flush within
/// another period (a peer that does not read), it is aborted.
///
/// ```
/// use std::time::Duration;
/// use weft_core::policies::{FactoryExt, IdleTimeout};
/// use weft_core::testing::MemoryTransport;
/// use weft_core::{factory_fn, Address, Factory, Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, d: &[u8], t: &mut Transport) { t.write(d) }
/// }
/// let factory = factory_fn(|_| Some(Echo)).with(IdleTimeout::new(Duration::from_secs(3)));
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let p = factory.build_protocol(&Address::Memory("peer".into())).unwrap();
/// let mut conn = MemoryTransport::new(p);
/// conn.advance(Duration::from_secs(2)).await;
/// conn.feed(b"ping"); // activity: 3 s from now
/// conn.advance(Duration::from_secs(2)).await;
/// assert!(!conn.is_closing());
/// conn.advance(Duration::from_millis(1001)).await;
/// assert!(conn.is_closing());
/// # });
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct IdleTimeout {
    period: Duration,
}

impl IdleTimeout {
    /// Connections idle for `period` are closed.
    ///
    /// See [`IdleTimeout`] for an example.
    pub fn new(period: Duration) -> Self {
        Self { period }
    }

    /// The period.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let t = weft_core::policies::IdleTimeout::new(Duration::from_secs(300));
    /// assert_eq!(t.period(), Duration::from_secs(300));
    /// ```
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl Wrapper for IdleTimeout {
    type Protocol<P: Protocol> = Idled<P>;

    fn around<P: Protocol>(&self, inner: P) -> Idled<P> {
        let timer = Box::new(IdleTimer::with_period(self.period));
        Idled { inner, timer }
    }
}

/// The protocol [`IdleTimeout`] builds around `P`.
#[derive(Debug)]
pub struct Idled<P> {
    pub(super) inner: P,
    /// Boxed (48 bytes): an `Option<IdleTimeout>` that is off then costs a connection a
    /// pointer's room, where inline it cost 48 bytes in every connection's task, on or off.
    timer: Box<IdleTimer>,
}

impl<P> Idled<P> {
    /// Runs a callback of the inner protocol; writing counts as activity.
    #[inline]
    fn call<R>(&mut self, t: &mut Transport, f: impl FnOnce(&mut P, &mut Transport) -> R) -> R {
        let (r, wrote) = counting_writes(t, |t| f(&mut self.inner, t));
        if wrote > 0 {
            self.timer.reset_timeout();
        }
        r
    }
}

impl<P: Protocol> Protocol for Idled<P> {
    fn connection_made(&mut self, t: &mut Transport) {
        self.timer.start(t, Instant::now());
        self.call(t, |p, t| p.connection_made(t));
    }

    #[inline]
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        // Reading and the reply it makes are one activity: one clock read.
        self.timer.reset_timeout();
        self.inner.data_received(data, t);
    }

    fn timer_fired(&mut self, id: TimerId, t: &mut Transport) {
        match self.timer.timer_fired(id, t) {
            TimerOutcome::NotMine => self.call(t, |p, t| p.timer_fired(id, t)),
            TimerOutcome::Pending => {}
            TimerOutcome::Expired => timeout_connection(t, TimeoutKind::Idle),
        }
    }

    /// Bytes written through handles are activity too (a client that only receives other
    /// connections' messages is not idle): one clock read per batch the connection's task
    /// applies, the timer untouched, as for a read.
    #[inline]
    fn handle_written(&mut self, len: usize, t: &mut Transport) {
        self.timer.reset_timeout();
        self.inner.handle_written(len, t);
    }

    forward!(connection_lost);
    forward!(call: eof_received, pause_writing, resume_writing, reading_resumed);
}

/// Closes connections whose current line is not finished within a period: a line must
/// complete in time, however the bytes trickle in (a slowloris sending one byte every few
/// seconds is not idle, but never finishes a line).
///
/// The clock starts with the first byte of a line and stops at the line's last byte (the last
/// byte of the delimiter: `\n` for `\r\n` and `\n`). It does not read the protocol's state, so
/// it suits line protocols that stay in line mode. The connection is closed as by
/// [`IdleTimeout`], with [`DisconnectReason::TimedOut`]`(`[`TimeoutKind::Line`]`)`.
///
/// ```
/// use std::time::Duration;
/// use weft_core::policies::{LineTimeout, Policy};
/// use weft_core::testing::MemoryTransport;
/// use weft_core::{Address, Protocol, Transport};
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let p = LineTimeout::new(Duration::from_secs(2)).build(&Address::Memory("x".into()), || Some(Quiet));
/// let mut conn = MemoryTransport::new(p.unwrap());
/// conn.advance(Duration::from_secs(5)).await; // silence is not a slow line
/// assert!(!conn.is_closing());
/// for _ in 0..3 {
///     conn.feed(b"x");
///     conn.advance(Duration::from_millis(500)).await;
/// }
/// assert!(!conn.is_closing());
/// conn.feed(b"x");
/// conn.advance(Duration::from_millis(500)).await; // 2 s since the line began
/// assert!(conn.is_closing());
/// # });
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct LineTimeout {
    period: Duration,
    end: u8,
}

impl LineTimeout {
    /// A line must be finished within `period` of its first byte; lines end with `\n`.
    ///
    /// See [`LineTimeout`] for an example.
    pub fn new(period: Duration) -> Self {
        Self { period, end: b'\n' }
    }

    /// Lines end with `delimiter` (its last byte is what the timeout looks for).
    ///
    /// ```
    /// # use std::time::Duration;
    /// // NUL-terminated messages: the timeout runs from a message's first byte to its NUL.
    /// let t = weft_core::policies::LineTimeout::new(Duration::from_secs(30)).with_delimiter(b"\0");
    /// ```
    pub fn with_delimiter(mut self, delimiter: &[u8]) -> Self {
        if let Some(&b) = delimiter.last() {
            self.end = b;
        }
        self
    }
}

impl Wrapper for LineTimeout {
    type Protocol<P: Protocol> = LineTimed<P>;

    fn around<P: Protocol>(&self, inner: P) -> LineTimed<P> {
        let timer = IdleTimer::with_period(self.period);
        let end = self.end;
        LineTimed { inner, timer, end }
    }
}

/// The protocol [`LineTimeout`] builds around `P`.
#[derive(Debug)]
pub struct LineTimed<P> {
    pub(super) inner: P,
    timer: IdleTimer,
    end: u8,
}

impl<P: Protocol> Protocol for LineTimed<P> {
    #[inline]
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        match data.last() {
            // The common case, a read that ends a line: one comparison.
            Some(&b) if b == self.end => self.timer.stop(),
            Some(_) => {
                if memchr::memchr(self.end, data).is_some() {
                    // A line ended and the next one began with this read.
                    self.timer.start(t, Instant::now());
                } else if !self.timer.is_counting() {
                    self.timer.start(t, Instant::now());
                }
            }
            None => {}
        }
        self.inner.data_received(data, t);
    }

    fn timer_fired(&mut self, id: TimerId, t: &mut Transport) {
        match self.timer.timer_fired(id, t) {
            TimerOutcome::NotMine => self.inner.timer_fired(id, t),
            TimerOutcome::Pending => {}
            TimerOutcome::Expired => timeout_connection(t, TimeoutKind::Line),
        }
    }

    forward!(
        connection_made,
        eof_received,
        connection_lost,
        pause_writing,
        resume_writing,
        reading_resumed,
        handle_written
    );
}
