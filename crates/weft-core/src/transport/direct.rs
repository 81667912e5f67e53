//! Zero-copy "direct" writes: a protocol that echoes or forwards (part of) the bytes
//! `data_received` is running on gets them sent from the read buffer itself instead of copied
//! into its write buffer.
//!
//! All of that mechanism lives here: the thread-local read window (which bytes the running
//! `data_received` was given), the per-transport [`Direct`] state (is this transport inside
//! its own `data_received`, and which bytes of the window are waiting to be sent), and
//! [`deliver`], the one path by which read bytes reach a protocol — the socket driver and
//! [`MemoryTransport::feed`](crate::testing::MemoryTransport::feed) both use it, so tests run
//! the same code as sockets do.
//!
//! How a write is recognised: [`Transport::write`](crate::Transport::write) asks [`Direct`]
//! whether the slice lies inside the window (comparing addresses, never dereferencing them:
//! safe code), is at least [`DIRECT_MIN`] long, and nothing is buffered ahead of it. If so only
//! `(offset, len)` is recorded; when the callback returns, [`deliver`] hands those bytes (and
//! whatever was buffered behind them) to the sink in one vectored write and copies into the
//! write buffer only what the sink did not take.

use std::cell::Cell;
use std::io::{self, IoSlice};

use super::{Transport, pool};
use crate::Protocol;
use crate::protocol::Conn;

/// Writes at least this long of bytes still in the read buffer are sent from it without a
/// copy (below it, copying costs less than the bookkeeping).
pub(crate) const DIRECT_MIN: usize = 2048;

thread_local! {
    /// The bytes handed to the running `data_received` (address, length); (0, 0): none.
    static READ_WINDOW: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// A transport's direct-write state (12 bytes inside every [`Transport`]).
#[derive(Debug, Default)]
pub(crate) struct Direct {
    /// Offset into the read window of a write not copied yet.
    off: u32,
    /// Its length; 0: none. Always ahead of the write buffer, which was empty when it was
    /// recorded.
    len: u32,
    /// True while `data_received` runs on this transport's own read (through [`deliver`]):
    /// only then may a write be recorded. (The window is per thread; this flag keeps a
    /// transport driven by hand inside another connection's callback from recording bytes
    /// that its own driver would never send.)
    in_read: bool,
}

impl Direct {
    /// Bytes recorded and not sent yet.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Forgets a recorded write (an abort drops it).
    pub(crate) fn clear(&mut self) {
        self.off = 0;
        self.len = 0;
    }

    /// True if a write of `len` bytes may be recorded: this transport is in its own
    /// `data_received`, nothing is recorded yet, and `len` is worth it. (The caller also
    /// checks that nothing is buffered, which the write would overtake.) One flag read on the
    /// usual path.
    #[inline]
    pub(crate) fn wants(&self, len: usize) -> bool {
        self.in_read && len >= DIRECT_MIN && self.len == 0
    }

    /// Records `data` instead of copying it if it lies in the read window (after
    /// [`wants`](Self::wants)).
    #[inline]
    pub(crate) fn record(&mut self, data: &[u8]) -> bool {
        match read_offset(data) {
            Some(off) => {
                self.off = off;
                self.len = data.len() as u32;
                true
            }
            None => false,
        }
    }
}

impl Transport {
    /// The bytes a callback wrote since `mark` (the
    /// [`write_buffer_size`](Transport::write_buffer_size) taken before it): a direct write
    /// recorded meanwhile (its bytes are in `read`, the slice `data_received` got), then what
    /// was appended to the buffer. Valid only between the two points of one callback (nothing
    /// is flushed during a callback).
    pub(crate) fn written_since<'a>(&'a self, mark: usize, read: &'a [u8]) -> [&'a [u8]; 2] {
        let (off, len) = (self.direct.off as usize, self.direct.len as usize);
        let direct = if len != 0 && mark == 0 {
            read.get(off..off + len).unwrap_or(&[])
        } else {
            &[]
        };
        let from = mark.saturating_sub(len).min(self.wbuf.len());
        [direct, &self.wbuf[from..]]
    }
}

/// Where `data` starts within the bytes of the running `data_received`, if it lies wholly
/// inside them (compares addresses only).
fn read_offset(data: &[u8]) -> Option<u32> {
    let (base, len) = READ_WINDOW.with(Cell::get);
    let start = data.as_ptr() as usize;
    let off = start.checked_sub(base)?;
    (len != 0 && off + data.len() <= len).then_some(off as u32)
}

/// Runs `f` with `data` marked as the bytes of the running `data_received`.
fn with_read_window<R>(data: &[u8], f: impl FnOnce() -> R) -> R {
    /// Restores the previous window, even on unwind.
    struct Restore((usize, usize));
    impl Drop for Restore {
        fn drop(&mut self) {
            READ_WINDOW.with(|w| w.set(self.0));
        }
    }
    let _restore = Restore(READ_WINDOW.with(|w| w.replace((data.as_ptr() as usize, data.len()))));
    f()
}

/// Hands `data` (bytes just read) to the protocol's `data_received`, then sends a direct
/// write it made through `send`, which writes what it can of the slices it is given (a
/// vectored write: the direct bytes, then what was buffered behind them) and returns how many
/// bytes it took. Whatever `send` does not take is kept in the write buffer, in order.
///
/// `send` is the socket's `try_write` for the driver, and takes nothing for the in-memory
/// transport (its peer reads only when the test says so). `WouldBlock` and `Interrupted`
/// count as nothing taken.
///
/// # Errors
/// Another error from `send`, after the unsent bytes were kept.
#[inline]
pub(crate) fn deliver<P: Protocol>(
    conn: &mut Conn<P>,
    data: &[u8],
    send: impl FnOnce(&[IoSlice<'_>]) -> io::Result<usize>,
) -> io::Result<()> {
    conn.transport.direct.in_read = true;
    with_read_window(data, || conn.data(data));
    let t = &mut conn.transport;
    t.direct.in_read = false;
    if t.direct.len == 0 {
        return Ok(());
    }
    let (off, len) = (t.direct.off as usize, t.direct.len as usize);
    let bytes = &data[off..off + len];
    if t.is_upgrading() {
        // `start_tls` after it: the buffer behind it may be for TLS; the driver splits the
        // clear part off (copied, as the socket had taken none of it).
        settle(t, bytes, 0);
        return Ok(());
    }
    // Handles stop counting what goes to the socket now (as `flush` does).
    t.publish_sending();
    let sent = if t.wbuf.is_empty() {
        send(&[IoSlice::new(bytes)])
    } else {
        send(&[IoSlice::new(bytes), IoSlice::new(&t.wbuf)])
    };
    let result = match sent {
        Ok(n) => {
            settle(t, bytes, n);
            Ok(())
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            settle(t, bytes, 0);
            Ok(())
        }
        Err(e) => {
            settle(t, bytes, 0);
            Err(e)
        }
    };
    // What the socket did not take is counted again at once, not at the next flush (a
    // handle taken during the callback had published the echo as buffered).
    t.publish();
    result
}

/// Settles a direct write after `sent` of its bytes (`bytes`, from the read buffer) and of
/// what followed in the write buffer went out: whatever was not sent is kept, in order.
fn settle(t: &mut Transport, bytes: &[u8], sent: usize) {
    t.direct.clear();
    if sent >= bytes.len() {
        let rest = sent - bytes.len();
        if rest > 0 {
            t.consume(rest);
        }
        return;
    }
    let unsent = &bytes[sent..];
    let mut buf = pool::take_write_buffer();
    buf.reserve(unsent.len() + t.wbuf.len());
    buf.extend_from_slice(unsent);
    buf.extend_from_slice(&t.wbuf);
    t.release_buffer();
    t.wbuf = buf;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Address;

    fn transport() -> Transport {
        Transport::new(0, Address::Unix(None), Address::Unix(None))
    }

    fn record(t: &mut Transport, off: u32, len: u32) {
        t.direct.off = off;
        t.direct.len = len;
    }

    #[test]
    fn an_unsent_direct_write_goes_ahead_of_the_buffer() {
        let mut t = transport();
        t.write("XYZ");
        record(&mut t, 0, 6);
        assert_eq!(t.write_buffer_size(), 9);
        settle(&mut t, b"abcdef", 2);
        assert_eq!(t.pending_output(), b"cdefXYZ");
        assert_eq!(t.direct.len(), 0);
    }

    #[test]
    fn a_sent_direct_write_takes_its_share_of_the_buffer() {
        let mut t = transport();
        t.write("XYZ");
        record(&mut t, 0, 3);
        settle(&mut t, b"abc", 5);
        assert_eq!(t.pending_output(), b"Z");
        record(&mut t, 0, 3);
        settle(&mut t, b"abc", 4);
        assert!(t.pending_output().is_empty());
        record(&mut t, 0, 3);
        settle(&mut t, b"abc", 0);
        assert_eq!(t.pending_output(), b"abc");
    }

    #[test]
    fn only_bytes_of_the_running_read_are_written_directly() {
        let read = vec![b'r'; 3 * DIRECT_MIN];
        let other = vec![b'o'; 3 * DIRECT_MIN];
        let mut t = transport();
        // Outside a driver's read: copied.
        t.write(&read[..]);
        assert_eq!(t.direct.len(), 0);
        assert_eq!(t.pending_output().len(), read.len());

        let mut t = transport();
        t.direct.in_read = true;
        with_read_window(&read, || {
            t.write(&other[..]); // not from the read buffer: copied
            assert_eq!(t.direct.len(), 0);
        });
        let mut t = transport();
        t.direct.in_read = true;
        with_read_window(&read, || {
            t.write(&read[10..10 + DIRECT_MIN]);
            assert_eq!((t.direct.off, t.direct.len()), (10, DIRECT_MIN));
            t.write(&read[..DIRECT_MIN]); // a second one queues behind it: copied
            assert_eq!(t.pending_output().len(), DIRECT_MIN);
            t.write(&read[..10]); // and a small one too
        });
        assert_eq!(t.write_buffer_size(), 2 * DIRECT_MIN + 10);
        // The window is gone once the callback returned.
        assert_eq!(read_offset(&read), None);
        t.abort_connection();
        assert_eq!(t.direct.len(), 0, "an abort drops it");
    }

    /// A large echo sent from the read buffer stops counting for handles at once: a handle
    /// taken in the callback (which publishes the buffer, echo included) does not see it
    /// buffered until the next flush; what the socket refuses is counted at once.
    #[test]
    fn an_echo_sent_from_the_read_buffer_is_published_at_once() {
        struct EchoAndTakeHandle(Option<crate::TransportHandle>);
        impl Protocol for EchoAndTakeHandle {
            fn data_received(&mut self, data: &[u8], t: &mut Transport) {
                t.write(data);
                self.0 = Some(t.handle());
            }
        }
        let read = vec![b'e'; 3 * DIRECT_MIN];
        for (take, left) in [
            (usize::MAX, 0),
            (DIRECT_MIN, 2 * DIRECT_MIN),
            (0, read.len()),
        ] {
            let mut conn = Conn::new(EchoAndTakeHandle(None), transport());
            deliver(&mut conn, &read, |bufs| {
                let len: usize = bufs.iter().map(|b| b.len()).sum();
                Ok(len.min(take))
            })
            .unwrap();
            let h = conn.protocol.0.as_ref().expect("handle taken");
            assert_eq!(conn.transport.write_buffer_size(), left);
            assert_eq!(h.buffered(), left, "socket took {take}");
        }
    }

    /// `MemoryTransport::feed` takes the socket's path: an echo is recorded, then kept (its
    /// peer reads nothing yet) ahead of what the callback wrote after it.
    #[test]
    fn memory_feed_records_an_echo_and_keeps_it_in_order() {
        struct EchoThenTrailer;
        impl Protocol for EchoThenTrailer {
            fn data_received(&mut self, data: &[u8], t: &mut Transport) {
                t.write(data);
                assert_eq!(t.direct.len(), data.len(), "recorded, not copied");
                t.write(b"<end>");
            }
        }
        let read: Vec<u8> = (0..3 * DIRECT_MIN).map(|i| i as u8).collect();
        let mut conn = crate::testing::MemoryTransport::new(EchoThenTrailer);
        conn.feed(&read);
        assert!(!conn.is_closing(), "the callback's assertion held");
        let mut want = read.clone();
        want.extend_from_slice(b"<end>");
        assert_eq!(conn.written(), &want[..]);
        assert_eq!(conn.transport().direct.len(), 0);
    }
}
