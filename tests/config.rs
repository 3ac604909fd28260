//! The configuration file: defaults, every key, and an error that names file, line, column and
//! key for every way a file can be wrong.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use botd::config::{
    AlertsConfig, CaptureConfig, Cidr, Config, ConfigError, Facility, FlowsConfig, IdleTimeoutSecs,
    IntelConfig, LingerSecs, MetricsConfig, ModelsConfig, NetworkConfig, PrivilegesConfig,
    ProblemKind, ResponseConfig, ResponseMode, RulesConfig, ScoringConfig, SensorConfig,
    StateConfig, SyslogFormat, SyslogTarget, check_config_command,
};
use botd::engine::WindowConfig;
use botd::flow::IndexKind;

const SEC: u64 = 1_000_000_000;

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/botd.toml")
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str(text, "test.toml")
}

/// The error of `text`, displayed, and its first problem's kind.
fn error(text: &str) -> (String, ConfigError) {
    match parse(text) {
        Ok(c) => panic!("accepted {text:?} as {c:?}"),
        Err(e) => (e.to_string(), e),
    }
}

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn shipped_file_is_the_defaults() {
    let config = Config::load(shipped()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config, Config::default());
    assert!(Config::default().validate().is_ok());
}

#[test]
fn shipped_file_names_every_detector_disable_takes() {
    // The comment over `[rules] disable` is where an operator looks for the names.
    let text = std::fs::read_to_string(shipped()).unwrap();
    let rules = &text[text.find("[rules]").unwrap()..];
    let comment: String = rules
        .lines()
        .take_while(|l| !l.starts_with("disable"))
        .filter_map(|l| l.strip_prefix('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let named: Vec<&str> = comment
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .collect();
    for d in botd::config::DETECTORS {
        assert!(
            named.contains(d),
            "config/botd.toml's [rules] disable comment does not name {d}"
        );
    }
}

#[test]
fn shipped_file_documents_every_key() {
    // Every key of the all-keys file below is in the shipped file, uncommented, under a comment.
    let text = std::fs::read_to_string(shipped()).unwrap();
    let all: toml::Table = toml::from_str(ALL_KEYS).unwrap();
    let shipped: toml::Table = toml::from_str(&text).unwrap();
    for (section, keys) in &all {
        let keys = keys.as_table().unwrap();
        let have = shipped[section]
            .as_table()
            .unwrap_or_else(|| panic!("[{section}]"));
        for key in keys.keys() {
            assert!(
                have.contains_key(key),
                "{section}.{key} missing from botd.toml"
            );
        }
        assert_eq!(
            keys.len(),
            have.len(),
            "[{section}] has keys ALL_KEYS lacks"
        );
    }
    assert_eq!(all.len(), shipped.len());
    // A comment right before every key line (or before its group: user/group).
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.contains(" = ") && !line.starts_with('#') {
            let above = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.contains(" = ") || l.starts_with('#'))
                .unwrap();
            assert!(above.starts_with('#'), "no comment above {line:?}");
        }
    }
}

#[test]
fn empty_and_comment_only_files_are_the_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
    assert_eq!(parse("# nothing\n\n   \n").unwrap(), Config::default());
    assert_eq!(parse("[flows]\n[alerts]\n").unwrap(), Config::default());
}

/// Every key, none at its default.
const ALL_KEYS: &str = r#"
[capture]
interface = "enp3s0"
snaplen = 1514
promiscuous = false
read_timeout_ms = 250

[network]
home = ["192.168.1.0/24", "2001:db8:1::/48", "10.9.8.7"]

[flows]
capacity = 1000
window_secs = 120
overlap_secs = 0
status_interval_secs = 60
linger_secs = { tcp = 61, udp = 31, icmp = 6, other = 32 }
idle_timeout_secs = { tcp = 600, udp = 120, icmp = 0, other = 90 }
fragment_capacity = 16
index = "linear"

[models]
dir = "/var/lib/botd/models"

[scoring]
alpha = 1
red = 0.9
red_rising = 0.5
red_windows = 2
yellow_clear = 0.0
min_flows = 1
history_windows = 10
max_hosts = 100
top_peers = 0
host_idle_secs = 3600
max_level_changes = 8

[alerts]
syslog = false
syslog_target = "udp:[2001:db8::1]:5514"
syslog_format = "rfc3164"
facility = "local3"
app_name = "botd-lab"
queue_capacity = 8
rate_limit_secs = 0
json_file = "/var/log/botd/alerts.jsonl"
enterprise_number = 64512

[privileges]
user = "nobody"
group = "nogroup"
allow_root = true

[state]
file = "/var/lib/botd/state.json"
interval_secs = 5

[rules]
disable = ["p2p", "http-no-agent"]
dga_failed_names = 12
tunnel_label_chars = 30
tunnel_long_names = 10
tunnel_txt_queries = 20
tunnel_null_queries = 5
spam_servers = 5
spam_port25_peers = 7
p2p_peers = 40
p2p_max_bytes = 1024
dns_view_capacity = 4096
device_capacity = 64

[intel]
dir = "/var/lib/botd/intel"
max_entries = 1000
max_feeds = 4

[sensor]
name = "gw-kitchen"
community_id_seed = 7

[metrics]
textfile = "/var/lib/prometheus/node-exporter/botd.prom"
interval_secs = 30

[response]
mode = "enforce"
timeout_secs = 600
max_timeout_secs = 86400
allow = ["192.168.1.10", "fd00::/64"]
nft = "/usr/sbin/nft"
"#;

#[test]
fn every_key_round_trips() {
    let expected = Config {
        capture: CaptureConfig {
            interface: "enp3s0".into(),
            snaplen: 1514,
            promiscuous: false,
            read_timeout_ms: 250,
        },
        network: NetworkConfig {
            home: vec![
                cidr("192.168.1.0/24"),
                cidr("2001:db8:1::/48"),
                cidr("10.9.8.7/32"),
            ],
        },
        flows: FlowsConfig {
            capacity: 1000,
            window_secs: 120,
            overlap_secs: 0,
            status_interval_secs: 60,
            linger_secs: LingerSecs {
                tcp: 61,
                udp: 31,
                icmp: 6,
                other: 32,
            },
            idle_timeout_secs: IdleTimeoutSecs {
                tcp: 600,
                udp: 120,
                icmp: 0,
                other: 90,
            },
            fragment_capacity: 16,
            index: IndexKind::Linear,
        },
        models: ModelsConfig {
            dir: "/var/lib/botd/models".into(),
        },
        scoring: ScoringConfig {
            alpha: 1.0,
            red: 0.9,
            red_rising: 0.5,
            red_windows: 2,
            yellow_clear: 0.0,
            min_flows: 1,
            history_windows: 10,
            max_hosts: 100,
            top_peers: 0,
            host_idle_secs: 3600,
            max_level_changes: 8,
        },
        alerts: AlertsConfig {
            syslog: false,
            syslog_target: SyslogTarget::Udp {
                host: "2001:db8::1".into(),
                port: 5514,
            },
            syslog_format: SyslogFormat::Rfc3164,
            facility: Facility::Local3,
            app_name: "botd-lab".into(),
            queue_capacity: 8,
            rate_limit_secs: 0,
            json_file: "/var/log/botd/alerts.jsonl".into(),
            enterprise_number: 64512,
        },
        privileges: PrivilegesConfig {
            user: "nobody".into(),
            group: "nogroup".into(),
            allow_root: true,
        },
        state: StateConfig {
            file: "/var/lib/botd/state.json".into(),
            interval_secs: 5,
        },
        rules: RulesConfig {
            disable: vec!["p2p".into(), "http-no-agent".into()],
            dga_failed_names: 12,
            tunnel_label_chars: 30,
            tunnel_long_names: 10,
            tunnel_txt_queries: 20,
            tunnel_null_queries: 5,
            spam_servers: 5,
            spam_port25_peers: 7,
            p2p_peers: 40,
            p2p_max_bytes: 1024,
            dns_view_capacity: 4096,
            device_capacity: 64,
        },
        intel: IntelConfig {
            dir: "/var/lib/botd/intel".into(),
            max_entries: 1000,
            max_feeds: 4,
        },
        sensor: SensorConfig {
            name: "gw-kitchen".into(),
            community_id_seed: 7,
        },
        metrics: MetricsConfig {
            textfile: "/var/lib/prometheus/node-exporter/botd.prom".into(),
            interval_secs: 30,
        },
        response: ResponseConfig {
            mode: ResponseMode::Enforce,
            timeout_secs: 600,
            max_timeout_secs: 86_400,
            allow: vec![cidr("192.168.1.10/32"), cidr("fd00::/64")],
            nft: "/usr/sbin/nft".into(),
        },
    };
    let config = parse(ALL_KEYS).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config, expected);

    // No field is at its default, so none can have been silently ignored.
    let d = Config::default();
    assert_ne!(config.capture.interface, d.capture.interface);
    assert_ne!(config.capture.snaplen, d.capture.snaplen);
    assert_ne!(config.capture.promiscuous, d.capture.promiscuous);
    assert_ne!(config.capture.read_timeout_ms, d.capture.read_timeout_ms);
    assert_ne!(config.network, d.network);
    let (f, g) = (&config.flows, &d.flows);
    assert_ne!(f.capacity, g.capacity);
    assert_ne!(f.window_secs, g.window_secs);
    assert_ne!(f.overlap_secs, g.overlap_secs);
    assert_ne!(f.status_interval_secs, g.status_interval_secs);
    for i in 0..4 {
        assert_ne!(f.linger_secs.by_class()[i], g.linger_secs.by_class()[i]);
    }
    assert_ne!(f.idle_timeout_secs, g.idle_timeout_secs);
    assert_ne!(f.fragment_capacity, g.fragment_capacity);
    assert_ne!(config.models, d.models);
    let (s, t) = (&config.scoring, &d.scoring);
    assert_ne!(s.alpha, t.alpha);
    assert_ne!(s.red, t.red);
    assert_ne!(s.red_rising, t.red_rising);
    assert_ne!(s.red_windows, t.red_windows);
    assert_ne!(s.yellow_clear, t.yellow_clear);
    assert_ne!(s.min_flows, t.min_flows);
    assert_ne!(s.history_windows, t.history_windows);
    assert_ne!(s.max_hosts, t.max_hosts);
    assert_ne!(s.top_peers, t.top_peers);
    assert_ne!(s.host_idle_secs, t.host_idle_secs);
    assert_ne!(s.max_level_changes, t.max_level_changes);
    let (a, b) = (&config.alerts, &d.alerts);
    assert_ne!(a.syslog, b.syslog);
    assert_ne!(a.syslog_target, b.syslog_target);
    assert_ne!(a.syslog_format, b.syslog_format);
    assert_ne!(a.facility, b.facility);
    assert_ne!(a.app_name, b.app_name);
    assert_ne!(a.queue_capacity, b.queue_capacity);
    assert_ne!(a.rate_limit_secs, b.rate_limit_secs);
    assert_ne!(a.json_file, b.json_file);
    assert_eq!(a.json_file(), Some(Path::new("/var/log/botd/alerts.jsonl")));
    assert_eq!(b.json_file(), None);
    let (p, q) = (&config.privileges, &d.privileges);
    assert_ne!(p.user, q.user);
    assert_ne!(p.group, q.group);
    assert_ne!(p.allow_root, q.allow_root);
    assert_ne!(config.state.file, d.state.file);
    assert_ne!(config.state.interval_secs, d.state.interval_secs);
    assert_eq!(d.state.file(), None);
    let (r, u) = (&config.rules, &d.rules);
    assert_ne!(r.disable, u.disable);
    assert_ne!(r.dga_failed_names, u.dga_failed_names);
    assert_ne!(r.tunnel_label_chars, u.tunnel_label_chars);
    assert_ne!(r.tunnel_long_names, u.tunnel_long_names);
    assert_ne!(r.tunnel_txt_queries, u.tunnel_txt_queries);
    assert_ne!(r.tunnel_null_queries, u.tunnel_null_queries);
    assert_ne!(r.spam_servers, u.spam_servers);
    assert_ne!(r.spam_port25_peers, u.spam_port25_peers);
    assert_ne!(r.p2p_peers, u.p2p_peers);
    assert_ne!(r.p2p_max_bytes, u.p2p_max_bytes);
    assert_ne!(r.dns_view_capacity, u.dns_view_capacity);
    assert_ne!(r.device_capacity, u.device_capacity);
    assert_ne!(config.intel.dir, d.intel.dir);
    assert_ne!(config.intel.max_entries, d.intel.max_entries);
    assert_ne!(config.intel.max_feeds, d.intel.max_feeds);
    assert_eq!(d.intel.dir(), None);
    assert_ne!(config.metrics.textfile, d.metrics.textfile);
    assert_ne!(config.metrics.interval_secs, d.metrics.interval_secs);
    assert_eq!(d.metrics.textfile(), None);
    let (r, u) = (&config.response, &d.response);
    assert_ne!(r.mode, u.mode);
    assert_ne!(r.timeout_secs, u.timeout_secs);
    assert_ne!(r.max_timeout_secs, u.max_timeout_secs);
    assert_ne!(r.allow, u.allow);
    assert_ne!(r.nft, u.nft);
}

#[test]
fn response_keys_are_checked() {
    invalid(
        "[response]\ntimeout_secs = 0\n",
        "response.timeout_secs",
        2,
        "1..=31536000",
    );
    invalid(
        "[response]\ntimeout_secs = 60\nmax_timeout_secs = 30\n",
        "response.max_timeout_secs",
        3,
        "timeout_secs (60)",
    );
    invalid("[response]\nnft = \"\"\n", "response.nft", 2, "empty");
    let (msg, _) = error("[response]\nmode = \"block\"\n");
    assert!(msg.contains("dry-run") && msg.contains("enforce"), "{msg}");
    let (msg, _) = error("[response]\nallow = [\"192.168.1.1/24\"]\n");
    assert!(msg.contains("host bits set"), "{msg}");
    assert_eq!(
        parse("[response]\nmode = \"dry-run\"\n")
            .unwrap()
            .response
            .mode,
        ResponseMode::DryRun
    );
}

#[test]
fn an_unknown_detector_and_out_of_range_rules_are_errors_naming_the_key() {
    let (msg, _) = error("[rules]\ndisable = [\"dgaa\"]\n");
    assert!(
        msg.contains("rules.disable") && msg.contains("\"dgaa\" is not a detector"),
        "{msg}"
    );
    let (msg, _) = error("[rules]\nspam_servers = 1\n");
    assert!(
        msg.contains("rules.spam_servers") && msg.contains("1 is not in 2..=1000"),
        "{msg}"
    );
    let (msg, _) = error("[intel]\nmax_feeds = 0\n");
    assert!(msg.contains("intel.max_feeds"), "{msg}");
}

#[test]
fn partial_sections_keep_the_other_defaults() {
    let c = parse("[flows]\nlinger_secs = { udp = 90 }\nidle_timeout_secs.tcp = 7\n").unwrap();
    assert_eq!(
        c.flows.linger_secs,
        LingerSecs {
            udp: 90,
            ..LingerSecs::default()
        }
    );
    assert_eq!(c.flows.idle_timeout_secs.by_class(), [7, 0, 0, 0]);
    assert_eq!(c.flows.window_secs, 300);
    assert_eq!(c.scoring, ScoringConfig::default());
    // Dotted keys at the top level work as sections do.
    let c = parse("scoring.alpha = 0.5\ncapture.interface = \"br0\"\n").unwrap();
    assert_eq!(c.scoring.alpha, 0.5);
    assert_eq!(c.capture.interface, "br0");
}

#[test]
fn engine_config_maps_flows() {
    let e = Config::default().engine_config();
    assert_eq!(e.flow_capacity, 65_536);
    assert_eq!(e.window, WindowConfig::from_secs(300.0, 150.0));
    assert_eq!(e.window.unwrap().step_ns, 150 * SEC);
    assert_eq!(e.status_interval_ns, 3600 * SEC);
    assert_eq!(e.linger_ns, [60 * SEC, 30 * SEC, 5 * SEC, 30 * SEC]);
    assert_eq!(e.idle_ns, [None; 4]);
    assert_eq!(e.fragment_capacity, 4096);
    // The defaults are the engine's defaults (windowing aside, which the engine leaves off).
    let d = botd::engine::EngineConfig::default();
    assert_eq!(
        botd::engine::EngineConfig { window: None, ..e },
        d,
        "config defaults drifted from EngineConfig::default()"
    );

    let e = parse(ALL_KEYS).unwrap().engine_config();
    assert_eq!(e.flow_capacity, 1000);
    assert_eq!(e.window.unwrap().length_ns, 120 * SEC);
    assert_eq!(e.window.unwrap().step_ns, 120 * SEC);
    assert_eq!(e.status_interval_ns, 60 * SEC);
    // TimeoutClass order: tcp, udp, icmp, other.
    use botd::flow::TimeoutClass;
    assert_eq!(e.linger_ns[TimeoutClass::Tcp as usize], 61 * SEC);
    assert_eq!(e.linger_ns[TimeoutClass::Udp as usize], 31 * SEC);
    assert_eq!(e.linger_ns[TimeoutClass::Icmp as usize], 6 * SEC);
    assert_eq!(e.linger_ns[TimeoutClass::Other as usize], 32 * SEC);
    assert_eq!(
        e.idle_ns,
        [Some(600 * SEC), Some(120 * SEC), None, Some(90 * SEC)]
    );
    assert_eq!(e.fragment_capacity, 16);
}

#[test]
fn unknown_keys_are_named_with_their_place() {
    let (msg, e) = error("# botd\n\n[flows]\nwindw_secs = 300\n");
    assert!(
        msg.starts_with(
            "test.toml:4:1: unknown key \"windw_secs\" in [flows]; expected one of capacity, window_secs,"
        ),
        "{msg}"
    );
    assert_eq!(e.first().kind, ProblemKind::UnknownKey);
    assert_eq!(e.first().key.as_deref(), Some("flows.windw_secs"));
    assert_eq!(e.first().line_col, Some((4, 1)));

    let (msg, e) = error("[capture]\ninterface = \"eth1\"\n\n[flow]\ncapacity = 5\n");
    assert!(
        msg.starts_with("test.toml:4:2: unknown key \"flow\" at the top level; expected one of capture, network, flows,"),
        "{msg}"
    );
    assert_eq!(e.first().kind, ProblemKind::UnknownKey);

    let (msg, _) = error("verbose = true\n");
    assert!(
        msg.starts_with("test.toml:1:1: unknown key \"verbose\" at the top level"),
        "{msg}"
    );

    let (msg, _) = error("[flows]\nlinger_secs = { tcp = 1, sctp = 2 }\n");
    assert!(
        msg.starts_with(
            "test.toml:2:26: unknown key \"sctp\" in [flows.linger_secs]; expected one of tcp, udp, icmp, other"
        ),
        "{msg}"
    );
    let (msg, _) = error("[alerts]\nsyslog = true\nsyslog_port = 514\n");
    assert!(
        msg.starts_with("test.toml:3:1: unknown key \"syslog_port\" in [alerts]"),
        "{msg}"
    );
}

#[test]
fn wrong_types_name_key_line_and_column() {
    let text = "[capture]\ninterface = \"eth0\"\n\n[flows]\nwindow_secs = \"300\"\n";
    let (msg, e) = error(text);
    assert_eq!(
        msg,
        "test.toml:5:15: flows.window_secs: invalid type: string \"300\", expected a non-negative integer"
    );
    assert_eq!(e.first().kind, ProblemKind::Type);
    assert_eq!(e.path, Path::new("test.toml"));

    for (text, want) in [
        (
            "[capture]\nsnaplen = 1.5\n",
            "test.toml:2:11: capture.snaplen: invalid type: floating point 1.5, expected a non-negative integer",
        ),
        (
            "[capture]\npromiscuous = \"yes\"\n",
            "test.toml:2:15: capture.promiscuous: invalid type: string \"yes\", expected a boolean",
        ),
        (
            "[scoring]\nalpha = \"0.3\"\n",
            "test.toml:2:9: scoring.alpha: invalid type: string \"0.3\", expected a number",
        ),
        (
            "[network]\nhome = \"10.0.0.0/8\"\n",
            "test.toml:2:8: network.home: invalid type: string \"10.0.0.0/8\", expected an array",
        ),
        (
            "[flows]\nlinger_secs = 5\n",
            "test.toml:2:15: flows.linger_secs: invalid type: integer 5, expected a table",
        ),
        (
            "flows = 3\n",
            "test.toml:1:9: flows: invalid type: integer 3, expected a table",
        ),
        (
            "[models]\ndir = 3\n",
            "test.toml:2:7: models.dir: invalid type: integer 3, expected a string (a path)",
        ),
        (
            "[flows]\ncapacity = -1\n",
            "test.toml:2:12: flows.capacity: invalid value: integer -1, expected a non-negative integer",
        ),
        (
            "[alerts]\nsyslog_format = \"rfc5425\"\n",
            "test.toml:2:17: alerts.syslog_format: unknown variant rfc5425, expected one of rfc5424, rfc3164, eve",
        ),
        (
            "[alerts]\nfacility = 3\n",
            "test.toml:2:12: alerts.facility: invalid type, expected a string",
        ),
        // Serde would take a struct from an array, field by field; the file has tables there.
        (
            "[flows]\nlinger_secs = [60, 30, 5, 30]\n",
            "test.toml:2:15: flows.linger_secs: invalid type: array, expected a table",
        ),
        (
            "scoring = [0.3, 0.85]\n",
            "test.toml:1:11: scoring: invalid type: array, expected a table",
        ),
        (
            "[[flows]]\ncapacity = 5\n",
            "test.toml:1:1: flows: invalid type: array, expected a table",
        ),
    ] {
        assert_eq!(error(text).0, want, "{text}");
    }
}

#[test]
fn syntax_errors_give_line_and_column() {
    // An unclosed array at the end of the file: found where the file ends.
    let (msg, e) = error("[network]\nhome = [\"10.0.0.0/8\"\n");
    assert_eq!(e.first().kind, ProblemKind::Syntax);
    assert_eq!(msg, "test.toml:2:21: unclosed array, expected `]`");
    // Arrays may span lines, so a following section header is where TOML notices.
    let (msg, e) = error("[network]\nhome = [\"10.0.0.0/8\"\n\n[flows]\n");
    assert_eq!(e.first().kind, ProblemKind::Syntax);
    assert_eq!(e.first().line_col, Some((4, 1)), "{msg}");
    assert!(
        msg.starts_with("test.toml:4:1: ") && msg.contains("array"),
        "{msg}"
    );

    let (msg, e) = error("[flows\ncapacity = 1\n");
    assert_eq!(e.first().kind, ProblemKind::Syntax);
    assert!(msg.starts_with("test.toml:1:"), "{msg}");

    let (msg, _) = error("[flows]\ncapacity = 1\ncapacity = 2\n");
    assert_eq!(msg, "test.toml:3:1: duplicate key capacity");

    let (msg, _) = error("[scoring]\nalpha = \n");
    assert!(msg.starts_with("test.toml:2:"), "{msg}");
}

#[test]
fn load_names_a_missing_file() {
    let e = Config::load("/nonexistent/botd.toml").unwrap_err();
    assert_eq!(e.first().kind, ProblemKind::Io);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/botd.toml: cannot read:"),
        "{e}"
    );
}

/// `text` is refused with exactly one problem, about `key`, at `line`, mentioning `words`.
#[track_caller]
fn invalid(text: &str, key: &str, line: usize, words: &str) {
    let (msg, e) = error(text);
    assert_eq!(e.problems.len(), 1, "{msg}");
    let p = e.first();
    assert_eq!(p.kind, ProblemKind::Invalid, "{msg}");
    assert_eq!(p.key.as_deref(), Some(key), "{msg}");
    assert_eq!(p.line_col.map(|l| l.0), Some(line), "{msg}");
    assert!(
        msg.starts_with(&format!("test.toml:{line}:")) && msg.contains(&format!(": {key}: ")),
        "{msg}"
    );
    assert!(msg.contains(words), "{msg} lacks {words:?}");
}

#[test]
fn every_validation_rule_names_its_key() {
    invalid(
        "[capture]\ninterface = \"\"\n",
        "capture.interface",
        2,
        "empty",
    );
    invalid(
        "[capture]\ninterface = \"eth0 eth1\"\n",
        "capture.interface",
        2,
        "not an interface name",
    );
    invalid(
        "[capture]\nsnaplen = 0\n",
        "capture.snaplen",
        2,
        "64..=262144",
    );
    invalid(
        "[capture]\nsnaplen = 300000\n",
        "capture.snaplen",
        2,
        "64..=262144",
    );
    invalid(
        "[capture]\nread_timeout_ms = 0\n",
        "capture.read_timeout_ms",
        2,
        "1..=10000",
    );
    invalid("[network]\nhome = []\n", "network.home", 2, "at least one");

    invalid(
        "[flows]\ncapacity = 0\n",
        "flows.capacity",
        2,
        "1..=16777216",
    );
    invalid(
        "[flows]\ncapacity = 16777217\n",
        "flows.capacity",
        2,
        "1..=16777216",
    );
    assert!(parse("[flows]\ncapacity = 16777216\n").is_ok());
    invalid(
        "[flows]\nwindow_secs = 0\noverlap_secs = 0\n",
        "flows.window_secs",
        2,
        "1..=",
    );
    invalid(
        "[flows]\nwindow_secs = 100000000\n",
        "flows.window_secs",
        2,
        "1..=31536000",
    );
    invalid(
        "[flows]\nwindow_secs = 300\noverlap_secs = 300\n",
        "flows.overlap_secs",
        3,
        "shorter than flows.window_secs (300)",
    );
    // The overlap is not in the file: the error points at the window that made it wrong.
    invalid(
        "[flows]\nwindow_secs = 100\n",
        "flows.overlap_secs",
        2,
        "150 must be shorter than flows.window_secs (100)",
    );
    invalid(
        "[flows]\nstatus_interval_secs = 0\n",
        "flows.status_interval_secs",
        2,
        "1..=",
    );
    invalid(
        "[flows]\nlinger_secs = { icmp = 99999999999 }\n",
        "flows.linger_secs.icmp",
        2,
        "0..=31536000",
    );
    invalid(
        "[flows]\nidle_timeout_secs = { other = 99999999999 }\n",
        "flows.idle_timeout_secs.other",
        2,
        "0..=31536000",
    );
    invalid(
        "[flows]\nfragment_capacity = 0\n",
        "flows.fragment_capacity",
        2,
        "1..=",
    );
    invalid("[models]\ndir = \"\"\n", "models.dir", 2, "empty");

    invalid("[scoring]\nalpha = 0\n", "scoring.alpha", 2, "(0, 1]");
    invalid("[scoring]\nalpha = 1.01\n", "scoring.alpha", 2, "(0, 1]");
    invalid("[scoring]\nalpha = nan\n", "scoring.alpha", 2, "(0, 1]");
    invalid("[scoring]\nred = 1.5\n", "scoring.red", 2, "[0, 1]");
    invalid(
        "[scoring]\nred_rising = -0.1\n",
        "scoring.red_rising",
        2,
        "[0, 1]",
    );
    invalid(
        "[scoring]\nyellow_clear = inf\n",
        "scoring.yellow_clear",
        2,
        "[0, 1]",
    );
    invalid(
        "[scoring]\nred = 0.5\nred_rising = 0.7\n",
        "scoring.red_rising",
        3,
        "must not be above scoring.red (0.5)",
    );
    invalid(
        "[scoring]\nred = 0.5\n",
        "scoring.red_rising",
        2,
        "0.6 must not be above scoring.red (0.5)",
    );
    invalid(
        "[scoring]\nyellow_clear = 0.6\n",
        "scoring.yellow_clear",
        2,
        "must be below scoring.red_rising (0.6)",
    );
    assert!(
        parse("[scoring]\nred = 0.6\n").is_ok(),
        "red_rising may equal red"
    );
    invalid(
        "[scoring]\nred_windows = 0\n",
        "scoring.red_windows",
        2,
        "at least 1",
    );
    invalid(
        "[scoring]\nmin_flows = 0\n",
        "scoring.min_flows",
        2,
        "at least 1",
    );
    invalid(
        "[scoring]\nred_windows = 4\nhistory_windows = 3\n",
        "scoring.history_windows",
        3,
        "scoring.red_windows (4)",
    );
    invalid("[scoring]\nmax_hosts = 0\n", "scoring.max_hosts", 2, "1..=");
    invalid(
        "[scoring]\nhost_idle_secs = 59\n",
        "scoring.host_idle_secs",
        2,
        "60..=31536000",
    );
    invalid(
        "[scoring]\nmax_level_changes = 0\n",
        "scoring.max_level_changes",
        2,
        "1..=65536",
    );
    invalid(
        "[scoring]\ntop_peers = 101\n",
        "scoring.top_peers",
        2,
        "0..=100",
    );

    invalid(
        "[alerts]\nqueue_capacity = 0\n",
        "alerts.queue_capacity",
        2,
        "1..=",
    );
    invalid(
        "[alerts]\napp_name = \"\"\n",
        "alerts.app_name",
        2,
        "1 to 48",
    );
    invalid(
        "[alerts]\napp_name = \"bot d\"\n",
        "alerts.app_name",
        2,
        "without spaces",
    );
    invalid(
        "[alerts]\nrate_limit_secs = 99999999999\n",
        "alerts.rate_limit_secs",
        2,
        "0..=",
    );
    invalid("[privileges]\nuser = \"\"\n", "privileges.user", 2, "empty");
    invalid(
        "[privileges]\ngroup = \"\"\n",
        "privileges.group",
        2,
        "empty",
    );
    invalid(
        "[privileges]\nuser = \"root\"\n",
        "privileges.user",
        2,
        "allow_root = true",
    );
    assert!(parse("[privileges]\nuser = \"root\"\nallow_root = true\n").is_ok());
    invalid(
        "[state]\ninterval_secs = 0\n",
        "state.interval_secs",
        2,
        "1..=",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let (msg, e) = error("[capture]\nsnaplen = 1\n\n[scoring]\nalpha = 2\nmin_flows = 0\n");
    assert_eq!(e.problems.len(), 3, "{msg}");
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].starts_with("test.toml:2:11: capture.snaplen: "),
        "{msg}"
    );
    assert!(
        lines[1].starts_with("test.toml:5:9: scoring.alpha: "),
        "{msg}"
    );
    assert!(
        lines[2].starts_with("test.toml:6:13: scoring.min_flows: "),
        "{msg}"
    );
}

#[test]
fn validate_works_on_built_configs() {
    let mut c = Config::default();
    c.flows.overlap_secs = 300;
    c.scoring.alpha = 0.0;
    let problems = c.validate().unwrap_err();
    let keys: Vec<&str> = problems.iter().filter_map(|p| p.key.as_deref()).collect();
    assert_eq!(keys, ["flows.overlap_secs", "scoring.alpha"]);
    assert!(problems.iter().all(|p| p.line_col.is_none()));
}

#[test]
fn syslog_targets() {
    for (text, want) in [
        ("unix:/dev/log", SyslogTarget::Unix("/dev/log".into())),
        (
            "udp:logs.example.org:514",
            SyslogTarget::Udp {
                host: "logs.example.org".into(),
                port: 514,
            },
        ),
        (
            "tcp:192.0.2.7:6514",
            SyslogTarget::Tcp {
                host: "192.0.2.7".into(),
                port: 6514,
            },
        ),
        (
            "udp:[::1]:514",
            SyslogTarget::Udp {
                host: "::1".into(),
                port: 514,
            },
        ),
    ] {
        let t: SyslogTarget = text.parse().unwrap();
        assert_eq!(t, want);
        assert_eq!(t.to_string(), text);
        let c = parse(&format!("[alerts]\nsyslog_target = {text:?}\n")).unwrap();
        assert_eq!(c.alerts.syslog_target, want);
    }
    for (bad, words) in [
        ("/dev/log", "no scheme"),
        ("unix:dev/log", "absolute"),
        ("unix:", "absolute"),
        ("udp:host", "missing :PORT"),
        ("udp::514", "host"),
        ("udp:host:0", "1..=65535"),
        ("tcp:host:65536", "1..=65535"),
        ("tcp:host:syslog", "1..=65535"),
        ("udp:::1:514", "brackets"),
        ("udp:[::1:514", "unclosed"),
        ("udp:[nothost]:514", "not an IPv6"),
        ("http:host:80", "unknown scheme"),
    ] {
        let text = format!("[alerts]\nsyslog = false\nsyslog_target = {bad:?}\n");
        let (msg, e) = error(&text);
        assert_eq!(
            e.first().key.as_deref(),
            Some("alerts.syslog_target"),
            "{msg}"
        );
        assert!(
            msg.starts_with("test.toml:3:17: alerts.syslog_target: "),
            "{msg}"
        );
        assert!(msg.contains(words), "{bad}: {msg} lacks {words:?}");
    }
}

#[test]
fn facilities() {
    for (name, code) in [
        ("kern", 0),
        ("daemon", 3),
        ("authpriv", 10),
        ("local0", 16),
        ("local7", 23),
    ] {
        let c = parse(&format!("[alerts]\nfacility = {name:?}\n")).unwrap();
        assert_eq!(c.alerts.facility.code(), code);
        assert_eq!(c.alerts.facility.name(), name);
    }
    let (msg, e) = error("[alerts]\nfacility = \"deamon\"\n");
    assert_eq!(e.first().key.as_deref(), Some("alerts.facility"));
    assert!(
        msg.starts_with(
            "test.toml:2:12: alerts.facility: unknown variant deamon, expected one of kern,"
        ),
        "{msg}"
    );
    let (msg, _) = error("[alerts]\nfacility = \"Daemon\"\n");
    assert!(msg.contains("unknown variant Daemon"), "{msg}");
}

#[test]
fn bad_cidrs_name_the_entry() {
    let text = "[network]\nhome = [\"10.0.0.0/8\", \"fc00::/7\",\n        \"192.168.1.0/33\"]\n";
    let (msg, e) = error(text);
    assert_eq!(
        msg,
        "test.toml:3:9: network.home[2]: \"192.168.1.0/33\": prefix longer than 32"
    );
    assert_eq!(e.first().key.as_deref(), Some("network.home[2]"));

    for (bad, words) in [
        ("10.0.0.0/", "prefix length \"\" is not a number"),
        ("10.0.0.0/x", "prefix length \"x\" is not a number"),
        ("10.0.0.0/-1", "is not a number"),
        ("10.0.0.0/300", "prefix longer than 32"),
        ("fc00::/129", "prefix longer than 128"),
        ("10.0.0.1/8", "host bits set (did you mean 10.0.0.0/8?)"),
        (
            "fd12:3456::1/64",
            "host bits set (did you mean fd12:3456::/64?)",
        ),
        ("10.0.0.256/32", "not an IPv4 or IPv6 address"),
        ("", "not an IPv4 or IPv6 address"),
        (" 10.0.0.0/8", "not an IPv4 or IPv6 address"),
        ("home.lan/24", "not an IPv4 or IPv6 address"),
    ] {
        assert!(
            bad.parse::<Cidr>().unwrap_err().contains(words),
            "{bad}: {}",
            bad.parse::<Cidr>().unwrap_err()
        );
        let (msg, _) = error(&format!("[network]\nhome = [\"10.0.0.0/8\", {bad:?}]\n"));
        assert_eq!(
            msg.lines().next().unwrap(),
            format!(
                "test.toml:2:23: network.home[1]: {bad:?}: {}",
                bad.parse::<Cidr>().unwrap_err()
            )
        );
    }
    let (msg, _) = error("[network]\nhome = [\"10.0.0.0/8\", 7]\n");
    assert!(
        msg.starts_with("test.toml:2:")
            && msg.contains("network.home")
            && msg.contains("integer 7"),
        "{msg}"
    );
}

#[test]
fn cidr_display_and_fields() {
    for s in [
        "10.0.0.0/8",
        "0.0.0.0/0",
        "192.0.2.1/32",
        "fc00::/7",
        "::/0",
        "2001:db8::1/128",
    ] {
        assert_eq!(cidr(s).to_string(), s);
    }
    assert_eq!(cidr("192.0.2.1").to_string(), "192.0.2.1/32");
    assert_eq!(cidr("2001:db8::1").to_string(), "2001:db8::1/128");
    assert_eq!(cidr("2001:DB8::/32").to_string(), "2001:db8::/32");
    let c = cidr("172.16.0.0/12");
    assert_eq!(c.addr(), ip("172.16.0.0"));
    assert_eq!(c.prefix_len(), 12);
    assert_eq!(Cidr::new(ip("172.16.0.0"), 12), Ok(c));
    assert!(Cidr::new(ip("172.16.0.0"), 33).is_err());
}

#[test]
fn is_home_edges() {
    let home = Config::default().network;
    for (addr, inside) in [
        // 10.0.0.0/8: network, broadcast, just outside on both sides.
        ("10.0.0.0", true),
        ("10.255.255.255", true),
        ("9.255.255.255", false),
        ("11.0.0.0", false),
        // 172.16.0.0/12 is 172.16.0.0 - 172.31.255.255.
        ("172.16.0.0", true),
        ("172.31.255.255", true),
        ("172.15.255.255", false),
        ("172.32.0.0", false),
        // 192.168.0.0/16.
        ("192.168.0.0", true),
        ("192.168.255.255", true),
        ("192.167.255.255", false),
        ("192.169.0.0", false),
        ("8.8.8.8", false),
        ("0.0.0.0", false),
        ("255.255.255.255", false),
        // fc00::/7 is fc00:: - fdff:ffff:...:ffff.
        ("fc00::", true),
        ("fd12:3456:789a::1", true),
        ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ("fe00::", false),
        ("fe80::1", false),
        ("2001:db8::1", false),
        ("::1", false),
        // A v4 address written as v6 is not matched against the v4 prefixes.
        ("::ffff:10.0.0.1", false),
    ] {
        assert_eq!(home.is_home(ip(addr)), inside, "{addr}");
    }

    let c = parse(
        "[network]\nhome = [\"192.168.1.0/24\", \"2001:db8:1::/48\", \"203.0.113.9\", \"2001:db8:ff::7/128\"]\n",
    )
    .unwrap();
    let net = &c.network;
    for (addr, inside) in [
        ("192.168.1.0", true),
        ("192.168.1.255", true),
        ("192.168.0.255", false),
        ("192.168.2.0", false),
        ("203.0.113.9", true),
        ("203.0.113.8", false),
        ("203.0.113.10", false),
        ("2001:db8:1::", true),
        ("2001:db8:1:ffff:ffff:ffff:ffff:ffff", true),
        ("2001:db8:0:ffff:ffff:ffff:ffff:ffff", false),
        ("2001:db8:2::", false),
        ("2001:db8:ff::7", true),
        ("2001:db8:ff::6", false),
        ("2001:db8:ff::8", false),
        ("10.0.0.1", false),
    ] {
        assert_eq!(net.is_home(ip(addr)), inside, "{addr}");
    }

    // /0 holds everything of its family and nothing of the other.
    let all4 = NetworkConfig {
        home: vec![cidr("0.0.0.0/0")],
    };
    assert!(all4.is_home(ip("0.0.0.0")) && all4.is_home(ip("255.255.255.255")));
    assert!(!all4.is_home(ip("::")));
    let all6 = NetworkConfig {
        home: vec![cidr("::/0")],
    };
    assert!(all6.is_home(ip("::")) && all6.is_home(ip("ffff::1")));
    assert!(!all6.is_home(ip("10.0.0.1")));
}

#[test]
fn check_config_summarises_or_explains() {
    let out = check_config_command(Some(shipped().as_path())).unwrap();
    assert!(out.contains(": OK"), "{out}");
    for words in [
        "eth0",
        "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7",
        "300 s, a new one every 150 s",
        "capacity 65536",
        "models/*.onnx",
        "syslog unix:/dev/log",
    ] {
        assert!(out.contains(words), "{out} lacks {words:?}");
    }

    let dir = std::env::temp_dir().join(format!("botd-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[flows]\nwindow_secs = 0\n").unwrap();
    let err = check_config_command(Some(bad.as_path())).unwrap_err();
    assert!(err.contains("bad.toml:2:15: flows.window_secs: "), "{err}");
    let good = dir.join("good.toml");
    std::fs::write(&good, ALL_KEYS).unwrap();
    let out = check_config_command(Some(good.as_path())).unwrap();
    for words in [
        "enp3s0",
        "2001:db8:1::/48",
        "120 s, a new one every 120 s",
        "syslog off",
        "/var/log/botd/alerts.jsonl",
        "/var/lib/botd/state.json",
    ] {
        assert!(out.contains(words), "{out} lacks {words:?}");
    }
    let err = check_config_command(Some(dir.join("missing.toml").as_path())).unwrap_err();
    assert!(err.contains("missing.toml: cannot read"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();

    // No path: the default file (tests run in the package root, where it is shipped).
    let out = check_config_command(None).unwrap();
    assert!(out.starts_with("config/botd.toml: OK"), "{out}");
}

#[test]
fn metrics_interval_out_of_range_and_a_non_prom_textfile_are_errors_naming_the_key() {
    for v in [0, 3601] {
        let (msg, _) = error(&format!("[metrics]\ninterval_secs = {v}\n"));
        assert!(
            msg.contains("metrics.interval_secs")
                && msg.contains(&format!("{v} is not in 1..=3600")),
            "{msg}"
        );
    }
    assert!(parse("[metrics]\ninterval_secs = 3600\n").is_ok());
    let (msg, _) = error("[metrics]\ntextfile = \"/var/lib/node-exporter/botd.txt\"\n");
    assert!(
        msg.contains("metrics.textfile") && msg.contains("must end in .prom"),
        "{msg}"
    );
}
