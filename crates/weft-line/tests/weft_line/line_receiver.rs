//! Twisted's `LineReceiverTests`, `LineReceiverLineLengthExceededTests` and
//! `ProducerTests.test_pauseResume`, on `LineProtocol`.

use std::time::Duration;

use weft_core::testing::MemoryTransport;
use weft_core::{DisconnectReason, TimerId};
use weft_line::{Control, Line, LineError, LineProtocol, Receiver};

use crate::{Frames, assert_closed_with, chunk_sizes, fed, resumed_through_a_handle};

/// Twisted's `LineTester`: delimiter `\n`, MAX_LENGTH 64.
#[derive(Default, Debug)]
pub(crate) struct LineTester {
    pub(crate) received: Vec<Vec<u8>>,
    length: usize,
}

impl Receiver for LineTester {
    const DELIMITER: &'static [u8] = b"\n";
    const MAX_LENGTH: usize = 64;

    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
        self.received.push(line.to_vec());
        if line.is_empty() {
            ctl.set_raw_mode();
        } else if line == b"pause" {
            ctl.pause_producing();
            ctl.transport().call_later(Duration::ZERO);
        } else if line == b"rawpause" {
            ctl.pause_producing();
            ctl.set_raw_mode();
            self.received.push(Vec::new());
            ctl.transport().call_later(Duration::ZERO);
        } else if line == b"stop" {
            ctl.stop_producing();
        } else if let Some(n) = line.strip_prefix(b"len ") {
            self.length = std::str::from_utf8(n)
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
        // `produce`/`unproduce` register the protocol as a pull producer in Twisted; weft has
        // no such registration, and the lines are recorded all the same.
    }

    fn raw_data_received(&mut self, data: &[u8], ctl: &mut Control<'_>) {
        let n = self.length.min(data.len());
        let (data, rest) = data.split_at(n);
        self.length -= n;
        if let Some(last) = self.received.last_mut() {
            last.extend_from_slice(data);
        }
        if self.length == 0 {
            ctl.set_line_mode(rest);
        }
    }

    fn frame_error(&mut self, _: LineError, line: &[u8], ctl: &mut Control<'_>) {
        if line.len() > Self::MAX_LENGTH + 1 {
            ctl.set_line_mode(&line[Self::MAX_LENGTH + 1..]);
        }
    }

    fn timer_fired(&mut self, _: TimerId, ctl: &mut Control<'_>) {
        ctl.resume_producing();
    }
}

fn tester() -> LineProtocol<LineTester> {
    LineProtocol::new(LineTester::default())
}

fn received(conn: &MemoryTransport<LineProtocol<LineTester>>) -> Vec<&[u8]> {
    conn.protocol()
        .receiver()
        .received
        .iter()
        .map(|l| &l[..])
        .collect()
}

/// The tester fed `input` in every chunk size, each checked to have received `expected`.
fn tester_receives(
    input: &[u8],
    expected: &[&[u8]],
) -> Vec<MemoryTransport<LineProtocol<LineTester>>> {
    let fed_in = |size| {
        let conn = fed(tester(), input, size);
        assert_eq!(received(&conn), expected, "chunk size {size}");
        conn
    };
    chunk_sizes(input).map(fed_in).collect()
}

const BUFFER: &[u8] = b"len 10\n\n0123456789len 5\n\n1234\nlen 20\nfoo 123\n\n0123456789\n012345678len 0\nfoo 5\n\n1234567890123456789012345678901234567890123456789012345678901234567890\nlen 1\n\na";

#[test]
fn test_buffer_every_chunk_size() {
    let expected: Vec<&[u8]> = vec![
        b"len 10",
        b"0123456789",
        b"len 5",
        b"1234\n",
        b"len 20",
        b"foo 123",
        b"0123456789\n012345678",
        b"len 0",
        b"foo 5",
        b"",
        b"67890",
        b"len 1",
        b"a",
    ];
    for conn in tester_receives(BUFFER, &expected) {
        assert!(!conn.is_closing());
    }
}

/// Feeds `input` to the tester in every chunk size: it pauses on some line (and resumes
/// from a zero timer); `before` is what it received while paused, `after` once resumed.
fn pauses_then_resumes(input: &[u8], before: &[&[u8]], after: &[&[u8]]) {
    for size in chunk_sizes(input) {
        let mut conn = fed(tester(), input, size);
        assert_eq!(received(&conn), before, "size {size}");
        assert!(conn.transport().is_reading_paused(), "size {size}");
        conn.fire_due_timers();
        assert_eq!(received(&conn), after, "size {size}");
        assert!(!conn.transport().is_reading_paused(), "size {size}");
        assert_eq!(conn.protocol().buffered(), 0, "size {size}");
    }
}

#[test]
fn test_pausing_every_chunk_size() {
    pauses_then_resumes(
        b"twiddle1\ntwiddle2\npause\ntwiddle3\n",
        &[b"twiddle1", b"twiddle2", b"pause"],
        &[b"twiddle1", b"twiddle2", b"pause", b"twiddle3"],
    );
}

#[test]
fn test_raw_pausing_every_chunk_size() {
    pauses_then_resumes(
        b"twiddle1\ntwiddle2\nlen 5\nrawpause\n12345twiddle3\n",
        &[b"twiddle1", b"twiddle2", b"len 5", b"rawpause", b""],
        &[
            b"twiddle1",
            b"twiddle2",
            b"len 5",
            b"rawpause",
            b"12345",
            b"twiddle3",
        ],
    );
}

#[test]
fn test_stop_producing_every_chunk_size() {
    let input = b"twiddle1\ntwiddle2\nstop\nmore\nstuff\n";
    for conn in tester_receives(input, &[b"twiddle1", b"twiddle2", b"stop"]) {
        assert!(conn.is_closing());
    }
}

#[test]
fn test_line_receiver_as_producer() {
    let input = b"produce\nhello world\nunproduce\ngoodbye\n";
    tester_receives(
        input,
        &[b"produce", b"hello world", b"unproduce", b"goodbye"],
    );
}

#[derive(Default)]
struct Clearing {
    line: Vec<u8>,
    rest: Vec<u8>,
    all: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Receiver for Clearing {
    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
        self.line = line.to_vec();
        self.rest = ctl.clear_line_buffer();
        self.all.push((self.line.clone(), self.rest.clone()));
    }
}

#[test]
fn test_clear_line_buffer() {
    let mut conn = MemoryTransport::new(LineProtocol::new(Clearing::default()));
    conn.feed(b"foo\r\nbar\r\nbaz");
    assert_eq!(conn.protocol().receiver().line, b"foo");
    assert_eq!(conn.protocol().receiver().rest, b"bar\r\nbaz");
    conn.feed(b"quux\r\n");
    assert_eq!(conn.protocol().receiver().line, b"quux");
    assert_eq!(conn.protocol().receiver().rest, b"");
}

#[test]
fn clear_line_buffer_with_a_split_line_every_chunk_size() {
    // Whatever the chunking, the first line is delivered and everything after it is
    // returned by `clear_line_buffer` (from that read) or dropped: nothing is delivered twice.
    let input = b"foo\r\nbar\r\nbaz";
    for size in chunk_sizes(input) {
        let conn = fed(LineProtocol::new(Clearing::default()), input, size);
        let all = &conn.protocol().receiver().all;
        assert_eq!(all[0].0, b"foo", "size {size}");
        assert!(b"bar\r\nbaz".starts_with(&all[0].1), "size {size}");
        // Whatever was cleared is never delivered: lines come only from what followed.
        let delivered: usize = all.iter().map(|(l, r)| l.len() + r.len()).sum();
        assert!(delivered <= input.len(), "size {size}");
    }
}

/// Twisted's `FlippingLineTester`: flips to raw mode after every line, and back after one byte.
#[derive(Default)]
struct Flipping {
    lines: Vec<Vec<u8>>,
}

impl Receiver for Flipping {
    const DELIMITER: &'static [u8] = b"\n";
    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
        self.lines.push(line.to_vec());
        ctl.set_raw_mode();
    }
    fn raw_data_received(&mut self, data: &[u8], ctl: &mut Control<'_>) {
        ctl.set_line_mode(&data[1..]);
    }
}

#[test]
fn test_stack_recursion() {
    for limit in [1000, 200_000] {
        let input = b"x\nx".repeat(limit);
        let mut conn = MemoryTransport::new(LineProtocol::new(Flipping::default()));
        conn.feed(&input);
        assert_eq!(conn.protocol().receiver().lines.concat(), vec![b'x'; limit]);
    }
}

#[test]
fn flipping_with_copied_extra_does_not_recurse() {
    /// Hands back a copy (not a slice of the data): the slow path, still iterative.
    #[derive(Default)]
    struct CopyFlip(usize);
    impl Receiver for CopyFlip {
        const DELIMITER: &'static [u8] = b"\n";
        fn frame_received(&mut self, _: &[u8], ctl: &mut Control<'_>) {
            self.0 += 1;
            ctl.set_raw_mode();
        }
        fn raw_data_received(&mut self, data: &[u8], ctl: &mut Control<'_>) {
            let copy = data[1..].to_vec();
            ctl.set_line_mode(&copy);
        }
    }
    let input = b"x\nx".repeat(3000);
    let mut conn = MemoryTransport::new(LineProtocol::new(CopyFlip::default()));
    conn.feed(&input);
    assert_eq!(conn.protocol().receiver().0, 3000);
}

#[test]
fn set_line_mode_extra_from_line_received_is_parsed_next() {
    // Twisted re-orders this (EXTRA, b, X); here the handed-back bytes come first.
    let inject = || {
        Frames::then(|line, ctl| {
            if line == b"EXTRA" {
                ctl.set_line_mode(b"X\r\n");
            }
        })
    };
    let input = b"EXTRA\r\nb\r\n";
    for size in chunk_sizes(input) {
        let conn = fed(LineProtocol::new(inject()), input, size);
        assert_eq!(
            conn.protocol().receiver().0,
            [b"EXTRA".to_vec(), b"X".to_vec(), b"b".to_vec()]
        );
    }
}

/// A plain receiver with the defaults (`\r\n`, 16384) that records lines.
type Plain = Frames;

const M: usize = 16384;

fn big_chunk_sizes(len: usize) -> impl Iterator<Item = usize> {
    // Every size would be 16k runs of 16k bytes: take the small ones, the ones around the
    // boundaries, and the whole.
    (1..=9)
        .chain([100, 1000, 4096, M - 1, M, M + 1, M + 2, M + 3])
        .chain(std::iter::once(len))
        .filter(move |&s| s <= len)
}

#[test]
fn test_maximum_line_length_closes_with_a_reason() {
    let mut input = vec![b'x'; M + 1];
    input.extend_from_slice(b"\r\nr");
    for size in big_chunk_sizes(input.len()) {
        let conn = fed(LineProtocol::new(Plain::default()), &input, size);
        assert_closed_with::<LineError, _>(&conn, "line longer than 16384 bytes", size);
        assert!(conn.protocol().receiver().0.is_empty());
    }
}

#[test]
fn test_maximum_line_length_remaining() {
    let input = vec![b'x'; M + 2];
    for size in big_chunk_sizes(input.len()) {
        let conn = fed(LineProtocol::new(Plain::default()), &input, size);
        assert!(conn.is_closing(), "size {size}");
    }
}

#[test]
fn not_quite_maximum_unfinished_and_exact_maximum() {
    // M bytes and half a delimiter: fine; M + 1 bytes with no delimiter: fine (< M + 2).
    for input in [[vec![b'x'; M], b"\r".to_vec()].concat(), vec![b'x'; M + 1]] {
        for size in big_chunk_sizes(input.len()) {
            let conn = fed(LineProtocol::new(Plain::default()), &input, size);
            assert!(!conn.is_closing(), "size {size}");
            assert!(conn.protocol().buffered() <= M + 1);
        }
    }
    // A line of exactly M bytes, its delimiter split anywhere, is delivered.
    let input = [vec![b'x'; M], b"\r\nnext\r\n".to_vec()].concat();
    for size in big_chunk_sizes(input.len()) {
        let conn = fed(LineProtocol::new(Plain::default()), &input, size);
        assert!(!conn.is_closing(), "size {size}");
        assert_eq!(
            conn.protocol().receiver().0,
            [vec![b'x'; M], b"next".to_vec()]
        );
    }
}

#[test]
fn test_maximum_line_length_partial_delimiter() {
    let proto = LineProtocol::new(LineTester::default()).with_max_length(4);
    let mut conn = MemoryTransport::new(proto);
    conn.feed(b"xxx");
    conn.feed(b"");
    conn.feed(b"\nxxx");
    assert!(!conn.is_closing());
    assert_eq!(received(&conn), [&b"xxx"[..]]);
}

#[test]
fn boundary_matrix_small() {
    // Twisted's matrix with M = 3 and `\r\n`, every chunk size.
    let cases: &[(&[u8], &[&[u8]], bool)] = &[
        (b"xxx\r\n", &[b"xxx"], false),
        (b"xxxx\r\n", &[], true),
        (b"xxx", &[], false),
        (b"xxxx", &[], false),
        (b"xxx\r", &[], false),
        (b"xxxxx", &[], true),
        (b"a\r\nxxxx\r\nb\r\n", &[b"a"], true),
        (b"\r\n\r\n", &[b"", b""], false),
        (b"a\r\nb\r\n", &[b"a", b"b"], false),
    ];
    for (input, lines, closes) in cases {
        for size in chunk_sizes(input) {
            let conn = fed(
                LineProtocol::new(Plain::default()).with_max_length(3),
                input,
                size,
            );
            assert_eq!(
                conn.protocol().receiver().0,
                *lines,
                "{input:?} size {size}"
            );
            assert_eq!(conn.is_closing(), *closes, "{input:?} size {size}");
        }
    }
}

/// Twisted's `ExcessivelyLargeLineCatcher` (MAX_LENGTH 6).
#[derive(Default)]
struct Catcher {
    long_lines: Vec<Vec<u8>>,
}
impl Receiver for Catcher {
    const MAX_LENGTH: usize = 6;
    fn frame_received(&mut self, _: &[u8], _: &mut Control<'_>) {}
    fn frame_error(&mut self, _: LineError, data: &[u8], _: &mut Control<'_>) {
        self.long_lines.push(data.to_vec());
    }
}

fn catch(input: &[u8]) -> Vec<Vec<u8>> {
    let mut conn = MemoryTransport::new(LineProtocol::new(Catcher::default()));
    conn.feed(input);
    assert!(!conn.is_closing());
    conn.into_protocol().into_inner().long_lines
}

#[test]
fn line_length_exceeded_arguments() {
    let excessive = vec![b'x'; 14];
    assert_eq!(catch(&excessive), std::slice::from_ref(&excessive));
    assert_eq!(
        catch(&[b"x\r\n".to_vec(), excessive.clone()].concat()),
        std::slice::from_ref(&excessive)
    );
    let with_delim = [excessive.clone(), b"\r\n".to_vec(), excessive.clone()].concat();
    assert_eq!(catch(&with_delim), std::slice::from_ref(&with_delim));
    let multiple = [excessive.clone(), b"\r\n".to_vec()].concat().repeat(2);
    assert_eq!(catch(&multiple), std::slice::from_ref(&multiple));
}

#[test]
fn long_line_split_across_reads_reports_everything_buffered() {
    let mut conn = MemoryTransport::new(LineProtocol::new(Catcher::default()));
    conn.feed(b"xxxx");
    conn.feed(b"yyyy\r\nzz");
    assert_eq!(
        conn.protocol().receiver().long_lines,
        [b"xxxxyyyy\r\nzz".to_vec()]
    );
    assert_eq!(conn.protocol().buffered(), 0);
}

/// Twisted's `ConsumingProtocol`: writes each line, then pauses.
struct Consuming;
impl Receiver for Consuming {
    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
        ctl.transport().write(line);
        ctl.pause_producing();
    }
}

#[test]
fn test_pause_resume() {
    /// What the test does next: feed bytes, or resume producing.
    enum Step {
        Feed(&'static [u8]),
        Resume,
    }
    use Step::{Feed, Resume};
    // Each step, then what was written after it, and whether the protocol is paused.
    let script: [(Step, &[u8], bool); 8] = [
        (Feed(b"hello, "), b"", false),
        (Feed(b"world\r\n"), b"hello, world", true),
        (Resume, b"", false),
        (Feed(b"hello\r\nworld\r\n"), b"hello", true),
        (Resume, b"world", true),
        (Feed(b"goodbye\r\n"), b"", true),
        (Resume, b"goodbye", true),
        (Resume, b"", false),
    ];
    let mut conn = MemoryTransport::new(LineProtocol::new(Consuming));
    for (i, (step, written, paused)) in script.into_iter().enumerate() {
        match step {
            Feed(data) => conn.feed(data),
            Resume => conn.with(|p, t| p.resume_producing(t)),
        }
        assert_eq!(&conn.take_written()[..], written, "step {i}");
        assert_eq!(conn.protocol().is_paused(), paused, "step {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn resume_through_a_handle_delivers_buffered_lines_without_new_data() {
    assert_eq!(
        resumed_through_a_handle::<Line>(b"one\r\ntwo\r\nthree\r\n").await,
        [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
}

#[test]
fn lines_after_lose_connection_are_not_delivered() {
    let quit = || {
        Frames::then(|line, ctl| {
            if line == b"quit" {
                ctl.transport().lose_connection();
            }
        })
    };
    let input = b"a\r\nquit\r\nb\r\n";
    for size in chunk_sizes(input) {
        let conn = fed(LineProtocol::new(quit()), input, size);
        assert_eq!(
            conn.protocol().receiver().0,
            [b"a".to_vec(), b"quit".to_vec()]
        );
    }
}

#[test]
fn lines_hold_any_byte_and_delimiters_can_be_long() {
    let proto = LineProtocol::new(Plain::default()).with_delimiter(&b"<END>"[..]);
    let input = b"\x00\xff\xfe<EN<END>\r\n<END>";
    for size in chunk_sizes(input) {
        let conn = fed(
            LineProtocol::new(Plain::default()).with_delimiter(&b"<END>"[..]),
            input,
            size,
        );
        assert_eq!(
            conn.protocol().receiver().0,
            [b"\x00\xff\xfe<EN".to_vec(), b"\r\n".to_vec()]
        );
    }
    drop(proto);
}

#[test]
fn delimiter_change_applies_to_the_next_line() {
    let switch = || {
        Frames::then(|line, ctl| {
            if line == b"nl" {
                ctl.set_delimiter(&b"\n"[..]);
            }
        })
    };
    let input = b"a\r\nnl\r\nb\nc\r\n";
    for size in chunk_sizes(input) {
        let conn = fed(LineProtocol::new(switch()), input, size);
        assert_eq!(
            conn.protocol().receiver().0,
            [
                b"a".to_vec(),
                b"nl".to_vec(),
                b"b".to_vec(),
                b"c\r".to_vec()
            ]
        );
    }
}

#[test]
fn idle_connection_holds_no_buffer_and_big_buffers_are_freed() {
    let mut conn = MemoryTransport::new(LineProtocol::new(Plain::default()));
    assert_eq!(conn.protocol().buffered(), 0);
    conn.feed(b"abc");
    assert_eq!(conn.protocol().buffered(), 3);
    conn.feed(b"\r\n");
    assert_eq!(conn.protocol().buffered(), 0);
    assert_eq!(conn.protocol().receiver().0, [b"abc".to_vec()]);
    let reason = conn.finish(DisconnectReason::ConnectionDone);
    assert!(reason.is_clean());
}

#[test]
fn lines_inside_one_read_are_not_copied() {
    #[derive(Default)]
    struct Ptrs(Vec<usize>);
    impl Receiver for Ptrs {
        fn frame_received(&mut self, line: &[u8], _: &mut Control<'_>) {
            self.0.push(line.as_ptr() as usize);
        }
    }
    let mut conn = MemoryTransport::new(LineProtocol::new(Ptrs::default()));
    conn.feed(b"par");
    let read = b"tial\r\nfirst\r\nsecond\r\ntail";
    conn.feed(read);
    let base = read.as_ptr() as usize;
    let ptrs = &conn.protocol().receiver().0;
    assert_eq!(ptrs.len(), 3);
    // The split line was gathered in the buffer; the next two point into the read itself.
    assert!(!(base..base + read.len()).contains(&ptrs[0]));
    assert_eq!(ptrs[1], base + 6);
    assert_eq!(ptrs[2], base + 13);
    assert_eq!(conn.protocol().buffered(), 4);
}

#[test]
fn a_big_read_of_small_lines_is_linear() {
    // 200k lines in one read: quadratic buffering (Twisted's #6357) would take minutes.
    let input = b"abcd\r\n".repeat(200_000);
    let start = std::time::Instant::now();
    let mut conn = MemoryTransport::new(LineProtocol::new(Plain::default()));
    conn.feed(&input);
    assert_eq!(conn.protocol().receiver().0.len(), 200_000);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn raw_mode_switched_from_outside_delivers_the_pending_tail() {
    #[derive(Default)]
    struct Raw(Vec<Vec<u8>>);
    impl Receiver for Raw {
        fn frame_received(&mut self, _: &[u8], _: &mut Control<'_>) {}
        fn raw_data_received(&mut self, data: &[u8], _: &mut Control<'_>) {
            self.0.push(data.to_vec());
        }
    }
    let mut conn = MemoryTransport::new(LineProtocol::new(Raw::default()));
    conn.feed(b"line\r\npart");
    conn.with(|p, t| p.with_control(t, |_, ctl| ctl.set_raw_mode()));
    assert_eq!(conn.protocol().receiver().0, [b"part".to_vec()]);
    conn.feed(b"more");
    assert_eq!(
        conn.protocol().receiver().0,
        [b"part".to_vec(), b"more".to_vec()]
    );
    // And back, handing bytes in from outside a callback: parsed at once.
    conn.with(|p, t| p.with_control(t, |_, ctl| ctl.set_line_mode(b"x\r\ny")));
    assert_eq!(conn.protocol().buffered(), 1);
}

#[test]
fn default_raw_data_received_drops_and_eof_closes() {
    struct NoRaw;
    impl Receiver for NoRaw {
        fn frame_received(&mut self, _: &[u8], ctl: &mut Control<'_>) {
            ctl.set_raw_mode();
        }
    }
    let mut conn = MemoryTransport::new(LineProtocol::new(NoRaw));
    conn.feed(b"go\r\nraw bytes");
    assert_eq!(conn.protocol().buffered(), 0);
    assert!(!conn.is_closing());
    conn.feed_eof();
    assert!(conn.is_closing());
}

#[test]
fn pausing_polls_nothing_and_a_handle_resume_delivers_at_once() {
    let mut conn = MemoryTransport::new(LineProtocol::new(Consuming));
    conn.feed(b"a\r\nb\r\n");
    // Paused after "a" with "b" held: no polling timer (weft-core calls reading_resumed).
    assert_eq!(conn.transport().pending_timers(), 0);
    assert_eq!(conn.written(), b"a");
    let handle = conn.transport_mut().handle();
    handle.resume_producing().unwrap();
    conn.run_pending();
    // "b" was delivered (pausing again) without new data.
    assert_eq!(conn.written(), b"ab");
    conn.with(|p, t| p.resume_producing(t));
    assert_eq!(conn.transport().pending_timers(), 0);
    assert_eq!(conn.written(), b"ab");
}

/// Pauses after a line that floods the write buffer, so that reading is paused twice over:
/// by the receiver and by backpressure.
#[derive(Default)]
struct FloodThenPause {
    received: Vec<Vec<u8>>,
    handle: Option<weft_core::TransportHandle>,
}

impl Receiver for FloodThenPause {
    fn connection_made(&mut self, ctl: &mut Control<'_>) {
        self.handle = Some(ctl.transport().handle());
    }
    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
        self.received.push(line.to_vec());
        if line == b"flood" {
            ctl.transport().write(vec![b'x'; 200_000]); // above the 64 KiB high water mark
            ctl.pause_producing();
        }
    }
}

#[test]
fn a_resume_through_a_handle_delivers_held_lines_despite_backpressure() {
    let mut conn = MemoryTransport::new(LineProtocol::new(FloodThenPause::default()));
    conn.feed(b"flood\r\nnext\r\n");
    assert_eq!(conn.protocol().receiver().received, [b"flood".to_vec()]);
    let handle = conn.protocol().receiver().handle.clone().expect("handle");
    handle.resume_producing().expect("open");
    conn.run_pending();
    // The receiver's own pause is over: its held line arrives now, although the unread
    // output still holds reading of the peer paused.
    assert!(conn.transport().is_reading_paused());
    assert!(!conn.transport().is_producing_paused());
    assert_eq!(
        conn.protocol().receiver().received,
        [b"flood".to_vec(), b"next".to_vec()]
    );
}
