//! Delimiter and maximum-length edge cases found by feeding Twisted's vectors in every chunk
//! size (issue 11, items 11 and 12), and the `any` line ending (`\n` or `\r\n`) that `nc`
//! and `telnet` users need (issue 16), in every line framing: `LineProtocol`,
//! `LineOnlyProtocol` and `LineCodec`.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};
use weft_core::testing::MemoryTransport;
use weft_line::{
    Control, Delimiter, LineCodec, LineError, LineFraming, LineOnly, LineOnlyProtocol,
    LineProtocol, Receiver,
};

use crate::{close_error, encode_error};

/// Lines, and whether the length limit was hit.
#[derive(Default, Debug)]
pub(crate) struct Lines {
    pub(crate) lines: Vec<Vec<u8>>,
    pub(crate) exceeded: bool,
}

/// Written once for both line framings.
impl<const RAW: bool> Receiver<LineFraming<RAW>> for Lines {
    fn frame_received(&mut self, line: &[u8], _: &mut Control<'_, LineFraming<RAW>>) {
        self.lines.push(line.to_vec());
    }
    fn frame_error(&mut self, _: LineError, _: &[u8], ctl: &mut Control<'_, LineFraming<RAW>>) {
        self.exceeded = true;
        ctl.transport().lose_connection();
    }
}

/// The lines a codec decodes from `reads`, and whether it failed on a long line.
fn codec_lines(mut codec: LineCodec, reads: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let mut buf = BytesMut::new();
    let mut lines = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(line)) => lines.push(line.to_vec()),
                Ok(None) => break,
                Err(LineError::TooLong { .. }) => return (lines, true),
                Err(e) => panic!("{e}"),
            }
        }
    }
    (lines, false)
}

/// `reads` through every line framing with `delimiter` and `max`: each gives `want`.
fn every_framing(delimiter: Delimiter, max: usize, reads: &[&[u8]], want: (&[&[u8]], bool)) {
    let want_lines: Vec<Vec<u8>> = want.0.iter().map(|l| l.to_vec()).collect();
    let mut line = MemoryTransport::new(
        LineProtocol::new(Lines::default())
            .with_delimiter(delimiter.clone())
            .with_max_length(max),
    );
    let mut only = MemoryTransport::new(
        LineOnlyProtocol::new(Lines::default())
            .with_delimiter(delimiter.clone())
            .with_max_length(max),
    );
    for read in reads {
        line.feed(read);
        only.feed(read);
    }
    let got = line.protocol().receiver();
    assert_eq!(
        (&got.lines, got.exceeded),
        (&want_lines, want.1),
        "LineProtocol"
    );
    let got = only.protocol().receiver();
    assert_eq!(
        (&got.lines, got.exceeded),
        (&want_lines, want.1),
        "LineOnlyProtocol"
    );
    let codec = LineCodec::new().delimiter(delimiter).max_length(max);
    assert_eq!(codec_lines(codec, reads), (want_lines, want.1), "LineCodec");
}

#[test]
fn issue_11_a_split_three_byte_delimiter_does_not_count_toward_the_limit() {
    let reads: [&[u8]; 8] = [b"xxxxxxxx", b"E", b"N", b"D", b"y", b"E", b"N", b"D"];
    every_framing(
        Delimiter::from(b"END"),
        8,
        &reads,
        (&[b"xxxxxxxx", b"y"], false),
    );
    // One byte more is too long, however it arrives.
    let reads: [&[u8]; 4] = [b"xxxxxxxx", b"E", b"N", b"x"];
    every_framing(Delimiter::from(b"END"), 8, &reads, (&[], true));
}

#[test]
fn issue_11_an_empty_read_after_a_split_crlf_does_not_count_toward_the_limit() {
    let reads: [&[u8]; 5] = [b"xxxxxxxx", b"\r", b"", b"\n", b"ok\r\n"];
    every_framing(
        Delimiter::from(b"\r\n"),
        8,
        &reads,
        (&[b"xxxxxxxx", b"ok"], false),
    );
}

#[test]
fn issue_11_set_delimiter_with_a_partial_line_buffered_does_not_panic() {
    // Twisted: "abc;def", then delimiter = ";", then "ghi;" gives "abc", "defghi".
    let mut conn = MemoryTransport::new(LineProtocol::new(Lines::default()));
    conn.feed(b"abc;def");
    conn.with(|p, t| p.with_control(t, |_, ctl| ctl.set_delimiter(b";")));
    conn.feed(b"ghi;");
    assert_eq!(conn.protocol().receiver().lines, [&b"abc"[..], b"defghi"]);
    assert!(!conn.is_closing());
    let mut conn = MemoryTransport::new(LineOnlyProtocol::new(Lines::default()));
    conn.feed(b"abc;def");
    conn.with(|p, t| p.with_control(t, |_, ctl| ctl.set_delimiter(b";")));
    conn.feed(b"ghi;");
    assert_eq!(conn.protocol().receiver().lines, [&b"abc"[..], b"defghi"]);

    // The codec, its delimiter changed between two reads.
    let mut codec = LineCodec::new();
    let mut buf = BytesMut::from(&b"abc;def"[..]);
    assert_eq!(codec.decode(&mut buf).expect("no error"), None);
    let mut codec = codec.delimiter(b";");
    buf.extend_from_slice(b"ghi;");
    assert_eq!(
        codec.decode(&mut buf).expect("ok").as_deref(),
        Some(&b"abc"[..])
    );
    assert_eq!(
        codec.decode(&mut buf).expect("ok").as_deref(),
        Some(&b"defghi"[..])
    );
}

#[test]
fn issue_11_set_max_length_with_a_partial_line_buffered() {
    // Lowered under what is buffered: too long at once, not an overflow.
    let mut conn = MemoryTransport::new(LineProtocol::new(Lines::default()));
    conn.feed(b"ok\r\nabcdefgh");
    conn.with(|p, t| p.with_control(t, |_, ctl| ctl.set_max_length(4)));
    conn.feed(b"\r\n");
    let got = conn.protocol().receiver();
    assert_eq!(
        (&got.lines[..], got.exceeded),
        (&[b"ok".to_vec()][..], true)
    );
    // Raised: the buffered bytes count once.
    let mut conn = MemoryTransport::new(LineProtocol::new(Lines::default()).with_max_length(4));
    conn.feed(b"abcd");
    conn.with(|p, t| p.with_control(t, |_, ctl| ctl.set_max_length(6)));
    conn.feed(b"ef\r\n");
    assert_eq!(conn.protocol().receiver().lines, [b"abcdef"]);
}

#[test]
fn issue_16_any_line_ending_takes_lf_and_crlf() {
    let reads: [&[u8]; 4] = [b"from nc\nfrom telnet\r", b"\n", b"\r\n", b"a\r\r\n"];
    every_framing(
        Delimiter::ANY,
        16,
        &reads,
        (&[b"from nc", b"from telnet", b"", b"a\r"], false),
    );
}

#[test]
fn issue_16_any_line_ending_does_not_count_the_cr() {
    // 8 bytes and `\r\n`, split anywhere: fine; 9 bytes and `\n`: too long.
    for cut in 0..=10 {
        let input = b"12345678\r\n";
        let (a, b) = input.split_at(cut);
        every_framing(Delimiter::ANY, 8, &[a, b], (&[b"12345678"], false));
    }
    for cut in 0..=10 {
        let input = b"123456789\n";
        let (a, b) = input.split_at(cut);
        every_framing(Delimiter::ANY, 8, &[a, b], (&[], true));
    }
    every_framing(Delimiter::ANY, 8, &[b"12345678\r\r\n"], (&[], true));
    every_framing(Delimiter::ANY, 8, &[b"123456789"], (&[], false));
    every_framing(Delimiter::ANY, 8, &[b"1234567890"], (&[], true));
}

#[test]
fn issue_16_any_answers_with_the_peers_line_ending() {
    struct Echo;
    impl Receiver for Echo {
        fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
            ctl.send_line(line);
        }
    }
    impl Receiver<LineOnly> for Echo {
        fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_, LineOnly>) {
            ctl.send_line(line);
        }
    }
    let input = b"lf\ncrlf\r\n\nlast";
    for size in crate::chunk_sizes(input) {
        let conn = crate::fed(
            LineProtocol::new(Echo).with_delimiter(Delimiter::ANY),
            input,
            size,
        );
        assert_eq!(conn.written(), b"lf\ncrlf\r\n\n", "size {size}");
        let conn = crate::fed(
            LineOnlyProtocol::new(Echo).with_delimiter(Delimiter::ANY),
            input,
            size,
        );
        assert_eq!(conn.written(), b"lf\ncrlf\r\n\n", "size {size}");
    }
    // The codec: encoded lines end as the last decoded one did (`\r\n` before any).
    let mut codec = LineCodec::new().delimiter(Delimiter::ANY);
    let mut out = BytesMut::new();
    codec.encode("hi", &mut out).expect("encodable");
    let mut buf = BytesMut::from(&b"x\n"[..]);
    assert!(codec.decode(&mut buf).expect("ok").is_some());
    codec.encode("hi", &mut out).expect("encodable");
    assert_eq!(&out[..], b"hi\r\nhi\n");
    // A line that would not read back as itself is refused.
    for line in ["a\nb", "a\r"] {
        let error = encode_error(&mut codec, line);
        assert!(
            matches!(error, LineError::DelimiterInLine),
            "{line:?}: {error:?}"
        );
    }
}

#[test]
fn issue_16_any_line_too_long_closes_with_the_reason() {
    struct Quiet;
    impl Receiver for Quiet {
        fn frame_received(&mut self, _: &[u8], _: &mut Control<'_>) {}
    }
    let mut conn = MemoryTransport::new(
        LineProtocol::new(Quiet)
            .with_delimiter(Delimiter::ANY)
            .with_max_length(3),
    );
    conn.feed(b"abc\r\nabcd\n");
    assert_eq!(
        close_error::<LineError, _>(&conn).as_deref(),
        Some("line longer than 3 bytes")
    );
}
