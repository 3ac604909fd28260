//! IRC recogniser and summary, whatever the port (6667 and 6697 are only the usual ones).
//!
//! IRC is the oldest botnet command channel and still in use by IoT bots (Tsunami/Kaiten and
//! its descendants): a bot registers with NICK/USER, JOINs a channel and takes commands as
//! PRIVMSGs. This keeps the names it registers, the first channel and how busy it is.
//! Message forms are RFC 2812's: `[:prefix] COMMAND params [:trailing]`, one per line.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use heapless::String;

use super::{copy_printable, lines};
use serde::Serialize;

/// Middle parameters looked at per message (RFC 2812 allows 14 and a trailing one).
const MAX_PARAMS: usize = 15;

/// What botd keeps of an IRC session. `size_of` is 102 bytes: strings carry a one-byte length.
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
    // The first non-blank line's first word decides; most text fails on its first bytes, so
    // look at them before splitting lines (this runs on every payload no parser claimed).
    let start = p.trim_ascii_start();
    let word = |w: &[u8]| {
        start
            .get(..w.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(w))
    };
    if !(word(b"NICK") || word(b"USER") || word(b"CAP") || word(b"PASS")) {
        return false;
    }
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
    // A prefix, NOTICE or PING first (the cheap test, as for clients).
    let start = p.trim_ascii_start();
    if !(start.starts_with(b":") || start.starts_with(b"NOTICE") || start.starts_with(b"PING")) {
        return false;
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::proto::MAX_LINES;
    use crate::proto::test_support::{XorShift, hex};

    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==0 && tcp.len>0 && tcp.dstport==6667, payload 0
    const UNDERNET_C_0: &str = "4e49434b20626c6f65640d0a555345522073646b666a652073646b666a65204d6f6e747265616c2e51432e43412e556e6465726e65742e6f7267203a646b646b7277710d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==0 && tcp.len>0 && tcp.dstport==6667, payload 4
    const UNDERNET_C_1: &str = "4a4f494e2023656173796d6f766965730d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==0 && tcp.len>0 && tcp.srcport==6667, payload 0
    const UNDERNET_S_0: &str =
        "4e4f544943452041555448203a2a2a2a204c6f6f6b696e6720757020796f757220686f73746e616d650d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==0 && tcp.len>0 && tcp.srcport==6667, payload 1
    const UNDERNET_S_1: &str = "4e4f544943452041555448203a2a2a2a20436865636b696e67204964656e740d0a50494e47203a313936383331323634330d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==0 && tcp.len>0 && tcp.srcport==6667, payload 4
    const UNDERNET_S_2: &str = "3a4d6f6e747265616c2e51432e43412e556e6465726e65742e6f72672030303120626c6f6564203a57656c636f6d6520746f2074686520556e6465724e657420495243204e6574776f726b2c20626c6f65640d0a3a4d6f6e747265616c2e51432e43412e556e6465726e65742e6f72672030303220626c6f6564203a596f757220686f7374206973204d6f6e747265616c2e51432e43412e556e6465726e65742e6f72672c2072756e6e696e672076657273696f6e2075322e31302e31322e31330d0a3a4d6f6e747265616c2e51432e43412e556e6465726e65742e6f72672030303320626c6f6564203a5468697320736572766572207761732063726561746564204d6f6e204a756c20313220323031302061742031383a33313a3037204544540d0a3a4d6f6e747265616c2e51432e43412e556e6465726e65742e6f72672030303420626c6f6564204d6f6e747265616c2e51432e43412e556e6465726e65742e6f72672075322e31302e31322e31332064696f73776b67782062696b6c6d6e6f7073747672445220626b6c6f760d0a3a4d6f6e747265616c2e51432e43412e556e6465726e65742e6f72672030303520626c6f65642057484f582057414c4c43484f50532057414c4c564f49434553205553455249502043505249564d534720434e4f544943452053494c454e43453d3135204d4f4445533d36204d41584348414e4e454c533d3330204d415842414e533d3435204e49434b4c454e3d3132203a61726520737570706f727465642062792074686973207365727665720d0a3a4d6f6e747265616c2e51432e43412e556e6465726e65742e6f72672030303520626c6f6564204d41584e49434b4c454e3d313520544f5049434c454e3d31363020415741594c454e3d313630204b49434b4c454e3d313630204348414e4e454c4c454e3d323030204d41584348414e4e454c4c454e3d323030204348414e54595045533d2326205052454649583d286f7629402b205354415455534d53473d402b204348414e4d4f4445533d622c6b2c6c2c696d6e7073747244645220434153454d415050494e473d72666331343539204e4554574f524b3d556e6465724e6574203a61726520737570706f727465642062792074686973207365727665720d0a3a4d6f6e747265616c2e51432e43412e556e6465726e65742e6f72672032353120626c6f6564203a546865726520617265203338313220757365727320616e6420343639333520696e76697369626c65206f6e20323120736572766572730d0a3a4d6f6e747265616c2e51432e43412e556e6465726e65742e6f72672032353220626c6f6564203237203a6f70657261746f72287329206f6e6c696e650d0a3a4d6f6e747265616c2e51432e43412e556e6465726e65742e6f72672032353320626c6f6564203732203a756e6b6e6f776e20636f6e6e656374696f6e2873290d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==0 && tcp.len>0 && tcp.srcport==6667, payload 8
    const UNDERNET_S_3: &str = "3a626c6f6564217e73646b666a654039392d3130302d34392d3235352e6c6967687473706565642e636c6d626f682e736263676c6f62616c2e6e6574204a4f494e2023656173796d6f766965730d0a3a4d6f6e747265616c2e51432e43412e556e6465726e65742e6f72672033353320626c6f6564203d2023656173796d6f76696573203a626c6f6564205665726765206d6f35207a676442385f567a4f20746f6e797361756e7420626f756c65656d696c204077616e6b6572206d7a617a7a616c6920576861746d65576f7220406e6f666972652065616720506963617264202b60416e67656c6e5478202b4c75636375746973206b61746e69737320506565626f20404e657665725365727665206a616661666172202b7468656e616775616c4949202b4b696c6c617a6865726220626761202b586564726574686f72206b697474732064657a6d6f6e6434313120476f72646f6e43616d65726f206d61636265746834323020736b696c6c5a206861627a656c7320636775696465206d696b656a6f312066726969646120406761736d616e32206572696364726176656e20404861674261726420736c69636b7269636b32202b54724565486f55734520407c456173794d6f7669657c202b692d616d2d6d6f6a6f202b676f72646f6e31605e20407a456d6d202b6c61647976616d707265737320406058656e7520407374617272656420404e324f626c6976696f6e2066766c6b6e6920407363756d202b4d61785f52656e6e2066726565656d616e33332040614a65726b0d0a3a4d6f6e747265616c2e51432e43412e556e6465726e65742e6f72672033353320626c6f6564203d2023656173796d6f76696573203a4054696e43616e20404c6174696b6120404e6163686f73206478336435312040546f6f466173740d0a3a4d6f6e747265616c2e51432e43412e556e6465726e65742e6f72672033363620626c6f65642023656173796d6f76696573203a456e64206f66202f4e414d4553206c6973742e0d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==2 && tcp.len>0 && tcp.dstport==8000, payload 0
    const FREENODE8000_C_0: &str =
        "55534552207878787878202b6977207878787878203a58787878787820587878780d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==2 && tcp.len>0 && tcp.dstport==8000, payload 1
    const FREENODE8000_C_1: &str = "4e49434b206d6f6c6f6368746573740d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==2 && tcp.len>0 && tcp.dstport==8000, payload 3
    const FREENODE8000_C_2: &str =
        "4d4f4445206d6f6c6f636874657374202b69770d0a4a4f494e20236d6f6c6f63682d667063202d0d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==2 && tcp.len>0 && tcp.srcport==8000, payload 0
    const FREENODE8000_S: &str = "3a636172642e667265656e6f64652e6e6574204e4f54494345202a203a2a2a2a204c6f6f6b696e6720757020796f757220686f73746e616d652e2e2e0d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==4 && tcp.len>0 && tcp.dstport==6667, payload 0
    const PADDED_C_0: &str = "555345522062726f74657374202a202a202a202a202a200d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==4 && tcp.len>0 && tcp.dstport==6667, payload 1
    const PADDED_C_1: &str = "202020204e49434b2062726f746573740d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==4 && tcp.len>0 && tcp.dstport==6667, payload 2
    const PADDED_C_2: &str = "202020204a4f494e2020202020202342524f544553540d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==4 && tcp.len>0 && tcp.dstport==6667, payload 3
    const PADDED_C_3: &str =
        "20505249564d5347202020202020202020202342524f544553542020202020203a746573740d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==4 && tcp.len>0 && tcp.srcport==6667, payload 0
    const PADDED_S_0: &str = "3a73656e64616b2e667265656e6f64652e6e6574204e4f54494345202a203a2a2a2a204c6f6f6b696e6720757020796f757220686f73746e616d652e2e2e0d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==4 && tcp.len>0 && tcp.srcport==6667, payload 7
    const PADDED_S_1: &str = "3a62726f74657374217e62726f74657374406e65772d776966692d6e61742e494353492e4265726b656c65792e454455204a4f494e202342524f544553540d0a";
    /// malcolm-pcap/protocols/IRC.pcap, tcp.stream==0 && tcp.len>0 && tcp.srcport==6667, payload 21
    const UNDERNET_PRIVMSG: &str = "3a7468656e616775616c4949217e6166667265756a6f6a405448454e414755414c2e75736572732e756e6465726e65742e6f726720505249564d53472023656173796d6f76696573203a025444434320536572766572204f6e6c696e650220446573633ac2ab6a6574206c6920666f6e67207361692079756b203220766f73746672c2bb20547269676765723ac2ab7472696767657231c2bb2053697a653ac2ab3639394d42c2bb2053656e64733ac2ab302f32c2bb205175657565733ac2ab302f3130c2bb205265636f7264204350533ac2ab3020637073206279206e2f61c2bb20446f776e6c6f6164733ac2ab30c2bb200f97492d6e2d762d692d732d692d6f2d6e970d0a";

    fn run(segments: &[(&str, bool)]) -> IrcSummary {
        let mut s = IrcSummary::default();
        for (h, client) in segments {
            s.update(&hex(h), *client);
        }
        s
    }

    #[test]
    fn size() {
        assert_eq!(core::mem::size_of::<IrcSummary>(), 102);
    }

    #[test]
    fn recognisers_on_real_first_segments() {
        for c in [
            UNDERNET_C_0,
            FREENODE8000_C_0,
            FREENODE8000_C_1,
            PADDED_C_0,
            PADDED_C_1,
        ] {
            assert!(looks_like_irc_client(&hex(c)), "{c}");
            assert!(!looks_like_irc_server(&hex(c)), "{c}");
        }
        // Undernet greets without a prefix (`NOTICE AUTH :`), freenode with one.
        for sv in [
            UNDERNET_S_0,
            UNDERNET_S_1,
            FREENODE8000_S,
            PADDED_S_0,
            UNDERNET_S_2,
        ] {
            assert!(looks_like_irc_server(&hex(sv)), "{sv}");
            assert!(!looks_like_irc_client(&hex(sv)), "{sv}");
        }
        assert!(looks_like_irc_client(b"CAP LS 302\r\nNICK a\r\n"));
        assert!(looks_like_irc_client(b"NICK :trailing-form\r\n"));
        assert!(looks_like_irc_client(
            b"PASS secret\r\nNICK bot123\r\nUSER x 0 * :y\r\n"
        ));
        assert!(looks_like_irc_server(b"PING :irc.example.net\r\n"));
        assert!(looks_like_irc_server(
            b":irc.example.net 433 * bot :Nickname is already in use\r\n"
        ));
        for no in [
            &b"USER anonymous\r\n"[..],  // FTP
            b"PASS guest\r\n",           // FTP/POP3 second line, or PASS alone
            b"USER alice\r\nPASS x\r\n", // POP3
            b"NICK\r\n",
            b"GET / HTTP/1.1\r\n",
            b"NOTICE you :hi\r\n",
            b": NOTICE x :y",
            b":srv 1234 x :y",
            b":srv PRIVMSG #c :x",
            b"PING x",
            b"",
            b"\r\n\r\n",
        ] {
            assert!(!looks_like_irc_client(no), "{no:?}");
            assert!(!looks_like_irc_server(no), "{no:?}");
        }
    }

    #[test]
    fn undernet_session() {
        let s = run(&[
            (UNDERNET_C_0, true),
            (UNDERNET_S_0, false),
            (UNDERNET_S_1, false),
            (UNDERNET_S_2, false),
            (UNDERNET_C_1, true),
            (UNDERNET_S_3, false),
            (UNDERNET_PRIVMSG, false),
        ]);
        assert_eq!(s.nick, "bloed");
        assert_eq!(s.user, "sdkfje");
        assert_eq!(s.channel, "#easymovies");
        assert_eq!(s.joins, 1);
        assert_eq!(s.privmsgs, 1);
        assert!(s.server_numeric);
    }

    #[test]
    fn nick_from_the_welcome_when_the_client_side_is_unseen() {
        let s = run(&[
            (UNDERNET_S_0, false),
            (UNDERNET_S_2, false),
            (UNDERNET_S_3, false),
        ]);
        assert_eq!(s.nick, "bloed");
        assert_eq!(s.channel, "#easymovies"); // from the server's echo of the JOIN
        assert_eq!(s.joins, 0);
        assert!(s.user.is_empty());
    }

    #[test]
    fn freenode_on_port_8000() {
        let s = run(&[
            (FREENODE8000_C_0, true),
            (FREENODE8000_S, false),
            (FREENODE8000_C_1, true),
            (FREENODE8000_C_2, true),
        ]);
        assert_eq!(s.nick, "molochtest");
        assert_eq!(s.user, "xxxxx");
        assert_eq!(s.channel, "#moloch-fpc");
        assert_eq!(s.joins, 1);
        assert!(!s.server_numeric);
    }

    #[test]
    fn padded_commands() {
        let s = run(&[
            (PADDED_C_0, true),
            (PADDED_S_0, false),
            (PADDED_C_1, true),
            (PADDED_C_2, true),
            (PADDED_C_3, true),
            (PADDED_S_1, false),
        ]);
        assert_eq!(s.nick, "brotest");
        assert_eq!(s.user, "brotest");
        assert_eq!(s.channel, "#BROTEST");
        assert_eq!((s.joins, s.privmsgs), (1, 1));
    }

    #[test]
    fn serializes() {
        let s = run(&[(FREENODE8000_C_0, true), (FREENODE8000_C_1, true)]);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"nick":"molochtest","user":"xxxxx","joins":0,"privmsgs":0,"server_numeric":false}"#
        );
    }

    #[test]
    fn rfc2812_forms() {
        let mut s = IrcSummary::default();
        s.update(b"PASS x\r\nNICK Bot|xx|123\r\nUSER bot 8 * :real name\r\nJOIN #a,#b k1,k2\r\nJOIN 0\r\nPRIVMSG #a :hi\r\nprivmsg #b :low\r\n", true);
        assert_eq!(s.nick, "Bot|xx|123");
        assert_eq!(s.user, "bot");
        assert_eq!(s.channel, "#a");
        assert_eq!((s.joins, s.privmsgs), (2, 2));
        let mut t = IrcSummary::default();
        t.update(b"JOIN 0\r\n", true);
        assert!(t.channel.is_empty());
        assert_eq!(t.joins, 1);
        // Server-side command delivery to a bot.
        t.update(
            b":herder!u@h PRIVMSG #c :.ddos 1.2.3.4 80\r\n:srv 001 bot :Welcome\r\n",
            false,
        );
        assert_eq!(t.privmsgs, 1);
        assert!(t.server_numeric);
        assert_eq!(t.nick, "bot");
    }

    #[test]
    fn hostile_inputs() {
        let mut s = IrcSummary::default();
        let long = [b'N'; 500];
        let mut p = b"NICK ".to_vec();
        p.extend_from_slice(&long);
        p.extend_from_slice(b"\r\nUSER \x03\x04\xff a b :c\r\n");
        s.update(&p, true);
        assert_eq!(s.nick.len(), 32);
        assert_eq!(s.user, "...");
        let mut many = std::vec::Vec::new();
        for _ in 0..100 {
            many.extend_from_slice(b"PRIVMSG #x :y\r\n");
        }
        s.update(&many, true);
        assert_eq!(usize::from(s.privmsgs), MAX_LINES);
        for _ in 0..30 {
            s.update(&many, false);
        }
        assert_eq!(s.privmsgs, 255);
        // A line of nothing but parameters stops at MAX_PARAMS.
        let mut params = b"USER".to_vec();
        for _ in 0..1000 {
            params.extend_from_slice(b" a");
        }
        assert!(looks_like_irc_client(&params));
    }

    #[test]
    fn fuzz_never_panics() {
        let samples: std::vec::Vec<std::vec::Vec<u8>> = [
            UNDERNET_C_0,
            UNDERNET_S_1,
            UNDERNET_S_2,
            UNDERNET_S_3,
            UNDERNET_PRIVMSG,
            FREENODE8000_C_2,
            PADDED_C_3,
            PADDED_S_1,
        ]
        .iter()
        .map(|h| hex(h))
        .collect();
        for p in &samples {
            for n in 0..=p.len() {
                let mut s = IrcSummary::default();
                s.update(&p[..n], true);
                s.update(&p[..n], false);
                let _ = (
                    looks_like_irc_client(&p[..n]),
                    looks_like_irc_server(&p[..n]),
                );
            }
        }
        let mut rng = XorShift::new(0x0123_4567_89ab_cdef);
        for _ in 0..4000 {
            let mut p = samples[rng.below(samples.len())].clone();
            rng.mutate(&mut p, 8, b"\n :", 5);
            let mut s = IrcSummary::default();
            s.update(&p, rng.next().is_multiple_of(2));
            let _ = (looks_like_irc_client(&p), looks_like_irc_server(&p));
            assert!(s.nick.len() <= 32 && s.channel.len() <= 32);
        }
    }
}
