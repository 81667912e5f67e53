//! Twisted's `twisted/test/test_policies.py`, ported where it maps (each test names its
//! original), plus what Twisted gets wrong. Clock tests run on tokio's paused clock, Twisted's
//! `task.Clock`.
//!
//! Not ported, and why:
//! - `WrapperTests` on `ProtocolWrapper`'s registry, `logPrefix`, producer registration,
//!   `getHost`/`getPeer` forwarding and breaking the reference cycle: a weft wrapper is a value
//!   owning its inner protocol and sharing the one `Transport`, so there is no registry, no
//!   separate transport to forward through and no cycle. What maps (every callback reaches the
//!   inner protocol, factory start/stop and client callbacks are forwarded) is below.
//! - `TimeoutMixinTests.test_overriddenCallLater`: timers are the transport's, and tests move
//!   tokio's clock instead of overriding `callLater`.
//! - `LoggingFactoryTests.test_counter`, `test_loggingFactoryOpensLogfileAutomatically`: weft
//!   logs through `tracing`, not to numbered files, so there is no counter or file to open.
//! - `ThrottlingTests.test_limit` (real TCP) is the `--max-connections` end-to-end test of
//!   weft-cli; its counting half is `limit_total_counts_and_refuses` here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::testing::MemoryTransport;
use crate::{Factory, TimeoutKind, factory_fn};

fn addr() -> Address {
    Address::Memory("peer".into())
}

fn ip(s: &str) -> Address {
    Address::Inet(s.parse().unwrap())
}

/// Records every callback, echoes data.
#[derive(Debug, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn push(&self, e: impl Into<String>) {
        self.events.lock().unwrap().push(e.into());
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, _: &mut Transport) {
        self.push("made");
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.push(format!("data {}", String::from_utf8_lossy(data)));
        t.write(data);
    }
    fn eof_received(&mut self, _: &mut Transport) -> bool {
        self.push("eof");
        true
    }
    fn connection_lost(&mut self, reason: DisconnectReason) {
        self.push(format!("lost {}", reason.label()));
    }
    fn pause_writing(&mut self, _: &mut Transport) {
        self.push("pause_writing");
    }
    fn resume_writing(&mut self, _: &mut Transport) {
        self.push("resume_writing");
    }
    fn timer_fired(&mut self, _: TimerId, _: &mut Transport) {
        self.push("timer");
    }
}

fn recorder() -> (Recorder, Arc<Mutex<Vec<String>>>) {
    let r = Recorder::default();
    let events = r.events.clone();
    (r, events)
}

fn connect<Pol: Policy>(policy: Pol, p: impl Protocol) -> MemoryTransport<impl Protocol> {
    MemoryTransport::new(policy.build(&addr(), || Some(p)).unwrap())
}

/// WrapperTests (what maps): every callback reaches the inner protocol through every policy,
/// in order, and the timer the inner protocol armed fires for it, not for the policy.
#[tokio::test(start_paused = true)]
async fn every_policy_forwards_every_callback() {
    async fn check<Pol: Policy>(policy: Pol) {
        let (r, events) = recorder();
        let mut conn = connect(policy, r);
        conn.transport_mut().call_later(Duration::from_millis(10));
        conn.feed(b"hi");
        assert_eq!(conn.take_written(), &b"hi"[..]);
        conn.feed_eof();
        conn.advance(Duration::from_millis(10)).await;
        conn.transport_mut().set_write_buffer_limits(1, 0);
        conn.transport_mut().write("xx");
        conn.feed(b"");
        conn.take_written();
        conn.lose(DisconnectReason::ConnectionDone);
        let got = events.lock().unwrap().clone();
        assert_eq!(
            got,
            [
                "made",
                "data hi",
                "eof",
                "timer",
                "data ",
                "pause_writing",
                "resume_writing",
                "lost done"
            ],
            "{}",
            std::any::type_name::<Pol>()
        );
    }
    check(IdleTimeout::new(Duration::from_secs(60))).await;
    check(LineTimeout::new(Duration::from_secs(60))).await;
    check(LimitTotal::new(5)).await;
    check(LimitPerPeer::new(5)).await;
    check(Throttle::new().per_connection(1 << 20)).await;
    check(TrafficLog::new()).await;
    check(Metrics::new()).await;
    check(None::<IdleTimeout>).await;
    check(Some(IdleTimeout::new(Duration::from_secs(60)))).await;
}

/// WrapperTests.test_startedConnecting / clientConnectionFailed / Lost and factory start/stop:
/// a wrapped factory passes them to the inner one.
#[test]
fn wrapped_factories_forward_start_stop_and_client_callbacks() {
    #[derive(Default)]
    struct F {
        calls: Mutex<Vec<&'static str>>,
    }
    impl Factory for F {
        type Protocol = Recorder;
        fn build_protocol(&self, _: &Address) -> Option<Recorder> {
            Some(Recorder::default())
        }
        fn start_factory(&self) {
            self.calls.lock().unwrap().push("start");
        }
        fn stop_factory(&self) {
            self.calls.lock().unwrap().push("stop");
        }
    }
    impl crate::ClientFactory for F {
        fn started_connecting(&self, _: &Address) {
            self.calls.lock().unwrap().push("connecting");
        }
        fn client_connection_failed(&self, _: &Address, _: &std::io::Error) {
            self.calls.lock().unwrap().push("failed");
        }
        fn client_connection_lost(&self, _: &Address, _: &DisconnectReason) {
            self.calls.lock().unwrap().push("lost");
        }
    }
    use crate::ClientFactory;
    let f = F::default()
        .with(IdleTimeout::new(Duration::from_secs(1)))
        .with(LimitTotal::new(1));
    f.start_factory();
    f.started_connecting(&addr());
    f.client_connection_failed(&addr(), &std::io::Error::other("x"));
    f.client_connection_lost(&addr(), &DisconnectReason::Reset);
    f.stop_factory();
    assert_eq!(
        *f.inner().inner().calls.lock().unwrap(),
        ["start", "connecting", "failed", "lost", "stop"]
    );
}

// ---- TimeoutFactoryTests -------------------------------------------------------------------

fn idle(secs: u64) -> MemoryTransport<impl Protocol> {
    connect(
        IdleTimeout::new(Duration::from_secs(secs)),
        Recorder::default(),
    )
}

/// TimeoutFactoryTests.test_timeout: 2.9 s of a 3 s timeout survives, 3.1 s does not, and the
/// reason says timeout.
#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_after_the_period() {
    let mut conn = idle(3);
    conn.advance(Duration::from_millis(2900)).await;
    assert!(!conn.is_closing());
    conn.advance(Duration::from_millis(200)).await;
    assert!(conn.is_closing());
    assert!(matches!(
        conn.close_reason(),
        Some(DisconnectReason::TimedOut(TimeoutKind::Idle))
    ));
}

/// TimeoutFactoryTests.test_sendAvoidsTimeout: writing resets the timeout.
#[tokio::test(start_paused = true)]
async fn idle_timeout_is_reset_by_writes() {
    let mut conn = idle(3);
    conn.advance(Duration::from_secs(2)).await;
    // A write from a callback (the inner protocol's timer) counts.
    conn.with(|_, t| t.write("x"));
    conn.transport_mut().call_later(Duration::from_millis(1));
    conn.advance(Duration::from_millis(1)).await; // fires the Recorder's timer: no write
    // `with` is outside any callback, so it did not count: the deadline is still 3 s.
    conn.advance(Duration::from_millis(1000)).await;
    assert!(
        conn.is_closing(),
        "a write outside callbacks is not activity"
    );

    struct Ticker;
    impl Protocol for Ticker {
        fn connection_made(&mut self, t: &mut Transport) {
            t.call_later(Duration::from_secs(2));
        }
        fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
        fn timer_fired(&mut self, _: TimerId, t: &mut Transport) {
            t.write("tick");
        }
    }
    let mut conn = connect(IdleTimeout::new(Duration::from_secs(3)), Ticker);
    conn.advance(Duration::from_secs(2)).await; // the tick: 3 s from now
    conn.advance(Duration::from_millis(2900)).await;
    assert!(!conn.is_closing());
    assert_eq!(conn.written(), b"tick");
    conn.advance(Duration::from_millis(200)).await;
    assert!(conn.is_closing());
}

/// TimeoutFactoryTests.test_receiveAvoidsTimeout.
#[tokio::test(start_paused = true)]
async fn idle_timeout_is_reset_by_reads() {
    let mut conn = idle(3);
    conn.advance(Duration::from_secs(2)).await;
    conn.feed(b"x");
    conn.advance(Duration::from_millis(2900)).await;
    assert!(!conn.is_closing());
    conn.advance(Duration::from_millis(200)).await;
    assert!(conn.is_closing());
}

/// Cheap resets: a thousand reads in a period arm no new timer.
#[tokio::test(start_paused = true)]
async fn idle_timeout_does_not_arm_a_timer_per_read() {
    let mut conn = idle(3);
    assert_eq!(conn.transport().pending_timers(), 1);
    for _ in 0..1000 {
        conn.feed(b"x");
        conn.advance(Duration::from_millis(5)).await; // 5 s in all
        assert_eq!(conn.transport().pending_timers(), 1);
    }
    assert!(!conn.is_closing());
}

/// A timed-out connection whose reply cannot be flushed (the peer does not read) is aborted
/// one period later.
#[tokio::test(start_paused = true)]
async fn idle_timeout_aborts_a_close_that_cannot_flush() {
    let mut conn = idle(3);
    conn.feed(b"unread reply");
    conn.advance(Duration::from_millis(3001)).await;
    assert!(conn.is_closing() && !conn.is_aborted());
    conn.advance(Duration::from_millis(3001)).await;
    assert!(conn.is_aborted());
}

// ---- TimeoutMixinTests / TimeoutProtocolTests -----------------------------------------------

/// A protocol using `IdleTimer` as Twisted's `TimeoutMixin`: counts timeouts.
#[derive(Default)]
struct Mixin {
    timer: IdleTimer,
    timed_out: Arc<AtomicUsize>,
}

impl Protocol for Mixin {
    fn data_received(&mut self, _: &[u8], _: &mut Transport) {
        self.timer.reset_timeout();
    }
    fn timer_fired(&mut self, id: TimerId, t: &mut Transport) {
        if self.timer.timer_fired(id, t) == TimerOutcome::Expired {
            self.timed_out.fetch_add(1, Ordering::SeqCst);
            timeout_connection(t, TimeoutKind::Idle);
        }
    }
}

fn mixin(period: Option<u64>) -> (MemoryTransport<Mixin>, Arc<AtomicUsize>) {
    let m = Mixin::default();
    let n = m.timed_out.clone();
    let mut conn = MemoryTransport::new(m);
    conn.with(|p, t| p.timer.set_timeout(t, period.map(Duration::from_secs)));
    (conn, n)
}

/// Checks that the mixin times out `ms` milliseconds from now: not 100 ms before, once then.
async fn mixin_times_out_after(conn: &mut MemoryTransport<Mixin>, n: &AtomicUsize, ms: u64) {
    conn.advance(Duration::from_millis(ms - 100)).await;
    assert_eq!(n.load(Ordering::SeqCst), 0, "timed out before {ms} ms");
    conn.advance(Duration::from_millis(100)).await;
    assert_eq!(n.load(Ordering::SeqCst), 1, "not timed out once at {ms} ms");
}

/// TimeoutMixinTests.test_timeout.
#[tokio::test(start_paused = true)]
async fn mixin_times_out() {
    let (mut conn, n) = mixin(Some(5));
    mixin_times_out_after(&mut conn, &n, 5000).await;
    assert!(conn.is_closing());
}

/// TimeoutMixinTests.test_noTimeout: data resets it.
#[tokio::test(start_paused = true)]
async fn mixin_reset_by_data() {
    let (mut conn, n) = mixin(Some(5));
    conn.advance(Duration::from_millis(4900)).await;
    conn.feed(b"hello");
    mixin_times_out_after(&mut conn, &n, 5000).await;
}

/// TimeoutMixinTests.test_resetTimeout: resetting with the timeout off does nothing, setting
/// it starts the count.
#[tokio::test(start_paused = true)]
async fn mixin_reset_while_off_does_nothing() {
    let (mut conn, n) = mixin(None);
    conn.with(|p, _| p.timer.reset_timeout());
    assert_eq!(conn.transport().pending_timers(), 0);
    conn.with(|p, t| p.timer.set_timeout(t, Some(Duration::from_secs(1))));
    assert_eq!(
        conn.protocol().timer.timeout(),
        Some(Duration::from_secs(1))
    );
    mixin_times_out_after(&mut conn, &n, 1000).await;
}

/// TimeoutMixinTests.test_cancelTimeout, TimeoutProtocolTests.test_cancelTimeout.
#[tokio::test(start_paused = true)]
async fn mixin_cancel() {
    let (mut conn, n) = mixin(Some(5));
    conn.with(|p, t| p.timer.set_timeout(t, None));
    assert_eq!(conn.transport().pending_timers(), 0);
    conn.advance(Duration::from_secs(10)).await;
    assert_eq!(n.load(Ordering::SeqCst), 0);
    assert!(!conn.is_closing());
}

/// TimeoutMixinTests.test_setTimeoutReturn: `set_timeout` returns the previous period.
#[tokio::test(start_paused = true)]
async fn mixin_set_timeout_returns_the_previous_period() {
    let (mut conn, _) = mixin(None);
    let s = Duration::from_secs;
    assert_eq!(conn.with(|p, t| p.timer.set_timeout(t, Some(s(5)))), None);
    assert_eq!(
        conn.with(|p, t| p.timer.set_timeout(t, Some(s(10)))),
        Some(s(5))
    );
    assert_eq!(conn.with(|p, t| p.timer.set_timeout(t, None)), Some(s(10)));
    assert_eq!(conn.protocol().timer.timeout(), None);
}

/// TimeoutMixinTests.test_setTimeoutCancelAlreadyCancelled,
/// TimeoutProtocolTests.test_cancelTimeoutAlreadyCancelled / NoTimeout: cancelling what is not
/// armed does nothing.
#[tokio::test(start_paused = true)]
async fn mixin_cancel_twice_and_cancel_unarmed() {
    let (mut conn, _) = mixin(None);
    assert_eq!(conn.with(|p, t| p.timer.set_timeout(t, None)), None);
    let (mut conn, _) = mixin(Some(3));
    conn.with(|p, t| p.timer.set_timeout(t, None));
    assert_eq!(conn.with(|p, t| p.timer.set_timeout(t, None)), None);
    assert_eq!(conn.transport().pending_timers(), 0);
}

/// TimeoutProtocolTests.test_cancelTimeoutAlreadyCalled: after the timeout fired, cancelling
/// is harmless.
#[tokio::test(start_paused = true)]
async fn mixin_cancel_after_expiry() {
    let (mut conn, n) = mixin(Some(1));
    conn.advance(Duration::from_secs(1)).await;
    assert_eq!(n.load(Ordering::SeqCst), 1);
    assert_eq!(
        conn.with(|p, t| p.timer.set_timeout(t, None)),
        Some(Duration::from_secs(1))
    );
    assert_eq!(conn.transport().pending_timers(), 0);
}

// ---- Line timeout ---------------------------------------------------------------------------

/// A slowloris (a byte every 0.5 s) is never idle but never finishes a line.
#[tokio::test(start_paused = true)]
async fn line_timeout_closes_a_slowloris_that_idle_timeout_keeps() {
    let both = |line: Option<LineTimeout>| {
        let idle = IdleTimeout::new(Duration::from_secs(1));
        MemoryTransport::new(
            line.build(&addr(), || {
                idle.build(&addr(), || Some(Recorder::default()))
            })
            .unwrap(),
        )
    };
    let mut kept = both(None);
    let mut cut = both(Some(LineTimeout::new(Duration::from_secs(2))));
    let mut cut_at = None;
    for i in 0..10 {
        kept.feed(b"x");
        cut.feed(b"x");
        kept.take_written();
        cut.take_written();
        kept.advance(Duration::from_millis(500)).await;
        cut.fire_due_timers();
        if cut_at.is_none() && cut.is_closing() {
            cut_at = Some((i, cut.close_reason()));
        }
    }
    assert!(!kept.is_closing());
    let (i, reason) = cut_at.expect("the line timeout closed it");
    assert_eq!(i, 3, "closed 2 s after the line's first byte");
    assert!(matches!(
        reason,
        Some(DisconnectReason::TimedOut(TimeoutKind::Line))
    ));
}

/// Finished lines stop the clock; a line finished in the middle of a read starts the next.
#[tokio::test(start_paused = true)]
async fn line_timeout_counts_from_each_lines_first_byte() {
    let mut conn = connect(
        LineTimeout::new(Duration::from_secs(2)),
        Recorder::default(),
    );
    for _ in 0..5 {
        conn.feed(b"complete line\r\n");
        conn.advance(Duration::from_secs(1)).await;
    }
    assert!(!conn.is_closing());
    conn.feed(b"a\r\nhalf"); // "half" starts now
    conn.advance(Duration::from_millis(1500)).await;
    conn.feed(b" more\nand"); // "and" starts now
    conn.advance(Duration::from_millis(1900)).await;
    assert!(!conn.is_closing());
    conn.advance(Duration::from_millis(100)).await;
    assert!(conn.is_closing());
}

// ---- LimitTotalConnectionsFactory, LimitConnectionsByPeer -----------------------------------

/// TestLimitTotal testConnectionCounting / testConnectionLimiting (ThrottlingTests.test_limit's
/// counting): the count follows connections, the one above is refused or overflows, a slot
/// comes back when a connection ends.
#[test]
fn limit_total_counts_and_refuses() {
    let f = factory_fn(|_| Some(Recorder::default())).with(LimitTotal::new(2));
    let a = f.build_protocol(&addr());
    let b = f.build_protocol(&addr());
    assert!(a.is_some() && b.is_some());
    assert_eq!(f.policy().open(), 2);
    assert!(f.build_protocol(&addr()).is_none());
    assert_eq!(f.policy().open(), 2, "a refused connection takes no slot");
    drop(a);
    assert_eq!(f.policy().open(), 1);
    assert!(f.build_protocol(&addr()).is_some());
}

#[test]
fn limit_total_overflow_protocol_answers_and_takes_no_slot() {
    let f = factory_fn(|_| Some(Recorder::default()))
        .with(LimitTotal::new(1).with_overflow(factory_fn(|_| Some(Busy::new("busy\r\n")))));
    let first = MemoryTransport::new(f.build_protocol(&addr()).unwrap());
    for _ in 0..3 {
        let over = MemoryTransport::new(f.build_protocol(&addr()).unwrap());
        assert_eq!(over.written(), b"busy\r\n");
        assert!(over.is_closing());
    }
    assert_eq!(f.policy().open(), 1);
    drop(first);
    let next = MemoryTransport::new(f.build_protocol(&addr()).unwrap());
    assert!(next.written().is_empty());
}

/// A slot the inner factory does not use (it refused) is given back.
#[test]
fn limit_gives_back_the_slot_of_a_refused_connection() {
    let f = factory_fn(|_| None::<Recorder>)
        .with(LimitTotal::new(1))
        .with(LimitPerPeer::new(1));
    for _ in 0..3 {
        assert!(f.build_protocol(&ip("10.0.0.1:5")).is_none());
    }
    assert_eq!(f.inner().policy().open(), 0);
    assert_eq!(f.policy().open_from("10.0.0.1".parse().unwrap()), 0);
}

/// LimitConnectionsByPeer (no Twisted test: it raises TypeError on every connection,
/// twisted#12183): keyed on the IP, IPv4-mapped IPv6 counted as IPv4, other addresses free.
#[test]
fn limit_per_peer_keys_on_the_ip() {
    let f = factory_fn(|_| Some(Recorder::default())).with(LimitPerPeer::new(2));
    let a = f.build_protocol(&ip("192.0.2.1:1000"));
    let b = f.build_protocol(&ip("[::ffff:192.0.2.1]:1001"));
    assert!(a.is_some() && b.is_some());
    assert!(f.build_protocol(&ip("192.0.2.1:1002")).is_none());
    assert!(f.build_protocol(&ip("[2001:db8::1]:1")).is_some());
    let unix: Vec<_> = (0..5)
        .map(|_| f.build_protocol(&Address::Unix(None)))
        .collect();
    assert!(unix.iter().all(Option::is_some));
    drop(b);
    assert_eq!(f.policy().open_from("192.0.2.1".parse().unwrap()), 1);
    assert!(f.build_protocol(&ip("192.0.2.1:1003")).is_some());
    drop(a);
    assert_eq!(f.policy().open_from("192.0.2.1".parse().unwrap()), 0);
}

/// A refused peer leaves nothing behind: under `LimitPerPeer::new(0)` (refuse everyone) a
/// client with many addresses (an IPv6 prefix holds billions) must not grow the map.
#[test]
fn limit_per_peer_keeps_no_count_for_refused_peers() {
    let f = factory_fn(|_| Some(Recorder::default())).with(LimitPerPeer::new(0));
    for i in 0..100 {
        assert!(
            f.build_protocol(&ip(&format!("[2001:db8::{i:x}]:1")))
                .is_none()
        );
    }
    assert_eq!(f.policy().tracked(), 0);
    let f = factory_fn(|_| Some(Recorder::default())).with(LimitPerPeer::new(1));
    let held = f.build_protocol(&ip("192.0.2.1:1"));
    assert!(held.is_some());
    assert!(f.build_protocol(&ip("192.0.2.1:2")).is_none());
    assert_eq!(f.policy().tracked(), 1);
    drop(held);
    assert_eq!(f.policy().tracked(), 0);
}

/// A panicking `connection_lost` still gives the slot back.
#[test]
fn a_panicking_protocol_gives_its_slot_back() {
    struct Boom;
    impl Protocol for Boom {
        fn data_received(&mut self, _: &[u8], _: &mut Transport) {
            panic!("boom");
        }
        fn connection_lost(&mut self, _: DisconnectReason) {
            panic!("again");
        }
    }
    let f = factory_fn(|_| Some(Boom)).with(LimitTotal::new(1));
    let mut conn = MemoryTransport::new(f.build_protocol(&addr()).unwrap());
    conn.feed(b"x");
    conn.finish(DisconnectReason::Reset);
    drop(conn);
    assert_eq!(f.policy().open(), 0);
}

// ---- ThrottlingTests ------------------------------------------------------------------------

/// ThrottlingTests.test_readLimit: over the read rate, reading pauses and what was already
/// read is handed over in slices at the rate; reading resumes once it is all delivered.
/// Nothing is dropped, and the order is kept.
#[tokio::test(start_paused = true)]
async fn throttle_pauses_reading_over_the_rate() {
    let mut conn = connect(
        Throttle::new().read_per_connection(1000),
        Recorder::default(),
    );
    conn.feed(&[b'a'; 100]); // the burst
    assert!(!conn.transport().is_reading_paused());
    let big: Vec<u8> = (0..1000u32).map(|i| b'0' + (i % 10) as u8).collect();
    conn.feed(&big); // one socket read far over the rate
    assert!(conn.transport().is_reading_paused());
    assert_eq!(conn.written().len(), 150, "the burst, then one slice");
    let mut resumed_at = None;
    for ms in (10..=1500).step_by(10) {
        conn.advance(Duration::from_millis(10)).await;
        if ms == 500 {
            let n = conn.written().len();
            assert!((550..=650).contains(&n), "{n} bytes after 0.5 s");
        }
        if resumed_at.is_none() && !conn.transport().is_reading_paused() {
            resumed_at = Some(ms);
        }
    }
    let resumed_at = resumed_at.expect("reading resumed");
    assert!(
        (900..=1050).contains(&resumed_at),
        "resumed after {resumed_at} ms"
    );
    let mut want = vec![b'a'; 100];
    want.extend_from_slice(&big);
    assert!(conn.written() == want, "every byte delivered, in order");
}

/// ThrottlingTests.test_writeLimit / test_writeSequence: over the write rate the protocol is
/// paused (pause_writing) and so is its input; both resume once the rate allows.
#[tokio::test(start_paused = true)]
async fn throttle_pauses_writers_over_the_rate() {
    let (r, events) = recorder();
    let mut conn = connect(Throttle::new().write_per_connection(1000), r);
    conn.with(|_, t| t.write_sequence([&[b'y'; 50][..], &[b'y'; 50]]));
    conn.feed(&[b'x'; 1000]); // echoes 1000 bytes: over
    assert!(
        events
            .lock()
            .unwrap()
            .contains(&"pause_writing".to_string())
    );
    assert!(conn.transport().is_reading_paused());
    conn.take_written(); // the socket takes everything: no water-mark resume meanwhile
    assert!(
        !events
            .lock()
            .unwrap()
            .contains(&"resume_writing".to_string())
    );
    conn.advance(Duration::from_millis(1100)).await;
    assert!(
        events
            .lock()
            .unwrap()
            .contains(&"resume_writing".to_string())
    );
    assert!(!conn.transport().is_reading_paused());
}

/// The throttle's pause does not show as the protocol's own (weft-line keys on that flag),
/// and the protocol's own pause survives the throttle's resume.
#[tokio::test(start_paused = true)]
async fn throttle_keeps_the_protocols_own_pause_apart() {
    #[derive(Default)]
    struct Pauser {
        seen_paused: Vec<bool>,
        got: Vec<u8>,
    }
    impl Protocol for Pauser {
        fn data_received(&mut self, data: &[u8], t: &mut Transport) {
            self.seen_paused.push(t.is_producing_paused());
            self.got.extend_from_slice(data);
            if data.ends_with(b"stop") {
                t.pause_producing();
            }
        }
    }
    // 100 B/s: a burst of 10 bytes, slices of 5.
    let throttle = Throttle::new().read_per_connection(100);
    let mut conn =
        MemoryTransport::new(throttle.build(&addr(), || Some(Pauser::default())).unwrap());
    conn.feed(b"0123456789012345stop");
    assert!(conn.transport().is_reading_paused());
    for _ in 0..300 {
        conn.advance(Duration::from_millis(10)).await;
    }
    let p = conn.protocol().inner();
    assert_eq!(p.got, b"0123456789012345stop");
    assert!(p.seen_paused.len() > 1, "delivered in slices");
    assert!(
        p.seen_paused.iter().all(|&paused| !paused),
        "{:?}",
        p.seen_paused
    );
    assert!(
        conn.transport().is_producing_paused(),
        "the protocol's pause stays"
    );
}

/// The factory-wide rate is shared: two connections together get the one rate.
#[tokio::test(start_paused = true)]
async fn throttle_total_is_shared() {
    let policy = Throttle::new().read_total(1000);
    let mut a = MemoryTransport::new(policy.build(&addr(), || Some(Recorder::default())).unwrap());
    let mut b = MemoryTransport::new(policy.build(&addr(), || Some(Recorder::default())).unwrap());
    a.feed(&[b'x'; 100]); // the shared burst
    assert!(!a.transport().is_reading_paused());
    b.feed(&[b'x'; 500]);
    assert!(b.transport().is_reading_paused());
    a.feed(&[b'x'; 1]);
    assert!(a.transport().is_reading_paused(), "a pays for b's debt too");
}

// ---- LoggingFactoryTests --------------------------------------------------------------------

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// What `f` logs, at trace level.
fn traced(f: impl FnOnce()) -> String {
    let out = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(out.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
}

/// LoggingFactoryTests.test_thingsGetLogged: the connection, bytes each way (with a hexdump at
/// trace level, cut at the limit), EOF and the end are logged.
#[test]
fn traffic_log_logs_both_directions() {
    let log = traced(|| {
        let mut conn = connect(TrafficLog::new().max_dump(8), Recorder::default());
        conn.feed(b"here are some bytes");
        conn.feed_eof();
        conn.lose(DisconnectReason::ConnectionDone);
    });
    assert!(log.contains("connection made"), "{log}");
    assert!(log.contains("dir=\"in\" bytes=19"), "{log}");
    assert!(log.contains("dir=\"out\" bytes=19"), "{log}");
    assert!(log.contains("68 65 72 65 20 61 72 65"), "{log}");
    assert!(log.contains("|here are|"), "{log}");
    assert!(log.contains("... 11 more bytes"), "{log}");
    assert!(log.contains("peer sent EOF"), "{log}");
    assert!(log.contains("bytes_in=19 bytes_out=19"), "{log}");
}

// ---- Metrics --------------------------------------------------------------------------------

mod recorded {
    use super::*;
    use std::collections::HashMap;

    /// A recorder keeping counter and gauge values by name and labels.
    #[derive(Default, Clone)]
    pub(super) struct Rec(pub Arc<Mutex<HashMap<String, f64>>>);

    struct Handle(Arc<Mutex<HashMap<String, f64>>>, String);

    impl metrics::CounterFn for Handle {
        fn increment(&self, v: u64) {
            *self.0.lock().unwrap().entry(self.1.clone()).or_default() += v as f64;
        }
        fn absolute(&self, v: u64) {
            self.0.lock().unwrap().insert(self.1.clone(), v as f64);
        }
    }
    impl metrics::GaugeFn for Handle {
        fn increment(&self, v: f64) {
            *self.0.lock().unwrap().entry(self.1.clone()).or_default() += v;
        }
        fn decrement(&self, v: f64) {
            *self.0.lock().unwrap().entry(self.1.clone()).or_default() -= v;
        }
        fn set(&self, v: f64) {
            self.0.lock().unwrap().insert(self.1.clone(), v);
        }
    }

    fn key_name(key: &metrics::Key) -> String {
        let mut s = key.name().to_string();
        for l in key.labels() {
            s.push_str(&format!("{{{}={}}}", l.key(), l.value()));
        }
        s
    }

    impl metrics::Recorder for Rec {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(
            &self,
            key: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            metrics::Counter::from_arc(Arc::new(Handle(self.0.clone(), key_name(key))))
        }
        fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::from_arc(Arc::new(Handle(self.0.clone(), key_name(key))))
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }
}

/// Connections, refusals, bytes, lines, reasons and panics are recorded; counts reach the
/// recorder at close, not per read.
#[test]
fn metrics_count_connections_bytes_lines_and_reasons() {
    let rec = recorded::Rec::default();
    metrics::with_local_recorder(&rec, || {
        struct Boom;
        impl Protocol for Boom {
            fn data_received(&mut self, d: &[u8], t: &mut Transport) {
                if d == b"boom" {
                    panic!("boom");
                }
                t.write(d);
                t.write(d);
            }
        }
        let f = factory_fn(|_| Some(Boom))
            .with(LimitTotal::new(2))
            .with(Metrics::new().count_lines(b"\r\n"));
        let mut a = MemoryTransport::new(f.build_protocol(&addr()).unwrap());
        let mut b = MemoryTransport::new(f.build_protocol(&addr()).unwrap());
        assert!(f.build_protocol(&addr()).is_none());
        a.feed(b"one\r\ntwo\r\nthr");
        assert!(
            rec.0.lock().unwrap().get(names::BYTES_RECEIVED).is_none(),
            "not per read"
        );
        a.lose(DisconnectReason::ConnectionDone);
        drop(a);
        b.feed(b"boom");
        b.finish(DisconnectReason::Reset);
        drop(b);
    });
    let m = rec.0.lock().unwrap().clone();
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(get(names::CONNECTIONS_ACCEPTED), 3.0);
    assert_eq!(get(names::CONNECTIONS_REFUSED), 1.0);
    assert_eq!(get(names::CONNECTIONS_OPEN), 0.0);
    assert_eq!(get(names::BYTES_RECEIVED), 17.0);
    assert_eq!(get(names::BYTES_SENT), 26.0);
    assert_eq!(get(names::LINES_RECEIVED), 2.0);
    assert_eq!(get("weft_connections_closed_total{reason=done}"), 1.0);
    assert_eq!(get("weft_connections_closed_total{reason=panic}"), 1.0);
    assert_eq!(get(names::PROTOCOL_PANICS), 1.0);
}

// ---- Writes from other tasks through handles ------------------------------------------------

/// A protocol that takes a handle in `connection_made` (as `Registry::join` does) and hands
/// it out, so a test can write through it as another task would.
struct Receives(Arc<Mutex<Option<crate::TransportHandle>>>);

impl Protocol for Receives {
    fn connection_made(&mut self, t: &mut Transport) {
        *self.0.lock().unwrap() = Some(t.handle());
    }
    fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
}

fn receiving<Pol: Policy>(policy: Pol) -> (MemoryTransport<impl Protocol>, crate::TransportHandle) {
    let slot = Arc::new(Mutex::new(None));
    let conn = connect(policy, Receives(slot.clone()));
    let h = slot.lock().unwrap().take().expect("handle taken");
    (conn, h)
}

/// Issue 15's "reset by bytes in either direction" for a client that only receives what
/// other connections write through its handle (a chat reader): it stays open while they
/// flow, one timer all along, and is closed a period after they stop.
#[tokio::test(start_paused = true)]
async fn idle_timeout_counts_handle_writes_as_activity() {
    let (mut conn, h) = receiving(IdleTimeout::new(Duration::from_secs(3)));
    for i in 0..10 {
        conn.advance(Duration::from_secs(2)).await;
        h.write(format!("line {i}\r\n")).unwrap();
        conn.run_pending(); // the connection's task applies it
        assert!(
            !conn.is_closing(),
            "closed after {} s of traffic",
            2 * (i + 1)
        );
        assert_eq!(conn.transport().pending_timers(), 1, "no timer per write");
        conn.take_written(); // the peer reads
    }
    // Queued but not applied yet is no activity: only what the connection's task takes.
    conn.advance(Duration::from_millis(2900)).await;
    assert!(!conn.is_closing());
    conn.advance(Duration::from_millis(200)).await;
    assert!(conn.is_closing(), "3 s after the last handle write");
    assert!(matches!(
        conn.close_reason(),
        Some(DisconnectReason::TimedOut(TimeoutKind::Idle))
    ));
}

/// A peer that never reads: handle writes are refused once its buffer is at the handle limit,
/// and refused writes are no activity, so the idle timeout closes it (then aborts it, as it
/// cannot flush).
#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_a_reader_that_never_reads_despite_handle_writes() {
    let (mut conn, h) = receiving(IdleTimeout::new(Duration::from_secs(3)));
    conn.transport_mut()
        .set_handle_limit(10_000, crate::OverLimit::Fail);
    let mut refused = 0;
    for _ in 0..50 {
        conn.advance(Duration::from_millis(100)).await;
        if h.write(vec![b'x'; 1000]).is_err() {
            refused += 1;
        }
        conn.run_pending();
    }
    // Each write is applied before the next, so only the one being queued is charged
    // QUEUED_WRITE_COST (64) besides its bytes: 9 fit under 10 KB, the 10th does not.
    assert_eq!(refused, 41, "the first 9 KB went in, then the limit");
    assert!(conn.is_closing(), "idle: nothing was taken for 3 s");
    conn.advance(Duration::from_secs(3)).await;
    assert!(conn.is_aborted(), "could not flush: aborted");
}

/// The handle's bytes reach the traffic log (a batch as one `out` event with `handle=true`,
/// hexdump at trace level) and the metrics' bytes sent.
#[test]
fn traffic_log_and_metrics_count_handle_writes() {
    let log = traced(|| {
        let (mut conn, h) = receiving(TrafficLog::new());
        h.write("from ").unwrap();
        h.write("elsewhere").unwrap();
        conn.run_pending();
        conn.lose(DisconnectReason::ConnectionDone);
    });
    assert!(log.contains("dir=\"out\" handle=true bytes=14"), "{log}");
    assert!(log.contains("|from elsewhere|"), "{log}");
    assert!(log.contains("bytes_in=0 bytes_out=14"), "{log}");

    let rec = recorded::Rec::default();
    metrics::with_local_recorder(&rec, || {
        let (mut conn, h) = receiving(Metrics::new());
        h.write(vec![b'x'; 40_000]).unwrap();
        conn.run_pending();
        conn.take_written();
        assert!(
            rec.0.lock().unwrap().get(names::BYTES_SENT).is_none(),
            "batched"
        );
        h.write(vec![b'x'; 40_000]).unwrap();
        conn.run_pending();
        assert_eq!(
            rec.0.lock().unwrap().get(names::BYTES_SENT).copied(),
            Some(80_000.0),
            "handed over at 64 KiB, while the connection lives"
        );
        h.write("tail").unwrap();
        conn.run_pending();
        conn.lose(DisconnectReason::ConnectionDone);
    });
    assert_eq!(
        rec.0.lock().unwrap().get(names::BYTES_SENT).copied(),
        Some(80_004.0)
    );
}

/// Over the write rate, handle writes wait in the handle's bounded queue: the connection's
/// task lets them into its buffer at the rate, writers see what waits (`buffered`, `Full`
/// past the handle limit), nothing is dropped and the order is kept.
#[tokio::test(start_paused = true)]
async fn throttle_holds_handle_writes_in_the_bounded_queue() {
    let (mut conn, h) = receiving(Throttle::new().write_per_connection(1000));
    conn.transport_mut()
        .set_handle_limit(5000, crate::OverLimit::Fail);
    let mut sent = Vec::new();
    let mut refused = 0;
    for i in 0..100u32 {
        let chunk: Vec<u8> = (0..100).map(|j| b'a' + ((i + j) % 26) as u8).collect();
        match h.write(chunk.clone()) {
            Ok(()) => sent.extend_from_slice(&chunk),
            Err(crate::WriteError::Full { limit: 5000, .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    // Queued, not applied: each write counts its 100 bytes and QUEUED_WRITE_COST.
    let fit = 5000 / (100 + crate::transport::handle::QUEUED_WRITE_COST);
    assert_eq!(sent.len(), fit * 100, "accepted up to the handle limit");
    assert_eq!(refused, 100 - fit);
    conn.run_pending();
    assert!(
        conn.written().len() <= 200,
        "{} bytes let in at once",
        conn.written().len()
    );
    assert!(
        h.buffered() >= fit * 100 - 200,
        "the rest waits, counted by the handle"
    );
    let mut got = Vec::new();
    let mut at_2s = 0;
    for ms in (10..=6000).step_by(10) {
        conn.advance(Duration::from_millis(10)).await;
        got.extend_from_slice(&conn.take_written());
        if ms == 2000 {
            at_2s = got.len();
        }
    }
    assert!(
        (1900..=2300).contains(&at_2s),
        "{at_2s} bytes after 2 s at 1000 B/s (burst 100)"
    );
    assert!(got == sent, "every accepted byte, in order");
    assert_eq!(h.buffered(), 0);
    assert_eq!(
        conn.transport().pending_timers(),
        0,
        "no timer once drained"
    );
}

/// The throttle lets handle writes through at full speed while under the rate, and a writer
/// waiting for room (`write_when_ready`) is woken as the throttled queue drains.
#[tokio::test(start_paused = true)]
async fn throttled_handle_writers_wait_for_room() {
    let (mut conn, h) = receiving(Throttle::new().write_per_connection(100_000));
    h.write("small").unwrap();
    conn.run_pending();
    assert_eq!(
        conn.take_written(),
        &b"small"[..],
        "under the rate: at once"
    );
    let writer = {
        let h = h.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                h.write_when_ready(vec![b'z'; 10_000]).await.unwrap();
            }
        })
    };
    let mut got = 0;
    while !writer.is_finished() || h.buffered() > 0 {
        conn.advance(Duration::from_millis(10)).await;
        got += conn.take_written().len();
        assert!(h.buffered() <= 64 * 1024 + 10_000, "{}", h.buffered());
    }
    writer.await.unwrap();
    assert_eq!(got, 400_000);
}

/// An abort through a handle (`OverLimit::Abort`, `Laggards::Disconnect`) does not wait
/// behind the handle writes a throttle holds back: it drops them (over a socket too:
/// `tests/net.rs`), while a `lose_connection` waits its turn.
#[tokio::test(start_paused = true)]
async fn a_handle_abort_goes_ahead_of_throttled_handle_writes() {
    let (mut conn, h) = receiving(Throttle::new().write_per_connection(1000));
    for _ in 0..20 {
        h.write(vec![b'q'; 500]).unwrap();
    }
    conn.run_pending();
    assert!(h.buffered() >= 9000, "held back");
    h.abort_connection().unwrap();
    conn.advance(Duration::from_millis(100)).await;
    assert!(conn.is_aborted(), "not after 10 s of throttled writes");
    assert!(conn.written().is_empty(), "pending output dropped");

    let (mut conn, h) = receiving(Throttle::new().write_per_connection(1000));
    for _ in 0..4 {
        h.write(vec![b'q'; 500]).unwrap();
    }
    h.lose_connection().unwrap();
    conn.run_pending();
    assert!(!conn.is_closing(), "waits behind the writes");
    let mut got = conn.take_written().len();
    for _ in 0..300 {
        conn.advance(Duration::from_millis(10)).await;
        got += conn.take_written().len();
    }
    assert_eq!(got, 2000);
    assert!(conn.is_closing() && !conn.is_aborted());
}
