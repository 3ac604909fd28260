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
use serde::Serialize;

/// Lines read per segment: bounds the work a hostile segment can cause.
const MAX_LINES: usize = 16;

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

/// Up to [`MAX_LINES`] lines, split on `\n` with a trailing `\r` dropped; a last line without
/// its end (cut by the segment) is included.
fn lines(p: &[u8]) -> impl Iterator<Item = &[u8]> {
    p.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take(MAX_LINES)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Replaces `dst` with `src`, bytes outside printable ASCII as `.`; true if `src` was cut.
fn copy_printable<const N: usize>(dst: &mut String<N, u8>, src: &[u8]) -> bool {
    dst.clear();
    for &b in src {
        let c = if (0x20..0x7f).contains(&b) {
            char::from(b)
        } else {
            '.'
        };
        if dst.push(c).is_err() {
            return true;
        }
    }
    false
}
