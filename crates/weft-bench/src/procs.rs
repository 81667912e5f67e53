//! Child server processes and what `/proc` says about them (CPU time, RSS), plus machine info.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How to start one server under test.
#[derive(Debug, Clone)]
pub struct ServerCmd {
    /// Program.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
}

/// A running server; killed on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `cmd` and waits (up to 60 s) for its `listening on HOST:PORT` stderr line.
    pub fn start(cmd: &ServerCmd) -> io::Result<Self> {
        let mut child = Command::new(&cmd.program)
            .args(&cmd.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", cmd.program.display())))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Keeps draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut seen = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(t) = tx.as_ref() {
                    if let Some(addr) = parse_listening(&line) {
                        let _ = t.send(Ok(addr));
                        tx = None;
                    } else if seen.len() < 20 {
                        seen.push(line);
                    }
                }
            }
            if let Some(t) = tx {
                let _ = t.send(Err(format!(
                    "exited without `listening on`:\n{}",
                    seen.join("\n")
                )));
            }
        });
        let listening = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| Err("no `listening on` line within 60 s".into()));
        let addr = match listening {
            Ok(addr) => addr,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "{} {:?}: {why}",
                    cmd.program.display(),
                    cmd.args
                )));
            }
        };
        Ok(Self { child, addr })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU time so far, in seconds.
    pub fn cpu_secs(&self) -> io::Result<f64> {
        cpu_secs(self.pid())
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> io::Result<u64> {
        rss_kib(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds `HOST:PORT` in a line starting with (or containing) `listening on`.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on")? + "listening on".len()..];
    rest.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|t| !t.is_empty())
        .find_map(|t| {
            let t = t.trim_start_matches("tcp:").trim_start_matches("tcp://");
            t.parse().ok()
        })
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of a process from `/proc/PID/stat`, in seconds.
pub fn cpu_secs(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = &stat[stat
        .rfind(')')
        .ok_or_else(|| io::Error::other("bad stat"))?
        + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let parse = |i: usize| -> io::Result<f64> {
        f.get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .map(|v| v as f64)
            .ok_or_else(|| io::Error::other("bad stat field"))
    };
    Ok((parse(11)? + parse(12)?) / clock_ticks())
}

/// VmRSS of a process from `/proc/PID/status`, in KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS"))
}

/// The 1-minute load average.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn command_out(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Machine description for the report.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs available.
    pub nproc: usize,
    /// Kernel release.
    pub kernel: String,
    /// Date (UTC).
    pub date: String,
    /// rustc version.
    pub rustc: String,
}

impl Machine {
    /// Reads the machine info.
    pub fn detect() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpu,
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            date: command_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
            rustc: command_out("rustc", &["--version"]).unwrap_or_else(|| "rustc ?".into()),
        }
    }
}

/// What the scheduler did with one thread (`/proc/PID/task/TID/sched`), cumulative.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadSched {
    /// Thread id.
    pub tid: u32,
    /// CPU time, milliseconds.
    pub exec_ms: f64,
    /// Moves to another CPU.
    pub migrations: u64,
    /// Switches the thread asked for (it waited).
    pub voluntary: u64,
    /// Switches the scheduler forced (preempted).
    pub involuntary: u64,
    /// The CPU it last ran on.
    pub cpu: u32,
}

fn read_thread_sched(dir: &std::path::Path, tid: u32) -> Option<ThreadSched> {
    let text = std::fs::read_to_string(dir.join("sched")).ok()?;
    let field = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.rsplit(':').next())
            .and_then(|v| v.trim().parse().ok())
    };
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // Field 39 of stat(5) (`processor`); `after` starts at field 3.
    let cpu = after.split_whitespace().nth(36)?.parse().ok()?;
    Some(ThreadSched {
        tid,
        exec_ms: field("se.sum_exec_runtime")?,
        migrations: field("se.nr_migrations")? as u64,
        voluntary: field("nr_voluntary_switches")? as u64,
        involuntary: field("nr_involuntary_switches")? as u64,
        cpu,
    })
}

/// Every thread of process `pid`.
pub fn sched_threads(pid: u32) -> Vec<ThreadSched> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    rd.filter_map(|e| {
        let e = e.ok()?;
        let tid = e.file_name().to_str()?.parse().ok()?;
        read_thread_sched(&e.path(), tid)
    })
    .collect()
}

/// The calling thread.
pub fn sched_self() -> Option<ThreadSched> {
    read_thread_sched(std::path::Path::new("/proc/thread-self"), 0)
}

/// Restricts every thread of process `pid` (all of `/proc/PID/task`) to `cpus`.
pub fn pin_process(pid: u32, cpus: &[usize]) -> io::Result<()> {
    let set = cpu_set(cpus)?;
    let rd = std::fs::read_dir(format!("/proc/{pid}/task"))?;
    for e in rd.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        // A thread that exited meanwhile is no error.
        match nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Restricts the calling thread to `cpus`.
pub fn pin_self(cpus: &[usize]) -> io::Result<()> {
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpu_set(cpus)?)
        .map_err(io::Error::from)
}

fn cpu_set(cpus: &[usize]) -> io::Result<nix::sched::CpuSet> {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c).map_err(io::Error::from)?;
    }
    Ok(set)
}

/// A snapshot of what the scheduler did with a server's threads and the calling thread, to
/// log how a measurement ran (see [`SchedSnapshot::delta`]).
#[derive(Debug, Clone, Default)]
pub struct SchedSnapshot {
    server: Vec<ThreadSched>,
    client: Option<ThreadSched>,
}

impl SchedSnapshot {
    /// Now, for server `pid` and the calling thread.
    pub fn take(pid: u32) -> Self {
        Self {
            server: sched_threads(pid),
            client: sched_self(),
        }
    }

    /// Since `self`: the server threads that ran (CPU ms, migrations, voluntary switches:
    /// how often it waited for work, involuntary ones: how often it was preempted, last
    /// CPU) and the same for the client.
    pub fn delta(&self, pid: u32) -> String {
        let now = Self::take(pid);

        let one = |who: &str, a: &ThreadSched, b: &ThreadSched| {
            format!(
                "{who} {:.0}ms mig {} vol {} inv {} cpu{}",
                b.exec_ms - a.exec_ms,
                b.migrations - a.migrations,
                b.voluntary - a.voluntary,
                b.involuntary - a.involuntary,
                b.cpu
            )
        };
        let mut parts: Vec<String> = now
            .server
            .iter()
            .filter_map(|b| {
                let a = self.server.iter().find(|a| a.tid == b.tid)?;
                (b.exec_ms - a.exec_ms >= 5.0).then(|| one("server", a, b))
            })
            .collect();
        if let (Some(a), Some(b)) = (&self.client, &now.client) {
            parts.push(one("client", a, b));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_exits_without_listening_is_an_error_with_its_stderr() {
        let cmd = ServerCmd {
            program: "sh".into(),
            args: vec!["-c".into(), "echo oops >&2".into()],
        };
        let e = Server::start(&cmd).unwrap_err();
        assert!(
            e.to_string()
                .ends_with(": exited without `listening on`:\noops"),
            "{e}"
        );
    }
}
