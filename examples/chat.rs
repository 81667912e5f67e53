//! Twisted's chat server: every line a client sends goes to every other connected client.
//!
//! ```text
//! cargo run --example chat [ADDR [IDLE_SECS]]   # default 127.0.0.1:1234; port 0 picks one; ADDR is HOST:PORT, :PORT or an endpoint string (tcp:0:interface=127.0.0.1)
//! nc 127.0.0.1 1234                             # in two or more terminals; type lines
//! ```
//!
//! The first stderr line is `listening on HOST:PORT` (the real address). A client gets a
//! welcome line with its name (`guest-N`), then `<name> text` for every line another client
//! sends, and `* name joined`, `* name left`, `* old is now new` notices. `/nick NAME` changes
//! its name, `/quit` says goodbye and closes. Lines end with `\n` or `\r\n` on input and
//! `\r\n` on output; a line longer than 16384 bytes closes that connection.
//!
//! The shape to copy: the factory owns the shared state (a `Registry` of the connected
//! clients, [`shared_factory`]) and hands it to each protocol; a protocol joins in
//! `connection_made` and keeps its `Membership`, which leaves the registry when the protocol
//! is dropped; a broadcast writes one `Bytes` to everyone else without copying it per client
//! or waiting. A client that stops reading misses messages once more than 64 KiB wait for it
//! (it is skipped, never slows the others, and the server's memory stays bounded).
//! A connection on which nothing moved either way for `IDLE_SECS` (default 300, `0`: never)
//! is closed by an [`IdleTimeout`] policy; a client that only listens is not idle while the
//! others talk (what the room writes to it counts), and one that stops reading is closed once
//! nothing more fits in its buffer. Ctrl-C shuts down gracefully.
#![allow(clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use weft::core::policies::{FactoryExt, IdleTimeout};
use weft::core::{Address, DisconnectReason, Membership, Reactor, Registry, shared_factory};
use weft::line::{Control, Delimiter, LineProtocol, Receiver};

/// What every connection shares: who is connected, and a counter for guest names.
#[derive(Debug, Default)]
struct Room {
    clients: Registry,
    guests: AtomicU64,
}

/// One connected client.
struct Chatter {
    room: Arc<Room>,
    nick: String,
    me: Option<Membership>,
}

impl Chatter {
    /// Sends `text` (a line) to every other client.
    fn tell_others(&self, text: String) {
        if let Some(me) = &self.me {
            let delivery = me.broadcast_others(text + "\r\n");
            if delivery.skipped > 0 {
                tracing::debug!(skipped = delivery.skipped, "slow readers missed a line");
            }
        }
    }
}

/// Writes `text` and `\r\n` to this client.
fn reply(ctl: &mut Control<'_>, text: &str) {
    ctl.transport().write_slices(&[text.as_bytes(), b"\r\n"]);
}

impl Receiver for Chatter {
    fn connection_made(&mut self, ctl: &mut Control<'_>) {
        self.me = Some(self.room.clients.join(ctl.transport()));
        reply(
            ctl,
            &format!(
                "Welcome, {}! /nick NAME changes your name, /quit leaves.",
                self.nick
            ),
        );
        self.tell_others(format!("* {} joined", self.nick));
    }

    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
        let line = String::from_utf8_lossy(line);
        if let Some(name) = line.strip_prefix("/nick ") {
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                reply(ctl, "* a name is one word");
                return;
            }
            let old = std::mem::replace(&mut self.nick, name.to_owned());
            reply(ctl, &format!("* you are now {}", self.nick));
            self.tell_others(format!("* {old} is now {}", self.nick));
        } else if line.trim_end() == "/quit" {
            reply(ctl, "Bye!");
            ctl.transport().lose_connection();
        } else {
            self.tell_others(format!("<{}> {line}", self.nick));
        }
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        if !reason.is_clean() {
            tracing::info!(nick = %self.nick, %reason, "connection ended");
        }
        self.tell_others(format!("* {} left", self.nick));
        self.me = None; // leaves the room (dropping the protocol would too)
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let idle_secs: u64 = match std::env::args().nth(2) {
        Some(s) => s.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("IDLE_SECS must be a number of seconds, not {s:?}"),
            )
        })?,
        None => 300,
    };
    let reactor = Reactor::new();
    reactor.handle_signals()?; // a Ctrl-C from now on is a clean shutdown
    let factory = shared_factory(Arc::new(Room::default()), |room, _peer: &Address| {
        let n = room.guests.fetch_add(1, Ordering::Relaxed) + 1;
        let chatter = Chatter {
            room: room.clone(),
            nick: format!("guest-{n}"),
            me: None,
        };
        Some(LineProtocol::new(chatter).with_delimiter(Delimiter::ANY))
    })
    .with((idle_secs > 0).then(|| IdleTimeout::new(Duration::from_secs(idle_secs))));
    let port = reactor.listen(&addr, factory).await?;
    eprintln!("listening on {}", port.local_addr().listening());
    // After the first stderr line, so that it stays first whatever RUST_LOG says.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    reactor.run().await
}
