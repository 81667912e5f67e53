//! weft-line integration tests: Twisted's test_basic.py behaviours through the in-memory
//! transport (fed in every chunk size), proptest round trips, and loopback tests through a
//! real reactor.

// Test vector tables are clearer inline than behind type aliases.
#![allow(clippy::type_complexity)]

mod codecs;
mod edge_cases;
mod line_only;
mod line_receiver;
mod loopback;
mod props;
mod strings;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};
use weft_core::testing::MemoryTransport;
use weft_core::{DisconnectReason, Protocol};
use weft_line::{Control, FramedProtocol, Framing, Line, Receiver};

/// Every way to cut `input` in equal chunks: sizes 1 to the whole input.
pub fn chunk_sizes(input: &[u8]) -> std::ops::RangeInclusive<usize> {
    1..=input.len().max(1)
}

/// A connection fed `input` in chunks of `size` bytes.
pub fn fed<P: Protocol>(proto: P, input: &[u8], size: usize) -> MemoryTransport<P> {
    let mut conn = MemoryTransport::new(proto);
    for chunk in input.chunks(size) {
        conn.feed(chunk);
    }
    conn
}

/// The protocol error the connection is closing with, downcast to `E`.
pub fn close_error<E: std::error::Error + 'static, P: Protocol>(
    conn: &MemoryTransport<P>,
) -> Option<String> {
    match conn.close_reason() {
        Some(r @ DisconnectReason::ProtocolError(_)) => {
            r.protocol_error::<E>().map(|e| e.to_string())
        }
        _ => None,
    }
}

/// Asserts that the connection is closing (not aborting) with the protocol error `reason`;
/// `case` names the input or chunk size in the failure message.
pub fn assert_closed_with<E: std::error::Error + 'static, P: Protocol>(
    conn: &MemoryTransport<P>,
    reason: &str,
    case: impl std::fmt::Debug,
) {
    assert!(conn.is_closing(), "{case:?}: not closing");
    assert!(!conn.is_aborted(), "{case:?}: aborted");
    assert_eq!(
        close_error::<E, _>(conn).as_deref(),
        Some(reason),
        "{case:?}"
    );
}

/// What a [`Frames`] receiver does with each frame after recording it.
type React<F> = Box<dyn FnMut(&[u8], &mut Control<'_, F>) + Send>;

/// A receiver of any framing that records every frame (`.0`), then reacts to it: the
/// receiver of the tests that need one thing done on some frame (pause, switch the
/// delimiter or the mode, close). `Frames::default()` only records.
pub struct Frames<F: Framing = Line>(pub Vec<Vec<u8>>, React<F>);

impl<F: Framing> Frames<F> {
    /// Records, then runs `react` on each frame.
    pub fn then(react: impl FnMut(&[u8], &mut Control<'_, F>) + Send + 'static) -> Self {
        Frames(Vec::new(), Box::new(react))
    }
}

impl<F: Framing> std::fmt::Debug for Frames<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames")
            .field("frames", &self.0)
            .finish_non_exhaustive()
    }
}

impl<F: Framing> Default for Frames<F> {
    fn default() -> Self {
        Frames::then(|_, _| {})
    }
}

impl<F: Framing> Receiver<F> for Frames<F> {
    fn frame_received(&mut self, frame: &[u8], ctl: &mut Control<'_, F>) {
        self.0.push(frame.to_vec());
        (self.1)(frame, ctl);
    }
}

/// Records every frame, and pauses after the first.
pub fn pause_first<F: Framing>() -> Frames<F> {
    let mut first = true;
    Frames::then(move |_, ctl| {
        if std::mem::take(&mut first) {
            ctl.pause_producing();
        }
    })
}

/// Feeds `input` to a [`pause_first`] receiver in one read, then resumes it through a
/// transport handle: nothing more arrives while paused (however long), then the frames
/// already buffered do, without new data, and no timer is left. Returns every frame. Runs
/// in a test with tokio's clock paused.
pub async fn resumed_through_a_handle<F: Framing>(input: &[u8]) -> Vec<Vec<u8>>
where
    FramedProtocol<Frames<F>, F>: Protocol,
{
    let mut conn = MemoryTransport::new(FramedProtocol::new(pause_first::<F>()));
    conn.feed(input);
    assert_eq!(conn.protocol().receiver().0.len(), 1);
    let handle = conn.transport_mut().handle();
    conn.advance(std::time::Duration::from_millis(500)).await;
    assert_eq!(conn.protocol().receiver().0.len(), 1);
    handle.resume_producing().expect("open");
    conn.run_pending();
    conn.advance(std::time::Duration::from_millis(100)).await;
    assert_eq!(conn.transport().pending_timers(), 0);
    conn.protocol().receiver().0.clone()
}

/// The error encoding `frame` fails with; panics, naming the frame, if it encodes.
pub fn encode_error<C, E>(codec: &mut C, frame: &str) -> E
where
    C: for<'a> Encoder<&'a str, Error = E>,
{
    match codec.encode(frame, &mut BytesMut::new()) {
        Ok(()) => panic!("{frame:?} was encoded"),
        Err(e) => e,
    }
}

/// The error decoding `input` (in one read) fails with; panics, naming the input, if it
/// does not.
pub fn decode_error<D: Decoder>(mut codec: D, input: &[u8]) -> D::Error
where
    D::Item: std::fmt::Debug,
{
    match codec.decode(&mut BytesMut::from(input)) {
        Ok(item) => panic!("{input:?} decoded as {item:?}"),
        Err(e) => e,
    }
}
