//! weft-bench: the load benchmark of weft.
//!
//! `weft-bench run` starts every server under test as a child process on 127.0.0.1 (the
//! `weft` binary's `serve line-echo` and `serve echo`, the hand-written tokio references of
//! this crate, optionally Twisted), drives each with the load generator (pipelined line echo,
//! connection rate, idle connections, bulk echo), reads the servers' CPU time and RSS from
//! `/proc`, and prints (or writes) a markdown report with ratios against the reference.
//!
//! `weft-bench ref-line-echo --listen ADDR` and `weft-bench ref-echo --listen ADDR` run the
//! reference servers on their own (over TLS with `--tls-key KEY.pem --tls-cert CERT.pem`).

// A command-line tool: printing is its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod load;
mod plan;
mod procs;
mod reference;
mod report;
mod run;
mod servers;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "weft-bench", about = "Load benchmark for weft", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Reference tokio line echo (LF), the best straightforward tokio code (over
    /// tokio-rustls with --tls-key/--tls-cert).
    RefLineEcho(ServeArgs),
    /// Reference tokio byte echo (over tokio-rustls with --tls-key/--tls-cert).
    RefEcho(ServeArgs),
    /// weft-core byte echo (stand-in for `weft serve echo`).
    WeftEcho(ServeArgs),
    /// weft-line LineReceiver echo, LF (stand-in for `weft serve line-echo`).
    WeftLineEcho(ServeArgs),
    /// Minimal tokio byte echo holding no buffer while idle (the idle-memory floor).
    FloorEcho(ServeArgs),
    /// Diagnostics: opens K connections to ADDR, sends one line on each, holds them for SECS
    /// (for profiling a server's idle memory by hand, e.g. under valgrind).
    Hold {
        /// Server address.
        #[arg(long)]
        addr: SocketAddr,
        /// Connections.
        #[arg(long, default_value_t = 1000)]
        k: usize,
        /// Seconds to hold them.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
    },
    /// Diagnostics: the pipelined line-echo load alone against ADDR (CONNS connections, WINDOW
    /// lines in flight each, for SECS), printing the lines echoed and checked (for measuring a
    /// server by hand, e.g. under `perf stat -p PID`, with the client pinned by `taskset`).
    LineLoad {
        /// Server address.
        #[arg(long)]
        addr: SocketAddr,
        /// Connections.
        #[arg(long, default_value_t = 1)]
        conns: usize,
        /// Lines in flight per connection.
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Seconds of sending.
        #[arg(long, default_value_t = 1.0)]
        secs: f64,
    },
    /// Runs every mode against every server and prints the report.
    Run(plan::RunOpts),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Runtime worker threads (default: the number of CPUs, as `#[tokio::main]`).
    #[arg(long)]
    workers: Option<usize>,
    /// Serve TLS (tokio-rustls) with this private key (references only; needs --tls-cert).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The certificate for --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
}

fn serve(kind: servers::Kind, a: ServeArgs) -> ExitCode {
    let workers = a
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let tls = match (a.tls_key, a.tls_cert) {
        (Some(key), Some(cert)) => Some(servers::TlsFiles { key, cert }),
        _ => None,
    };
    match servers::serve(kind, a.listen, workers, tls) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::RefLineEcho(a) => serve(servers::Kind::RefLine, a),
        Cmd::RefEcho(a) => serve(servers::Kind::RefEcho, a),
        Cmd::WeftEcho(a) => serve(servers::Kind::WeftEcho, a),
        Cmd::WeftLineEcho(a) => serve(servers::Kind::WeftLine, a),
        Cmd::FloorEcho(a) => serve(servers::Kind::Floor, a),
        Cmd::Hold { addr, k, secs } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let res = rt.block_on(async {
                let mut c = load::IdleConns::open(addr, &load::Wire::Tcp, k).await?;
                c.one_line_each().await?;
                eprintln!("holding {k} connections for {secs} s");
                tokio::time::sleep(std::time::Duration::from_secs_f64(secs)).await;
                Ok::<_, std::io::Error>(())
            });
            match res {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::LineLoad {
            addr,
            conns,
            window,
            secs,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            match rt.block_on(load::line_echo(
                addr,
                &load::Wire::Tcp,
                conns,
                window,
                secs,
                || {},
            )) {
                Ok(r) => {
                    println!(
                        "{} lines in {:.3} s: {:.0} lines/s",
                        r.lines,
                        r.elapsed.as_secs_f64(),
                        r.lines as f64 / r.elapsed.as_secs_f64()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Run(opts) => match run::run(opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Directory of this executable (where cargo also puts `weft`).
fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
}
