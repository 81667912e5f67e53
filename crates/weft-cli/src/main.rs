//! `weft`: the command-line face of the weft toolkit.
//!
//! * `weft serve PROTOCOL [--listen ENDPOINT]`: the seed's loggers and Twisted's
//!   `twisted.protocols.wire` servers (echo, discard, daytime, chargen, qotd).
//! * `weft connect ENDPOINT` (or `HOST PORT`; `-u` for UDP): a small netcat.
//! * `weft fetch URL [-o PATH]` and `weft cat URL`: urllib's `urlretrieve` and `urlopen`.
//!
//! Every failure is one line on stderr and an exit code that says what kind of failure it was
//! (see [`exit`]).

// A command-line tool talks to its user on stdout and stderr: the workspace's
// `print_stdout`/`print_stderr` lints (meant for the libraries) do not apply here.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cert;
mod connect;
mod exit;
mod fetch;
mod log;
mod prometheus;
mod serve;
mod units;
mod wire;

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::exit::Failure;

/// The long help's epilogue: the exit codes.
const AFTER_HELP: &str = "\
Exit codes:
  0   success
  1   other error
  2   usage error (bad arguments, bad endpoint string, malformed -H header)
  3   HTTP error status (4xx, 5xx)
  4   network error (cannot connect, connection reset, cannot listen)
  5   timeout
  6   incomplete body (too short: got N of M bytes)
  7   bad URL or unsupported scheme
  8   local I/O error (a file that cannot be read or written, or exists without --force)
  9   redirect error (too many redirects, redirect loop, forbidden redirect)
  10  authentication error
  11  protocol error (the server broke HTTP: garbage status line, bad chunk, bad 206)
  130 interrupted (Ctrl-C) during connect, fetch or cat

Logging: RUST_LOG (e.g. RUST_LOG=weft_core=debug) selects tracing output on stderr;
-v, -vv, -vvv set it to info, debug, trace; for fetch and cat, -v also shows the request and
response heads (> GET / HTTP/1.1, < HTTP/1.1 200 OK) as curl -v does.";

/// Twisted-style network programming on tokio, from the command line.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about, after_help = AFTER_HELP)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); overrides RUST_LOG.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a protocol until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    /// Connect to ENDPOINT: stdin to the socket, the socket to stdout (a small netcat).
    Connect(connect::ConnectArgs),
    /// Download URL to a file (urlretrieve); prints the path as the last line on stdout.
    Fetch(fetch::FetchArgs),
    /// Write the body of URL to stdout (urlopen): http, https, file and data URLs.
    Cat(fetch::CatArgs),
    /// Make certificates to try TLS with (`weft cert self-signed --name localhost --out DIR`).
    Cert(cert::CertArgs),
}

/// Replaces the default panic message (and backtrace hint) with one line.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = weft_core::panic_message(info.payload());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("weft: internal error{place}: {}", exit::one_line(&msg));
    }));
}

/// Runs the chosen command. `serve` handles Ctrl-C itself (graceful shutdown); the others
/// stop at once, dropping what they were doing (a download's temporary file is removed).
async fn run(command: Command, verbose: u8) -> Result<(), Failure> {
    let serving = matches!(command, Command::Serve(_));
    let work = async move {
        match command {
            Command::Serve(args) => serve::run(args).await,
            Command::Connect(args) => connect::run(args).await,
            Command::Fetch(args) => fetch::run_fetch(args, verbose > 0).await,
            Command::Cat(args) => fetch::run_cat(args, verbose > 0).await,
            Command::Cert(args) => cert::run(args),
        }
    };
    if serving {
        return work.await;
    }
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => Err(Failure::new(exit::INTERRUPTED, "interrupted")),
    }
}

fn main() {
    let cli = Cli::parse();
    install_panic_hook();
    let traffic = matches!(&cli.command, Command::Serve(a) if a.log_traffic);
    log::init(cli.verbose, traffic);
    if !matches!(cli.command, Command::Serve(_)) {
        log::open_gate(None);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weft: cannot start the tokio runtime: {e}");
            std::process::exit(i32::from(exit::GENERIC));
        }
    };
    let code = match runtime.block_on(run(cli.command, cli.verbose)) {
        Ok(()) => exit::OK,
        Err(failure) => {
            log::open_gate(None);
            eprintln!("weft: {}", exit::one_line(&failure.message));
            failure.code
        }
    };
    let _ = std::io::stdout().flush();
    // Exit without dropping the runtime: a blocking read of stdin (`weft connect`) would
    // otherwise keep the process alive until the user presses Enter.
    std::process::exit(i32::from(code));
}
