//! `[response]`: the opt-in quarantine of red hosts through nftables.
//!
//! botd keeps its own table, `table inet botd`, so a firewall that reloads its own tables (OpenWrt
//! fw4, firewalld, an `nft -f` of `table inet filter`) leaves it alone:
//!
//! ```text
//! table inet botd {
//!     set quarantine4 { type ipv4_addr; flags timeout; }
//!     set quarantine6 { type ipv6_addr; flags timeout; }
//!     set quarantine_mac { type ether_addr; flags timeout; }
//!     chain forward {
//!         type filter hook forward priority filter - 10; policy accept;
//!         ip saddr @quarantine4 drop
//!         ip daddr @quarantine4 drop
//!         ip6 saddr @quarantine6 drop
//!         ip6 daddr @quarantine6 drop
//!         ether saddr @quarantine_mac drop
//!     }
//! }
//! ```
//!
//! A block adds the host's address (and its device's MAC, when botd's device table knows it, so
//! its other and rotating addresses go too) with a kernel timeout: `timeout_secs` the first
//! time, doubled on each repeat block of the host up to `max_timeout_secs`. Each element's
//! comment (`botd block N mac M` / `botd block N host A`) lets `botd quarantine list|release`
//! and a restarted botd tell which address and MAC belong together and how many blocks came
//! before. The kernel, not botd, ends a quarantine: entries stay when botd exits or crashes (an
//! infected host is not freed by a restart); `botd quarantine release` or the timeout frees it.
//!
//! Never blocked (checked at block time): `allow`, the sensor's own addresses (every interface's)
//! and the LAN's gateway, DHCP and DNS servers as the device table knows them, with any address
//! sharing their MAC.
//!
//! botd re-checks its table every [`CHECK_INTERVAL`] (on a timer, not at window closes: an idle
//! network closes no windows) and re-creates it, with the hosts still in quarantine for their
//! remaining time, when it was removed (`nft flush ruleset`) or damaged.
//!
//! nft runs inline, on the loop's thread: a block happens on a red alert (rare) and must be done
//! before the alert leaves with `action = blocked`; the check is one `nft list` every few
//! seconds. Each nft run is bounded ([`NFT_TIMEOUT`]) and costs a few milliseconds,
//! which the capture socket's buffer absorbs.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use serde_json::{Value, json};

use crate::alert::{Action, Alert, Level};
use crate::config::{ResponseConfig, ResponseMode};
use crate::devices::DeviceTable;

pub const TABLE: &str = "botd";
pub const SET4: &str = "quarantine4";
pub const SET6: &str = "quarantine6";
pub const SET_MAC: &str = "quarantine_mac";
pub const CHAIN: &str = "forward";
/// Ahead of the distributions' filter chains (priority 0), so their accept rules cannot let a
/// quarantined host through first.
pub const PRIORITY: i32 = -10;
/// How often `botd run` checks its table (an `nft list`, a few milliseconds).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Longest an nft run may take before it is killed.
pub const NFT_TIMEOUT: Duration = Duration::from_secs(5);

macro_rules! log {
    ($($arg:tt)*) => { eprintln!("botd: quarantine: {}", format_args!($($arg)*)) };
}

// ---------------------------------------------------------------------------------------------
// nft

/// The nft program, spoken to through its JSON interface.
#[derive(Clone, Debug)]
pub struct Nft {
    program: PathBuf,
}

/// One element of botd's sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub set: String,
    /// An address or a MAC, as nft prints it.
    pub value: String,
    pub timeout_secs: u64,
    /// Seconds left.
    pub expires_secs: u64,
    pub comment: String,
}

impl Entry {
    /// The block number the comment carries (0 when it has none).
    pub fn block(&self) -> u32 {
        comment_field(&self.comment, "block")
            .and_then(|b| b.parse().ok())
            .unwrap_or(0)
    }

    /// The MAC an address entry's comment names, or the host a MAC entry's names.
    pub fn partner(&self) -> Option<&str> {
        comment_field(&self.comment, "mac").or_else(|| comment_field(&self.comment, "host"))
    }
}

fn comment_field<'a>(comment: &'a str, key: &str) -> Option<&'a str> {
    let mut words = comment.split_whitespace();
    while let Some(w) = words.next() {
        if w == key {
            return words.next();
        }
    }
    None
}

/// What `nft -j list table inet botd` shows.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub entries: Vec<Entry>,
    /// Which of botd's sets exist.
    pub sets: Vec<String>,
    /// Rules in botd's forward chain; `None` when the chain is missing.
    pub rules: Option<usize>,
}

impl Listing {
    /// Every set, the chain and its rules are there.
    pub fn whole(&self) -> bool {
        [SET4, SET6, SET_MAC]
            .iter()
            .all(|s| self.sets.iter().any(|h| h == s))
            && self.rules == Some(RULES)
    }

    pub fn has(&self, set: &str, value: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.set == set && e.value == value)
    }
}

/// Rules of botd's chain.
const RULES: usize = 5;

impl Nft {
    pub fn new(program: &Path) -> Nft {
        Nft {
            program: program.to_path_buf(),
        }
    }

    /// Runs nft with `args` and `stdin`; returns its standard output.
    fn run(&self, args: &[&str], stdin: &[u8]) -> Result<Vec<u8>, String> {
        let what = || format!("{} {}", self.program.display(), args.join(" "));
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", what()))?;
        if let Some(mut i) = child.stdin.take() {
            // A failed write shows as nft's own error below.
            let _ = i.write_all(stdin);
        }
        // A listing can be larger than a pipe holds: read it beside the wait.
        let mut out = child.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut buf);
            }
            buf
        });
        let deadline = Instant::now() + NFT_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("{}: no answer in {NFT_TIMEOUT:?}", what()));
                }
                Err(e) => return Err(format!("{}: {e}", what())),
            }
        };
        let stdout = reader.join().unwrap_or_default();
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        if !status.success() {
            let msg = stderr.lines().next().unwrap_or("").trim().to_string();
            return Err(format!("{}: {status}: {msg}", what()));
        }
        Ok(stdout)
    }

    /// Applies `commands` (nft JSON commands) as one transaction: all or nothing.
    pub fn apply(&self, commands: Vec<Value>) -> Result<(), String> {
        let doc = json!({ "nftables": commands });
        self.run(&["-j", "-f", "-"], doc.to_string().as_bytes())
            .map(|_| ())
    }

    /// botd's table; `None` when it does not exist.
    pub fn list(&self) -> Result<Option<Listing>, String> {
        match self.run(&["-j", "list", "table", "inet", TABLE], b"") {
            Ok(out) => parse_listing(&out).map(Some),
            // nft says ENOENT's text for a missing table.
            Err(e) if e.contains("No such file or directory") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn parse_listing(out: &[u8]) -> Result<Listing, String> {
    let doc: Value = serde_json::from_slice(out).map_err(|e| format!("nft's JSON listing: {e}"))?;
    let mut l = Listing::default();
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for item in items {
        if let Some(set) = item.get("set") {
            let name = set.get("name").and_then(Value::as_str).unwrap_or("");
            if ![SET4, SET6, SET_MAC].contains(&name) {
                continue;
            }
            l.sets.push(name.to_string());
            let elems = set
                .get("elem")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            for e in elems {
                // An element with a timeout is `{"elem": {...}}`; a bare value has none.
                let (value, obj) = match e.get("elem") {
                    Some(o) => (o.get("val"), Some(o)),
                    None => (Some(e), None),
                };
                let Some(value) = value.and_then(Value::as_str) else {
                    continue;
                };
                let num = |k: &str| obj.and_then(|o| o.get(k)).and_then(Value::as_u64);
                l.entries.push(Entry {
                    set: name.to_string(),
                    value: value.to_string(),
                    timeout_secs: num("timeout").unwrap_or(0),
                    expires_secs: num("expires").unwrap_or(0),
                    comment: obj
                        .and_then(|o| o.get("comment"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                });
            }
        } else if let Some(chain) = item.get("chain") {
            if chain.get("name").and_then(Value::as_str) == Some(CHAIN) {
                l.rules.get_or_insert(0);
            }
        } else if let Some(rule) = item.get("rule")
            && rule.get("chain").and_then(Value::as_str) == Some(CHAIN)
        {
            *l.rules.get_or_insert(0) += 1;
        }
    }
    Ok(l)
}

/// The commands that make botd's table whole: the table, sets and chain are added when missing
/// (nft's `add` keeps what exists, elements included), the chain's rules are replaced.
pub fn ensure_commands() -> Vec<Value> {
    let set = |name: &str, ty: &str| {
        json!({"add": {"set": {"family": "inet", "table": TABLE, "name": name, "type": ty,
            "flags": ["timeout"]}}})
    };
    let rule = |proto: &str, field: &str, set: &str| {
        json!({"add": {"rule": {"family": "inet", "table": TABLE, "chain": CHAIN, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": field}},
                "right": format!("@{set}")}},
            {"drop": null}
        ]}}})
    };
    vec![
        json!({"add": {"table": {"family": "inet", "name": TABLE}}}),
        set(SET4, "ipv4_addr"),
        set(SET6, "ipv6_addr"),
        set(SET_MAC, "ether_addr"),
        json!({"add": {"chain": {"family": "inet", "table": TABLE, "name": CHAIN,
            "type": "filter", "hook": "forward", "prio": PRIORITY, "policy": "accept"}}}),
        json!({"flush": {"chain": {"family": "inet", "table": TABLE, "name": CHAIN}}}),
        rule("ip", "saddr", SET4),
        rule("ip", "daddr", SET4),
        rule("ip6", "saddr", SET6),
        rule("ip6", "daddr", SET6),
        rule("ether", "saddr", SET_MAC),
    ]
}

fn elem(set: &str, value: &str, timeout: Option<u64>, comment: &str) -> Value {
    let e = match timeout {
        Some(t) => json!({"elem": {"val": value, "timeout": t, "comment": comment}}),
        None => json!(value),
    };
    json!({"element": {"family": "inet", "table": TABLE, "name": set, "elem": [e]}})
}

/// Puts `value` in `set` for `timeout` seconds, replacing an element already there (a plain
/// `add` would keep its old timeout): add (a no-op when present), delete, add.
fn replace_commands(set: &str, value: &str, timeout: u64, comment: &str) -> Vec<Value> {
    vec![
        json!({"add": elem(set, value, Some(1), comment)}),
        json!({"delete": elem(set, value, None, "")}),
        json!({"add": elem(set, value, Some(timeout.max(1)), comment)}),
    ]
}

fn delete_command(set: &str, value: &str) -> Value {
    json!({"delete": elem(set, value, None, "")})
}

fn addr_set(a: IpAddr) -> &'static str {
    if a.is_ipv4() { SET4 } else { SET6 }
}

pub fn fmt_mac(m: &[u8; 6]) -> String {
    crate::proto::fmt_mac(m).to_string()
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut m {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

// ---------------------------------------------------------------------------------------------
// The quarantine

/// A host botd put in quarantine.
#[derive(Clone, Copy, Debug)]
struct Active {
    mac: Option<[u8; 6]>,
    until: Instant,
    block: u32,
}

/// What [`Quarantine::block`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Blocked {
        secs: u64,
        block: u32,
    },
    WouldBlock {
        secs: u64,
        block: u32,
    },
    /// An allowlisted host, with the reason.
    Refused(String),
    Failed(String),
}

/// The quarantine of `botd run` (`mode` dry-run or enforce).
pub struct Quarantine {
    cfg: ResponseConfig,
    nft: Nft,
    /// Blocks so far per host, each doubling the next one's timeout.
    blocks: HashMap<IpAddr, u32>,
    active: HashMap<IpAddr, Active>,
    /// Addresses never blocked beside `allow` (tests; the sensor's own are read at block time).
    pub extra_allow: Vec<IpAddr>,
}

impl Quarantine {
    /// `None` for `mode = "off"`. Enforce: makes botd's table whole and takes over the hosts
    /// already in its sets (a restart keeps their quarantine and block counts).
    pub fn new(cfg: &ResponseConfig) -> Result<Option<Quarantine>, String> {
        let mut q = Quarantine {
            cfg: cfg.clone(),
            nft: Nft::new(&cfg.nft),
            blocks: HashMap::new(),
            active: HashMap::new(),
            extra_allow: Vec::new(),
        };
        match cfg.mode {
            ResponseMode::Off => return Ok(None),
            ResponseMode::DryRun => {
                log!("dry-run: red hosts are logged as \"would block\", nftables is left alone");
            }
            ResponseMode::Enforce => {
                q.nft
                    .apply(ensure_commands())
                    .map_err(|e| format!("[response] mode = \"enforce\": {e}"))?;
                let listing = q.nft.list()?.unwrap_or_default();
                q.adopt(&listing);
                log!(
                    "enforce: table inet {TABLE} ready, {} hosts in quarantine",
                    q.active.len()
                );
            }
        }
        Ok(Some(q))
    }

    /// A new configuration; the block counts and hosts in quarantine carry over.
    pub fn reconfigure(&self, cfg: &ResponseConfig) -> Result<Option<Quarantine>, String> {
        let Some(mut q) = Quarantine::new(cfg)? else {
            log!("off: hosts in quarantine stay until their timeouts or `botd quarantine release`");
            return Ok(None);
        };
        for (h, n) in &self.blocks {
            let b = q.blocks.entry(*h).or_insert(0);
            *b = (*b).max(*n);
        }
        for (h, a) in &self.active {
            q.active.entry(*h).or_insert(*a);
        }
        q.extra_allow = self.extra_allow.clone();
        Ok(Some(q))
    }

    pub fn mode(&self) -> ResponseMode {
        self.cfg.mode
    }

    fn adopt(&mut self, l: &Listing) {
        let now = Instant::now();
        for e in &l.entries {
            let Ok(host) = e.value.parse::<IpAddr>() else {
                continue;
            };
            let block = e.block().max(1);
            let b = self.blocks.entry(host).or_insert(0);
            *b = (*b).max(block);
            self.active.insert(
                host,
                Active {
                    mac: e.partner().and_then(parse_mac),
                    until: now + Duration::from_secs(e.expires_secs),
                    block,
                },
            );
        }
    }

    /// The timeout of a host's `n`th block.
    pub fn timeout_of(&self, n: u32) -> u64 {
        let factor = 1u64.checked_shl(n.saturating_sub(1)).unwrap_or(u64::MAX);
        self.cfg
            .timeout_secs
            .saturating_mul(factor)
            .min(self.cfg.max_timeout_secs)
    }

    /// Why `host` may not be blocked, if it may not.
    pub fn refusal(&self, host: IpAddr, devices: &DeviceTable) -> Option<String> {
        if host.is_unspecified()
            || host.is_multicast()
            || host.is_loopback()
            || matches!(host, IpAddr::V4(v) if v.is_broadcast())
        {
            return Some("not a host address".into());
        }
        let own = own_addresses();
        let allowed = |a: IpAddr| -> Option<String> {
            if let Some(c) = self.cfg.allow.iter().find(|c| c.contains(a)) {
                return Some(format!("{a} is in [response] allow ({c})"));
            }
            if own.contains(&a) || self.extra_allow.contains(&a) {
                return Some(format!("{a} is the sensor's own address"));
            }
            None
        };
        if let Some(r) = allowed(host) {
            return Some(r);
        }
        if let Some(d) = devices.by_addr(host) {
            if d.roles.any() {
                let roles: Vec<&str> = d.roles.names().collect();
                return Some(format!("the LAN's {}", roles.join(", ")));
            }
            // A MAC shared with an allowlisted address (a router answering for others).
            if let Some(r) = d.addrs.iter().find_map(|(a, _)| allowed(*a)) {
                return Some(format!("its MAC {} is also {r}", fmt_mac(&d.mac)));
            }
        }
        None
    }

    /// Puts `host` (and its device's MAC, when known) in quarantine, or says why not; logs it.
    pub fn block(&mut self, host: IpAddr, devices: &DeviceTable) -> Outcome {
        let mac = devices.by_addr(host).map(|d| d.mac);
        self.block_with_mac(host, mac, devices)
    }

    /// [`Quarantine::block`] with the MAC given (`botd quarantine block --mac`).
    pub fn block_with_mac(
        &mut self,
        host: IpAddr,
        mac: Option<[u8; 6]>,
        devices: &DeviceTable,
    ) -> Outcome {
        if let Some(reason) = self.refusal(host, devices) {
            log!("refused to block {host}: {reason}");
            return Outcome::Refused(reason);
        }
        let block = self.blocks.get(&host).copied().unwrap_or(0) + 1;
        let secs = self.timeout_of(block);
        let who = match mac {
            Some(m) => format!("{host} ({})", fmt_mac(&m)),
            None => host.to_string(),
        };
        if self.cfg.mode != ResponseMode::Enforce {
            self.blocks.insert(host, block);
            log!("would block {who} for {secs} s (block {block}; dry-run)");
            return Outcome::WouldBlock { secs, block };
        }
        let mut cmds = ensure_commands();
        let comment = match mac {
            Some(m) => format!("botd block {block} mac {}", fmt_mac(&m)),
            None => format!("botd block {block}"),
        };
        cmds.extend(replace_commands(
            addr_set(host),
            &host.to_string(),
            secs,
            &comment,
        ));
        if let Some(m) = mac {
            let c = format!("botd block {block} host {host}");
            cmds.extend(replace_commands(SET_MAC, &fmt_mac(&m), secs, &c));
        }
        if let Err(e) = self.nft.apply(cmds) {
            log!("failed to block {who}: {e}");
            return Outcome::Failed(e);
        }
        self.blocks.insert(host, block);
        self.active.insert(
            host,
            Active {
                mac,
                until: Instant::now() + Duration::from_secs(secs),
                block,
            },
        );
        log!("blocked {who} for {secs} s (block {block})");
        Outcome::Blocked { secs, block }
    }

    /// A red alert's host goes into quarantine; the alert says whether it did.
    pub fn on_alert(&mut self, alert: &mut Alert, devices: &DeviceTable) {
        if alert.level != Level::Red {
            return;
        }
        if let Outcome::Blocked { .. } = self.block(alert.host, devices) {
            alert.action = Action::Blocked;
        }
    }

    /// Blocks of `host` so far (dry-run counts the ones it would have made).
    pub fn blocks(&self, host: IpAddr) -> u32 {
        self.blocks.get(&host).copied().unwrap_or(0)
    }

    /// Hosts botd holds in quarantine (by its clock).
    pub fn active(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.active.keys().copied()
    }

    /// Enforce: checks botd's table and re-creates it with the hosts still in quarantine (their
    /// remaining time) when it was removed (`nft flush ruleset`) or damaged; forgets the hosts
    /// released (by `botd quarantine release`) or timed out, logging each. Returns whether the
    /// table had to be repaired.
    pub fn check(&mut self) -> Result<bool, String> {
        if self.cfg.mode != ResponseMode::Enforce {
            return Ok(false);
        }
        let listing = self.nft.list()?;
        let now = Instant::now();
        let mut gone = Vec::new();
        if let Some(l) = &listing {
            for (host, a) in &self.active {
                // Only an element missing from a set that exists was taken out.
                let set = addr_set(*host);
                if l.sets.iter().any(|s| s == set) && !l.has(set, &host.to_string()) {
                    gone.push((*host, *a));
                }
            }
        }
        for (host, a) in gone {
            self.active.remove(&host);
            // The kernel's timeout and botd's clock agree to within a second or two.
            if a.until <= now + Duration::from_secs(2) {
                log!("released {host} (timeout; block {})", a.block);
            } else {
                log!("released {host} (removed from nft, by `botd quarantine release` or by hand)");
                // The MAC goes with its address.
                if let Some(m) = a.mac {
                    let _ = self.nft.apply(vec![delete_command(SET_MAC, &fmt_mac(&m))]);
                }
            }
        }
        self.active.retain(|host, a| {
            let on = a.until > now;
            if !on {
                log!("released {host} (timeout; block {})", a.block);
            }
            on
        });
        // Hosts put there by `botd quarantine block` meanwhile: kept through a re-creation too.
        if let Some(l) = &listing {
            let known = |e: &Entry| {
                e.value
                    .parse::<IpAddr>()
                    .is_ok_and(|h| self.active.contains_key(&h))
            };
            let new = Listing {
                entries: l
                    .entries
                    .iter()
                    // An element at 0 s is on its way out.
                    .filter(|e| e.set != SET_MAC && e.expires_secs > 0 && !known(e))
                    .cloned()
                    .collect(),
                ..Listing::default()
            };
            for e in &new.entries {
                log!(
                    "took over {} ({} s left, block {}; blocked by hand)",
                    e.value,
                    e.expires_secs,
                    e.block()
                );
            }
            self.adopt(&new);
        }
        if listing.as_ref().is_some_and(Listing::whole) {
            return Ok(false);
        }
        let l = listing.unwrap_or_default();
        let mut cmds = ensure_commands();
        let mut restored = 0;
        for (host, a) in &self.active {
            let left = a.until.saturating_duration_since(now).as_secs().max(1);
            let set = addr_set(*host);
            if !l.has(set, &host.to_string()) {
                let comment = match a.mac {
                    Some(m) => format!("botd block {} mac {}", a.block, fmt_mac(&m)),
                    None => format!("botd block {}", a.block),
                };
                cmds.extend(replace_commands(set, &host.to_string(), left, &comment));
                restored += 1;
            }
            if let Some(m) = a.mac
                && !l.has(SET_MAC, &fmt_mac(&m))
            {
                let c = format!("botd block {} host {host}", a.block);
                cmds.extend(replace_commands(SET_MAC, &fmt_mac(&m), left, &c));
            }
        }
        self.nft.apply(cmds)?;
        log!(
            "table inet {TABLE} was {}; re-created with {restored} hosts in quarantine",
            if l.sets.is_empty() && l.rules.is_none() {
                "missing"
            } else {
                "incomplete"
            }
        );
        Ok(true)
    }
}

/// Every address of this machine's interfaces (the capture interface's among them).
pub fn own_addresses() -> Vec<IpAddr> {
    pnet::datalink::interfaces()
        .iter()
        .flat_map(|i| i.ips.iter().map(|n| n.ip()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// `botd quarantine`

#[derive(clap::Args, Debug)]
pub struct QuarantineArgs {
    #[command(subcommand)]
    pub command: QuarantineCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum QuarantineCommand {
    /// The hosts in botd's nftables sets: address, MAC, block number, timeout and time left.
    List {
        /// Configuration file (its `[response] nft`; default: config/botd.toml when it exists).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Puts a host in quarantine by hand, as a red alert would (`[response]` timeouts, doubling
    /// and allowlist; dry-run only logs).
    Block {
        /// An IPv4 or IPv6 address.
        addr: IpAddr,
        /// The host's MAC, blocked with it.
        #[arg(long, value_name = "MAC")]
        mac: Option<String>,
        /// Configuration file (default: config/botd.toml when it exists).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Frees a host now: its address (or MAC) and the MAC (or addresses) blocked with it.
    Release {
        /// An IPv4 or IPv6 address, or a MAC.
        addr: String,
        /// Configuration file (its `[response] nft`; default: config/botd.toml when it exists).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// `botd quarantine list`'s table.
pub fn list_text(l: &Listing) -> String {
    let mut out = format!(
        "{:<39}  {:<17}  {:>5}  {:>9}  {:>9}\n",
        "ADDRESS", "MAC", "BLOCK", "TIMEOUT_S", "LEFT_S"
    );
    let mut rows: Vec<&Entry> = l.entries.iter().filter(|e| e.set != SET_MAC).collect();
    // A MAC whose address is gone (or was never known) gets a line of its own.
    let named: Vec<&str> = rows.iter().filter_map(|e| e.partner()).collect();
    let orphans: Vec<&Entry> = l
        .entries
        .iter()
        .filter(|e| e.set == SET_MAC && !named.contains(&e.value.as_str()))
        .collect();
    rows.sort_by(|a, b| a.value.cmp(&b.value));
    for e in rows {
        out.push_str(&format!(
            "{:<39}  {:<17}  {:>5}  {:>9}  {:>9}\n",
            e.value,
            e.partner().unwrap_or("-"),
            e.block(),
            e.timeout_secs,
            e.expires_secs
        ));
    }
    for e in orphans {
        out.push_str(&format!(
            "{:<39}  {:<17}  {:>5}  {:>9}  {:>9}\n",
            "-",
            e.value,
            e.block(),
            e.timeout_secs,
            e.expires_secs
        ));
    }
    out
}

pub fn quarantine_command(args: QuarantineArgs) -> Result<(), String> {
    match args.command {
        QuarantineCommand::List { config } => {
            let cfg = crate::pipeline::load_config(config.as_deref())?;
            let nft = Nft::new(&cfg.response.nft);
            let listing = nft.list()?.unwrap_or_default();
            print!("{}", list_text(&listing));
            Ok(())
        }
        QuarantineCommand::Block { addr, mac, config } => {
            let cfg = crate::pipeline::load_config(config.as_deref())?;
            let mac = match mac {
                Some(m) => Some(parse_mac(&m).ok_or_else(|| format!("{m:?} is not a MAC"))?),
                None => None,
            };
            let Some(mut q) = Quarantine::new(&cfg.response)? else {
                return Err("[response] mode is \"off\": nothing blocked".into());
            };
            match q.block_with_mac(addr, mac, &DeviceTable::new(1)) {
                Outcome::Blocked { .. } | Outcome::WouldBlock { .. } => Ok(()),
                Outcome::Refused(r) => Err(format!("{addr} not blocked: {r}")),
                Outcome::Failed(e) => Err(e),
            }
        }
        QuarantineCommand::Release { addr, config } => {
            let cfg = crate::pipeline::load_config(config.as_deref())?;
            let nft = Nft::new(&cfg.response.nft);
            let msg = release(&nft, &addr)?;
            log!("{msg}");
            Ok(())
        }
    }
}

/// Takes `what` (an address or a MAC) out of botd's sets with what was blocked with it.
pub fn release(nft: &Nft, what: &str) -> Result<String, String> {
    let listing = nft
        .list()?
        .ok_or_else(|| format!("{what} is not in quarantine (no table inet {TABLE})"))?;
    let key = if let Ok(a) = what.parse::<IpAddr>() {
        a.to_string()
    } else if let Some(m) = parse_mac(what) {
        fmt_mac(&m)
    } else {
        return Err(format!("{what:?} is neither an IP address nor a MAC"));
    };
    // The entry itself, and every entry naming it (its MAC, or the addresses of a MAC).
    let hit: Vec<&Entry> = listing
        .entries
        .iter()
        .filter(|e| e.value == key || e.partner() == Some(key.as_str()))
        .collect();
    let mut doomed: Vec<(&str, &str)> = hit
        .iter()
        .map(|e| (e.set.as_str(), e.value.as_str()))
        .collect();
    for e in &hit {
        if e.value == key
            && let Some(p) = e.partner()
            && let Some(partner) = listing.entries.iter().find(|x| x.value == p)
        {
            doomed.push((partner.set.as_str(), partner.value.as_str()));
        }
    }
    doomed.sort_unstable();
    doomed.dedup();
    if !hit.iter().any(|e| e.value == key) {
        return Err(format!("{key} is not in quarantine"));
    }
    nft.apply(
        doomed
            .iter()
            .map(|(set, value)| delete_command(set, value))
            .collect(),
    )?;
    let freed: Vec<&str> = doomed.iter().map(|(_, v)| *v).collect();
    Ok(format!(
        "released {} by `botd quarantine release`",
        freed.join(" ")
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_is_read_with_comments_and_partners() {
        let out = br#"{"nftables":[{"metainfo":{}},{"table":{"family":"inet","name":"botd"}},
        {"set":{"family":"inet","name":"quarantine4","table":"botd","type":"ipv4_addr",
          "flags":["timeout"],"elem":[{"elem":{"val":"10.0.0.2","timeout":7200,"expires":7199,
          "comment":"botd block 2 mac 02:00:00:00:00:01"}}]}},
        {"set":{"family":"inet","name":"quarantine6","table":"botd","type":"ipv6_addr"}},
        {"set":{"family":"inet","name":"quarantine_mac","table":"botd","type":"ether_addr",
          "elem":[{"elem":{"val":"02:00:00:00:00:01","timeout":7200,"expires":7100,
          "comment":"botd block 2 host 10.0.0.2"}}]}},
        {"chain":{"family":"inet","table":"botd","name":"forward"}},
        {"rule":{"chain":"forward"}},{"rule":{"chain":"forward"}},{"rule":{"chain":"forward"}},
        {"rule":{"chain":"forward"}},{"rule":{"chain":"forward"}}]}"#;
        let l = parse_listing(out).unwrap();
        assert!(l.whole());
        assert_eq!(l.entries.len(), 2);
        assert_eq!(l.entries[0].block(), 2);
        assert_eq!(l.entries[0].partner(), Some("02:00:00:00:00:01"));
        assert_eq!(l.entries[1].partner(), Some("10.0.0.2"));
        let text = list_text(&l);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("10.0.0.2") && text.contains("7199"), "{text}");
        assert!(parse_listing(b"not json").is_err());
        assert!(!parse_listing(br#"{"nftables":[]}"#).unwrap().whole());
    }

    #[test]
    fn timeouts_double_up_to_the_most() {
        let cfg = ResponseConfig {
            mode: ResponseMode::DryRun,
            timeout_secs: 3600,
            max_timeout_secs: 5 * 3600,
            ..ResponseConfig::default()
        };
        let q = Quarantine::new(&cfg).unwrap().unwrap();
        assert_eq!(q.timeout_of(1), 3600);
        assert_eq!(q.timeout_of(2), 7200);
        assert_eq!(q.timeout_of(3), 14400);
        assert_eq!(q.timeout_of(4), 18000);
        assert_eq!(q.timeout_of(200), 18000);
    }

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(
            parse_mac("aa:bb:cc:dd:ee:0f"),
            Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f])
        );
        assert_eq!(parse_mac("aa:bb:cc:dd:ee"), None);
        assert_eq!(parse_mac("aa:bb:cc:dd:ee:ff:00"), None);
        assert_eq!(parse_mac("aa:bb:cc:dd:ee:fff"), None);
        assert_eq!(parse_mac("10.0.0.1"), None);
    }
}
