//! Kinds of internet infrastructure that say something about who uses them: dynamic-DNS names
//! (a server with no fixed address: a home NAS, or a RAT's controller on a rented VPS or a
//! victim), public-address lookup services (a program asking what the internet sees it as: some
//! VPN and game clients, and much malware before it reports home), and TCP tunnel services (a
//! listener exposed from someone else's machine: a developer's test, or a RAT's controller).
//!
//! These are categories, not indicators of one campaign: the lists name providers (Suricata's ET
//! POLICY rules and Slips carry the same kinds), so they hold for families botd never saw. The
//! first two are weak evidence (needing a second signal); only a raw TCP session to a tunnel
//! service's TCP endpoint is strong.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

/// Zones of dynamic-DNS providers (a name under them points at whatever address its owner last
/// registered).
pub const DYNAMIC_DNS: &[&str] = &[
    // No-IP
    "ddns.net",
    "hopto.org",
    "zapto.org",
    "sytes.net",
    "no-ip.org",
    "no-ip.biz",
    "no-ip.info",
    "noip.me",
    "myftp.biz",
    "myftp.org",
    "serveftp.com",
    "servehttp.com",
    "redirectme.net",
    "servebeer.com",
    "serveblog.net",
    "servegame.com",
    "servequake.com",
    "viewdns.net",
    "webhop.me",
    "bounceme.net",
    "myvnc.com",
    "3utilities.com",
    "gotdns.ch",
    // Dyn
    "dyndns.org",
    "dyndns.info",
    "dyndns.biz",
    "dynalias.com",
    "homeip.net",
    "selfip.com",
    "is-a-geek.com",
    // DuckDNS, FreeDNS (afraid.org) and others
    "duckdns.org",
    "afraid.org",
    "mooo.com",
    "chickenkiller.com",
    "strangled.net",
    "dynu.net",
    "dynu.com",
    "freedynamicdns.net",
    "dynv6.net",
    "dynamic-dns.net",
    "dynamicdns.org.uk",
    "dnsdynamic.org",
    "changeip.com",
    "changeip.net",
    "dns.army",
    "linkpc.net",
    "3322.org",
    "f3322.net",
    "oray.net",
    "publicvm.com",
    "ddnsking.com",
    "ydns.eu",
    "nsupdate.info",
    "spdns.de",
    "dedyn.io",
    "freeddns.org",
    "ddnsfree.com",
    "kozow.com",
    "casacam.net",
];

/// Services that answer a client with its public address.
pub const IP_LOOKUP: &[&str] = &[
    "api.ipify.org",
    "api64.ipify.org",
    "ipify.org",
    "checkip.amazonaws.com",
    "checkip.dyndns.org",
    "checkip.dyndns.com",
    "icanhazip.com",
    "ipinfo.io",
    "ip-api.com",
    "ipecho.net",
    "ifconfig.me",
    "ifconfig.co",
    "myexternalip.com",
    "wtfismyip.com",
    "ident.me",
    "api.my-ip.io",
    "ipwho.is",
    "ipapi.co",
    "freegeoip.app",
    "geoplugin.net",
    "ip.sb",
    "myip.dnsomatic.com",
    "whatismyipaddress.com",
    "bot.whatismyipaddress.com",
    "iplogger.org",
];

/// Zones whose names are the TCP endpoints of tunnel services (raw TCP forwarded to a listener
/// somewhere else). Their HTTPS endpoints (ngrok-free.app, ...) are left out: web developers use
/// those every day.
pub const TCP_TUNNEL: &[&str] = &[
    "tcp.ngrok.io",
    "tcp.eu.ngrok.io",
    "tcp.ap.ngrok.io",
    "tcp.au.ngrok.io",
    "tcp.sa.ngrok.io",
    "tcp.jp.ngrok.io",
    "tcp.in.ngrok.io",
    "tcp.us-cal-1.ngrok.io",
    "portmap.io",
    "portmap.host",
    "bore.pub",
    "serveo.net",
    "pktriot.net",
    "tcp.pinggy.io",
];

/// Certificate names that command-and-control kits put in the TLS certificate their builder makes
/// for the operator's server, kept by every operator who does not replace it: the public
/// detectors of each kit match them (Corelight's Zeek QuasarRAT detector, the AsyncRAT and DcRat
/// certificate rules of ET and YARA sets, Elastic's and Sigma's default Cobalt Strike certificate
/// rules). A kit's name, not a campaign's, so it holds for operators botd never saw.
pub const C2_KIT_CERTS: &[(&str, &str)] = &[
    ("AsyncRAT Server", "AsyncRAT"),
    ("DcRat Server", "DcRat"),
    ("Quasar Server CA", "QuasarRAT"),
    ("Major Cobalt Strike", "Cobalt Strike"),
];

/// The kit whose default certificate name `cn` is (ASCII case ignored).
pub fn c2_kit_of_cert(cn: &str) -> Option<&'static str> {
    C2_KIT_CERTS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(cn))
        .map(|&(_, kit)| kit)
}

/// `name` is `zone` or a name under it (label boundary; ASCII case and a trailing dot ignored).
pub fn under(name: &str, zone: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let (n, z) = (name.as_bytes(), zone.as_bytes());
    if n.len() < z.len() {
        return false;
    }
    let cut = n.len() - z.len();
    let tail_matches = n
        .get(cut..)
        .is_some_and(|tail| tail.eq_ignore_ascii_case(z));
    tail_matches && (cut == 0 || n.get(cut - 1) == Some(&b'.'))
}

/// The zone of `list` that `name` is under, if one.
pub fn zone_of(name: &str, list: &[&'static str]) -> Option<&'static str> {
    list.iter().copied().find(|z| under(name, z))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn kit_certificates_match_whole_names_only() {
        assert_eq!(c2_kit_of_cert("asyncrat server"), Some("AsyncRAT"));
        assert_eq!(c2_kit_of_cert("Quasar Server CA"), Some("QuasarRAT"));
        assert_eq!(c2_kit_of_cert("Quasar Server"), None);
        assert_eq!(c2_kit_of_cert(""), None);
    }

    #[test]
    fn names_match_on_label_boundaries_only() {
        assert!(under(
            "messsagermail.dynamicdns.org.uk",
            "dynamicdns.org.uk"
        ));
        assert!(under("7.TCP.eu.ngrok.io.", "tcp.eu.ngrok.io"));
        assert!(under("api.ipify.org", "api.ipify.org"));
        assert!(!under("notddns.net", "ddns.net"));
        assert!(!under("ddns.net.example", "ddns.net"));
        assert!(!under("io", "ngrok.io"));
        assert_eq!(zone_of("x.duckdns.org", DYNAMIC_DNS), Some("duckdns.org"));
        assert_eq!(zone_of("www.example.com", DYNAMIC_DNS), None);
        // A tunnel service's web endpoints are not its TCP ones.
        assert_eq!(zone_of("abc.ngrok-free.app", TCP_TUNNEL), None);
        assert_eq!(zone_of("abc.ngrok.io", TCP_TUNNEL), None);
    }

    #[test]
    fn every_list_entry_is_a_lower_case_name() {
        for z in DYNAMIC_DNS.iter().chain(IP_LOOKUP).chain(TCP_TUNNEL) {
            assert!(
                z.contains('.')
                    && z.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b"-.".contains(&b)),
                "{z}"
            );
        }
    }
}
