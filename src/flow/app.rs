//! A flow's application summary: what the first payload bytes of each direction say, whatever
//! the port, in a fixed size (the largest protocol summary; `size_of::<AppState>()` is stated in
//! the README). The engine offers a flow the payloads [`crate::proto::worth_inspecting`] keeps,
//! at most [`INSPECT_SEGMENTS`] per direction and [`crate::proto::PAYLOAD_CAP`] bytes each; the
//! first one decides the protocol, later ones add to its summary.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::proto::{
    bittorrent, bittorrent::BittorrentSummary, dhcp::DhcpSummary, dns::DnsSummary,
    http::HttpSummary, irc::IrcSummary, mining::MiningSummary, ndp, profile::ProfileSummary,
    smtp::SmtpSummary, ssh::SshSummary, tls::TlsSummary,
};
use crate::proto::{dhcp, dns, http, irc, mining, smtp, ssh, tls};
use crate::wire::proto;

/// Payload-carrying packets read per direction of a flow: enough for SMTP's RCPT TO and IRC's
/// JOIN, which follow a few exchanges after the greeting.
pub const INSPECT_SEGMENTS: u8 = 8;

/// What the payload of a flow was recognised as, with that protocol's summary.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum App {
    /// Nothing recognised (yet).
    #[default]
    None,
    Dns(DnsSummary),
    Tls(TlsSummary),
    Http(HttpSummary),
    Smtp(SmtpSummary),
    Irc(IrcSummary),
    Ssh(SshSummary),
    Mining(MiningSummary),
    Dhcp(DhcpSummary),
    /// The BitTorrent peer-wire handshake, DHT or uTP.
    Bittorrent(BittorrentSummary),
    /// ARP: the sender of the flow's request and of its reply.
    Arp(ArpSummary),
    /// IPv6 neighbour discovery: the first message of each direction.
    Ndp(NdpSummary),
    /// A machine profile a TCP client sent in clear over a protocol not recognised otherwise
    /// (a RAT's check-in; `crate::proto::profile`).
    Profile(ProfileSummary),
}

impl App {
    /// The protocol's name as `botd flows` prints it (`-` for none).
    pub fn name(&self) -> &'static str {
        match self {
            App::None => "-",
            App::Dns(_) => "dns",
            App::Tls(_) => "tls",
            App::Http(_) => "http",
            App::Smtp(_) => "smtp",
            App::Irc(_) => "irc",
            App::Ssh(_) => "ssh",
            App::Mining(_) => "mining",
            App::Dhcp(_) => "dhcp",
            App::Bittorrent(_) => "bittorrent",
            App::Arp(_) => "arp",
            App::Ndp(_) => "ndp",
            App::Profile(_) => "profile",
        }
    }
}

/// An ARP flow's senders: (hardware, protocol address) of the request and of the reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct ArpSummary {
    #[serde(serialize_with = "crate::proto::ser_mac_opt")]
    pub request_mac: Option<[u8; 6]>,
    #[serde(serialize_with = "crate::proto::ser_ipv4_opt")]
    pub request_ip: Option<[u8; 4]>,
    #[serde(serialize_with = "crate::proto::ser_mac_opt")]
    pub reply_mac: Option<[u8; 6]>,
    #[serde(serialize_with = "crate::proto::ser_ipv4_opt")]
    pub reply_ip: Option<[u8; 4]>,
}

/// A neighbour-discovery flow's first message from each side.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct NdpSummary {
    pub first: Option<ndp::Neighbour>,
    pub second: Option<ndp::Neighbour>,
}

/// The application state a flow carries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppState {
    pub app: App,
    /// Payloads read so far, from the flow's source and from its destination.
    pub inspected: [u8; 2],
    /// Payloads of the recognised protocol that could not be read (counted, then ignored).
    pub malformed: u8,
}

impl AppState {
    /// One packet's payload; `from_src`: sent by the flow's source (the client, for TCP and
    /// for flows a request opened). `ports`: the packet's (source, destination) ports.
    pub fn on_payload(&mut self, ip_proto: u8, ports: (u16, u16), from_src: bool, payload: &[u8]) {
        let dir = usize::from(!from_src);
        let Some(n) = self.inspected.get_mut(dir) else {
            return;
        };
        if *n >= INSPECT_SEGMENTS || payload.is_empty() {
            return;
        }
        *n += 1;
        if matches!(self.app, App::None) {
            self.app = classify(ip_proto, ports, payload);
            // Only what a client says of itself, and only in a protocol not known otherwise.
            if matches!(self.app, App::None)
                && ip_proto == proto::TCP
                && from_src
                && let Some(p) = ProfileSummary::of(payload)
            {
                self.app = App::Profile(p);
            }
        }
        let ok = match &mut self.app {
            App::None | App::Profile(_) => true,
            App::Bittorrent(b) => {
                b.update(payload, from_src);
                true
            }
            App::Dns(d) => d.update(payload, ip_proto == proto::TCP).is_ok(),
            App::Tls(t) => {
                t.update(payload, from_src);
                true
            }
            App::Http(h) => {
                h.update(payload, from_src);
                true
            }
            App::Smtp(s) => {
                s.update(payload, from_src);
                true
            }
            App::Irc(s) => {
                s.update(payload, from_src);
                true
            }
            App::Ssh(s) => {
                s.update(payload, from_src);
                true
            }
            App::Mining(s) => {
                s.update(payload, from_src);
                true
            }
            App::Dhcp(d) => match dhcp::parse_dhcp(payload) {
                Ok(msg) => {
                    merge_dhcp(d, msg);
                    true
                }
                Err(_) => false,
            },
            App::Arp(a) => match ndp::parse_arp(payload) {
                Some(arp) => {
                    if arp.op == 2 {
                        a.reply_mac = a.reply_mac.or(Some(arp.sender_mac));
                        a.reply_ip = a.reply_ip.or(Some(arp.sender_ip));
                    } else {
                        a.request_mac = a.request_mac.or(Some(arp.sender_mac));
                        a.request_ip = a.request_ip.or(Some(arp.sender_ip));
                    }
                    true
                }
                None => false,
            },
            App::Ndp(s) => match ndp::parse_ndp(payload) {
                Some(nd) => {
                    if s.first.is_none() {
                        s.first = Some(nd);
                    } else if s.second.is_none() {
                        s.second = Some(nd);
                    }
                    true
                }
                None => false,
            },
        };
        if !ok {
            self.malformed = self.malformed.saturating_add(1);
        }
    }
}

/// The protocol of a flow from its first inspected payload.
fn classify(ip_proto: u8, (sport, dport): (u16, u16), p: &[u8]) -> App {
    match ip_proto {
        proto::TCP => {
            if tls::looks_like_tls(p) {
                App::Tls(TlsSummary::default())
            } else if http::looks_like_http_request(p) || http::looks_like_http_response(p) {
                App::Http(HttpSummary::default())
            } else if ssh::looks_like_ssh(p) {
                App::Ssh(SshSummary::default())
            } else if smtp::looks_like_smtp_server(p) || smtp::looks_like_smtp_client(p) {
                App::Smtp(SmtpSummary::default())
            } else if irc::looks_like_irc_client(p) || irc::looks_like_irc_server(p) {
                App::Irc(IrcSummary::default())
            } else if mining::looks_like_stratum(p) {
                App::Mining(MiningSummary::default())
            } else if bittorrent::looks_like_bittorrent(p) {
                App::Bittorrent(BittorrentSummary::default())
            } else if sport == 53 || dport == 53 {
                App::Dns(DnsSummary::default())
            } else {
                App::None
            }
        }
        proto::UDP => {
            if crate::proto::dhcp_port(sport) && crate::proto::dhcp_port(dport) {
                App::Dhcp(DhcpSummary::default())
            } else if crate::proto::dns_port(sport)
                || crate::proto::dns_port(dport)
                || dns::looks_like_dns(p)
            {
                App::Dns(DnsSummary::default())
            } else if bittorrent::looks_like_bittorrent_udp(p) {
                App::Bittorrent(BittorrentSummary::default())
            } else {
                App::None
            }
        }
        proto::ARP => App::Arp(ArpSummary::default()),
        proto::ICMPV6 => App::Ndp(NdpSummary::default()),
        _ => App::None,
    }
}

/// A DHCP exchange keeps the first value of each field any of its messages carried; the
/// message type is the last one's (an ACK after a REQUEST).
fn merge_dhcp(d: &mut DhcpSummary, m: DhcpSummary) {
    if m.msg_type.is_some() {
        d.msg_type = m.msg_type;
    }
    if d.client_mac == [0; 6] {
        d.client_mac = m.client_mac;
    }
    if d.hostname.is_empty() {
        d.hostname = m.hostname;
    }
    if d.vendor_class.is_empty() {
        d.vendor_class = m.vendor_class;
    }
    d.requested_ip = d.requested_ip.or(m.requested_ip);
    d.your_ip = d.your_ip.or(m.your_ip);
    d.client_ip = d.client_ip.or(m.client_ip);
    d.server_id = d.server_id.or(m.server_id);
    d.router = d.router.or(m.router);
    d.dns_server = d.dns_server.or(m.dns_server);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The README states these sizes; a summary that grows must be noticed there too.
    #[test]
    fn summary_and_flow_sizes() {
        let app = std::mem::size_of::<AppState>();
        let flow = std::mem::size_of::<crate::flow::Flow>();
        println!("AppState {app} bytes, Flow {flow} bytes");
        assert!(app <= 232, "AppState is {app} bytes");
        assert!(flow <= 640, "Flow is {flow} bytes");
    }

    #[test]
    fn the_first_payload_picks_the_protocol_and_the_rest_add_to_it() {
        let mut s = AppState::default();
        s.on_payload(
            proto::TCP,
            (40000, 8080),
            true,
            b"GET /a HTTP/1.1\r\nHost: example.org\r\nUser-Agent: t/1\r\n\r\n",
        );
        s.on_payload(proto::TCP, (8080, 40000), false, b"HTTP/1.1 200 OK\r\n\r\n");
        let App::Http(h) = &s.app else {
            panic!("{:?}", s.app)
        };
        assert_eq!((h.host.as_str(), h.status), ("example.org", Some(200)));
        assert_eq!(s.inspected, [1, 1]);
        // Past the per-direction budget nothing more is read.
        for _ in 0..20 {
            s.on_payload(proto::TCP, (40000, 8080), true, b"GET /b HTTP/1.1\r\n\r\n");
        }
        assert_eq!(s.inspected[0], INSPECT_SEGMENTS);
    }

    #[test]
    fn unrecognised_payloads_stay_none_and_malformed_ones_are_counted() {
        let mut s = AppState::default();
        s.on_payload(
            proto::TCP,
            (40000, 9999),
            true,
            &[0x17, 0x03, 0x03, 0, 5, 1, 2],
        );
        assert_eq!(s.app, App::None);
        let mut d = AppState::default();
        // Port 53 makes it DNS; a 3-byte message cannot be read.
        d.on_payload(proto::UDP, (5000, 53), true, &[1, 2, 3]);
        assert!(matches!(d.app, App::Dns(_)));
        assert_eq!(d.malformed, 1);
    }
}
