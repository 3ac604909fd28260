//! HTTP/1.x recogniser and summary, whatever the port.
//!
//! botd sees only the first few payload segments of each direction of a TCP flow, so this keeps
//! what identifies a client and what it fetched (method, path, Host, User-Agent) and what the
//! server answered (status, media type). Parsing is httparse's (lenient settings), with a fixed
//! header array on the stack: nothing is allocated, and nothing is buffered across segments but a
//! two-byte note of where a cut request head stopped, so that a Host or User-Agent split between
//! two segments is still read whole. A request line httparse refuses (spaces or control bytes in
//! the target, as some bots send) still has its header lines read.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use heapless::String;

use super::{copy_printable, push_printable};
use serde::Serialize;

/// Methods that [`looks_like_http_request`] accepts (RFC 9110 plus PATCH). WebDAV and SSDP
/// methods are left out on purpose: SSDP is UDP, WebDAV is rare in the traffic botd watches.
const METHODS: [&[u8]; 9] = [
    b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"PATCH", b"TRACE",
];

/// Header slots per parse: a request with more headers is cut at 32 (what was parsed is kept).
const MAX_HEADERS: usize = 32;

/// Pipelined requests looked at in one segment: bounds the work a hostile segment can cause.
const MAX_REQUESTS_PER_SEGMENT: usize = 4;

/// What botd keeps of an HTTP flow. `size_of` is 254 bytes (budget 256): strings carry a
/// one-byte length.
///
/// The first request sets `method` and `uri`; `host` and `user_agent` come from the first
/// request that has them (a keep-alive flow almost always repeats them). `status` is the first
/// final (non-1xx) status, `content_type` the first response's media type without parameters.
/// Bytes outside printable ASCII are stored as `.`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HttpSummary {
    /// Request method of the first request (`GET`, `POST`, ...).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub method: String<8, u8>,
    /// Request target of the first request (path and query, or absolute form to a proxy).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub uri: String<48, u8>,
    /// `uri` was cut to fit.
    #[serde(skip_serializing_if = "is_false")]
    pub uri_truncated: bool,
    /// Host header value as sent (may carry `:port`).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub host: String<64, u8>,
    /// User-Agent header value, cut at 62 bytes (what tells clients apart is at its start).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub user_agent: String<62, u8>,
    /// Response status code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Media type of the first response that has a Content-Type (`text/html`), cut at 24.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub content_type: String<24, u8>,
    /// Request heads seen from the client (saturating).
    pub requests: u8,
    /// Response heads seen from the server (saturating).
    pub responses: u8,
    /// The first response body that began with an executable's magic bytes, or whose media
    /// type named one (any response of the flow, not only the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable: Option<Executable>,
    /// A request of the flow carried an Accept-Language header, which every browser sends
    /// with every request (`crate::evidence::claims_browser`).
    #[serde(skip)]
    pub accept_language: bool,
    /// A response of the flow carried Flash, a Java applet or Silverlight
    /// ([`is_plugin_media_type`]).
    #[serde(skip_serializing_if = "is_false")]
    pub plugin: bool,
    /// A response head ended exactly at its segment's end: the server's next segment starts
    /// its body.
    #[serde(skip)]
    body_next: bool,
    /// Set when the last client segment ended inside a request head, so that the next one
    /// continues it; says which header line it ended inside.
    #[serde(skip)]
    pending: Option<CutLine>,
}

/// The header line a segment ended in, so that the next segment's first line completes it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum CutLine {
    /// The segment ended at a line end.
    #[default]
    None,
    /// A line whose rest is skipped.
    Other,
    /// Inside the value of a kept header: the rest of the line is appended.
    Value(Field),
    /// Inside the name of a kept header, after this many bytes of `Field::name`.
    Name(Field, u8),
}

/// The request headers kept.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Field {
    Host,
    UserAgent,
}

impl Field {
    /// The header name with its colon, lower case.
    fn name(self) -> &'static [u8] {
        match self {
            Field::Host => b"host:",
            Field::UserAgent => b"user-agent:",
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An executable file format, by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Executable {
    /// `MZ`: Windows PE (and DOS) programs and DLLs.
    Pe,
    /// `\x7fELF`: Linux and most IoT programs.
    Elf,
    /// Mach-O, either byte order, 32 or 64 bits.
    MachO,
    /// A script a system runs as a program: a body that starts with `#!/`, or a file served as
    /// one by name (`.sh`, `.ps1`, `.vbs`, `.hta`, `.py`, ...): IoT loaders' `bins.sh`,
    /// PowerShell and VBScript droppers, Python agents.
    Script,
}

impl Executable {
    /// The format a body starting with `b` is in. `MZ` alone is two bytes that text rarely
    /// starts with, but to be sure a PE needs its DOS stub's offset field to be plausible or the
    /// stub's text to follow.
    pub fn of(b: &[u8]) -> Option<Executable> {
        if b.starts_with(b"\x7fELF") {
            return Some(Executable::Elf);
        }
        if b.starts_with(b"#!/") {
            return Some(Executable::Script);
        }
        if let Some(m) = b.get(..4)
            && matches!(
                m,
                [0xfe, 0xed, 0xfa, 0xce | 0xcf] | [0xce | 0xcf, 0xfa, 0xed, 0xfe]
            )
        {
            return Some(Executable::MachO);
        }
        if b.starts_with(b"MZ") {
            let stub = b.get(..128).unwrap_or(b);
            let pe_offset = b
                .get(0x3c..0x40)
                .and_then(|o| <[u8; 4]>::try_from(o).ok())
                .map(u32::from_le_bytes);
            let stub_text = stub.windows(11).any(|w| w == b"This progra");
            if stub_text || pe_offset.is_some_and(|o| (0x40..0x1000).contains(&o)) {
                return Some(Executable::Pe);
            }
        }
        None
    }

    /// The format a response's media type (as kept: cut at 24 bytes) names, if one.
    pub fn of_media_type(t: &str) -> Option<Executable> {
        let t = t.to_ascii_lowercase();
        let pe = [
            "application/x-msdownload",
            "application/x-dosexec",
            "application/x-msdos-prog",
            "application/x-ms-dos-exe",
        ];
        let elf = ["application/x-executable", "application/x-elf"];
        if pe.iter().any(|p| t.starts_with(p)) {
            Some(Executable::Pe)
        } else if elf.iter().any(|p| t.starts_with(p)) {
            Some(Executable::Elf)
        } else {
            None
        }
    }

    /// The program a file name names by its extension (case-insensitive). `attachment`: the
    /// name came from a `Content-Disposition: attachment` (a download the server says is a
    /// file to save), where `.js` is a JScript file for Windows to run and `.py`, `.pl` are
    /// programs; in a request path they are a web page's script or a server's CGI, so they
    /// count only as attachments.
    pub fn of_file_name(name: &[u8], attachment: bool) -> Option<Executable> {
        let dot = name.iter().rposition(|&b| b == b'.')?;
        let ext = name.get(dot + 1..)?;
        let is = |e: &[u8]| ext.eq_ignore_ascii_case(e);
        if ["exe", "dll", "scr", "msi", "cpl"]
            .into_iter()
            .any(|e| is(e.as_bytes()))
        {
            Some(Executable::Pe)
        } else if [
            "sh", "ps1", "psm1", "vbs", "vbe", "jse", "wsf", "hta", "bat", "cmd",
        ]
        .into_iter()
        .any(|e| is(e.as_bytes()))
            || (attachment && ["js", "py", "pl"].into_iter().any(|e| is(e.as_bytes())))
        {
            Some(Executable::Script)
        } else {
            None
        }
    }

    /// The program a request target's path names (its query left out), if one.
    pub fn of_request_target(target: &str) -> Option<Executable> {
        let path = target.split(['?', '#']).next().unwrap_or_default();
        let file = path.rsplit('/').next().unwrap_or_default();
        Executable::of_file_name(file.as_bytes(), false)
    }

    /// The file name of a `Content-Disposition` value that says `attachment`, if it names one
    /// (`attachment; filename="ragdoll.py"`; the RFC 6266 `filename*=` form too).
    pub fn of_content_disposition(v: &[u8]) -> Option<Executable> {
        let mut parts = v.split(|&b| b == b';').map(<[u8]>::trim_ascii);
        if !parts.next()?.eq_ignore_ascii_case(b"attachment") {
            return None;
        }
        parts.find_map(|p| {
            let eq = p.iter().position(|&b| b == b'=')?;
            let (key, value) = (p.get(..eq)?.trim_ascii(), p.get(eq + 1..)?.trim_ascii());
            let is_name =
                key.eq_ignore_ascii_case(b"filename") || key.eq_ignore_ascii_case(b"filename*");
            let value = value.strip_prefix(b"\"").unwrap_or(value);
            let value = value.strip_suffix(b"\"").unwrap_or(value);
            is_name
                .then(|| Executable::of_file_name(value, true))
                .flatten()
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Executable::Pe => "PE",
            Executable::Elf => "ELF",
            Executable::MachO => "Mach-O",
            Executable::Script => "script",
        }
    }
}

/// A client's first bytes: a known method token followed by a space.
pub fn looks_like_http_request(p: &[u8]) -> bool {
    METHODS.iter().any(|m| {
        p.strip_prefix(*m)
            .and_then(|rest| rest.strip_prefix(b" "))
            .is_some_and(|rest| rest.first().is_none_or(|b| b.is_ascii_graphic()))
    })
}

/// A media type (as kept: cut at 24 bytes) of the browser plug-ins exploit kits delivered their
/// exploits in: Flash, Java applets, Silverlight. Browsers stopped running them years ago.
pub fn is_plugin_media_type(t: &str) -> bool {
    let t = t.to_ascii_lowercase();
    [
        "application/x-shockwave",
        "application/x-java-arch",
        "application/java-archive",
        "application/x-java-appl",
        "application/x-silverligh",
    ]
    .iter()
    .any(|p| t.starts_with(p))
}

/// A server's first bytes: `HTTP/1.` (HTTP/1.0 and 1.1 status lines).
pub fn looks_like_http_response(p: &[u8]) -> bool {
    p.starts_with(b"HTTP/1.")
}

impl HttpSummary {
    /// Takes one payload segment of the flow, in order per direction.
    pub fn update(&mut self, payload: &[u8], from_client: bool) {
        if from_client {
            self.update_client(payload);
        } else {
            self.update_server(payload);
        }
    }

    fn update_client(&mut self, payload: &[u8]) {
        if let Some(cut) = self.pending.take()
            && !looks_like_http_request(payload)
        {
            self.continue_head(payload, cut);
            return;
        }
        let mut rest = payload;
        for _ in 0..MAX_REQUESTS_PER_SEGMENT {
            if !looks_like_http_request(rest) {
                break;
            }
            match self.parse_request(rest) {
                Some(next) => rest = next,
                None => break,
            }
        }
    }

    /// Parses one request head at the start of `buf`; returns what follows it and its body
    /// when the head is complete, or `None` when the segment has nothing more to offer.
    fn parse_request<'b>(&mut self, buf: &'b [u8]) -> Option<&'b [u8]> {
        self.requests = self.requests.saturating_add(1);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let res = httparse::ParserConfig::default()
            .allow_multiple_spaces_in_request_line_delimiters(true)
            .ignore_invalid_headers_in_requests(true)
            .parse_request(&mut req, buf);
        if self.method.is_empty() {
            if let Some(m) = req.method {
                copy_printable(&mut self.method, m.as_bytes());
            }
            if let Some(path) = req.path {
                self.uri_truncated = copy_printable(&mut self.uri, path.as_bytes());
            } else {
                // The request line is cut inside the target, or httparse refused it (spaces,
                // control bytes): keep what is there.
                self.uri_truncated = partial_target(buf, &mut self.uri);
            }
        }
        if res.is_err() && req.version.is_none() {
            // httparse gave up on the request line (bots send `GET /a b HTTP/1.1` and worse);
            // its header lines may still be fine.
            let Some(line_end) = buf.iter().position(|&b| b == b'\n') else {
                self.pending = Some(CutLine::Other);
                return None;
            };
            let line_end = line_end.checked_add(1)?;
            let (_, after_line) = buf.split_at_checked(line_end)?;
            let (n, content_length) = self.read_headers(after_line)?;
            return buf.get(line_end.checked_add(n)?.checked_add(content_length)?..);
        }
        // On Partial and on Err httparse leaves the headers parsed so far in `headers`; the
        // unused slots keep an empty name.
        let content_length = self.take_headers(req.headers);
        match res {
            Ok(httparse::Status::Complete(n)) => buf.get(n.checked_add(content_length)?..),
            Ok(httparse::Status::Partial) => {
                self.pending = Some(self.cut_line(buf));
                None
            }
            Err(_) => None,
        }
    }

    /// Reads header lines; returns the head's length and Content-Length when the head ends
    /// in `buf`, and notes a cut head in `pending` when it does not.
    fn read_headers(&mut self, buf: &[u8]) -> Option<(usize, usize)> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let res = httparse::parse_headers(buf, &mut headers).map(|s| match s {
            httparse::Status::Complete((n, _)) => Some(n),
            httparse::Status::Partial => None,
        });
        let content_length = self.take_headers(&headers);
        match res {
            Ok(Some(n)) => Some((n, content_length)),
            Ok(None) => {
                self.pending = Some(self.cut_line(buf));
                None
            }
            Err(_) => None,
        }
    }

    /// Keeps Host and User-Agent from parsed headers and notes an Accept-Language; returns the
    /// Content-Length (0 if none).
    fn take_headers(&mut self, headers: &[httparse::Header<'_>]) -> usize {
        let mut content_length = 0;
        for h in headers.iter().take_while(|h| !h.name.is_empty()) {
            if self.host.is_empty() && h.name.eq_ignore_ascii_case("host") {
                copy_printable(&mut self.host, h.value);
            } else if self.user_agent.is_empty() && h.name.eq_ignore_ascii_case("user-agent") {
                copy_printable(&mut self.user_agent, h.value);
            } else if h.name.eq_ignore_ascii_case("accept-language") {
                self.accept_language = true;
            } else if h.name.eq_ignore_ascii_case("content-length") {
                content_length = parse_usize(h.value).unwrap_or(usize::MAX);
            }
        }
        content_length
    }

    /// The header line `buf` ends inside (httparse gives back only whole lines): a cut Host or
    /// User-Agent value is kept as far as it goes, and a cut name is remembered, for the next
    /// segment to complete.
    fn cut_line(&mut self, buf: &[u8]) -> CutLine {
        if buf.is_empty() || buf.ends_with(b"\n") {
            return CutLine::None;
        }
        let last = buf.rsplit(|&b| b == b'\n').next().unwrap_or_default();
        let last = last.strip_suffix(b"\r").unwrap_or(last);
        for field in [Field::Host, Field::UserAgent] {
            if !self.field_is_empty(field) {
                continue;
            }
            if let Some(v) = strip_prefix_ci(last, field.name()) {
                self.push_field(field, v.trim_ascii_start());
                return CutLine::Value(field);
            }
            if !last.is_empty()
                && let Some(n) = u8::try_from(last.len()).ok()
                && strip_prefix_ci(field.name(), last).is_some()
            {
                return CutLine::Name(field, n);
            }
        }
        CutLine::Other
    }

    /// A segment that continues a request head cut by the previous one.
    fn continue_head(&mut self, payload: &[u8], cut: CutLine) {
        let mut buf = payload;
        if cut != CutLine::None {
            // The first line's start was in the previous segment.
            let (rest_of_line, next) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (
                    buf.get(..i).unwrap_or_default(),
                    buf.get(i.saturating_add(1)..).unwrap_or_default(),
                ),
                None => (buf, &b""[..]),
            };
            let rest_of_line = rest_of_line.strip_suffix(b"\r").unwrap_or(rest_of_line);
            match cut {
                CutLine::Value(field) => {
                    let v = if self.field_is_empty(field) {
                        rest_of_line.trim_ascii_start()
                    } else {
                        rest_of_line
                    };
                    self.push_field(field, v);
                }
                CutLine::Name(field, n) => {
                    let rest_of_name = field.name().get(usize::from(n)..).unwrap_or_default();
                    if let Some(v) = strip_prefix_ci(rest_of_line, rest_of_name) {
                        self.push_field(field, v.trim_ascii_start());
                    }
                }
                CutLine::None | CutLine::Other => {}
            }
            if !buf.contains(&b'\n') {
                // Still inside the same line: it goes on in the next segment.
                self.pending = Some(match cut {
                    CutLine::Name(..) => CutLine::Other,
                    other => other,
                });
                return;
            }
            buf = next;
        }
        // Whatever follows the head (a body) is not looked at.
        let _ = self.read_headers(buf);
    }

    fn field_is_empty(&self, field: Field) -> bool {
        match field {
            Field::Host => self.host.is_empty(),
            Field::UserAgent => self.user_agent.is_empty(),
        }
    }

    /// Appends to a kept header value (cut to fit).
    fn push_field(&mut self, field: Field, v: &[u8]) {
        match field {
            Field::Host => push_printable(&mut self.host, v),
            Field::UserAgent => push_printable(&mut self.user_agent, v),
        };
    }

    fn update_server(&mut self, payload: &[u8]) {
        if !looks_like_http_response(payload) {
            // Body or a continuation: only a body's first bytes are looked at.
            if std::mem::take(&mut self.body_next) && self.executable.is_none() {
                self.executable = Executable::of(payload);
            }
            return;
        }
        self.body_next = false;
        self.responses = self.responses.saturating_add(1);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        // Partial and Err still leave the status code and the headers parsed so far.
        let parsed = httparse::ParserConfig::default()
            .allow_multiple_spaces_in_response_status_delimiters(true)
            .allow_spaces_after_header_name_in_responses(true)
            .ignore_invalid_headers_in_responses(true)
            .parse_response(&mut resp, payload);
        if let Ok(httparse::Status::Complete(head)) = parsed
            && self.executable.is_none()
        {
            match payload.get(head..) {
                Some(body) if !body.is_empty() => self.executable = Executable::of(body),
                _ => self.body_next = true,
            }
        }
        let mut first_final_ok = false;
        if let Some(code) = resp.code {
            // A 1xx is interim: the final status follows and replaces it.
            if self.status.is_none_or(|s| s < 200) {
                self.status = Some(code);
                first_final_ok = (200..300).contains(&code);
            }
        }
        let attachment = resp
            .headers
            .iter()
            .take_while(|h| !h.name.is_empty())
            .find(|h| h.name.eq_ignore_ascii_case("content-disposition"));
        if let Some(h) = attachment
            && self.executable.is_none()
        {
            self.executable = Executable::of_content_disposition(h.value);
        }
        let ct = resp
            .headers
            .iter()
            .take_while(|h| !h.name.is_empty())
            .find(|h| h.name.eq_ignore_ascii_case("content-type"));
        if let Some(h) = ct {
            let media = h.value.split(|&b| b == b';').next().unwrap_or_default();
            let mut this: String<24, u8> = String::new();
            copy_printable(&mut this, media.trim_ascii());
            // Later responses of a keep-alive flow: an exploit kit serves its landing page,
            // exploit and payload on one connection.
            self.plugin |= is_plugin_media_type(&this);
            if self.executable.is_none() {
                self.executable = Executable::of_media_type(&this);
            }
            if self.content_type.is_empty() {
                self.content_type = this;
            }
        }
        // The first request's target names a program and the server delivered it, not a page
        // about it (a cut target may have lost its extension: not looked at).
        let page = self.content_type.starts_with("text/html");
        if first_final_ok && !page && !self.uri_truncated && self.executable.is_none() {
            self.executable = Executable::of_request_target(&self.uri);
        }
    }
}

/// The request target of a request line cut before its end (`GET /very/long/pa`).
fn partial_target<const N: usize>(buf: &[u8], dst: &mut String<N, u8>) -> bool {
    let line = buf
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ').filter(|t| !t.is_empty());
    let _method = parts.next();
    match parts.next() {
        Some(target) => copy_printable(dst, target),
        None => false,
    }
}

fn parse_usize(v: &[u8]) -> Option<usize> {
    let v = v.trim_ascii();
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0usize, |acc, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(usize::from(d))
    })
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (head, rest) = s.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(rest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::proto::test_support::{XorShift, hex};

    /// chrissanders-packets/http_espn.pcapng, tcp.stream==0 && tcp.len>0, payload 0
    const ESPN_REQ: &str = "474554202f20485454502f312e310d0a486f73743a207777772e6573706e2e636f6d0d0a557365722d4167656e743a204d6f7a696c6c612f352e3020285831313b20553b204c696e757820693638363b20656e2d55533b2072763a312e392e312e3829204765636b6f2f3230313030323134205562756e74752f392e313020286b61726d6963292046697265666f782f332e352e380d0a4163636570743a20746578742f68746d6c2c6170706c69636174696f6e2f7868746d6c2b786d6c2c6170706c69636174696f6e2f786d6c3b713d302e392c2a2f2a3b713d302e380d0a4163636570742d4c616e67756167653a20656e2d75732c656e3b713d302e350d0a4163636570742d456e636f64696e673a20677a69702c6465666c6174650d0a4163636570742d436861727365743a2049534f2d383835392d312c7574662d383b713d302e372c2a3b713d302e370d0a4b6565702d416c6976653a203330300d0a436f6e6e656374696f6e3a206b6565702d616c6976650d0a0d0a";
    /// chrissanders-packets/http_espn.pcapng, tcp.stream==0 && tcp.len>0, payload 1
    const ESPN_RESP: &str = "485454502f312e3120333031204d6f766564205065726d616e656e746c790d0a446174653a205765642c2030372041707220323031302031383a31323a303520474d540d0a5365727665723a204170616368650d0a4c6f636174696f6e3a20687474703a2f2f6573706e2e676f2e636f6d2f0d0a436f6e74656e742d4c656e6774683a203232370d0a582d436e656374696f6e3a20636c6f73650d0a436f6e74656e742d547970653a20746578742f68746d6c3b20636861727365743d69736f2d383835392d310d0a0d0a3c21444f43545950452048544d4c205055424c494320222d2f2f494554462f2f4454442048544d4c20322e302f2f454e223e0a3c68746d6c3e3c686561643e0a3c7469746c653e333031204d6f766564205065726d616e656e746c793c2f7469746c653e0a3c2f686561643e3c626f64793e0a3c68313e4d6f766564205065726d616e656e746c793c2f68313e0a3c703e54686520646f63756d656e7420686173206d6f766564203c6120687265663d22687474703a2f2f6573706e2e676f2e636f6d2f223e686572653c2f613e2e3c2f703e0a3c2f626f64793e3c2f68746d6c3e0a";
    /// github-corelight-zeek-caldera-detector/caldera_sandcat_http_beacon.pcap, tcp.stream==1 && tcp.len>0, payload 0
    const CALDERA_0: &str = "504f5354202f626561636f6e20485454502f312e310d0a486f73743a203137322e31382e302e323a383838380d0a557365722d4167656e743a20476f2d687474702d636c69656e742f312e310d0a436f6e74656e742d4c656e6774683a203537320d0a4163636570742d456e636f64696e673a20677a69700d0a0d0a65794a68636d4e6f6158526c59335231636d55694f694a68625751324e434973496d463259576c7359574a735a56396a6232353059574e306379493657794a4956465251496c3073496d4e76626e5268593351694f694a4956465251496977695a4756685a473168626c396c626d46696247566b496a7030636e566c4c434a6c65475666626d46745a534936496e4e7762485675613251694c434a6c6547566a64585276636e4d694f6c736963326769585377695a334a76645841694f694a795a5751694c434a6f62334e30496a6f694d6a59314d6d59344e44686c4d574934496977696147397a64463970634639685a47527963794936577949784e7a49754d5467754d43347a496c3073496d78765932463061573975496a6f694c69397a63477831626d746b4969776962334a705a326c7558327870626d7466615751694f6a4173496e42686479493649694973496e42705a4349364e6a4573496e42735958526d62334a74496a6f6962476c75645867694c434a7763476c6b496a6f334c434a77636d6c326157786c5a3255694f694a46624756325958526c5a434973496e42796233683558334a6c59325670646d567963794936626e56736243776963325679646d5679496a6f696148523063446f764c7a45334d6934784f4334774c6a49364f4467344f434973496e5677633352795a5746745832526c633351694f694a6f644852774f6938764d5463794c6a45344c6a41754d6a6f344f4467344969776964584e6c636d3568625755694f694a7962323930496e303d";
    /// github-corelight-zeek-caldera-detector/caldera_sandcat_http_beacon.pcap, tcp.stream==1 && tcp.len>0, payload 1
    const CALDERA_1: &str = "485454502f312e3120323030204f4b0d0a436f6e74656e742d547970653a20746578742f706c61696e3b20636861727365743d7574662d380d0a436f6e74656e742d4c656e6774683a203436300d0a446174653a205765642c2031382044656320323032342031383a33353a333820474d540d0a5365727665723a20507974686f6e2f332e382061696f687474702f332e362e320d0a0d0a";
    /// github-corelight-zeek-caldera-detector/caldera_sandcat_http_beacon.pcap, tcp.stream==1 && tcp.len>0, payload 3
    const CALDERA_2: &str = "504f5354202f626561636f6e20485454502f312e310d0a486f73743a203137322e31382e302e323a383838380d0a557365722d4167656e743a20476f2d687474702d636c69656e742f312e310d0a436f6e74656e742d4c656e6774683a203332340d0a4163636570742d456e636f64696e673a20677a69700d0a0d0a65794a6a6232353059574e30496a6f695346525555434973496d6876633351694f6949794e6a55795a6a67304f475578596a67694c434a77595863694f694a3564474a77595763694c434a77624746305a6d397962534936496d7870626e563449697769636d567a645778306379493657337369615751694f6949324f446777595468684f4330334e7a566c4c5452684e6d49744f57557a4e79307a4e4751794e44686a4e5463354d6a45694c434a7664585277645851694f6949694c434a77615751694f6949324f534973496e4e305958523163794936496a416966563073496e4e6c636e5a6c63694936496d6830644841364c7938784e7a49754d5467754d4334794f6a67344f4467694c434a3163484e30636d56686256396b5a584e30496a6f696148523063446f764c7a45334d6934784f4334774c6a49364f4467344f434a39";
    /// github-LiamRandall-BroMalware-Exercise/zeroaccess_p2p_2012-10-04.pcap, tcp.stream==22 && tcp.len>0, payload 0
    const ZEROACCESS_SPLIT_0: &str = "474554202f5f5f75746d2e6769663f75746d77763d352e332e362675746d733d312675746d6e3d313739313132303634322675746d686e3d7777772e6461696c7972782e636f6d2675746d63733d7574662d382675746d73723d31313737783838332675746d76703d31313637783834372675746d73633d33322d6269742675746d756c3d656e2d75732675746d6a653d312675746d666c3d362e302532307237392675746d64743d6461696c7952782675746d6869643d3732373138373032382675746d723d6874747025334125324625324672656469726563742e61642d66656564732e636f6d253246726573756c7473253246253346706172746e657269642533443131343339362532366170706964253344302532367375626964253344313335383631323938395f3132393735333025323669702533443132382e3136342e3130372e323231253236636964253344323539373031253236656e747279253344676f72646f6e25323532306c652532353230626c6575253236726f6e4d696e253344302e3030303130302532366d62253344302e30303031303025323671732533444968774941685659465856594230564e52554a61586c78465252637843466c495846595a6651684642427765454159644a3055634647525958554a565131513848675a50533159584267734c484255575956785951463157426a6350467864455146705a58316b524551633347314241516c5551636c355456426f4353566c425868455745574e5041784a5256513531586c64415356595847564a654478455259316c644446784c45485665553049465155525a515634524552466a465631655846555164563466516c644152466c66586c305244324e5a576b426347525a3151464e4353554245465678414552455259316b5251554a5645485665553151614752425558567359466846695477455a434667586656396152556c43556730414130424954323465476764434155457341686f674156345842674a4955465563596c705a53563951454846575656515342306b6241414148516b6f6b5645734343514d645978774e475552425568306348565641526a6f4e55454a5a56524a7a576c42425878635242687350526b6846626c746552466c53426a4163443038524241415a536c314142424d3154463857474131504e304148457841634452735851454a4f54485a624331566641315578417a7742466755474367704c456b5551596c316553566f364542706655456442526b5662566c595966684268554670465831554664316757426851764751774c4231524d4247414e585542645652412533442675746d703d25334675746d5f736f757263652533443131343339365f305f313335383631323938395f3132393735333025323675746d5f6d656469756d25334430303130302675746d61633d55412d31313535373738342d32352675746d63633d5f5f75746d612533443231383038383435312e313137393239383333312e313334393335303438382e313334393335303438382e313334393335303438382e312533422532425f5f75746d7a2533443231383038383435312e313334393335303438382e312e312e75746d6373722533443131343339365f305f313335383631323938395f3132393735333025374375746d63636e253344286e6f7425323532307365742925374375746d636d6425334430303130302533422675746d753d717e20485454502f312e310d0a4163636570743a202a2f2a0d0a526566657265723a20687474703a2f2f7777772e6461696c7972782e636f6d2f3f75746d5f736f757263653d3131343339365f305f313335383631323938395f313239373533302675746d5f6d656469756d3d30303130300d0a4163636570742d456e636f64696e673a20677a69702c206465666c6174650d0a557365722d4167656e743a204d6f7a696c6c612f342e302028636f6d70617469626c653b204d53494520382e303b2057696e646f7773";
    /// github-LiamRandall-BroMalware-Exercise/zeroaccess_p2p_2012-10-04.pcap, tcp.stream==22 && tcp.len>0, payload 1
    const ZEROACCESS_SPLIT_1: &str = "204e5420352e313b2054726964656e742f342e303b202e4e4554342e30433b202e4e4554342e30453b202e4e455420434c5220322e302e35303732373b202e4e455420434c5220332e302e30343530362e3634383b202e4e455420434c5220332e352e3231303232290d0a486f73743a207777772e676f6f676c652d616e616c79746963732e636f6d0d0a436f6e6e656374696f6e3a204b6565702d416c6976650d0a0d0a";

    const ESPN_UA: &str = "Mozilla/5.0 (X11; U; Linux i686; en-US; rv:1.9.1.8) Gecko/20100214 Ubuntu/9.10 (karmic) Firefox/3.5.8";
    const ZEROACCESS_UA: &str = "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0; .NET4.0C; .NET4.0E; .NET CLR 2.0.50727; .NET CLR 3.0.04506.648; .NET CLR 3.5.21022)";

    fn summarize(segments: &[(&[u8], bool)]) -> HttpSummary {
        let mut s = HttpSummary::default();
        for (p, c) in segments {
            s.update(p, *c);
        }
        s
    }

    #[test]
    fn size_budget() {
        assert!(core::mem::size_of::<HttpSummary>() <= 256);
        assert!(
            core::mem::size_of::<HttpSummary>() <= 224,
            "{}",
            core::mem::size_of::<HttpSummary>()
        );
    }

    #[test]
    fn recognisers() {
        assert!(looks_like_http_request(&hex(ESPN_REQ)));
        assert!(looks_like_http_request(&hex(CALDERA_0)));
        assert!(!looks_like_http_request(&hex(ESPN_RESP)));
        assert!(looks_like_http_response(&hex(ESPN_RESP)));
        assert!(looks_like_http_response(&hex(CALDERA_1)));
        assert!(!looks_like_http_response(&hex(ESPN_REQ)));
        for m in METHODS {
            let mut p = m.to_vec();
            p.extend_from_slice(b" /x HTTP/1.1\r\n");
            assert!(looks_like_http_request(&p));
        }
        assert!(looks_like_http_request(b"GET "));
        for no in [
            &b"GET"[..],
            b"GETX / HTTP/1.1",
            b"get / HTTP/1.1",
            b"GET  /",
            b"M-SEARCH * HTTP/1.1",
            b"",
            b"HTTP/2 200",
        ] {
            assert!(!looks_like_http_request(no), "{no:?}");
            assert!(!looks_like_http_response(no), "{no:?}");
        }
    }

    #[test]
    fn executables_are_told_by_their_first_bytes_or_media_type() {
        let mut pe = b"MZ\x90\x00\x03\x00\x00\x00".to_vec();
        pe.resize(0x3c, 0);
        pe.extend_from_slice(&0x80u32.to_le_bytes());
        pe.extend_from_slice(b"\x0e\x1f\xba\x0e\x00This program cannot be run in DOS mode.");
        assert_eq!(Executable::of(&pe), Some(Executable::Pe));
        assert_eq!(
            Executable::of(b"\x7fELF\x01\x01\x01"),
            Some(Executable::Elf)
        );
        assert_eq!(
            Executable::of(&[0xcf, 0xfa, 0xed, 0xfe, 7]),
            Some(Executable::MachO)
        );
        // Text that happens to start with MZ, and bodies too short to tell.
        assert_eq!(Executable::of(b"MZ is a nice place to visit"), None);
        assert_eq!(Executable::of(b"MZ"), None);
        assert_eq!(Executable::of(b"<html>"), None);
        assert_eq!(
            Executable::of_media_type("application/x-msdownload"),
            Some(Executable::Pe)
        );
        assert_eq!(Executable::of_media_type("text/html"), None);
        assert!(is_plugin_media_type("application/x-shockwave-"));
        assert!(is_plugin_media_type("application/java-archive"));
        assert!(!is_plugin_media_type("application/pdf"));
    }

    /// Scripts: a shebang body, an attachment's file name, or a request path that names one
    /// and got a file (not a page) back; web pages' `.js` and CGI programs are not downloads.
    #[test]
    fn scripts_and_programs_named_by_file_are_told() {
        assert_eq!(
            Executable::of(b"#!/bin/sh\ncd /tmp"),
            Some(Executable::Script)
        );
        assert_eq!(
            Executable::of_content_disposition(b"attachment; filename=\"ragdoll.py\""),
            Some(Executable::Script)
        );
        assert_eq!(
            Executable::of_content_disposition(b"attachment;filename=Invoice.JS"),
            Some(Executable::Script)
        );
        assert_eq!(
            Executable::of_content_disposition(b"Attachment; filename*=UTF-8''setup.exe"),
            Some(Executable::Pe)
        );
        assert_eq!(
            Executable::of_content_disposition(b"inline; filename=\"a.exe\""),
            None
        );
        assert_eq!(
            Executable::of_content_disposition(b"attachment; filename=\"report.pdf\""),
            None
        );
        assert_eq!(
            Executable::of_request_target("/bins.sh"),
            Some(Executable::Script)
        );
        assert_eq!(
            Executable::of_request_target("/a.ps1?x=1"),
            Some(Executable::Script)
        );
        for page in ["/static/app.js", "/cgi-bin/search.pl?q=a", "/", "/x.exe/"] {
            assert_eq!(Executable::of_request_target(page), None, "{page}");
        }
        let req: &[u8] = b"GET /bins.sh HTTP/1.1\r\nHost: 203.0.113.9\r\n\r\n";
        let file: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\ncd /tmp";
        let page: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>";
        let gone: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno";
        let s = summarize(&[(req, true), (file, false)]);
        assert_eq!(s.executable, Some(Executable::Script));
        assert_eq!(summarize(&[(req, true), (page, false)]).executable, None);
        assert_eq!(summarize(&[(req, true), (gone, false)]).executable, None);
    }

    #[test]
    fn accept_language_is_noted_on_any_request_of_the_flow() {
        let bare: &[u8] = b"GET / HTTP/1.1\r\nHost: a.example\r\nUser-Agent: Mozilla/5.0\r\n\r\n";
        let browser: &[u8] =
            b"GET /b HTTP/1.1\r\nHost: a.example\r\nAccept-Language: en-US,en\r\n\r\n";
        assert!(!summarize(&[(bare, true)]).accept_language);
        assert!(summarize(&[(bare, true), (browser, true)]).accept_language);
    }

    /// The body's first bytes in the head's segment, or in the next server segment when the
    /// head ended the segment; a later response's media type counts too (keep-alive).
    #[test]
    fn an_executable_body_is_seen_in_either_segment() {
        let req: &[u8] = b"GET /bins/arm7 HTTP/1.1\r\nHost: 203.0.113.9\r\n\r\n";
        let head: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n";
        let mut same = head.to_vec();
        same.extend_from_slice(b"\x7fELF\x01\x01\x01\x00");
        let s = summarize(&[(req, true), (&same, false)]);
        assert_eq!(s.executable, Some(Executable::Elf));
        let s = summarize(&[(req, true), (head, false), (b"\x7fELF\x02", false)]);
        assert_eq!(s.executable, Some(Executable::Elf));
        // A later segment of the same body is not a body's start.
        let s = summarize(&[
            (req, true),
            (&[head, b"<html>"].concat(), false),
            (b"\x7fELF", false),
        ]);
        assert_eq!(s.executable, None);
        let swf: &[u8] =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-shockwave-flash\r\n\r\nCWS";
        let html: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>";
        let s = summarize(&[(req, true), (html, false), (req, true), (swf, false)]);
        assert!(s.plugin);
        assert_eq!(s.content_type, "text/html");
    }

    #[test]
    fn espn_request_and_response() {
        let s = summarize(&[(&hex(ESPN_REQ), true), (&hex(ESPN_RESP), false)]);
        assert_eq!(s.method, "GET");
        assert_eq!(s.uri, "/");
        assert!(!s.uri_truncated);
        assert_eq!(s.host, "www.espn.com");
        assert_eq!(s.user_agent, &ESPN_UA[..62]);
        assert_eq!(s.status, Some(301));
        assert_eq!(s.content_type, "text/html");
        assert_eq!((s.requests, s.responses), (1, 1));
    }

    #[test]
    fn caldera_beacon_on_8888_with_bodies() {
        let s = summarize(&[
            (&hex(CALDERA_0), true),
            (&hex(CALDERA_1), false),
            (&hex(CALDERA_2), true),
        ]);
        assert_eq!(s.method, "POST");
        assert_eq!(s.uri, "/beacon");
        assert_eq!(s.host, "172.18.0.2:8888");
        assert_eq!(s.user_agent, "Go-http-client/1.1");
        assert_eq!(s.status, Some(200));
        assert_eq!(s.content_type, "text/plain");
        assert_eq!((s.requests, s.responses), (2, 1));
        // Pipelined: Content-Length skips the first body to reach the second request.
        let mut both = hex(CALDERA_0);
        both.extend_from_slice(&hex(CALDERA_2));
        assert_eq!(summarize(&[(&both, true)]).requests, 2);
        // A wrong Content-Length lands inside the body: no second request is invented.
        let wrong = std::string::String::from_utf8(both.clone())
            .unwrap()
            .replacen("572", "570", 1);
        assert_eq!(summarize(&[(wrong.as_bytes(), true)]).requests, 1);
    }

    #[test]
    fn zeroaccess_user_agent_split_across_segments() {
        let (a, b) = (hex(ZEROACCESS_SPLIT_0), hex(ZEROACCESS_SPLIT_1));
        let first = summarize(&[(&a, true)]);
        assert_eq!(
            first.user_agent,
            "Mozilla/4.0 (compatible; MSIE 8.0; Windows"
        );
        assert!(first.host.is_empty());
        assert!(first.uri_truncated);
        assert!(first.uri.starts_with("/__utm.gif?utmwv=5.3.6&utms=1"));
        assert_eq!(first.uri.len(), 48);
        let s = summarize(&[(&a, true), (&b, true)]);
        assert_eq!(s.user_agent, &ZEROACCESS_UA[..62]);
        assert_eq!(s.host, "www.google-analytics.com");
        assert_eq!(s.requests, 1);
    }

    /// Every split of a real request into two segments gives the Host and User-Agent of the
    /// whole, once the first segment holds the method and its space.
    #[test]
    fn every_two_segment_split_keeps_host_and_agent() {
        for sample in [ESPN_REQ, CALDERA_0] {
            let p = hex(sample);
            let whole = summarize(&[(&p, true)]);
            for cut in 5..p.len() {
                let (a, b) = p.split_at(cut);
                let s = summarize(&[(a, true), (b, true)]);
                assert_eq!(s.host, whole.host, "cut {cut}");
                assert_eq!(s.user_agent, whole.user_agent, "cut {cut}");
                assert_eq!(s.method, whole.method, "cut {cut}");
                assert_eq!(s.requests, 1);
            }
        }
    }

    /// A request cut anywhere yields what it holds so far: the method once the token is
    /// there, a Host that is a prefix of the real one.
    #[test]
    fn every_prefix_of_a_request() {
        let p = hex(ESPN_REQ);
        for n in 0..=p.len() {
            let s = summarize(&[(&p[..n], true)]);
            if n >= 4 {
                assert_eq!(s.method, "GET");
                assert!(
                    "www.espn.com".starts_with(s.host.as_str()),
                    "{n}: {:?}",
                    s.host
                );
            }
            if n >= 36 {
                assert_eq!(s.host, "www.espn.com");
            }
        }
    }

    #[test]
    fn bad_request_line_still_gives_headers() {
        let p = b"GET /a b.php?x=1 2 HTTP/1.1\r\nHost: c2.example\r\nUser-Agent: bot\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
        let s = summarize(&[(p, true)]);
        assert_eq!(s.uri, "/a");
        assert_eq!(s.host, "c2.example");
        assert_eq!(s.user_agent, "bot");
        assert_eq!(s.requests, 2);
        // Cut before the first line ends: the next segment's headers are still read.
        let s = summarize(&[(b"GET /a b HT", true), (b"TP/1.1\r\nHost: h\r\n\r\n", true)]);
        assert_eq!(s.host, "h");
    }

    #[test]
    fn interim_status_is_replaced_by_the_final_one() {
        let s = summarize(&[
            (b"HTTP/1.1 100 Continue\r\n\r\n", false),
            (
                b"HTTP/1.1 404 Not Found\r\nContent-Type: application/octet-stream\r\n\r\n",
                false,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", false),
        ]);
        assert_eq!(s.status, Some(404));
        assert_eq!(s.content_type, "application/octet-stream");
        assert_eq!(s.responses, 3);
    }

    #[test]
    fn hostile_inputs() {
        // Non-ASCII and control bytes are stored as '.'; over-long values are cut.
        let mut p = b"GET /\xff\x00a HTTP/1.1\r\nHost: h\xc3\xa9\r\nUser-Agent: ".to_vec();
        p.extend(std::iter::repeat_n(b'A', 1000));
        p.extend_from_slice(b"\r\n\r\n");
        let s = summarize(&[(&p, true)]);
        assert_eq!(s.host, "h..");
        assert_eq!(s.user_agent.len(), 62);
        // httparse refuses the control byte in the target; the cut target is still kept.
        assert!(s.uri.starts_with('/'));
        // Huge Content-Length: no overflow, no second request.
        let h = b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(summarize(&[(h, true)]).requests, 1);
        let h = b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(summarize(&[(h, true)]).requests, 1);
        // More headers than slots: the first 32 are still read.
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for _ in 0..100 {
            many.extend_from_slice(b"X: y\r\n");
        }
        assert_eq!(summarize(&[(&many, true)]).host, "a");
        // Saturating counters.
        let mut s = HttpSummary::default();
        for _ in 0..300 {
            s.update(b"GET / HTTP/1.1\r\n\r\n", true);
            s.update(b"HTTP/1.1 200 OK\r\n\r\n", false);
        }
        assert_eq!((s.requests, s.responses), (255, 255));
    }

    #[test]
    fn serializes_snake_case_and_skips_empty() {
        let s = summarize(&[(&hex(CALDERA_1), false)]);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"status":200,"content_type":"text/plain","requests":0,"responses":1}"#
        );
        let s = summarize(&[(&hex(ESPN_REQ), true)]);
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.starts_with(
            r#"{"method":"GET","uri":"/","host":"www.espn.com","user_agent":"Mozilla"#
        ));
        assert!(!j.contains("pending") && !j.contains("uri_truncated"));
    }

    /// Every prefix of each real sample, then mutations (a xorshift picks bytes to change,
    /// cut or splice), never panic, whatever order the directions come in.
    #[test]
    fn fuzz_never_panics() {
        let samples: std::vec::Vec<std::vec::Vec<u8>> = [
            ESPN_REQ,
            ESPN_RESP,
            CALDERA_0,
            CALDERA_1,
            CALDERA_2,
            ZEROACCESS_SPLIT_0,
            ZEROACCESS_SPLIT_1,
        ]
        .iter()
        .map(|h| hex(h))
        .collect();
        for p in &samples {
            for n in 0..=p.len() {
                for c in [true, false] {
                    let mut s = HttpSummary::default();
                    s.update(&p[..n], c);
                    s.update(&p[n..], c);
                    let _ = (
                        looks_like_http_request(&p[..n]),
                        looks_like_http_response(&p[..n]),
                    );
                }
            }
        }
        let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
        for _ in 0..4000 {
            let mut p = samples[rng.below(samples.len())].clone();
            rng.mutate(&mut p, 8, b"\r\n:", 4);
            let cut = (rng.next() % (p.len() as u64 + 1)) as usize;
            let mut s = HttpSummary::default();
            s.update(&p[..cut], true);
            s.update(&p[cut..], true);
            s.update(&p, false);
            assert!(s.host.len() <= 64 && s.user_agent.len() <= 96);
        }
    }
}
