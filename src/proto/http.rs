//! HTTP/1.x recogniser and summary, whatever the port.
//!
//! botd sees only the first few payload segments of each direction of a TCP flow, so this keeps
//! what identifies a client and what it fetched (method, path, Host, User-Agent) and what the
//! server answered (status, media type). Parsing is httparse's, with a fixed header array on the
//! stack: nothing is allocated and nothing is buffered across segments.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use heapless::String;
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
    /// User-Agent header value, cut at 96 bytes.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub user_agent: String<96, u8>,
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
    /// The last client segment ended inside a request head, so the next one continues it.
    #[serde(skip)]
    pending_head: bool,
    /// ... and inside a header line, whose rest opens the next segment.
    #[serde(skip)]
    cut_line: CutLine,
}

/// The header line a segment ended in, so that the next segment's first line completes it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum CutLine {
    /// The segment ended at a line end.
    #[default]
    None,
    /// A line whose rest is skipped.
    Other,
    /// A Host value, whose rest is appended.
    Host,
    /// A User-Agent value, whose rest is appended.
    UserAgent,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A client's first bytes: a known method token followed by a space.
pub fn looks_like_http_request(p: &[u8]) -> bool {
    METHODS.iter().any(|m| {
        p.strip_prefix(*m)
            .and_then(|rest| rest.strip_prefix(b" "))
            .is_some_and(|rest| rest.first().is_none_or(|b| b.is_ascii_graphic()))
    })
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
        if self.pending_head && !looks_like_http_request(payload) {
            self.continue_head(payload);
            return;
        }
        self.pending_head = false;
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
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let res = httparse::ParserConfig::default()
            .allow_multiple_spaces_in_request_line_delimiters(true)
            .ignore_invalid_headers_in_requests(true)
            .parse_request(&mut req, buf);
        self.requests = self.requests.saturating_add(1);
        if self.method.is_empty() {
            if let Some(m) = req.method {
                copy_printable(&mut self.method, m.as_bytes());
            }
            if let Some(path) = req.path {
                self.uri_truncated = copy_printable(&mut self.uri, path.as_bytes());
            } else {
                // The request line is cut inside the target: keep what is there.
                self.uri_truncated = partial_target(buf, &mut self.uri);
            }
        }
        // On Partial and on Err httparse leaves the headers parsed so far in `headers`; the
        // unused slots keep an empty name.
        let mut content_length: Option<usize> = None;
        for h in req.headers.iter().take_while(|h| !h.name.is_empty()) {
            self.take_request_header(h);
            if h.name.eq_ignore_ascii_case("content-length") {
                content_length = parse_usize(h.value);
            }
        }
        match res {
            Ok(httparse::Status::Complete(n)) => {
                let after = n.checked_add(content_length.unwrap_or(0))?;
                buf.get(after..)
            }
            Ok(httparse::Status::Partial) => {
                self.pending_head = true;
                self.take_cut_line(buf);
                None
            }
            Err(_) => None,
        }
    }

    /// Notes the header line `buf` ends inside (httparse gave back only whole lines); a cut
    /// Host or User-Agent value is kept as far as it goes, for the next segment to complete.
    fn take_cut_line(&mut self, buf: &[u8]) {
        if buf.ends_with(b"\n") {
            self.cut_line = CutLine::None;
            return;
        }
        let last = buf.rsplit(|&b| b == b'\n').next().unwrap_or_default();
        self.cut_line = CutLine::Other;
        if let Some(v) = strip_prefix_ci(last, b"host:").filter(|_| self.host.is_empty()) {
            copy_printable(&mut self.host, v.trim_ascii_start());
            self.cut_line = CutLine::Host;
        } else if let Some(v) =
            strip_prefix_ci(last, b"user-agent:").filter(|_| self.user_agent.is_empty())
        {
            copy_printable(&mut self.user_agent, v.trim_ascii_start());
            self.cut_line = CutLine::UserAgent;
        }
    }

    /// A segment that continues a request head cut by the previous one.
    fn continue_head(&mut self, payload: &[u8]) {
        let mut buf = payload;
        if self.cut_line != CutLine::None {
            // The first line's start was in the previous segment.
            let (rest_of_line, next) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (
                    buf.get(..i).unwrap_or_default(),
                    buf.get(i.saturating_add(1)..).unwrap_or_default(),
                ),
                None => (buf, &b""[..]),
            };
            let rest_of_line = rest_of_line.strip_suffix(b"\r").unwrap_or(rest_of_line);
            match self.cut_line {
                CutLine::Host => {
                    let start = self.host.is_empty();
                    push_printable(&mut self.host, trim_if(rest_of_line, start));
                }
                CutLine::UserAgent => {
                    let start = self.user_agent.is_empty();
                    push_printable(&mut self.user_agent, trim_if(rest_of_line, start));
                }
                CutLine::None | CutLine::Other => {}
            }
            if next.is_empty() && !buf.contains(&b'\n') {
                return; // still inside the same line
            }
            self.cut_line = CutLine::None;
            buf = next;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let partial = matches!(
            httparse::parse_headers(buf, &mut headers),
            Ok(httparse::Status::Partial)
        );
        for h in headers.iter().take_while(|h| !h.name.is_empty()) {
            self.take_request_header(h);
        }
        if partial {
            self.take_cut_line(buf);
        } else {
            self.pending_head = false;
            self.cut_line = CutLine::None;
        }
    }

    fn take_request_header(&mut self, h: &httparse::Header<'_>) {
        if self.host.is_empty() && h.name.eq_ignore_ascii_case("host") {
            copy_printable(&mut self.host, h.value);
        } else if self.user_agent.is_empty() && h.name.eq_ignore_ascii_case("user-agent") {
            copy_printable(&mut self.user_agent, h.value);
        }
    }

    fn update_server(&mut self, payload: &[u8]) {
        if !looks_like_http_response(payload) {
            return; // body or a continuation: nothing botd keeps
        }
        self.responses = self.responses.saturating_add(1);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        // Partial and Err still leave the status code and the headers parsed so far.
        let _ = httparse::ParserConfig::default()
            .allow_multiple_spaces_in_response_status_delimiters(true)
            .allow_spaces_after_header_name_in_responses(true)
            .ignore_invalid_headers_in_responses(true)
            .parse_response(&mut resp, payload);
        if let Some(code) = resp.code {
            // A 1xx is interim: the final status follows and replaces it.
            if self.status.is_none_or(|s| s < 200) {
                self.status = Some(code);
            }
        }
        if self.content_type.is_empty() {
            let ct = resp
                .headers
                .iter()
                .take_while(|h| !h.name.is_empty())
                .find(|h| h.name.eq_ignore_ascii_case("content-type"));
            if let Some(h) = ct {
                let media = h.value.split(|&b| b == b';').next().unwrap_or_default();
                copy_printable(&mut self.content_type, media.trim_ascii());
            }
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

/// `s` without leading blanks when `trim` (a value's start), else as is.
fn trim_if(s: &[u8], trim: bool) -> &[u8] {
    if trim { s.trim_ascii_start() } else { s }
}

/// Replaces `dst` with `src`, bytes outside printable ASCII as `.`; true if `src` was cut.
fn copy_printable<const N: usize>(dst: &mut String<N, u8>, src: &[u8]) -> bool {
    dst.clear();
    push_printable(dst, src)
}

/// Appends `src` to `dst`, bytes outside printable ASCII as `.`; true if `src` was cut.
fn push_printable<const N: usize>(dst: &mut String<N, u8>, src: &[u8]) -> bool {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn hex(s: &str) -> std::vec::Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn size_budget() {
        assert!(core::mem::size_of::<HttpSummary>() <= 256);
        assert_eq!(core::mem::size_of::<HttpSummary>(), 254);
    }
}
