//! Samples, medians, ratios against the reference, and the markdown report.

use std::fmt::Write as _;

use crate::load::{self, BulkResult, LineResult, RateResult};
use crate::plan::{LineCfg, Role, RunOpts, Sut};
use crate::procs::Machine;

/// One line-echo measurement.
#[derive(Debug, Clone)]
pub struct LineSample {
    /// Lines echoed.
    pub lines: u64,
    /// Lines per second.
    pub lines_per_s: f64,
    /// Payload MB/s one way (10^6 bytes).
    pub mb_per_s: f64,
    /// Server CPU (user + system) per line, microseconds.
    pub cpu_us_per_line: f64,
}

impl LineSample {
    /// From a result and the server's CPU seconds over the run.
    pub fn new(r: LineResult, cpu: f64) -> Self {
        let s = r.elapsed.as_secs_f64();
        Self {
            lines: r.lines,
            lines_per_s: r.lines as f64 / s,
            mb_per_s: (r.lines * load::LINE_LEN as u64) as f64 / s / 1e6,
            cpu_us_per_line: cpu * 1e6 / r.lines.max(1) as f64,
        }
    }
}

/// One connection-rate measurement.
#[derive(Debug, Clone)]
pub struct RateSample {
    /// Connections per second.
    pub conns_per_s: f64,
    /// Median latency.
    pub p50_us: u32,
    /// 99th percentile latency.
    pub p99_us: u32,
    /// Server CPU per connection, microseconds.
    pub cpu_us_per_conn: f64,
}

impl RateSample {
    /// From a result and the server's CPU seconds over the run.
    pub fn new(r: &RateResult, cpu: f64) -> Self {
        Self {
            conns_per_s: r.conns as f64 / r.elapsed.as_secs_f64(),
            p50_us: r.percentile(50.0),
            p99_us: r.percentile(99.0),
            cpu_us_per_conn: cpu * 1e6 / r.conns.max(1) as f64,
        }
    }
}

/// One bulk measurement.
#[derive(Debug, Clone)]
pub struct BulkSample {
    /// MB/s echoed (10^6 bytes).
    pub mb_per_s: f64,
    /// Server CPU seconds per GB echoed.
    pub cpu_s_per_gb: f64,
}

impl BulkSample {
    /// From a result and the server's CPU seconds over the run.
    pub fn new(r: BulkResult, cpu: f64) -> Self {
        Self {
            mb_per_s: r.bytes as f64 / r.elapsed.as_secs_f64() / 1e6,
            cpu_s_per_gb: cpu / (r.bytes.max(1) as f64 / 1e9),
        }
    }
}

/// One idle-memory measurement.
#[derive(Debug, Clone)]
pub struct IdleSample {
    /// Connections held.
    pub k: usize,
    /// Server VmRSS after warm-up, KiB.
    pub before_kib: u64,
    /// With `k` fresh connections, KiB.
    pub fresh_kib: u64,
    /// After every connection carried one line and went idle, KiB.
    pub after_kib: u64,
}

impl IdleSample {
    /// KiB per fresh connection.
    pub fn fresh_per_conn(&self) -> f64 {
        (self.fresh_kib as f64 - self.before_kib as f64) / self.k as f64
    }
    /// KiB per connection that carried a line.
    pub fn after_per_conn(&self) -> f64 {
        (self.after_kib as f64 - self.before_kib as f64) / self.k as f64
    }
}

/// Everything measured in one run.
#[derive(Debug)]
pub struct Report {
    machine: Machine,
    /// Options used.
    pub opts: RunOpts,
    workers: usize,
    suts: Vec<Sut>,
    /// Line configurations.
    pub line_cfgs: Vec<LineCfg>,
    /// (server, config, sample).
    pub line: Vec<(usize, usize, LineSample)>,
    /// (server, sample).
    pub rate: Vec<(usize, RateSample)>,
    /// (server, sample).
    pub bulk: Vec<(usize, BulkSample)>,
    /// (server, sample).
    pub idle: Vec<(usize, IdleSample)>,
    /// Load average at the start.
    pub load_before: String,
    /// Load average at the end.
    pub load_after: String,
    /// Notes (stand-ins, skipped servers).
    pub notes: Vec<String>,
    /// Wall time of the run.
    pub total_secs: f64,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn range(v: &[f64]) -> Option<(f64, f64)> {
    (v.len() > 1).then(|| {
        v.iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
    })
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.prec$}"))
}

fn fmt_int(v: f64) -> String {
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 && c.is_ascii_digit() {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A target row.
struct Target {
    what: String,
    weft: Option<f64>,
    reference: Option<f64>,
    ratio: Option<f64>,
    /// Smallest and largest per-repetition ratio.
    range: Option<(f64, f64)>,
    goal: String,
    pass: Option<bool>,
}

impl Report {
    /// An empty report.
    pub fn new(machine: Machine, opts: RunOpts, workers: usize, suts: Vec<Sut>) -> Self {
        Self {
            machine,
            opts,
            workers,
            suts,
            line_cfgs: Vec::new(),
            line: Vec::new(),
            rate: Vec::new(),
            bulk: Vec::new(),
            idle: Vec::new(),
            load_before: String::new(),
            load_after: String::new(),
            notes: Vec::new(),
            total_secs: 0.0,
        }
    }

    fn sut(&self, role: Role) -> Option<usize> {
        self.suts.iter().position(|s| s.role == role)
    }

    fn line_samples(&self, si: usize, ci: usize) -> Vec<&LineSample> {
        self.line
            .iter()
            .filter(|(s, c, _)| *s == si && *c == ci)
            .map(|(_, _, x)| x)
            .collect()
    }

    fn line_median(&self, si: usize, ci: usize, f: impl Fn(&LineSample) -> f64) -> Option<f64> {
        median(self.line_samples(si, ci).into_iter().map(f).collect())
    }

    /// The per-repetition ratios a/b (servers interleaved in time, so each ratio compares
    /// measurements taken under the same load).
    fn line_ratios(
        &self,
        a: usize,
        b: usize,
        ci: usize,
        f: impl Fn(&LineSample) -> f64,
    ) -> Vec<f64> {
        let xa = self.line_samples(a, ci);
        let xb = self.line_samples(b, ci);
        xa.iter().zip(&xb).map(|(x, y)| f(x) / f(y)).collect()
    }

    /// Median of [`line_ratios`](Self::line_ratios).
    fn line_ratio(
        &self,
        a: usize,
        b: usize,
        ci: usize,
        f: impl Fn(&LineSample) -> f64,
    ) -> Option<f64> {
        median(self.line_ratios(a, b, ci, f))
    }

    fn rate_samples(&self, si: usize) -> Vec<&RateSample> {
        self.rate
            .iter()
            .filter(|(s, _)| *s == si)
            .map(|(_, x)| x)
            .collect()
    }

    fn bulk_samples(&self, si: usize) -> Vec<&BulkSample> {
        self.bulk
            .iter()
            .filter(|(s, _)| *s == si)
            .map(|(_, x)| x)
            .collect()
    }

    fn cfg_name(&self, ci: usize) -> String {
        let c = self.line_cfgs[ci];
        if c.window == 1 {
            format!("{} conn, closed loop (1 in flight)", c.conns)
        } else {
            format!(
                "{} conn{}, {} in flight each",
                c.conns,
                if c.conns == 1 { "" } else { "s" },
                c.window
            )
        }
    }

    fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let (Some(w), Some(r)) = (self.sut(Role::WeftLine), self.sut(Role::RefLine)) else {
            return t;
        };
        for ci in 0..self.line_cfgs.len().min(2) {
            if self.line_samples(w, ci).is_empty() {
                continue;
            }
            let rs = self.line_ratios(w, r, ci, |s| s.lines_per_s);
            let ratio = median(rs.clone());
            t.push(Target {
                range: range(&rs),
                what: format!("line echo lines/s, {}", self.cfg_name(ci)),
                weft: self.line_median(w, ci, |s| s.lines_per_s),
                reference: self.line_median(r, ci, |s| s.lines_per_s),
                ratio,
                goal: "≥ 0.95×".into(),
                pass: ratio.map(|x| x >= 0.95),
            });
        }
        for ci in 0..self.line_cfgs.len().min(2) {
            if self.line_samples(w, ci).is_empty() {
                continue;
            }
            let rs = self.line_ratios(w, r, ci, |s| s.cpu_us_per_line);
            let ratio = median(rs.clone());
            t.push(Target {
                range: range(&rs),
                what: format!("server CPU µs/line, {}", self.cfg_name(ci)),
                weft: self.line_median(w, ci, |s| s.cpu_us_per_line),
                reference: self.line_median(r, ci, |s| s.cpu_us_per_line),
                ratio,
                goal: "≤ 1.05×".into(),
                pass: ratio.map(|x| x <= 1.05),
            });
        }
        let (rw, rr) = (self.rate_samples(w), self.rate_samples(r));
        if !rw.is_empty() {
            let rs: Vec<f64> = rw
                .iter()
                .zip(&rr)
                .map(|(a, b)| a.conns_per_s / b.conns_per_s)
                .collect();
            let ratio = median(rs.clone());
            t.push(Target {
                range: range(&rs),
                what: "connection rate, conns/s".into(),
                weft: median(rw.iter().map(|s| s.conns_per_s).collect()),
                reference: median(rr.iter().map(|s| s.conns_per_s).collect()),
                ratio,
                goal: "≥ 0.9×".into(),
                pass: ratio.map(|x| x >= 0.9),
            });
        }
        for (role, rrole) in [
            (Role::WeftLine, Role::RefLine),
            (Role::WeftEcho, Role::RefEcho),
        ] {
            let Some(si) = self.sut(role) else { continue };
            let Some((_, s)) = self.idle.iter().find(|(i, _)| *i == si) else {
                continue;
            };
            let worst = s.fresh_per_conn().max(s.after_per_conn());
            let reference = self
                .sut(rrole)
                .and_then(|ri| self.idle.iter().find(|(i, _)| *i == ri))
                .map(|(_, x)| x.fresh_per_conn().max(x.after_per_conn()));
            t.push(Target {
                what: format!(
                    "idle memory KiB/conn, {} (worst of fresh / after one line)",
                    self.suts[si].name
                ),
                weft: Some(worst),
                reference,
                ratio: None,
                range: None,
                goal: "≤ 1.5 KiB".into(),
                pass: Some(worst <= 1.5),
            });
        }
        t
    }

    /// The report as markdown.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let m = &self.machine;
        let _ = writeln!(o, "# weft load benchmark\n");
        let _ = writeln!(
            o,
            "Generated by `cargo run --release -p weft-bench -- {}` on **{}**; the measurements \
             took {:.0} s (`just bench` runs `cargo run --release -p weft-bench -- run --write \
             docs/benchmarks.md`).\n",
            std::env::args().skip(1).collect::<Vec<_>>().join(" "),
            m.date,
            self.total_secs
        );
        let _ = writeln!(o, "| Machine | |\n|---|---|");
        let _ = writeln!(o, "| CPU | {} |", m.cpu);
        let _ = writeln!(o, "| nproc | {} |", m.nproc);
        let _ = writeln!(o, "| kernel | Linux {} |", m.kernel);
        let _ = writeln!(o, "| rustc | {} |", m.rustc);
        let _ = writeln!(
            o,
            "| load average (1/5/15 min) | {} at start, {} at end |",
            self.load_before, self.load_after
        );
        let _ = writeln!(
            o,
            "| settings | {} s per measurement × {} repetitions (servers interleaved, in reverse order every other repetition), {} runtime workers in every Rust server, loopback only |\n",
            self.opts.secs, self.opts.reps, self.workers
        );
        for n in &self.notes {
            let _ = writeln!(o, "> {n}\n");
        }

        let _ = writeln!(o, "## Targets\n");
        let _ = writeln!(
            o,
            "Ratios are weft ÷ the hand-written tokio reference, measured in the same run: the \
             median over repetitions of the per-repetition ratio (in brackets the smallest and \
             largest per-repetition ratio).\n"
        );
        let _ = writeln!(o, "| Target | weft | reference | ratio | goal | result |");
        let _ = writeln!(o, "|---|---:|---:|---:|---|---|");
        for t in self.targets() {
            let prec = if t.what.contains("CPU") || t.what.contains("KiB") {
                3
            } else {
                0
            };
            let fmt = |v: Option<f64>| {
                if prec == 0 {
                    v.map_or_else(|| "–".into(), fmt_int)
                } else {
                    fmt_opt(v, prec)
                }
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                t.what,
                fmt(t.weft),
                fmt(t.reference),
                match (t.ratio, t.range) {
                    (Some(r), Some((lo, hi))) => format!("{r:.3}× ({lo:.2}–{hi:.2})"),
                    (Some(r), None) => format!("{r:.3}×"),
                    _ => "–".into(),
                },
                t.goal,
                match t.pass {
                    Some(true) => "**PASS**",
                    Some(false) => "**MISS**",
                    None => "–",
                }
            );
        }
        if let (Some(tw), Some(r)) = (self.sut(Role::Twisted), self.sut(Role::RefLine)) {
            let _ = writeln!(o);
            for ci in 0..self.line_cfgs.len().min(2) {
                if let Some(x) = self.line_ratio(tw, r, ci, |s| s.cpu_us_per_line) {
                    let _ = writeln!(
                        o,
                        "Twisted spends {x:.1}× the reference's CPU per line ({}).  ",
                        self.cfg_name(ci)
                    );
                }
            }
        }

        if !self.line.is_empty() {
            let _ = writeln!(o, "\n## Pipelined line echo\n");
            let _ = writeln!(
                o,
                "64-byte lines (63 bytes + `\\n`); every echoed line checked byte for byte and in \
                 order. Server CPU is utime + stime of the server process from `/proc/PID/stat` \
                 over the measurement, divided by the lines echoed. Medians of {} repetitions; \
                 \"vs ref\" is the median per-repetition ratio.\n",
                self.opts.reps
            );
            let _ = writeln!(
                o,
                "| Load | Server | lines/s | MB/s (one way) | server CPU µs/line | lines/s vs ref | CPU/line vs ref | lines checked |"
            );
            let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|");
            let r = self.sut(Role::RefLine);
            for ci in 0..self.line_cfgs.len() {
                for (si, s) in self.suts.iter().enumerate() {
                    if self.line_samples(si, ci).is_empty() {
                        continue;
                    }
                    let ratio = |f: fn(&LineSample) -> f64| {
                        r.and_then(|r| self.line_ratio(si, r, ci, f))
                            .map_or_else(|| "–".into(), |x| format!("{x:.3}×"))
                    };
                    let _ = writeln!(
                        o,
                        "| {} | {} | {} | {} | {} | {} | {} | {} |",
                        self.cfg_name(ci),
                        s.name,
                        fmt_int(self.line_median(si, ci, |x| x.lines_per_s).unwrap_or(0.0)),
                        fmt_opt(self.line_median(si, ci, |x| x.mb_per_s), 1),
                        fmt_opt(self.line_median(si, ci, |x| x.cpu_us_per_line), 3),
                        ratio(|x| x.lines_per_s),
                        ratio(|x| x.cpu_us_per_line),
                        fmt_int(
                            self.line_samples(si, ci)
                                .iter()
                                .map(|x| x.lines as f64)
                                .sum()
                        ),
                    );
                }
            }
        }

        if !self.rate.is_empty() {
            let _ = writeln!(o, "\n## Connection rate\n");
            let _ = writeln!(
                o,
                "{} parallel clients, each looping: connect, send one line, read and check its \
                 echo, close. Latency is connect to echo checked. Medians of {} repetitions.\n",
                self.opts.rate_parallel, self.opts.reps
            );
            let _ = writeln!(
                o,
                "| Server | conns/s | p50 µs | p99 µs | server CPU µs/conn |"
            );
            let _ = writeln!(o, "|---|---:|---:|---:|---:|");
            for (si, s) in self.suts.iter().enumerate() {
                let v = self.rate_samples(si);
                if v.is_empty() {
                    continue;
                }
                let med = |f: fn(&RateSample) -> f64| median(v.iter().map(|x| f(x)).collect());
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} |",
                    s.name,
                    fmt_int(med(|x| x.conns_per_s).unwrap_or(0.0)),
                    fmt_opt(med(|x| x.p50_us as f64), 0),
                    fmt_opt(med(|x| x.p99_us as f64), 0),
                    fmt_opt(med(|x| x.cpu_us_per_conn), 1),
                );
            }
        }

        if !self.idle.is_empty() {
            let _ = writeln!(o, "\n## Idle connections\n");
            let _ = writeln!(
                o,
                "A fresh server is warmed up (8 connections carrying lines, so per-thread \
                 buffers exist), then K connections are opened and held; the server's VmRSS \
                 (`/proc/PID/status`) is read once it settles, before, with K fresh connections, \
                 and after every connection carried one line and went idle again.\n"
            );
            let _ = writeln!(
                o,
                "| Server | K | RSS before (KiB) | KiB/conn fresh | KiB/conn after one line |"
            );
            let _ = writeln!(o, "|---|---:|---:|---:|---:|");
            for (si, x) in &self.idle {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {:.2} | {:.2} |",
                    self.suts[*si].name,
                    x.k,
                    x.before_kib,
                    x.fresh_per_conn(),
                    x.after_per_conn()
                );
            }
        }

        if !self.bulk.is_empty() {
            let _ = writeln!(o, "\n## Bulk byte echo\n");
            let _ = writeln!(
                o,
                "One connection; the client writes 64 KiB chunks for {} s while reading and \
                 checking every byte echoed. Medians of {} repetitions.\n",
                self.opts.secs, self.opts.reps
            );
            let _ = writeln!(o, "| Server | MB/s | server CPU s/GB | MB/s vs ref |");
            let _ = writeln!(o, "|---|---:|---:|---:|");
            let r = self.sut(Role::RefEcho);
            for (si, s) in self.suts.iter().enumerate() {
                let v = self.bulk_samples(si);
                if v.is_empty() {
                    continue;
                }
                let ratio = r
                    .map(|r| self.bulk_samples(r))
                    .and_then(|rv| {
                        median(
                            v.iter()
                                .zip(&rv)
                                .map(|(a, b)| a.mb_per_s / b.mb_per_s)
                                .collect(),
                        )
                    })
                    .map_or_else(|| "–".into(), |x| format!("{x:.3}×"));
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    s.name,
                    fmt_int(median(v.iter().map(|x| x.mb_per_s).collect()).unwrap_or(0.0)),
                    fmt_opt(median(v.iter().map(|x| x.cpu_s_per_gb).collect()), 2),
                    ratio
                );
            }
        }

        let _ = writeln!(o, "\n## Servers\n");
        for s in &self.suts {
            let args: Vec<String> = s
                .cmd
                .args
                .iter()
                .map(|a| {
                    if a.contains('\n') {
                        "<twisted_line_echo.py>".into()
                    } else {
                        a.clone()
                    }
                })
                .collect();
            let prog = s.cmd.program.file_name().map_or_else(
                || s.cmd.program.display().to_string(),
                |f| f.to_string_lossy().into(),
            );
            let _ = writeln!(o, "- **{}**: `{} {}`", s.name, prog, args.join(" "));
        }
        let _ = writeln!(
            o,
            "\nThe tokio references (`crates/weft-bench/src/servers.rs`) are the best \
             straightforward tokio code: a multi-thread runtime with the same worker count as \
             weft's, TCP_NODELAY, one task per connection, `BytesMut` buffers (8 KiB read + 8 KiB \
             write for the line echo, 64 KiB for the byte echo) held for the connection's life, a \
             memchr scan and one `write_all` per read batch. Twisted's server is \
             `crates/weft-bench/twisted_line_echo.py` (LineReceiver, `delimiter = b\"\\n\"`, \
             TCP_NODELAY, epoll reactor)."
        );
        let _ = writeln!(o, "\n## How to reproduce\n");
        let _ = writeln!(
            o,
            "```sh\njust bench   # = cargo run --release -p weft-bench -- run --write docs/benchmarks.md\n\
             # with Twisted (installs it with pip if missing):\n\
             cargo run --release -p weft-bench -- run --install-twisted --write docs/benchmarks.md\n\
             # a quick smoke run, or only some modes:\n\
             cargo run --release -p weft-bench -- run --quick\n\
             cargo run --release -p weft-bench -- run --modes line,rate --reps 5\n\
             # one line-echo load, many repetitions (CONNSxWINDOW):\n\
             cargo run --release -p weft-bench -- run --modes line --line-loads 50x64 --reps 30\n```\n"
        );
        let _ = writeln!(
            o,
            "The client is one current-thread tokio runtime in the bench process, so client and \
             server share the machine's cores; lines/s and conns/s therefore depend on the \
             client too and on other load (see the load average above), while server CPU per \
             line is the server's own cost. Each measurement runs {} s. On a 2-core machine \
             shared with other work the per-repetition ratios spread widely (see the brackets \
             in the targets table): a target whose range straddles the goal is not reliably \
             met, whatever its median says; rerun with more `--reps` on an idle machine. For the \
             user-space cost alone, free of this noise, `cargo bench -p weft-bench` compares \
             weft's line path with the reference's loop in memory.",
            self.opts.secs
        );
        o
    }
}
