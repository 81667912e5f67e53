//! LineCodec: any bytes, any split, both over-long policies: no panic, bounded buffer, and
//! every decoded line is at most max_length and free of the delimiter.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use weft_line::codec::{LineCodec, OnTooLong};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (ctl, rest) = data.split_at(3);
    let max = 1 + ctl[0] as usize % 64;
    let delim: &'static [u8] = match ctl[1] % 3 {
        0 => b"\r\n",
        1 => b"\n",
        _ => b"abab",
    };
    let policy = if ctl[2] & 1 == 0 { OnTooLong::Close } else { OnTooLong::Discard };
    let mut codec = LineCodec::new().delimiter(delim).max_length(max).on_too_long(policy);
    let cut = 1 + ctl[2] as usize % 17;
    let mut buf = BytesMut::new();
    for chunk in rest.chunks(cut) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(line)) => {
                    assert!(line.len() <= max);
                    assert!(!line.windows(delim.len()).any(|w| w == delim));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(buf.len() <= max + delim.len() + cut, "buffer bounded");
    }
    let _ = codec.decode_eof(&mut buf);
});
