//! SMTP recogniser and summary, whatever the port (25, 465 before TLS, 587, 2525, ...).
//!
//! Stealers and spam bots exfiltrate or send mail with SMTP; what marks them is the EHLO name
//! (often the victim's host name), AUTH before MAIL, and how many recipients. botd sees only the
//! first segments of each direction, so this reads every command line in them (pipelined
//! commands share a segment) and stops reading client lines between DATA and the lone `.`.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use heapless::String;
use serde::Serialize;

/// Lines read per segment: bounds the work a hostile segment can cause.
const MAX_LINES: usize = 16;

/// What botd keeps of an SMTP session. `size_of` is 120 bytes: strings carry a one-byte length.
///
/// Text fields hold printable ASCII; any other byte is stored as `.`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SmtpSummary {
    /// The server greeted with a 220 reply.
    pub greeting: bool,
    /// Text of the greeting's first line after `220 ` / `220-` (server name and software).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub banner: String<48, u8>,
    /// Argument of the client's first EHLO or HELO (the name the client gives itself).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub ehlo: String<64, u8>,
    /// The client sent STARTTLS (what follows is TLS, so nothing more is read).
    pub starttls: bool,
    /// The client sent AUTH.
    pub auth: bool,
    /// The client sent MAIL FROM.
    pub mail_from: bool,
    /// RCPT TO commands sent (saturating).
    pub rcpt_to: u8,
    /// The client sent DATA or BDAT.
    pub data: bool,
    /// Client lines are message content (after DATA, until the lone `.`), not commands.
    #[serde(skip)]
    in_data: bool,
}

/// A server's first bytes: `220 ` or `220-` with a greeting that names SMTP or mail.
///
/// A bare `220 ` is FTP's greeting as well (`220 ProFTPD Server`, `220 (vsFTPd 3.0.3)`), so
/// it is not enough: the greeting must contain `SMTP` (ESMTP included), or `mail` without
/// `FTP` (any case). A server whose greeting names neither is still recognised through the
/// client's EHLO/HELO ([`looks_like_smtp_client`]), which every SMTP client sends first.
pub fn looks_like_smtp_server(p: &[u8]) -> bool {
    let Some(rest) = p.strip_prefix(b"220") else {
        return false;
    };
    if !matches!(rest.first(), Some(b' ' | b'-')) {
        return false;
    }
    // The greeting, possibly over several `220-` lines, within the first 512 bytes.
    let text = rest.get(..512).unwrap_or(rest);
    if contains_ci(text, b"smtp") {
        return true;
    }
    contains_ci(text, b"mail") && !contains_ci(text, b"ftp")
}

/// A client's first bytes: `EHLO` or `HELO` (any case) then a space or the line end.
pub fn looks_like_smtp_client(p: &[u8]) -> bool {
    let Some(line) = lines(p).next() else {
        return false;
    };
    let (verb, _) = split_verb(line);
    verb.eq_ignore_ascii_case(b"EHLO") || verb.eq_ignore_ascii_case(b"HELO")
}

impl SmtpSummary {
    /// Takes one payload segment of the flow, in order per direction.
    pub fn update(&mut self, payload: &[u8], from_client: bool) {
        if from_client {
            self.update_client(payload);
        } else {
            self.update_server(payload);
        }
    }

    fn update_server(&mut self, payload: &[u8]) {
        // Only the greeting is kept; it is the first reply, so later 220s (the one that
        // answers STARTTLS) do not replace it.
        if self.greeting {
            return;
        }
        let Some(line) = lines(payload).next() else {
            return;
        };
        if let Some(text) = line.strip_prefix(b"220")
            && text.first().is_none_or(|b| *b == b' ' || *b == b'-')
        {
            self.greeting = true;
            copy_printable(&mut self.banner, text.get(1..).unwrap_or_default());
        }
    }

    fn update_client(&mut self, payload: &[u8]) {
        if self.starttls {
            return; // TLS from here on
        }
        for line in lines(payload) {
            if self.in_data {
                if line == b"." {
                    self.in_data = false;
                }
                continue;
            }
            let (verb, arg) = split_verb(line);
            if verb.eq_ignore_ascii_case(b"EHLO") || verb.eq_ignore_ascii_case(b"HELO") {
                if self.ehlo.is_empty() {
                    copy_printable(&mut self.ehlo, arg);
                }
            } else if verb.eq_ignore_ascii_case(b"STARTTLS") {
                self.starttls = true;
                return;
            } else if verb.eq_ignore_ascii_case(b"AUTH") {
                self.auth = true;
            } else if verb.eq_ignore_ascii_case(b"MAIL") && starts_with_ci(arg, b"FROM:") {
                self.mail_from = true;
            } else if verb.eq_ignore_ascii_case(b"RCPT") && starts_with_ci(arg, b"TO:") {
                self.rcpt_to = self.rcpt_to.saturating_add(1);
            } else if verb.eq_ignore_ascii_case(b"DATA") {
                self.data = true;
                self.in_data = true;
            } else if verb.eq_ignore_ascii_case(b"BDAT") {
                // A binary chunk follows the command line: nothing after it is a command.
                self.data = true;
                return;
            }
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

/// The command word and the rest of the line, leading and inner runs of spaces skipped.
fn split_verb(line: &[u8]) -> (&[u8], &[u8]) {
    let line = line.trim_ascii_start();
    match line.iter().position(|&b| b == b' ') {
        Some(i) => {
            let (verb, rest) = line.split_at_checked(i).unwrap_or((line, b""));
            (verb, rest.trim_ascii())
        }
        None => (line.trim_ascii_end(), b""),
    }
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
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
