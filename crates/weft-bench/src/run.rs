//! `weft-bench run`: starts the servers, runs every mode against each, reports.

use std::io;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::load;
use crate::plan::{LineCfg, Role, RunOpts, Sut};
use crate::procs::{self, Machine, Server, ServerCmd};
use crate::report::{self, Report};

fn log(msg: impl AsRef<str>) {
    eprintln!("[weft-bench {:>6.1}s] {}", elapsed_s(), msg.as_ref());
}

fn elapsed_s() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

fn self_cmd(sub: &str, workers: usize) -> ServerCmd {
    ServerCmd {
        program: std::env::current_exe().unwrap_or_else(|_| "weft-bench".into()),
        args: vec![
            sub.into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--workers".into(),
            workers.to_string(),
        ],
    }
}

fn weft_cmd(bin: &std::path::Path, line: bool, policies: &str) -> ServerCmd {
    let mut args: Vec<String> = vec!["serve".into()];
    if line {
        args.extend(["line-echo".into(), "--delimiter".into(), "lf".into()]);
    } else {
        args.push("echo".into());
    }
    args.extend(["--listen".into(), "tcp:0:interface=127.0.0.1".into()]);
    args.extend(policies.split_whitespace().map(String::from));
    ServerCmd {
        program: bin.to_path_buf(),
        args,
    }
}

fn twisted_available() -> bool {
    Command::new("python3")
        .args(["-c", "import twisted"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Checks that a server starts and answers one line.
fn probe(cmd: &ServerCmd, rt: &tokio::runtime::Runtime) -> io::Result<()> {
    let s = Server::start(cmd)?;
    rt.block_on(async {
        let mut c = load::IdleConns::open(s.addr, 1).await?;
        tokio::time::timeout(Duration::from_secs(5), c.one_line_each())
            .await
            .map_err(|_| io::Error::other("no echo within 5 s"))?
    })
}

/// Picks the servers under test; returns them and notes for the report.
fn servers(
    opts: &RunOpts,
    rt: &tokio::runtime::Runtime,
    workers: usize,
) -> (Vec<Sut>, Vec<String>) {
    let mut notes = Vec::new();
    let mut weft_bin = opts.weft_bin.clone();
    if weft_bin.is_none() && !opts.standin {
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
        weft_bin = crate::exe_dir()
            .map(|d| d.join("weft"))
            .filter(|p| p.exists());
    }
    let mut weft_line = None;
    let mut weft_echo = None;
    if let Some(bin) = &weft_bin {
        for line in [true, false] {
            let cmd = weft_cmd(bin, line, &opts.weft_policies);
            match probe(&cmd, rt) {
                Ok(()) => {
                    if line {
                        weft_line = Some(cmd)
                    } else {
                        weft_echo = Some(cmd)
                    }
                }
                Err(e) => {
                    let msg = format!(
                        "`{} {}` does not work ({e}); using this crate's stand-in instead",
                        bin.display(),
                        cmd.args.join(" ")
                    );
                    log(&msg);
                    notes.push(msg);
                }
            }
        }
    }
    let mut v = Vec::new();
    match weft_line {
        Some(cmd) => v.push(Sut {
            name: "weft serve line-echo".into(),
            role: Role::WeftLine,
            cmd,
        }),
        None => {
            notes.push(
                "**weft line echo is the stand-in** `weft-bench weft-line-echo` (weft-line \
                 `LineReceiver` on weft-core), not `weft serve line-echo`."
                    .into(),
            );
            v.push(Sut {
                name: "weft-line echo (stand-in)".into(),
                role: Role::WeftLine,
                cmd: self_cmd("weft-line-echo", workers),
            })
        }
    }
    v.push(Sut {
        name: "tokio reference line echo".into(),
        role: Role::RefLine,
        cmd: self_cmd("ref-line-echo", workers),
    });
    if opts.twisted || opts.install_twisted {
        if !twisted_available() && opts.install_twisted {
            log("pip install twisted");
            let _ = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "twisted"])
                .status();
        }
        if twisted_available() {
            v.push(Sut {
                name: "Twisted LineReceiver echo".into(),
                role: Role::Twisted,
                cmd: ServerCmd {
                    program: "python3".into(),
                    args: vec![
                        "-c".into(),
                        include_str!("../twisted_line_echo.py").into(),
                        "127.0.0.1".into(),
                        "0".into(),
                    ],
                },
            });
        } else {
            let msg = "Twisted is not installed (`--install-twisted` installs it): skipped.";
            log(msg);
            notes.push(msg.into());
        }
    }
    match weft_echo {
        Some(cmd) => v.push(Sut {
            name: "weft serve echo".into(),
            role: Role::WeftEcho,
            cmd,
        }),
        None => {
            notes.push(
                "**weft byte echo is the stand-in** `weft-bench weft-echo` (a weft-core \
                 `Protocol`), not `weft serve echo`."
                    .into(),
            );
            v.push(Sut {
                name: "weft-core echo (stand-in)".into(),
                role: Role::WeftEcho,
                cmd: self_cmd("weft-echo", workers),
            })
        }
    }
    v.push(Sut {
        name: "tokio reference echo".into(),
        role: Role::RefEcho,
        cmd: self_cmd("ref-echo", workers),
    });
    v.push(Sut {
        name: "minimal tokio echo (idle floor)".into(),
        role: Role::Floor,
        cmd: self_cmd("floor-echo", workers),
    });
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

/// Runs everything.
pub fn run(mut opts: RunOpts) -> io::Result<()> {
    elapsed_s();
    if opts.quick {
        opts.secs = 1.0;
        opts.reps = 1;
        opts.idle = opts.idle.min(1000);
    }
    let workers = opts
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let machine = Machine::detect();
    let (suts, mut notes) = servers(&opts, &rt, workers);
    let t0 = Instant::now();
    let modes: Vec<&str> = opts.modes.split(',').map(str::trim).collect();
    let mut rep = Report::new(machine, opts.clone(), workers, suts.clone());
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

    let need_running = modes.iter().any(|m| matches!(*m, "line" | "rate" | "bulk"));
    if need_running {
        let mut running = Vec::new();
        for s in &suts {
            if s.role == Role::Floor {
                running.push(None);
                continue;
            }
            let srv = Server::start(&s.cmd)?;
            log(format!("{} pid {} on {}", s.name, srv.pid(), srv.addr));
            running.push(Some(srv));
        }
        for r in 0..opts.reps {
            // Every other repetition runs the servers in reverse order, so that a drift in the
            // machine's load over a repetition does not always favour the same server.
            let order: Vec<(usize, &Sut)> = if r % 2 == 0 {
                suts.iter().enumerate().collect()
            } else {
                suts.iter().enumerate().rev().collect()
            };
            if modes.contains(&"line") {
                for (ci, cfg) in cfgs.iter().enumerate() {
                    for &(si, s) in &order {
                        if !s.role.is_line() {
                            continue;
                        }
                        let Some(srv) = &running[si] else { continue };
                        let mut cpu0 = 0.0;
                        let res = rt.block_on(load::line_echo(
                            srv.addr,
                            cfg.conns,
                            cfg.window,
                            opts.secs,
                            || cpu0 = srv.cpu_secs().unwrap_or(0.0),
                        ))?;
                        let cpu = srv.cpu_secs()? - cpu0;
                        let sample = report::LineSample::new(res, cpu);
                        log(format!(
                            "rep {r} line {}x{} {}: {:.0} lines/s, {:.3} us CPU/line",
                            cfg.conns,
                            cfg.window,
                            s.name,
                            sample.lines_per_s,
                            sample.cpu_us_per_line
                        ));
                        rep.line.push((si, ci, sample));
                    }
                }
            }
            if modes.contains(&"rate") {
                for &(si, s) in &order {
                    if !s.role.is_line() {
                        continue;
                    }
                    let Some(srv) = &running[si] else { continue };
                    let mut cpu0 = 0.0;
                    let res = rt.block_on(load::conn_rate(
                        srv.addr,
                        opts.rate_parallel,
                        opts.secs,
                        || cpu0 = srv.cpu_secs().unwrap_or(0.0),
                    ))?;
                    let cpu = srv.cpu_secs()? - cpu0;
                    let sample = report::RateSample::new(&res, cpu);
                    log(format!(
                        "rep {r} rate {}: {:.0} conns/s p50 {} us p99 {} us",
                        s.name, sample.conns_per_s, sample.p50_us, sample.p99_us
                    ));
                    rep.rate.push((si, sample));
                    // Let TIME_WAIT sockets and the server's accept queue settle.
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            if modes.contains(&"bulk") {
                for &(si, s) in &order {
                    if !s.role.is_bulk() {
                        continue;
                    }
                    let Some(srv) = &running[si] else { continue };
                    let mut cpu0 = 0.0;
                    let res = rt.block_on(load::bulk(srv.addr, opts.secs, || {
                        cpu0 = srv.cpu_secs().unwrap_or(0.0)
                    }))?;
                    let cpu = srv.cpu_secs()? - cpu0;
                    let sample = report::BulkSample::new(res, cpu);
                    log(format!(
                        "rep {r} bulk {}: {:.0} MB/s",
                        s.name, sample.mb_per_s
                    ));
                    rep.bulk.push((si, sample));
                }
            }
        }
        drop(running);
    }

    if modes.contains(&"idle") {
        for (si, s) in suts.iter().enumerate() {
            // A fresh server, warmed up, so earlier load does not leave free memory to reuse.
            let srv = Server::start(&s.cmd)?;
            rt.block_on(load::warm_up(srv.addr, 8))?;
            let before = settled_rss(&srv)?;
            let mut conns = rt.block_on(load::IdleConns::open(srv.addr, opts.idle))?;
            let fresh = settled_rss(&srv)?;
            rt.block_on(conns.one_line_each())?;
            let after = settled_rss(&srv)?;
            drop(conns);
            let sample = report::IdleSample {
                k: opts.idle,
                before_kib: before,
                fresh_kib: fresh,
                after_kib: after,
            };
            log(format!(
                "idle {}: {:.2} KiB/conn fresh, {:.2} KiB/conn after one line",
                s.name,
                sample.fresh_per_conn(),
                sample.after_per_conn()
            ));
            rep.idle.push((si, sample));
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
