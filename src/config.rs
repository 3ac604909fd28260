//! The TOML configuration, parsed and validated once into plain structs.
//!
//! Every section and key is optional; an absent one takes its default, and `Config::default()` is
//! exactly what `config/botd.toml` documents (a test holds the two together). Unknown keys are
//! errors, never silently ignored. Every error names the file and the key, and the line and
//! column whenever the key is in the file:
//!
//! ```text
//! config/botd.toml:12:15: flows.window_secs: invalid type: string "300", expected a non-negative integer
//! config/botd.toml:4:1: unknown key "windw_secs" in [flows]; expected one of capacity, window_secs, ...
//! config/botd.toml:3:24: network.home[2]: "192.168.1.0/33": prefix longer than 32
//! ```

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::engine::{EngineConfig, WindowConfig};
use crate::flow::{IndexKind, Nanos, TIMEOUT_CLASSES, TimeoutClass};

/// Where `botd` looks for its configuration when no path is given.
pub const DEFAULT_PATH: &str = "config/botd.toml";
/// Most flows `flows.capacity` may ask for (16 Mi).
pub const MAX_FLOW_CAPACITY: usize = 1 << 24;
/// Longest duration any `*_secs` key may hold (one year), so nanoseconds never overflow.
pub const MAX_SECS: u64 = 365 * 86_400;

const SEC: Nanos = 1_000_000_000;

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub capture: CaptureConfig,
    pub network: NetworkConfig,
    pub flows: FlowsConfig,
    pub models: ModelsConfig,
    pub scoring: ScoringConfig,
    pub alerts: AlertsConfig,
    pub privileges: PrivilegesConfig,
    pub state: StateConfig,
    pub rules: RulesConfig,
    pub intel: IntelConfig,
    pub sensor: SensorConfig,
    pub metrics: MetricsConfig,
    pub response: ResponseConfig,
}

/// `[capture]`: the live interface.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub interface: String,
    /// Bytes kept of each frame (64..=262144).
    pub snaplen: u32,
    pub promiscuous: bool,
    /// How long one read waits for a frame before the engine's clock is advanced (1..=10000).
    pub read_timeout_ms: u64,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interface: "eth0".into(),
            snaplen: 65_535,
            promiscuous: true,
            read_timeout_ms: 100,
        }
    }
}

/// `[network]`: which addresses are the protected LAN.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Home prefixes, IPv4 and IPv6; hosts inside them are scored and alerted on.
    pub home: Vec<Cidr>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        let v4 = |a, b, len| Cidr {
            addr: IpAddr::V4(Ipv4Addr::new(a, b, 0, 0)),
            len,
        };
        NetworkConfig {
            home: vec![
                v4(10, 0, 8),
                v4(172, 16, 12),
                v4(192, 168, 16),
                Cidr {
                    addr: IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)),
                    len: 7,
                },
            ],
        }
    }
}

impl NetworkConfig {
    /// Whether `ip` is inside one of the home prefixes.
    #[inline]
    pub fn is_home(&self, ip: IpAddr) -> bool {
        self.home.iter().any(|c| c.contains(ip))
    }
}

/// Seconds per flow timeout class, in the order of [`TimeoutClass`].
macro_rules! per_class_secs {
    ($(#[$doc:meta])* $name:ident = [$tcp:expr, $udp:expr, $icmp:expr, $other:expr]) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            pub tcp: u64,
            pub udp: u64,
            pub icmp: u64,
            pub other: u64,
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    tcp: $tcp,
                    udp: $udp,
                    icmp: $icmp,
                    other: $other,
                }
            }
        }

        impl $name {
            /// The values indexed by [`TimeoutClass`] (`[tcp, udp, icmp, other]`).
            pub fn by_class(&self) -> [u64; TIMEOUT_CLASSES] {
                let mut a = [0; TIMEOUT_CLASSES];
                *TimeoutClass::Tcp.pick_mut(&mut a) = self.tcp;
                *TimeoutClass::Udp.pick_mut(&mut a) = self.udp;
                *TimeoutClass::Icmp.pick_mut(&mut a) = self.icmp;
                *TimeoutClass::Other.pick_mut(&mut a) = self.other;
                a
            }
        }
    };
}

per_class_secs!(
    /// `flows.linger_secs`: how long a reported flow is remembered, per class.
    LingerSecs = [60, 30, 5, 30]
);
per_class_secs!(
    /// `flows.idle_timeout_secs`: idle timeout inside a record per class; 0 = none (Argus).
    IdleTimeoutSecs = [0, 0, 0, 0]
);

/// `[flows]`: the flow table and the windows.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsConfig {
    /// Most flows held at once, per open window.
    pub capacity: usize,
    pub window_secs: u64,
    pub overlap_secs: u64,
    pub status_interval_secs: u64,
    pub linger_secs: LingerSecs,
    pub idle_timeout_secs: IdleTimeoutSecs,
    pub fragment_capacity: usize,
    pub index: IndexKind,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        FlowsConfig {
            capacity: 65_536,
            window_secs: 300,
            overlap_secs: 150,
            status_interval_secs: 3600,
            linger_secs: LingerSecs::default(),
            idle_timeout_secs: IdleTimeoutSecs::default(),
            fragment_capacity: 4096,
            index: IndexKind::Hashbrown,
        }
    }
}

/// `[models]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Every `*.onnx` directly in it is loaded (not subfolders such as `unused/`).
    pub dir: PathBuf,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            dir: PathBuf::from("models"),
        }
    }
}

/// `[scoring]`: from flow probabilities to host levels.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringConfig {
    /// Smoothing factor of the per-host moving average, in (0, 1].
    pub alpha: f64,
    /// Score at or above which a host is red at once.
    pub red: f64,
    /// Score at or above which a host turns red after `red_windows` rising windows.
    pub red_rising: f64,
    pub red_windows: u32,
    /// Score below which a yellow host is cleared.
    pub yellow_clear: f64,
    /// Floor of the model value's denominator: a host with fewer scored flows in a window cannot
    /// reach a high value from one or two of them.
    pub min_flows: u32,
    pub history_windows: usize,
    pub max_hosts: usize,
    pub top_peers: usize,
    /// A clear host with no flow for this long is forgotten at a window close.
    pub host_idle_secs: u64,
    /// Level changes kept per host (the oldest go first).
    pub max_level_changes: usize,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            alpha: 0.3,
            red: 0.85,
            red_rising: 0.60,
            red_windows: 3,
            yellow_clear: 0.10,
            min_flows: 3,
            history_windows: 96,
            max_hosts: 4096,
            top_peers: 5,
            host_idle_secs: 86_400,
            max_level_changes: 64,
        }
    }
}

/// `[rules]`: the protocol detectors' thresholds (src/evidence.rs; docs/detection.md has the
/// data behind each default).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Detectors switched off, by name (for ablation or a known local exception).
    pub disable: Vec<String>,
    /// dga: distinct random-looking names that failed (NXDOMAIN) in a window, under at least
    /// half as many distinct domains.
    pub dga_failed_names: u32,
    /// dns-tunnel: characters (dots left out) below the parent domain that make a name long.
    pub tunnel_label_chars: u32,
    /// dns-tunnel: distinct long names under one parent domain in a window.
    pub tunnel_long_names: u32,
    /// dns-tunnel: TXT queries under one parent domain (of at least half as many names).
    pub tunnel_txt_queries: u32,
    /// dns-tunnel: NULL or private-type queries under one parent domain.
    pub tunnel_null_queries: u32,
    /// spam: distinct outside mail servers spoken SMTP to in a window.
    pub spam_servers: u32,
    /// spam: distinct outside addresses TCP port 25 was opened to in a window, answered or not.
    pub spam_port25_peers: u32,
    /// p2p: distinct unnamed outside peers on high ports with small exchanges in a window.
    pub p2p_peers: u32,
    /// p2p: most bytes per connection of a "small exchange".
    pub p2p_max_bytes: u32,
    /// Addresses named by DNS answers the sensor remembers (oldest forgotten first).
    pub dns_view_capacity: usize,
    /// Devices (MAC addresses) the sensor remembers (the one seen longest ago forgotten first).
    pub device_capacity: usize,
}

/// The detectors `[rules] disable` may name.
pub const DETECTORS: &[&str] = &[
    "models",
    "sweep",
    "lateral",
    "beacon",
    "intel",
    "dga",
    "dns-tunnel",
    "spam",
    "smtp-client",
    "irc",
    "miner",
    "raw-address",
    "p2p",
    "http-no-agent",
    "tcp-tunnel",
    "ddns",
    "ip-lookup",
    "slow-beacon",
    "exe-download",
    "plugin-content",
    "tls-cert",
    "host-profile",
    "fake-browser",
    "hash-name",
];

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            disable: Vec::new(),
            dga_failed_names: 8,
            tunnel_label_chars: 24,
            tunnel_long_names: 6,
            tunnel_txt_queries: 8,
            tunnel_null_queries: 3,
            spam_servers: 3,
            spam_port25_peers: 5,
            p2p_peers: 24,
            p2p_max_bytes: 2048,
            dns_view_capacity: 16_384,
            device_capacity: 1024,
        }
    }
}

impl RulesConfig {
    pub fn enabled(&self, detector: &str) -> bool {
        !self.disable.iter().any(|d| d == detector)
    }
}

/// `[sensor]`: who this sensor is, in every alert and metric (a fleet's central log tells its
/// gateways apart by it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensorConfig {
    /// The sensor's name; "" = this machine's host name.
    pub name: String,
    /// Community ID seed (flow records and JSON alerts); every sensor whose records are joined
    /// must use the same.
    pub community_id_seed: u16,
}

impl SensorConfig {
    /// The configured name, else the machine's host name, else `botd`.
    pub fn resolved_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "botd".to_string())
    }
}

/// `[response]` mode: what botd does about a host that turns red.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseMode {
    /// Alerts only.
    #[default]
    Off,
    /// Logs what it would block; nftables is left alone.
    DryRun,
    /// Puts red hosts in quarantine through nftables (`src/response.rs`).
    Enforce,
}

impl ResponseMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseMode::Off => "off",
            ResponseMode::DryRun => "dry-run",
            ResponseMode::Enforce => "enforce",
        }
    }
}

/// `[response]`: the opt-in quarantine of red hosts (README, Quarantine).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    pub mode: ResponseMode,
    /// A host's first block lasts this long.
    pub timeout_secs: u64,
    /// Each further block of the same host doubles its timeout, up to this.
    pub max_timeout_secs: u64,
    /// Addresses and prefixes never blocked.
    pub allow: Vec<Cidr>,
    /// The nft program.
    pub nft: PathBuf,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            mode: ResponseMode::Off,
            timeout_secs: 3600,
            max_timeout_secs: 7 * 86_400,
            allow: Vec::new(),
            nft: PathBuf::from("nft"),
        }
    }
}

/// `[intel]`: threat-intelligence feed files (docs/intel.md).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntelConfig {
    /// Folder of feed files; "" = no feeds.
    pub dir: PathBuf,
    /// Most entries over all feeds; a larger set is refused (the running one is kept).
    pub max_entries: usize,
    /// Most feed files.
    pub max_feeds: usize,
}

impl Default for IntelConfig {
    fn default() -> Self {
        IntelConfig {
            dir: PathBuf::new(),
            max_entries: 2_000_000,
            max_feeds: 64,
        }
    }
}

impl IntelConfig {
    /// The feed folder, `None` when off.
    pub fn dir(&self) -> Option<&Path> {
        non_empty(&self.dir)
    }
}

/// `[alerts]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub syslog: bool,
    pub syslog_target: SyslogTarget,
    pub syslog_format: SyslogFormat,
    pub facility: Facility,
    pub app_name: String,
    pub queue_capacity: usize,
    /// Least time between two alerts about the same host; 0 = no limit.
    pub rate_limit_secs: u64,
    /// EVE JSON alert file (one record per line); empty = off.
    pub json_file: PathBuf,
    /// The enterprise number in the RFC 5424 SD-IDs (`botd@N`, `peer1@N`, ...).
    pub enterprise_number: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            syslog: true,
            syslog_target: SyslogTarget::Unix(PathBuf::from("/dev/log")),
            syslog_format: SyslogFormat::Rfc5424,
            facility: Facility::Daemon,
            app_name: "botd".into(),
            queue_capacity: 1024,
            rate_limit_secs: 300,
            json_file: PathBuf::new(),
            enterprise_number: crate::alert::DEFAULT_ENTERPRISE_NUMBER,
        }
    }
}

impl AlertsConfig {
    /// The JSON-lines alert file, `None` when off.
    pub fn json_file(&self) -> Option<&Path> {
        non_empty(&self.json_file)
    }
}

/// `[privileges]`: whom to run as after the capture socket is open.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivilegesConfig {
    pub user: String,
    pub group: String,
    pub allow_root: bool,
}

impl Default for PrivilegesConfig {
    fn default() -> Self {
        PrivilegesConfig {
            user: "botd".into(),
            group: "botd".into(),
            allow_root: false,
        }
    }
}

/// `[state]`: the live host history file read by `botd report --state`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Empty = off.
    pub file: PathBuf,
    pub interval_secs: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            file: PathBuf::new(),
            interval_secs: 60,
        }
    }
}

impl StateConfig {
    /// The state file, `None` when off.
    pub fn file(&self) -> Option<&Path> {
        non_empty(&self.file)
    }
}

/// `[metrics]`: Prometheus metrics in a file for node_exporter's textfile collector
/// (`src/metrics.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// The `.prom` file; empty = off.
    pub textfile: PathBuf,
    pub interval_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            textfile: PathBuf::new(),
            interval_secs: 15,
        }
    }
}

impl MetricsConfig {
    /// The metrics file, `None` when off.
    pub fn textfile(&self) -> Option<&Path> {
        non_empty(&self.textfile)
    }
}

fn non_empty(p: &Path) -> Option<&Path> {
    (!p.as_os_str().is_empty()).then_some(p)
}

// ---------------------------------------------------------------------------------------------
// Value types

/// An IPv4 or IPv6 prefix: an address and a prefix length, host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// A prefix; fails when `len` is longer than the address or host bits are set.
    pub fn new(addr: IpAddr, len: u8) -> Result<Cidr, String> {
        let max = max_len(addr);
        if len > max {
            return Err(format!("prefix longer than {max}"));
        }
        let c = Cidr { addr, len };
        let network = c.network();
        if network != addr {
            return Err(format!(
                "host bits set (did you mean {}?)",
                Cidr { addr: network, len }
            ));
        }
        Ok(c)
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `ip` is inside the prefix (an IPv4 address is never inside an IPv6 prefix).
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.len);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.len);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(self.len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(self.len))),
        }
    }
}

fn max_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

#[inline]
fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

#[inline]
fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    /// `ADDR/LEN`; a bare address is a single host (`/32` or `/128`).
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 or IPv6 address"))?;
        let len = match len {
            None => max_len(addr),
            Some(l) => {
                if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("prefix length {l:?} is not a number"));
                }
                match l.parse::<u8>() {
                    Ok(n) => n,
                    Err(_) => return Err(format!("prefix longer than {}", max_len(addr))),
                }
            }
        };
        Cidr::new(addr, len)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
    }
}

/// Where syslog alerts go: `unix:PATH`, `udp:HOST:PORT` or `tcp:HOST:PORT` (IPv6 in brackets).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SyslogTarget {
    Unix(PathBuf),
    Udp { host: String, port: u16 },
    Tcp { host: String, port: u16 },
}

impl FromStr for SyslogTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<SyslogTarget, String> {
        let expected = "expected unix:PATH, udp:HOST:PORT or tcp:HOST:PORT";
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(format!("{s:?}: no scheme; {expected}"));
        };
        match scheme {
            "unix" => {
                if !rest.starts_with('/') {
                    return Err(format!("{s:?}: the socket path must be absolute"));
                }
                Ok(SyslogTarget::Unix(PathBuf::from(rest)))
            }
            "udp" | "tcp" => {
                let (host, port) = if let Some(r) = rest.strip_prefix('[') {
                    let Some((host, port)) = r.split_once(']') else {
                        return Err(format!("{s:?}: unclosed '[' around the IPv6 address"));
                    };
                    if host.parse::<Ipv6Addr>().is_err() {
                        return Err(format!("{s:?}: {host:?} is not an IPv6 address"));
                    }
                    let Some(port) = port.strip_prefix(':') else {
                        return Err(format!("{s:?}: missing :PORT"));
                    };
                    (host, port)
                } else {
                    let Some((host, port)) = rest.rsplit_once(':') else {
                        return Err(format!("{s:?}: missing :PORT"));
                    };
                    if host.contains(':') {
                        return Err(format!(
                            "{s:?}: write an IPv6 address in brackets, e.g. {scheme}:[::1]:514"
                        ));
                    }
                    (host, port)
                };
                if host.is_empty() || host.chars().any(char::is_whitespace) {
                    return Err(format!("{s:?}: missing or invalid host"));
                }
                let port = match port.parse::<u16>() {
                    Ok(p) if p > 0 => p,
                    _ => return Err(format!("{s:?}: port {port:?} is not in 1..=65535")),
                };
                let host = host.to_owned();
                Ok(if scheme == "udp" {
                    SyslogTarget::Udp { host, port }
                } else {
                    SyslogTarget::Tcp { host, port }
                })
            }
            _ => Err(format!("{s:?}: unknown scheme {scheme:?}; {expected}")),
        }
    }
}

impl fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host_port = |f: &mut fmt::Formatter<'_>, scheme: &str, host: &str, port: u16| {
            if host.contains(':') {
                write!(f, "{scheme}:[{host}]:{port}")
            } else {
                write!(f, "{scheme}:{host}:{port}")
            }
        };
        match self {
            SyslogTarget::Unix(p) => write!(f, "unix:{}", p.display()),
            SyslogTarget::Udp { host, port } => host_port(f, "udp", host, *port),
            SyslogTarget::Tcp { host, port } => host_port(f, "tcp", host, *port),
        }
    }
}

impl<'de> Deserialize<'de> for SyslogTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The syslog message format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    Rfc5424,
    Rfc3164,
    /// The EVE JSON record as the message of an RFC 3164 line (what Suricata's EVE syslog
    /// output sends), for receivers that read JSON but parse RFC 5424 badly.
    Eve,
}

impl SyslogFormat {
    pub fn name(self) -> &'static str {
        match self {
            SyslogFormat::Rfc5424 => "rfc5424",
            SyslogFormat::Rfc3164 => "rfc3164",
            SyslogFormat::Eve => "eve",
        }
    }
}

/// A syslog facility (RFC 5424 §6.2.1); `code()` is its numeric value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Kern,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    pub const ALL: [Facility; 20] = [
        Facility::Kern,
        Facility::User,
        Facility::Mail,
        Facility::Daemon,
        Facility::Auth,
        Facility::Syslog,
        Facility::Lpr,
        Facility::News,
        Facility::Uucp,
        Facility::Cron,
        Facility::Authpriv,
        Facility::Ftp,
        Facility::Local0,
        Facility::Local1,
        Facility::Local2,
        Facility::Local3,
        Facility::Local4,
        Facility::Local5,
        Facility::Local6,
        Facility::Local7,
    ];

    /// The facility number (kern 0 ... ftp 11, local0 16 ... local7 23).
    pub fn code(self) -> u8 {
        let i = self as u8;
        if i >= Facility::Local0 as u8 {
            i + 4
        } else {
            i
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Facility::Kern => "kern",
            Facility::User => "user",
            Facility::Mail => "mail",
            Facility::Daemon => "daemon",
            Facility::Auth => "auth",
            Facility::Syslog => "syslog",
            Facility::Lpr => "lpr",
            Facility::News => "news",
            Facility::Uucp => "uucp",
            Facility::Cron => "cron",
            Facility::Authpriv => "authpriv",
            Facility::Ftp => "ftp",
            Facility::Local0 => "local0",
            Facility::Local1 => "local1",
            Facility::Local2 => "local2",
            Facility::Local3 => "local3",
            Facility::Local4 => "local4",
            Facility::Local5 => "local5",
            Facility::Local6 => "local6",
            Facility::Local7 => "local7",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// What kind of problem a [`Problem`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// The file could not be read.
    Io,
    /// Not valid TOML.
    Syntax,
    /// A key botd does not know (a typo, usually).
    UnknownKey,
    /// A value of the wrong TOML type.
    Type,
    /// A value of the right type that is not allowed.
    Invalid,
}

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// Dotted key path, e.g. `flows.window_secs` or `network.home[2]`.
    pub key: Option<String>,
    /// 1-based line and column (in characters) in the file, when known.
    pub line_col: Option<(usize, usize)>,
    pub message: String,
}

/// Why a configuration was refused: the file and every problem found (syntax and type errors
/// stop at the first; validation reports them all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// The first problem (there is always one; an empty list, which botd never builds, reads as
    /// an invalid value with no message).
    pub fn first(&self) -> &Problem {
        static NONE: Problem = Problem {
            kind: ProblemKind::Invalid,
            key: None,
            line_col: None,
            message: String::new(),
        };
        self.problems.first().unwrap_or(&NONE)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.path.display())?;
            if let Some((line, col)) = p.line_col {
                write!(f, ":{line}:{col}")?;
            }
            match (&p.key, p.kind) {
                (Some(key), k) if k != ProblemKind::UnknownKey => {
                    write!(f, ": {key}: {}", p.message)?
                }
                _ => write!(f, ": {}", p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A validation failure before it is placed in a file: the key, keys that may be blamed instead
/// when the first is absent from the file, and what is wrong.
struct Invalid {
    key: String,
    also: &'static [&'static str],
    message: String,
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation

impl Config {
    /// Parses and validates `text`; `path` only names the file in error messages.
    pub fn from_str(text: &str, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let error = |problem: Problem| ConfigError {
            path: path.to_owned(),
            problems: vec![problem],
        };
        let doc = DeTable::parse(text).map_err(|e| {
            let mut message = e.message().trim_end().to_owned();
            let start = e.span().map(|s| s.start);
            if let (Some(start), "duplicate key") = (start, message.as_str()) {
                let key: String = text[start.min(text.len())..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !"=]".contains(*c))
                    .collect();
                if !key.is_empty() {
                    message = format!("duplicate key {key}");
                }
            }
            error(Problem {
                kind: ProblemKind::Syntax,
                key: None,
                line_col: start.map(|s| line_col(text, s)),
                message,
            })
        })?;
        let spans = Spans::of(&doc);
        // Serde would read a table-shaped section from an array, field by field in order
        // (`linger_secs = [60, 30, 5, 30]`); the file format has only tables there.
        for table in TABLE_KEYS {
            if let Some(entry) = spans.entries.iter().find(|e| e.path == *table)
                && entry.is_array
            {
                return Err(error(Problem {
                    kind: ProblemKind::Type,
                    key: Some((*table).to_owned()),
                    line_col: Some(line_col(text, entry.value.start)),
                    message: "invalid type: array, expected a table".into(),
                }));
            }
        }
        let config = Config::deserialize(toml::de::Deserializer::from(doc))
            .map_err(|e| error(spans.de_problem(text, &e)))?;
        let invalid = config.check();
        if invalid.is_empty() {
            return Ok(config);
        }
        Err(ConfigError {
            path: path.to_owned(),
            problems: invalid
                .into_iter()
                .map(|inv| {
                    let at = std::iter::once(inv.key.as_str())
                        .chain(inv.also.iter().copied())
                        .find_map(|k| spans.value_start(k));
                    Problem {
                        kind: ProblemKind::Invalid,
                        key: Some(inv.key),
                        line_col: at.map(|s| line_col(text, s)),
                        message: inv.message,
                    }
                })
                .collect(),
        })
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            problems: vec![Problem {
                kind: ProblemKind::Io,
                key: None,
                line_col: None,
                message: format!("cannot read: {e}"),
            }],
        })?;
        Config::from_str(&text, path)
    }

    /// Checks the values (types were checked by parsing); every problem names its key.
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        let invalid = self.check();
        if invalid.is_empty() {
            return Ok(());
        }
        Err(invalid
            .into_iter()
            .map(|inv| Problem {
                kind: ProblemKind::Invalid,
                key: Some(inv.key),
                line_col: None,
                message: inv.message,
            })
            .collect())
    }

    fn check(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        let mut bad = |key: &str, also: &'static [&'static str], message: String| {
            out.push(Invalid {
                key: key.to_owned(),
                also,
                message,
            })
        };

        let c = &self.capture;
        if c.interface.is_empty() {
            bad("capture.interface", &[], "must not be empty".into());
        } else if c.interface.len() > 15
            || c.interface.contains('/')
            || c.interface.chars().any(char::is_whitespace)
        {
            bad(
                "capture.interface",
                &[],
                format!(
                    "{:?} is not an interface name (at most 15 bytes, no '/' or spaces)",
                    c.interface
                ),
            );
        }
        if !(64..=262_144).contains(&c.snaplen) {
            bad(
                "capture.snaplen",
                &[],
                format!("{} is not in 64..=262144", c.snaplen),
            );
        }
        if !(1..=10_000).contains(&c.read_timeout_ms) {
            bad(
                "capture.read_timeout_ms",
                &[],
                format!("{} is not in 1..=10000", c.read_timeout_ms),
            );
        }

        if self.network.home.is_empty() {
            bad(
                "network.home",
                &[],
                "is empty; list at least one home prefix".into(),
            );
        }

        let f = &self.flows;
        if !(1..=MAX_FLOW_CAPACITY).contains(&f.capacity) {
            bad(
                "flows.capacity",
                &[],
                format!("{} is not in 1..={MAX_FLOW_CAPACITY}", f.capacity),
            );
        }
        let mut secs = |key: &str, v: u64, min: u64| {
            if v < min || v > MAX_SECS {
                bad(key, &[], format!("{v} is not in {min}..={MAX_SECS}"));
            }
        };
        secs("flows.window_secs", f.window_secs, 1);
        secs("flows.overlap_secs", f.overlap_secs, 0);
        secs("flows.status_interval_secs", f.status_interval_secs, 1);
        for (name, v) in ["tcp", "udp", "icmp", "other"]
            .iter()
            .zip(f.linger_secs.by_class())
        {
            secs(&format!("flows.linger_secs.{name}"), v, 0);
        }
        for (name, v) in ["tcp", "udp", "icmp", "other"]
            .iter()
            .zip(f.idle_timeout_secs.by_class())
        {
            secs(&format!("flows.idle_timeout_secs.{name}"), v, 0);
        }
        secs("alerts.rate_limit_secs", self.alerts.rate_limit_secs, 0);
        secs("state.interval_secs", self.state.interval_secs, 1);
        if f.window_secs > 0 && f.overlap_secs >= f.window_secs {
            bad(
                "flows.overlap_secs",
                &["flows.window_secs"],
                format!(
                    "{} must be shorter than flows.window_secs ({})",
                    f.overlap_secs, f.window_secs
                ),
            );
        }
        if !(1..=1 << 20).contains(&f.fragment_capacity) {
            bad(
                "flows.fragment_capacity",
                &[],
                format!("{} is not in 1..=1048576", f.fragment_capacity),
            );
        }

        if self.models.dir.as_os_str().is_empty() {
            bad("models.dir", &[], "must not be empty".into());
        }

        let r = &self.rules;
        for d in &r.disable {
            if !DETECTORS.contains(&d.as_str()) {
                bad(
                    "rules.disable",
                    &[],
                    format!("{d:?} is not a detector ({})", DETECTORS.join(", ")),
                );
            }
        }
        for (key, v, min, max) in [
            ("rules.dga_failed_names", r.dga_failed_names, 2, 1000),
            ("rules.tunnel_label_chars", r.tunnel_label_chars, 8, 250),
            ("rules.tunnel_long_names", r.tunnel_long_names, 2, 1000),
            ("rules.tunnel_txt_queries", r.tunnel_txt_queries, 2, 1000),
            ("rules.tunnel_null_queries", r.tunnel_null_queries, 1, 1000),
            ("rules.spam_servers", r.spam_servers, 2, 1000),
            ("rules.spam_port25_peers", r.spam_port25_peers, 2, 1000),
            ("rules.p2p_peers", r.p2p_peers, 4, 1000),
            ("rules.p2p_max_bytes", r.p2p_max_bytes, 64, 1 << 24),
        ] {
            if !(min..=max).contains(&v) {
                bad(key, &[], format!("{v} is not in {min}..={max}"));
            }
        }
        for (key, v) in [
            ("rules.dns_view_capacity", r.dns_view_capacity),
            ("rules.device_capacity", r.device_capacity),
        ] {
            if !(1..=1 << 24).contains(&v) {
                bad(key, &[], format!("{v} is not in 1..=16777216"));
            }
        }
        let i = &self.intel;
        if !(1..=1 << 28).contains(&i.max_entries) {
            bad(
                "intel.max_entries",
                &[],
                format!("{} is not in 1..=268435456", i.max_entries),
            );
        }
        if !(1..=4096).contains(&i.max_feeds) {
            bad(
                "intel.max_feeds",
                &[],
                format!("{} is not in 1..=4096", i.max_feeds),
            );
        }

        if self.alerts.enterprise_number == 0 {
            bad(
                "alerts.enterprise_number",
                &[],
                "0 is reserved: an IANA private enterprise number is 1 or more".to_string(),
            );
        }
        let m = &self.metrics;
        if !(1..=3600).contains(&m.interval_secs) {
            bad(
                "metrics.interval_secs",
                &[],
                format!("{} is not in 1..=3600", m.interval_secs),
            );
        }
        // node_exporter's textfile collector reads only `*.prom`: any other name is never read.
        if m.textfile()
            .is_some_and(|p| p.extension() != Some("prom".as_ref()))
        {
            bad(
                "metrics.textfile",
                &[],
                format!(
                    "{}: must end in .prom (the textfile collector reads only *.prom)",
                    m.textfile.display()
                ),
            );
        }

        let n = &self.sensor.name;
        if n.len() > 64 || !n.bytes().all(|b| (33..=126).contains(&b)) {
            bad(
                "sensor.name",
                &[],
                format!("{n:?}: at most 64 printable ASCII characters, no spaces"),
            );
        }

        let r = &self.response;
        if !(1..=MAX_SECS).contains(&r.timeout_secs) {
            bad(
                "response.timeout_secs",
                &[],
                format!("{} is not in 1..={MAX_SECS}", r.timeout_secs),
            );
        }
        if r.max_timeout_secs < r.timeout_secs || r.max_timeout_secs > MAX_SECS {
            bad(
                "response.max_timeout_secs",
                &["response.timeout_secs"],
                format!(
                    "{} is not in timeout_secs ({})..={MAX_SECS}",
                    r.max_timeout_secs, r.timeout_secs
                ),
            );
        }
        if r.nft.as_os_str().is_empty() {
            bad("response.nft", &[], "must not be empty".into());
        }

        let s = &self.scoring;
        if !(s.alpha > 0.0 && s.alpha <= 1.0) {
            bad(
                "scoring.alpha",
                &[],
                format!("{} is not in (0, 1]", s.alpha),
            );
        }
        let mut unit_ok = true;
        for (key, v) in [
            ("scoring.red", s.red),
            ("scoring.red_rising", s.red_rising),
            ("scoring.yellow_clear", s.yellow_clear),
        ] {
            if !(0.0..=1.0).contains(&v) {
                unit_ok = false;
                bad(key, &[], format!("{v} is not in [0, 1]"));
            }
        }
        if unit_ok {
            if s.red_rising > s.red {
                bad(
                    "scoring.red_rising",
                    &["scoring.red"],
                    format!("{} must not be above scoring.red ({})", s.red_rising, s.red),
                );
            }
            if s.yellow_clear >= s.red_rising {
                bad(
                    "scoring.yellow_clear",
                    &["scoring.red_rising"],
                    format!(
                        "{} must be below scoring.red_rising ({})",
                        s.yellow_clear, s.red_rising
                    ),
                );
            }
        }
        if s.red_windows < 1 {
            bad("scoring.red_windows", &[], "must be at least 1".into());
        }
        if s.min_flows < 1 {
            bad("scoring.min_flows", &[], "must be at least 1".into());
        }
        if s.history_windows < s.red_windows as usize || s.history_windows > 1 << 16 {
            bad(
                "scoring.history_windows",
                &["scoring.red_windows"],
                format!(
                    "{} is not in scoring.red_windows ({})..=65536",
                    s.history_windows, s.red_windows
                ),
            );
        }
        if !(1..=1 << 24).contains(&s.max_hosts) {
            bad(
                "scoring.max_hosts",
                &[],
                format!("{} is not in 1..=16777216", s.max_hosts),
            );
        }
        if s.top_peers > 100 {
            bad(
                "scoring.top_peers",
                &[],
                format!("{} is not in 0..=100", s.top_peers),
            );
        }
        if !(60..=31_536_000).contains(&s.host_idle_secs) {
            bad(
                "scoring.host_idle_secs",
                &[],
                format!("{} is not in 60..=31536000", s.host_idle_secs),
            );
        }
        if !(1..=65_536).contains(&s.max_level_changes) {
            bad(
                "scoring.max_level_changes",
                &[],
                format!("{} is not in 1..=65536", s.max_level_changes),
            );
        }

        let a = &self.alerts;
        if a.app_name.is_empty()
            || a.app_name.len() > 48
            || !a.app_name.bytes().all(|b| b.is_ascii_graphic())
        {
            bad(
                "alerts.app_name",
                &[],
                format!(
                    "{:?} must be 1 to 48 printable ASCII characters without spaces",
                    a.app_name
                ),
            );
        }
        if !(1..=1 << 20).contains(&a.queue_capacity) {
            bad(
                "alerts.queue_capacity",
                &[],
                format!("{} is not in 1..=1048576", a.queue_capacity),
            );
        }

        let p = &self.privileges;
        if p.user.is_empty() {
            bad("privileges.user", &[], "must not be empty".into());
        }
        if p.group.is_empty() {
            bad("privileges.group", &[], "must not be empty".into());
        }
        if (p.user == "root" || p.user == "0") && !p.allow_root {
            bad(
                "privileges.user",
                &[],
                format!(
                    "{:?} keeps root privileges; set privileges.allow_root = true to allow it",
                    p.user
                ),
            );
        }
        out
    }

    /// The engine's settings from `[flows]`.
    // Spelled with `..default()` so that a field added to EngineConfig keeps its default here.
    #[allow(clippy::needless_update)]
    pub fn engine_config(&self) -> EngineConfig {
        let f = &self.flows;
        let ns = |s: u64| s.saturating_mul(SEC);
        EngineConfig {
            flow_capacity: f.capacity,
            window: WindowConfig::from_secs(f.window_secs as f64, f.overlap_secs as f64),
            status_interval_ns: ns(f.status_interval_secs),
            linger_ns: f.linger_secs.by_class().map(ns),
            idle_ns: f
                .idle_timeout_secs
                .by_class()
                .map(|s| (s > 0).then(|| ns(s))),
            fragment_capacity: f.fragment_capacity,
            flow_index: f.index,
            ..EngineConfig::default()
        }
    }

    /// A few lines saying what this configuration does.
    pub fn summary(&self) -> String {
        let c = &self.capture;
        let f = &self.flows;
        let a = &self.alerts;
        let home: Vec<String> = self.network.home.iter().map(Cidr::to_string).collect();
        let syslog = if a.syslog {
            format!(
                "syslog {} ({}, facility {}, app {})",
                a.syslog_target,
                a.syslog_format.name(),
                a.facility.name(),
                a.app_name
            )
        } else {
            "syslog off".to_owned()
        };
        let json = match a.json_file() {
            Some(p) => format!("EVE JSON to {}", p.display()),
            None => "EVE JSON off".to_owned(),
        };
        let metrics = match self.metrics.textfile() {
            Some(p) => format!("{} every {} s", p.display(), self.metrics.interval_secs),
            None => "off".to_owned(),
        };
        let response = match self.response.mode {
            ResponseMode::Off => "off (alerts only)".to_owned(),
            mode => format!(
                "{}: nftables table inet botd, {} s first block",
                mode.as_str(),
                self.response.timeout_secs
            ),
        };
        let state = match self.state.file() {
            Some(p) => format!("{} every {} s", p.display(), self.state.interval_secs),
            None => "off".to_owned(),
        };
        let intel = match self.intel.dir() {
            Some(p) => format!("feeds in {}", p.display()),
            None => "off".to_owned(),
        };
        let rules = if self.rules.disable.is_empty() {
            "every detector on".to_owned()
        } else {
            format!("off: {}", self.rules.disable.join(", "))
        };
        format!(
            "  interface {} (snaplen {}, {})\n  home      {}\n  windows   {} s, a new one every {} s\n  \
             flows     capacity {} per window\n  models    {}/*.onnx\n  rules     {rules}\n  \
             intel     {intel}\n  alerts    {syslog}; {json}\n  \
             metrics   {metrics}\n  response  {response}\n  \
             state     {state}\n  run as    {}:{}",
            c.interface,
            c.snaplen,
            if c.promiscuous {
                "promiscuous"
            } else {
                "not promiscuous"
            },
            home.join(", "),
            f.window_secs,
            f.window_secs.saturating_sub(f.overlap_secs),
            f.capacity,
            self.models.dir.display(),
            self.privileges.user,
            self.privileges.group,
        )
    }
}

/// `botd check-config [PATH]`: loads and validates the configuration (by default
/// `config/botd.toml`; when that does not exist the built-in defaults apply) and returns a short
/// summary, or every problem found.
pub fn check_config_command(path: Option<&Path>) -> Result<String, String> {
    let (config, header) = match path {
        Some(p) => (
            Config::load(p).map_err(|e| e.to_string())?,
            p.display().to_string(),
        ),
        None => {
            let p = Path::new(DEFAULT_PATH);
            match std::fs::metadata(p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                    Config::default(),
                    format!("built-in defaults ({DEFAULT_PATH} not found)"),
                ),
                _ => (
                    Config::load(p).map_err(|e| e.to_string())?,
                    DEFAULT_PATH.into(),
                ),
            }
        }
    };
    Ok(format!("{header}: OK\n{}", config.summary()))
}

// ---------------------------------------------------------------------------------------------
// Locations

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The keys whose values are tables.
const TABLE_KEYS: &[&str] = &[
    "capture",
    "network",
    "flows",
    "flows.linger_secs",
    "flows.idle_timeout_secs",
    "models",
    "scoring",
    "alerts",
    "privileges",
    "state",
    "rules",
    "intel",
    "sensor",
    "metrics",
    "response",
];

/// Every key of a parsed document with the spans of its key and value.
struct Spans {
    entries: Vec<SpanEntry>,
}

struct SpanEntry {
    path: String,
    key: Range<usize>,
    value: Range<usize>,
    /// The value, when it is a string inside an array (to tell which element an error is about).
    element: Option<String>,
    is_array: bool,
}

impl Spans {
    fn of(doc: &Spanned<DeTable<'_>>) -> Spans {
        let mut entries = Vec::new();
        collect_table(doc.get_ref(), "", &mut entries);
        Spans { entries }
    }

    fn value_start(&self, path: &str) -> Option<usize> {
        self.entries
            .iter()
            .find(|e| e.path == path)
            .map(|e| e.value.start)
    }

    /// The innermost entry whose key or value covers `offset`.
    fn at(&self, offset: usize) -> Option<&SpanEntry> {
        let covers = |r: &Range<usize>| r.start <= offset && offset < r.end.max(r.start + 1);
        let mut best: Option<(&SpanEntry, usize)> = None;
        for e in &self.entries {
            for r in [&e.key, &e.value] {
                if covers(r) && best.is_none_or(|(_, len)| r.len() < len) {
                    best = Some((e, r.len()));
                }
            }
        }
        best.map(|(e, _)| e)
    }

    /// A deserialization error placed in the file and explained with its key.
    fn de_problem(&self, text: &str, e: &toml::de::Error) -> Problem {
        let message = e.message().trim_end();
        let span = e.span();
        let mut at = span.map(|s| s.start);
        let mut found = at.and_then(|s| self.at(s));
        // An element's own error carries the whole array's span; find the element by the value
        // the message quotes (`"192.168.1.0/33": prefix longer than 32`).
        if let Some(array) = found {
            let prefix = format!("{}[", array.path);
            if let Some(e) = self.entries.iter().find(|e| {
                e.path.starts_with(&prefix)
                    && e.element
                        .as_ref()
                        .is_some_and(|v| message.starts_with(&format!("{v:?}:")))
            }) {
                found = Some(e);
                at = Some(e.value.start);
            }
        }
        let line_col = at.map(|s| line_col(text, s));
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let name = rest.split('`').next().unwrap_or_default();
            let parent = match found {
                Some(entry) => entry
                    .path
                    .rsplit_once('.')
                    .map_or(String::new(), |(p, _)| p.to_owned()),
                None => String::new(),
            };
            let place = if parent.is_empty() {
                "at the top level".to_owned()
            } else {
                format!("in [{parent}]")
            };
            let expected = match rest.split_once(", expected ") {
                Some((_, exp)) => format!("; expected {}", exp.replace('`', "")),
                None => String::new(),
            };
            let key = if parent.is_empty() {
                name.to_owned()
            } else {
                format!("{parent}.{name}")
            };
            return Problem {
                kind: ProblemKind::UnknownKey,
                key: Some(key),
                line_col,
                message: format!("unknown key {name:?} {place}{expected}"),
            };
        }
        if message == "wanted string or table" {
            // toml's words for a non-string where a name from a list (an enum) is expected.
            return Problem {
                kind: ProblemKind::Type,
                key: found.map(|entry| entry.path.clone()),
                line_col,
                message: "invalid type, expected a string".into(),
            };
        }
        let kind = if message.starts_with("invalid type:") {
            ProblemKind::Type
        } else {
            ProblemKind::Invalid
        };
        Problem {
            kind,
            key: found.map(|entry| entry.path.clone()),
            line_col,
            message: plain_expectations(message),
        }
    }
}

/// Serde's Rust type names in "expected ..." turned into words a config reader knows.
fn plain_expectations(message: &str) -> String {
    let mut m = message.to_owned();
    for (rust, plain) in [
        ("expected u8", "expected a non-negative integer"),
        ("expected u16", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected usize", "expected a non-negative integer"),
        ("expected f64", "expected a number"),
        ("expected path string", "expected a string (a path)"),
        ("expected a sequence", "expected an array"),
    ] {
        if let Some(rest) = m.strip_suffix(rust) {
            m = format!("{rest}{plain}");
        }
    }
    if let Some(i) = m.find("expected struct ") {
        m.replace_range(i.., "expected a table");
    }
    if let Some(i) = m.find("expected enum ") {
        m.replace_range(i.., "expected a string");
    }
    m.replace('`', "")
}

fn collect_table(table: &DeTable<'_>, prefix: &str, out: &mut Vec<SpanEntry>) {
    for (k, v) in table.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        out.push(SpanEntry {
            path: path.clone(),
            key: k.span(),
            value: v.span(),
            element: None,
            is_array: v.get_ref().is_array(),
        });
        collect_value(v.get_ref(), &path, out);
    }
}

fn collect_value(value: &DeValue<'_>, path: &str, out: &mut Vec<SpanEntry>) {
    match value {
        DeValue::Table(t) => collect_table(t, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{path}[{i}]");
                out.push(SpanEntry {
                    path: path.clone(),
                    key: item.span(),
                    value: item.span(),
                    element: item.get_ref().as_str().map(str::to_owned),
                    is_array: item.get_ref().is_array(),
                });
                collect_value(item.get_ref(), &path, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let t = "a = 1\nb = \"é\" x";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, t.len() - 1), (2, 9));
        assert_eq!(line_col(t, t.len()), (2, 10));
    }

    #[test]
    fn facility_codes() {
        assert_eq!(Facility::Kern.code(), 0);
        assert_eq!(Facility::Daemon.code(), 3);
        assert_eq!(Facility::Ftp.code(), 11);
        assert_eq!(Facility::Local0.code(), 16);
        assert_eq!(Facility::Local7.code(), 23);
        for f in Facility::ALL {
            assert!(f.name().len() >= 3);
        }
    }
}
