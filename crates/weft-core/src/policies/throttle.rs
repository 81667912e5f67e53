//! Bandwidth throttling (Twisted's `ThrottlingFactory`): token buckets per connection and
//! per factory; over the rate, reading pauses and the protocol is asked to stop writing.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::Policy;
use crate::{Address, DisconnectReason, Protocol, TimerId, Transport};

/// Limits the bytes per second read from and written to peers, per connection and for all the
/// factory's connections together. Nothing is dropped or refused: over the read rate the
/// connection stops reading (the peer's sends back up in TCP), and over the write rate the
/// protocol gets [`pause_writing`](Protocol::pause_writing), as for a slow reader, and its
/// input pauses too, until the rate allows more (then `resume_writing`).
///
/// The rates are averages: a connection may go a tenth of a second's worth of bytes ahead
/// (a burst), and a read takes what the socket has (up to 64 KiB), after which the
/// connection waits long enough to pay it back. Bytes written from other tasks through a
/// [`TransportHandle`](crate::TransportHandle) are not counted.
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
/// # let _ = factory;
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
    /// ```
    /// let t = weft_core::policies::Throttle::new().read_per_connection(4096);
    /// # let _ = t;
    /// ```
    pub fn read_per_connection(mut self, bytes_per_sec: u64) -> Self {
        self.read = Some(bytes_per_sec.max(1));
        self
    }

    /// Each connection writes at most `bytes_per_sec`.
    ///
    /// ```
    /// let t = weft_core::policies::Throttle::new().write_per_connection(4096);
    /// # let _ = t;
    /// ```
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
    /// ```
    /// let t = weft_core::policies::Throttle::new().write_total(1 << 20);
    /// # let _ = t;
    /// ```
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

impl Policy for Throttle {
    type Protocol<P: Protocol> = Throttled<P>;

    fn build<P: Protocol>(
        &self,
        _: &Address,
        inner: impl FnOnce() -> Option<P>,
    ) -> Option<Throttled<P>> {
        let now = Instant::now();
        let shared = (self.shared.read.is_some() || self.shared.write.is_some())
            .then(|| self.shared.clone());
        Some(Throttled {
            inner: inner()?,
            read: self.read.map(|r| Bucket::new(r, now)),
            write: self.write.map(|r| Bucket::new(r, now)),
            shared,
            timer: None,
            read_blocked: false,
            write_blocked: false,
            inner_paused: false,
            water_paused: false,
        })
    }
}

/// The protocol [`Throttle`] builds around `P`.
pub struct Throttled<P> {
    inner: P,
    read: Option<Bucket>,
    write: Option<Bucket>,
    shared: Option<Arc<Shared>>,
    timer: Option<TimerId>,
    /// Over the read rate: reading is paused.
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
        let before = t.write_buffer_size();
        let r = f(&mut self.inner, t);
        self.inner_paused = t.is_producing_paused();
        let wrote = t.write_buffer_size().saturating_sub(before);
        if wrote > 0 {
            let now = Instant::now();
            let mut wait = take_own(&mut self.write, wrote, now);
            if let Some(s) = &self.shared {
                wait = wait.max(take_shared(&s.write, wrote, now));
            }
            if !wait.is_zero() {
                self.block_writing(t);
                self.arm(t, wait);
            }
        }
        self.sync(t);
        r
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

    /// The throttle's timer fired: unblock what the rates allow now, wait more for the rest.
    fn recheck(&mut self, t: &mut Transport) {
        let now = Instant::now();
        let mut wait_r = take_own(&mut self.read, 0, now);
        let mut wait_w = take_own(&mut self.write, 0, now);
        if let Some(s) = &self.shared {
            wait_r = wait_r.max(take_shared(&s.read, 0, now));
            wait_w = wait_w.max(take_shared(&s.write, 0, now));
        }
        if self.read_blocked && wait_r.is_zero() {
            self.read_blocked = false;
        }
        if self.write_blocked && wait_w.is_zero() {
            self.write_blocked = false;
            if !self.water_paused {
                self.call(t, |p, t| p.resume_writing(t));
            }
        }
        let wait = match (self.read_blocked, self.write_blocked) {
            (true, true) => wait_r.max(wait_w),
            (true, false) => wait_r,
            (false, true) => wait_w,
            (false, false) => Duration::ZERO,
        };
        if !wait.is_zero() {
            self.arm(t, wait);
        }
        self.sync(t);
    }
}

impl<P: Protocol> Protocol for Throttled<P> {
    fn connection_made(&mut self, t: &mut Transport) {
        self.call(t, |p, t| p.connection_made(t))
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        let now = Instant::now();
        let mut wait = take_own(&mut self.read, data.len(), now);
        if let Some(s) = &self.shared {
            wait = wait.max(take_shared(&s.read, data.len(), now));
        }
        if !wait.is_zero() {
            self.read_blocked = true;
            self.arm(t, wait);
        }
        self.call(t, |p, t| p.data_received(data, t))
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

    fn reading_resumed(&mut self, t: &mut Transport) {
        // Another task resumed reading: if the inner protocol had paused, it is told; the
        // throttle's own pause stays.
        let was_paused = self.inner_paused;
        self.inner_paused = false;
        if was_paused {
            self.call(t, |p, t| p.reading_resumed(t));
        } else {
            self.sync(t);
        }
    }
}
