//! A machine profile sent in clear: the check-in of a remote-access trojan.
//!
//! Commodity RATs announce a new victim to their controller with one message of delimited fields
//! that describe the machine: an id, the computer and user names, the Windows edition, the
//! architecture, the antivirus, the country (njRAT `ll|'|'|id|'|'|PC|'|'|user|'|'|...|'|'|Win 7
//! Professional SP1 x86|'|'|...`, STRRAT `ping|STRRAT|id|PC|user|Microsoft Windows 7
//! Professional|32-bit|...`, and their many forks). Software that sends such facts to its server
//! does it in HTTP (a User-Agent, a query) or inside TLS, which botd recognises as those; a
//! Windows edition among four or more delimited fields as the first words of a TCP protocol botd
//! does not know is what the check-in looks like, whatever the family.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use heapless::String;
use serde::Serialize;

use super::push_printable;

/// What the message said. `size_of` is 76 bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProfileSummary {
    /// The operating-system name found (`Windows 7`, `Win 10`).
    pub os: String<16, u8>,
    /// Fields of the message, split on its delimiter.
    pub fields: u8,
    /// The message's first bytes (printable ASCII; others as `.`).
    pub head: String<56, u8>,
}

/// Windows editions as RAT builders write them (`Microsoft Windows 10 Pro`, njRAT's `Win 7`).
const OS_NAMES: &[&[u8]] = &[
    b"Windows XP",
    b"Windows Vista",
    b"Windows 7",
    b"Windows 8",
    b"Windows 10",
    b"Windows 11",
    b"Windows Server",
    b"Win XP",
    b"Win Vista",
    b"Win 7",
    b"Win 8",
    b"Win 10",
    b"Win 11",
];

/// Field delimiters of such messages.
const DELIMITERS: &[u8] = b"|;,\t";

/// Fewest fields: an id, a name and the edition would be three; a check-in carries more.
const MIN_FIELDS: usize = 5;

impl ProfileSummary {
    /// The profile in a client's payload, if it is one: mostly printable, a Windows edition, and
    /// at least [`MIN_FIELDS`] fields on one delimiter.
    pub fn of(p: &[u8]) -> Option<ProfileSummary> {
        if p.len() < 24 {
            return None;
        }
        // One pass for the cheap tests (most text that reaches here fails them), then the names.
        let mut printable = 0;
        let mut delimiters = [0usize; DELIMITERS.len()];
        for &b in p {
            printable += usize::from(b.is_ascii_graphic() || b == b' ');
            if let Some(i) = DELIMITERS.iter().position(|&d| d == b)
                && let Some(n) = delimiters.get_mut(i)
            {
                *n += 1;
            }
        }
        let fields = delimiters.iter().max().map_or(1, |n| n + 1);
        if printable * 10 < p.len() * 9 || fields < MIN_FIELDS {
            return None;
        }
        let os = os_name(p)?;
        let mut s = ProfileSummary {
            fields: u8::try_from(fields).unwrap_or(u8::MAX),
            ..ProfileSummary::default()
        };
        push_printable(&mut s.os, os);
        push_printable(&mut s.head, p);
        Some(s)
    }
}

/// The first Windows edition named in `p` (every name starts with `Win`).
fn os_name(p: &[u8]) -> Option<&'static [u8]> {
    (0..p.len())
        .filter(|&i| p.get(i..i + 3) == Some(b"Win"))
        .find_map(|i| {
            let rest = p.get(i..)?;
            OS_NAMES.iter().copied().find(|name| rest.starts_with(name))
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::proto::test_support::XorShift;

    // malcolm-pcap zeek-strrat-detector capture, the client's second segment (cut).
    const STRRAT: &[u8] = b"ping|STRRAT|C4BA3647|USER-PC|admin|Microsoft Windows 7 Professional|32-bit|nan-av|V2luZG93cyBQb3dlclNoZWxs|1.6|DE:Germany|Not Installed|Not Idle";
    // keithjjones zeek-njrat-detector capture, the client's first segment (cut).
    const NJRAT: &[u8] = b"156\0ll|'|'|SGFjS2VkX0M0QkEzNjQ3|'|'|USER-PC|'|'|admin|'|'|23-04-19|'|'||'|'|Win 7 Professional SP1 x86|'|'|No|'|'|im523|'|'|";

    #[test]
    fn rat_check_ins_are_profiles() {
        let s = ProfileSummary::of(STRRAT).unwrap();
        assert_eq!(s.os.as_str(), "Windows 7");
        assert_eq!(s.fields, 13);
        assert!(s.head.starts_with("ping|STRRAT|C4BA3647|USER-PC"));
        let n = ProfileSummary::of(NJRAT).unwrap();
        assert_eq!(n.os.as_str(), "Win 7");
        assert!(n.fields >= 20 && n.head.starts_with("156.ll|'|'|"));
    }

    #[test]
    fn other_text_is_not() {
        // An edition in prose or with too few fields, a user agent, binary data.
        for p in [
            &b"Running on Windows 10 Pro, all fine, thanks"[..],
            b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
            b"id|PC|Windows 10|x64",
            b"\x00\x01\x02Windows 10|a|b|c|d|e\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            b"short|Win 7|a|b|c",
        ] {
            assert!(ProfileSummary::of(p).is_none(), "{p:?}");
        }
    }

    #[test]
    fn mutations_never_panic() {
        let mut rng = XorShift::new(0x0bad_cafe_1234_5678);
        for _ in 0..4000 {
            let mut p = if rng.next().is_multiple_of(2) {
                STRRAT.to_vec()
            } else {
                NJRAT.to_vec()
            };
            rng.mutate(&mut p, 12, b"|\0W", 6);
            p.truncate(rng.below(p.len() + 1));
            if let Some(s) = ProfileSummary::of(&p) {
                assert!(s.fields >= MIN_FIELDS as u8 && !s.os.is_empty());
            }
        }
    }
}
