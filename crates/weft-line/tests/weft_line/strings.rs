//! Twisted's `NetstringReceiverTests` and IntN tests, on the string protocols.

use weft_core::testing::MemoryTransport;
use weft_line::{
    Control, FrameError, Int8Protocol, Int16Protocol, Int32Protocol, Netstring, NetstringProtocol,
    Receiver, StringFraming,
};

use crate::{chunk_sizes, close_error, fed, resumed_through_a_handle};

/// Twisted's `TestNetstring`/`TestMixin`: MAX_LENGTH 50, records (and echoes) strings.
#[derive(Default, Debug)]
struct Recorder {
    received: Vec<Vec<u8>>,
    exceeded: Vec<u64>,
}
impl<F: StringFraming> Receiver<F> for Recorder {
    const MAX_LENGTH: usize = 50;
    fn frame_received(&mut self, s: &[u8], ctl: &mut Control<'_, F>) {
        self.received.push(s.to_vec());
        ctl.transport().write(s);
    }
    fn frame_error(&mut self, error: FrameError, _: &[u8], ctl: &mut Control<'_, F>) {
        match error {
            FrameError::TooLong { length, .. } => {
                self.exceeded.push(length);
                ctl.transport().lose_connection();
            }
            error => ctl.transport().close_with_error(error),
        }
    }
}

fn netstring() -> NetstringProtocol<Recorder> {
    NetstringProtocol::new(Recorder::default())
}

#[test]
fn netstring_illegal_vectors_byte_at_a_time() {
    let fifty_one = [b"51:".to_vec(), vec![b'a'; 50], b"b,".to_vec()].concat();
    for input in [
        &b"9999999999999999999999"[..],
        b"abc",
        b"4:abcde",
        &fifty_one,
        b"2:abcd",
        b"00:,",
        b"01:a,",
    ] {
        for size in chunk_sizes(input) {
            let conn = fed(netstring(), input, size);
            assert!(conn.is_closing(), "{input:?} size {size}");
            assert!(conn.protocol().receiver().received.is_empty(), "{input:?}");
        }
    }
}

#[test]
fn netstring_buffer_every_chunk_size() {
    let strs: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        b"world".to_vec(),
        b"how".to_vec(),
        b"are".to_vec(),
        b"you123".to_vec(),
        b":today".to_vec(),
        vec![b'a'; 515],
    ];
    let mut sender =
        MemoryTransport::new(NetstringProtocol::new(Recorder::default()).with_max_length(699));
    sender.with(|p, t| {
        p.with_control(t, |_, ctl| {
            for s in &strs {
                ctl.send_string(s).expect("short enough");
            }
        })
    });
    let wire = sender.take_written();
    for size in chunk_sizes(&wire) {
        let conn = fed(
            NetstringProtocol::new(Recorder::default()).with_max_length(699),
            &wire,
            size,
        );
        assert_eq!(conn.protocol().receiver().received, strs, "size {size}");
        assert!(!conn.is_closing());
    }
}

#[test]
fn netstring_single_read_vectors() {
    let good: &[(&[u8], &[u8])] = &[
        (b"0:,", b""),
        (b"1:a,", b"a"),
        (b"2:ab,", b"ab"),
        (b"4:1:a,,", b"1:a,"),
    ];
    for (input, expected) in good {
        for size in chunk_sizes(input) {
            let conn = fed(netstring(), input, size);
            assert_eq!(conn.protocol().receiver().received, [expected.to_vec()]);
            assert!(!conn.is_closing());
        }
    }
    for input in [&b"2:aaa,"[..], b"0:a,", b":aaa,", b"3aaa,", b"aaa,", b"aaa"] {
        for size in chunk_sizes(input) {
            let conn = fed(netstring(), input, size);
            assert!(conn.is_closing(), "{input:?}");
            assert!(conn.protocol().receiver().received.is_empty());
            assert!(close_error::<FrameError, _>(&conn).is_some());
        }
    }
}

#[test]
fn netstring_split_reads() {
    let cases: &[(&[&[u8]], &[&[u8]])] = &[
        (&[b"4:aa", b"aa,"], &[b"aaaa"]),
        (&[b"1", b"0:01234", b"56789", b","], &[b"0123456789"]),
        (&[b"2", b":", b"a", b"b", b","], &[b"ab"]),
        (&[b"1:a,1", b":b,"], &[b"a", b"b"]),
    ];
    for (reads, expected) in cases {
        let mut conn = MemoryTransport::new(netstring());
        for r in *reads {
            conn.feed(r);
        }
        assert_eq!(conn.protocol().receiver().received, *expected);
    }
}

#[test]
fn netstring_complete_strings_before_an_error_are_delivered() {
    let conn = fed(netstring(), b"1:a,1:b,X", 9);
    assert_eq!(
        conn.protocol().receiver().received,
        [b"a".to_vec(), b"b".to_vec()]
    );
    assert!(conn.is_closing());
    let conn = fed(netstring(), b"3:abc,\n", 7);
    assert_eq!(conn.protocol().receiver().received, [b"abc".to_vec()]);
    assert!(conn.is_closing());
}

#[test]
fn netstring_max_receive_limit_and_early_rejection() {
    let input = [vec![0u8; 51], b":".to_vec(), vec![b'a'; 51]].concat();
    let conn = fed(netstring(), &input, 1);
    assert!(conn.is_closing());
    // Over-long length, rejected before the colon.
    let mut conn = MemoryTransport::new(netstring());
    conn.feed(b"51");
    assert!(conn.is_closing());
    assert_eq!(conn.protocol().receiver().exceeded, [51]);
    // Exactly the maximum is fine.
    let input = [b"50:".to_vec(), vec![b'a'; 50], b",".to_vec()].concat();
    for size in chunk_sizes(&input) {
        let conn = fed(netstring(), &input, size);
        assert_eq!(conn.protocol().receiver().received, [vec![b'a'; 50]]);
    }
}

#[test]
fn netstring_default_hooks_close_with_typed_reasons() {
    struct Quiet;
    impl<F: StringFraming> Receiver<F> for Quiet {
        const MAX_LENGTH: usize = 10;
        fn frame_received(&mut self, _: &[u8], _: &mut Control<'_, F>) {}
    }
    let conn = fed(NetstringProtocol::new(Quiet), b"11", 1);
    assert_eq!(
        close_error::<FrameError, _>(&conn).as_deref(),
        Some("frame of 11 bytes exceeds the maximum of 10")
    );
    let conn = fed(NetstringProtocol::new(Quiet), b"2:abc", 1);
    assert_eq!(
        close_error::<FrameError, _>(&conn).as_deref(),
        Some("netstring not terminated by a comma (found 0x63)")
    );
}

#[test]
fn netstring_send() {
    let mut conn = MemoryTransport::new(netstring());
    conn.with(|p, t| {
        p.with_control(t, |_, ctl| {
            ctl.send_string(b"hello").expect("ok");
            ctl.send_string(b"").expect("ok");
            assert!(ctl.send_string(vec![0u8; 51]).is_err());
        })
    });
    assert_eq!(conn.written(), b"5:hello,0:,");
}

macro_rules! intn_tests {
    ($name:ident, $proto:ident, $size:expr, $illegal:expr, $partials:expr, $prefix3:expr, $recv:expr) => {
        mod $name {
            use super::*;

            fn proto() -> $proto<Recorder> {
                $proto::new(Recorder::default())
            }

            fn prefix(len: usize) -> Vec<u8> {
                (len as u32).to_be_bytes()[4 - $size..].to_vec()
            }

            #[test]
            fn illegal_byte_at_a_time() {
                let conn = fed(proto(), $illegal, 1);
                assert!(conn.is_closing());
            }

            #[test]
            fn partial_strings_deliver_nothing() {
                for input in $partials {
                    for size in chunk_sizes(input) {
                        let conn = fed(proto(), input, size);
                        assert!(conn.protocol().receiver().received.is_empty(), "{input:?}");
                    }
                }
            }

            #[test]
            fn send_and_receive() {
                let mut conn = MemoryTransport::new(proto());
                conn.with(|p, t| p.with_control(t, |_, ctl| ctl.send_string(b"foo").expect("ok")));
                assert_eq!(conn.take_written(), &$prefix3[..]);
                conn.feed($recv);
                assert_eq!(conn.protocol().receiver().received, [b"ubar".to_vec()]);
            }

            #[test]
            fn receive_every_chunk_size() {
                let strs = [b"a".to_vec(), vec![b'b'; 16], Vec::new(), vec![b'c'; 50]];
                let wire: Vec<u8> = strs
                    .iter()
                    .flat_map(|s| [prefix(s.len()), s.clone()].concat())
                    .collect();
                for size in chunk_sizes(&wire) {
                    let conn = fed(proto(), &wire, size);
                    assert_eq!(conn.protocol().receiver().received, strs, "size {size}");
                }
            }

            #[test]
            fn length_limit_checked_on_the_prefix() {
                let mut conn = MemoryTransport::new(proto().with_max_length(10));
                conn.feed(&prefix(11));
                assert_eq!(conn.protocol().receiver().exceeded, [11]);
                assert!(conn.is_closing());
                let input = [prefix(11), vec![b'x'; 11]].concat();
                for size in chunk_sizes(&input) {
                    let conn = fed(proto().with_max_length(10), &input, size);
                    assert!(conn.protocol().receiver().received.is_empty());
                }
            }

            #[test]
            fn too_long_send_is_an_error() {
                let mut conn = MemoryTransport::new(proto().with_max_length(usize::MAX));
                let max = conn.protocol().max_length();
                conn.with(|p, t| {
                    p.with_control(t, |_, ctl| {
                        if max < u32::MAX as usize {
                            assert!(matches!(
                                ctl.send_string(vec![0u8; max + 1]),
                                Err(FrameError::TooLong { .. })
                            ));
                        }
                        ctl.send_string(vec![7u8; 255]).expect("fits every prefix");
                    })
                });
                assert_eq!(conn.written().len(), $size + 255);
            }
        }
    };
}

intn_tests!(
    int32,
    Int32Protocol,
    4,
    b"\x10\x00\x00\x00aaaaaa",
    [&b"\x00\x00\x00"[..], b"hello there", b""],
    b"\x00\x00\x00\x03foo",
    b"\x00\x00\x00\x04ubar"
);
intn_tests!(
    int16,
    Int16Protocol,
    2,
    b"\x10\x00aaaaaa",
    [&b"\x00"[..], b"hello there", b""],
    b"\x00\x03foo",
    b"\x00\x04ubar"
);
intn_tests!(
    int8,
    Int8Protocol,
    1,
    b"\x00\x00aaaaaa",
    [&b"\x08"[..], b"dzadz", b""],
    b"\x03foo",
    b"\x04ubar"
);

#[test]
fn int8_illegal_delivers_the_two_empty_strings_first() {
    let conn = fed(Int8Protocol::new(Recorder::default()), b"\x00\x00aaaaaa", 1);
    assert_eq!(
        conn.protocol().receiver().received,
        [Vec::<u8>::new(), Vec::new()]
    );
    assert_eq!(conn.protocol().receiver().exceeded, [97]);
}

/// Pauses after every string; resumed by a zero timer (Twisted's `test_pausing` shape).
#[derive(Default)]
struct PauseEach(Vec<Vec<u8>>);
impl<F: StringFraming> Receiver<F> for PauseEach {
    fn frame_received(&mut self, s: &[u8], ctl: &mut Control<'_, F>) {
        self.0.push(s.to_vec());
        ctl.pause_producing();
        ctl.transport().call_later(std::time::Duration::ZERO);
    }
    fn timer_fired(&mut self, _: weft_core::TimerId, ctl: &mut Control<'_, F>) {
        ctl.resume_producing();
    }
}

#[test]
fn intn_pausing_every_chunk_size() {
    let wire = b"\x00\x03one\x00\x03two\x00\x00\x00\x05three";
    for size in chunk_sizes(wire) {
        let mut conn = fed(Int16Protocol::new(PauseEach::default()), wire, size);
        let mut rounds = 0;
        while conn.protocol().receiver().0.len() < 4 && rounds < 10 {
            assert!(conn.protocol().is_paused());
            conn.fire_due_timers();
            rounds += 1;
        }
        assert_eq!(
            conn.protocol().receiver().0,
            [
                b"one".to_vec(),
                b"two".to_vec(),
                Vec::new(),
                b"three".to_vec()
            ],
            "size {size}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn netstring_resume_through_a_handle() {
    assert_eq!(
        resumed_through_a_handle::<Netstring>(b"1:a,1:b,1:c,").await,
        [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
}
