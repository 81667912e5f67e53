//! Helpers shared by the facade's fault and soak tests.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// Bounds every await of a test.
pub async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test step timed out")
}

/// Lets a test open a few thousand sockets whatever the default soft limit is.
pub fn raise_fd_limit() {
    if let Ok((_, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard.min(65536), hard);
    }
}

/// Kills the child process when dropped, even if the test fails; keeps what it wrote to
/// stderr.
pub struct ChildGuard(pub Child, Arc<Mutex<Vec<String>>>);

impl ChildGuard {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// The lines the child wrote to stderr so far (its logs).
    pub fn stderr_lines(&self) -> Vec<String> {
        self.1.lock().unwrap().clone()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the ignored test `name` of this same test binary as a server in a child process
/// (`env_key=1` tells it to act), and returns it with the port it printed as `PORT n`.
pub async fn spawn_server_child(name: &str, env_key: &str) -> (ChildGuard, u16) {
    let (name, env_key) = (name.to_owned(), env_key.to_owned());
    let (child, port, _rest) = tokio::task::spawn_blocking(move || spawn_child(&name, &env_key))
        .await
        .expect("spawn the child server");
    (child, port)
}

/// [`spawn_server_child`] for tests without a runtime; also returns what the child prints
/// on stdout after its port, line by line (the child's stdout is drained to its end either
/// way, so it never blocks on or fails writing to a full or closed pipe).
pub fn spawn_child(name: &str, env_key: &str) -> (ChildGuard, u16, mpsc::Receiver<String>) {
    let child = Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(env_key, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child server");
    let mut child = ChildGuard(child, Arc::default());
    let stderr = child.0.stderr.take().expect("piped stderr");
    let logged = child.1.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            logged.lock().unwrap().push(line);
        }
    });
    let stdout = child.0.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("child exited without a port")
            .expect("child stdout");
        // libtest prints "test NAME ... " on the same line first.
        if let Some((_, p)) = line.split_once("PORT ") {
            break p.trim().parse::<u16>().expect("a port number");
        }
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, port, rx)
}

/// Prints the port for the parent of [`spawn_server_child`].
pub fn announce_port(port: u16) {
    #[allow(clippy::print_stdout)]
    {
        println!("PORT {port}");
    }
}

/// A process's resident memory in KiB, from /proc (0 if unreadable).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
