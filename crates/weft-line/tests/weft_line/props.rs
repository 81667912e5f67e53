//! proptest: encoding then decoding random frames split at random points is the identity,
//! for every codec (and for the protocols fed the same way).

use crate::edge_cases::Lines as Recorder;
use crate::line_receiver::LineTester;
use bytes::BytesMut;
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};
use weft_core::testing::MemoryTransport;
use weft_line::{
    Control, Delimiter, Int8Codec, Int16Codec, Int32Codec, Int32Protocol, LineCodec,
    LineOnlyProtocol, LineProtocol, NetstringCodec, NetstringProtocol, Receiver, StringFraming,
};

/// Cuts `wire` at the (sorted, deduplicated) points.
fn split<'a>(wire: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(0);
    points.push(wire.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| &wire[w[0]..w[1]]).collect()
}

fn round_trip<C, E>(mut codec: C, frames: &[Vec<u8>], cuts: &[usize]) -> Vec<Vec<u8>>
where
    C: Decoder<Item = bytes::Bytes, Error = E> + for<'a> Encoder<&'a [u8], Error = E> + Clone,
    E: std::fmt::Debug,
{
    let mut wire = BytesMut::new();
    for f in frames {
        codec.encode(&f[..], &mut wire).expect("encodable");
    }
    let mut decoder = codec.clone();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in split(&wire, cuts) {
        buf.extend_from_slice(piece);
        while let Some(f) = decoder.decode(&mut buf).expect("valid") {
            out.push(f.to_vec());
        }
    }
    while let Some(f) = decoder.decode_eof(&mut buf).expect("valid") {
        out.push(f.to_vec());
    }
    out
}

/// One round-trip proptest per string codec: (test name, codec, longest frame + 1).
macro_rules! string_codec_round_trips {
    ($($name:ident: $codec:expr, $max:expr;)*) => {
        proptest! {
            $(
                #[test]
                fn $name(frames in frames($max), cuts in cuts()) {
                    prop_assert_eq!(round_trip($codec, &frames, &cuts), frames);
                }
            )*
        }
    };
}

string_codec_round_trips! {
    netstring_codec: NetstringCodec::new(), 300;
    int8_codec: Int8Codec::new(), 256;
    int16_codec: Int16Codec::new(), 600;
    int32_codec: Int32Codec::new(), 600;
}

fn frames(max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..max), 0..20)
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(any::<usize>(), 0..30)
}

#[derive(Default)]
struct Lines(Vec<Vec<u8>>);
impl Receiver for Lines {
    fn frame_received(&mut self, line: &[u8], _: &mut Control<'_>) {
        self.0.push(line.to_vec());
    }
}

/// What Twisted's length rule gives for the whole input: every line up to the first one
/// longer than `max`; a rest with no delimiter fails once it reaches `max + delimiter.len()`.
fn expected_lines(input: &[u8], delim: &[u8], max: usize) -> (Vec<Vec<u8>>, bool) {
    let mut lines = Vec::new();
    let mut rest = input;
    while let Some(i) = rest.windows(delim.len()).position(|w| w == delim) {
        if i > max {
            return (lines, true);
        }
        lines.push(rest[..i].to_vec());
        rest = &rest[i + delim.len()..];
    }
    (lines, rest.len() >= max + delim.len())
}

#[derive(Default)]
struct Strings(Vec<Vec<u8>>);
impl<F: StringFraming> Receiver<F> for Strings {
    fn frame_received(&mut self, s: &[u8], _: &mut Control<'_, F>) {
        self.0.push(s.to_vec());
    }
}

/// Inputs for Twisted's `LineTester`: `len N` lines announcing raw data, empty lines that
/// switch to raw mode, long lines (over its 64-byte maximum), any bytes.
fn line_tester_input() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        (0usize..12).prop_map(|n| format!("len {n}\n").into_bytes()),
        Just(b"\n".to_vec()),
        prop::collection::vec(prop::sample::select(b"ab\n".to_vec()), 0..20),
        (60usize..140).prop_map(|n| [vec![b'x'; n], b"\n".to_vec()].concat()),
    ];
    prop::collection::vec(token, 0..30).prop_map(|v| v.concat())
}

/// A step of a connection whose framing changes mid-stream.
#[derive(Debug, Clone)]
enum Step {
    Feed(Vec<u8>),
    Delimiter(Delimiter),
    MaxLength(usize),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let delimiter = prop::sample::select(vec![
        Delimiter::from(b"\n"),
        Delimiter::from(b"\r\n"),
        Delimiter::from(b";"),
        Delimiter::from(b"a;b"),
        Delimiter::ANY,
    ]);
    let step = prop_oneof![
        4 => prop::collection::vec(prop::sample::select(b"ab;\r\n".to_vec()), 0..12)
            .prop_map(Step::Feed),
        1 => delimiter.prop_map(Step::Delimiter),
        1 => (0usize..10).prop_map(Step::MaxLength),
    ];
    prop::collection::vec(step, 0..40)
}

/// Twisted's semantics for the whole buffer under the current rule: the lines it holds, then
/// whether the rest is too long (see `scan.rs` for the rule).
fn model_parse(buf: &mut Vec<u8>, delim: &Delimiter, max: usize, lines: &mut Vec<Vec<u8>>) -> bool {
    loop {
        let found = if delim.is_any() {
            buf.iter().position(|&b| b == b'\n').map(|j| {
                let cr = j > 0 && buf[j - 1] == b'\r';
                (j - usize::from(cr), j + 1)
            })
        } else {
            let d = delim.as_bytes();
            buf.windows(d.len())
                .position(|w| w == d)
                .map(|i| (i, i + d.len()))
        };
        match found {
            Some((len, _)) if len > max => return true,
            Some((len, consumed)) => {
                lines.push(buf[..len].to_vec());
                buf.drain(..consumed);
            }
            None => {
                let longest = if delim.is_any() {
                    2
                } else {
                    delim.as_bytes().len()
                };
                return buf.len() >= max + longest;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Mode switches, handed-back data and long lines give the same lines whatever the
    /// chunking (Twisted only manages this with an extra empty read: its test_buffer caveat).
    #[test]
    fn line_receiver_modes_do_not_depend_on_chunking(input in line_tester_input(), cuts in cuts()) {
        let mut whole = MemoryTransport::new(LineProtocol::new(LineTester::default()));
        whole.feed(&input);
        let mut chunked = MemoryTransport::new(LineProtocol::new(LineTester::default()));
        for piece in split(&input, &cuts) {
            chunked.feed(piece);
        }
        prop_assert_eq!(
            &whole.protocol().receiver().received,
            &chunked.protocol().receiver().received
        );
    }

    #[test]
    fn line_codec_crlf(frames in prop::collection::vec(
        prop::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..40), 0..20),
        cuts in cuts())
    {
        // A line ending in CR is fine: "a\r" + "\r\n" decodes as "a\r". Only the last frame
        // may be empty at EOF without a trace, so it always gets its delimiter.
        let got = round_trip(LineCodec::new().max_length(64), &frames, &cuts);
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn line_codec_any_delimiter(
        delim in prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'\r', b'\n']), 1..4),
        raw in prop::collection::vec(prop::collection::vec(
            prop::sample::select(vec![b'a', b'b', b'c', b'\r', b'\n']), 0..12), 0..12),
        cuts in cuts())
    {
        let mut codec = LineCodec::new().delimiter(delim).max_length(32);
        let mut scratch = BytesMut::new();
        let frames: Vec<Vec<u8>> = raw.into_iter()
            .filter(|f| codec.encode(&f[..], &mut scratch).is_ok())
            .collect();
        let got = round_trip(codec, &frames, &cuts);
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn line_protocol(frames in prop::collection::vec(
        prop::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..40), 0..20),
        cuts in cuts())
    {
        let mut wire = BytesMut::new();
        for f in &frames {
            LineCodec::new().encode(&f[..], &mut wire).expect("ok");
        }
        let mut conn = MemoryTransport::new(LineProtocol::new(Lines::default()));
        for piece in split(&wire, &cuts) {
            conn.feed(piece);
        }
        prop_assert_eq!(&conn.protocol().receiver().0, &frames);
        prop_assert_eq!(conn.protocol().buffered(), 0);
    }

    /// `LineOnlyProtocol` (whose one-byte delimiter has its own search loop) applies the
    /// length rule exactly, whatever the chunking and the delimiter.
    #[test]
    fn line_only_protocol_follows_the_length_rule(
        input in prop::collection::vec(prop::sample::select(b"ab\r\n".to_vec()), 0..120),
        delim in prop::sample::select(vec![&b"\n"[..], b"\r\n", b"a", b"ab"]),
        max in 0usize..12,
        cuts in cuts(),
    ) {
        let mut conn = MemoryTransport::new(
            LineOnlyProtocol::new(Recorder::default()).with_delimiter(delim).with_max_length(max),
        );
        for piece in split(&input, &cuts) {
            conn.feed(piece);
        }
        let (lines, exceeded) = expected_lines(&input, delim, max);
        let got = conn.protocol().receiver();
        prop_assert_eq!(&got.lines, &lines);
        prop_assert_eq!(got.exceeded, exceeded);
    }

    /// Delimiter and maximum-length changes at random points, a partial line buffered or not,
    /// never panic and give Twisted's lines, in every line framing (issue 11).
    #[test]
    fn framing_changes_mid_stream(steps in steps()) {
        let (mut buf, mut lines, mut exceeded) = (Vec::new(), Vec::new(), false);
        let (mut delim, mut max) = (Delimiter::from(b"\r\n"), 6);
        let mut line = MemoryTransport::new(
            LineProtocol::new(Recorder::default()).with_max_length(max),
        );
        let mut only = MemoryTransport::new(
            LineOnlyProtocol::new(Recorder::default()).with_max_length(max),
        );
        let mut codec = LineCodec::new().max_length(max);
        let (mut cbuf, mut clines, mut cfailed) = (BytesMut::new(), Vec::new(), false);
        for step in &steps {
            if exceeded {
                break;
            }
            match step {
                Step::Feed(bytes) => {
                    buf.extend_from_slice(bytes);
                    line.feed(bytes);
                    only.feed(bytes);
                    cbuf.extend_from_slice(bytes);
                }
                Step::Delimiter(d) => {
                    delim = d.clone();
                    line.with(|p, t| p.with_control(t, |_, ctl| ctl.set_delimiter(d.clone())));
                    only.with(|p, t| p.with_control(t, |_, ctl| ctl.set_delimiter(d.clone())));
                    codec = std::mem::take(&mut codec).delimiter(d.clone());
                }
                Step::MaxLength(m) => {
                    max = *m;
                    line.with(|p, t| p.with_control(t, |_, ctl| ctl.set_max_length(*m)));
                    only.with(|p, t| p.with_control(t, |_, ctl| ctl.set_max_length(*m)));
                    codec = std::mem::take(&mut codec).max_length(*m);
                }
            }
            exceeded = model_parse(&mut buf, &delim, max, &mut lines);
            while !cfailed {
                match codec.decode(&mut cbuf) {
                    Ok(Some(l)) => clines.push(l.to_vec()),
                    Ok(None) => break,
                    Err(_) => cfailed = true,
                }
            }
        }
        for got in [line.protocol().receiver(), only.protocol().receiver()] {
            prop_assert_eq!(&got.lines, &lines);
            prop_assert_eq!(got.exceeded, exceeded);
        }
        prop_assert_eq!(&clines, &lines);
        prop_assert_eq!(cfailed, exceeded);
    }

    #[test]
    fn string_protocols(frames in frames(300), cuts in cuts()) {
        let mut ns = BytesMut::new();
        let mut i32w = BytesMut::new();
        for f in &frames {
            NetstringCodec::new().encode(&f[..], &mut ns).expect("ok");
            Int32Codec::new().encode(&f[..], &mut i32w).expect("ok");
        }
        let mut conn = MemoryTransport::new(NetstringProtocol::new(Strings::default()));
        for piece in split(&ns, &cuts) {
            conn.feed(piece);
        }
        prop_assert_eq!(&conn.protocol().receiver().0, &frames);
        let mut conn = MemoryTransport::new(Int32Protocol::new(Strings::default()));
        for piece in split(&i32w, &cuts) {
            conn.feed(piece);
        }
        prop_assert_eq!(&conn.protocol().receiver().0, &frames);
    }
}
