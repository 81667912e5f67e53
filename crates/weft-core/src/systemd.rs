//! systemd integration: socket activation (`systemd:` endpoints) and readiness notification.
//!
//! **Activation.** systemd (or `systemd-socket-activate`) binds the sockets of a `.socket`
//! unit and starts the service with them open from descriptor 3 on, telling it so in
//! `LISTEN_PID` (this process), `LISTEN_FDS` (how many) and `LISTEN_FDNAMES` (their
//! `FileDescriptorName=`s, `:`-separated). They are read once, the way
//! `sd_listen_fds_with_names` reads them: without `LISTEN_FDNAMES` every descriptor is named
//! `unknown`, so `index=0` works with or without names. `LISTEN_PID` and `LISTEN_FDS` are then
//! removed from the environment, so child processes do not take the sockets for theirs.
//! Each descriptor can be taken once.
//!
//! **Readiness.** With `Type=notify`, the service tells systemd when it is ready
//! ([`notify_ready`]) and when it starts shutting down ([`notify_stopping`]); both do nothing
//! when `NOTIFY_SOCKET` is not set.

use std::sync::{Mutex, OnceLock};

use crate::endpoint::{SocketDomain, SystemdSocket};

/// Why a `systemd:` endpoint could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SystemdError {
    /// `LISTEN_FDS` is not set: the process was not started by socket activation.
    #[error(
        "no sockets passed by systemd (LISTEN_FDS is not set: start the service from a .socket unit, or try systemd-socket-activate)"
    )]
    NotActivated,
    /// `LISTEN_PID` names another process (the variables were inherited, not meant for us).
    #[error("the passed sockets are for process {listen_pid}, not this one ({pid})")]
    WrongPid {
        /// What `LISTEN_PID` says.
        listen_pid: String,
        /// This process.
        pid: u32,
    },
    /// A variable that does not parse.
    #[error("invalid {var}={value:?}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// `LISTEN_FDNAMES` does not name every descriptor.
    #[error("LISTEN_FDNAMES has {names} names for {fds} sockets")]
    NameCount {
        /// Names given.
        names: usize,
        /// Descriptors passed.
        fds: usize,
    },
    /// `index=` past the passed sockets.
    #[error("index={index}, but systemd passed {count} socket(s) (index counts from 0)")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// Sockets passed.
        count: usize,
    },
    /// `name=` not among the passed sockets.
    #[error("no passed socket is named {name:?} (names: {names})")]
    NameNotFound {
        /// The name asked for.
        name: String,
        /// The names there are.
        names: String,
    },
    /// The socket is not of the family `domain=` says.
    #[error("passed socket {index} is not a listening {want} stream socket ({got})")]
    WrongDomain {
        /// Its index.
        index: usize,
        /// `INET`, `INET6` or `UNIX`.
        want: &'static str,
        /// What it is.
        got: String,
    },
    /// The socket was already taken by another endpoint of this process.
    #[error("passed socket {0} is already in use by another endpoint")]
    Taken(usize),
}

/// What the environment passed: one name per descriptor.
///
/// The pure part of `sd_listen_fds_with_names`, for tests: `pid` is this process, the rest
/// the variables' values.
pub(crate) fn parse_env(
    pid: u32,
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    names: Option<&str>,
) -> Result<Vec<String>, SystemdError> {
    let fds = listen_fds.ok_or(SystemdError::NotActivated)?;
    let listen_pid = listen_pid.ok_or(SystemdError::Invalid {
        var: "LISTEN_PID",
        value: String::new(),
    })?;
    match listen_pid.parse::<u32>() {
        Ok(p) if p == pid => {}
        Ok(_) => {
            return Err(SystemdError::WrongPid {
                listen_pid: listen_pid.to_owned(),
                pid,
            });
        }
        Err(_) => {
            return Err(SystemdError::Invalid {
                var: "LISTEN_PID",
                value: listen_pid.to_owned(),
            });
        }
    }
    let count: usize = fds.parse().map_err(|_| SystemdError::Invalid {
        var: "LISTEN_FDS",
        value: fds.to_owned(),
    })?;
    match names {
        None => Ok(vec!["unknown".to_owned(); count]),
        Some(n) => {
            let names: Vec<String> = if count == 0 && n.is_empty() {
                Vec::new()
            } else {
                n.split(':').map(str::to_owned).collect()
            };
            if names.len() != count {
                return Err(SystemdError::NameCount {
                    names: names.len(),
                    fds: count,
                });
            }
            Ok(names)
        }
    }
}

/// Which passed descriptor `socket` selects, given their names.
pub(crate) fn select(names: &[String], socket: &SystemdSocket) -> Result<usize, SystemdError> {
    match socket {
        SystemdSocket::Index(i) if *i < names.len() => Ok(*i),
        SystemdSocket::Index(i) => Err(SystemdError::IndexOutOfRange {
            index: *i,
            count: names.len(),
        }),
        SystemdSocket::Name(n) => {
            names
                .iter()
                .position(|x| x == n)
                .ok_or_else(|| SystemdError::NameNotFound {
                    name: n.clone(),
                    names: if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    },
                })
        }
    }
}

/// The passed sockets, read from the environment once per process.
struct Passed {
    names: Vec<String>,
    fds: listenfd::ListenFd,
}

fn passed() -> &'static Result<Mutex<Passed>, SystemdError> {
    static PASSED: OnceLock<Result<Mutex<Passed>, SystemdError>> = OnceLock::new();
    PASSED.get_or_init(|| {
        let var = |k| std::env::var(k).ok();
        let names = parse_env(
            std::process::id(),
            var("LISTEN_PID").as_deref(),
            var("LISTEN_FDS").as_deref(),
            var("LISTEN_FDNAMES").as_deref(),
        )?;
        // listenfd takes the descriptors through a safe API (and marks them close-on-exec),
        // and removes LISTEN_PID and LISTEN_FDS from the environment.
        let fds = listenfd::ListenFd::from_env();
        Ok(Mutex::new(Passed { names, fds }))
    })
}

/// A listening socket taken from systemd.
pub(crate) enum Taken {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// Takes the passed socket `socket` selects, checking it is a listening stream socket of
/// `domain`.
pub(crate) fn take(domain: SocketDomain, socket: &SystemdSocket) -> Result<Taken, SystemdError> {
    let passed = passed().as_ref().map_err(Clone::clone)?;
    let mut passed = passed.lock().unwrap_or_else(|e| e.into_inner());
    let index = select(&passed.names, socket)?;
    let want = match domain {
        SocketDomain::Inet => "INET",
        SocketDomain::Inet6 => "INET6",
        SocketDomain::Unix => "UNIX",
    };
    let wrong = |got: String| SystemdError::WrongDomain { index, want, got };
    let taken = match domain {
        SocketDomain::Inet | SocketDomain::Inet6 => {
            let l = passed
                .fds
                .take_tcp_listener(index)
                .map_err(|e| wrong(e.to_string()))?
                .ok_or(SystemdError::Taken(index))?;
            let addr = l.local_addr().map_err(|e| wrong(e.to_string()))?;
            if addr.is_ipv6() != (domain == SocketDomain::Inet6) {
                return Err(wrong(format!("bound to {addr}")));
            }
            Taken::Tcp(l)
        }
        SocketDomain::Unix => Taken::Unix(
            passed
                .fds
                .take_unix_listener(index)
                .map_err(|e| wrong(e.to_string()))?
                .ok_or(SystemdError::Taken(index))?,
        ),
    };
    tracing::info!(index, name = %passed.names[index], "took a socket passed by systemd");
    Ok(taken)
}

/// Tells systemd the service is ready (`READY=1`), when `NOTIFY_SOCKET` is set (a
/// `Type=notify` unit); does nothing otherwise. Call it once every endpoint listens.
///
/// ```
/// weft_core::systemd::notify_ready(); // no NOTIFY_SOCKET here: nothing happens
/// ```
pub fn notify_ready() {
    notify(sd_notify::NotifyState::Ready, "READY=1");
}

/// Tells systemd the service is shutting down (`STOPPING=1`), when `NOTIFY_SOCKET` is set.
///
/// ```
/// weft_core::systemd::notify_stopping();
/// ```
pub fn notify_stopping() {
    notify(sd_notify::NotifyState::Stopping, "STOPPING=1");
}

fn notify(state: sd_notify::NotifyState<'_>, what: &str) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    match sd_notify::notify(&[state]) {
        Ok(()) => tracing::debug!("told systemd {what}"),
        Err(e) => tracing::warn!(error = %e, "could not tell systemd {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_read_as_sd_listen_fds_with_names_does() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_env(7, Some("7"), Some("2"), None),
            Ok(names(&["unknown", "unknown"]))
        );
        assert_eq!(
            parse_env(7, Some("7"), Some("2"), Some("web:admin")),
            Ok(names(&["web", "admin"]))
        );
        assert_eq!(parse_env(7, Some("7"), Some("0"), Some("")), Ok(vec![]));
        assert_eq!(
            parse_env(7, None, None, None),
            Err(SystemdError::NotActivated)
        );
        assert!(matches!(
            parse_env(7, Some("8"), Some("1"), None),
            Err(SystemdError::WrongPid { .. })
        ));
        assert!(matches!(
            parse_env(7, None, Some("1"), None),
            Err(SystemdError::Invalid {
                var: "LISTEN_PID",
                ..
            })
        ));
        assert!(matches!(
            parse_env(7, Some("x"), Some("1"), None),
            Err(SystemdError::Invalid {
                var: "LISTEN_PID",
                ..
            })
        ));
        assert!(matches!(
            parse_env(7, Some("7"), Some("-1"), None),
            Err(SystemdError::Invalid {
                var: "LISTEN_FDS",
                ..
            })
        ));
        assert_eq!(
            parse_env(7, Some("7"), Some("2"), Some("web")),
            Err(SystemdError::NameCount { names: 1, fds: 2 })
        );
    }

    #[test]
    fn index_and_name_select_one_socket() {
        let names = vec!["web".to_owned(), "admin".to_owned()];
        assert_eq!(select(&names, &SystemdSocket::Index(1)), Ok(1));
        assert_eq!(select(&names, &SystemdSocket::Name("web".into())), Ok(0));
        assert_eq!(
            select(&names, &SystemdSocket::Index(2)),
            Err(SystemdError::IndexOutOfRange { index: 2, count: 2 })
        );
        let e = select(&names, &SystemdSocket::Name("api".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no passed socket is named \"api\" (names: web, admin)"
        );
    }
}
