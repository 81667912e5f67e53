//! The [`Protocol`] trait and the engine that calls it (shared by sockets and the in-memory
//! transport).

use std::panic::{AssertUnwindSafe, catch_unwind};

use tokio::time::Instant;

use crate::reason::panic_message;
use crate::transport::Command;
use crate::{DisconnectReason, TimerId, Transport};

/// One instance per connection: the callbacks of a byte-stream protocol (Twisted's `Protocol`,
/// asyncio's `Protocol`).
///
/// weft calls, in this order: [`connection_made`](Self::connection_made) once,
/// then [`data_received`](Self::data_received) for every chunk read (chunks have any size: do not
/// assume a chunk is a message), perhaps [`eof_received`](Self::eof_received) when the peer
/// half-closes, and [`connection_lost`](Self::connection_lost) **exactly once**, whatever ended
/// the connection (even a panic in another callback).
///
/// Callbacks are synchronous and run on the connection's own task: they must not block. Write
/// with the [`Transport`] they are given; for async work, take a
/// [`Transport::handle`] into a spawned task and write back through it.
///
/// A panic in a callback closes that connection only, with
/// [`DisconnectReason::Panicked`]; it is logged and the server keeps serving.
///
/// # Example: the seed's `SimpleLogger`
///
/// ```
/// use weft_core::{DisconnectReason, Protocol, Transport};
///
/// #[derive(Default)]
/// struct SimpleLogger {
///     peer: String,
///     log: Vec<String>,
/// }
///
/// impl Protocol for SimpleLogger {
///     fn connection_made(&mut self, t: &mut Transport) {
///         self.peer = t.peer().to_string();
///         self.log.push(format!("Got connection from {}", self.peer));
///     }
///     fn data_received(&mut self, data: &[u8], _t: &mut Transport) {
///         self.log.push(String::from_utf8_lossy(data).into_owned());
///     }
///     fn connection_lost(&mut self, _reason: DisconnectReason) {
///         self.log.push(format!("{} disconnected", self.peer));
///     }
/// }
///
/// let mut conn = weft_core::testing::MemoryTransport::new(SimpleLogger::default());
/// conn.feed(b"hello");
/// conn.lose(DisconnectReason::ConnectionDone);
/// assert_eq!(
///     conn.protocol().log,
///     ["Got connection from 127.0.0.1:54321", "hello", "127.0.0.1:54321 disconnected"]
/// );
/// ```
pub trait Protocol: Send + 'static {
    /// The connection is up. Send a greeting here, arm timers, set water marks.
    fn connection_made(&mut self, transport: &mut Transport) {
        let _ = transport;
    }

    /// Bytes arrived. `data` is borrowed from the read buffer: copy what you keep.
    fn data_received(&mut self, data: &[u8], transport: &mut Transport);

    /// The peer half-closed (sent EOF). Return `false` (the default) to close once every
    /// pending byte has been written (`connection_lost(ConnectionDone)` follows); return `true`
    /// to keep the connection open for writing and close it yourself later.
    ///
    /// Replies already written are never lost to a half-close: a client that sends a request
    /// and shuts down its write side gets every reply, then EOF.
    fn eof_received(&mut self, transport: &mut Transport) -> bool {
        let _ = transport;
        false
    }

    /// The connection is gone. Called exactly once; `reason` says why.
    fn connection_lost(&mut self, reason: DisconnectReason) {
        let _ = reason;
    }

    /// The outgoing buffer went above its high water mark (a slow reader): stop producing
    /// output until [`resume_writing`](Self::resume_writing). weft stops reading from the peer
    /// meanwhile.
    fn pause_writing(&mut self, transport: &mut Transport) {
        let _ = transport;
    }

    /// The outgoing buffer drained below its low water mark.
    fn resume_writing(&mut self, transport: &mut Transport) {
        let _ = transport;
    }

    /// A timer armed with [`Transport::call_later`] fired.
    fn timer_fired(&mut self, timer: TimerId, transport: &mut Transport) {
        let _ = (timer, transport);
    }

    /// Reading was paused and another task resumed it through
    /// [`TransportHandle::resume_producing`](crate::TransportHandle::resume_producing). (A
    /// resume the protocol makes itself, with [`Transport::resume_producing`], does not call
    /// this: it already knows.) A protocol that holds input while paused delivers it here.
    fn reading_resumed(&mut self, transport: &mut Transport) {
        let _ = transport;
    }

    /// Bytes written through [`TransportHandle`](crate::TransportHandle)s (from other tasks)
    /// were just added to the write buffer: `len` bytes, the last `len` of it, by the
    /// commands the connection's task applied in one go (one call per batch, not per write).
    ///
    /// Nothing to do for most protocols (the bytes are sent like any others): it is how a
    /// wrapper sees traffic it did not write itself. The policies use it to count handle
    /// writes as activity ([`IdleTimeout`](crate::policies::IdleTimeout)), against the write
    /// rate ([`Throttle`](crate::policies::Throttle)), and as bytes out
    /// ([`TrafficLog`](crate::policies::TrafficLog), [`Metrics`](crate::policies::Metrics)).
    /// A wrapper protocol should forward it to the protocol it wraps.
    ///
    /// ```
    /// use weft_core::testing::MemoryTransport;
    /// use weft_core::{Protocol, Transport};
    ///
    /// #[derive(Default)]
    /// struct Counting { from_handles: usize }
    /// impl Protocol for Counting {
    ///     fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
    ///     fn handle_written(&mut self, len: usize, _: &mut Transport) {
    ///         self.from_handles += len;
    ///     }
    /// }
    /// let mut conn = MemoryTransport::new(Counting::default());
    /// let h = conn.transport_mut().handle();
    /// h.write("hello ").unwrap();
    /// h.write("world").unwrap();
    /// conn.run_pending(); // the connection's task applies both: one call
    /// assert_eq!(conn.protocol().from_handles, 11);
    /// ```
    fn handle_written(&mut self, len: usize, transport: &mut Transport) {
        let _ = (len, transport);
    }
}

impl<P: Protocol + ?Sized> Protocol for Box<P> {
    fn connection_made(&mut self, t: &mut Transport) {
        (**self).connection_made(t)
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        (**self).data_received(data, t)
    }
    fn eof_received(&mut self, t: &mut Transport) -> bool {
        (**self).eof_received(t)
    }
    fn connection_lost(&mut self, reason: DisconnectReason) {
        (**self).connection_lost(reason)
    }
    fn pause_writing(&mut self, t: &mut Transport) {
        (**self).pause_writing(t)
    }
    fn resume_writing(&mut self, t: &mut Transport) {
        (**self).resume_writing(t)
    }
    fn timer_fired(&mut self, id: TimerId, t: &mut Transport) {
        (**self).timer_fired(id, t)
    }
    fn reading_resumed(&mut self, t: &mut Transport) {
        (**self).reading_resumed(t)
    }
    fn handle_written(&mut self, len: usize, t: &mut Transport) {
        (**self).handle_written(len, t)
    }
}

/// A protocol and its transport: calls the callbacks, catches panics, keeps the water-mark state
/// and guarantees one `connection_lost`.
pub(crate) struct Conn<P> {
    pub(crate) protocol: P,
    pub(crate) transport: Transport,
    lost: bool,
}

impl<P: Protocol> Conn<P> {
    pub(crate) fn new(protocol: P, transport: Transport) -> Self {
        Self {
            protocol,
            transport,
            lost: false,
        }
    }

    /// Runs one callback; a panic aborts the connection and is remembered as the reason.
    fn call(&mut self, f: impl FnOnce(&mut P, &mut Transport)) {
        if self.transport.has_panicked() || self.lost {
            return;
        }
        let (p, t) = (&mut self.protocol, &mut self.transport);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(p, t))) {
            let msg = panic_message(payload.as_ref());
            tracing::error!(panic = %msg, "protocol callback panicked; closing the connection");
            self.transport.abort_with_panic(msg);
        }
        self.check_water();
    }

    pub(crate) fn made(&mut self) {
        self.call(|p, t| p.connection_made(t));
    }

    pub(crate) fn data(&mut self, data: &[u8]) {
        self.call(|p, t| p.data_received(data, t));
    }

    /// The peer sent EOF: unless the protocol keeps the connection, close after flushing.
    pub(crate) fn eof(&mut self) {
        let mut keep = false;
        self.call(|p, t| keep = p.eof_received(t));
        if !keep {
            self.transport
                .close_gracefully(DisconnectReason::ConnectionDone);
        }
    }

    pub(crate) fn fire_due_timers(&mut self, now: Instant) {
        while let Some(id) = self.transport.pop_due_timer(now) {
            self.call(|p, t| p.timer_fired(id, t));
        }
    }

    /// Applies one command from a handle; a resume of paused reading is told to the protocol.
    pub(crate) fn apply_command(&mut self, cmd: Command) {
        let resumes =
            matches!(cmd, Command::ResumeProducing) && self.transport.is_producing_paused();
        self.transport.apply(cmd);
        if resumes {
            self.call(|p, t| p.reading_resumed(t));
        }
    }

    /// Drains commands sent through handles, then applies the water marks if any ran (every
    /// other change of the buffer was checked where it happened). Costs one test when no
    /// handle was ever taken.
    #[inline]
    pub(crate) fn run_commands(&mut self) {
        if self.transport.has_handle() {
            self.drain_commands();
        }
    }

    /// Then tells the protocol what handle writes added (`handle_written`), once for the
    /// batch, counting the command `next_event` applied before it.
    fn drain_commands(&mut self) {
        let mut ran = false;
        while let Some(cmd) = self.transport.try_command() {
            self.apply_command(cmd);
            ran = true;
        }
        let written = self.transport.take_handle_written();
        if written > 0 {
            self.call(|p, t| p.handle_written(written, t));
        } else if ran {
            self.check_water();
        }
    }

    /// Calls `pause_writing`/`resume_writing` when the buffer crosses the water marks.
    #[inline]
    pub(crate) fn check_water(&mut self) {
        let t = &self.transport;
        let len = t.write_buffer_size();
        let crossed = if t.is_write_paused() {
            len <= t.low_water()
        } else {
            len > t.high_water()
        };
        if crossed {
            self.water_crossed(len);
        }
    }

    #[cold]
    fn water_crossed(&mut self, len: usize) {
        if self.transport.has_panicked() || self.lost {
            return;
        }
        let paused = self.transport.is_write_paused();
        if !paused && len > self.transport.high_water() {
            self.transport.set_write_paused(true);
            self.call(|p, t| p.pause_writing(t));
        } else if paused && len <= self.transport.low_water() {
            self.transport.set_write_paused(false);
            self.call(|p, t| p.resume_writing(t));
        }
    }

    /// The reason the protocol or a panic asked for, if any.
    pub(crate) fn requested_reason(&self) -> Option<DisconnectReason> {
        self.transport.requested_close()
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost
    }

    /// Delivers `connection_lost` once; later calls do nothing.
    pub(crate) fn lost(&mut self, reason: DisconnectReason) {
        if self.lost {
            return;
        }
        self.lost = true;
        self.transport.shut_down();
        let p = &mut self.protocol;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| p.connection_lost(reason))) {
            let msg = panic_message(payload.as_ref());
            tracing::error!(panic = %msg, "connection_lost panicked");
        }
    }
}
