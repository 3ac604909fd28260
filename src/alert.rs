//! Alert delivery: formats host alerts as syslog messages (RFC 5424 with structured data, or
//! RFC 3164 with `key=value` pairs) and JSON lines, and delivers them from one thread behind a
//! bounded queue, so that the packet path never waits for syslog.
//!
//! [`AlertSink::send`] never blocks: it applies a per-host rate limit, then `try_send`s into a
//! bounded queue; a full queue is counted, not waited on. The delivery thread bounds every write
//! with a timeout (a stalled syslog reader costs counted errors, never a hung thread), recreates the
//! connection when a write fails (rsyslog restarted) with a backoff, and retries the message once.
//! What was sent, dropped, suppressed, failed or reconnected is in [`AlertCounters`].
//!
//! # What the operator's rsyslog needs
//!
//! rsyslog's local socket input (`imuxsock`) parses with a "special parser" by default that only
//! knows the traditional format: an RFC 5424 message arrives with the APP-NAME `1` and its
//! structured data lost inside the text. Give botd a socket of its own with the special parser
//! off (the message then goes through rsyslog's normal RFC 5424/3164 parsers), no rate limit
//! (imuxsock's default drops messages past 200 in 5 s per process), and write botd's alerts with a
//! template that keeps the structured data (rsyslog's default file formats drop it).
//! `/etc/rsyslog.d/botd.conf`:
//!
//! ```text
//! # botd alerts: a local socket of botd's own, parsed as RFC 5424 (needs imuxsock, which Debian's
//! # /etc/rsyslog.conf loads with `module(load="imuxsock")`; add that line if yours does not).
//! input(type="imuxsock" Socket="/run/botd/log.sock" CreatePath="on"
//!       UseSpecialParser="off" RateLimit.Interval="0")
//! template(name="botd" type="string"
//!          string="%timereported:::date-rfc3339% %hostname% %app-name% %syslogseverity-text% %msgid% %structured-data% %msg%\n")
//! if $programname == "botd" then {
//!     action(type="omfile" file="/var/log/botd.log" template="botd")
//!     stop
//! }
//! ```
//!
//! and in botd's settings `syslog = "unix:/run/botd/log.sock"` (then `systemctl restart
//! rsyslog`; the filter is on the APP-NAME, `botd` unless the settings name another).
//! `/dev/log` is not the place for RFC 5424: on systemd hosts it belongs to journald, whose
//! parser expects the traditional format, so the structured data would not reach rsyslog as such
//! (not tested here: the tests drive rsyslog directly); on hosts where rsyslog owns `/dev/log`,
//! its `module(load="imuxsock")` line would need `SysSock.UseSpecialParser="off"`, which
//! changes how every local program's messages are parsed.
//! RFC 3164 (`format = "rfc3164"`) works on any socket, `/dev/log` included, but carries the
//! fields only as `key=value` text. Over the network, rsyslog's `imudp`/`imtcp` inputs parse RFC
//! 5424 as they are (`module(load="imudp") input(type="imudp" address="127.0.0.1" port="514")`);
//! botd frames TCP messages by octet counting (RFC 6587), which `imtcp` accepts by default.
//!
//! The structured data uses the SD-IDs `botd@32473` and `peer1@32473`, `peer2@32473`, ... (one
//! per top peer: RFC 5424 forbids repeating an SD-ID in a message). 32473 is the enterprise
//! number that RFC 5612 reserves for documentation and examples.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use syslog::{Facility, Formatter3164, Formatter5424, LogFormat, LoggerBackend, Severity};

/// A host's alert level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Clear,
    Yellow,
    Red,
}

/// A remote peer behind a verdict.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Peer {
    pub addr: IpAddr,
    pub port: u16,
    /// The IP protocol and the host's own port of a flow with the peer (the one whose Community
    /// ID the JSON alert carries); 0 when not known (a series of many connections).
    pub proto: u8,
    pub host_port: u16,
    pub flows: u64,
    pub bytes: u64,
    /// The name a DNS answer gave for the address, when the sensor saw one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One alert about one host.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Alert {
    pub host: IpAddr,
    /// The new level.
    pub level: Level,
    pub previous: Level,
    pub score: f64,
    /// Window index.
    pub window: u64,
    pub window_start_ns: u64,
    pub window_end_ns: u64,
    /// Models that flagged the host in this window.
    pub models: Vec<String>,
    /// In the window, over the flagging models (max).
    pub botnet_flows: u64,
    pub flows: u64,
    /// Windows so far in which the host was flagged.
    pub flagged_windows: u64,
    /// Top remote peers behind the verdict.
    pub peers: Vec<Peer>,
    /// The detectors that fired in the window, each with its figures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// The device behind the address (MAC, DHCP hostname, its other addresses), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<crate::devices::DeviceInfo>,
    /// What the sensor did about the host: `blocked` when `[response]` quarantined it.
    pub action: Action,
    /// The sensor that raised the alert (`[sensor] name`); the sink fills it when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sensor: String,
}

/// What the sensor did about an alert's host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Reported only.
    #[default]
    Allowed,
    /// Put in quarantine (`[response] mode = "enforce"`).
    Blocked,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allowed => "allowed",
            Action::Blocked => "blocked",
        }
    }
}

/// RFC 5424 structured data: SD-ID to parameters, the type of syslog 7's
/// `Formatter5424::format_5424_structured_data` (which the crate does not export by name).
pub type StructuredData = BTreeMap<String, BTreeMap<String, String>>;

/// The RFC 5424 MSGID of botd's alerts.
pub const MSGID: &str = "botd-alert";
/// The enterprise number of the SD-IDs unless `[alerts] enterprise_number` names another: RFC
/// 5612's number for documentation, until botd has one of its own (docs/alerts.md).
pub const DEFAULT_ENTERPRISE_NUMBER: u32 = 32473;
/// A write to syslog waits at most this long (a stalled reader costs this per message).
pub const SEND_TIMEOUT: Duration = Duration::from_millis(200);
/// A TCP connection to syslog waits at most this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// First wait before reconnecting after a failed connection; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(50);
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Clear => "clear",
            Level::Yellow => "yellow",
            Level::Red => "red",
        }
    }
    /// The syslog severity of an alert that moves a host to this level.
    pub fn severity(self) -> Severity {
        match self {
            Level::Red => Severity::LOG_ALERT,
            Level::Yellow => Severity::LOG_WARNING,
            Level::Clear => Severity::LOG_NOTICE,
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn rfc3339_ns(ns: u64) -> String {
    use ::time::format_description::well_known::Rfc3339;
    ::time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ns.to_string())
}

impl Alert {
    /// The free text of the alert, e.g. `host 10.0.0.5 is RED (was CLEAR; score 0.91, 40 of 55
    /// flows botnet in window 12 by argus-rf,ctu-rf; flagged in 3 windows; top peer 1.2.3.4:443)`.
    pub fn summary(&self) -> String {
        let device = match &self.device {
            Some(d) if !d.hostname.is_empty() => format!(" ({} {})", d.hostname, d.mac),
            Some(d) => format!(" ({})", d.mac),
            None => String::new(),
        };
        let mut s = format!(
            "host {}{device} is {} (was {}; score {:.2}, {} of {} flows botnet in window {}",
            self.host,
            self.level.as_str().to_uppercase(),
            self.previous.as_str().to_uppercase(),
            self.score,
            self.botnet_flows,
            self.flows,
            self.window
        );
        if !self.models.is_empty() {
            let _ = write!(s, " by {}", self.models.join(","));
        }
        let _ = write!(s, "; flagged in {} windows", self.flagged_windows);
        if let Some(p) = self.peers.first() {
            let _ = write!(s, "; top peer {}", SocketAddr::new(p.addr, p.port));
            if let Some(n) = &p.name {
                let _ = write!(s, " ({n})");
            }
        }
        s.push(')');
        if let Some(r) = self.rules.first() {
            let _ = write!(s, ": {r}");
        }
        s
    }

    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("host", self.host.to_string()),
            ("level", self.level.as_str().to_string()),
            ("previous", self.previous.as_str().to_string()),
            ("score", self.score.to_string()),
            ("window", self.window.to_string()),
            ("windowStart", rfc3339_ns(self.window_start_ns)),
            ("windowEnd", rfc3339_ns(self.window_end_ns)),
            ("models", self.models.join(",")),
            ("botnetFlows", self.botnet_flows.to_string()),
            ("flows", self.flows.to_string()),
            ("flaggedWindows", self.flagged_windows.to_string()),
            ("action", self.action.as_str().to_string()),
        ];
        if !self.sensor.is_empty() {
            fields.push(("sensor", self.sensor.clone()));
        }
        // The device, when botd knows it (DHCP, ARP, neighbour discovery).
        if let Some(d) = &self.device {
            fields.push(("mac", d.mac.clone()));
            if !d.hostname.is_empty() {
                fields.push(("hostname", d.hostname.clone()));
            }
        }
        fields
    }

    /// RFC 5424 structured data with enterprise number `pen`: `[botd@PEN host=.. level=..
    /// previous=.. score=.. window=.. windowStart=.. windowEnd=.. models=.. botnetFlows=..
    /// flows=.. flaggedWindows=.. action=.. sensor=..]` and one `[peerN@PEN addr=.. port=..
    /// flows=.. bytes=..]` per top peer (N from 1).
    pub fn structured_data(&self, pen: u32) -> StructuredData {
        let mut sd = StructuredData::new();
        sd.insert(
            format!("botd@{pen}"),
            self.fields()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        );
        for (i, p) in self.peers.iter().enumerate() {
            let params = [
                ("addr", p.addr.to_string()),
                ("port", p.port.to_string()),
                ("flows", p.flows.to_string()),
                ("bytes", p.bytes.to_string()),
                ("name", p.name.clone().unwrap_or_default()),
            ];
            sd.insert(
                format!("peer{}@{pen}", i + 1),
                params
                    .into_iter()
                    .filter(|(k, v)| *k != "name" || !v.is_empty())
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            );
        }
        sd
    }

    /// The summary followed by the fields as `key=value` pairs (values carry no spaces), then
    /// `peerN=addr:port peerNFlows=.. peerNBytes=..` per top peer: the RFC 3164 message.
    pub fn key_value_text(&self) -> String {
        let mut s = self.summary();
        for (k, v) in self.fields() {
            let v = if v.is_empty() { "-".to_string() } else { v };
            let _ = write!(s, " {k}={v}");
        }
        for (i, p) in self.peers.iter().enumerate() {
            let n = i + 1;
            let _ = write!(
                s,
                " peer{n}={} peer{n}Flows={} peer{n}Bytes={}",
                SocketAddr::new(p.addr, p.port),
                p.flows,
                p.bytes
            );
        }
        s
    }
}

/// Where syslog messages go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogTarget {
    /// A local socket (datagram, or stream where the socket is one), e.g. `/dev/log`.
    Unix(PathBuf),
    /// `host:port` (`[v6]:port` for IPv6).
    Udp(String),
    /// `host:port`; messages are framed by octet counting (RFC 6587).
    Tcp(String),
}

impl SyslogTarget {
    /// `unix:/dev/log`, `udp:127.0.0.1:514`, `tcp:loghost:601`, `tcp:[::1]:514`.
    pub fn parse(s: &str) -> Result<SyslogTarget, String> {
        let s = s.trim();
        let err =
            || format!("syslog target {s:?}: expected unix:PATH, udp:HOST:PORT or tcp:HOST:PORT");
        let (scheme, rest) = s.split_once(':').ok_or_else(err)?;
        let host_port = |rest: &str| -> Result<String, String> {
            let (host, port) = rest.rsplit_once(':').ok_or_else(err)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(err());
            }
            Ok(rest.to_string())
        };
        match scheme.to_ascii_lowercase().as_str() {
            "unix" if !rest.is_empty() => Ok(SyslogTarget::Unix(PathBuf::from(rest))),
            "udp" => host_port(rest).map(SyslogTarget::Udp),
            "tcp" => host_port(rest).map(SyslogTarget::Tcp),
            _ => Err(err()),
        }
    }
}

impl std::str::FromStr for SyslogTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SyslogTarget::parse(s)
    }
}

impl std::fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyslogTarget::Unix(p) => write!(f, "unix:{}", p.display()),
            SyslogTarget::Udp(a) => write!(f, "udp:{a}"),
            SyslogTarget::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// The syslog message format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// RFC 5424, MSGID `botd-alert`, fields as structured data.
    #[default]
    Rfc5424,
    /// RFC 3164 (BSD), fields as `key=value` text.
    Rfc3164,
    /// RFC 3164 framing, the EVE JSON record ([`crate::eve`]) as the message.
    Eve,
}

impl Format {
    /// `rfc5424` / `5424`, `rfc3164` / `3164` / `bsd`.
    pub fn parse(s: &str) -> Result<Format, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rfc5424" | "5424" => Ok(Format::Rfc5424),
            "rfc3164" | "3164" | "bsd" => Ok(Format::Rfc3164),
            "eve" => Ok(Format::Eve),
            _ => Err(format!(
                "syslog format {s:?}: expected rfc5424, rfc3164 or eve"
            )),
        }
    }
}

/// A syslog facility from its name: `daemon`, `local0` ... `local7`, `user`, `log_daemon`, ...
pub fn parse_facility(name: &str) -> Result<Facility, String> {
    name.trim().parse::<Facility>().map_err(|()| {
        format!("syslog facility {name:?}: expected e.g. daemon, user, security, local0..local7")
    })
}

/// How alerts are delivered.
#[derive(Clone, Debug)]
pub struct AlertSettings {
    /// `None`: no syslog (JSON lines only, or nothing).
    pub syslog: Option<SyslogTarget>,
    pub format: Format,
    pub facility: Facility,
    /// RFC 5424 APP-NAME / RFC 3164 tag: printable ASCII, no spaces, at most 48 characters.
    pub app_name: String,
    /// The HOSTNAME field; `None`: this machine's name (omitted in RFC 3164 on a local socket,
    /// where the syslog daemon adds it).
    pub hostname: Option<String>,
    /// Alerts waiting for the delivery thread; more are dropped and counted.
    pub queue_capacity: usize,
    /// One alert per host per this interval, unless the level changed.
    pub rate_limit_ns: u64,
    /// Append one JSON object per alert to this file (created if missing).
    pub json_file: Option<PathBuf>,
    /// Stamped on every alert that has no sensor name yet; "" = none.
    pub sensor: String,
    /// The enterprise number of the RFC 5424 SD-IDs.
    pub enterprise_number: u32,
    /// The Community ID seed of the JSON records.
    pub community_id_seed: u16,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            syslog: Some(SyslogTarget::Unix(PathBuf::from("/dev/log"))),
            format: Format::Rfc5424,
            facility: Facility::LOG_DAEMON,
            app_name: "botd".to_string(),
            hostname: None,
            queue_capacity: 1024,
            rate_limit_ns: 900 * 1_000_000_000,
            json_file: None,
            sensor: String::new(),
            enterprise_number: DEFAULT_ENTERPRISE_NUMBER,
            community_id_seed: 0,
        }
    }
}

/// What the sink did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AlertCounters {
    /// Alerts written to every configured output (syslog, JSON file).
    pub sent: u64,
    /// Alerts dropped by `send` because the queue was full.
    pub dropped_queue_full: u64,
    /// Alerts dropped by `send` as a repeat of the host's last level within the rate limit.
    pub suppressed_rate_limit: u64,
    /// Failed writes, after the retry: each alert that an output could not take counts once per
    /// output (syslog away, stalled reader past the send timeout, JSON file write error).
    pub send_errors: u64,
    /// Syslog connections made again after the first attempt (rsyslog restarted or came back).
    pub reconnects: u64,
    /// Alerts still queued when `shutdown`'s deadline passed.
    pub dropped_shutdown: u64,
}

/// What `send` did with an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    Queued,
    Suppressed,
    QueueFull,
}

#[derive(Default)]
struct Shared {
    sent: AtomicU64,
    dropped_queue_full: AtomicU64,
    suppressed_rate_limit: AtomicU64,
    send_errors: AtomicU64,
    reconnects: AtomicU64,
    dropped_shutdown: AtomicU64,
    /// Nanoseconds after `base` by which the thread must be done; `u64::MAX` for none.
    deadline: AtomicU64,
}

impl Shared {
    fn snapshot(&self) -> AlertCounters {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        AlertCounters {
            sent: l(&self.sent),
            dropped_queue_full: l(&self.dropped_queue_full),
            suppressed_rate_limit: l(&self.suppressed_rate_limit),
            send_errors: l(&self.send_errors),
            reconnects: l(&self.reconnects),
            dropped_shutdown: l(&self.dropped_shutdown),
        }
    }
}

fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// The last alert let through for a host.
struct HostState {
    level: Level,
    at_ns: u64,
}

/// Delivers alerts off the caller's thread; see the module docs.
pub struct AlertSink {
    tx: SyncSender<Alert>,
    thread: JoinHandle<()>,
    shared: Arc<Shared>,
    base: Instant,
    rate_limit_ns: u64,
    hosts: HashMap<IpAddr, HostState>,
    prune_at: usize,
    sensor: String,
}

impl AlertSink {
    /// Checks the settings, opens the JSON file and starts the delivery thread. An unreachable
    /// syslog is not an error here: the thread keeps trying and counts what it cannot deliver.
    pub fn start(settings: AlertSettings) -> Result<AlertSink, String> {
        let AlertSettings {
            syslog,
            format,
            facility,
            app_name,
            hostname,
            queue_capacity,
            rate_limit_ns,
            json_file,
            sensor,
            enterprise_number,
            community_id_seed,
        } = settings;
        let field_ok = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| (33..=126).contains(&b))
        };
        if !field_ok(&app_name, 48) {
            return Err(format!(
                "alert app name {app_name:?}: 1 to 48 printable ASCII characters, no spaces"
            ));
        }
        if let Some(h) = &hostname
            && !field_ok(h, 255)
        {
            return Err(format!(
                "alert hostname {h:?}: 1 to 255 printable ASCII characters, no spaces"
            ));
        }
        let json = match &json_file {
            None => None,
            Some(path) => Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("alert JSON file {}: {e}", path.display()))?,
            ),
        };
        // The 5424 HOSTNAME is always filled; the 3164 one only off the local socket.
        let local = matches!(syslog, Some(SyslogTarget::Unix(_)));
        let detected = || {
            Formatter3164::default()
                .hostname
                .filter(|h| field_ok(h, 255))
        };
        let hostname = match (hostname, format) {
            (Some(h), _) => Some(h),
            (None, Format::Rfc3164 | Format::Eve) if local => None,
            (None, _) => detected(),
        };
        let shared = Arc::new(Shared {
            deadline: AtomicU64::new(u64::MAX),
            ..Shared::default()
        });
        let base = Instant::now();
        let (tx, rx) = std::sync::mpsc::sync_channel(queue_capacity.max(1));
        let delivery = Delivery {
            target: syslog,
            format,
            enterprise_number,
            community_id_seed,
            facility,
            app_name,
            hostname,
            pid: std::process::id(),
            backend: None,
            attempted: false,
            next_attempt: base,
            backoff: MIN_BACKOFF,
            failing: false,
            json,
            json_failing: false,
            shared: shared.clone(),
            base,
            buf: Vec::with_capacity(1024),
        };
        let thread = std::thread::Builder::new()
            .name("botd-alerts".into())
            .spawn(move || delivery.run(rx))
            .map_err(|e| format!("alert delivery thread: {e}"))?;
        Ok(AlertSink {
            tx,
            thread,
            shared,
            base,
            rate_limit_ns,
            hosts: HashMap::new(),
            prune_at: 1024,
            sensor,
        })
    }

    /// Queues an alert for delivery without ever blocking. An alert is let through when its
    /// host's level differs from the last one let through (or from `alert.previous`), or when
    /// `rate_limit_ns` has passed since the host's last alert (by the caller's clock `now_ns`);
    /// otherwise it is suppressed and counted. A full queue drops the alert and counts it.
    pub fn send(&mut self, mut alert: Alert, now_ns: u64) -> SendOutcome {
        if alert.sensor.is_empty() {
            alert.sensor.clone_from(&self.sensor);
        }
        let host = alert.host;
        let level = alert.level;
        if let Some(last) = self.hosts.get(&host)
            && last.level == level
            && alert.previous == level
            && now_ns.saturating_sub(last.at_ns) < self.rate_limit_ns
        {
            bump(&self.shared.suppressed_rate_limit, 1);
            return SendOutcome::Suppressed;
        }
        match self.tx.try_send(alert) {
            Ok(()) => {
                self.hosts.insert(
                    host,
                    HostState {
                        level,
                        at_ns: now_ns,
                    },
                );
                if self.hosts.len() >= self.prune_at {
                    // Entries older than the rate limit decide nothing any more.
                    let limit = self.rate_limit_ns;
                    self.hosts
                        .retain(|_, s| now_ns.saturating_sub(s.at_ns) < limit);
                    self.prune_at = (self.hosts.len() * 2).max(1024);
                }
                SendOutcome::Queued
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                bump(&self.shared.dropped_queue_full, 1);
                SendOutcome::QueueFull
            }
        }
    }

    /// The counters so far (updated by the delivery thread as it goes).
    pub fn counters(&self) -> AlertCounters {
        self.shared.snapshot()
    }

    /// Stops taking alerts, lets the thread deliver what is queued until `deadline` from now,
    /// and returns the final counters; returns by the deadline even if the thread is stuck (it
    /// is then left to finish on its own). Alerts still queued at the deadline are counted in
    /// `dropped_shutdown`.
    pub fn shutdown(self, deadline: Duration) -> AlertCounters {
        let end = Instant::now() + deadline;
        // The thread's own deadline comes a little earlier, so that it has counted everything
        // by the time this returns.
        let margin = (deadline / 10).min(Duration::from_millis(20));
        let at = (end - margin)
            .saturating_duration_since(self.base)
            .as_nanos();
        self.shared
            .deadline
            .store(u64::try_from(at).unwrap_or(u64::MAX - 1), Ordering::SeqCst);
        drop(self.tx);
        while !self.thread.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        if self.thread.is_finished() {
            let _ = self.thread.join();
        }
        self.shared.snapshot()
    }
}

/// The delivery thread's state.
struct Delivery {
    target: Option<SyslogTarget>,
    format: Format,
    enterprise_number: u32,
    community_id_seed: u16,
    facility: Facility,
    app_name: String,
    hostname: Option<String>,
    pid: u32,
    backend: Option<LoggerBackend>,
    /// A connection was tried before (later successes count as reconnects).
    attempted: bool,
    next_attempt: Instant,
    backoff: Duration,
    /// In a run of syslog failures (reported once on stderr, and its end too).
    failing: bool,
    json: Option<File>,
    json_failing: bool,
    shared: Arc<Shared>,
    base: Instant,
    buf: Vec<u8>,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Delivery {
    fn run(mut self, rx: Receiver<Alert>) {
        if self.target.is_some() {
            // Connect early, so a wrong target shows on stderr at start-up.
            let _ = self.connect(None);
        }
        while let Ok(alert) = rx.recv() {
            let deadline = self.deadline();
            if let Some(d) = deadline
                && Instant::now() >= d
            {
                let left = 1 + rx.try_iter().count() as u64;
                bump(&self.shared.dropped_shutdown, left);
                return;
            }
            self.deliver(&alert, deadline);
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.shared.deadline.load(Ordering::SeqCst) {
            u64::MAX => None,
            ns => Some(self.base + Duration::from_nanos(ns)),
        }
    }

    fn deliver(&mut self, alert: &Alert, deadline: Option<Instant>) {
        let mut ok = true;
        if self.json.is_some() {
            ok &= self.write_json(alert);
        }
        if self.target.is_some() {
            ok &= self.write_syslog(alert, deadline);
        }
        if ok {
            bump(&self.shared.sent, 1);
        }
    }

    fn write_json(&mut self, alert: &Alert) -> bool {
        let Some(file) = self.json.as_mut() else {
            return true;
        };
        let mut line = crate::eve::to_json(alert, self.community_id_seed);
        line.push(b'\n');
        // One write of the whole line to a file opened for appending: lines never interleave.
        match file.write_all(&line).and_then(|()| file.flush()) {
            Ok(()) => {
                self.json_failing = false;
                true
            }
            Err(e) => {
                if !self.json_failing {
                    eprintln!("botd: alert JSON file: {e}");
                    self.json_failing = true;
                }
                bump(&self.shared.send_errors, 1);
                false
            }
        }
    }

    /// Formats the alert into `self.buf`, framed for the current backend.
    fn format(&mut self, alert: &Alert) {
        self.buf.clear();
        if matches!(self.backend, Some(LoggerBackend::Tcp(_))) {
            // RFC 6587 octet counting: "LEN SP MSG"; the length is filled in below.
            self.buf.extend_from_slice(b"0000000000 ");
        }
        let start = self.buf.len();
        let severity = alert.level.severity();
        let _ = match self.format {
            Format::Rfc5424 => self.format_5424(alert, severity),
            Format::Rfc3164 | Format::Eve => {
                let f = Formatter3164 {
                    facility: self.facility,
                    hostname: self.hostname.clone(),
                    process: self.app_name.clone(),
                    pid: self.pid,
                };
                let msg = if self.format == Format::Eve {
                    // serde_json escapes every control character: the record stays one line.
                    String::from_utf8(crate::eve::to_json(alert, self.community_id_seed))
                        .unwrap_or_default()
                } else {
                    alert.key_value_text()
                };
                f.format(&mut self.buf, severity, msg).map_err(|_| ())
            }
        };
        if start > 0 {
            let msg = self.buf.get(start..).unwrap_or_default();
            let len = msg.len().to_string();
            let mut framed = Vec::with_capacity(self.buf.len());
            framed.extend_from_slice(len.as_bytes());
            framed.push(b' ');
            framed.extend_from_slice(msg);
            self.buf = framed;
        }
    }

    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG`. syslog 7's own
    /// `Formatter5424` takes the MSGID as a number; its structured-data writer (with the RFC's
    /// escaping) is used here.
    fn format_5424(&mut self, alert: &Alert, severity: Severity) -> Result<(), ()> {
        let f = Formatter5424 {
            facility: self.facility,
            hostname: self.hostname.clone(),
            process: self.app_name.clone(),
            pid: self.pid,
        };
        let now = ::time::OffsetDateTime::now_utc();
        let now = now
            .replace_nanosecond(now.nanosecond() / 1000 * 1000)
            .unwrap_or(now);
        let ts = now
            .format(&::time::format_description::well_known::Rfc3339)
            .map_err(|_| ())?;
        write!(
            self.buf,
            "<{}>1 {} {} {} {} {} {} {}",
            self.facility as u8 | severity as u8,
            ts,
            self.hostname.as_deref().unwrap_or("-"),
            self.app_name,
            self.pid,
            MSGID,
            f.format_5424_structured_data(alert.structured_data(self.enterprise_number)),
            alert.summary()
        )
        .map_err(|_| ())
    }

    fn write_syslog(&mut self, alert: &Alert, deadline: Option<Instant>) -> bool {
        if self.backend_dead() {
            self.backend = None;
        }
        if self.backend.is_none() && !self.connect(deadline) {
            return self.failed(None);
        }
        self.format(alert);
        match self.write_buf(deadline) {
            Ok(()) => self.succeeded(),
            Err(e) if is_timeout(&e) => {
                // A stalled reader: reconnecting would not help. A stream may hold part of the
                // message: start it afresh next time.
                if !matches!(self.backend, Some(LoggerBackend::Unix(_))) {
                    self.backend = None;
                }
                self.failed(Some(e))
            }
            Err(_) => {
                // The reader went away (rsyslog restarted): connect again and retry once.
                self.backend = None;
                self.next_attempt = Instant::now();
                if !self.connect(deadline) {
                    return self.failed(None);
                }
                self.format(alert);
                match self.write_buf(deadline) {
                    Ok(()) => self.succeeded(),
                    Err(e) => {
                        if !matches!(self.backend, Some(LoggerBackend::Unix(_))) || !is_timeout(&e)
                        {
                            self.backend = None;
                        }
                        self.failed(Some(e))
                    }
                }
            }
        }
    }

    fn succeeded(&mut self) -> bool {
        if self.failing {
            eprintln!(
                "botd: syslog {}: delivering alerts again",
                self.target_name()
            );
            self.failing = false;
        }
        true
    }

    fn failed(&mut self, e: Option<io::Error>) -> bool {
        bump(&self.shared.send_errors, 1);
        if !self.failing {
            if let Some(e) = e {
                eprintln!(
                    "botd: syslog {}: {e}; alerts are counted as send errors until it recovers",
                    self.target_name()
                );
            }
            self.failing = true;
        }
        false
    }

    fn target_name(&self) -> String {
        self.target
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    /// A TCP peer that closed its end (rsyslog restarted) is seen before writing into it, so that
    /// the first message after a restart is not lost in a half-closed connection.
    fn backend_dead(&self) -> bool {
        let Some(LoggerBackend::Tcp(w)) = &self.backend else {
            return false;
        };
        let s = w.get_ref();
        if s.set_nonblocking(true).is_err() {
            return true;
        }
        let r = s.peek(&mut [0u8; 1]);
        let dead = match r {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        };
        dead || s.set_nonblocking(false).is_err()
    }

    fn timeout(deadline: Option<Instant>) -> Duration {
        let t = match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(SEND_TIMEOUT),
            None => SEND_TIMEOUT,
        };
        t.max(Duration::from_millis(1))
    }

    fn write_buf(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        let timeout = Some(Self::timeout(deadline));
        let buf = &self.buf;
        match self.backend.as_mut() {
            None => Err(io::ErrorKind::NotConnected.into()),
            Some(LoggerBackend::Unix(s)) => {
                s.set_write_timeout(timeout)?;
                s.send(buf).map(drop)
            }
            Some(LoggerBackend::UnixStream(w)) => {
                // Messages on a local stream socket end with a NUL, as syslog's own backend has it.
                w.get_ref().set_write_timeout(timeout)?;
                w.write_all(buf)?;
                w.write_all(&[0])?;
                w.flush()
            }
            Some(LoggerBackend::Udp(s, addr)) => {
                s.set_write_timeout(timeout)?;
                s.send_to(buf, *addr).map(drop)
            }
            Some(LoggerBackend::Tcp(w)) => {
                w.get_ref().set_write_timeout(timeout)?;
                w.write_all(buf)?;
                w.flush()
            }
        }
    }

    /// Makes the syslog connection unless a backoff is running; counts reconnects.
    fn connect(&mut self, deadline: Option<Instant>) -> bool {
        let Some(target) = &self.target else {
            return false;
        };
        let now = Instant::now();
        if now < self.next_attempt {
            return false;
        }
        let timeout = match deadline {
            Some(d) => d.saturating_duration_since(now).min(CONNECT_TIMEOUT),
            None => CONNECT_TIMEOUT,
        };
        let result = open(target, timeout.max(Duration::from_millis(1)));
        let again = self.attempted;
        self.attempted = true;
        match result {
            Ok(b) => {
                self.backend = Some(b);
                self.backoff = MIN_BACKOFF;
                if again {
                    bump(&self.shared.reconnects, 1);
                }
                true
            }
            Err(e) => {
                if !self.failing {
                    eprintln!(
                        "botd: syslog {}: {e}; alerts are counted as send errors until it is back",
                        self.target_name()
                    );
                    self.failing = true;
                }
                self.next_attempt = now + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                false
            }
        }
    }
}

fn resolve(addr: &str) -> io::Result<Vec<SocketAddr>> {
    let v: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if v.is_empty() {
        return Err(no_address(addr));
    }
    Ok(v)
}

fn no_address(addr: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address"))
}

fn syslog_err(e: syslog::Error) -> io::Error {
    match e {
        syslog::Error::Io(e) | syslog::Error::Write(e) => e,
        syslog::Error::Initialization(e) => match e.downcast::<syslog::Error>() {
            Ok(inner) => syslog_err(*inner),
            Err(e) => io::Error::other(e.to_string()),
        },
    }
}

/// Opens a connection to the target (connect bounded by `timeout` for TCP).
fn open(target: &SyslogTarget, timeout: Duration) -> io::Result<LoggerBackend> {
    match target {
        SyslogTarget::Unix(path) => syslog::unix_custom((), path)
            .map(|l| l.backend)
            .map_err(syslog_err),
        SyslogTarget::Udp(addr) => {
            let server = *resolve(addr)?.first().ok_or_else(|| no_address(addr))?;
            let local = if server.is_ipv4() {
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
            } else {
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
            };
            let socket = UdpSocket::bind(local)?;
            Ok(LoggerBackend::Udp(socket, server))
        }
        SyslogTarget::Tcp(addr) => {
            let mut last = None;
            for a in resolve(addr)? {
                match TcpStream::connect_timeout(&a, timeout) {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        return Ok(LoggerBackend::Tcp(BufWriter::new(s)));
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| io::ErrorKind::NotFound.into()))
        }
    }
}
