//! Policies a public server needs, as wrappers around any [`Factory`] and its [`Protocol`]
//! (Twisted's `twisted.protocols.policies`, in the style of tower's layers).
//!
//! | policy | what it does |
//! |---|---|
//! | [`IdleTimeout`] | closes a connection on which no byte went either way for a while ([`IdleTimer`] is the same thing for a protocol to embed and steer itself: Twisted's `TimeoutMixin`) |
//! | [`LineTimeout`] | closes a connection whose current line is not finished in time (a slowloris sending a byte now and then) |
//! | [`LimitTotal`] | at most N connections at once; the next are closed at once, or served by an overflow protocol such as [`Busy`] |
//! | [`LimitPerPeer`] | at most N connections at once from one IP address |
//! | [`Throttle`] | bytes per second read and written, per connection and for the whole factory |
//! | [`TrafficLog`] | every connection's bytes in and out as `tracing` events (a hexdump at trace level) |
//! | [`Metrics`] | connections accepted, open, closed by reason, bytes, lines and panics through the [`metrics`] facade |
//!
//! Each policy is a value that wraps a factory: [`FactoryExt::with`] (or [`Policy::wrap`])
//! returns a [`Wrapped`] factory, itself a [`Factory`], so policies stack in any order and
//! go wherever a factory goes (any endpoint, TLS or PROXY included: a policy only sees the
//! [`Address`] the endpoint gives `build_protocol`, which for a PROXY endpoint is the client's).
//! The outermost policy sees a connection first: put [`Metrics`] outside the limits to count
//! the connections they refuse.
//!
//! An `Option` of a policy is a policy (`None` wraps nothing), which suits settings that may
//! be off. Nothing here runs unless it is used: a server without policies pays nothing, and
//! every policy's defaults are off, as Twisted's are.
//!
//! ```
//! use std::time::Duration;
//! use weft_core::policies::{FactoryExt, IdleTimeout, LimitPerPeer, LimitTotal, Metrics};
//! use weft_core::{factory_fn, Protocol, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
//!         t.write(data);
//!     }
//! }
//!
//! let factory = factory_fn(|_| Some(Echo))
//!     .with(IdleTimeout::new(Duration::from_secs(300)))
//!     .with(LimitPerPeer::new(256))
//!     .with(LimitTotal::new(10_000))
//!     .with(Metrics::new());
//! // reactor.listen("tcp:1234", factory).await?;
//! # let _ = factory;
//! ```

use crate::{Address, ClientFactory, DisconnectReason, Factory, Protocol, TimerId, Transport};

mod limit;
mod meter;
mod throttle;
mod timeout;
mod traffic;

pub use limit::{Busy, LimitPerPeer, LimitTotal, Limited, NoOverflow, Overflowing};
pub use meter::{Metered, Metrics, describe_metrics, names};
pub use throttle::{Throttle, Throttled};
pub use timeout::{
    IdleTimeout, IdleTimer, Idled, LineTimed, LineTimeout, TimerOutcome, timeout_connection,
};
pub use traffic::{Logged, TrafficLog};

/// A policy: builds, for each connection, a protocol that wraps the inner factory's.
///
/// Implemented by every policy of this module; implement it to write your own, or implement
/// [`Wrapper`] for one that only wraps the inner protocol (see [`TrafficLog`]'s source for a
/// short one).
pub trait Policy: Send + Sync + 'static {
    /// The protocol that wraps the inner protocol `P`.
    type Protocol<P: Protocol>: Protocol;

    /// Builds the wrapping protocol for a connection from `addr`; `inner` builds the inner
    /// one (`None`: the inner factory refused). Return `None` to refuse the connection (it is
    /// closed at once).
    fn build<P: Protocol>(
        &self,
        addr: &Address,
        inner: impl FnOnce() -> Option<P>,
    ) -> Option<Self::Protocol<P>>;

    /// Wraps `factory` in this policy.
    ///
    /// ```
    /// use weft_core::policies::{LimitTotal, Policy};
    /// use weft_core::{factory_fn, Address, Factory, Protocol, Transport};
    /// struct P;
    /// impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// let f = LimitTotal::new(1).wrap(factory_fn(|_| Some(P)));
    /// let addr = Address::Memory("x".into());
    /// let first = f.build_protocol(&addr);
    /// assert!(first.is_some());
    /// assert!(f.build_protocol(&addr).is_none()); // over the limit
    /// ```
    fn wrap<F: Factory>(self, factory: F) -> Wrapped<Self, F>
    where
        Self: Sized,
    {
        Wrapped {
            policy: self,
            inner: factory,
        }
    }
}

/// A policy that only wraps the protocol the inner factory built: it never refuses a
/// connection itself and does not look at the peer's address (a timeout, a throttle, a
/// traffic log). Implementing it implements [`Policy`]; a policy that refuses connections
/// or counts them (a limit, metrics) implements [`Policy`] instead.
///
/// ```
/// use weft_core::policies::{Policy, Wrapper};
/// use weft_core::{Address, Protocol, Transport};
///
/// /// Counts the bytes its connection received.
/// struct Counted<P> { inner: P, bytes: usize }
/// impl<P: Protocol> Protocol for Counted<P> {
///     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
///         self.bytes += data.len();
///         self.inner.data_received(data, t);
///     }
/// }
///
/// struct Counting;
/// impl Wrapper for Counting {
///     type Protocol<P: Protocol> = Counted<P>;
///     fn around<P: Protocol>(&self, inner: P) -> Counted<P> {
///         Counted { inner, bytes: 0 }
///     }
/// }
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
/// let addr = Address::Memory("x".into());
/// let counted = Counting.build(&addr, || Some(Quiet)).unwrap();
/// assert_eq!(counted.bytes, 0);
/// assert!(Counting.build(&addr, || None::<Quiet>).is_none()); // the inner factory refused
/// ```
pub trait Wrapper: Send + Sync + 'static {
    /// The protocol that wraps the inner protocol `P`.
    type Protocol<P: Protocol>: Protocol;

    /// Wraps `inner`, the protocol the inner factory built for a new connection.
    fn around<P: Protocol>(&self, inner: P) -> Self::Protocol<P>;
}

impl<W: Wrapper> Policy for W {
    type Protocol<P: Protocol> = W::Protocol<P>;

    fn build<P: Protocol>(
        &self,
        _: &Address,
        inner: impl FnOnce() -> Option<P>,
    ) -> Option<W::Protocol<P>> {
        inner().map(|p| self.around(p))
    }
}

/// Runs `f` (a callback of a wrapped protocol); what it returned and how many bytes it added
/// to the transport's write buffer (what the timeouts, the throttle and the metrics count).
#[inline]
fn counting_writes<R>(t: &mut Transport, f: impl FnOnce(&mut Transport) -> R) -> (R, usize) {
    let before = t.write_buffer_size();
    let r = f(t);
    (r, t.write_buffer_size().saturating_sub(before))
}

/// Wraps factories in policies: `factory.with(policy)`.
///
/// See the [module docs](self) for an example.
pub trait FactoryExt: Factory + Sized {
    /// This factory wrapped in `policy`.
    ///
    /// See the [module docs](self) for an example.
    fn with<Pol: Policy>(self, policy: Pol) -> Wrapped<Pol, Self> {
        policy.wrap(self)
    }
}

impl<F: Factory> FactoryExt for F {}

/// A factory wrapped in a [`Policy`]; made by [`FactoryExt::with`].
///
/// It starts and stops with its inner factory, and is a [`ClientFactory`] when the inner one
/// is, so policies apply to clients too.
#[derive(Debug)]
pub struct Wrapped<Pol, F> {
    policy: Pol,
    inner: F,
}

impl<Pol, F> Wrapped<Pol, F> {
    /// The policy.
    ///
    /// ```
    /// use weft_core::policies::{FactoryExt, LimitTotal};
    /// # use weft_core::{factory_fn, Protocol, Transport};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
    /// # use weft_core::{Address, Factory};
    /// let f = factory_fn(|_| Some(P)).with(LimitTotal::new(5));
    /// assert_eq!(f.policy().open(), 0);
    /// // The factory it wraps builds the unwrapped protocol.
    /// let p: Option<P> = f.inner().build_protocol(&Address::Memory("x".into()));
    /// assert!(p.is_some());
    /// ```
    pub fn policy(&self) -> &Pol {
        &self.policy
    }

    /// The wrapped factory.
    ///
    /// See [`policy`](Self::policy) for an example.
    pub fn inner(&self) -> &F {
        &self.inner
    }
}

impl<Pol: Policy, F: Factory> Factory for Wrapped<Pol, F> {
    type Protocol = Pol::Protocol<F::Protocol>;

    fn build_protocol(&self, addr: &Address) -> Option<Self::Protocol> {
        self.policy.build(addr, || self.inner.build_protocol(addr))
    }

    fn start_factory(&self) {
        self.inner.start_factory()
    }

    fn stop_factory(&self) {
        self.inner.stop_factory()
    }
}

impl<Pol: Policy, F: ClientFactory> ClientFactory for Wrapped<Pol, F> {
    fn started_connecting(&self, addr: &Address) {
        self.inner.started_connecting(addr)
    }
    fn client_connection_failed(&self, addr: &Address, err: &std::io::Error) {
        self.inner.client_connection_failed(addr, err)
    }
    fn client_connection_lost(&self, addr: &Address, reason: &DisconnectReason) {
        self.inner.client_connection_lost(addr, reason)
    }
}

/// `None` is no policy at all: the inner protocol is used as it is.
impl<Pol: Policy> Policy for Option<Pol> {
    type Protocol<P: Protocol> = Either<Pol::Protocol<P>, P>;

    fn build<P: Protocol>(
        &self,
        addr: &Address,
        inner: impl FnOnce() -> Option<P>,
    ) -> Option<Self::Protocol<P>> {
        match self {
            Some(pol) => pol.build(addr, inner).map(Either::Left),
            None => inner().map(Either::Right),
        }
    }
}

/// A policy whose protocol is built on the heap (`Box`): for an `Option` of a policy that is
/// usually off, since an `Option`'s protocol is as large as the policy's, `Some` or `None`.
/// Boxed, the `None` case costs a pointer's room in every connection instead (and the `Some`
/// case one allocation per connection).
///
/// ```
/// use weft_core::policies::{Boxed, FactoryExt, Throttle};
/// use weft_core::{factory_fn, Protocol, Transport};
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
/// let rate: Option<u64> = None; // from a setting
/// let f = factory_fn(|_| Some(P)).with(rate.map(|r| Boxed(Throttle::new().per_connection(r))));
/// ```
#[derive(Debug, Clone)]
pub struct Boxed<Pol>(pub Pol);

impl<Pol: Policy> Policy for Boxed<Pol> {
    type Protocol<P: Protocol> = Box<Pol::Protocol<P>>;

    fn build<P: Protocol>(
        &self,
        addr: &Address,
        inner: impl FnOnce() -> Option<P>,
    ) -> Option<Self::Protocol<P>> {
        self.0.build(addr, inner).map(Box::new)
    }
}

/// One of two protocols, chosen per connection: what an `Option` of a policy builds, and
/// what [`LimitTotal`] builds with an overflow protocol.
#[derive(Debug)]
pub enum Either<A, B> {
    /// The first kind.
    Left(A),
    /// The second kind.
    Right(B),
}

macro_rules! either {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            Either::Left($p) => $e,
            Either::Right($p) => $e,
        }
    };
}

impl<A: Protocol, B: Protocol> Protocol for Either<A, B> {
    fn connection_made(&mut self, t: &mut Transport) {
        either!(self, p => p.connection_made(t))
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        either!(self, p => p.data_received(data, t))
    }
    fn eof_received(&mut self, t: &mut Transport) -> bool {
        either!(self, p => p.eof_received(t))
    }
    fn connection_lost(&mut self, reason: DisconnectReason) {
        either!(self, p => p.connection_lost(reason))
    }
    fn pause_writing(&mut self, t: &mut Transport) {
        either!(self, p => p.pause_writing(t))
    }
    fn resume_writing(&mut self, t: &mut Transport) {
        either!(self, p => p.resume_writing(t))
    }
    fn timer_fired(&mut self, id: TimerId, t: &mut Transport) {
        either!(self, p => p.timer_fired(id, t))
    }
    fn reading_resumed(&mut self, t: &mut Transport) {
        either!(self, p => p.reading_resumed(t))
    }
    fn handle_written(&mut self, len: usize, t: &mut Transport) {
        either!(self, p => p.handle_written(len, t))
    }
}

/// Forwards the listed callbacks of a wrapper protocol (a struct with an `inner` field) to
/// its inner protocol unchanged; `forward!(call: ...)` forwards them through the wrapper's own
/// `fn call(&mut self, t, f)`, which runs `f` on the inner protocol with its bookkeeping around.
macro_rules! forward {
    (call: $($cb:ident),+ $(,)?) => {
        $($crate::policies::forward!(@call $cb);)+
    };
    (@call eof_received) => {
        fn eof_received(&mut self, t: &mut $crate::Transport) -> bool {
            self.call(t, |p, t| p.eof_received(t))
        }
    };
    (@call pause_writing) => {
        fn pause_writing(&mut self, t: &mut $crate::Transport) {
            self.call(t, |p, t| p.pause_writing(t))
        }
    };
    (@call resume_writing) => {
        fn resume_writing(&mut self, t: &mut $crate::Transport) {
            self.call(t, |p, t| p.resume_writing(t))
        }
    };
    (@call timer_fired) => {
        fn timer_fired(&mut self, id: $crate::TimerId, t: &mut $crate::Transport) {
            self.call(t, |p, t| p.timer_fired(id, t))
        }
    };
    (@call handle_written) => {
        fn handle_written(&mut self, len: usize, t: &mut $crate::Transport) {
            self.call(t, |p, t| p.handle_written(len, t))
        }
    };
    (@call reading_resumed) => {
        fn reading_resumed(&mut self, t: &mut $crate::Transport) {
            self.call(t, |p, t| p.reading_resumed(t))
        }
    };
    (connection_made) => {
        fn connection_made(&mut self, t: &mut $crate::Transport) {
            self.inner.connection_made(t)
        }
    };
    (data_received) => {
        fn data_received(&mut self, data: &[u8], t: &mut $crate::Transport) {
            self.inner.data_received(data, t)
        }
    };
    (eof_received) => {
        fn eof_received(&mut self, t: &mut $crate::Transport) -> bool {
            self.inner.eof_received(t)
        }
    };
    (connection_lost) => {
        fn connection_lost(&mut self, reason: $crate::DisconnectReason) {
            self.inner.connection_lost(reason)
        }
    };
    (pause_writing) => {
        fn pause_writing(&mut self, t: &mut $crate::Transport) {
            self.inner.pause_writing(t)
        }
    };
    (resume_writing) => {
        fn resume_writing(&mut self, t: &mut $crate::Transport) {
            self.inner.resume_writing(t)
        }
    };
    (timer_fired) => {
        fn timer_fired(&mut self, id: $crate::TimerId, t: &mut $crate::Transport) {
            self.inner.timer_fired(id, t)
        }
    };
    (handle_written) => {
        fn handle_written(&mut self, len: usize, t: &mut $crate::Transport) {
            self.inner.handle_written(len, t)
        }
    };
    (reading_resumed) => {
        fn reading_resumed(&mut self, t: &mut $crate::Transport) {
            self.inner.reading_resumed(t)
        }
    };
    ($($cb:ident),+ $(,)?) => {
        $($crate::policies::forward!($cb);)+
    };
}
pub(crate) use forward;

/// `inner()`, the wrapped protocol, for each policy's protocol.
macro_rules! inner_accessors {
    ($($ty:ident),+) => {$(
        impl<P> $ty<P> {
            /// The wrapped protocol.
            ///
            /// See [`Limited`](crate::policies::Limited) for an example (every policy's
            /// protocol has the same two accessors).
            pub fn inner(&self) -> &P {
                &self.inner
            }

            /// The wrapped protocol, mutably.
            ///
            /// See [`Limited`](crate::policies::Limited) for an example.
            pub fn inner_mut(&mut self) -> &mut P {
                &mut self.inner
            }
        }
    )+};
}

inner_accessors!(Idled, LineTimed, Limited, Throttled, Logged, Metered);

#[cfg(test)]
mod tests;
