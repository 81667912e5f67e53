//! Bandwidth throttling (Twisted's `ThrottlingFactory`): token buckets per connection and
//! per factory; over the rate, reading pauses and the protocol is asked to stop writing.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;

use super::{Wrapper, counting_writes};
use crate::{DisconnectReason, Protocol, TimerId, Transport};

/// Limits the bytes per second read from and written to peers, per connection and for all the
/// factory's connections together. Nothing is dropped or refused: over the read rate the
/// connection stops reading (the peer's sends back up in TCP), and over the write rate the
/// protocol gets [`pause_writing`](Protocol::pause_writing), as for a slow reader, and its
/// input pauses too, until the rate allows more (then `resume_writing`).
///
/// Bytes written from other tasks through a [`TransportHandle`](crate::TransportHandle) (a
/// broadcast to a chat client) count against the same write rate: over it, the connection's
/// task stops taking them from the handles, so they wait in the handles' bounded queue (a
/// writer sees [`WriteError::Full`](crate::WriteError::Full) past the handle limit,
/// [`TransportHandle::writable`](crate::TransportHandle::writable) and
/// [`write_when_ready`](crate::TransportHandle::write_when_ready) wait, a
/// [`Registry`](crate::Registry) broadcast skips the member as a slow reader); nothing is
/// dropped. They are let in a twentieth of a second's worth at a time. Commands sent behind
/// them wait their turn, in order (a `lose_connection` closes once they are all written),
/// except an `abort_connection`, which drops them: it goes ahead of them, at once.
///
/// The rates are averages: a connection may go a tenth of a second's worth of bytes ahead
/// (a burst), and a read takes what the socket has (up to 64 KiB), after which the
/// connection waits long enough to pay it back (so does a handle write larger than what is
/// left: it goes in whole).
///
/// Unlike Twisted's, which pauses every connection once the factory's total is over, a
/// connection over the shared rate pauses when it next reads or writes.
///
/// ```
/// use weft_core::policies::{FactoryExt, Throttle};
/// use weft_core::{factory_fn, Protocol, Transport};
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, d: &[u8], t: &mut Transport) { t.write(d) }
/// }
/// let factory = factory_fn(|_| Some(Echo)).with(
///     Throttle::new()
///         .per_connection(100 * 1024)     // 100 KiB/s each way, each connection
///         .read_total(10 * 1024 * 1024),  // 10 MiB/s read by all of them
/// );
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct Throttle {
    read: Option<u64>,
    write: Option<u64>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    read: Option<Mutex<Bucket>>,
    write: Option<Mutex<Bucket>>,
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = |b: &Option<Mutex<Bucket>>| {
            b.as_ref()
                .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).rate)
        };
        f.debug_struct("Throttle")
            .field("read", &self.read)
            .field("write", &self.write)
            .field("read_total", &rate(&self.shared.read))
            .field("write_total", &rate(&self.shared.write))
            .finish()
    }
}

impl Throttle {
    /// No limit yet: add them with the other methods.
    ///
    /// See [`Throttle`] for an example.
    pub fn new() -> Self {
        Self::default()
    }

    /// Each connection reads and writes at most `bytes_per_sec` each way.
    ///
    /// See [`Throttle`] for an example.
    pub fn per_connection(self, bytes_per_sec: u64) -> Self {
        self.read_per_connection(bytes_per_sec)
            .write_per_connection(bytes_per_sec)
    }

    /// Each connection reads at most `bytes_per_sec`.
    ///
    /// See [`Throttle`] for an example.
    pub fn read_per_connection(mut self, bytes_per_sec: u64) -> Self {
        self.read = Some(bytes_per_sec.max(1));
        self
    }

    /// Each connection writes at most `bytes_per_sec`.
    ///
    /// See [`Throttle`] for an example.
    pub fn write_per_connection(mut self, bytes_per_sec: u64) -> Self {
        self.write = Some(bytes_per_sec.max(1));
        self
    }

    /// All connections together read at most `bytes_per_sec`.
    ///
    /// See [`Throttle`] for an example.
    pub fn read_total(mut self, bytes_per_sec: u64) -> Self {
        let shared = shared_mut(&mut self.shared);
        shared.read = Some(Mutex::new(Bucket::new(bytes_per_sec, Instant::now())));
        self
    }

    /// All connections together write at most `bytes_per_sec`.
    ///
    /// See [`Throttle`] for an example.
    pub fn write_total(mut self, bytes_per_sec: u64) -> Self {
        let shared = shared_mut(&mut self.shared);
        shared.write = Some(Mutex::new(Bucket::new(bytes_per_sec, Instant::now())));
        self
    }
}

/// `Arc::make_mut` for a type that is not `Clone`: builders run before the policy is shared,
/// so the `Arc` is unique; if it is not, a fresh one keeps the other copy's buckets intact.
fn shared_mut(this: &mut Arc<Shared>) -> &mut Shared {
    if Arc::get_mut(this).is_none() {
        let old = &**this;
        let copy = |b: &Option<Mutex<Bucket>>| {
            b.as_ref()
                .map(|m| Mutex::new(m.lock().unwrap_or_else(|e| e.into_inner()).clone()))
        };
        *this = Arc::new(Shared {
            read: copy(&old.read),
            write: copy(&old.write),
        });
    }
    Arc::get_mut(this).expect("a fresh Arc is unique")
}

/// A token bucket that may go into debt: a read takes what it took, and the connection then
/// waits until the debt is paid.
#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(bytes_per_sec: u64, now: Instant) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        // A tenth of a second's worth, at least one byte.
        let burst = (rate / 10.0).max(1.0);
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes `n` bytes' worth; returns how long to wait before the next byte.
    fn take(&mut self, n: usize, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

fn set_paused(t: &mut Transport, paused: bool) {
    if paused {
        t.pause_producing();
    } else {
        t.resume_producing();
    }
}

fn take_shared(b: &Option<Mutex<Bucket>>, n: usize, now: Instant) -> Duration {
    match b {
        Some(m) => m.lock().unwrap_or_else(|e| e.into_inner()).take(n, now),
        None => Duration::ZERO,
    }
}

fn take_own(b: &mut Option<Bucket>, n: usize, now: Instant) -> Duration {
    b.as_mut().map_or(Duration::ZERO, |b| b.take(n, now))
}

/// Bytes a bucket has now (negative: in debt), `f64::INFINITY` without a bucket.
fn tokens_shared(b: &Option<Mutex<Bucket>>, now: Instant) -> f64 {
    match b {
        Some(m) => {
            let mut b = m.lock().unwrap_or_else(|e| e.into_inner());
            b.take(0, now);
            b.tokens
        }
        None => f64::INFINITY,
    }
}

/// The slower rate of a connection's own bucket and the factory's shared one (`INFINITY`:
/// neither).
fn slowest_rate(own: &Option<Bucket>, shared: Option<&Mutex<Bucket>>) -> f64 {
    let own = own.as_ref().map_or(f64::INFINITY, |b| b.rate);
    let shared = shared.map_or(f64::INFINITY, |m| {
        m.lock().unwrap_or_else(|e| e.into_inner()).rate
    });
    own.min(shared)
}

fn tokens_own(b: &mut Option<Bucket>, now: Instant) -> f64 {
    match b {
        Some(b) => {
            b.take(0, now);
            b.tokens
        }
        None => f64::INFINITY,
    }
}

/// Input over the read rate is handed to the protocol in slices of this much of a second's
/// worth, so the rate is smooth however much one socket read returned.
const SLICES_PER_SEC: u64 = 20;

impl Wrapper for Throttle {
    type Protocol<P: Protocol> = Throttled<P>;

    fn around<P: Protocol>(&self, inner: P) -> Throttled<P> {
        let now = Instant::now();
        let shared = (self.shared.read.is_some() || self.shared.write.is_some())
            .then(|| self.shared.clone());
        // A twentieth of a second's worth at the slower of the two rates (0: no limit).
        let slice = |own: Option<u64>, shared: &Option<Mutex<Bucket>>| {
            let rate = slowest_rate(&own.map(|r| Bucket::new(r, now)), shared.as_ref());
            if rate.is_finite() {
                (rate as u64 / SLICES_PER_SEC).max(1)
            } else {
                0
            }
        };
        Throttled {
            inner,
            write_slice: slice(self.write, &self.shared.write),
            read: self.read.map(|r| Bucket::new(r, now)),
            write: self.write.map(|r| Bucket::new(r, now)),
            shared,
            read_slice: slice(self.read, &self.shared.read) as usize,
            held: BytesMut::new(),
            timer: None,
            read_blocked: false,
            write_blocked: false,
            inner_paused: false,
            water_paused: false,
        }
    }
}

/// The protocol [`Throttle`] builds around `P`.
pub struct Throttled<P> {
    pub(super) inner: P,
    read: Option<Bucket>,
    write: Option<Bucket>,
    shared: Option<Arc<Shared>>,
    /// The most input handed over at once when over the rate (0: no read limit).
    read_slice: usize,
    /// The most handle-write bytes let into the write buffer at once (0: no write limit).
    write_slice: u64,
    /// Input read but not handed over yet (at most one socket read: reading is paused
    /// meanwhile).
    held: BytesMut,
    timer: Option<TimerId>,
    /// Over the read rate, or holding input: reading is paused.
    read_blocked: bool,
    /// Over the write rate: the inner protocol was told `pause_writing`, reading is paused.
    write_blocked: bool,
    /// The inner protocol's own `pause_producing` (the transport's flag is shared with ours).
    inner_paused: bool,
    /// The transport's water marks said `pause_writing`.
    water_paused: bool,
}

impl<P: fmt::Debug> fmt::Debug for Throttled<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttled")
            .field("inner", &self.inner)
            .field("held", &self.held.len())
            .field("read_blocked", &self.read_blocked)
            .field("write_blocked", &self.write_blocked)
            .finish()
    }
}

impl<P: Protocol> Throttled<P> {
    fn reading_blocked(&self) -> bool {
        self.read_blocked || self.write_blocked
    }

    /// Runs a callback of the inner protocol with the pause flag it set itself, and counts
    /// what it wrote.
    fn call<R>(&mut self, t: &mut Transport, f: impl FnOnce(&mut P, &mut Transport) -> R) -> R {
        set_paused(t, self.inner_paused);
        let (r, wrote) = counting_writes(t, |t| f(&mut self.inner, t));
        let was_paused = std::mem::replace(&mut self.inner_paused, t.is_producing_paused());
        if wrote > 0 {
            let now = Instant::now();
            let wait = self.take_write(wrote, now);
            if !wait.is_zero() {
                self.block_writing(t);
                self.arm(t, wait);
            }
            self.budget_handles(t, now);
        } else if self.write_slice != 0 && t.has_handle() && t.handle_budget().is_none() {
            // A handle was taken in this callback: its writes are throttled from now on.
            self.budget_handles(t, Instant::now());
        }
        if was_paused && !self.inner_paused && !self.held.is_empty() {
            // The protocol resumed itself: hand it what is held.
            self.arm(t, Duration::ZERO);
        }
        self.sync(t);
        r
    }

    /// Takes `n` bytes from the write buckets; returns the wait their debt asks for.
    fn take_write(&mut self, n: usize, now: Instant) -> Duration {
        let mut wait = take_own(&mut self.write, n, now);
        if let Some(s) = &self.shared {
            wait = wait.max(take_shared(&s.write, n, now));
        }
        wait
    }

    /// Lets handle writes into the write buffer as far as the write rate allows now (a slice
    /// at most, so that the factory's shared rate is shared), or stops them and arms the timer
    /// for when a slice is allowed: meanwhile they wait in the handles' bounded queue, where
    /// writers see it (`WriteError::Full`, `writable` waiting). Nothing without a handle.
    fn budget_handles(&mut self, t: &mut Transport, now: Instant) {
        if self.write_slice == 0 || !t.has_handle() {
            return;
        }
        let mut tokens = tokens_own(&mut self.write, now);
        if let Some(s) = &self.shared {
            tokens = tokens.min(tokens_shared(&s.write, now));
        }
        if tokens >= 1.0 {
            t.set_handle_budget(Some((tokens as u64).min(self.write_slice)));
        } else {
            t.set_handle_budget(Some(0));
            let rate = self.slowest_write_rate();
            let want = self.write_slice as f64 - tokens;
            self.arm(
                t,
                Duration::from_secs_f64(want / rate).max(Duration::from_millis(1)),
            );
        }
    }

    fn slowest_write_rate(&self) -> f64 {
        let shared = self.shared.as_ref().and_then(|s| s.write.as_ref());
        slowest_rate(&self.write, shared)
    }

    /// Reading is paused while the inner protocol or the throttle wants it paused.
    fn sync(&self, t: &mut Transport) {
        set_paused(t, self.inner_paused || self.reading_blocked());
    }

    fn block_writing(&mut self, t: &mut Transport) {
        if self.write_blocked {
            return;
        }
        self.write_blocked = true;
        if !self.water_paused {
            // Not through `call`: this is the throttle's own pause, it writes nothing new.
            self.inner.pause_writing(t);
        }
    }

    fn arm(&mut self, t: &mut Transport, wait: Duration) {
        if self.timer.is_none() {
            self.timer = Some(t.call_later(wait));
        }
    }

    /// The bytes the read buckets allow now (negative: in debt).
    fn read_tokens(&mut self, now: Instant) -> f64 {
        let mut tokens = tokens_own(&mut self.read, now);
        if let Some(s) = &self.shared {
            tokens = tokens.min(tokens_shared(&s.read, now));
        }
        tokens
    }

    /// Takes `n` bytes from the read buckets; returns the wait their debt asks for.
    fn take_read(&mut self, n: usize, now: Instant) -> Duration {
        let mut wait = take_own(&mut self.read, n, now);
        if let Some(s) = &self.shared {
            wait = wait.max(take_shared(&s.read, n, now));
        }
        wait
    }

    /// How much of `len` held or arriving bytes to hand over now.
    fn share(&mut self, len: usize, now: Instant) -> usize {
        let tokens = self.read_tokens(now);
        if tokens < 0.0 {
            return 0;
        }
        len.min((tokens as usize).max(self.read_slice))
    }

    /// When the read side may go on: the debt paid, and, while holding, a slice's worth.
    fn read_wait(&mut self, now: Instant) -> Duration {
        let tokens = self.read_tokens(now);
        let want = if self.held.is_empty() {
            0.0
        } else {
            self.read_slice as f64
        };
        if tokens >= want || !tokens.is_finite() {
            return Duration::ZERO;
        }
        let rate = self.slowest_read_rate();
        Duration::from_secs_f64((want - tokens) / rate).max(Duration::from_millis(1))
    }

    fn slowest_read_rate(&self) -> f64 {
        let shared = self.shared.as_ref().and_then(|s| s.read.as_ref());
        slowest_rate(&self.read, shared)
    }

    /// The throttle's timer fired: hand over held input, unblock what the rates allow now,
    /// wait more for the rest.
    fn recheck(&mut self, t: &mut Transport) {
        let now = Instant::now();
        if t.is_closing() {
            // Input is discarded while closing; so is what was held.
            self.held.clear();
        } else if !self.held.is_empty() && !self.inner_paused {
            let k = self.share(self.held.len(), now);
            if k > 0 {
                self.take_read(k, now);
                let chunk = self.held.split_to(k);
                self.call(t, |p, t| p.data_received(&chunk, t));
            }
        }
        let wait_r = if self.inner_paused && !self.held.is_empty() {
            // Held until the protocol resumes (`call` and `reading_resumed` re-arm).
            Duration::ZERO
        } else {
            self.read_wait(now)
        };
        self.read_blocked = !self.held.is_empty() || !wait_r.is_zero();
        let wait_w = self.take_write(0, now);
        if self.write_blocked && wait_w.is_zero() {
            self.write_blocked = false;
            if !self.water_paused {
                self.call(t, |p, t| p.resume_writing(t));
            }
        }
        let wait = match (wait_r.is_zero(), self.write_blocked) {
            (false, true) => wait_r.max(wait_w),
            (false, false) => wait_r,
            (true, true) => wait_w,
            (true, false) => Duration::ZERO,
        };
        if !wait.is_zero() {
            self.arm(t, wait);
        }
        self.budget_handles(t, now);
        self.sync(t);
    }
}

impl<P: Protocol> Protocol for Throttled<P> {
    fn connection_made(&mut self, t: &mut Transport) {
        self.call(t, |p, t| p.connection_made(t))
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        if self.read_slice == 0 || data.is_empty() {
            return self.call(t, |p, t| p.data_received(data, t));
        }
        if !self.held.is_empty() {
            // Reading is paused while holding; a transport that delivers anyway keeps order.
            self.held.extend_from_slice(data);
            return;
        }
        let now = Instant::now();
        let k = self.share(data.len(), now);
        let (now_part, rest) = data.split_at(k);
        self.take_read(k, now);
        if !rest.is_empty() {
            self.held.extend_from_slice(rest);
        }
        let wait = self.read_wait(now);
        if !wait.is_zero() || !self.held.is_empty() {
            self.read_blocked = true;
            self.arm(t, wait);
        }
        if !now_part.is_empty() {
            self.call(t, |p, t| p.data_received(now_part, t));
        } else {
            self.sync(t);
        }
    }

    fn eof_received(&mut self, t: &mut Transport) -> bool {
        self.call(t, |p, t| p.eof_received(t))
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        self.inner.connection_lost(reason)
    }

    fn pause_writing(&mut self, t: &mut Transport) {
        self.water_paused = true;
        if !self.write_blocked {
            self.call(t, |p, t| p.pause_writing(t));
        }
    }

    fn resume_writing(&mut self, t: &mut Transport) {
        self.water_paused = false;
        if !self.write_blocked {
            self.call(t, |p, t| p.resume_writing(t));
        }
    }

    fn timer_fired(&mut self, id: TimerId, t: &mut Transport) {
        if self.timer == Some(id) {
            self.timer = None;
            self.recheck(t);
        } else {
            self.call(t, |p, t| p.timer_fired(id, t));
        }
    }

    /// Handle writes the task applied (within the budget): charged to the write rate, and
    /// the next budget set from what is left.
    fn handle_written(&mut self, len: usize, t: &mut Transport) {
        if self.write_slice != 0 {
            let now = Instant::now();
            self.take_write(len, now);
            self.budget_handles(t, now);
        }
        self.call(t, |p, t| p.handle_written(len, t))
    }

    fn reading_resumed(&mut self, t: &mut Transport) {
        // Another task resumed reading: if the inner protocol had paused, it is told (and gets
        // what is held); the throttle's own pause stays.
        let was_paused = self.inner_paused;
        self.inner_paused = false;
        if was_paused {
            if !self.held.is_empty() {
                self.arm(t, Duration::ZERO);
            }
            self.call(t, |p, t| p.reading_resumed(t));
        } else {
            self.sync(t);
        }
    }
}
