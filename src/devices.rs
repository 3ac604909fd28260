//! Device identity: which hardware address (MAC) each home address belongs to, and the
//! device's DHCP hostname and vendor class, from DHCP, ARP and IPv6 neighbour discovery, in a
//! table sized at start-up. Alerts and reports name the device beside the address, and a
//! device's several addresses (IPv4 and its rotating IPv6 privacy addresses) are known as one.
//!
//! Roles: a device that hands out DHCP leases is the LAN's DHCP server, the router a lease names
//! is its gateway, and a device that answers DNS for other home hosts is a DNS server. Their
//! ordinary duties (ARP for departed hosts, answering and relaying) are not held against them.
//!
//! Full table: the device seen longest ago makes room (counted). A MAC claiming more addresses
//! than a device has slots keeps the newest (a router proxying ARP is one such).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::IpAddr;

use hashbrown::HashMap;

/// Addresses remembered per device (IPv4 and IPv6 together; the newest replace the oldest).
pub const DEVICE_ADDRS: usize = 8;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Roles {
    pub dhcp_server: bool,
    pub gateway: bool,
    pub dns_server: bool,
}

impl Roles {
    pub fn any(&self) -> bool {
        self.dhcp_server || self.gateway || self.dns_server
    }

    /// The roles as words, for evidence.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        [
            (self.gateway, "gateway"),
            (self.dhcp_server, "dhcp-server"),
            (self.dns_server, "dns-server"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    pub mac: [u8; 6],
    pub hostname: heapless::String<64>,
    pub vendor_class: heapless::String<48>,
    /// Addresses with when each was last seen, newest last.
    pub addrs: heapless::Vec<(IpAddr, u64), DEVICE_ADDRS>,
    pub first_ns: u64,
    pub last_ns: u64,
    pub roles: Roles,
}

/// What a document says of a device (`botd analyze --json`, the report, alerts).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeviceInfo {
    pub mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vendor_class: String,
    /// Every address of the device botd has seen (the host's own first).
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceCounters {
    pub observations: u64,
    /// Devices forgotten to make room for new ones.
    pub evicted: u64,
}

#[derive(Clone)]
pub struct DeviceTable {
    capacity: usize,
    by_mac: HashMap<[u8; 6], Device>,
    by_addr: HashMap<IpAddr, [u8; 6]>,
    pub counters: DeviceCounters,
}

fn usable_mac(mac: &[u8; 6]) -> bool {
    // Not all-zero, not broadcast, not multicast (the low bit of the first octet).
    *mac != [0; 6] && *mac != [0xff; 6] && mac.first().is_some_and(|b| b & 1 == 0)
}

fn usable_addr(a: IpAddr) -> bool {
    !(a.is_unspecified()
        || a.is_multicast()
        || a.is_loopback()
        || matches!(a, IpAddr::V4(v4) if v4.is_broadcast()))
}

impl DeviceTable {
    pub fn new(capacity: usize) -> DeviceTable {
        let capacity = capacity.max(1);
        DeviceTable {
            capacity,
            by_mac: HashMap::with_capacity(capacity),
            by_addr: HashMap::with_capacity(capacity * 2),
            counters: DeviceCounters::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }

    fn device_mut(&mut self, mac: [u8; 6], now: u64) -> Option<&mut Device> {
        if !usable_mac(&mac) {
            return None;
        }
        if !self.by_mac.contains_key(&mac) && self.by_mac.len() >= self.capacity {
            // The device seen longest ago makes room.
            let oldest = self
                .by_mac
                .values()
                .min_by_key(|d| (d.last_ns, d.mac))
                .map(|d| d.mac);
            if let Some(old) = oldest
                && let Some(d) = self.by_mac.remove(&old)
            {
                for (a, _) in &d.addrs {
                    if self.by_addr.get(a) == Some(&old) {
                        self.by_addr.remove(a);
                    }
                }
                self.counters.evicted += 1;
            }
        }
        let d = self.by_mac.entry(mac).or_insert_with(|| Device {
            mac,
            hostname: heapless::String::new(),
            vendor_class: heapless::String::new(),
            addrs: heapless::Vec::new(),
            first_ns: now,
            last_ns: now,
            roles: Roles::default(),
        });
        d.last_ns = d.last_ns.max(now);
        Some(d)
    }

    /// `mac` was seen using `addr` at `now` (an ARP sender, a neighbour advertisement, a lease).
    pub fn observe(&mut self, mac: [u8; 6], addr: IpAddr, now: u64) {
        if !usable_addr(addr) {
            return;
        }
        self.counters.observations += 1;
        let Some(d) = self.device_mut(mac, now) else {
            return;
        };
        let mut gone = None;
        if let Some(e) = d.addrs.iter_mut().find(|(a, _)| *a == addr) {
            e.1 = e.1.max(now);
        } else {
            if d.addrs.is_full() {
                // The address seen longest ago goes.
                if let Some(i) = d
                    .addrs
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(i, _)| i)
                {
                    gone = Some(d.addrs.swap_remove(i).0);
                }
            }
            let _ = d.addrs.push((addr, now));
        }
        if let Some(g) = gone
            && self.by_addr.get(&g) == Some(&mac)
        {
            self.by_addr.remove(&g);
        }
        // An address moves to the device that used it last.
        if let Some(prev) = self.by_addr.insert(addr, mac)
            && prev != mac
            && let Some(p) = self.by_mac.get_mut(&prev)
            && let Some(i) = p.addrs.iter().position(|(a, _)| *a == addr)
        {
            p.addrs.swap_remove(i);
        }
    }

    /// A DHCP client's hostname (option 12) and vendor class (option 60).
    pub fn name(&mut self, mac: [u8; 6], hostname: &str, vendor_class: &str, now: u64) {
        let Some(d) = self.device_mut(mac, now) else {
            return;
        };
        if !hostname.is_empty() {
            d.hostname.clear();
            let _ = d.hostname.push_str(hostname.get(..64).unwrap_or(hostname));
        }
        if !vendor_class.is_empty() {
            d.vendor_class.clear();
            let _ = d
                .vendor_class
                .push_str(vendor_class.get(..48).unwrap_or(vendor_class));
        }
    }

    /// Marks the device behind `addr` (known by address or by `mac`) with a role.
    pub fn set_role(&mut self, addr: IpAddr, mac: Option<[u8; 6]>, set: impl Fn(&mut Roles)) {
        let mac = self.by_addr.get(&addr).copied().or(mac);
        if let Some(m) = mac
            && let Some(d) = self.by_mac.get_mut(&m)
        {
            set(&mut d.roles);
        }
    }

    /// The device that uses `addr`.
    pub fn by_addr(&self, addr: IpAddr) -> Option<&Device> {
        self.by_mac.get(self.by_addr.get(&addr)?)
    }

    /// The roles of the device behind `addr`, none when unknown.
    pub fn roles(&self, addr: IpAddr) -> Roles {
        self.by_addr(addr).map(|d| d.roles).unwrap_or_default()
    }

    /// A device as documents show it, with `addr` first among its addresses.
    pub fn info(&self, addr: IpAddr) -> Option<DeviceInfo> {
        let d = self.by_addr(addr)?;
        let mut addresses = vec![addr.to_string()];
        let mut others: Vec<&(IpAddr, u64)> = d.addrs.iter().filter(|(a, _)| *a != addr).collect();
        others.sort_by_key(|(a, _)| *a);
        addresses.extend(others.iter().map(|(a, _)| a.to_string()));
        Some(DeviceInfo {
            mac: crate::proto::fmt_mac(&d.mac).to_string(),
            hostname: d.hostname.to_string(),
            vendor_class: d.vendor_class.to_string(),
            addresses,
            roles: d.roles.names().map(String::from).collect(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

    #[test]
    fn a_device_keeps_its_addresses_and_name() {
        let mut t = DeviceTable::new(4);
        t.observe(MAC, ip("192.168.1.20"), 1);
        t.observe(MAC, ip("fd00::1234"), 2);
        t.name(MAC, "camera", "udhcp 1.30", 3);
        let info = t.info(ip("fd00::1234")).unwrap();
        assert_eq!(info.mac, "02:00:00:00:00:01");
        assert_eq!(info.hostname, "camera");
        assert_eq!(info.addresses, ["fd00::1234", "192.168.1.20"]);
        // Broadcast and zero MACs, unspecified addresses are not devices.
        t.observe([0xff; 6], ip("192.168.1.30"), 4);
        t.observe(MAC, ip("0.0.0.0"), 4);
        assert!(t.by_addr(ip("192.168.1.30")).is_none());
        assert_eq!(t.by_addr(ip("192.168.1.20")).unwrap().addrs.len(), 2);
    }

    #[test]
    fn rotating_privacy_addresses_stay_bounded_and_an_address_moves() {
        let mut t = DeviceTable::new(4);
        for i in 0..20u64 {
            t.observe(
                MAC,
                IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i as u16)),
                i,
            );
        }
        let d = t.by_addr(ip("fd00::13")).unwrap();
        assert_eq!(d.addrs.len(), DEVICE_ADDRS);
        assert!(t.by_addr(ip("fd00::1")).is_none(), "the oldest went");
        let other = [0x02, 0, 0, 0, 0, 2];
        t.observe(other, ip("fd00::13"), 30);
        assert_eq!(t.by_addr(ip("fd00::13")).unwrap().mac, other);
        assert_eq!(t.by_mac[&MAC].addrs.len(), DEVICE_ADDRS - 1);
    }

    #[test]
    fn a_full_table_forgets_the_device_seen_longest_ago() {
        let mut t = DeviceTable::new(2);
        for i in 1..=3u8 {
            t.observe(
                [2, 0, 0, 0, 0, i],
                IpAddr::V4([10, 0, 0, i].into()),
                u64::from(i),
            );
        }
        assert_eq!(t.len(), 2);
        assert_eq!(t.counters.evicted, 1);
        assert!(t.by_addr(ip("10.0.0.1")).is_none());
        assert!(t.by_addr(ip("10.0.0.3")).is_some());
    }
}
