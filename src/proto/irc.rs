//! IRC recogniser and summary, whatever the port (6667 and 6697 are only the usual ones).
//!
//! IRC is the oldest botnet command channel and still in use by IoT bots (Tsunami/Kaiten and
//! its descendants): a bot registers with NICK/USER, JOINs a channel and takes commands as
//! PRIVMSGs. This keeps the names it registers, the first channel and how busy it is.
//! Message forms are RFC 2812's: `[:prefix] COMMAND params [:trailing]`, one per line.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use heapless::String;
use serde::Serialize;

/// Lines read per segment: bounds the work a hostile segment can cause.
const MAX_LINES: usize = 16;

/// Middle parameters looked at per message (RFC 2812 allows 14 and a trailing one).
const MAX_PARAMS: usize = 15;

/// What botd keeps of an IRC session. `size_of` is 103 bytes: strings carry a one-byte length.
///
/// Text fields hold printable ASCII; any other byte (IRC colour codes, UTF-8) is stored as `.`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct IrcSummary {
    /// Nickname: the client's first NICK, else the target of the server's first numeric reply.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub nick: String<32, u8>,
    /// User name: the first parameter of the client's USER.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub user: String<32, u8>,
    /// First channel joined: from the client's JOIN, else from the server's echo of it.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub channel: String<32, u8>,
    /// JOIN commands the client sent (saturating).
    pub joins: u8,
    /// PRIVMSG lines in either direction (saturating): commands to a bot arrive from the
    /// server, its answers go out from the client.
    pub privmsgs: u8,
    /// The server sent a numeric reply (`:srv 001 nick :Welcome`): registration went through.
    pub server_numeric: bool,
}

/// One message's parts, borrowed from the line.
struct Message<'a> {
    prefix: Option<&'a [u8]>,
    command: &'a [u8],
    params: Params<'a>,
}

/// The parameters after the command: space-separated middles, then `:trailing`.
#[derive(Clone)]
struct Params<'a> {
    rest: &'a [u8],
    taken: usize,
}

impl<'a> Iterator for Params<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest.trim_ascii_start();
        if rest.is_empty() || self.taken >= MAX_PARAMS {
            return None;
        }
        self.taken = self.taken.saturating_add(1);
        if let Some(trailing) = rest.strip_prefix(b":") {
            self.rest = b"";
            return Some(trailing);
        }
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let (param, after) = rest.split_at_checked(end)?;
        self.rest = after;
        Some(param)
    }
}

/// Splits one line into prefix, command and parameters. Leading spaces and runs of spaces
/// are tolerated (some clients pad, see the tests).
fn parse_line(line: &[u8]) -> Option<Message<'_>> {
    let mut rest = line.trim_ascii_start();
    let mut prefix = None;
    if let Some(p) = rest.strip_prefix(b":") {
        let end = p.iter().position(|&b| b == b' ')?;
        let (pre, after) = p.split_at_checked(end)?;
        if pre.is_empty() {
            return None;
        }
        prefix = Some(pre);
        rest = after.trim_ascii_start();
    }
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let (command, after) = rest.split_at_checked(end)?;
    if command.is_empty() {
        return None;
    }
    Some(Message {
        prefix,
        command,
        params: Params {
            rest: after,
            taken: 0,
        },
    })
}

fn is_numeric(command: &[u8]) -> bool {
    command.len() == 3 && command.iter().all(u8::is_ascii_digit)
}

/// A client's first bytes: the first line is NICK, USER, PASS or CAP LS (any case).
///
/// `USER` must carry RFC 2812's four parameters, since FTP and POP3 clients also open with
/// `USER name`; `PASS` alone proves nothing (FTP, POP3), so it needs a NICK or USER line in the
/// same segment, as bots send them together.
pub fn looks_like_irc_client(p: &[u8]) -> bool {
    let mut ls = lines(p).filter(|l| !l.trim_ascii().is_empty());
    let Some(first) = ls.next().and_then(parse_line) else {
        return false;
    };
    if first.prefix.is_some() {
        return false;
    }
    let cmd = first.command;
    if cmd.eq_ignore_ascii_case(b"NICK") {
        first.params.clone().next().is_some_and(is_name)
    } else if cmd.eq_ignore_ascii_case(b"USER") {
        is_user_line(&first)
    } else if cmd.eq_ignore_ascii_case(b"CAP") {
        first
            .params
            .clone()
            .next()
            .is_some_and(|p| p.eq_ignore_ascii_case(b"LS"))
    } else if cmd.eq_ignore_ascii_case(b"PASS") {
        ls.take(2).filter_map(parse_line).any(|m| {
            (m.command.eq_ignore_ascii_case(b"NICK") && m.params.clone().next().is_some())
                || (m.command.eq_ignore_ascii_case(b"USER") && is_user_line(&m))
        })
    } else {
        false
    }
}

/// `USER user mode unused :realname`: four parameters (at least).
fn is_user_line(m: &Message<'_>) -> bool {
    m.params.clone().count() >= 4 && m.params.clone().next().is_some_and(is_name)
}

/// A nickname or user name: printable, no spaces, not starting with `:`.
fn is_name(s: &[u8]) -> bool {
    !s.is_empty() && !s.starts_with(b":") && s.iter().all(u8::is_ascii_graphic)
}

/// A server's first bytes: `:name NOTICE ...`, `:name 001 ...` (any numeric), an unprefixed
/// `NOTICE AUTH :` / `NOTICE * :` (Undernet-style servers greet so), or `PING :`.
pub fn looks_like_irc_server(p: &[u8]) -> bool {
    let Some(m) = lines(p)
        .find(|l| !l.trim_ascii().is_empty())
        .and_then(parse_line)
    else {
        return false;
    };
    let mut params = m.params.clone();
    match m.prefix {
        Some(prefix) => {
            prefix.iter().all(u8::is_ascii_graphic)
                && (is_numeric(m.command)
                    || m.command == b"NOTICE"
                    || m.command == b"PING"
                    || m.command == b"ERROR")
                && params.next().is_some()
        }
        None => {
            let first = params.next();
            (m.command == b"NOTICE"
                && first.is_some_and(|t| t == b"AUTH" || t == b"*")
                && params.next().is_some())
                || (m.command == b"PING" && m.params.rest.trim_ascii_start().starts_with(b":"))
        }
    }
}

impl IrcSummary {
    /// Takes one payload segment of the flow, in order per direction.
    pub fn update(&mut self, payload: &[u8], from_client: bool) {
        for m in lines(payload).filter_map(parse_line) {
            if from_client {
                self.client_message(&m);
            } else {
                self.server_message(&m);
            }
        }
    }

    fn client_message(&mut self, m: &Message<'_>) {
        let mut params = m.params.clone();
        let cmd = m.command;
        if cmd.eq_ignore_ascii_case(b"NICK") {
            if let Some(n) = params.next().filter(|_| self.nick.is_empty()) {
                copy_printable(&mut self.nick, n);
            }
        } else if cmd.eq_ignore_ascii_case(b"USER") {
            if let Some(u) = params.next().filter(|_| self.user.is_empty()) {
                copy_printable(&mut self.user, u);
            }
        } else if cmd.eq_ignore_ascii_case(b"JOIN") {
            self.joins = self.joins.saturating_add(1);
            self.take_channel(params.next());
        } else if cmd.eq_ignore_ascii_case(b"PRIVMSG") {
            self.privmsgs = self.privmsgs.saturating_add(1);
        }
    }

    fn server_message(&mut self, m: &Message<'_>) {
        let mut params = m.params.clone();
        let cmd = m.command;
        if m.prefix.is_some() && is_numeric(cmd) {
            self.server_numeric = true;
            // The first parameter of a numeric reply is the client's nickname.
            if let Some(n) = params.next()
                && self.nick.is_empty()
                && is_name(n)
                && n != b"*"
            {
                copy_printable(&mut self.nick, n);
            }
        } else if cmd.eq_ignore_ascii_case(b"JOIN") {
            self.take_channel(params.next());
        } else if cmd.eq_ignore_ascii_case(b"PRIVMSG") {
            self.privmsgs = self.privmsgs.saturating_add(1);
        }
    }

    /// `JOIN #a,#b key` joins `#a` first; `JOIN 0` (leave all) names no channel.
    fn take_channel(&mut self, target: Option<&[u8]>) {
        if !self.channel.is_empty() {
            return;
        }
        let Some(first) = target.and_then(|t| t.split(|&b| b == b',').next()) else {
            return;
        };
        if !first.is_empty() && first != b"0" {
            copy_printable(&mut self.channel, first);
        }
    }
}

/// Up to [`MAX_LINES`] lines, split on `\n` with a trailing `\r` dropped; a last line without
/// its end (cut by the segment) is included.
fn lines(p: &[u8]) -> impl Iterator<Item = &[u8]> {
    p.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take(MAX_LINES)
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
