//! `weft-bench run`: starts the servers, runs every mode against each, reports.

use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load::{self, ProxyVersion, Wire};
use crate::plan::{Group, LineCfg, Measure, Pin, Role, RunOpts, Selection, Sut};
use crate::procs::{self, Machine, Server, ServerCmd};
use crate::report::{self, Report};
use crate::tls::{self, CertFiles};

fn log(msg: impl AsRef<str>) {
    eprintln!("[weft-bench {:>6.1}s] {}", elapsed_s(), msg.as_ref());
}

fn elapsed_s() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

fn self_cmd(sub: &str, workers: usize, tls: Option<&CertFiles>) -> ServerCmd {
    let mut args: Vec<String> = vec![
        sub.into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--workers".into(),
        workers.to_string(),
    ];
    if let Some(c) = tls {
        args.extend([
            "--tls-key".into(),
            c.key.display().to_string(),
            "--tls-cert".into(),
            c.cert.display().to_string(),
        ]);
    }
    ServerCmd {
        program: std::env::current_exe().unwrap_or_else(|_| "weft-bench".into()),
        args,
    }
}

fn weft_cmd(bin: &std::path::Path, line: bool, listen: &str, policies: &str) -> ServerCmd {
    let mut args: Vec<String> = vec!["serve".into()];
    if line {
        args.extend(["line-echo".into(), "--delimiter".into(), "lf".into()]);
    } else {
        args.push("echo".into());
    }
    args.extend(["--listen".into(), listen.into()]);
    args.extend(policies.split_whitespace().map(String::from));
    ServerCmd {
        program: bin.to_path_buf(),
        args,
    }
}

/// How to make Twisted runnable, for the rows that could not run.
const TWISTED_HOWTO: &str = "python3 -m venv VENV && VENV/bin/pip install twisted pyopenssl \
     service_identity, then run with WEFT_BENCH_PYTHON=VENV/bin/python (or --python)";

/// Whether `python` imports `modules`; `Err` says why not and how to fix it.
fn python_has(python: &std::path::Path, modules: &str) -> Result<(), String> {
    match Command::new(python)
        .args(["-c", &format!("import {modules}")])
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(_) => Err(format!(
            "not run: `{}` cannot import {modules} (install: {TWISTED_HOWTO})",
            python.display()
        )),
        Err(e) => Err(format!(
            "not run: cannot run `{}`: {e} (install: {TWISTED_HOWTO})",
            python.display()
        )),
    }
}

fn twisted_cmd(python: &std::path::Path, tls: Option<&CertFiles>) -> ServerCmd {
    let mut args = vec![
        "-c".into(),
        include_str!("../twisted_line_echo.py").into(),
        "127.0.0.1".into(),
        "0".into(),
    ];
    if let Some(c) = tls {
        args.extend([c.key.display().to_string(), c.cert.display().to_string()]);
    }
    ServerCmd {
        program: python.to_path_buf(),
        args,
    }
}

/// The wire the load generator speaks to a server of `role`.
fn wire_for(role: Role, tls: Option<&Arc<rustls::ClientConfig>>, proxy: ProxyVersion) -> Wire {
    match role.group() {
        Group::Tls => tls.map_or(Wire::Tcp, |c| Wire::Tls(c.clone())),
        Group::Proxy => Wire::Proxy(proxy),
        Group::Plain | Group::Policies => Wire::Tcp,
    }
}

/// Checks that a server starts and answers one line.
fn probe(cmd: &ServerCmd, wire: &Wire, rt: &tokio::runtime::Runtime) -> io::Result<()> {
    let s = Server::start(cmd)?;
    rt.block_on(async {
        let mut c = load::IdleConns::open(s.addr, wire, 1).await?;
        tokio::time::timeout(Duration::from_secs(5), c.one_line_each())
            .await
            .map_err(|_| io::Error::other("no echo within 5 s"))??;
        c.close().await;
        Ok(())
    })
}

/// Builds `weft` unless told not to; returns the binary if it exists.
fn weft_binary(opts: &RunOpts) -> Option<PathBuf> {
    if let Some(b) = &opts.weft_bin {
        return Some(b.clone());
    }
    if opts.standin {
        return None;
    }
    if !opts.no_build {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        log("building weft-cli (cargo build --release -p weft-cli)");
        match Command::new(cargo)
            .args(["build", "--release", "-p", "weft-cli"])
            .status()
        {
            Ok(s) if s.success() => {}
            Ok(s) => log(format!("building weft-cli failed ({s})")),
            Err(e) => log(format!("cannot run cargo: {e}")),
        }
    }
    crate::exe_dir()
        .map(|d| d.join("weft"))
        .filter(|p| p.exists())
}

/// What the servers under test need to start and be talked to.
struct Env<'a> {
    opts: &'a RunOpts,
    rt: &'a tokio::runtime::Runtime,
    workers: usize,
    weft: Option<PathBuf>,
    certs: Option<&'a CertFiles>,
    tls_client: Option<&'a Arc<rustls::ClientConfig>>,
    proxy: ProxyVersion,
}

impl Env<'_> {
    /// A `weft serve` server of `role`, probed; `Err` says why it cannot run.
    fn weft(&self, role: Role, line: bool) -> Result<ServerCmd, String> {
        let Some(bin) = &self.weft else {
            return Err(
                "not run: no `weft` binary (built with `cargo build --release -p \
                        weft-cli`, or given with --weft-bin)"
                    .into(),
            );
        };
        let tcp = "tcp:0:interface=127.0.0.1".to_string();
        let (listen, policies) = match role.group() {
            Group::Plain => (tcp, self.opts.weft_policies.as_str()),
            Group::Tls => {
                let c = self.certs.ok_or("no certificate")?;
                (
                    format!(
                        "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}",
                        c.key.display(),
                        c.cert.display()
                    ),
                    self.opts.weft_policies.as_str(),
                )
            }
            Group::Proxy => (format!("haproxy:{tcp}"), self.opts.weft_policies.as_str()),
            Group::Policies => (tcp, self.opts.policy_row.as_str()),
        };
        let cmd = weft_cmd(bin, line, &listen, policies);
        self.probed(role, cmd)
    }

    /// `cmd` if it starts and echoes a line over `role`'s wire.
    fn probed(&self, role: Role, cmd: ServerCmd) -> Result<ServerCmd, String> {
        let wire = wire_for(role, self.tls_client, self.proxy);
        match probe(&cmd, &wire, self.rt) {
            Ok(()) => Ok(cmd),
            Err(e) => Err(format!(
                "not run: `{} {}` does not work ({e})",
                cmd.program.display(),
                cmd.args
                    .iter()
                    .map(|a| if a.contains('\n') { "<script>" } else { a })
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
        }
    }

    fn reference(&self, role: Role, sub: &str) -> Result<ServerCmd, String> {
        let tls = if role.group() == Group::Tls {
            Some(self.certs.ok_or("no certificate")?)
        } else {
            None
        };
        Ok(self_cmd(sub, self.workers, tls))
    }

    fn twisted(&self, role: Role) -> Result<ServerCmd, String> {
        let py = &self.opts.python;
        if role == Role::TwistedTls {
            python_has(py, "twisted, OpenSSL, service_identity")?;
            self.probed(role, twisted_cmd(py, self.certs))
        } else {
            python_has(py, "twisted")?;
            self.probed(role, twisted_cmd(py, None))
        }
    }
}

impl Env<'_> {
    /// The command of the server of `role`; `name` may change (a stand-in) and a note say so.
    fn command(
        &self,
        role: Role,
        name: &'static str,
        notes: &mut Vec<String>,
    ) -> (&'static str, Result<ServerCmd, String>) {
        let line = role.runs(Measure::Line);
        let cmd = match role {
            Role::RefLine | Role::RefLineTls => self.reference(role, "ref-line-echo"),
            Role::RefEcho | Role::RefEchoTls => self.reference(role, "ref-echo"),
            Role::Floor => Ok(self_cmd("floor-echo", self.workers, None)),
            Role::Twisted | Role::TwistedTls => self.twisted(role),
            Role::WeftLine | Role::WeftEcho => {
                return match self.weft(role, line) {
                    Ok(cmd) => (name, Ok(cmd)),
                    Err(why) => {
                        let (standin, sub, what) = if line {
                            (
                                "weft-line echo (stand-in)",
                                "weft-line-echo",
                                "weft-line `LineReceiver` on weft-core",
                            )
                        } else {
                            (
                                "weft-core echo (stand-in)",
                                "weft-echo",
                                "a weft-core `Protocol`",
                            )
                        };
                        notes.push(format!(
                            "**{name} is the stand-in** `weft-bench {sub}` ({what}): {why}"
                        ));
                        (standin, Ok(self_cmd(sub, self.workers, None)))
                    }
                };
            }
            Role::WeftLineTls
            | Role::WeftEchoTls
            | Role::WeftLineProxy
            | Role::WeftLinePolicies => self.weft(role, line),
        };
        (name, cmd)
    }
}

/// Picks the servers under test; returns them and notes for the report. The order is the
/// order of measurement within a repetition: each compared pair close together in time.
fn servers(env: &Env<'_>, sel: &Selection) -> (Vec<Sut>, Vec<String>) {
    let plain = sel.group(Group::Plain);
    let tls = sel.group(Group::Tls);
    let proxy = sel.group(Group::Proxy);
    let policies = sel.group(Group::Policies);
    let twisted = !env.opts.no_twisted;
    let rows = [
        (
            proxy,
            "weft serve line-echo on haproxy:tcp:",
            Role::WeftLineProxy,
        ),
        // Plain weft is also the PROXY and policies rows' baseline.
        (
            plain || proxy || policies,
            "weft serve line-echo",
            Role::WeftLine,
        ),
        (plain, "tokio reference line echo", Role::RefLine),
        (
            policies,
            "weft serve line-echo with policies",
            Role::WeftLinePolicies,
        ),
        (plain && twisted, "Twisted LineReceiver echo", Role::Twisted),
        (tls, "weft serve line-echo on ssl:", Role::WeftLineTls),
        (tls, "tokio-rustls reference line echo", Role::RefLineTls),
        (
            tls && twisted,
            "Twisted LineReceiver echo on ssl: (pyOpenSSL)",
            Role::TwistedTls,
        ),
        (plain, "weft serve echo", Role::WeftEcho),
        (plain, "tokio reference echo", Role::RefEcho),
        (tls, "weft serve echo on ssl:", Role::WeftEchoTls),
        (tls, "tokio-rustls reference echo", Role::RefEchoTls),
        (plain, "minimal tokio echo (idle floor)", Role::Floor),
    ];
    let mut notes = Vec::new();
    let mut v = Vec::new();
    for (wanted, name, role) in rows {
        if !wanted {
            continue;
        }
        let (name, cmd) = env.command(role, name, &mut notes);
        if let Err(why) = &cmd {
            log(format!("{name}: {why}"));
        }
        v.push(Sut {
            name: name.into(),
            role,
            cmd,
        });
    }
    (v, notes)
}

fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let l = limits.lines().find(|l| l.starts_with("Max open files"))?;
    l.split_whitespace().nth(3)?.parse().ok()
}

/// Waits until the server's RSS stops moving (two equal readings 200 ms apart, at most 5 s).
fn settled_rss(s: &Server) -> io::Result<u64> {
    let mut last = s.rss_kib()?;
    for _ in 0..25 {
        std::thread::sleep(Duration::from_millis(200));
        let now = s.rss_kib()?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Pins the load generator (this thread: the current-thread runtime runs every client task
/// on it) and a server to different CPUs for one measurement, and lets both float again
/// afterwards.
struct Pinning {
    /// CPUs this process may use (from its affinity mask at start).
    all: Vec<usize>,
    when: Pin,
}

impl Pinning {
    fn new(when: Pin) -> Self {
        let all = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
            .map(|set| {
                (0..nix::sched::CpuSet::count())
                    .filter(|&c| set.is_set(c).unwrap_or(false))
                    .collect()
            })
            .unwrap_or_default();
        Self { all, when }
    }

    /// True when pinning is possible at all (two CPUs or more) and wanted.
    fn active(&self) -> bool {
        self.all.len() >= 2 && self.when != Pin::None
    }

    /// The client's CPU (the last one) and the servers' (all the others).
    fn split(&self) -> (Vec<usize>, Vec<usize>) {
        let (last, rest) = self.all.split_last().expect("two CPUs or more");
        (vec![*last], rest.to_vec())
    }

    /// The settings line of the report.
    fn describe(&self) -> String {
        if !self.active() {
            return match self.when {
                Pin::None => "nothing pinned (`--pin none`)".into(),
                _ => "nothing pinned (one CPU)".into(),
            };
        }
        let (c, s) = self.split();
        let when = match self.when {
            Pin::OneConn => {
                "during the one-connection measurements (line echo over one \
                             connection, bulk), floating otherwise"
            }
            _ => "during every measurement",
        };
        format!(
            "load generator pinned to CPU {} and every thread of the server under test to CPU \
             {} {when} (`sched_setaffinity`, the same for every server)",
            c.iter().map(usize::to_string).collect::<Vec<_>>().join(","),
            s.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
        )
    }

    /// Runs `f` with the client and `server` pinned if `one_conn` (or always) says so.
    fn around<T>(&self, server: &Server, one_conn: bool, f: impl FnOnce() -> T) -> T {
        let pin = self.active() && (self.when == Pin::All || one_conn);
        if pin {
            let (c, s) = self.split();
            if let Err(e) = procs::pin_self(&c).and_then(|()| procs::pin_process(server.pid(), &s))
            {
                log(format!("cannot pin: {e}"));
            }
        }
        let out = f();
        if pin {
            let _ = procs::pin_self(&self.all);
            let _ = procs::pin_process(server.pid(), &self.all);
        }
        out
    }
}

/// One timed measurement of a repetition.
#[derive(Debug, Clone, Copy)]
enum Timed {
    /// Line echo under the line load at this index of the run's line loads.
    Line(usize),
    /// Connection rate.
    Rate,
    /// Bulk echo over one connection.
    Bulk,
}

/// A repetition's timed measurements in the order they run: every line load (for each, the
/// servers in `order`), then the connection rate, then bulk, each only where selected and run
/// by the server (the other groups' servers run only the first two line loads).
fn timed_jobs(
    sel: &Selection,
    suts: &[Sut],
    order: &[usize],
    line_loads: usize,
) -> Vec<(usize, Timed)> {
    let runs = |m: Measure, si: usize| sel.has(m) && suts[si].role.runs(m);
    let mut jobs = Vec::new();
    for ci in 0..line_loads {
        for &si in order {
            if runs(Measure::Line, si) && !(suts[si].role.targeted_loads_only() && ci >= 2) {
                jobs.push((si, Timed::Line(ci)));
            }
        }
    }
    for (m, job) in [(Measure::Rate, Timed::Rate), (Measure::Bulk, Timed::Bulk)] {
        jobs.extend(order.iter().filter(|&&si| runs(m, si)).map(|&si| (si, job)));
    }
    jobs
}

/// A load's result and what the server spent on it.
struct Measured<T> {
    res: T,
    /// Server CPU seconds from the load's start to its end.
    cpu: f64,
    /// What the scheduler did meanwhile ([`procs::SchedSnapshot::delta`]).
    sched: String,
}

/// Runs one load against `srv`, pinned as [`Pinning::around`] decides for `one_conn`. `load`
/// gets the callback the `load` functions call just before they start (every connection up):
/// the server's CPU time and the scheduler's snapshot are taken there.
fn measure<T>(
    pinning: &Pinning,
    srv: &Server,
    one_conn: bool,
    load: impl FnOnce(&mut dyn FnMut()) -> io::Result<T>,
) -> io::Result<Measured<T>> {
    let mut cpu0 = 0.0;
    let mut sched = procs::SchedSnapshot::default();
    let res = pinning.around(srv, one_conn, || {
        load(&mut || {
            sched = procs::SchedSnapshot::take(srv.pid());
            cpu0 = srv.cpu_secs().unwrap_or(0.0);
        })
    });
    let sched = sched.delta(srv.pid());
    let res = res?;
    Ok(Measured {
        res,
        cpu: srv.cpu_secs()? - cpu0,
        sched,
    })
}

/// A measurement's failure: Twisted's stops only Twisted (it is there for the record, never
/// fails the run); anyone else's fails the run.
fn failed(
    e: io::Error,
    s: &Sut,
    running: &mut [Option<Server>],
    si: usize,
    notes: &mut Vec<String>,
) -> io::Result<()> {
    if s.role.is_twisted() {
        let msg = format!("{} failed and was dropped from the run: {e}", s.name);
        log(&msg);
        notes.push(msg);
        running[si] = None;
        Ok(())
    } else {
        Err(io::Error::new(e.kind(), format!("{}: {e}", s.name)))
    }
}

/// Runs everything.
pub fn run(mut opts: RunOpts) -> io::Result<()> {
    elapsed_s();
    if opts.quick {
        opts.secs = 1.0;
        opts.reps = 1;
        opts.idle = opts.idle.min(1000);
    }
    let sel = Selection::parse(&opts.modes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let workers = opts
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let machine = Machine::detect();
    let certs = if sel.group(Group::Tls) {
        Some(CertFiles::generate()?)
    } else {
        None
    };
    let tls_client = certs
        .as_ref()
        .map(|c| tls::client_config(&c.cert))
        .transpose()?;
    let proxy = if opts.proxy_version == 2 {
        ProxyVersion::V2
    } else {
        ProxyVersion::V1
    };
    let env = Env {
        opts: &opts,
        rt: &rt,
        workers,
        weft: weft_binary(&opts),
        certs: certs.as_ref(),
        tls_client: tls_client.as_ref(),
        proxy,
    };
    let (suts, mut notes) = servers(&env, &sel);
    let wires: Vec<Wire> = suts
        .iter()
        .map(|s| wire_for(s.role, tls_client.as_ref(), proxy))
        .collect();
    let pinning = Pinning::new(opts.pin);
    let t0 = Instant::now();
    let mut rep = Report::new(machine, opts.clone(), workers, suts.clone());
    rep.pinning = pinning.describe();
    rep.load_before = procs::loadavg();

    if let Some(lim) = open_files_limit() {
        if lim < opts.idle + 256 {
            let k = lim.saturating_sub(256).max(100);
            let msg = format!(
                "open-files limit {lim}: idle connections reduced from {} to {k} (raise `ulimit -n`)",
                opts.idle
            );
            log(&msg);
            notes.push(msg);
            opts.idle = k;
            rep.opts.idle = k;
        }
    }

    let cfgs = match &opts.line_loads {
        Some(list) => parse_line_loads(list)?,
        None => vec![
            LineCfg {
                conns: 1,
                window: opts.window,
            },
            LineCfg {
                conns: opts.conns,
                window: opts.window,
            },
            LineCfg {
                conns: 1,
                window: 1,
            },
        ],
    };
    rep.line_cfgs = cfgs.clone();

    let timed = [Measure::Line, Measure::Rate, Measure::Bulk];
    if timed.iter().any(|&m| sel.has(m)) {
        let mut running = Vec::new();
        for s in &suts {
            let wanted = timed.iter().any(|&m| sel.has(m) && s.role.runs(m));
            match (&s.cmd, wanted) {
                (Ok(cmd), true) => {
                    let srv = Server::start(cmd)?;
                    log(format!("{} pid {} on {}", s.name, srv.pid(), srv.addr));
                    running.push(Some(srv));
                }
                _ => running.push(None),
            }
        }
        for r in 0..opts.reps {
            // Every other repetition runs the servers in reverse order, so that a drift in the
            // machine's load over a repetition does not always favour the same server.
            let mut order: Vec<usize> = if r % 2 == 0 {
                (0..suts.len()).collect()
            } else {
                (0..suts.len()).rev().collect()
            };
            if r >= opts.twisted_reps {
                order.retain(|&si| !suts[si].role.is_twisted());
            }
            for (si, job) in timed_jobs(&sel, &suts, &order, cfgs.len()) {
                let s = &suts[si];
                let Some(srv) = &running[si] else { continue };
                let (addr, wire) = (srv.addr, &wires[si]);
                let done = match job {
                    Timed::Line(ci) => {
                        let cfg = &cfgs[ci];
                        measure(&pinning, srv, cfg.conns == 1, |start| {
                            rt.block_on(load::line_echo(
                                addr, wire, cfg.conns, cfg.window, opts.secs, start,
                            ))
                        })
                        .map(|m| {
                            let sample = report::LineSample::new(m.res, m.cpu);
                            log(format!(
                                "rep {r} line {}x{} {}: {:.0} lines/s, {:.3} us CPU/line ({})",
                                cfg.conns,
                                cfg.window,
                                s.name,
                                sample.lines_per_s,
                                sample.cpu_us_per_line,
                                m.sched
                            ));
                            rep.line.push((si, ci, sample));
                        })
                    }
                    Timed::Rate => measure(&pinning, srv, false, |start| {
                        rt.block_on(load::conn_rate(
                            addr,
                            wire,
                            opts.rate_parallel,
                            opts.secs,
                            start,
                        ))
                    })
                    .map(|m| {
                        let sample = report::RateSample::new(&m.res, m.cpu);
                        log(format!(
                            "rep {r} rate {}: {:.0} conns/s p50 {} us p99 {} us, {:.1} us CPU/conn",
                            s.name,
                            sample.conns_per_s,
                            sample.p50_us,
                            sample.p99_us,
                            sample.cpu_us_per_conn
                        ));
                        rep.rate.push((si, sample));
                        // Let TIME_WAIT sockets and the server's accept queue settle.
                        std::thread::sleep(Duration::from_millis(200));
                    }),
                    Timed::Bulk => measure(&pinning, srv, true, |start| {
                        rt.block_on(load::bulk(addr, wire, opts.secs, start))
                    })
                    .map(|m| {
                        let sample = report::BulkSample::new(m.res, m.cpu);
                        log(format!(
                            "rep {r} bulk {}: {:.0} MB/s",
                            s.name, sample.mb_per_s
                        ));
                        rep.bulk.push((si, sample));
                    }),
                };
                if let Err(e) = done {
                    failed(e, s, &mut running, si, &mut notes)?;
                }
            }
        }
        drop(running);
    }

    if sel.has(Measure::Idle) {
        for (si, s) in suts.iter().enumerate() {
            let Ok(cmd) = &s.cmd else { continue };
            if !s.role.runs(Measure::Idle) {
                continue;
            }
            match idle(&rt, cmd, &wires[si], opts.idle) {
                Ok(sample) => {
                    log(format!(
                        "idle {}: {:.2} KiB/conn fresh, {:.2} KiB/conn after one line",
                        s.name,
                        sample.fresh_per_conn(),
                        sample.after_per_conn()
                    ));
                    rep.idle.push((si, sample));
                }
                Err(e) if s.role.is_twisted() => {
                    let msg = format!("{}: idle connections failed: {e}", s.name);
                    log(&msg);
                    notes.push(msg);
                }
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", s.name))),
            }
        }
    }

    rep.load_after = procs::loadavg();
    rep.notes = notes;
    rep.total_secs = t0.elapsed().as_secs_f64();
    let md = rep.markdown();
    println!("{md}");
    if let Some(path) = &opts.write {
        std::fs::write(path, &md)?;
        log(format!("wrote {}", path.display()));
    }
    Ok(())
}

/// Idle memory: a fresh server, warmed up so earlier load does not leave free memory to
/// reuse, then `k` connections held, fresh and after one line each.
fn idle(
    rt: &tokio::runtime::Runtime,
    cmd: &ServerCmd,
    wire: &Wire,
    k: usize,
) -> io::Result<report::IdleSample> {
    let srv = Server::start(cmd)?;
    rt.block_on(load::warm_up(srv.addr, wire, 8))?;
    let before = settled_rss(&srv)?;
    let mut conns = rt.block_on(load::IdleConns::open(srv.addr, wire, k))?;
    let fresh = settled_rss(&srv)?;
    rt.block_on(conns.one_line_each())?;
    let after = settled_rss(&srv)?;
    // The server first, so that it does not log thousands of connections going away.
    drop(srv);
    drop(conns);
    Ok(report::IdleSample {
        k,
        before_kib: before,
        fresh_kib: fresh,
        after_kib: after,
    })
}

/// Parses `--line-loads`: `CONNSxWINDOW` items, comma-separated.
fn parse_line_loads(list: &str) -> io::Result<Vec<LineCfg>> {
    let bad = |item: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--line-loads: `{item}` is not CONNSxWINDOW (e.g. 50x64)"),
        )
    };
    list.split(',')
        .map(|item| {
            let (c, w) = item.trim().split_once('x').ok_or_else(|| bad(item))?;
            let conns: usize = c.parse().map_err(|_| bad(item))?;
            let window: usize = w.parse().map_err(|_| bad(item))?;
            if conns == 0 || window == 0 {
                return Err(bad(item));
            }
            Ok(LineCfg { conns, window })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_loads_parse_and_reject_garbage() {
        let v = parse_line_loads("1x64, 50x8").unwrap();
        assert_eq!(
            (v[0].conns, v[0].window, v[1].conns, v[1].window),
            (1, 64, 50, 8)
        );
        for bad in ["", "50", "0x4", "4x0", "ax4"] {
            assert!(parse_line_loads(bad).is_err(), "{bad:?} accepted");
        }
    }
}
