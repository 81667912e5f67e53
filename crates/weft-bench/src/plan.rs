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
    /// spreads by ±15% or more, and only the median of many pins it down to a few percent
    /// (15 keep the whole default run under 10 minutes; 30 for a closer look at one mode).
    #[arg(long, default_value_t = 15)]
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
    /// The Python that runs Twisted's servers (plain and `ssl:`); they are measured when it
    /// imports `twisted` and `OpenSSL`, else their rows say how to install them.
    #[arg(long, env = "WEFT_BENCH_PYTHON", default_value = "python3")]
    pub python: PathBuf,
    /// Leave Twisted out even when it is installed.
    #[arg(long)]
    pub no_twisted: bool,
    /// Repetitions that measure Twisted (the first N; it is there for the record, and its
    /// figures are far from the goals' margins).
    #[arg(long, default_value_t = 5)]
    pub twisted_reps: usize,
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
    /// Connection policies of the `policies` mode's extra `weft serve line-echo` (issue 15:
    /// an idle timer armed on every connection), compared with plain weft in the same run.
    #[arg(
        long,
        default_value = "--idle-timeout 300 --max-per-peer none",
        allow_hyphen_values = true
    )]
    pub policy_row: String,
    /// The PROXY header the `proxy` mode sends (1: text, 2: binary).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub proxy_version: u8,
    /// Pin the load generator and the server under test to different CPUs during
    /// one-connection measurements (`one-conn`), during every measurement (`all`), or never
    /// (`none`).
    #[arg(long, value_enum, default_value_t = Pin::OneConn)]
    pub pin: Pin,
    /// What to run, comma-separated. Measurements: line, rate, idle, bulk; server groups:
    /// tls (weft `ssl:` against tokio-rustls, Twisted `ssl:`), proxy (weft `haproxy:tcp:`
    /// against `tcp:`), policies (weft with `--policy-row` against weft without). A group
    /// alone runs all its measurements; the plain servers run when a measurement is named.
    #[arg(long, default_value = "line,rate,idle,bulk,tls,proxy,policies")]
    pub modes: String,
    /// Line-echo loads as `CONNSxWINDOW`, comma-separated (default: `1xW,CxW,1x1` from
    /// `--conns` and `--window`); the first two are the ones checked against the targets.
    #[arg(long)]
    pub line_loads: Option<String>,
    /// A quick smoke run: 1 s per measurement, 1 repetition, 1000 idle connections.
    #[arg(long)]
    pub quick: bool,
}

/// When the load generator and the server are pinned to different CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pin {
    /// During measurements over one connection (line echo with one connection, bulk).
    OneConn,
    /// During every measurement.
    All,
    /// Never.
    None,
}

/// A measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Pipelined and closed-loop line echo.
    Line,
    /// Connection (TLS: handshake) rate.
    Rate,
    /// Idle memory per connection.
    Idle,
    /// Bulk byte echo.
    Bulk,
}

/// A group of servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// weft, the tokio references, Twisted, over plain TCP.
    Plain,
    /// The same over TLS.
    Tls,
    /// weft behind a PROXY header.
    Proxy,
    /// weft with connection policies.
    Policies,
}

/// What `--modes` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Measurements.
    pub measures: Vec<Measure>,
    /// Server groups.
    pub groups: Vec<Group>,
}

impl Selection {
    /// Parses `--modes`.
    pub fn parse(modes: &str) -> Result<Self, String> {
        let mut measures = Vec::new();
        let mut groups = Vec::new();
        for m in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            match m {
                "line" => measures.push(Measure::Line),
                "rate" => measures.push(Measure::Rate),
                "idle" => measures.push(Measure::Idle),
                "bulk" => measures.push(Measure::Bulk),
                "tls" => groups.push(Group::Tls),
                "proxy" => groups.push(Group::Proxy),
                "policies" => groups.push(Group::Policies),
                other => {
                    return Err(format!(
                        "--modes: unknown mode `{other}` (line, rate, idle, bulk, tls, proxy, \
                         policies)"
                    ));
                }
            }
        }
        if measures.is_empty() && groups.is_empty() {
            return Err("--modes: nothing selected".into());
        }
        if !measures.is_empty() || groups.is_empty() {
            groups.insert(0, Group::Plain);
        }
        if measures.is_empty() {
            measures = vec![Measure::Line, Measure::Rate, Measure::Idle, Measure::Bulk];
        }
        Ok(Self { measures, groups })
    }

    /// True when `m` is selected.
    pub fn has(&self, m: Measure) -> bool {
        self.measures.contains(&m)
    }

    /// True when `g` is selected.
    pub fn group(&self, g: Group) -> bool {
        self.groups.contains(&g)
    }
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
    /// weft's line echo on `ssl:`.
    WeftLineTls,
    /// The tokio-rustls reference line echo.
    RefLineTls,
    /// Twisted's LineReceiver echo on its `ssl:` endpoint (pyOpenSSL).
    TwistedTls,
    /// weft's byte echo on `ssl:`.
    WeftEchoTls,
    /// The tokio-rustls reference byte echo.
    RefEchoTls,
    /// weft's line echo on `haproxy:tcp:`.
    WeftLineProxy,
    /// weft's line echo with `--policy-row`.
    WeftLinePolicies,
}

impl Role {
    /// The group the server belongs to.
    pub fn group(self) -> Group {
        match self {
            Role::WeftLine
            | Role::RefLine
            | Role::Twisted
            | Role::WeftEcho
            | Role::RefEcho
            | Role::Floor => Group::Plain,
            Role::WeftLineTls
            | Role::RefLineTls
            | Role::TwistedTls
            | Role::WeftEchoTls
            | Role::RefEchoTls => Group::Tls,
            Role::WeftLineProxy => Group::Proxy,
            Role::WeftLinePolicies => Group::Policies,
        }
    }

    /// What the server's figures are compared with: the hand-written reference on the same
    /// transport, or plain weft for the PROXY and policies rows.
    pub fn baseline(self) -> Option<Role> {
        match self {
            Role::WeftLine | Role::Twisted => Some(Role::RefLine),
            Role::WeftEcho => Some(Role::RefEcho),
            Role::WeftLineTls | Role::TwistedTls => Some(Role::RefLineTls),
            Role::WeftEchoTls => Some(Role::RefEchoTls),
            Role::WeftLineProxy | Role::WeftLinePolicies => Some(Role::WeftLine),
            Role::RefLine | Role::RefEcho | Role::RefLineTls | Role::RefEchoTls | Role::Floor => {
                None
            }
        }
    }

    /// True when the server takes part in measurement `m`.
    pub fn runs(self, m: Measure) -> bool {
        match m {
            Measure::Line | Measure::Rate => matches!(
                self,
                Role::WeftLine
                    | Role::RefLine
                    | Role::Twisted
                    | Role::WeftLineTls
                    | Role::RefLineTls
                    | Role::TwistedTls
                    | Role::WeftLineProxy
                    | Role::WeftLinePolicies
            ),
            Measure::Bulk => matches!(
                self,
                Role::WeftEcho | Role::RefEcho | Role::WeftEchoTls | Role::RefEchoTls
            ),
            Measure::Idle => !matches!(
                self,
                Role::WeftLineProxy | Role::WeftEchoTls | Role::RefEchoTls
            ),
        }
    }

    /// True for the servers of the other groups, which run only the targeted line loads
    /// (the first two), to keep the run short.
    pub fn targeted_loads_only(self) -> bool {
        self.group() != Group::Plain
    }

    /// True for Twisted.
    pub fn is_twisted(self) -> bool {
        matches!(self, Role::Twisted | Role::TwistedTls)
    }
}

/// A server under test.
#[derive(Debug, Clone)]
pub struct Sut {
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Command line; `Err` says why the server is not run (and how to make it run).
    pub cmd: Result<ServerCmd, String>,
}

/// A line-echo configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCfg {
    /// Connections.
    pub conns: usize,
    /// Lines in flight per connection.
    pub window: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_select_measurements_and_groups() {
        let all = Selection::parse("line,rate,idle,bulk,tls,proxy,policies").unwrap();
        assert_eq!(all.measures.len(), 4);
        assert_eq!(
            all.groups,
            [Group::Plain, Group::Tls, Group::Proxy, Group::Policies]
        );
        let tls = Selection::parse("tls").unwrap();
        assert_eq!(tls.groups, [Group::Tls]);
        assert_eq!(tls.measures.len(), 4);
        let line_tls = Selection::parse("line, tls").unwrap();
        assert_eq!(line_tls.groups, [Group::Plain, Group::Tls]);
        assert_eq!(line_tls.measures, [Measure::Line]);
        for bad in ["", "lines", "tls,bogus"] {
            assert!(Selection::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn every_compared_role_has_a_baseline_that_runs_the_same_measurements() {
        use Role::*;
        for r in [
            WeftLine,
            Twisted,
            WeftEcho,
            WeftLineTls,
            TwistedTls,
            WeftEchoTls,
            WeftLineProxy,
            WeftLinePolicies,
        ] {
            let b = r.baseline().unwrap();
            for m in [Measure::Line, Measure::Rate, Measure::Bulk] {
                assert!(!r.runs(m) || b.runs(m), "{r:?} {m:?}");
            }
        }
    }
}
