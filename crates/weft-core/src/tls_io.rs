//! The TLS transport: a TCP socket and a rustls connection behind the driver's [`RawStream`]
//! operations, so a TLS connection runs the same driver as plain TCP (same callbacks, water
//! marks, half-close, shutdown) while plain TCP keeps its own, untouched, I/O path.
//!
//! - **In.** `read_some` hands out plaintext rustls already holds, then reads ciphertext from
//!   the socket (rustls reads in 4 KiB steps), decrypts, and repeats until the caller's buffer
//!   is full or the socket's queue is drained (a short read forgets the read readiness, as
//!   the plain path does). The peer's `close_notify` reads as EOF (`eof_received`); a TCP EOF
//!   without it is an error ([`DisconnectReason::TlsTruncated`](crate::DisconnectReason)), and
//!   so is a TLS error (with the alert: [`DisconnectReason::Tls`](crate::DisconnectReason)).
//! - **Out.** `try_write` encrypts plaintext only while no ciphertext is waiting for the
//!   socket, so the transport's write buffer, which the water marks watch, holds what the
//!   protocol wrote and rustls at most one 64 KiB batch more: a peer that never reads fills
//!   its own socket buffers, not the server's memory. Ciphertext rustls holds is
//!   [`pending`](RawStream::pending): the driver keeps flushing it and closes only after it.
//! - **Close.** `shutdown_write` queues `close_notify` behind everything written, then sends
//!   the TCP FIN once it is out.
//! - **Handshake** (not finished when the driver starts: `Transport::start_tls`, made by
//!   [`TlsSocket::upgrade`]): plaintext waits in the transport's buffer until the handshake
//!   is done; reading drives the handshake forward (even while the protocol paused reading);
//!   the bytes written before `start_tls` go out in clear ahead of the first record; the
//!   peer's bytes after the upgrade point were fed to rustls first; past the deadline the
//!   read fails with [`HandshakeTimedOut`]. A rustls error is sticky (rustls returns it again
//!   on every later `process_new_packets`), so a failure found outside a read (in the early
//!   bytes) makes the socket readable and the next read returns it.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use std::os::fd::AsFd;

use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

use crate::driver::RawStream;
use crate::tls::TlsInfo;

thread_local! {
    /// The TLS connection whose driver is running on this thread (its connection id and what
    /// it negotiated), for [`Transport::tls`](crate::Transport::tls).
    static CURRENT: RefCell<Option<(u64, Arc<TlsInfo>)>> = const { RefCell::new(None) };
}

/// What the TLS connection `id` negotiated, if its driver is running on this thread.
pub(crate) fn current_info(id: u64) -> Option<Arc<TlsInfo>> {
    CURRENT.with(|c| match &*c.borrow() {
        Some((cid, info)) if *cid == id => Some(info.clone()),
        _ => None,
    })
}

/// Restores the previous current connection when a driver's turn ends.
pub(crate) struct Entered(Option<(u64, Arc<TlsInfo>)>);

impl Drop for Entered {
    fn drop(&mut self) {
        let prev = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

/// A TCP EOF without the peer's `close_notify`: the data may have been cut short.
#[derive(Debug, thiserror::Error)]
#[error("the TLS peer closed the connection without close_notify (truncated)")]
pub(crate) struct Truncated;

/// The peer did not finish a `start_tls` handshake in time.
#[derive(Debug, thiserror::Error)]
#[error("the TLS handshake took too long")]
pub(crate) struct HandshakeTimedOut;

/// No connection entered yet (`TlsSocket::id`).
const NO_ID: u64 = u64::MAX;

/// The socket operations TLS needs from a stream socket (TCP or Unix): the driver's
/// [`RawStream`] ones (readiness, writes), and `try_io` for reads through rustls.
pub(crate) trait Socket: RawStream + AsFd {
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

macro_rules! socket {
    ($t:ty) => {
        impl Socket for $t {
            fn try_io<R>(
                &self,
                interest: Interest,
                f: impl FnOnce() -> io::Result<R>,
            ) -> io::Result<R> {
                <$t>::try_io(self, interest, f)
            }
        }
    };
}
socket!(TcpStream);
socket!(UnixStream);

/// A stream socket carrying TLS, for the connection driver.
pub(crate) struct TlsSocket<T: Socket = TcpStream> {
    tcp: T,
    tls: RefCell<rustls::Connection>,
    /// A TCP FIN is due once the queued `close_notify` is out.
    fin_due: Cell<bool>,
    /// What the handshake negotiated (set once it is done).
    info: RefCell<Option<Arc<TlsInfo>>>,
    /// The name a client verified the server's certificate for.
    server_name: Option<String>,
    /// Bytes written before `start_tls`, still to go out in clear before any TLS record.
    clear: RefCell<Vec<u8>>,
    /// A rustls error happened outside a read (in the early bytes of `start_tls`): the next
    /// read reports it.
    failed: Cell<bool>,
    /// The `start_tls` handshake's deadline (dropped once the handshake is done), and
    /// whether it passed.
    deadline: RefCell<Option<std::pin::Pin<Box<tokio::time::Sleep>>>>,
    timed_out: Cell<bool>,
    /// The connection whose driver entered last (for `Transport::tls` from the very poll in
    /// which a handshake finishes).
    id: Cell<u64>,
}

impl<T: Socket> TlsSocket<T> {
    pub(crate) fn new(
        tcp: T,
        tls: impl Into<rustls::Connection>,
        server_name: Option<String>,
    ) -> Self {
        let s = Self {
            tcp,
            tls: RefCell::new(tls.into()),
            fin_due: Cell::new(false),
            info: RefCell::new(None),
            server_name,
            clear: RefCell::new(Vec::new()),
            failed: Cell::new(false),
            deadline: RefCell::new(None),
            timed_out: Cell::new(false),
            id: Cell::new(NO_ID),
        };
        s.note_handshake(&s.tls.borrow());
        s
    }

    /// A plain connection's socket after `Transport::start_tls`: `clear` (written before the
    /// call) goes out first in clear; the peer's bytes after the upgrade point are fed to the
    /// new session now, ahead of anything read later; the handshake must finish within the
    /// upgrade's timeout.
    pub(crate) fn upgrade(
        tcp: T,
        conn: rustls::Connection,
        name: Option<String>,
        up: &crate::transport::Upgrade,
        clear: Vec<u8>,
    ) -> Self {
        let s = Self::new(tcp, conn, name);
        *s.clear.borrow_mut() = clear;
        *s.deadline.borrow_mut() = Some(Box::pin(tokio::time::sleep(up.tls.timeout())));
        let mut tls = s.tls.borrow_mut();
        let mut early = &up.early[..];
        while !early.is_empty() && !s.failed.get() {
            match tls.read_tls(&mut early) {
                Ok(0) => break,
                Ok(_) => {
                    if s.process(&mut tls).is_err() {
                        break; // `process` marked the failure and queued the alert
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "early TLS bytes refused");
                    s.failed.set(true);
                }
            }
        }
        drop(tls);
        s
    }

    /// Records what the handshake negotiated, once it is done.
    fn note_handshake(&self, tls: &rustls::Connection) {
        if !tls.is_handshaking() && self.info.borrow().is_none() {
            let info = Arc::new(TlsInfo::new(tls, self.server_name.as_deref()));
            *self.info.borrow_mut() = Some(info.clone());
            *self.deadline.borrow_mut() = None;
            let id = self.id.get();
            if id != NO_ID {
                // Inside this connection's turn (its `enter` guard restores the previous
                // value): the callbacks of this very turn see what was negotiated.
                CURRENT.with(|c| *c.borrow_mut() = Some((id, info)));
            }
        }
    }

    /// Writes queued ciphertext until rustls has none left or the socket is full
    /// (`WouldBlock`).
    fn flush_tls(&self, tls: &mut rustls::Connection) -> io::Result<()> {
        if !self.clear.borrow().is_empty() {
            self.flush_clear()?;
        }
        while tls.wants_write() {
            let mut out = SocketOut(&self.tcp);
            match tls.write_tls(&mut out) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "socket accepted no bytes",
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.fin_due.get() {
            self.fin_due.set(false);
            socket2::SockRef::from(&self.tcp).shutdown(std::net::Shutdown::Write)?;
        }
        Ok(())
    }

    /// Sends what was written before `start_tls`, in clear (`WouldBlock` while some is left).
    #[cold]
    fn flush_clear(&self) -> io::Result<()> {
        let mut clear = self.clear.borrow_mut();
        while !clear.is_empty() {
            match self.tcp.try_write(&clear) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "socket accepted no bytes",
                    ));
                }
                Ok(n) => {
                    clear.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        *clear = Vec::new();
        Ok(())
    }

    /// The error of a failed or timed-out `start_tls` handshake, once it is known.
    #[cold]
    fn handshake_error(&self, tls: &mut rustls::Connection) -> Option<io::Error> {
        if self.timed_out.get() {
            return Some(io::Error::new(io::ErrorKind::TimedOut, HandshakeTimedOut));
        }
        if self.failed.get() {
            let _ = self.flush_tls(tls); // the alert, if the socket takes it
            return Some(match tls.process_new_packets() {
                Err(e) => io::Error::new(io::ErrorKind::InvalidData, e),
                Ok(_) => io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::General("TLS could not start".into()),
                ),
            });
        }
        None
    }

    /// Decrypts what was read; a TLS error is sent to the peer as an alert and returned.
    fn process(&self, tls: &mut rustls::Connection) -> io::Result<()> {
        let handshaking = tls.is_handshaking();
        if let Err(e) = tls.process_new_packets() {
            self.failed.set(true);
            // rustls queued the alert: try to get it out before the connection closes.
            let _ = self.flush_tls(tls);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if handshaking {
            self.note_handshake(tls);
        }
        if tls.wants_write() {
            // Handshake replies, session tickets, key updates.
            match self.flush_tls(tls) {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Writes ciphertext to the socket without waiting (`try_write`, which clears the write
/// readiness on `WouldBlock`).
struct SocketOut<'a, T: Socket>(&'a T);

impl<T: Socket> Write for SocketOut<'_, T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads ciphertext from the socket, noting a short read (the receive queue is drained).
struct SocketIn<'a, T: Socket> {
    tcp: &'a T,
    short: bool,
}

impl<T: Socket> Read for SocketIn<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (&*socket2::SockRef::from(self.tcp)).read(buf)?;
        if n < buf.len() {
            self.short = true;
        }
        Ok(n)
    }
}

impl<T: Socket> RawStream for TlsSocket<T> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.failed.get() || self.timed_out.get() {
            return Poll::Ready(Ok(())); // the read reports it
        }
        if let Some(deadline) = self.deadline.borrow_mut().as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                self.timed_out.set(true);
                return Poll::Ready(Ok(()));
            }
        }
        // Plaintext already decrypted, or the peer's close (clean or not), is ready without
        // the socket.
        let waiting = matches!(
            self.tls.borrow_mut().reader().into_first_chunk(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        );
        if !waiting {
            return Poll::Ready(Ok(()));
        }
        self.tcp.poll_read_ready(cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let tls = self.tls.borrow();
        if tls.is_handshaking() && !tls.wants_write() && self.clear.borrow().is_empty() {
            // Waiting for the peer's handshake messages: reading moves it on.
            return Poll::Pending;
        }
        drop(tls);
        self.tcp.poll_write_ready(cx)
    }

    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut tls = self.tls.borrow_mut();
        if self.failed.get() || self.timed_out.get() {
            if let Some(e) = self.handshake_error(&mut tls) {
                return Err(e);
            }
        }
        let mut filled = 0;
        let mut drained = false;
        loop {
            match tls.reader().read(&mut buf[filled..]) {
                Ok(0) if filled < buf.len() => {
                    // The peer's close_notify, after everything it sent.
                    return Ok(filled);
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    if filled > 0 {
                        return Ok(filled);
                    }
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, Truncated));
                }
                Err(e) => return Err(e),
            }
            if filled == buf.len() || (drained && filled > 0) {
                return Ok(filled);
            }
            if drained {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            // More ciphertext. `try_io` clears exactly the readiness seen before the read
            // when the closure says `WouldBlock`, which a short read does.
            let mut got = None;
            let res = self.tcp.try_io(Interest::READABLE, || {
                let mut input = SocketIn {
                    tcp: &self.tcp,
                    short: false,
                };
                let n = tls.read_tls(&mut input)?;
                got = Some(n);
                if n > 0 && input.short {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(n)
                }
            });
            match (got, res) {
                // A short read: the queue is drained and the readiness cleared.
                (Some(_), Err(_)) => drained = true,
                (Some(_), Ok(_)) => {}
                (None, Err(e)) if e.kind() == io::ErrorKind::WouldBlock => drained = true,
                (None, Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                (None, Err(e)) => return Err(e),
                (None, Ok(_)) => {}
            }
            self.process(&mut tls)?;
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut tls = self.tls.borrow_mut();
        self.flush_tls(&mut tls)?;
        if tls.is_handshaking() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = tls.writer().write(buf)?;
        match self.flush_tls(&mut tls) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(first) => self.try_write(first),
            None => Ok(0),
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        let mut tls = self.tls.borrow_mut();
        tls.send_close_notify();
        self.fin_due.set(true);
        match self.flush_tls(&mut tls) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            r => r,
        }
    }

    fn set_reset_on_close(&self) {
        let _ = socket2::SockRef::from(&self.tcp).set_linger(Some(Duration::ZERO));
    }

    fn pending(&self) -> bool {
        let tls = self.tls.borrow();
        tls.wants_write()
            || tls.is_handshaking()
            || self.fin_due.get()
            || !self.clear.borrow().is_empty()
    }

    fn handshaking(&self) -> bool {
        self.tls.borrow().is_handshaking() || self.failed.get() || self.timed_out.get()
    }

    fn enter(&self, id: u64) -> Option<Entered> {
        self.id.set(id);
        let now = self.info.borrow().clone().map(|info| (id, info));
        Some(Entered(
            CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), now)),
        ))
    }

    fn flush_pending(&self) -> io::Result<()> {
        let mut tls = self.tls.borrow_mut();
        match self.flush_tls(&mut tls) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            r => r,
        }
    }
}
