//! A real rsyslogd for tests: each instance runs with a private config in a temporary directory
//! (a local socket, UDP and TCP on 127.0.0.1) and writes what it parsed out of each message to a
//! file, one `|`-separated line per message.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "botd-syslog-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An rsyslogd of the test's own, killed (and its directory removed) on drop, panics included.
pub struct Rsyslog {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub pidfile: PathBuf,
    pub out: PathBuf,
    pub sock: PathBuf,
    pub udp_port: u16,
    pub tcp_port: u16,
    pub child: Option<Child>,
    pub probes: u32,
}

impl Rsyslog {
    pub fn start(name: &str) -> Rsyslog {
        assert!(
            Path::new(RSYSLOGD).exists(),
            "{RSYSLOGD} is missing: these tests need Debian's rsyslog (apt-get install rsyslog; \
             tests/run.sh installs it)"
        );
        let dir = temp_dir(name);
        // Free ports, found by binding and letting go (rsyslog binds them a moment later).
        let udp_port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tcp_port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sock = dir.join("log.sock");
        let out = dir.join("out.log");
        let conf = dir.join("rsyslog.conf");
        // The imuxsock input is the one in src/alert.rs's operator snippet.
        let text = format!(
            r#"global(workDirectory="{dir}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{sock}" CreatePath="on" UseSpecialParser="off" RateLimit.Interval="0")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{udp_port}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}")
template(name="fields" type="string" string="%inputname%|%syslogfacility-text%|%syslogseverity-text%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
*.* action(type="omfile" file="{out}" template="fields")
"#,
            dir = dir.display(),
            sock = sock.display(),
            out = out.display(),
        );
        std::fs::write(&conf, text).unwrap();
        let mut r = Rsyslog {
            pidfile: dir.join("rsyslogd.pid"),
            dir,
            conf,
            out,
            sock,
            udp_port,
            tcp_port,
            child: None,
            probes: 0,
        };
        r.spawn();
        r
    }

    /// Starts the daemon and waits until each of its three inputs has passed a probe through.
    pub fn spawn(&mut self) {
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(&self.pidfile)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start {RSYSLOGD}: {e}: apt-get install rsyslog (tests/run.sh installs it)")
            });
        self.child = Some(child);
        self.probes += 1;
        let tag = format!("probe{}", self.probes);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                let _ = self
                    .child
                    .as_mut()
                    .unwrap()
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err);
                panic!("rsyslogd exited ({status}) at start: {err}");
            }
            let text = self.output();
            let seen = |input: &str| {
                text.lines()
                    .any(|l| l.starts_with(input) && l.contains(&format!("{tag}-{input}")))
            };
            if seen("imuxsock") && seen("imudp") && seen("imtcp") {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "rsyslogd not ready after 20 s; output so far:\n{text}"
            );
            let msg = |input: &str| format!("<14>botdtest: {tag}-{input}");
            if let Ok(s) = UnixDatagram::unbound() {
                let _ = s.send_to(msg("imuxsock").as_bytes(), &self.sock);
            }
            if let Ok(s) = UdpSocket::bind("127.0.0.1:0") {
                let _ = s.send_to(msg("imudp").as_bytes(), ("127.0.0.1", self.udp_port));
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.tcp_port)) {
                use std::io::Write;
                let _ = s.write_all(format!("{}\n", msg("imtcp")).as_bytes());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.pidfile);
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The parsed lines that satisfy `pred`, once there are `n` of them (10 s at most).
    pub fn wait_lines(&self, n: usize, pred: impl Fn(&Line) -> bool) -> Vec<Line> {
        let start = Instant::now();
        loop {
            let text = self.output();
            let lines: Vec<Line> = text.lines().filter_map(Line::parse).filter(&pred).collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "waited 10 s for {n} matching lines, found {}; rsyslog output:\n{text}",
                lines.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub type Sd = BTreeMap<String, BTreeMap<String, String>>;

/// One line of the test template: the fields rsyslog parsed out of a message.
#[derive(Debug)]
pub struct Line {
    pub input: String,
    pub facility: String,
    pub severity: String,
    pub hostname: String,
    pub app: String,
    pub procid: String,
    pub msgid: String,
    pub sd: Sd,
    pub msg: String,
}

impl Line {
    pub fn parse(l: &str) -> Option<Line> {
        let f: Vec<&str> = l.splitn(9, '|').collect();
        if f.len() < 9 {
            return None;
        }
        Some(Line {
            input: f[0].into(),
            facility: f[1].into(),
            severity: f[2].into(),
            hostname: f[3].into(),
            app: f[4].into(),
            procid: f[5].into(),
            msgid: f[6].into(),
            sd: parse_sd(f[7]).unwrap_or_else(|| panic!("bad structured data in {l:?}")),
            msg: f[8].trim_start().into(),
        })
    }
}

/// RFC 5424 STRUCTURED-DATA: `-` or `[id name="value" ...]...`, values with `\"`, `\\`, `\]`.
pub fn parse_sd(s: &str) -> Option<Sd> {
    let mut sd = Sd::new();
    if s == "-" {
        return Some(sd);
    }
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        if b[i] != '[' {
            return None;
        }
        i += 1;
        let mut id = String::new();
        while i < b.len() && b[i] != ' ' && b[i] != ']' {
            id.push(b[i]);
            i += 1;
        }
        let mut params = BTreeMap::new();
        while i < b.len() && b[i] == ' ' {
            i += 1;
            let mut name = String::new();
            while i < b.len() && b[i] != '=' {
                name.push(b[i]);
                i += 1;
            }
            if b.get(i + 1) != Some(&'"') {
                return None;
            }
            i += 2;
            let mut value = String::new();
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' && i + 1 < b.len() && matches!(b[i + 1], '"' | '\\' | ']') {
                    i += 1;
                }
                value.push(b[i]);
                i += 1;
            }
            i += 1;
            params.insert(name, value);
        }
        if b.get(i) != Some(&']') {
            return None;
        }
        i += 1;
        sd.insert(id, params);
    }
    Some(sd)
}
