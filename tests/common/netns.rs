//! End-to-end tests with real programs in network namespaces: a small LAN of two namespaces (a
//! "router" that also holds the outside servers, and a "client" that is the home host) joined by
//! a veth pair, daemons and a tcpdump capture killed on drop (panics included), programs run
//! with a time bound, threads that open sockets inside a namespace, and botd's offline commands
//! on the capture.
//!
//! Nothing leaves the machine: the namespaces have no route out, IPv6 is off, and the "outside"
//! servers are addresses of the benchmark range 198.18.0.0/15 on the router's loopback.
//!
//! Used by `tests/netns_protocols.rs` (`#[path = "common/netns.rs"] mod netns;`).
#![allow(dead_code)]

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The LAN's prefix, the router's and the first client's addresses.
pub const HOME: &str = "10.77.0.0/24";
pub const ROUTER: &str = "10.77.0.1";
/// The router's interface on the LAN, and the client's.
pub const ROUTER_IF: &str = "lan0";
pub const CLIENT_IF: &str = "eth0";

static N: AtomicU32 = AtomicU32::new(0);

fn unique(tag: &str) -> String {
    format!(
        "botd-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a command to completion; panics with its stderr when it fails.
pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A tool a test drives: a shell test that succeeds when it is there, and the Debian package
/// that provides it.
pub struct Tool {
    pub check: String,
    pub package: &'static str,
}

/// A program on the PATH (or at an absolute path).
pub fn tool(program: &str, package: &'static str) -> Tool {
    Tool {
        check: format!("command -v {program}"),
        package,
    }
}

/// Fails (never skips) unless the test runs as root with every tool present, naming the
/// packages to install.
pub fn require(tools: &[Tool]) {
    // SAFETY: geteuid has no preconditions.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "these tests need root (network namespaces, packet capture); CI runs them as root"
    );
    let mut all = vec![tool("ip", "iproute2"), tool("tcpdump", "tcpdump")];
    all.extend(tools.iter().map(|t| Tool {
        check: t.check.clone(),
        package: t.package,
    }));
    let missing: Vec<&str> = all
        .iter()
        .filter(|t| {
            !Command::new("sh")
                .arg("-c")
                .arg(format!("{} >/dev/null 2>&1", t.check))
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|t| t.package)
        .collect();
    assert!(
        missing.is_empty(),
        "missing Debian packages: apt-get install {} (tests/run.sh installs them)",
        missing.join(" ")
    );
}

/// A temporary folder, removed on drop (panics included).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique(tag));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }

    /// Writes a file of the folder and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.join(name);
        fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // BOTD_NETNS_KEEP=1 keeps the captures, logs and configurations for a look.
        if std::env::var_os("BOTD_NETNS_KEEP").is_some() {
            eprintln!("kept {}", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A network namespace with its loopback up and IPv6 off; deleted on drop with its
/// `/etc/netns/NAME` folder (the files `ip netns exec` puts over `/etc`).
pub struct Ns {
    pub name: String,
}

impl Ns {
    pub fn new(tag: &str) -> Ns {
        let name = unique(tag);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(Command::new("ip").args(["netns", "add", &name]));
        let ns = Ns { name };
        sh(ns.exec("sysctl").args([
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]));
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `program` run inside the namespace (`ip netns exec` executes it in place: the child's pid
    /// is the program's).
    pub fn exec(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// `ip -n NAME ARGS`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        sh(Command::new("ip").args(["-n", &self.name]).args(args));
    }

    /// Programs run in the namespace resolve names through `nameserver` (glibc and busybox
    /// read `/etc/resolv.conf`, which `ip netns exec` replaces by this one).
    pub fn set_resolver(&self, nameserver: &str) {
        let dir = Path::new("/etc/netns").join(&self.name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {nameserver}\n"),
        )
        .unwrap();
    }

    /// Runs `program ARGS` in the namespace to completion, at most `secs` seconds (coreutils'
    /// `timeout`; exit status 124 when it ran out).
    pub fn run(&self, secs: u32, program: &str, args: &[&str]) -> Output {
        let mut c = self.exec("timeout");
        c.args(["-k", "2", &secs.to_string(), program])
            .args(args)
            .stdin(Stdio::null());
        c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"))
    }

    /// As [`Ns::run`], and it must succeed; returns its standard output.
    pub fn run_ok(&self, secs: u32, program: &str, args: &[&str]) -> String {
        let out = self.run(secs, program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} in {}: {} (124: timed out)\nstdout: {}\nstderr: {}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `f` on a thread inside the namespace: the sockets it opens live there.
    pub fn thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = Path::new("/run/netns").join(&self.name);
        std::thread::spawn(move || {
            let file = fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // SAFETY: a valid namespace descriptor; setns changes this thread's namespace only.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
            f()
        })
    }

    /// Waits (at most `secs`) until a TCP server accepts at `addr`, connecting from inside the
    /// namespace.
    pub fn wait_tcp(&self, addr: &str, secs: u64) {
        let addr: SocketAddr = addr.parse().unwrap();
        let ok = self
            .thread(move || {
                let deadline = Instant::now() + Duration::from_secs(secs);
                while Instant::now() < deadline {
                    if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                false
            })
            .join()
            .unwrap();
        assert!(ok, "nothing accepts on {addr} after {secs} s");
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = fs::remove_dir_all(Path::new("/etc/netns").join(&self.name));
    }
}

/// A LAN: the router namespace (`lan0`, 10.77.0.1/24; the outside servers' addresses on its
/// loopback) and the client namespace (`eth0`, with the given MAC), joined by a veth pair.
/// The client gets its addresses from [`Lan::client_addrs`] or from DHCP.
pub struct Lan {
    pub client: Ns,
    pub router: Ns,
}

impl Lan {
    pub fn new(tag: &str, client_mac: &str) -> Lan {
        let router = Ns::new(&format!("{tag}-r"));
        let client = Ns::new(&format!("{tag}-c"));
        router.ip(&[
            "link",
            "add",
            ROUTER_IF,
            "type",
            "veth",
            "peer",
            "name",
            CLIENT_IF,
            "netns",
            &client.name,
        ]);
        client.ip(&["link", "set", CLIENT_IF, "address", client_mac]);
        router.ip(&["addr", "add", &format!("{ROUTER}/24"), "dev", ROUTER_IF]);
        router.ip(&["link", "set", ROUTER_IF, "up"]);
        client.ip(&["link", "set", CLIENT_IF, "up"]);
        Lan { client, router }
    }

    /// Addresses of the client (the first is its source by default), and its default route
    /// through the router.
    pub fn client_addrs(&self, addrs: &[&str]) {
        for a in addrs {
            self.client
                .ip(&["addr", "add", &format!("{a}/24"), "dev", CLIENT_IF]);
        }
        self.client
            .ip(&["route", "add", "default", "via", ROUTER, "dev", CLIENT_IF]);
    }

    /// Traffic from the client to `dst` leaves from its address `src` (a second home host
    /// behind the same interface, for programs that cannot bind a source address).
    pub fn route_from(&self, dst: &str, src: &str) {
        self.client.ip(&[
            "route",
            "add",
            &format!("{dst}/32"),
            "via",
            ROUTER,
            "src",
            src,
            "dev",
            CLIENT_IF,
        ]);
    }

    /// "Outside" server addresses (198.18.0.0/15) on the router's loopback.
    pub fn outside(&self, addrs: &[&str]) {
        for a in addrs {
            self.router
                .ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"]);
        }
    }
}

/// A program running in the background, its stdout and stderr in a log file; killed on drop
/// (panics included).
pub struct Daemon {
    pub what: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn spawn(what: &str, mut cmd: Command, log: PathBuf) -> Daemon {
        let out = fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {cmd:?}: {e}"));
        Daemon {
            what: what.to_string(),
            child: Some(child),
            log,
        }
    }

    /// The program's pid while it runs (to signal it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Waits (at most `secs`) until the log holds `needle`; panics with the log when the
    /// program exits or the time runs out.
    pub fn wait_log(&mut self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("{} exited ({status}) before {needle:?}:\n{text}", self.what);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log {needle:?} in {secs} s:\n{text}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `sig` and waits (at most `secs`) for the exit; then kills. Returns the log.
    pub fn stop(&mut self, sig: libc::c_int, secs: u64) -> String {
        if let Some(mut c) = self.child.take() {
            // SAFETY: a pid of our own child, not yet reaped.
            unsafe { libc::kill(c.id() as libc::pid_t, sig) };
            let deadline = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return self.log_text();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.log_text()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// tcpdump writing every frame of an interface of a namespace to a pcap file.
pub struct Capture {
    daemon: Daemon,
    pub pcap: PathBuf,
}

impl Capture {
    /// Starts tcpdump and waits until it listens.
    pub fn start(ns: &Ns, iface: &str, dir: &TempDir) -> Capture {
        let pcap = dir.join("lan.pcap");
        let mut cmd = ns.exec("tcpdump");
        cmd.args([
            "-i",
            iface,
            "-n",
            "-s",
            "0",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-w",
        ])
        .arg(&pcap);
        let mut daemon = Daemon::spawn("tcpdump", cmd, dir.join("tcpdump.log"));
        daemon.wait_log("listening on", 10);
        Capture { daemon, pcap }
    }

    /// Lets the last packets arrive, stops tcpdump (SIGINT, which flushes the file) and returns
    /// the capture's path.
    pub fn stop(mut self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(300));
        let log = self.daemon.stop(libc::SIGINT, 5);
        assert!(
            log.contains("packets captured"),
            "tcpdump did not finish cleanly:\n{log}"
        );
        self.pcap.clone()
    }
}

/// `botd flows --format json` on a capture: one object per flow record.
pub fn botd_flows(pcap: &Path) -> Vec<serde_json::Value> {
    let out = sh(Command::new(env!("CARGO_BIN_EXE_botd"))
        .args(["flows", "--format", "json"])
        .arg(pcap));
    String::from_utf8(out.stdout)
        .expect("botd flows writes UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `botd analyze --json` on a capture, with a configuration of the test's own (the LAN as home,
/// the repository's models).
pub fn botd_analyze(pcap: &Path, dir: &TempDir) -> serde_json::Value {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let config = dir.write(
        "botd.toml",
        &format!(
            "[network]\nhome = [\"{HOME}\"]\n\n[models]\ndir = \"{}\"\n",
            models.display()
        ),
    );
    let json = dir.join("analyze.json");
    sh(Command::new(env!("CARGO_BIN_EXE_botd"))
        .arg("analyze")
        .arg("--config")
        .arg(&config)
        .args(["--home", HOME, "--json"])
        .arg(&json)
        .arg(pcap));
    let text = fs::read_to_string(&json).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}
