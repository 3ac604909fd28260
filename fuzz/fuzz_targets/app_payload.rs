//! Bytes as one flow's payload segments, through the per-flow dispatcher
//! (`AppState::on_payload`, so every protocol parser behind it) and through each parser directly.
//! Nothing may panic; every summary must serialise to JSON. Invariants: at most
//! `INSPECT_SEGMENTS` payloads are read per direction; once a protocol is recognised it stays, and
//! the dispatcher's summary equals the protocol's own summary fed the same payloads; every payload
//! the recognised parser refuses (DNS, DHCP, ARP, NDP) is counted in `malformed`, and nothing else
//! is. The DNS name helpers keep `parent_domain` a suffix and `subdomain_part` a prefix of the name.
//!
//! Input layout: `[proto+flags] [sport:2] [dport:2]`, then segments `[dir] [len:2 LE] [bytes...]`
//! (the last one takes what is left when `len` overruns).
#![no_main]

use botd::flow::app::{App, AppState, INSPECT_SEGMENTS};
use botd::proto::{bittorrent, dhcp, dns, http, irc, mining, ndp, profile, smtp, ssh, tls};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;

/// TCP, UDP, ICMPv6, and botd's pseudo-protocol for ARP.
const PROTOS: [u8; 4] = [6, 17, 58, 255];
/// Ports the dispatcher or the engine treat specially (flag 0x04 of the first byte picks from
/// here, so the fuzzer need not guess them).
const PORTS: [u16; 16] = [
    53, 67, 68, 5353, 5355, 137, 546, 547, 80, 443, 25, 6667, 22, 3333, 6881, 12345,
];
/// Segments read from one input (the dispatcher takes `INSPECT_SEGMENTS` per direction; more
/// checks the cap).
const MAX_SEGMENTS: usize = 2 * INSPECT_SEGMENTS as usize + 4;

fn json<T: Serialize>(v: &T) {
    let text = match serde_json::to_string(v) {
        Ok(t) => t,
        Err(e) => panic!("serialisation failed: {e}"),
    };
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
        panic!("serialised text is not JSON ({e}): {text}");
    }
}

/// The DNS name helpers on any text: no panic, and the documented shapes.
fn names(name: &str) {
    let st = dns::name_stats(name);
    json(&st);
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    assert_eq!(usize::from(st.len), trimmed.len().min(usize::from(u16::MAX)));
    assert!(
        st.entropy.is_finite() && st.entropy >= 0.0 && st.entropy <= 8.0 + 1e-3,
        "entropy {} of {name:?}",
        st.entropy
    );
    let parent = dns::parent_domain(name);
    assert!(trimmed.ends_with(parent), "parent {parent:?} of {name:?}");
    let sub = dns::subdomain_part(name);
    assert!(trimmed.starts_with(sub), "subdomain {sub:?} of {name:?}");
    assert!(sub.len() <= trimmed.len());
}

/// Every parser on its own, fed the segments in order (`from_src` as the client).
#[derive(Default)]
struct Direct {
    dns_udp: dns::DnsSummary,
    dns_tcp: dns::DnsSummary,
    tls: tls::TlsSummary,
    http: http::HttpSummary,
    smtp: smtp::SmtpSummary,
    irc: irc::IrcSummary,
    ssh: ssh::SshSummary,
    mining: mining::MiningSummary,
    bittorrent: bittorrent::BittorrentSummary,
}

impl Direct {
    fn segment(&mut self, seg: &[u8], from_src: bool) {
        let _ = self.dns_udp.update(seg, false);
        let _ = self.dns_tcp.update(seg, true);
        self.tls.update(seg, from_src);
        self.http.update(seg, from_src);
        self.smtp.update(seg, from_src);
        self.irc.update(seg, from_src);
        self.ssh.update(seg, from_src);
        self.mining.update(seg, from_src);
        self.bittorrent.update(seg, from_src);

        // The recognisers the dispatcher uses.
        let _ = (
            dns::looks_like_dns(seg),
            tls::looks_like_tls(seg),
            http::looks_like_http_request(seg),
            http::looks_like_http_response(seg),
            smtp::looks_like_smtp_server(seg),
            smtp::looks_like_smtp_client(seg),
            irc::looks_like_irc_client(seg),
            irc::looks_like_irc_server(seg),
            ssh::looks_like_ssh(seg),
            mining::looks_like_stratum(seg),
            bittorrent::looks_like_bittorrent(seg),
            bittorrent::looks_like_bittorrent_udp(seg),
            bittorrent::looks_like_krpc(seg),
            bittorrent::looks_like_utp(seg),
        );

        // DNS views: the whole message walked, every section.
        for bytes in [Some(seg), dns::tcp_first_message(seg).ok()].into_iter().flatten() {
            if let Ok(msg) = dns::Message::parse(bytes) {
                let _ = (msg.opcode(), msg.rcode(), msg.is_response());
                let mut qs = msg.questions();
                for q in qs.by_ref() {
                    let Ok(q) = q else { break };
                    let mut text = String::new();
                    let _ = q.name.write_text(&mut text);
                    let _ = q.name.labels().count();
                }
                let total = msg
                    .ancount
                    .saturating_add(msg.nscount)
                    .saturating_add(msg.arcount);
                for rr in msg.records(qs.position(), total) {
                    let Ok(rr) = rr else { break };
                    if let Some(a) = rr.address() {
                        let _ = a.ip();
                    }
                    let mut text = String::new();
                    let _ = rr.name.write_text(&mut text);
                }
            }
        }

        // TLS views: the segment as a hello body, and after a record + handshake header.
        for body in [Some(seg), seg.get(9..)].into_iter().flatten() {
            for whole in [false, true] {
                if let Some(ch) = tls::ClientHello::parse(body, whole) {
                    let _ = ch.ciphers().count();
                    let _ = ch.extensions().count();
                    let _ = (ch.sni(), ch.alpn(), ch.max_version());
                }
            }
            if let Some(sh) = tls::ServerHello::parse(body) {
                let _ = sh.selected_version();
            }
        }

        // DHCP, NDP, ARP.
        match dhcp::parse_dhcp(seg) {
            Ok(s) => {
                json(&s);
                let b = dhcp::Bootp::parse(seg).unwrap_or_else(|e| panic!("parse_dhcp ok, Bootp {e}"));
                let mut opts = b.options();
                let _ = opts.by_ref().count();
                assert_eq!(opts.malformed(), s.options_malformed);
            }
            Err(e) => {
                let _ = e.to_string();
                assert!(dhcp::Bootp::parse(seg).is_err());
            }
        }
        if let Some(n) = ndp::parse_ndp(seg) {
            json(&n);
        }
        if let Some(a) = ndp::parse_arp(seg) {
            let _ = a.gratuitous();
            json(&a);
        }
        if let Some(p) = profile::ProfileSummary::of(seg) {
            assert!(p.fields >= 5 && !p.os.is_empty());
            json(&p);
        }
    }

    fn finish(&self) {
        json(&self.dns_udp);
        json(&self.dns_tcp);
        json(&self.tls);
        json(&self.http);
        json(&self.smtp);
        json(&self.irc);
        json(&self.ssh);
        json(&self.mining);
        json(&self.bittorrent);
        if let Some(h) = self.tls.ja3_hex() {
            assert_eq!(h.len(), 32);
        }
        for d in [&self.dns_udp, &self.dns_tcp] {
            assert!(d.qname.len() <= dns::QNAME_CAP);
            assert!(d.answers.len() <= dns::ANSWERS_CAP);
            if !d.qname_truncated {
                assert_eq!(usize::from(d.qname_len), d.qname.len(), "{d:?}");
            }
            names(&d.qname);
        }
        names(&self.tls.sni);
    }
}

/// What the dispatcher's recognised parser makes of the payloads from the one that recognised
/// it on: its summary (where it has one of its own) and the payloads it refused.
struct Shadow {
    app: App,
    refused: u32,
}

impl Shadow {
    fn new(app: &App) -> Self {
        let app = match app {
            App::Dns(_) => App::Dns(dns::DnsSummary::default()),
            App::Tls(_) => App::Tls(tls::TlsSummary::default()),
            App::Http(_) => App::Http(http::HttpSummary::default()),
            App::Smtp(_) => App::Smtp(smtp::SmtpSummary::default()),
            App::Irc(_) => App::Irc(irc::IrcSummary::default()),
            App::Ssh(_) => App::Ssh(ssh::SshSummary::default()),
            App::Mining(_) => App::Mining(mining::MiningSummary::default()),
            App::Bittorrent(_) => App::Bittorrent(bittorrent::BittorrentSummary::default()),
            // Summaries merged by the dispatcher itself: only the refusals are compared.
            other => other.clone(),
        };
        Shadow { app, refused: 0 }
    }

    fn segment(&mut self, ip_proto: u8, seg: &[u8], from_src: bool) {
        let ok = match &mut self.app {
            App::None | App::Profile(_) => true,
            App::Bittorrent(s) => {
                s.update(seg, from_src);
                true
            }
            App::Dns(d) => d.update(seg, ip_proto == 6).is_ok(),
            App::Tls(s) => {
                s.update(seg, from_src);
                true
            }
            App::Http(s) => {
                s.update(seg, from_src);
                true
            }
            App::Smtp(s) => {
                s.update(seg, from_src);
                true
            }
            App::Irc(s) => {
                s.update(seg, from_src);
                true
            }
            App::Ssh(s) => {
                s.update(seg, from_src);
                true
            }
            App::Mining(s) => {
                s.update(seg, from_src);
                true
            }
            App::Dhcp(_) => dhcp::parse_dhcp(seg).is_ok(),
            App::Arp(_) => ndp::parse_arp(seg).is_some(),
            App::Ndp(_) => ndp::parse_ndp(seg).is_some(),
        };
        if !ok {
            self.refused += 1;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, mut rest)) = data.split_first_chunk::<5>() else {
        return;
    };
    let [flags, s0, s1, d0, d1] = *head;
    let ip_proto = PROTOS[usize::from(flags & 3)];
    let ports = if flags & 4 != 0 {
        (
            PORTS[usize::from(s0) % PORTS.len()],
            PORTS[usize::from(d0) % PORTS.len()],
        )
    } else {
        (u16::from_be_bytes([s0, s1]), u16::from_be_bytes([d0, d1]))
    };

    let mut segments: Vec<(bool, &[u8])> = Vec::new();
    while let Some((&[dir, l0, l1], tail)) = rest.split_first_chunk::<3>() {
        let len = usize::from(u16::from_le_bytes([l0, l1])).min(tail.len());
        let (seg, after) = tail.split_at(len);
        segments.push((dir & 1 == 0, seg));
        rest = after;
        if segments.len() == MAX_SEGMENTS {
            break;
        }
    }

    // The dispatcher, one segment at a time.
    let mut state = AppState::default();
    let mut shadow: Option<Shadow> = None;
    let mut read = [0u8; 2];
    for &(from_src, seg) in &segments {
        let before = state.app.name();
        let dir = usize::from(!from_src);
        let takes = !seg.is_empty() && read[dir] < INSPECT_SEGMENTS;
        state.on_payload(ip_proto, ports, from_src, seg);
        if takes {
            read[dir] += 1;
        }
        assert_eq!(state.inspected, read, "payloads read per direction");
        if before != "-" {
            assert_eq!(state.app.name(), before, "recognised protocol changed");
        }
        if !takes {
            continue;
        }
        if shadow.is_none() && !matches!(state.app, App::None) {
            shadow = Some(Shadow::new(&state.app));
        }
        if let Some(sh) = shadow.as_mut() {
            sh.segment(ip_proto, seg, from_src);
        }
    }
    match &shadow {
        None => {
            assert!(matches!(state.app, App::None));
            assert_eq!(state.malformed, 0);
        }
        Some(sh) => {
            assert_eq!(
                u32::from(state.malformed),
                sh.refused,
                "malformed payloads counted by the dispatcher vs refused by the {} parser",
                state.app.name()
            );
            if !matches!(sh.app, App::Dhcp(_) | App::Arp(_) | App::Ndp(_)) {
                assert_eq!(state.app, sh.app, "dispatcher summary differs from the parser's");
            }
        }
    }
    assert!(u32::from(state.malformed) <= u32::from(read[0]) + u32::from(read[1]));
    json(&state.app);
    match &state.app {
        App::Dns(d) => names(&d.qname),
        App::Tls(t) => names(&t.sni),
        _ => {}
    }

    // Every parser directly, on every segment (the dispatcher's caps do not apply here).
    let mut direct = Direct::default();
    for &(from_src, seg) in &segments {
        direct.segment(seg, from_src);
    }
    direct.finish();

    // The name helpers on the input as text.
    if let Ok(text) = core::str::from_utf8(data) {
        names(text);
    }
    for &(_, seg) in &segments {
        if let Ok(text) = core::str::from_utf8(seg) {
            names(text);
        }
    }
});
