//! Twisted's `LineOnlyReceiverTests`, on `LineOnlyProtocol`.

use weft_core::testing::MemoryTransport;
use weft_line::{Control, LineError, LineOnly, LineOnlyProtocol, Receiver};

use crate::{assert_closed_with, chunk_sizes, fed};

/// Twisted's `LineOnlyTester`: `\n`, MAX_LENGTH 64.
#[derive(Default)]
struct LineOnlyTester(Vec<Vec<u8>>);
impl Receiver<LineOnly> for LineOnlyTester {
    const DELIMITER: &'static [u8] = b"\n";
    const MAX_LENGTH: usize = 64;
    fn frame_received(&mut self, line: &[u8], _: &mut Control<'_, LineOnly>) {
        self.0.push(line.to_vec());
    }
}

#[test]
fn test_buffer_every_chunk_size() {
    let input = b"foo\n    bleakness\n    desolation\n    plastic forks\n    ";
    for size in chunk_sizes(input) {
        let conn = fed(
            LineOnlyProtocol::new(LineOnlyTester::default()),
            input,
            size,
        );
        assert_eq!(
            conn.protocol().receiver().0,
            [
                b"foo".to_vec(),
                b"    bleakness".to_vec(),
                b"    desolation".to_vec(),
                b"    plastic forks".to_vec()
            ],
            "size {size}"
        );
        assert_eq!(conn.protocol().buffered(), 4);
    }
}

#[test]
fn test_greater_than_maximum_line_length() {
    let input = [vec![b'x'; 67], b"\r\nr".to_vec()].concat();
    for size in chunk_sizes(&input) {
        let conn = fed(
            LineOnlyProtocol::new(LineOnlyTester::default()),
            &input,
            size,
        );
        assert_closed_with::<LineError, _>(&conn, "line longer than 64 bytes", size);
        assert!(conn.protocol().receiver().0.is_empty());
    }
}

#[test]
fn same_boundary_rule_as_line_receiver() {
    // A 64-byte line whose delimiter arrives in the next read is fine (Twisted's LOR
    // disconnects on M + half a CRLF: its #6556 is fixed here too).
    let proto = || LineOnlyProtocol::new(LineOnlyTester::default()).with_delimiter(&b"\r\n"[..]);
    let input = [vec![b'x'; 64], b"\r\n".to_vec()].concat();
    for size in chunk_sizes(&input) {
        let conn = fed(proto(), &input, size);
        assert!(!conn.is_closing(), "size {size}");
        assert_eq!(conn.protocol().receiver().0, [vec![b'x'; 64]]);
    }
    let conn = fed(proto(), &[b'x'; 65], 65);
    assert!(!conn.is_closing());
    let conn = fed(proto(), &[b'x'; 66], 1);
    assert!(conn.is_closing());
}

#[test]
fn stops_at_lose_connection_and_echoes() {
    struct Echo;
    impl Receiver<LineOnly> for Echo {
        fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_, LineOnly>) {
            if line == b"quit" {
                ctl.transport().lose_connection();
            } else {
                ctl.send_line(line);
            }
        }
    }
    let input = b"a\r\nb\r\nquit\r\nc\r\n";
    for size in chunk_sizes(input) {
        let conn = fed(LineOnlyProtocol::new(Echo), input, size);
        assert_eq!(conn.written(), b"a\r\nb\r\n", "size {size}");
        assert!(conn.is_closing());
    }
}

#[test]
fn many_lines_in_one_read() {
    let input = b"abcd\n".repeat(100_000);
    let mut conn = MemoryTransport::new(LineOnlyProtocol::new(LineOnlyTester::default()));
    conn.feed(&input);
    assert_eq!(conn.protocol().receiver().0.len(), 100_000);
}
