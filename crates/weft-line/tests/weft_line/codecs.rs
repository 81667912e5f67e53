//! The codecs on their own and through `FramedRead`/`Framed`.

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio_util::codec::{Decoder, Encoder, Framed, FramedRead};
use weft_line::{
    FrameError, Int8Codec, Int16Codec, Int32Codec, LineCodec, LineError, NetstringCodec, OnTooLong,
};

use crate::{chunk_sizes, decode_error, encode_error};

/// Decodes `input` fed in chunks of `size`, then EOF.
fn decode_chunked<D: Decoder>(
    mut codec: D,
    input: &[u8],
    size: usize,
) -> Result<Vec<D::Item>, D::Error> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in input.chunks(size) {
        buf.extend_from_slice(chunk);
        while let Some(item) = codec.decode(&mut buf)? {
            out.push(item);
        }
    }
    while let Some(item) = codec.decode_eof(&mut buf)? {
        out.push(item);
    }
    Ok(out)
}

fn lines(v: &[Bytes]) -> Vec<&[u8]> {
    v.iter().map(|b| &b[..]).collect()
}

#[test]
fn line_codec_every_chunk_size() {
    let input = b"a\r\n\r\nb\x00\xff\r\r\n\nc\r\nlast";
    for size in chunk_sizes(input) {
        let out = decode_chunked(LineCodec::new(), input, size).expect("valid");
        assert_eq!(
            lines(&out),
            [&b"a"[..], b"", b"b\x00\xff\r", b"\nc", b"last"],
            "size {size}"
        );
    }
}

#[test]
fn line_codec_twisted_length_rule() {
    let m = 16384;
    let exact = [vec![b'x'; m], b"\r\n".to_vec()].concat();
    for size in [1, 2, 3, 1000, m, m + 1, m + 2] {
        let out = decode_chunked(LineCodec::new(), &exact, size).expect("accepted");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), m);
    }
    let long = [vec![b'x'; m + 1], b"\r\n".to_vec()].concat();
    for size in [1, 7, m + 1, m + 3] {
        assert!(matches!(
            decode_chunked(LineCodec::new(), &long, size),
            Err(LineError::TooLong { max_length: 16384 })
        ));
    }
    // No delimiter: fails at M + 2 bytes, not before.
    let mut codec = LineCodec::new();
    let mut buf = BytesMut::from(&vec![b'x'; m + 1][..]);
    assert!(codec.decode(&mut buf).expect("still fine").is_none());
    buf.extend_from_slice(b"x");
    assert!(codec.decode(&mut buf).is_err());
    // And the error sticks: garbage after it is never parsed as lines.
    buf.extend_from_slice(b"ok\r\n");
    assert!(codec.decode(&mut buf).is_err());
    assert!(buf.is_empty());
}

#[test]
fn line_codec_is_zero_copy() {
    let mut codec = LineCodec::new();
    let mut buf = BytesMut::from(&b"first\r\nsecond\r\n"[..]);
    let start = buf.as_ptr() as usize;
    let a = codec.decode(&mut buf).expect("ok").expect("line");
    let b = codec.decode(&mut buf).expect("ok").expect("line");
    assert_eq!(a.as_ptr() as usize, start);
    assert_eq!(b.as_ptr() as usize, start + 7);
}

#[test]
fn line_codec_discard_mode_goes_on_with_bounded_memory() {
    let mut codec = LineCodec::new()
        .max_length(8)
        .on_too_long(OnTooLong::Discard);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    buf.extend_from_slice(b"ok\r\n");
    // 10 MB without a delimiter, in 64 KiB reads: the buffer never grows past one read.
    let junk = vec![b'j'; 64 * 1024];
    for _ in 0..160 {
        buf.extend_from_slice(&junk);
        while let Some(l) = codec.decode(&mut buf).expect("discard mode never fails") {
            got.push(l);
        }
        assert!(buf.len() <= 8 + 2, "buffer holds {}", buf.len());
    }
    buf.extend_from_slice(b"\r");
    assert!(codec.decode(&mut buf).expect("ok").is_none());
    buf.extend_from_slice(b"\nafter\r\n");
    while let Some(l) = codec.decode(&mut buf).expect("ok") {
        got.push(l);
    }
    assert_eq!(lines(&got), [&b"ok"[..], b"after"]);
    assert_eq!(codec.discarded(), 1);
}

#[test]
fn close_mode_memory_is_bounded_too() {
    let mut codec = LineCodec::new().max_length(100);
    let mut buf = BytesMut::new();
    let mut failed = false;
    for _ in 0..100 {
        buf.extend_from_slice(&[b'j'; 4096]);
        if codec.decode(&mut buf).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed);
    assert!(buf.is_empty());
}

#[tokio::test]
async fn framed_read_discard_does_not_stall_buffered_lines() {
    let input: &[u8] = b"0123456789abcdef\r\nline2\r\nline3\r\n";
    let codec = LineCodec::new()
        .max_length(8)
        .on_too_long(OnTooLong::Discard);
    let got: Vec<_> = FramedRead::new(input, codec)
        .map(|r| r.expect("no error"))
        .collect()
        .await;
    assert_eq!(lines(&got), [&b"line2"[..], b"line3"]);
}

#[tokio::test]
async fn framed_read_close_mode_ends_the_stream() {
    let input: &[u8] = b"ok\r\n0123456789abcdef\r\nline2\r\n";
    let mut framed = FramedRead::new(input, LineCodec::new().max_length(8));
    assert_eq!(framed.next().await.expect("item").expect("ok"), &b"ok"[..]);
    assert!(matches!(
        framed.next().await,
        Some(Err(LineError::TooLong { .. }))
    ));
    assert!(framed.next().await.is_none());
}

#[tokio::test]
async fn framed_echo_over_duplex() {
    let (client, server) = tokio::io::duplex(64);
    let server = tokio::spawn(async move {
        let mut framed = Framed::new(server, LineCodec::new().delimiter(&b"\n"[..]));
        while let Some(Ok(line)) = framed.next().await {
            framed.send(line).await.expect("send");
        }
    });
    let mut framed = Framed::new(client, LineCodec::new().delimiter(&b"\n"[..]));
    for i in 0..100 {
        let line = format!("line {i} \u{e9}");
        framed.send(line.as_bytes()).await.expect("send");
        let back = framed.next().await.expect("item").expect("ok");
        assert_eq!(&back[..], line.as_bytes());
    }
    drop(framed);
    server.await.expect("server");
}

#[test]
fn line_codec_encoding_checks() {
    let mut codec = LineCodec::new().max_length(5);
    let mut out = BytesMut::new();
    codec.encode("abc\r", &mut out).expect("a lone CR is fine");
    assert_eq!(&out[..], b"abc\r\r\n");
    let error = encode_error(&mut codec, "a\r\nb");
    assert!(matches!(error, LineError::DelimiterInLine), "{error:?}");
    let error = encode_error(&mut codec, "toolong");
    assert!(matches!(error, LineError::TooLong { .. }), "{error:?}");
    // A self-overlapping delimiter: "xa" + "aa" would decode as "x".
    let mut codec = LineCodec::new().delimiter(&b"aa"[..]);
    let error = encode_error(&mut codec, "xa");
    assert!(matches!(error, LineError::DelimiterInLine), "{error:?}");
}

#[test]
fn line_codec_eof_tail() {
    let out = decode_chunked(LineCodec::new().max_length(3), b"ab\r\ncd", 1).expect("ok");
    assert_eq!(lines(&out), [&b"ab"[..], b"cd"]);
    assert!(decode_chunked(LineCodec::new().max_length(3), b"abcd", 4).is_err());
    let out = decode_chunked(
        LineCodec::new()
            .max_length(3)
            .on_too_long(OnTooLong::Discard),
        b"abcd",
        4,
    )
    .expect("ok");
    assert!(out.is_empty());
}

#[test]
fn netstring_codec_vectors() {
    let good: &[(&[u8], &[&[u8]])] = &[
        (b"0:,", &[b""]),
        (b"1:a,", &[b"a"]),
        (b"2:ab,", &[b"ab"]),
        (b"4:1:a,,", &[b"1:a,"]),
        (b"1:a,1:b,", &[b"a", b"b"]),
    ];
    for (input, expected) in good {
        for size in chunk_sizes(input) {
            let out =
                decode_chunked(NetstringCodec::with_max_length(50), input, size).expect("valid");
            assert_eq!(lines(&out), *expected);
        }
    }
    for input in [
        &b"2:aaa,"[..],
        b"0:a,",
        b":aaa,",
        b"3aaa,",
        b"aaa,",
        b"aaa",
        b"00:,",
        b"9999999999999999999999",
    ] {
        for size in chunk_sizes(input) {
            assert!(
                decode_chunked(NetstringCodec::with_max_length(50), input, size).is_err(),
                "{input:?}"
            );
        }
    }
    // Too long is seen on the digits alone.
    let error = decode_error(NetstringCodec::with_max_length(10), b"11");
    assert_eq!(too_long(error), (11, 10));
    // A stream ending inside a frame is an error at EOF.
    assert!(decode_chunked(NetstringCodec::new(), b"3:ab", 1).is_err());
    let mut out = BytesMut::new();
    assert!(
        NetstringCodec::with_max_length(2)
            .encode(&b"abc"[..], &mut out)
            .is_err()
    );
}

/// The announced length and the maximum of a [`FrameError::TooLong`]; panics on another error.
fn too_long(error: FrameError) -> (u64, usize) {
    match error {
        FrameError::TooLong { length, max_length } => (length, max_length),
        other => panic!("not TooLong: {other:?}"),
    }
}

#[test]
fn intn_codecs() {
    let mut out = BytesMut::new();
    Int32Codec::new().encode(&b"foo"[..], &mut out).expect("ok");
    assert_eq!(&out[..], b"\x00\x00\x00\x03foo");
    out.clear();
    Int8Codec::new()
        .encode(vec![0u8; 255], &mut out)
        .expect("255 fits");
    assert!(Int8Codec::new().encode(vec![0u8; 256], &mut out).is_err());
    assert!(
        Int16Codec::new()
            .encode(vec![0u8; 65_536], &mut out)
            .is_err()
    );
    assert_eq!(Int16Codec::with_max_length(usize::MAX).max_length(), 65_535);

    let wire = b"\x00\x00\x00\x04ubar\x00\x00\x00\x00";
    for size in chunk_sizes(wire) {
        let got = decode_chunked(Int32Codec::new(), wire, size).expect("ok");
        assert_eq!(lines(&got), [&b"ubar"[..], b""]);
    }
    // Max length checked on the prefix alone.
    let error = decode_error(Int32Codec::with_max_length(50), b"\x10\x00\x00\x00");
    assert_eq!(too_long(error), (268_435_456, 50));
    assert!(decode_chunked(Int16Codec::new(), b"\x00\x05ab", 1).is_err());
}
