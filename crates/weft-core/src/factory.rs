//! Factories build one protocol per connection: [`Factory`], [`ClientFactory`],
//! [`factory_fn`], and the reconnecting client's [`Backoff`].

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::{Address, DisconnectReason, Protocol};

/// Builds one [`Protocol`] per connection (Twisted's `Factory`), and holds whatever the
/// connections share (a `Factory` is shared by all its connections, so its methods take `&self`:
/// use atomics or a `Mutex` for shared state).
///
/// [`build_protocol`](Self::build_protocol) returning `None` refuses the connection: it is
/// closed at once. [`start_factory`](Self::start_factory) runs when the first port or connector
/// starts using the factory and [`stop_factory`](Self::stop_factory) when the last one stops,
/// once each however many ports share it.
///
/// For a one-line factory, see [`factory_fn`].
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use weft_core::{Address, Factory, Protocol, Transport};
///
/// struct Counter(usize);
/// impl Protocol for Counter {
///     fn connection_made(&mut self, t: &mut Transport) {
///         t.write(format!("you are visitor {}\r\n", self.0));
///         t.lose_connection();
///     }
///     fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
/// }
///
/// #[derive(Default)]
/// struct CounterFactory {
///     visitors: AtomicUsize,
/// }
/// impl Factory for CounterFactory {
///     type Protocol = Counter;
///     fn build_protocol(&self, _addr: &Address) -> Option<Counter> {
///         Some(Counter(self.visitors.fetch_add(1, Ordering::Relaxed) + 1))
///     }
/// }
/// let f = CounterFactory::default();
/// let addr = Address::Memory("peer".into());
/// assert_eq!(f.build_protocol(&addr).map(|p| p.0), Some(1));
/// assert_eq!(f.build_protocol(&addr).map(|p| p.0), Some(2));
/// ```
pub trait Factory: Send + Sync + 'static {
    /// The protocol built for each connection.
    type Protocol: Protocol;

    /// Builds the protocol for a new connection from `addr`; `None` refuses it.
    fn build_protocol(&self, addr: &Address) -> Option<Self::Protocol>;

    /// Called once before the first port or connection uses this factory.
    fn start_factory(&self) {}

    /// Called once after the last port or connection using this factory stopped.
    fn stop_factory(&self) {}

    /// Identifies the factory instance for the start/stop reference count; an `Arc<F>` has the
    /// identity of its `F`, so ports sharing one `Arc` share one count.
    #[doc(hidden)]
    fn factory_id(&self) -> usize {
        self as *const Self as *const () as usize
    }
}

/// A shared factory: pass `Arc<F>` clones to several ports and the factory starts and stops once.
impl<F: Factory> Factory for Arc<F> {
    type Protocol = F::Protocol;
    fn build_protocol(&self, addr: &Address) -> Option<F::Protocol> {
        (**self).build_protocol(addr)
    }
    fn start_factory(&self) {
        (**self).start_factory()
    }
    fn stop_factory(&self) {
        (**self).stop_factory()
    }
    fn factory_id(&self) -> usize {
        (**self).factory_id()
    }
}

impl<F: ClientFactory> ClientFactory for Arc<F> {
    fn started_connecting(&self, addr: &Address) {
        (**self).started_connecting(addr)
    }
    fn client_connection_failed(&self, addr: &Address, err: &io::Error) {
        (**self).client_connection_failed(addr, err)
    }
    fn client_connection_lost(&self, addr: &Address, reason: &DisconnectReason) {
        (**self).client_connection_lost(addr, reason)
    }
}

/// A client-side factory: also told when a connection attempt fails and when a connection made
/// from it is lost (Twisted's `ClientFactory`).
///
/// ```
/// use weft_core::{factory_fn, Address, ClientFactory, DisconnectReason, Factory, Protocol, Transport};
///
/// struct Quiet;
/// impl Protocol for Quiet {
///     fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
/// }
/// struct Client;
/// impl Factory for Client {
///     type Protocol = Quiet;
///     fn build_protocol(&self, _: &Address) -> Option<Quiet> { Some(Quiet) }
/// }
/// impl ClientFactory for Client {
///     fn client_connection_failed(&self, addr: &Address, err: &std::io::Error) {
///         tracing::warn!(%addr, %err, "could not connect");
///     }
/// }
/// ```
pub trait ClientFactory: Factory {
    /// A connection attempt to `addr` is starting.
    fn started_connecting(&self, addr: &Address) {
        let _ = addr;
    }

    /// A connection attempt to `addr` failed (refused, timed out, unreachable...).
    fn client_connection_failed(&self, addr: &Address, err: &io::Error) {
        let _ = (addr, err);
    }

    /// A connection made from this factory ended (called after the protocol's own
    /// `connection_lost`).
    fn client_connection_lost(&self, addr: &Address, reason: &DisconnectReason) {
        let _ = (addr, reason);
    }
}

/// A [`Factory`] (and [`ClientFactory`] with no-op hooks) from a closure; made by
/// [`factory_fn`].
///
/// See [`factory_fn`] for an example.
pub struct FnFactory<F> {
    f: F,
}

impl<F> fmt::Debug for FnFactory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnFactory")
    }
}

/// A one-line factory: the closure gets the peer address and returns the protocol, or `None`
/// to refuse the connection.
///
/// ```
/// use weft_core::{factory_fn, Factory, Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, data: &[u8], t: &mut Transport) { t.write(data) }
/// }
/// let factory = factory_fn(|_addr| Some(Echo));
/// assert!(factory.build_protocol(&weft_core::Address::Memory("x".into())).is_some());
/// ```
pub fn factory_fn<P, F>(f: F) -> FnFactory<F>
where
    P: Protocol,
    F: Fn(&Address) -> Option<P> + Send + Sync + 'static,
{
    FnFactory { f }
}

impl<P, F> Factory for FnFactory<F>
where
    P: Protocol,
    F: Fn(&Address) -> Option<P> + Send + Sync + 'static,
{
    type Protocol = P;
    fn build_protocol(&self, addr: &Address) -> Option<P> {
        (self.f)(addr)
    }
}

impl<P, F> ClientFactory for FnFactory<F>
where
    P: Protocol,
    F: Fn(&Address) -> Option<P> + Send + Sync + 'static,
{
}

/// A factory that owns state shared by all its connections and hands it to each protocol it
/// builds: Twisted's pattern (`self.factory.clients`) with the state explicit. Made by
/// [`shared_factory`].
///
/// See [`shared_factory`] for an example.
pub struct SharedFactory<S, F> {
    state: S,
    build: F,
}

impl<S: fmt::Debug, F> fmt::Debug for SharedFactory<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedFactory")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<S, F> SharedFactory<S, F> {
    /// The shared state (to reach the connections from outside them, e.g. an announcement
    /// from the server's own code).
    ///
    /// See [`shared_factory`] for an example.
    pub fn state(&self) -> &S {
        &self.state
    }
}

/// A factory that owns `state` (shared by every connection: a [`Registry`](crate::Registry),
/// an `Arc<Mutex<...>>`, counters) and builds each protocol with `build(&state, peer)`;
/// `None` refuses the connection. Share it between ports, or keep a handle on the state, by
/// wrapping it in an `Arc`.
///
/// ```
/// use std::sync::Arc;
/// use weft_core::testing::MemoryTransport;
/// use weft_core::{shared_factory, Address, Factory, Membership, Protocol, Registry, Transport};
///
/// /// Every chunk a client sends goes to every other client.
/// struct Relay {
///     room: Registry,
///     me: Option<Membership>,
/// }
/// impl Protocol for Relay {
///     fn connection_made(&mut self, t: &mut Transport) {
///         self.me = Some(self.room.join(t));
///     }
///     fn data_received(&mut self, data: &[u8], _t: &mut Transport) {
///         if let Some(me) = &self.me {
///             me.broadcast_others(data.to_vec());
///         }
///     }
/// }
///
/// let factory = Arc::new(shared_factory(Registry::new(), |room: &Registry, _peer: &Address| {
///     Some(Relay { room: room.clone(), me: None })
/// }));
/// let peer = Address::Memory("peer".into());
/// let _a = MemoryTransport::new(factory.build_protocol(&peer).unwrap());
/// let _b = MemoryTransport::new(factory.build_protocol(&peer).unwrap());
/// assert_eq!(factory.state().len(), 2); // the server's code reaches the room too
/// ```
pub fn shared_factory<S, P, F>(state: S, build: F) -> SharedFactory<S, F>
where
    S: Send + Sync + 'static,
    P: Protocol,
    F: Fn(&S, &Address) -> Option<P> + Send + Sync + 'static,
{
    SharedFactory { state, build }
}

impl<S, P, F> Factory for SharedFactory<S, F>
where
    S: Send + Sync + 'static,
    P: Protocol,
    F: Fn(&S, &Address) -> Option<P> + Send + Sync + 'static,
{
    type Protocol = P;
    fn build_protocol(&self, addr: &Address) -> Option<P> {
        (self.build)(&self.state, addr)
    }
}

impl<S, P, F> ClientFactory for SharedFactory<S, F>
where
    S: Send + Sync + 'static,
    P: Protocol,
    F: Fn(&S, &Address) -> Option<P> + Send + Sync + 'static,
{
}

/// Reference-counts the users of each factory (by [`Factory::factory_id`]), so that
/// `start_factory`/`stop_factory` run once however many ports share it (Twisted's `numPorts`).
fn users() -> &'static Mutex<HashMap<usize, usize>> {
    static USERS: OnceLock<Mutex<HashMap<usize, usize>>> = OnceLock::new();
    USERS.get_or_init(Default::default)
}

/// Holds one "use" of a factory; calls `start_factory` on the first and `stop_factory` when the
/// last is dropped.
pub(crate) struct FactoryUse<F: Factory> {
    factory: Arc<F>,
}

impl<F: Factory> FactoryUse<F> {
    pub(crate) fn new(factory: Arc<F>) -> Self {
        let key = factory.factory_id();
        let first = {
            let mut m = users().lock().unwrap_or_else(|e| e.into_inner());
            let n = m.entry(key).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first {
            tracing::debug!(factory = std::any::type_name::<F>(), "starting factory");
            factory.start_factory();
        }
        Self { factory }
    }

    pub(crate) fn factory(&self) -> &Arc<F> {
        &self.factory
    }
}

impl<F: Factory> Drop for FactoryUse<F> {
    fn drop(&mut self) {
        let key = self.factory.factory_id();
        let last = {
            let mut m = users().lock().unwrap_or_else(|e| e.into_inner());
            match m.get_mut(&key) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    m.remove(&key);
                    true
                }
                None => false,
            }
        };
        if last {
            tracing::debug!(factory = std::any::type_name::<F>(), "stopping factory");
            self.factory.stop_factory();
        }
    }
}

/// The delays between reconnection attempts (Twisted's `ReconnectingClientFactory` policy),
/// with one fix: a delay is never above `max_delay` (Twisted applies its jitter after the cap).
///
/// Defaults are Twisted's: initial delay 1 s, max delay 3600 s, factor e, jitter 0.1196,
/// no retry limit.
///
/// ```
/// use std::time::Duration;
/// use weft_core::Backoff;
///
/// let mut b = Backoff::new().jitter(0.0).max_delay(Duration::from_secs(10)).max_retries(Some(4));
/// let secs: Vec<f64> = std::iter::from_fn(|| b.next_delay()).map(|d| d.as_secs_f64()).collect();
/// assert_eq!(secs.len(), 4);
/// assert!((secs[1] - std::f64::consts::E).abs() < 1e-9);
/// assert_eq!(secs[3], 10.0);
/// b.reset_delay();
/// assert_eq!(b.next_delay(), Some(Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Backoff {
    initial: f64,
    max: f64,
    factor: f64,
    jitter: f64,
    max_retries: Option<u32>,
    delay: f64,
    retries: u32,
    rng: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// Twisted's defaults.
    ///
    /// See [`Backoff`] for an example.
    pub fn new() -> Self {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            | 1;
        Self {
            initial: 1.0,
            max: 3600.0,
            factor: std::f64::consts::E,
            jitter: 0.119_626_565_582,
            max_retries: None,
            delay: 1.0,
            retries: 0,
            rng: seed,
        }
    }

    /// The first delay.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let mut b = weft_core::Backoff::new().jitter(0.0).initial_delay(Duration::from_millis(250));
    /// assert_eq!(b.next_delay(), Some(Duration::from_millis(250)));
    /// ```
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.initial = d.as_secs_f64();
        self.delay = self.initial;
        self
    }

    /// No delay is ever longer than this.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let mut b = weft_core::Backoff::new().max_delay(Duration::from_secs(2));
    /// assert!((0..10).filter_map(|_| b.next_delay()).all(|d| d <= Duration::from_secs(2)));
    /// ```
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max = d.as_secs_f64();
        self
    }

    /// Each delay is the previous one times this factor (before jitter).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let mut b = weft_core::Backoff::new().jitter(0.0).factor(2.0);
    /// let d: Vec<_> = (0..3).filter_map(|_| b.next_delay()).collect();
    /// assert_eq!(d, [Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4)]);
    /// ```
    pub fn factor(mut self, f: f64) -> Self {
        self.factor = f;
        self
    }

    /// Relative standard deviation of the random jitter (0 for none).
    ///
    /// ```
    /// let mut b = weft_core::Backoff::new().jitter(0.0);
    /// assert_eq!(b.next_delay(), Some(std::time::Duration::from_secs(1)));
    /// ```
    pub fn jitter(mut self, j: f64) -> Self {
        self.jitter = j.max(0.0);
        self
    }

    /// Give up after this many retries (`None`: never).
    ///
    /// ```
    /// let mut b = weft_core::Backoff::new().max_retries(Some(1));
    /// assert!(b.next_delay().is_some());
    /// assert!(b.next_delay().is_none());
    /// ```
    pub fn max_retries(mut self, n: Option<u32>) -> Self {
        self.max_retries = n;
        self
    }

    /// Seeds the jitter's random generator (for reproducible tests).
    ///
    /// ```
    /// let mut a = weft_core::Backoff::new().seed(7);
    /// let mut b = weft_core::Backoff::new().seed(7);
    /// assert_eq!(a.next_delay(), b.next_delay());
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = seed | 1;
        self
    }

    /// Retries made since the last reset.
    ///
    /// ```
    /// let mut b = weft_core::Backoff::new();
    /// b.next_delay();
    /// assert_eq!(b.retries(), 1);
    /// ```
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Back to the initial delay and no retries counted (Twisted's `resetDelay`, to call after
    /// a successful connection).
    ///
    /// See [`Backoff`] for an example.
    pub fn reset_delay(&mut self) {
        self.delay = self.initial;
        self.retries = 0;
    }

    /// The delay before the next attempt, or `None` once `max_retries` is used up.
    ///
    /// See [`Backoff`] for an example.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.retries += 1;
        if self.max_retries.is_some_and(|m| self.retries > m) {
            return None;
        }
        let base = self.delay.min(self.max);
        let jittered = if self.jitter > 0.0 {
            base + base * self.jitter * self.normal()
        } else {
            base
        };
        self.delay = (self.delay * self.factor).min(self.max);
        Some(Duration::from_secs_f64(jittered.clamp(0.0, self.max)))
    }

    fn uniform(&mut self) -> f64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal variate (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}
