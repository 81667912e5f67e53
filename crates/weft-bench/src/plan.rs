//! What `weft-bench run` measures: its options, the servers under test and their roles, the
//! line-echo loads. Shared by `run` (which measures) and `report` (which writes the results),
//! so neither imports the other's types.

use std::path::PathBuf;

use crate::procs::ServerCmd;

/// Options of `weft-bench run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunOpts {
    /// Write the markdown report to this file (e.g. docs/benchmarks.md) as well as stdout.
    #[arg(long)]
    pub write: Option<PathBuf>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 1.0)]
    pub secs: f64,
    /// Repetitions of every measurement (servers interleaved; medians reported). Many short
    /// repetitions rather than a few long ones: on a shared 2-core machine a single ratio
    /// spreads by ±15% or more, and only the median of some 30 pins it down to about ±3%.
    #[arg(long, default_value_t = 30)]
    pub reps: usize,
    /// Lines in flight per connection in the pipelined line-echo modes.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Connections of the many-connection line-echo mode.
    #[arg(long, default_value_t = 50)]
    pub conns: usize,
    /// Parallel clients in the connection-rate mode.
    #[arg(long, default_value_t = 4)]
    pub rate_parallel: usize,
    /// Idle connections held open in the idle-memory mode.
    #[arg(long, default_value_t = 5000)]
    pub idle: usize,
    /// Worker threads of the reference servers (default: number of CPUs, like weft's).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Include Twisted's LineReceiver echo (needs `python3 -c "import twisted"`).
    #[arg(long)]
    pub twisted: bool,
    /// `pip install twisted` first if it is missing (implies --twisted).
    #[arg(long)]
    pub install_twisted: bool,
    /// The `weft` binary (default: next to this executable, built first with cargo).
    #[arg(long)]
    pub weft_bin: Option<PathBuf>,
    /// Connection policies given to `weft serve` (its options, space-separated). The default
    /// turns off `weft serve`'s own defaults (an idle timeout, 256 connections per peer: the
    /// load comes from one address), so weft is measured bare; `--weft-policies
    /// "--idle-timeout 300 --max-per-peer none"` measures it with a timer armed on every
    /// connection.
    #[arg(
        long,
        default_value = "--idle-timeout none --max-per-peer none",
        allow_hyphen_values = true
    )]
    pub weft_policies: String,
    /// Do not run `cargo build --release -p weft-cli` first.
    #[arg(long)]
    pub no_build: bool,
    /// Bench this crate's weft-core/weft-line stand-ins instead of the `weft` binary.
    #[arg(long)]
    pub standin: bool,
    /// Only these modes (comma-separated: line,rate,idle,bulk).
    #[arg(long, default_value = "line,rate,idle,bulk")]
    pub modes: String,
    /// Line-echo loads as `CONNSxWINDOW`, comma-separated (default: `1xW,CxW,1x1` from
    /// `--conns` and `--window`); the first two are the ones checked against the targets.
    #[arg(long)]
    pub line_loads: Option<String>,
    /// A quick smoke run: 1 s per measurement, 1 repetition, 1000 idle connections.
    #[arg(long)]
    pub quick: bool,
}

/// What a server is, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// weft's line echo.
    WeftLine,
    /// The tokio reference line echo.
    RefLine,
    /// Twisted's LineReceiver echo.
    Twisted,
    /// weft's byte echo.
    WeftEcho,
    /// The tokio reference byte echo.
    RefEcho,
    /// Minimal tokio echo, idle-memory mode only.
    Floor,
}

impl Role {
    /// True for the line-echo servers.
    pub fn is_line(self) -> bool {
        matches!(self, Role::WeftLine | Role::RefLine | Role::Twisted)
    }

    /// True for the byte-echo servers of the bulk mode.
    pub fn is_bulk(self) -> bool {
        matches!(self, Role::WeftEcho | Role::RefEcho)
    }
}

/// A server under test.
#[derive(Debug, Clone)]
pub struct Sut {
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Command line.
    pub cmd: ServerCmd,
}

/// A line-echo configuration.
#[derive(Debug, Clone, Copy)]
pub struct LineCfg {
    /// Connections.
    pub conns: usize,
    /// Lines in flight per connection.
    pub window: usize,
}
