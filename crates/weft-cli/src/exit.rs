//! Exit codes, and the [`Failure`] every command returns: a one-line message and its code.

use std::fmt;
use std::io;
use std::path::Path;

/// Success.
pub const OK: u8 = 0;
/// Any error without a more precise code.
pub const GENERIC: u8 = 1;
/// Bad arguments (clap's own code for usage errors).
pub const USAGE: u8 = 2;
/// The server answered with an HTTP status of 400 or more.
pub const HTTP: u8 = 3;
/// A network error: cannot connect or listen, connection reset.
pub const NETWORK: u8 = 4;
/// A timeout.
pub const TIMEOUT: u8 = 5;
/// The body ended before its announced length.
pub const INCOMPLETE: u8 = 6;
/// A malformed URL or an unsupported scheme.
pub const BAD_URL: u8 = 7;
/// A local file could not be read or written.
pub const LOCAL_IO: u8 = 8;
/// Too many redirects, a redirect loop, or a forbidden redirect.
pub const REDIRECT: u8 = 9;
/// Authentication could not be performed.
pub const AUTH: u8 = 10;
/// The server broke the protocol: a garbage status line, a bad chunk, a `206` that does not
/// continue the partial file, a body in an encoding that cannot be decoded.
pub const PROTOCOL: u8 = 11;
/// Interrupted by Ctrl-C (128 + SIGINT, the shell's convention).
pub const INTERRUPTED: u8 = 130;

/// Why a command failed: what to print (one line) and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code (one of the constants of this module).
    pub code: u8,
    /// The message, printed after `weft: `.
    pub message: String,
}

impl Failure {
    /// A failure with this code and message.
    pub fn new(code: u8, message: impl fmt::Display) -> Self {
        Self {
            code,
            message: message.to_string(),
        }
    }

    /// A local I/O error on `path`: `PATH: error`.
    pub fn local_io(path: &Path, err: &io::Error) -> Self {
        Self::new(LOCAL_IO, format!("{}: {err}", path.display()))
    }

    /// A network-level I/O error while doing `what` (connecting, listening...), classified by
    /// its kind: timeouts get [`TIMEOUT`], the rest [`NETWORK`].
    pub fn network(what: impl fmt::Display, err: &io::Error) -> Self {
        let code = match err.kind() {
            io::ErrorKind::TimedOut => TIMEOUT,
            io::ErrorKind::InvalidInput => USAGE,
            _ => NETWORK,
        };
        Self::new(code, format!("{what}: {err}"))
    }
}

/// The exit code for a weft-fetch error.
pub fn fetch_code(err: &weft_fetch::Error) -> u8 {
    use weft_fetch::{Error, ErrorKind};
    match err {
        Error::InvalidHeader(_) => return USAGE,
        Error::InvalidDataUrl { .. } => return BAD_URL,
        _ => {}
    }
    match err.kind() {
        ErrorKind::Http => HTTP,
        ErrorKind::Connect | ErrorKind::Network => NETWORK,
        ErrorKind::Timeout => TIMEOUT,
        ErrorKind::ContentTooShort => INCOMPLETE,
        ErrorKind::InvalidInput | ErrorKind::UnsupportedScheme | ErrorKind::Format => BAD_URL,
        ErrorKind::Io => LOCAL_IO,
        ErrorKind::Redirect => REDIRECT,
        ErrorKind::Auth => AUTH,
        ErrorKind::Protocol => PROTOCOL,
        _ => GENERIC,
    }
}

/// The message for a weft-fetch error: its `Display`, which carries its causes once (the URL
/// without its password, the root cause of a network failure).
pub fn fetch_message(err: &weft_fetch::Error) -> String {
    err.to_string()
}

impl From<weft_fetch::Error> for Failure {
    fn from(err: weft_fetch::Error) -> Self {
        Failure::from(&err)
    }
}

impl From<&weft_fetch::Error> for Failure {
    fn from(err: &weft_fetch::Error) -> Self {
        Failure::new(fetch_code(err), fetch_message(err))
    }
}

/// Squeezes a message onto one line (newlines and tabs become spaces).
pub fn one_line(msg: &str) -> String {
    msg.split(['\n', '\r', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_fit_on_one_line() {
        assert_eq!(one_line("a\nb\r\n  c\t"), "a b c");
    }

    #[test]
    fn fetch_errors_map_to_distinct_codes() {
        let short = weft_fetch::Error::ContentTooShort {
            expected: 10,
            got: 3,
        };
        assert_eq!(fetch_code(&short), INCOMPLETE);
        assert_eq!(fetch_message(&short), "too short: got 3 of 10 bytes");
        let scheme = weft_fetch::Error::UnsupportedScheme {
            scheme: "gopher".into(),
        };
        assert_eq!(fetch_code(&scheme), BAD_URL);
        let redirects = weft_fetch::Error::TooManyRedirects {
            url: "http://x/".into(),
            count: 10,
        };
        assert_eq!(fetch_code(&redirects), REDIRECT);
        let io = weft_fetch::Error::Io {
            path: Some("/nope".into()),
            source: io::Error::new(io::ErrorKind::NotFound, "gone"),
        };
        assert_eq!(fetch_code(&io), LOCAL_IO);
        assert_eq!(fetch_message(&io), "/nope: gone");
    }
}
