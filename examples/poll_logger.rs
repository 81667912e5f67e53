//! The seed's poll logger (14.3.2), with mio directly: a `Poll`, a token-to-connection map,
//! register and deregister, all on one thread without tokio.
//!
//! ```text
//! cargo run --example poll_logger [ADDR]   # default 127.0.0.1:1234; port 0 picks one; ADDR is HOST:PORT, :PORT or an endpoint string (tcp:0:interface=127.0.0.1)
//! nc 127.0.0.1 1234                        # type lines; they appear on the server
//! ```
//!
//! stdout gets `Got connection from HOST:PORT`, the data exactly as received (flushed at
//! once), then `HOST:PORT disconnected`.
//!
//! One difference from the seed's `select.poll()`: mio is edge-triggered, so a readable
//! event is only reported again after new data arrives. Each connection is therefore read
//! until `WouldBlock`, and so is the listening socket; when accepting fails for lack of
//! descriptors, the loop retries after a back-off without waiting for an event (none would
//! come while the backlog is full). Ctrl-C (SIGINT) or SIGTERM stops it with exit status 0.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};

/// The listening socket's token (the seed's `s.fileno()`).
const SERVER: Token = Token(0);

/// How often the loop looks at `stop` when nothing happens.
const TICK: Duration = Duration::from_millis(100);

/// How long accepting pauses after it failed for lack of resources (EMFILE, ENFILE, ENOBUFS,
/// ENOMEM), as weft's reactor does.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The seed's `fdmap`: each connection's socket and peer address.
type Conns = HashMap<Token, (TcpStream, SocketAddr)>;

/// The seed's poll loop: logs connections, data and disconnections from every client of
/// `listener` to `out`, until `stop` is set (checked at least every 100 ms).
///
/// Out of descriptors, it stops accepting for [`ACCEPT_BACKOFF`], then accepts again until
/// `WouldBlock` whether or not an event came: with an edge-triggered poller and a full
/// backlog no new event would ever come.
pub fn poll_logger(
    mut listener: TcpListener,
    out: &mut impl Write,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(128);
    poll.registry()
        .register(&mut listener, SERVER, Interest::READABLE)?;
    let mut conns = Conns::new();
    let mut next = 1usize;
    let mut buf = [0u8; 1024];
    // When accepting resumes after running out of descriptors.
    let mut accept_paused_until: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        let timeout = accept_paused_until.map_or(TICK, |t| {
            t.saturating_duration_since(Instant::now()).min(TICK)
        });
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if event.token() == SERVER {
                if accept_paused_until.is_none() {
                    accept_paused_until =
                        accept_all(&listener, &poll, &mut conns, &mut next, out, false)?;
                }
                continue;
            }
            let token = event.token();
            let mut disconnected = false;
            if let Some((stream, _)) = conns.get_mut(&token) {
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) => {
                            disconnected = true;
                            break;
                        }
                        Ok(n) => {
                            out.write_all(&buf[..n])?;
                            out.flush()?;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            disconnected = true;
                            break;
                        }
                    }
                }
            }
            if disconnected {
                if let Some((mut stream, addr)) = conns.remove(&token) {
                    poll.registry().deregister(&mut stream)?;
                    writeln!(out, "{addr} disconnected")?;
                    out.flush()?;
                }
            }
        }
        if accept_paused_until.is_some_and(|t| Instant::now() >= t) {
            accept_paused_until = accept_all(&listener, &poll, &mut conns, &mut next, out, true)?;
        }
    }
    Ok(())
}

/// Accepts until `WouldBlock` (mio is edge-triggered), logging and registering each new
/// connection. Returns when to try again if accepting failed for lack of resources.
fn accept_all(
    listener: &TcpListener,
    poll: &Poll,
    conns: &mut Conns,
    next: &mut usize,
    out: &mut impl Write,
    retrying: bool,
) -> io::Result<Option<Instant>> {
    loop {
        match listener.accept() {
            Ok((mut stream, addr)) => {
                writeln!(out, "Got connection from {addr}")?;
                out.flush()?;
                let token = Token(*next);
                *next += 1;
                poll.registry()
                    .register(&mut stream, token, Interest::READABLE)?;
                conns.insert(token, (stream, addr));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            // Failures of one connection (the client gave up before we accepted it).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => {
                // Once per pause, not every 100 ms while it lasts.
                if retrying {
                    tracing::debug!(error = %e, "accept still failing; backing off");
                } else {
                    tracing::warn!(error = %e, "accept failed; backing off {ACCEPT_BACKOFF:?}");
                }
                return Ok(Some(Instant::now() + ACCEPT_BACKOFF));
            }
        }
    }
}

#[allow(dead_code)] // Unused when the tests include this file as a module.
fn main() -> io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let std_listener = std::net::TcpListener::bind(weft::core::ServerEndpoint::parse_tcp(&addr)?)?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener);
    // Ctrl-C and SIGTERM set the flag: the loop sees it within 100 ms and the program exits 0.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    eprintln!("listening on {}", listener.local_addr()?);
    poll_logger(listener, &mut io::stdout(), &stop)
}
