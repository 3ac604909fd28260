//! SMTP recogniser and summary, whatever the port (25, 465 before TLS, 587, 2525, ...).
//!
//! Stealers and spam bots exfiltrate or send mail with SMTP; what marks them is the EHLO name
//! (often the victim's host name), AUTH before MAIL, and how many recipients. botd sees only the
//! first segments of each direction, so this reads every command line in them (pipelined
//! commands share a segment) and stops reading client lines between DATA and the lone `.`.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use heapless::String;

use super::{copy_printable, lines};
use serde::Serialize;

/// What botd keeps of an SMTP session. `size_of` is 121 bytes: strings carry a one-byte length.
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
    // EHLO or HELO first, or nothing (the cheap test before splitting lines).
    let start = p.trim_ascii_start();
    if !(starts_with_ci(start, b"EHLO") || starts_with_ci(start, b"HELO")) {
        return false;
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::proto::MAX_LINES;
    use crate::proto::test_support::{XorShift, hex};

    /// chrissanders-packets/mail_sender_attachment.pcapng, tcp.stream==0 && tcp.len>0, payload 0
    const POSTFIX_0: &str =
        "323230206d61696c30312045534d545020506f737466697820285562756e7475290d0a";
    /// chrissanders-packets/mail_sender_attachment.pcapng, tcp.stream==0 && tcp.len>0, payload 1
    const POSTFIX_1: &str = "45484c4f205b3137322e31362e31362e3232355d0d0a";
    /// chrissanders-packets/mail_sender_attachment.pcapng, tcp.stream==0 && tcp.len>0, payload 2
    const POSTFIX_2: &str = "3235302d6d61696c30310d0a3235302d504950454c494e494e470d0a3235302d53495a452031303234303030300d0a3235302d565246590d0a3235302d4554524e0d0a3235302d5354415254544c530d0a3235302d454e48414e434544535441545553434f4445530d0a3235302d384249544d494d450d0a3235302044534e0d0a";
    /// chrissanders-packets/mail_sender_attachment.pcapng, tcp.stream==0 && tcp.len>0, payload 3
    const POSTFIX_3: &str = "4d41494c2046524f4d3a3c73616e6465727340736b796e65742e6c6f63616c3e2053495a453d37363639320d0a";
    /// chrissanders-packets/mail_sender_attachment.pcapng, tcp.stream==0 && tcp.len>0, payload 4
    const POSTFIX_4: &str = "32353020322e312e30204f6b0d0a";
    /// chrissanders-packets/mail_sender_attachment.pcapng, tcp.stream==0 && tcp.len>0, payload 5
    const POSTFIX_5: &str = "5243505420544f3a3c70706140736b796e65742e6c6f63616c3e0d0a";
    /// chrissanders-packets/mail_sender_attachment.pcapng, tcp.stream==0 && tcp.len>0, payload 6
    const POSTFIX_6: &str = "32353020322e312e35204f6b0d0a";
    /// malcolm-pcap/protocols/SSL.pcap, tcp.stream==174 && tcp.len>0, payload 0
    const PIPELINED_0: &str =
        "323230206d61696c30322045534d545020506f737466697820285562756e7475290d0a";
    /// malcolm-pcap/protocols/SSL.pcap, tcp.stream==174 && tcp.len>0, payload 1
    const PIPELINED_1: &str = "45484c4f206d61696c30310d0a";
    /// malcolm-pcap/protocols/SSL.pcap, tcp.stream==174 && tcp.len>0, payload 2
    const PIPELINED_2: &str = "3235302d6d61696c30320d0a3235302d504950454c494e494e470d0a3235302d53495a452031303234303030300d0a3235302d565246590d0a3235302d4554524e0d0a3235302d5354415254544c530d0a3235302d454e48414e434544535441545553434f4445530d0a3235302d384249544d494d450d0a3235302044534e0d0a";
    /// malcolm-pcap/protocols/SSL.pcap, tcp.stream==174 && tcp.len>0, payload 3
    const PIPELINED_3: &str = "4d41494c2046524f4d3a3c73616e6465727340736b796e65742e6c6f63616c3e2053495a453d3733320d0a5243505420544f3a3c73616e6465727340637962657264796e652e6c6f63616c3e204f524350543d7266633832323b73616e6465727340637962657264796e652e6c6f63616c0d0a444154410d0a";
    /// malcolm-pcap/protocols/SSL.pcap, tcp.stream==18 && tcp.len>0, payload 0
    const GMAIL_STARTTLS_0: &str = "323230206d782e676f6f676c652e636f6d2045534d545020686631307369343039373239396963632e313930202d2067736d74700d0a";
    /// malcolm-pcap/protocols/SSL.pcap, tcp.stream==18 && tcp.len>0, payload 1
    const GMAIL_STARTTLS_1: &str = "45484c4f206f70656e73736c2e636c69656e742e6e65740d0a";
    /// malcolm-pcap/protocols/SSL.pcap, tcp.stream==18 && tcp.len>0, payload 2
    const GMAIL_STARTTLS_2: &str = "3235302d6d782e676f6f676c652e636f6d20617420796f757220736572766963652c205b3139322e3135302e3138372e3233375d0d0a3235302d53495a452033353838323537370d0a3235302d384249544d494d450d0a3235302d5354415254544c530d0a3235302d454e48414e434544535441545553434f4445530d0a323530204348554e4b494e470d0a";
    /// malcolm-pcap/protocols/SSL.pcap, tcp.stream==18 && tcp.len>0, payload 3
    const GMAIL_STARTTLS_3: &str = "5354415254544c530d0a";
    /// malcolm-pcap/protocols/SSL.pcap, tcp.stream==18 && tcp.len>0, payload 4
    const GMAIL_STARTTLS_4: &str = "32323020322e302e3020526561647920746f20737461727420544c530d0a";
    /// github-pan-unit42-Wireshark-quizzes/quiz_2023-01_stealer_smtp_exfil.pcap, tcp.stream==2 && tcp.len>0, payload 0
    const STEALER_0: &str = "3232302d62682d34312e776562686f7374626f782e6e65742045534d5450204578696d20342e3935202332205468752c203035204a616e20323032332032323a35313a3330202b30303030200d0a3232302d576520646f206e6f7420617574686f72697a652074686520757365206f6620746869732073797374656d20746f207472616e73706f727420756e736f6c6963697465642c200d0a32323020616e642f6f722062756c6b20652d6d61696c2e0d0a";
    /// github-pan-unit42-Wireshark-quizzes/quiz_2023-01_stealer_smtp_exfil.pcap, tcp.stream==2 && tcp.len>0, payload 1
    const STEALER_1: &str = "45484c4f204445534b544f502d57494e313150430d0a";
    /// github-pan-unit42-Wireshark-quizzes/quiz_2023-01_stealer_smtp_exfil.pcap, tcp.stream==2 && tcp.len>0, payload 2
    const STEALER_2: &str = "3235302d62682d34312e776562686f7374626f782e6e65742048656c6c6f204445534b544f502d57494e31315043205b3137332e36362e34362e3131325d0d0a3235302d53495a452035323432383830300d0a3235302d384249544d494d450d0a3235302d504950454c494e494e470d0a3235302d504950455f434f4e4e4543540d0a3235302d4155544820504c41494e204c4f47494e0d0a3235302d5354415254544c530d0a3235302048454c500d0a";
    /// github-pan-unit42-Wireshark-quizzes/quiz_2023-01_stealer_smtp_exfil.pcap, tcp.stream==2 && tcp.len>0, payload 3
    const STEALER_3: &str = "41555448206c6f67696e2062574679613256306157356e514852795957357a5a3256686369357062673d3d0d0a";
    /// github-pan-unit42-Wireshark-quizzes/quiz_2023-01_stealer_smtp_exfil.pcap, tcp.stream==2 && tcp.len>0, payload 4
    const STEALER_4: &str = "333334205547467a63336476636d51360d0a";
    /// github-pan-unit42-Wireshark-quizzes/quiz_2023-01_stealer_smtp_exfil.pcap, tcp.stream==2 && tcp.len>0, payload 5
    const STEALER_5: &str = "5455427a63336377636d516a4e6a49780d0a";
    /// github-pan-unit42-Wireshark-quizzes/quiz_2023-01_stealer_smtp_exfil.pcap, tcp.stream==2 && tcp.len>0, payload 6
    const STEALER_6: &str = "3233352041757468656e7469636174696f6e207375636365656465640d0a";
    /// github-pan-unit42-Wireshark-quizzes/quiz_2023-01_stealer_smtp_exfil.pcap, tcp.stream==2 && tcp.len>0, payload 7
    const STEALER_7: &str =
        "4d41494c2046524f4d3a3c6d61726b6574696e67407472616e73676561722e696e3e0d0a";
    /// github-pan-unit42-Wireshark-quizzes/quiz_2023-01_stealer_smtp_exfil.pcap, tcp.stream==2 && tcp.len>0 && tcp.srcport!=587, payload 4
    const STEALER_MORE_0: &str =
        "5243505420544f3a3c7a617269746b74406172686974656b746f6e64697a616a6e2e636f6d3e0d0a";
    /// github-pan-unit42-Wireshark-quizzes/quiz_2023-01_stealer_smtp_exfil.pcap, tcp.stream==2 && tcp.len>0 && tcp.srcport!=587, payload 5
    const STEALER_MORE_1: &str = "444154410d0a";
    /// github-pan-unit42-Wireshark-quizzes/quiz_2023-01_stealer_smtp_exfil.pcap, tcp.stream==2 && tcp.len>0 && tcp.srcport!=587, payload 6
    const STEALER_MORE_2: &str = "4d494d452d56657273696f6e3a20312e300d0a46726f6d3a206d61726b6574696e67407472616e73676561722e696e0d0a546f3a207a617269746b74406172686974656b746f6e64697a616a6e2e636f6d0d0a446174653a2035204a616e20323032332032323a35313a3331202b303030300d0a5375626a6563743a2050575f77696e646f77733131757365722f4445534b544f502d57494e313150430d0a436f6e74656e742d547970653a20746578742f68746d6c3b20636861727365743d75732d61736369690d0a436f6e74656e742d5472616e736665722d456e636f64696e673a2071756f7465642d7072696e7461626c650d0a0d0a";

    /// Feeds alternating real segments: `server` flags per segment.
    fn run(segments: &[(&str, bool)]) -> SmtpSummary {
        let mut s = SmtpSummary::default();
        for (h, client) in segments {
            s.update(&hex(h), *client);
        }
        s
    }

    #[test]
    fn size() {
        assert_eq!(core::mem::size_of::<SmtpSummary>(), 121);
    }

    #[test]
    fn recognisers_on_real_greetings_and_ehlo() {
        for g in [POSTFIX_0, PIPELINED_0, GMAIL_STARTTLS_0, STEALER_0] {
            assert!(looks_like_smtp_server(&hex(g)));
            assert!(!looks_like_smtp_client(&hex(g)));
        }
        for e in [POSTFIX_1, PIPELINED_1, GMAIL_STARTTLS_1, STEALER_1] {
            assert!(looks_like_smtp_client(&hex(e)));
            assert!(!looks_like_smtp_server(&hex(e)));
        }
        assert!(looks_like_smtp_client(b"helo x\r\n"));
        assert!(looks_like_smtp_client(b"EHLO\r\n"));
        // FTP greetings and plain 220s are not SMTP by themselves.
        for no in [
            &b"220 ProFTPD 1.3.5 Server (Debian) [::ffff:10.0.0.1]\r\n"[..],
            b"220 (vsFTPd 3.0.3)\r\n",
            b"220 Microsoft FTP Service\r\n",
            b"220 mail.example.com FTP server ready\r\n",
            b"220 host ready\r\n",
            b"2200 SMTP",
            b"250 SMTP",
            b"EHLOX a",
            b"",
        ] {
            assert!(!looks_like_smtp_server(no), "{no:?}");
            assert!(!looks_like_smtp_client(no), "{no:?}");
        }
        assert!(looks_like_smtp_server(
            b"220 mx Microsoft ESMTP MAIL Service ready\r\n"
        ));
        assert!(looks_like_smtp_server(b"220 mail.example.com ready\r\n"));
    }

    #[test]
    fn postfix_session() {
        let s = run(&[
            (POSTFIX_0, false),
            (POSTFIX_1, true),
            (POSTFIX_2, false),
            (POSTFIX_3, true),
            (POSTFIX_4, false),
            (POSTFIX_5, true),
            (POSTFIX_6, false),
        ]);
        assert!(s.greeting);
        assert_eq!(s.banner, "mail01 ESMTP Postfix (Ubuntu)");
        assert_eq!(s.ehlo, "[172.16.16.225]");
        assert!(s.mail_from && !s.auth && !s.starttls && !s.data);
        assert_eq!(s.rcpt_to, 1);
    }

    #[test]
    fn pipelined_mail_rcpt_data_in_one_segment() {
        let s = run(&[
            (PIPELINED_0, false),
            (PIPELINED_1, true),
            (PIPELINED_2, false),
            (PIPELINED_3, true),
        ]);
        assert_eq!(s.ehlo, "mail01");
        assert!(s.mail_from && s.data);
        assert_eq!(s.rcpt_to, 1);
    }

    #[test]
    fn starttls_stops_reading_and_keeps_first_banner() {
        let s = run(&[
            (GMAIL_STARTTLS_0, false),
            (GMAIL_STARTTLS_1, true),
            (GMAIL_STARTTLS_2, false),
            (GMAIL_STARTTLS_3, true),
            (GMAIL_STARTTLS_4, false),
        ]);
        assert!(s.starttls);
        assert_eq!(s.banner, "mx.google.com ESMTP hf10si4097299icc.190 - gsmtp");
        assert_eq!(s.ehlo, "openssl.client.net");
        let mut t = s.clone();
        t.update(b"\x16\x03\x01\x02\x00RCPT TO:<x>\r\n", true);
        assert_eq!(t, s);
    }

    #[test]
    fn stealer_exfiltration_auth_and_data_body_ignored() {
        let mut s = run(&[
            (STEALER_0, false),
            (STEALER_1, true),
            (STEALER_2, false),
            (STEALER_3, true),
            (STEALER_4, false),
            (STEALER_5, true),
            (STEALER_6, false),
            (STEALER_7, true),
            (STEALER_MORE_0, true),
            (STEALER_MORE_1, true),
            (STEALER_MORE_2, true),
        ]);
        assert_eq!(s.banner, "bh-41.webhostbox.net ESMTP Exim 4.95 #2 Thu, 05 ");
        assert_eq!(s.ehlo, "DESKTOP-WIN11PC");
        assert!(s.auth && s.mail_from && s.data && !s.starttls);
        assert_eq!(s.rcpt_to, 1);
        // Inside the message, command-like lines are content; after the lone dot they count.
        s.update(
            b"rcpt to:<in-body@x>\r\nDATA\r\n.\r\nrcpt TO:<next@x>\r\n",
            true,
        );
        assert_eq!(s.rcpt_to, 2);
    }

    #[test]
    fn serializes() {
        let s = run(&[
            (PIPELINED_0, false),
            (PIPELINED_1, true),
            (PIPELINED_3, true),
        ]);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"greeting":true,"banner":"mail02 ESMTP Postfix (Ubuntu)","ehlo":"mail01","starttls":false,"auth":false,"mail_from":true,"rcpt_to":1,"data":true}"#
        );
        assert_eq!(
            serde_json::to_string(&SmtpSummary::default()).unwrap(),
            r#"{"greeting":false,"starttls":false,"auth":false,"mail_from":false,"rcpt_to":0,"data":false}"#
        );
    }

    #[test]
    fn case_and_spacing() {
        let mut s = SmtpSummary::default();
        s.update(
            b"  ehlo   host-1  \r\nmail from:<a@b>\nRcPt To:<c@d>\nrcpt to:<e@f>\r\n",
            true,
        );
        assert_eq!(s.ehlo, "host-1");
        assert!(s.mail_from);
        assert_eq!(s.rcpt_to, 2);
        // MAIL without FROM: is no MAIL FROM.
        let mut t = SmtpSummary::default();
        t.update(b"MAIL\r\nRCPT x\r\n", true);
        assert!(!t.mail_from);
        assert_eq!(t.rcpt_to, 0);
    }

    #[test]
    fn bounded_lines_and_saturation() {
        let mut p = std::vec::Vec::new();
        for _ in 0..1000 {
            p.extend_from_slice(b"RCPT TO:<x@y>\r\n");
        }
        let mut s = SmtpSummary::default();
        s.update(&p, true);
        assert_eq!(usize::from(s.rcpt_to), MAX_LINES);
        for _ in 0..20 {
            s.update(&p, true);
        }
        assert_eq!(s.rcpt_to, 255);
        let mut g = SmtpSummary::default();
        g.update(b"220 \xff\x00\x1b[31mevil ESMTP\r\n", false);
        assert_eq!(g.banner, "...[31mevil ESMTP");
    }

    #[test]
    fn fuzz_never_panics() {
        let samples: std::vec::Vec<std::vec::Vec<u8>> = [
            POSTFIX_0,
            POSTFIX_2,
            POSTFIX_3,
            PIPELINED_3,
            GMAIL_STARTTLS_2,
            STEALER_0,
            STEALER_3,
            STEALER_MORE_2,
        ]
        .iter()
        .map(|h| hex(h))
        .collect();
        for p in &samples {
            for n in 0..=p.len() {
                let mut s = SmtpSummary::default();
                s.update(&p[..n], true);
                s.update(&p[..n], false);
                let _ = (
                    looks_like_smtp_server(&p[..n]),
                    looks_like_smtp_client(&p[..n]),
                );
            }
        }
        let mut rng = XorShift::new(0x2545_f491_4f6c_dd1d);
        for _ in 0..4000 {
            let mut p = samples[rng.below(samples.len())].clone();
            rng.mutate(&mut p, 8, b"\n ", 4);
            let mut s = SmtpSummary::default();
            s.update(&p, rng.next().is_multiple_of(2));
            let _ = (looks_like_smtp_server(&p), looks_like_smtp_client(&p));
            assert!(s.banner.len() <= 48 && s.ehlo.len() <= 64);
        }
    }
}
