//! Crypto-mining pool protocol recogniser and summary: stratum v1 (Bitcoin-style
//! `mining.*`, and EthereumStratum/`eth_*`) and the Monero-style `login`/`job` protocol that
//! xmrig speaks, whatever the port.
//!
//! Cryptojacking bots mine through pools; the wallet or worker name in authorize/login and the
//! miner's agent string identify the campaign. The protocol is newline-delimited JSON-RPC
//! over TCP, so a small bounded JSON scan (top-level members only, no allocation, no
//! recursion) finds `"method"` and the first parameters.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use heapless::String;

use super::{copy_printable, lines};
use serde::Serialize;

/// Top-level members looked at per JSON object.
const MAX_MEMBERS: usize = 32;

/// Methods that are recognised (case-sensitive, as pools and miners send them). The list is
/// the task's, plus `mining.configure` (BIP 310), which ASIC miners send before subscribe.
const METHODS: [&[u8]; 11] = [
    b"mining.subscribe",
    b"mining.authorize",
    b"mining.submit",
    b"mining.notify",
    b"mining.set_difficulty",
    b"mining.configure",
    b"login",
    b"submit",
    b"job",
    b"eth_submitLogin",
    b"eth_getWork",
];

/// What botd keeps of a mining session. `size_of` is 108 bytes: strings carry a one-byte length.
///
/// Strings are the raw JSON string contents (escapes kept as written), bytes outside printable
/// ASCII stored as `.`, cut to fit.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MiningSummary {
    /// First recognised method seen in either direction.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub method: String<24, u8>,
    /// Wallet or worker: first parameter of `mining.authorize` / `eth_submitLogin`, or the
    /// `login` member of `login`'s parameters.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub user: String<48, u8>,
    /// Miner software: first parameter of `mining.subscribe`, or `login`'s `agent` member.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub agent: String<32, u8>,
    /// JSON object lines seen in either direction (saturating).
    pub messages: u8,
}

/// A flow's first bytes in either direction: a JSON object whose `"method"` is one of
/// [`METHODS`] (a client's subscribe/login, a server's notify/job), or a pool's answer to
/// subscribe or login (`"result"` naming `mining.notify`, or carrying a job `"blob"` and
/// `"job_id"`).
pub fn looks_like_stratum(p: &[u8]) -> bool {
    // A JSON object first, or nothing (the cheap test before splitting lines).
    if !p.trim_ascii_start().starts_with(b"{") {
        return false;
    }
    let Some(line) = lines(p).find(|l| !l.trim_ascii().is_empty()) else {
        return false;
    };
    let Some(obj) = Object::parse(line) else {
        return false;
    };
    let mut has_result = false;
    for (key, value) in obj {
        if key == b"method" {
            return string_value(value).is_some_and(is_known_method);
        }
        has_result |= key == b"result";
    }
    has_result
        && (contains(line, b"\"mining.notify\"")
            || (contains(line, b"\"blob\"") && contains(line, b"\"job_id\"")))
}

fn is_known_method(m: &[u8]) -> bool {
    METHODS.contains(&m)
}

impl MiningSummary {
    /// Takes one payload segment of the flow, in order per direction; both directions are
    /// read alike.
    pub fn update(&mut self, payload: &[u8], _from_client: bool) {
        for line in lines(payload) {
            let Some(obj) = Object::parse(line) else {
                continue;
            };
            self.messages = self.messages.saturating_add(1);
            let mut method = None;
            let mut params = None;
            for (key, value) in obj {
                if key == b"method" {
                    method = string_value(value);
                } else if key == b"params" {
                    params = Some(value);
                }
            }
            let Some(method) = method.filter(|m| is_known_method(m)) else {
                continue;
            };
            if self.method.is_empty() {
                copy_printable(&mut self.method, method);
            }
            let Some(params) = params else {
                continue;
            };
            match method {
                b"mining.subscribe" if self.agent.is_empty() => {
                    if let Some(a) = first_string(params) {
                        copy_printable(&mut self.agent, a);
                    }
                }
                b"mining.authorize" | b"eth_submitLogin" if self.user.is_empty() => {
                    if let Some(u) = first_string(params) {
                        copy_printable(&mut self.user, u);
                    }
                }
                b"login" => {
                    for (key, value) in Object::parse(params).into_iter().flatten() {
                        let dst_user = key == b"login" && self.user.is_empty();
                        let dst_agent = key == b"agent" && self.agent.is_empty();
                        if let Some(s) = string_value(value) {
                            if dst_user {
                                copy_printable(&mut self.user, s);
                            } else if dst_agent {
                                copy_printable(&mut self.agent, s);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Top-level members of a JSON object, as raw key contents and raw value text. Stops at the
/// object's end, at anything malformed, or where the segment cut it: members before the cut
/// are still given.
struct Object<'a> {
    rest: &'a [u8],
    taken: usize,
}

impl<'a> Object<'a> {
    fn parse(text: &'a [u8]) -> Option<Self> {
        let rest = text.trim_ascii_start().strip_prefix(b"{")?;
        Some(Object { rest, taken: 0 })
    }
}

impl<'a> Iterator for Object<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.taken >= MAX_MEMBERS {
            return None;
        }
        self.taken = self.taken.saturating_add(1);
        let mut s = self.rest.trim_ascii_start();
        if let Some(after_comma) = s.strip_prefix(b",") {
            s = after_comma.trim_ascii_start();
        }
        let s = s.strip_prefix(b"\"")?;
        let kend = string_end(s)?;
        let (key, s) = s.split_at_checked(kend)?;
        let s = s.get(1..)?.trim_ascii_start().strip_prefix(b":")?;
        let s = s.trim_ascii_start();
        let vend = value_end(s)?;
        let (value, s) = s.split_at_checked(vend)?;
        self.rest = s;
        Some((key, value))
    }
}

/// Index of the closing quote of a string whose opening quote is already consumed.
fn string_end(s: &[u8]) -> Option<usize> {
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            return Some(i);
        }
    }
    None
}

/// Length of the JSON value at the start of `s` (string, object, array or literal); `None`
/// if it does not end within `s`.
fn value_end(s: &[u8]) -> Option<usize> {
    match s.first()? {
        b'"' => string_end(s.get(1..)?)?.checked_add(2),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut in_string = false;
            let mut escaped = false;
            for (i, &b) in s.iter().enumerate() {
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_string = false;
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth = depth.saturating_add(1),
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return i.checked_add(1);
                        }
                    }
                    _ => {}
                }
            }
            None
        }
        _ => {
            let end = s
                .iter()
                .position(|&b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                .unwrap_or(s.len());
            // A literal that runs to the segment's end may be cut; a number or
            // true/false/null is complete only when something follows it.
            (end > 0 && end < s.len()).then_some(end)
        }
    }
}

/// The contents of a raw JSON string value, without its quotes.
fn string_value(value: &[u8]) -> Option<&[u8]> {
    value.strip_prefix(b"\"")?.strip_suffix(b"\"")
}

/// The first element of a raw JSON array, if it is a string.
fn first_string(array: &[u8]) -> Option<&[u8]> {
    let s = array.strip_prefix(b"[")?.trim_ascii_start();
    let end = value_end(s)?;
    string_value(s.get(..end)?)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::proto::MAX_LINES;
    use crate::proto::test_support::XorShift;

    // No mining traffic is in the shared captures; these are the documented wire forms
    // (stratum v1 as slush and cpuminer send it, xmrig's login/job, EthereumStratum, BIP 310).
    const SUBSCRIBE: &[u8] =
        b"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"cpuminer/2.5.1\"]}\n";
    const AUTHORIZE: &[u8] = b"{\"id\": 2, \"method\": \"mining.authorize\", \"params\": [\"1BitcoinWallet.worker1\", \"x\"]}\n";
    const SUBSCRIBE_RESULT: &[u8] = b"{\"id\":1,\"result\":[[[\"mining.set_difficulty\",\"b4b6693b72a50c7116db18d6497cac52\"],[\"mining.notify\",\"ae6812eb4cd7735a302a8a9dd95cf71f\"]],\"08000002\",4],\"error\":null}\n";
    const SERVER_PUSH: &[u8] = b"{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[2]}\n{\"params\":[\"bf\",\"4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000\",\"01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008\",\"072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000\",[],\"00000002\",\"1c2ac4af\",\"504e86b9\",false],\"id\":null,\"method\":\"mining.notify\"}\n";
    const XMRIG_LOGIN: &[u8] = b"{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge\",\"pass\":\"x\",\"agent\":\"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0\",\"algo\":[\"rx/0\",\"cn/r\"]}}\n";
    const XMRIG_LOGIN_RESULT: &[u8] = b"{\"id\":1,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"id\":\"1be0b7b6-b15a-47be-a17d-46b2911cf7d0\",\"job\":{\"blob\":\"0707d5efb9d6057a\",\"job_id\":\"q7PLUPL25UV0z5Ij14IyMk8htXbj\",\"target\":\"b88d0600\",\"algo\":\"rx/0\"},\"extensions\":[\"algo\"],\"status\":\"OK\"}}\n";
    const XMRIG_JOB: &[u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"job\",\"params\":{\"blob\":\"0707d5efb9d6057a\",\"job_id\":\"4BiGm3/RgGQzgkTI/xV0smdA+EGZ\",\"target\":\"b88d0600\",\"algo\":\"rx/0\"}}\n";
    const ETH_LOGIN: &[u8] = b"{\"id\":1,\"method\":\"eth_submitLogin\",\"params\":[\"0xb85150eb365e7df0941f0cf08235f987ba91506a\",\"x\"],\"worker\":\"rig1\",\"jsonrpc\":\"2.0\"}\n";
    const CONFIGURE: &[u8] = b"{\"method\": \"mining.configure\",\"id\": 1,\"params\": [[\"version-rolling\"],{\"version-rolling.mask\": \"1fffe000\",\"version-rolling.min-bit-count\": 2}]}\n";

    #[test]
    fn size() {
        assert_eq!(core::mem::size_of::<MiningSummary>(), 108);
    }

    #[test]
    fn recognisers() {
        for yes in [
            SUBSCRIBE,
            AUTHORIZE,
            SUBSCRIBE_RESULT,
            SERVER_PUSH,
            XMRIG_LOGIN,
            XMRIG_LOGIN_RESULT,
            XMRIG_JOB,
            ETH_LOGIN,
            CONFIGURE,
        ] {
            assert!(
                looks_like_stratum(yes),
                "{}",
                core::str::from_utf8(yes).unwrap()
            );
        }
        for no in [
            &b"{\"jsonrpc\":\"2.0\",\"method\":\"eth_getBalance\",\"params\":[\"0x1\",\"latest\"],\"id\":1}\n"[..],
            b"{\"id\":1,\"result\":true,\"error\":null}\n",
            b"{\"params\":{\"method\":\"login\"}}\n",
            b"{\"note\":\"\\\"method\\\":\\\"login\\\"\"}\n",
            b"{\"method\":\"Login\"}",
            b"[{\"method\":\"login\"}]",
            b"GET / HTTP/1.1\r\n",
            b"{",
            b"",
        ] {
            assert!(!looks_like_stratum(no), "{}", core::str::from_utf8(no).unwrap());
        }
    }

    fn run(segments: &[(&[u8], bool)]) -> MiningSummary {
        let mut s = MiningSummary::default();
        for (p, c) in segments {
            s.update(p, *c);
        }
        s
    }

    #[test]
    fn stratum_v1_session() {
        let s = run(&[
            (SUBSCRIBE, true),
            (SUBSCRIBE_RESULT, false),
            (AUTHORIZE, true),
            (SERVER_PUSH, false),
        ]);
        assert_eq!(s.method, "mining.subscribe");
        assert_eq!(s.agent, "cpuminer/2.5.1");
        assert_eq!(s.user, "1BitcoinWallet.worker1");
        assert_eq!(s.messages, 5);
        // Seen from the server side alone: the pushes name the protocol.
        let t = run(&[(SERVER_PUSH, false)]);
        assert_eq!(t.method, "mining.set_difficulty");
        assert!(t.user.is_empty() && t.agent.is_empty());
    }

    #[test]
    fn xmrig_login_session() {
        let s = run(&[
            (XMRIG_LOGIN, true),
            (XMRIG_LOGIN_RESULT, false),
            (XMRIG_JOB, false),
        ]);
        assert_eq!(s.method, "login");
        assert_eq!(s.user, "4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skx");
        assert_eq!(s.agent, "XMRig/6.21.0 (Linux x86_64) libu");
        assert_eq!(s.messages, 3);
    }

    #[test]
    fn serializes() {
        let s = run(&[(SUBSCRIBE, true)]);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"method":"mining.subscribe","agent":"cpuminer/2.5.1","messages":1}"#
        );
    }

    #[test]
    fn ethereum_and_configure() {
        let s = run(&[(ETH_LOGIN, true)]);
        assert_eq!(s.method, "eth_submitLogin");
        assert_eq!(s.user, "0xb85150eb365e7df0941f0cf08235f987ba91506a");
        let mut both = CONFIGURE.to_vec();
        both.extend_from_slice(SUBSCRIBE);
        both.extend_from_slice(AUTHORIZE);
        let t = run(&[(&both, true)]);
        assert_eq!(t.method, "mining.configure");
        assert_eq!(t.agent, "cpuminer/2.5.1");
        assert_eq!(t.user, "1BitcoinWallet.worker1");
        assert_eq!(t.messages, 3);
    }

    #[test]
    fn json_scan_edges() {
        // Escaped quotes inside strings, whitespace, key order, CRLF framing.
        let p =
            b"{ \"params\" : [ \"a\\\"b\" , \"x\" ] ,\t \"method\" : \"mining.authorize\" }\r\n";
        let s = run(&[(p, true)]);
        assert_eq!(s.user, "a\\\"b");
        // A segment cut inside the params still gives the method before it.
        let cut = &XMRIG_LOGIN[..60];
        let s = run(&[(cut, true)]);
        assert_eq!(s.method, "login");
        assert!(s.user.is_empty());
        assert!(looks_like_stratum(cut));
        // Non-string first params are not taken.
        let s = run(&[(
            b"{\"method\":\"mining.subscribe\",\"params\":[1,\"x\"]}\n",
            true,
        )]);
        assert!(s.agent.is_empty());
        let s = run(&[(b"{\"method\":\"mining.subscribe\",\"params\":[]}\n", true)]);
        assert!(s.agent.is_empty());
        // A literal cut at the segment's end is not taken as complete.
        assert_eq!(value_end(b"123"), None);
        assert_eq!(value_end(b"123,"), Some(3));
        assert_eq!(value_end(b"\"ab\\\"c\"x"), Some(7));
        assert_eq!(value_end(b"[1,[2],{\"a\":\"]\"}]"), Some(17));
        assert_eq!(value_end(b"]"), None);
    }

    #[test]
    fn hostile_inputs() {
        let mut deep = b"{\"a\":".to_vec();
        deep.extend(std::iter::repeat_n(b'[', 100_000));
        deep.extend_from_slice(b",\"method\":\"login\"}");
        assert!(!looks_like_stratum(&deep));
        let mut s = MiningSummary::default();
        s.update(&deep, true);
        assert!(s.method.is_empty());
        assert_eq!(s.messages, 1);
        let mut wide = b"{".to_vec();
        for i in 0..100 {
            wide.extend_from_slice(format!("\"k{i}\":0,").as_bytes());
        }
        wide.extend_from_slice(b"\"method\":\"login\"}\n");
        assert!(
            !looks_like_stratum(&wide),
            "members past MAX_MEMBERS are not read"
        );
        let mut lines = std::vec::Vec::new();
        for _ in 0..300 {
            lines.extend_from_slice(SUBSCRIBE);
        }
        let mut s = MiningSummary::default();
        s.update(&lines, true);
        assert_eq!(usize::from(s.messages), MAX_LINES);
        for _ in 0..20 {
            s.update(&lines, true);
        }
        assert_eq!(s.messages, 255);
        let s = run(&[(
            b"{\"method\":\"mining.subscribe\",\"params\":[\"\xff\x00\x1b[0m\"]}\n",
            true,
        )]);
        assert_eq!(s.agent, "...[0m");
    }

    #[test]
    fn fuzz_never_panics() {
        let samples = [
            SUBSCRIBE,
            AUTHORIZE,
            SUBSCRIBE_RESULT,
            SERVER_PUSH,
            XMRIG_LOGIN,
            XMRIG_LOGIN_RESULT,
            XMRIG_JOB,
            ETH_LOGIN,
            CONFIGURE,
        ];
        for p in samples {
            for n in 0..=p.len() {
                let mut s = MiningSummary::default();
                s.update(&p[..n], true);
                let _ = looks_like_stratum(&p[..n]);
            }
        }
        let mut rng = XorShift::new(0x5555_aaaa_1234_9876);
        for _ in 0..5000 {
            let mut p = samples[rng.below(samples.len())].to_vec();
            rng.mutate(&mut p, 8, b"\"\\{]\n", 8);
            let mut s = MiningSummary::default();
            s.update(&p, true);
            let _ = looks_like_stratum(&p);
            assert!(s.user.len() <= 48 && s.agent.len() <= 32 && s.method.len() <= 24);
        }
    }
}
