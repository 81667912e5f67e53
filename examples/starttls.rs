//! A small STARTTLS line protocol, server and client: a plain TCP connection upgraded to TLS
//! in the middle (how SMTP, IMAP and XMPP do it), with `Control::start_tls`.
//!
//! ```text
//! cargo run --example starttls -- [server] [ADDR] [--pems DIR]
//! cargo run --example starttls -- client HOST:PORT --ca CERT.pem [--name NAME] [LINE...]
//! ```
//!
//! The server (default address 127.0.0.1:1234; port 0 picks one) greets with `220 ready`,
//! answers `STARTTLS` with `220 go ahead` and upgrades, and answers every other line with
//! `clear: LINE` before the upgrade and `tls: LINE` after it (`QUIT`: `221 bye`, then close).
//! Its certificate is `DIR/cert.pem` with the key in `DIR/key.pem`; without `--pems`, or when
//! DIR holds no `key.pem`, it makes a self-signed one for `localhost` and `127.0.0.1` there
//! (default DIR: `weft-starttls` in the temporary directory). The first stderr line is
//! `listening on HOST:PORT`, the second `certificate PATH`.
//!
//! The client waits for the greeting, sends `STARTTLS`, waits for the go-ahead, upgrades
//! (verifying the server's certificate against `--ca` for `--name`, default `localhost`), then
//! sends each LINE over TLS, prints each reply on stdout, and ends with `QUIT`. It exits 0
//! when the server closed cleanly after `221 bye`, 1 otherwise (the reason on stderr).
//!
//! Try it by hand: `openssl s_client -starttls smtp` does not speak this greeting, but Python
//! does (`tests/starttls.rs` drives the server with `ssl.SSLObject` after the clear
//! exchange).
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft::core::tls::{CertSource, ClientTlsOptions, ServerTls, ServerTlsOptions, TlsUpgrade};
use weft::core::{Address, DisconnectReason, Reactor, factory_fn};
use weft::line::{Control, LineProtocol, Receiver};

/// The server side: one per connection.
pub struct Server {
    /// What `STARTTLS` upgrades to.
    pub upgrade: TlsUpgrade,
}

impl Receiver for Server {
    fn connection_made(&mut self, ctl: &mut Control<'_>) {
        ctl.send_line("220 ready");
    }

    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
        match line {
            b"STARTTLS" => {
                ctl.send_line("220 go ahead"); // in clear: written before the call
                if let Err(e) = ctl.start_tls(self.upgrade.clone()) {
                    ctl.send_line(format!("454 {e}"));
                }
            }
            b"QUIT" => {
                ctl.send_line("221 bye");
                ctl.transport().lose_connection();
            }
            _ => {
                let how = if ctl.transport().tls().is_some() {
                    "tls"
                } else {
                    "clear"
                };
                let mut reply = format!("{how}: ").into_bytes();
                reply.extend_from_slice(line);
                ctl.send_line(reply);
            }
        }
    }
}

/// Where the client is in the exchange.
#[derive(Debug, PartialEq)]
enum Step {
    Greeting,
    GoAhead,
    Talking,
    Bye,
}

/// The client side: the STARTTLS exchange, then `lines` over TLS.
pub struct Client {
    upgrade: TlsUpgrade,
    lines: Vec<String>,
    step: Step,
    /// Replies still expected for the lines sent.
    waiting: usize,
    /// The replies to `lines`, in order.
    replies: Arc<Mutex<Vec<String>>>,
}

impl Client {
    /// A client that sends `lines` over TLS and collects the replies in `replies`.
    pub fn new(upgrade: TlsUpgrade, lines: Vec<String>, replies: Arc<Mutex<Vec<String>>>) -> Self {
        Client {
            upgrade,
            lines,
            step: Step::Greeting,
            waiting: 0,
            replies,
        }
    }

    fn send_lines(&mut self, ctl: &mut Control<'_>) {
        for line in &self.lines {
            ctl.send_line(line);
        }
        self.waiting = self.lines.len();
        if self.waiting == 0 {
            self.quit(ctl);
        }
    }

    fn quit(&mut self, ctl: &mut Control<'_>) {
        ctl.send_line("QUIT");
        self.step = Step::Bye;
    }
}

impl Receiver for Client {
    fn frame_received(&mut self, line: &[u8], ctl: &mut Control<'_>) {
        let text = String::from_utf8_lossy(line);
        match self.step {
            Step::Greeting if line.starts_with(b"220") => {
                ctl.send_line("STARTTLS");
                self.step = Step::GoAhead;
            }
            Step::GoAhead if line.starts_with(b"220") => {
                if let Err(e) = ctl.start_tls(self.upgrade.clone()) {
                    eprintln!("cannot start TLS: {e}");
                    ctl.transport().abort_connection();
                    return;
                }
                // Written after the call: sent once the handshake is done, encrypted.
                self.step = Step::Talking;
                self.send_lines(ctl);
            }
            Step::Talking if self.waiting > 0 => {
                if let Ok(mut r) = self.replies.lock() {
                    r.push(text.into_owned());
                }
                self.waiting -= 1;
                if self.waiting == 0 {
                    self.quit(ctl);
                }
            }
            Step::Bye if line.starts_with(b"221") => {}
            _ => {
                eprintln!("unexpected reply in step {:?}: {text}", self.step);
                ctl.transport().abort_connection();
            }
        }
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        if self.step != Step::Bye || !reason.is_clean() {
            eprintln!("connection lost: {reason}");
        }
    }
}

/// `DIR/key.pem` and `DIR/cert.pem`, made (self-signed, for localhost and 127.0.0.1) when
/// DIR has no key yet.
pub fn certificate(dir: &Path) -> Result<(PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    if !key.exists() {
        std::fs::create_dir_all(dir)?;
        let made =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
        // Written aside and renamed, the key last: another server starting meanwhile sees
        // the pair whole or not at all.
        let id = std::process::id();
        let (key_tmp, cert_tmp) = (
            dir.join(format!(".key.{id}")),
            dir.join(format!(".cert.{id}")),
        );
        std::fs::write(&cert_tmp, made.cert.pem())?;
        std::fs::write(&key_tmp, made.signing_key.serialize_pem())?;
        std::fs::rename(cert_tmp, &cert)?;
        std::fs::rename(key_tmp, &key)?;
    }
    Ok((key, cert))
}

/// The value after `flag`, removed from `args`.
fn option(args: &mut Vec<String>, flag: &str) -> Option<String> {
    let i = args.iter().position(|a| a == flag)?;
    args.remove(i);
    (i < args.len()).then(|| args.remove(i))
}

async fn server(mut args: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    let dir = option(&mut args, "--pems")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("weft-starttls"));
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:1234".into());
    let (key, cert) = certificate(&dir)?;
    let tls = ServerTls::load(&ServerTlsOptions::new(CertSource::files(
        key,
        Some(cert.clone()),
        None,
    )))?;
    let upgrade = TlsUpgrade::from(&tls);
    let reactor = Reactor::new();
    reactor.handle_signals()?; // a Ctrl-C from now on is a clean shutdown
    let factory = factory_fn(move |_: &Address| {
        Some(LineProtocol::new(Server {
            upgrade: upgrade.clone(),
        }))
    });
    let port = reactor.listen(&addr, factory).await?;
    eprintln!("listening on {}", port.local_addr().listening());
    // Written, not `eprintln!`: a caller that read only the first line may have closed the
    // pipe already (a panic on EPIPE would end the server).
    let _ = writeln!(std::io::stderr(), "certificate {}", cert.display());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    reactor.run().await?;
    Ok(())
}

async fn client(mut args: Vec<String>) -> Result<bool, Box<dyn std::error::Error>> {
    let ca = option(&mut args, "--ca").ok_or("client: --ca CERT.pem is required")?;
    let name = option(&mut args, "--name").unwrap_or_else(|| "localhost".into());
    if args.is_empty() {
        return Err("client: HOST:PORT is required".into());
    }
    let addr = args.remove(0);
    let config = ClientTlsOptions::default().trust_roots(ca).config()?;
    let upgrade = TlsUpgrade::client(config, &name)?;
    let reactor = Reactor::new();
    let replies = Arc::new(Mutex::new(Vec::new()));
    let sink = replies.clone();
    let conn = reactor
        .connect_tcp(
            addr.as_str(),
            factory_fn(move |_: &Address| {
                let client = Client::new(upgrade.clone(), args.clone(), sink.clone());
                Some(LineProtocol::new(client))
            }),
            Duration::from_secs(10),
        )
        .await?;
    let clean = conn.closed().await.is_clean();
    for reply in replies.lock().map(|r| r.clone()).unwrap_or_default() {
        println!("{reply}");
    }
    Ok(clean)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `server` is the default mode (`starttls 127.0.0.1:0` serves, like the other servers).
    let result = match args.first().map(String::as_str) {
        Some("client") => client(args.split_off(1)).await,
        Some("server") => server(args.split_off(1)).await.map(|()| true),
        Some("-h" | "--help") => Err("usage: starttls [server] [ADDR] [--pems DIR] | client HOST:PORT --ca CERT.pem [--name NAME] [LINE...]".into()),
        _ => server(args).await.map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("starttls: {e}");
            ExitCode::FAILURE
        }
    }
}
