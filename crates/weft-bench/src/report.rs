//! Samples, medians, ratios against the reference, and the markdown report.

use std::fmt::Write as _;

use crate::load::{self, BulkResult, LineResult, RateResult};
use crate::plan::{Group, LineCfg, Measure, Role, RunOpts, Sut};
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
    /// How the load generator and the servers were placed on the CPUs.
    pub pinning: String,
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
    measured: Option<f64>,
    baseline: Option<f64>,
    ratio: Option<f64>,
    /// Smallest and largest per-repetition ratio.
    range: Option<(f64, f64)>,
    /// Decimals of `measured` and `baseline` (0: thousands separators).
    prec: usize,
    goal: String,
    pass: Option<bool>,
}

/// One figure of a line-echo sample.
type LineMetric = fn(&LineSample) -> f64;

/// A goal on a ratio: at least or at most `x`.
#[derive(Clone, Copy)]
enum Goal {
    AtLeast(f64),
    AtMost(f64),
}

impl Goal {
    fn text(self) -> String {
        match self {
            Goal::AtLeast(x) => format!("≥ {x}×"),
            Goal::AtMost(x) => format!("≤ {x}×"),
        }
    }
    fn met(self, r: f64) -> bool {
        match self {
            Goal::AtLeast(x) => r >= x,
            Goal::AtMost(x) => r <= x,
        }
    }
}

/// Per-repetition ratios a/b of paired samples (servers interleaved in time, so each ratio
/// compares measurements taken under the same load).
fn ratios<T>(a: &[&T], b: &[&T], f: impl Fn(&T) -> f64) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| f(x) / f(y)).collect()
}

/// Server `si`'s samples among `(server, sample)` pairs.
fn of<T>(samples: &[(usize, T)], si: usize) -> Vec<&T> {
    samples
        .iter()
        .filter(|(s, _)| *s == si)
        .map(|(_, x)| x)
        .collect()
}

/// The median of `f` over samples.
fn med<T>(v: &[&T], f: impl Fn(&T) -> f64) -> Option<f64> {
    median(v.iter().map(|x| f(x)).collect())
}

/// The "vs baseline" cell: the median per-repetition ratio of `f`, samples against their
/// baseline's.
fn vs<T>(v: &[&T], base: &[&T], f: impl Fn(&T) -> f64) -> String {
    fmt_ratio(median(ratios(v, base, f)))
}

fn fmt_ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |x| format!("{x:.3}×"))
}

/// The issue a group's targets come from.
fn group_title(g: Group) -> &'static str {
    match g {
        Group::Plain => "plain TCP",
        Group::Tls => "TLS (issue 13)",
        Group::Proxy => "PROXY header (issue 14)",
        Group::Policies => "policies (issue 15)",
    }
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
            pinning: String::new(),
            total_secs: 0.0,
        }
    }

    fn sut(&self, role: Role) -> Option<usize> {
        self.suts.iter().position(|s| s.role == role)
    }

    /// Servers in the order of the report: by group, then as listed.
    fn display_order(&self) -> Vec<usize> {
        let rank = |g: Group| match g {
            Group::Plain => 0,
            Group::Tls => 1,
            Group::Proxy => 2,
            Group::Policies => 3,
        };
        let mut v: Vec<usize> = (0..self.suts.len()).collect();
        v.sort_by_key(|&i| rank(self.suts[i].role.group()));
        v
    }

    fn line_samples(&self, si: usize, ci: usize) -> Vec<&LineSample> {
        self.line
            .iter()
            .filter(|(s, c, _)| *s == si && *c == ci)
            .map(|(_, _, x)| x)
            .collect()
    }

    fn line_ratios(
        &self,
        a: usize,
        b: usize,
        ci: usize,
        f: impl Fn(&LineSample) -> f64,
    ) -> Vec<f64> {
        ratios(&self.line_samples(a, ci), &self.line_samples(b, ci), f)
    }

    fn idle_worst(&self, si: usize) -> Option<f64> {
        self.idle
            .iter()
            .find(|(i, _)| *i == si)
            .map(|(_, x)| x.fresh_per_conn().max(x.after_per_conn()))
    }

    /// The baseline server of `si`, if it is in the run.
    fn baseline(&self, si: usize) -> Option<usize> {
        self.suts[si].role.baseline().and_then(|b| self.sut(b))
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

    /// `role`'s server and its baseline's, if both are in the run.
    fn role_pair(&self, role: Role) -> Option<(usize, usize)> {
        let a = self.sut(role)?;
        Some((a, self.baseline(a)?))
    }

    /// A ratio target from paired samples of a server (`a`) and its baseline (`b`).
    fn pair_target<T>(
        what: String,
        prec: usize,
        a: &[&T],
        b: &[&T],
        f: impl Fn(&T) -> f64,
        goal: Goal,
    ) -> Option<Target> {
        let rs = ratios(a, b, &f);
        let ratio = median(rs.clone());
        Some(Target {
            what,
            measured: Some(median(a.iter().map(|x| f(x)).collect())?),
            baseline: median(b.iter().map(|x| f(x)).collect()),
            ratio,
            range: range(&rs),
            prec,
            goal: goal.text(),
            pass: ratio.map(|r| goal.met(r)),
        })
    }

    /// Line-echo targets of `role` against its baseline over the first two (targeted) loads.
    fn line_targets(
        &self,
        t: &mut Vec<Target>,
        role: Role,
        prefix: &str,
        lines_goal: Option<Goal>,
        cpu_goal: Goal,
    ) {
        let Some((a, b)) = self.role_pair(role) else {
            return;
        };
        let metrics: [(&str, usize, LineMetric, Option<Goal>); 2] = [
            ("lines/s", 0, |s| s.lines_per_s, lines_goal),
            (
                "server CPU µs/line",
                3,
                |s| s.cpu_us_per_line,
                Some(cpu_goal),
            ),
        ];
        for (name, prec, f, goal) in metrics {
            let Some(goal) = goal else { continue };
            for ci in 0..self.line_cfgs.len().min(2) {
                t.extend(Self::pair_target(
                    format!("{prefix}{name}, {}", self.cfg_name(ci)),
                    prec,
                    &self.line_samples(a, ci),
                    &self.line_samples(b, ci),
                    f,
                    goal,
                ));
            }
        }
    }

    /// A target on `role` against its baseline over the samples `get` returns.
    fn samples_target<'a, T: 'a>(
        &'a self,
        t: &mut Vec<Target>,
        role: Role,
        what: &str,
        get: impl Fn(usize) -> Vec<&'a T>,
        f: impl Fn(&T) -> f64,
        goal: Goal,
    ) {
        if let Some((a, b)) = self.role_pair(role) {
            t.extend(Self::pair_target(what.into(), 0, &get(a), &get(b), f, goal));
        }
    }

    /// Idle memory of `role`: at most `limit` KiB per connection, or (`None`) at most its
    /// baseline's.
    fn idle_target(&self, t: &mut Vec<Target>, role: Role, limit: Option<f64>) {
        let Some(si) = self.sut(role) else { return };
        let Some(worst) = self.idle_worst(si) else {
            return;
        };
        let baseline = self.baseline(si).and_then(|b| self.idle_worst(b));
        let (goal, pass) = match limit {
            Some(l) => (format!("≤ {l} KiB"), Some(worst <= l)),
            None => ("≤ the reference's".into(), baseline.map(|b| worst <= b)),
        };
        t.push(Target {
            what: format!(
                "idle memory KiB/conn, {} (worst of fresh / after one line)",
                self.suts[si].name
            ),
            measured: Some(worst),
            baseline,
            ratio: baseline.map(|b| worst / b),
            range: None,
            prec: 3,
            goal,
            pass,
        });
    }

    fn targets(&self) -> Vec<(Group, Vec<Target>)> {
        let mut out = Vec::new();
        let mut t = Vec::new();
        let ge = Goal::AtLeast;
        let le = Goal::AtMost;
        self.line_targets(
            &mut t,
            Role::WeftLine,
            "line echo ",
            Some(ge(0.95)),
            le(1.05),
        );
        let rate = |si| of(&self.rate, si);
        let conns = |s: &RateSample| s.conns_per_s;
        self.samples_target(
            &mut t,
            Role::WeftLine,
            "connection rate, conns/s",
            rate,
            conns,
            ge(0.9),
        );
        self.idle_target(&mut t, Role::WeftLine, Some(1.5));
        self.idle_target(&mut t, Role::WeftEcho, Some(1.5));
        out.push((Group::Plain, std::mem::take(&mut t)));

        self.line_targets(&mut t, Role::WeftLineTls, "TLS line echo ", None, le(1.05));
        self.samples_target(
            &mut t,
            Role::WeftLineTls,
            "TLS handshakes/s (connect, full handshake, one line, close)",
            rate,
            conns,
            ge(0.95),
        );
        self.idle_target(&mut t, Role::WeftLineTls, None);
        self.samples_target(
            &mut t,
            Role::WeftEchoTls,
            "TLS bulk echo MB/s",
            |si| of(&self.bulk, si),
            |s: &BulkSample| s.mb_per_s,
            ge(0.95),
        );
        out.push((Group::Tls, std::mem::take(&mut t)));

        self.samples_target(
            &mut t,
            Role::WeftLineProxy,
            "haproxy:tcp: connection rate, conns/s",
            rate,
            conns,
            ge(0.95),
        );
        self.line_targets(&mut t, Role::WeftLineProxy, "haproxy:tcp: ", None, le(1.02));
        out.push((Group::Proxy, std::mem::take(&mut t)));

        self.line_targets(&mut t, Role::WeftLinePolicies, "policies: ", None, le(1.03));
        self.idle_target(&mut t, Role::WeftLinePolicies, Some(1.5));
        self.samples_target(
            &mut t,
            Role::WeftLinePolicies,
            "policies: connection rate, conns/s",
            rate,
            conns,
            ge(0.95),
        );
        out.push((Group::Policies, t));
        out.retain(|(_, t)| !t.is_empty());
        out
    }

    /// Rows for the servers that did not run although `m` is theirs.
    fn not_run_rows(&self, o: &mut String, m: Measure, leading: usize, cols: usize) {
        for &si in &self.display_order() {
            let s = &self.suts[si];
            if let (Err(why), true) = (&s.cmd, s.role.runs(m)) {
                let lead = "| – ".repeat(leading);
                let rest = "| – ".repeat(cols - leading - 1);
                let _ = writeln!(o, "{lead}| {} {rest}|", s.name);
                let _ = writeln!(o, "{lead}| ↳ {why} {rest}|");
            }
        }
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
            "| settings | {} s per measurement × {} repetitions (servers interleaved, in reverse order every other repetition), {} runtime workers in every Rust server, loopback only |",
            self.opts.secs, self.opts.reps, self.workers
        );
        if self
            .suts
            .iter()
            .any(|s| s.role.is_twisted() && s.cmd.is_ok())
        {
            let _ = writeln!(
                o,
                "| Twisted | measured in the first {} repetitions only (for the record) |",
                self.opts.twisted_reps.min(self.opts.reps)
            );
        }
        let _ = writeln!(o, "| CPU placement | {} |", self.pinning);
        if self.suts.iter().any(|s| s.role.group() == Group::Tls) {
            let _ = writeln!(
                o,
                "| TLS | one self-signed ECDSA P-256 certificate (rcgen) for every server; the \
                 client (tokio-rustls, ring) offers only TLS 1.3 with AES-128-GCM and resumes no \
                 session, so every TLS connection is a full handshake |"
            );
        }
        if self.suts.iter().any(|s| s.role == Role::WeftLineProxy) {
            let _ = writeln!(
                o,
                "| PROXY | a v{} header at the start of every connection, in the same write as \
                 the first line where there is one |",
                self.opts.proxy_version
            );
        }
        let _ = writeln!(o);
        for n in &self.notes {
            let _ = writeln!(o, "> {n}\n");
        }

        let _ = writeln!(o, "## Targets\n");
        let _ = writeln!(
            o,
            "Each ratio is measured ÷ baseline in the same run: the median over repetitions of \
             the per-repetition ratio (in brackets the smallest and largest). The baseline is \
             the hand-written tokio reference on the same transport (tokio-rustls for TLS); \
             for the `haproxy:tcp:` and policies rows it is plain `weft serve line-echo` on \
             `tcp:` without policies.\n"
        );
        for (g, targets) in self.targets() {
            let _ = writeln!(o, "**{}**\n", group_title(g));
            let _ = writeln!(
                o,
                "| Target | measured | baseline | ratio | goal | result |"
            );
            let _ = writeln!(o, "|---|---:|---:|---:|---|---|");
            for t in targets {
                let fmt = |v: Option<f64>| {
                    if t.prec == 0 {
                        v.map_or_else(|| "–".into(), fmt_int)
                    } else {
                        fmt_opt(v, t.prec)
                    }
                };
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} |",
                    t.what,
                    fmt(t.measured),
                    fmt(t.baseline),
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
            let _ = writeln!(o);
        }
        for role in [Role::Twisted, Role::TwistedTls] {
            let Some(tw) = self.sut(role) else { continue };
            let Some(r) = self.baseline(tw) else { continue };
            for ci in 0..self.line_cfgs.len().min(2) {
                if let Some(x) = median(self.line_ratios(tw, r, ci, |s| s.cpu_us_per_line)) {
                    let _ = writeln!(
                        o,
                        "{} spends {x:.1}× the {}'s CPU per line ({}).  ",
                        self.suts[tw].name,
                        self.suts[r].name,
                        self.cfg_name(ci)
                    );
                }
            }
        }

        self.line_section(&mut o);
        self.rate_section(&mut o);
        self.idle_section(&mut o);
        self.bulk_section(&mut o);
        self.servers_section(&mut o);
        o
    }

    /// Writes a results section: `## title`, the `intro` paragraph, a table with `columns`
    /// (the markdown header row and alignment row) and its `rows`, then two rows for every
    /// server of `measure` that did not run (its name after `leading` empty cells, and why).
    /// Nothing without rows.
    fn section(
        &self,
        o: &mut String,
        (title, intro): (&str, &str),
        columns: [&str; 2],
        rows: Vec<Vec<String>>,
        (measure, leading): (Measure, usize),
    ) {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(o, "\n## {title}\n");
        let _ = writeln!(o, "{intro}\n");
        for line in columns {
            let _ = writeln!(o, "{line}");
        }
        for row in rows {
            let _ = writeln!(o, "| {} |", row.join(" | "));
        }
        self.not_run_rows(o, measure, leading, columns[0].matches('|').count() - 1);
    }

    /// A table row for every server with `samples`, in display order: its name, the cells
    /// `row` makes of its samples and its baseline's (none without a baseline), the
    /// baseline's name.
    fn sample_rows<'a, T: 'a>(
        &'a self,
        samples: impl Fn(usize) -> Vec<&'a T>,
        row: impl Fn(&[&T], &[&T]) -> Vec<String>,
    ) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        for si in self.display_order() {
            let v = samples(si);
            if v.is_empty() {
                continue;
            }
            let b = self.baseline(si);
            let mut cells = vec![self.suts[si].name.clone()];
            cells.extend(row(&v, &b.map(&samples).unwrap_or_default()));
            cells.push(b.map_or("–", |b| self.suts[b].name.as_str()).to_string());
            rows.push(cells);
        }
        rows
    }

    fn line_section(&self, o: &mut String) {
        let mut rows = Vec::new();
        for ci in 0..self.line_cfgs.len() {
            let samples = |si| self.line_samples(si, ci);
            for mut row in self.sample_rows(samples, |v, base| {
                vec![
                    fmt_int(med(v, |x| x.lines_per_s).unwrap_or(0.0)),
                    fmt_opt(med(v, |x| x.mb_per_s), 1),
                    fmt_opt(med(v, |x| x.cpu_us_per_line), 3),
                    vs(v, base, |x| x.lines_per_s),
                    vs(v, base, |x| x.cpu_us_per_line),
                    fmt_int(v.iter().map(|x| x.lines as f64).sum()),
                ]
            }) {
                row.insert(0, self.cfg_name(ci));
                rows.push(row);
            }
        }
        let intro = format!(
            "64-byte lines (63 bytes + `\\n`); every echoed line checked byte for byte and in \
             order. Server CPU is utime + stime of the server process from `/proc/PID/stat` \
             over the measurement, divided by the lines echoed. Medians of {} repetitions; \
             \"vs baseline\" is the median per-repetition ratio against the server named in the \
             last column. The TLS, `haproxy:` and policies rows run the first two loads only.",
            self.opts.reps
        );
        self.section(
            o,
            ("Pipelined line echo", &intro),
            [
                "| Load | Server | lines/s | MB/s (one way) | server CPU µs/line | lines/s vs baseline | CPU/line vs baseline | lines checked | baseline |",
                "|---|---|---:|---:|---:|---:|---:|---:|---|",
            ],
            rows,
            (Measure::Line, 1),
        );
    }

    fn rate_section(&self, o: &mut String) {
        let rows = self.sample_rows(
            |si| of(&self.rate, si),
            |v, base| {
                vec![
                    fmt_int(med(v, |x| x.conns_per_s).unwrap_or(0.0)),
                    fmt_opt(med(v, |x| x.p50_us as f64), 0),
                    fmt_opt(med(v, |x| x.p99_us as f64), 0),
                    fmt_opt(med(v, |x| x.cpu_us_per_conn), 1),
                    vs(v, base, |x| x.conns_per_s),
                ]
            },
        );
        let intro = format!(
            "{} parallel clients, each looping: connect (TLS: a full handshake), send one line, \
             read and check its echo, close (TLS: `close_notify` first). Latency is connect to \
             echo checked. Medians of {} repetitions.",
            self.opts.rate_parallel, self.opts.reps
        );
        self.section(
            o,
            ("Connection rate", &intro),
            [
                "| Server | conns/s | p50 µs | p99 µs | server CPU µs/conn | conns/s vs baseline | baseline |",
                "|---|---:|---:|---:|---:|---:|---|",
            ],
            rows,
            (Measure::Rate, 0),
        );
    }

    fn idle_section(&self, o: &mut String) {
        let mut rows = Vec::new();
        for si in self.display_order() {
            if let Some((_, x)) = self.idle.iter().find(|(i, _)| *i == si) {
                rows.push(vec![
                    self.suts[si].name.clone(),
                    x.k.to_string(),
                    x.before_kib.to_string(),
                    format!("{:.2}", x.fresh_per_conn()),
                    format!("{:.2}", x.after_per_conn()),
                ]);
            }
        }
        self.section(
            o,
            (
                "Idle connections",
                "A fresh server is warmed up (8 connections carrying lines, so per-thread \
                 buffers exist), then K connections are opened (TLS: handshake done) and held; \
                 the server's VmRSS (`/proc/PID/status`) is read once it settles, before, with K \
                 fresh connections, and after every connection carried one line and went idle \
                 again. Memory the server keeps per connection after one line (buffers not \
                 released while idle) shows as the difference between the last two columns. A \
                 TLS connection also holds rustls' state for its life (keys, and a receive \
                 buffer of 4 KiB or more allocated by the handshake, which rustls' buffered API \
                 shrinks but never frees), in weft as in the reference.",
            ),
            [
                "| Server | K | RSS before (KiB) | KiB/conn fresh | KiB/conn after one line |",
                "|---|---:|---:|---:|---:|",
            ],
            rows,
            (Measure::Idle, 0),
        );
    }

    fn bulk_section(&self, o: &mut String) {
        let rows = self.sample_rows(
            |si| of(&self.bulk, si),
            |v, base| {
                vec![
                    fmt_int(med(v, |x| x.mb_per_s).unwrap_or(0.0)),
                    fmt_opt(med(v, |x| x.cpu_s_per_gb), 2),
                    vs(v, base, |x| x.mb_per_s),
                ]
            },
        );
        let intro = format!(
            "One connection; the client writes 64 KiB chunks for {} s while reading and \
             checking every byte echoed. Medians of {} repetitions.",
            self.opts.secs, self.opts.reps
        );
        self.section(
            o,
            ("Bulk byte echo", &intro),
            [
                "| Server | MB/s | server CPU s/GB | MB/s vs baseline | baseline |",
                "|---|---:|---:|---:|---|",
            ],
            rows,
            (Measure::Bulk, 0),
        );
    }

    fn servers_section(&self, o: &mut String) {
        let _ = writeln!(o, "\n## Servers\n");
        for &si in &self.display_order() {
            let s = &self.suts[si];
            match &s.cmd {
                Ok(cmd) => {
                    let args: Vec<String> = cmd
                        .args
                        .iter()
                        .map(|a| {
                            if a.contains('\n') {
                                "<twisted_line_echo.py>".into()
                            } else {
                                // Temporary certificate paths say nothing: their file names do.
                                a.replace(&format!("{}/", std::env::temp_dir().display()), "$TMP/")
                            }
                        })
                        .collect();
                    let prog = cmd.program.file_name().map_or_else(
                        || cmd.program.display().to_string(),
                        |f| f.to_string_lossy().into(),
                    );
                    let _ = writeln!(o, "- **{}**: `{} {}`", s.name, prog, args.join(" "));
                }
                Err(why) => {
                    let _ = writeln!(o, "- **{}**: {why}", s.name);
                }
            }
        }
        let _ = writeln!(
            o,
            "\nThe tokio references (`crates/weft-bench/src/servers.rs`) are the best \
             straightforward tokio code: a multi-thread runtime with the same worker count as \
             weft's, TCP_NODELAY, one task per connection, `BytesMut` buffers (8 KiB read + 8 KiB \
             write for the line echo, 64 KiB for the byte echo) held for the connection's life, a \
             memchr scan and one `write_all` per read batch. The TLS references run the same \
             connection code on a `tokio_rustls::server::TlsStream` (rustls' default server \
             configuration with the ring provider, as weft's: TLS 1.2 and 1.3, session tickets; \
             no handshake timeout, where weft arms one of 10 s) and answer the peer's \
             `close_notify` with their own. Twisted's server is \
             `crates/weft-bench/twisted_line_echo.py` (LineReceiver, `delimiter = b\"\\n\"`, \
             TCP_NODELAY, epoll reactor; over TLS its `ssl:` endpoint string, pyOpenSSL)."
        );
        if let Some(p) = self.sut(Role::WeftLinePolicies) {
            let _ = writeln!(
                o,
                "\nThe policies row (issue 15) is `weft serve line-echo` with `{}`: an idle \
                 timer armed on every connection (a deadline moved on each read, the timer \
                 re-armed only when it fires early).",
                self.suts[p]
                    .cmd
                    .as_ref()
                    .map_or(self.opts.policy_row.clone(), |_| self
                        .opts
                        .policy_row
                        .clone())
            );
        }
        let _ = writeln!(o, "\n## How to reproduce\n");
        let _ = writeln!(
            o,
            "```sh\njust bench   # = cargo run --release -p weft-bench -- run --write docs/benchmarks.md\n\
             # with Twisted (plain and ssl:), for the record:\n\
             python3 -m venv VENV && VENV/bin/pip install twisted pyopenssl service_identity\n\
             WEFT_BENCH_PYTHON=VENV/bin/python cargo run --release -p weft-bench -- run --write docs/benchmarks.md\n\
             # a quick smoke run, or only some modes (measurements line,rate,idle,bulk; groups tls,proxy,policies):\n\
             cargo run --release -p weft-bench -- run --quick\n\
             cargo run --release -p weft-bench -- run --modes line,rate --reps 5\n\
             cargo run --release -p weft-bench -- run --modes tls --reps 5\n\
             # one line-echo load, many repetitions (CONNSxWINDOW):\n\
             cargo run --release -p weft-bench -- run --modes line --line-loads 50x64 --reps 30\n```\n"
        );
        let _ = writeln!(
            o,
            "The client is one current-thread tokio runtime in the bench process, so client and \
             server share the machine's cores; lines/s and conns/s therefore depend on the \
             client too and on other load (see the load average above), while server CPU per \
             line is the server's own cost. Each measurement runs {} s.\n",
            self.opts.secs
        );
        let _ = writeln!(
            o,
            "Why the one-connection figures are pinned: with one connection, the server's CPU \
             per line is mostly what it costs the server to wait for the next batch, and that \
             depends on where the scheduler puts the server's worker and the load generator. \
             On different CPUs the server echoes each window of 64 lines and then waits, its \
             CPU goes idle and is woken by the next window; on the same CPU they take turns \
             and the server rarely idles (it is preempted instead). When this was \
             investigated (2026-11-30, this 2-CPU VM) that made 64 lines per server wait and \
             about 0.6 µs of server CPU per line on different CPUs, about 100 lines per wait \
             and 0.15 µs per line on the same one (closed loop: 35 against 9 µs). Unpinned, \
             the scheduler moves between the two within and across 1-second measurements, so \
             per-repetition ratios spread (0.75× to 1.26× in the run before pinning). Pinned \
             (`--pin one-conn`, the default), every server is measured with its own CPU, as \
             a server whose clients are elsewhere is, and the load generator on the other. \
             The loads, the servers and their worker counts are unchanged; `--pin none` \
             measures as before, `--pin all` pins the 50-connection and rate measurements too \
             (the server then has one CPU). `weft-bench run` logs, per measurement, each busy \
             server thread's and the client's CPU time, migrations, voluntary (waits) and \
             involuntary (preemptions) context switches and last CPU, from \
             `/proc/PID/task/TID/sched`. On a machine shared with other work the \
             per-repetition ratios still spread (see the brackets in the targets table): a \
             target whose range straddles the goal is not reliably met, whatever its median \
             says; rerun with more `--reps` on an idle machine. For the user-space cost alone, \
             free of this noise, `cargo bench -p \
             weft-bench` compares weft's line path with the reference's loop in memory."
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser as _;

    use super::*;
    use crate::procs::ServerCmd;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        opts: RunOpts,
    }

    /// A report of two repetitions over every server, Twisted not installed, as `run` fills it.
    fn sample_report() -> Report {
        let machine = Machine {
            cpu: "test CPU".into(),
            nproc: 2,
            kernel: "6.0".into(),
            date: "2026-01-01 00:00 UTC".into(),
            rustc: "rustc 1.0".into(),
        };
        let opts = Cli::parse_from(["weft-bench", "--reps", "2"]).opts;
        let roles = [
            Role::WeftLine,
            Role::RefLine,
            Role::Twisted,
            Role::WeftEcho,
            Role::RefEcho,
            Role::Floor,
            Role::WeftLineTls,
            Role::RefLineTls,
            Role::WeftEchoTls,
            Role::RefEchoTls,
            Role::WeftLineProxy,
            Role::WeftLinePolicies,
        ];
        let suts = roles
            .iter()
            .map(|&role| Sut {
                name: format!("{role:?}"),
                role,
                cmd: if role.is_twisted() {
                    Err("pip install twisted".into())
                } else {
                    Ok(ServerCmd {
                        program: "srv".into(),
                        args: vec![format!("{role:?}")],
                    })
                },
            })
            .collect();
        let mut rep = Report::new(machine, opts, 2, suts);
        rep.line_cfgs = vec![
            LineCfg {
                conns: 1,
                window: 64,
            },
            LineCfg {
                conns: 50,
                window: 64,
            },
            LineCfg {
                conns: 1,
                window: 1,
            },
        ];
        let secs = Duration::from_secs(1);
        for r in 0..2u64 {
            for (si, &role) in roles.iter().enumerate() {
                let x = (si as u64 + 1) * 1000 + r * 100;
                if role.is_twisted() {
                    continue;
                }
                if role.runs(Measure::Line) {
                    for ci in 0..rep.line_cfgs.len() {
                        if ci < 2 || !role.targeted_loads_only() {
                            let res = LineResult {
                                lines: x * (ci as u64 + 1),
                                elapsed: secs,
                            };
                            rep.line
                                .push((si, ci, LineSample::new(res, 0.001 * x as f64)));
                        }
                    }
                    let res = RateResult {
                        conns: x,
                        elapsed: secs,
                        latencies_us: (0..100).collect(),
                    };
                    rep.rate
                        .push((si, RateSample::new(&res, 0.0001 * x as f64)));
                }
                if role.runs(Measure::Bulk) {
                    let res = BulkResult {
                        bytes: x * 1_000_000,
                        elapsed: secs,
                    };
                    rep.bulk.push((si, BulkSample::new(res, 0.1)));
                }
                if role.runs(Measure::Idle) && r == 0 {
                    let idle = IdleSample {
                        k: 1000,
                        before_kib: 4000,
                        fresh_kib: 4000 + x,
                        after_kib: 5000 + x,
                    };
                    rep.idle.push((si, idle));
                }
            }
        }
        rep
    }

    /// Every table of the report has as many cells in each row as in its header, a row for
    /// every server measured (its medians and the ratio to its baseline, or dashes without
    /// one), and two rows for a server that could not run.
    #[test]
    fn markdown_tables_have_a_row_per_server() {
        let md = sample_report().markdown();
        let mut width = None;
        for line in md.lines() {
            if !line.starts_with('|') {
                width = None;
                continue;
            }
            let cells = line.matches('|').count();
            assert_eq!(*width.get_or_insert(cells), cells, "{line}");
        }
        for row in [
            "| 1 conn, 64 in flight each | WeftLine | 1,050 | 0.1 | 1000.000 | 0.512× | 1.000× | 2,100 | RefLine |",
            "| 1 conn, closed loop (1 in flight) | RefLine | 6,150 | 0.4 | 333.333 | – | – | 12,300 | – |",
            "| – | Twisted | – | – | – | – | – | – | – |",
            "| – | ↳ pip install twisted | – | – | – | – | – | – | – |",
            "| WeftLineProxy | 11,050 | 50 | 98 | 100.0 | 10.545× | WeftLine |",
            "| Twisted | – | – | – | – | – | – |",
            "| Floor | 1000 | 4000 | 6.00 | 7.00 |",
            "| WeftEchoTls | 9,050 | 0.01 | 0.900× | RefEchoTls |",
            "| RefEcho | 5,050 | 0.02 | – | – |",
        ] {
            assert!(md.lines().any(|l| l == row), "no row {row} in\n{md}");
        }
        // A server with samples in none of a section's loads has no row in it.
        assert!(!md.contains("| 1 conn, closed loop (1 in flight) | WeftLineTls |"));
        assert!(!md.contains("| WeftEcho | 4,050 | 50"));
    }
}
