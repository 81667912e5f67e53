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
//! - **Handshake** (not finished when the driver starts: a future `start_tls`):
//!   plaintext waits in the transport's buffer until the handshake is done; reading drives
//!   the handshake forward.

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

/// The socket operations TLS needs from a stream socket (TCP or Unix).
pub(crate) trait Socket: AsFd + Send + 'static {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize>;
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

macro_rules! socket {
    ($t:ty) => {
        impl Socket for $t {
            fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$t>::poll_read_ready(self, cx)
            }
            fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$t>::poll_write_ready(self, cx)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$t>::try_write(self, buf)
            }
            fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
                <$t>::try_write_vectored(self, bufs)
            }
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
        };
        s.note_handshake(&s.tls.borrow());
        s
    }

    /// Records what the handshake negotiated, once it is done.
    fn note_handshake(&self, tls: &rustls::Connection) {
        if !tls.is_handshaking() && self.info.borrow().is_none() {
            let info = TlsInfo::new(tls, self.server_name.as_deref());
            *self.info.borrow_mut() = Some(Arc::new(info));
        }
    }

    /// Writes queued ciphertext until rustls has none left or the socket is full
    /// (`WouldBlock`).
    fn flush_tls(&self, tls: &mut rustls::Connection) -> io::Result<()> {
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

    /// Decrypts what was read; a TLS error is sent to the peer as an alert and returned.
    fn process(&self, tls: &mut rustls::Connection) -> io::Result<()> {
        let handshaking = tls.is_handshaking();
        if let Err(e) = tls.process_new_packets() {
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
        if tls.is_handshaking() && !tls.wants_write() {
            // Waiting for the peer's handshake messages: reading moves it on.
            return Poll::Pending;
        }
        drop(tls);
        self.tcp.poll_write_ready(cx)
    }

    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut tls = self.tls.borrow_mut();
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
        tls.wants_write() || tls.is_handshaking() || self.fin_due.get()
    }

    fn enter(&self, id: u64) -> Option<Entered> {
        let info = self.info.borrow().clone()?;
        Some(Entered(
            CURRENT.with(|c| c.borrow_mut().replace((id, info))),
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
