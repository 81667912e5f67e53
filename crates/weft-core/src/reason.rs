//! Why a connection ended: the argument of [`Protocol::connection_lost`](crate::Protocol::connection_lost).

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;

/// Why a connection ended.
///
/// Every connection gets exactly one `connection_lost(reason)`, whatever happens; the reason
/// says which of these ended it. Match on it, or use the predicates ([`is_clean`](Self::is_clean)).
///
/// ```
/// use weft_core::DisconnectReason;
///
/// let reason = DisconnectReason::ConnectionDone;
/// assert!(reason.is_clean());
/// assert_eq!(reason.to_string(), "connection was closed cleanly by the peer");
/// assert!(!DisconnectReason::Reset.is_clean());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The peer closed its side cleanly (EOF) and the connection was then closed.
    ConnectionDone,
    /// We closed it with [`Transport::lose_connection`](crate::Transport::lose_connection),
    /// after every pending byte was written.
    LocalClose,
    /// We closed it with [`Transport::abort_connection`](crate::Transport::abort_connection):
    /// pending output was dropped.
    Aborted,
    /// The peer reset the connection (ECONNRESET, EPIPE).
    Reset,
    /// Any other I/O error on the socket.
    Io(Arc<io::Error>),
    /// The reactor shut down ([`Reactor::stop`](crate::Reactor::stop), Ctrl-C, SIGTERM).
    Shutdown,
    /// A callback of the protocol panicked; the message is the panic payload when it was a string.
    Panicked(String),
    /// The protocol closed the connection because of a protocol error, through
    /// [`Transport::close_with_error`](crate::Transport::close_with_error)
    /// (for example "line too long").
    ProtocolError(Arc<dyn StdError + Send + Sync>),
    /// TLS failed: the handshake (a certificate the peer refused or we refused, no common
    /// version or cipher, an alert from the peer: see [`rustls::Error::AlertReceived`]) or a
    /// corrupt record.
    Tls(Arc<rustls::Error>),
    /// The TLS peer closed the TCP connection without sending `close_notify` first: what it
    /// sent may have been cut short (a clean TLS close is [`ConnectionDone`](Self::ConnectionDone)).
    TlsTruncated,
    /// A timeout of [`policies`](crate::policies) closed the connection: it was idle too long,
    /// or a line took too long to complete.
    TimedOut(TimeoutKind),
}

/// Which timeout closed a connection ([`DisconnectReason::TimedOut`]).
///
/// ```
/// use weft_core::{DisconnectReason, TimeoutKind};
/// let r = DisconnectReason::TimedOut(TimeoutKind::Idle);
/// assert_eq!(r.to_string(), "connection timed out: idle too long");
/// assert_eq!(r.label(), "timeout");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// No byte went either way for the idle period
    /// ([`IdleTimeout`](crate::policies::IdleTimeout)).
    Idle,
    /// A line was started and not finished in time
    /// ([`LineTimeout`](crate::policies::LineTimeout)).
    Line,
    /// The TLS handshake of [`Transport::start_tls`](crate::Transport::start_tls) took too long.
    Handshake,
}

impl DisconnectReason {
    /// True for the orderly endings: the peer's EOF and our own `lose_connection`.
    ///
    /// ```
    /// use weft_core::DisconnectReason;
    /// assert!(DisconnectReason::LocalClose.is_clean());
    /// assert!(!DisconnectReason::Aborted.is_clean());
    /// ```
    pub fn is_clean(&self) -> bool {
        matches!(self, Self::ConnectionDone | Self::LocalClose)
    }

    /// The protocol error this connection was closed with, downcast to `E`.
    ///
    /// ```
    /// use weft_core::DisconnectReason;
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("line too long")]
    /// struct TooLong;
    /// let reason = DisconnectReason::ProtocolError(std::sync::Arc::new(TooLong));
    /// assert!(reason.protocol_error::<TooLong>().is_some());
    /// ```
    pub fn protocol_error<E: StdError + 'static>(&self) -> Option<&E> {
        match self {
            Self::ProtocolError(e) => e.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// A short, fixed name for the reason, for metric labels and log fields: `done`, `local`,
    /// `aborted`, `reset`, `io`, `shutdown`, `panic`, `protocol_error`, `timeout`, `tls`,
    /// `tls_truncated`.
    ///
    /// ```
    /// assert_eq!(weft_core::DisconnectReason::Reset.label(), "reset");
    /// ```
    pub fn label(&self) -> &'static str {
        match self {
            Self::ConnectionDone => "done",
            Self::LocalClose => "local",
            Self::Aborted => "aborted",
            Self::Reset => "reset",
            Self::Io(_) => "io",
            Self::Shutdown => "shutdown",
            Self::Panicked(_) => "panic",
            Self::ProtocolError(_) => "protocol_error",
            Self::TimedOut(_) => "timeout",
            Self::Tls(_) => "tls",
            Self::TlsTruncated => "tls_truncated",
        }
    }

    /// Classifies an I/O error from a socket read or write.
    pub(crate) fn from_io(err: io::Error) -> Self {
        if let Some(inner) = err.get_ref() {
            if let Some(e) = inner.downcast_ref::<rustls::Error>() {
                return Self::Tls(Arc::new(e.clone()));
            }
            if inner.is::<crate::tls_io::Truncated>() {
                return Self::TlsTruncated;
            }
            if inner.is::<crate::tls_io::HandshakeTimedOut>() {
                return Self::TimedOut(TimeoutKind::Handshake);
            }
        }
        match err.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => Self::Reset,
            _ => Self::Io(Arc::new(err)),
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConnectionDone => f.write_str("connection was closed cleanly by the peer"),
            Self::LocalClose => f.write_str("connection was closed by us"),
            Self::Aborted => f.write_str("connection was aborted by us"),
            Self::Reset => f.write_str("connection was reset by the peer"),
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Shutdown => f.write_str("connection was closed by a shutdown"),
            Self::Panicked(msg) => write!(f, "protocol panicked: {msg}"),
            Self::ProtocolError(e) => write!(f, "protocol error: {e}"),
            Self::Tls(e) => write!(f, "TLS error: {e}"),
            Self::TlsTruncated => f.write_str(
                "the TLS peer closed the connection without close_notify (data may be truncated)",
            ),
            Self::TimedOut(TimeoutKind::Idle) => f.write_str("connection timed out: idle too long"),
            Self::TimedOut(TimeoutKind::Line) => {
                f.write_str("connection timed out: a line took too long")
            }
            Self::TimedOut(TimeoutKind::Handshake) => {
                f.write_str("connection timed out: the TLS handshake took too long")
            }
        }
    }
}

/// The message of a panic payload (what `panic!` was given), for logs and errors: the
/// `&str` or `String` payload, or "non-string panic payload".
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
/// assert_eq!(weft_core::panic_message(payload.as_ref()), "boom 1");
/// ```
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
