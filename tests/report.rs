//! `botd report` end to end: the page is built from the demo capture and from a state file, then
//! opened in headless Chromium (Debian's `chromium`), which must log no console message and make
//! no network request (every request would go through a proxy the test runs and counts), and whose
//! rendered host list and levels must equal `botd analyze --json` on the same data. A screenshot
//! of the demo's page is kept under target/ for CI.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Hosts Chromium itself contacts in the background whatever the flags (component and extension
/// updates, sign-in); a request to one of them is not the page's, and to be sure of that, the
/// page must not contain the name (see `page_requests`).
const CHROMIUM_SERVICE_HOSTS: [&str; 4] = [
    "update.googleapis.com",
    "accounts.google.com",
    "clients2.google.com",
    "optimizationguide-pa.googleapis.com",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo's target folder (where CI keeps the screenshots).
fn target_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root().join(d))
        .unwrap_or_else(|| root().join("target"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "botd-report-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn botd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_botd"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn chromium() -> &'static str {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the report tests need Debian's chromium \
         (`apt-get install chromium`; tests/run.sh installs it)"
    );
    CHROMIUM
}

/// What Chromium made of a page.
struct Rendered {
    dom: String,
    /// Console messages and page errors Chromium logged.
    console: Vec<String>,
    /// First line of every request that reached the network (the proxy).
    requests: Vec<String>,
}

/// A proxy that answers nothing and records every request sent to it.
struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 1024];
                        let n = conn.read(&mut buf).unwrap_or(0);
                        let line = String::from_utf8_lossy(&buf[..n])
                            .lines()
                            .next()
                            .unwrap_or("(connection, no request line)")
                            .to_string();
                        v.lock().unwrap().push(line);
                        let _ =
                            conn.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Proxy {
            port,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// Opens `page` in headless Chromium; with `screenshot`, also saves a 1280x900 screenshot.
fn render(page: &Path, screenshot: Option<&Path>) -> Rendered {
    render_at(page, "", screenshot)
}

/// `render` with a fragment (`#host=...&model=...`) on the page's URL.
fn render_at(page: &Path, fragment: &str, screenshot: Option<&Path>) -> Rendered {
    let chromium = chromium();
    let profile = temp_dir("chromium-profile");
    let proxy = Proxy::start();
    let url = format!(
        "file://{}{fragment}",
        page.canonicalize().unwrap().display()
    );
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--disable-default-apps",
        "--no-pings",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--safebrowsing-disable-auto-update",
        "--disable-breakpad",
        "--metrics-recording-only",
        "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate,\
         AutofillServerCommunication,CertificateTransparencyComponentUpdater",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--window-size=1280,900",
        // Every request, loopback included, goes to the counting proxy.
        "--proxy-bypass-list=<-loopback>",
    ])
    .arg(format!("--proxy-server=http://127.0.0.1:{}", proxy.port))
    .arg(format!("--user-data-dir={}", profile.display()))
    .env("HOME", &profile);
    match screenshot {
        // Paint everything before the shot (under load a shot could catch a half-drawn page).
        Some(png) => cmd
            .arg("--run-all-compositor-stages-before-draw")
            .arg(format!("--screenshot={}", png.display())),
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd.arg(&url).output().unwrap();
    let requests = proxy.finish();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "chromium failed ({}):\n{stderr}",
        out.status
    );
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect();
    let _ = std::fs::remove_dir_all(&profile);
    Rendered {
        dom: String::from_utf8_lossy(&out.stdout).to_string(),
        console,
        requests,
    }
}

/// The host a proxied request line names (`CONNECT host:443 ...`, `GET http://host/... ...`).
fn request_host(line: &str) -> &str {
    let target = line.split(' ').nth(1).unwrap_or("");
    let target = target.split("://").last().unwrap_or("");
    let authority = target.split('/').next().unwrap_or("");
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// The requests that can have come from the page: all but Chromium's own background requests to
/// its service hosts, which the page cannot have made since it does not contain their names.
fn page_requests(r: &Rendered, page: &str) -> Vec<String> {
    r.requests
        .iter()
        .filter(|l| {
            let host = request_host(l);
            !CHROMIUM_SERVICE_HOSTS.contains(&host) || page.contains(host)
        })
        .cloned()
        .collect()
}

/// The value of attribute `name` in the start tag `tag` (the text between `<` and `>`).
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag.get(start..)?.find('"')?;
    tag.get(start..start + len)
}

/// The start tags of the rendered DOM that begin with `prefix` (e.g. `<li class="host`).
fn tags<'a>(dom: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(i) = rest.find(prefix) {
        let tail = &rest[i..];
        let end = tail.find('>').unwrap_or(tail.len());
        out.push(&tail[..end]);
        rest = &tail[end..];
    }
    out
}

/// (address, level) of the host list, in page order.
fn page_hosts(dom: &str) -> Vec<(String, String)> {
    tags(dom, "<li class=\"host ")
        .into_iter()
        .map(|t| {
            (
                attr(t, "data-address").unwrap().to_string(),
                attr(t, "data-level").unwrap().to_string(),
            )
        })
        .collect()
}

fn doc_hosts(doc: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["address"].as_str().unwrap().to_string(),
                h["level"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn rank(level: &str) -> u8 {
    match level {
        "red" => 0,
        "yellow" => 1,
        _ => 2,
    }
}

/// Everything a rendered report must show, against the document it was made from.
fn check_page(html: &Path, expected: &serde_json::Value) -> Rendered {
    let page = std::fs::read_to_string(html).unwrap();
    // Self-contained: no external script, style sheet or image to load.
    for bad in ["<script src", "<link", "<img", "<iframe"] {
        assert!(!page.contains(bad), "the page references {bad}");
    }
    let r = render(html, None);
    assert!(r.console.is_empty(), "console messages:\n{:#?}", r.console);
    let requests = page_requests(&r, &page);
    assert!(requests.is_empty(), "network requests: {requests:#?}");
    assert!(r.dom.contains("data-ready=\"1\""), "script did not finish");

    // The host list and levels equal the document's, red first.
    let shown = page_hosts(&r.dom);
    let mut sorted = shown.clone();
    sorted.sort();
    assert_eq!(sorted, doc_hosts(expected));
    assert!(
        shown.windows(2).all(|w| rank(&w[0].1) <= rank(&w[1].1)),
        "not red first: {shown:?}"
    );
    for t in tags(&r.dom, "<li class=\"host ") {
        let level = attr(t, "data-level").unwrap();
        assert!(
            attr(t, "class").unwrap().split(' ').any(|c| c == level),
            "host not coloured by its level: {t}"
        );
    }
    // Every model is listed.
    let models: Vec<&str> = tags(&r.dom, "<li class=\"model")
        .into_iter()
        .map(|t| attr(t, "data-model").unwrap())
        .collect();
    let expected_models: Vec<&str> = expected["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(models, expected_models);
    // Both plots are drawn by uPlot (a canvas each), the first host and model are picked.
    for id in ["plot-flows", "plot-score"] {
        let at = r
            .dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("#{id} missing"));
        let after = &r.dom[at..];
        let next_plot = after[1..]
            .find("class=\"plot")
            .map_or(after.len(), |i| i + 1);
        let block = &after[..next_plot];
        assert!(block.contains("class=\"uplot"), "#{id} has no uPlot chart");
        assert!(block.contains("<canvas"), "#{id} has no canvas");
    }
    let first = &shown[0].0;
    assert!(
        r.dom.contains(&format!("data-host=\"{first}\"")),
        "first host not selected"
    );
    r
}

#[test]
#[ignore = "system: chromium (tests/run.sh)"]
fn demo_report_matches_analyze_and_renders_offline() {
    let dir = temp_dir("demo");
    let analyzed = dir.join("analyze.json");
    let html = dir.join("report.html");
    let o = botd(&[
        "analyze",
        "--json",
        analyzed.to_str().unwrap(),
        "tests/data/demo.pcap",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = botd(&[
        "report",
        "--out",
        html.to_str().unwrap(),
        "tests/data/demo.pcap",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let expected = json(&analyzed);
    // The demo's truth: the infected camera is red, every other host clear.
    for (addr, level) in doc_hosts(&expected) {
        let want = if addr == "192.168.1.66" {
            "red"
        } else {
            "clear"
        };
        assert_eq!(level, want, "{addr}");
    }
    let r = check_page(&html, &expected);
    assert_eq!(page_hosts(&r.dom)[0].0, "192.168.1.66");
    // The red camera's flagged windows are listed with their evidence's peers reachable.
    assert!(
        r.dom.contains("<tr data-window="),
        "no flagged windows listed"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("185.141.27.93"), "C2 peer not in the data");

    let png = target_dir().join("report-screenshot.png");
    let _ = std::fs::remove_file(&png);
    let shot = render(&html, Some(&png));
    assert!(shot.console.is_empty(), "{:#?}", shot.console);
    let requests = page_requests(&shot, &page);
    assert!(requests.is_empty(), "{requests:#?}");
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 20_000);
    eprintln!("screenshot: {}", png.display());
    // Another host and model, picked by the link: both plots are drawn for them.
    let other = render_at(&html, "#host=192.168.1.23&model=ctu-rf", None);
    assert!(other.console.is_empty(), "{:#?}", other.console);
    assert!(
        other.dom.contains("data-host=\"192.168.1.23\"")
            && other.dom.contains("data-model=\"ctu-rf\""),
        "host or model not picked"
    );
    assert_eq!(other.dom.matches("<canvas").count(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "system: chromium (tests/run.sh)"]
fn state_file_report_shows_the_state_as_written() {
    let dir = temp_dir("state");
    let analyzed = dir.join("analyze.json");
    let o = botd(&[
        "analyze",
        "--json",
        analyzed.to_str().unwrap(),
        "tests/data/demo.pcap",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // A live sensor's state: the same document, here with a host that was red and is now yellow
    // (so the page is seen to follow the state, not a fresh analysis), written as the sensor does.
    let mut state = json(&analyzed);
    for h in state["hosts"].as_array_mut().unwrap() {
        if h["address"] == "192.168.1.23" {
            h["level"] = "yellow".into();
            h["was_red"] = true.into();
        }
    }
    let state_path = dir.join("botd-state.json");
    botd::document::write_state_atomically(&state_path, &state).unwrap();
    let html = dir.join("state.html");
    let o = botd(&[
        "report",
        "--state",
        state_path.to_str().unwrap(),
        "--out",
        html.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let r = check_page(&html, &state);
    let shown = page_hosts(&r.dom);
    assert_eq!(shown[0], ("192.168.1.66".into(), "red".into()));
    assert_eq!(shown[1], ("192.168.1.23".into(), "yellow".into()));

    let png = target_dir().join("report-state-screenshot.png");
    let shot = render(&html, Some(&png));
    assert!(shot.console.is_empty(), "{:#?}", shot.console);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "system: chromium (tests/run.sh)"]
fn the_harness_sees_console_errors_and_requests() {
    // A page that logs an error and fetches: both must be caught, or the checks above prove
    // nothing.
    let dir = temp_dir("harness");
    let page = dir.join("bad.html");
    std::fs::write(
        &page,
        "<!doctype html><title>bad</title><script>console.error('boom');\
         fetch('http://example.invalid/x').catch(function () {});</script>",
    )
    .unwrap();
    let r = render(&page, None);
    assert!(
        r.console.iter().any(|l| l.contains("boom")),
        "{:#?}",
        r.console
    );
    let html = std::fs::read_to_string(&page).unwrap();
    let requests = page_requests(&r, &html);
    assert!(
        requests
            .iter()
            .any(|l| request_host(l) == "example.invalid"),
        "{requests:#?}"
    );
    assert_eq!(
        request_host("CONNECT accounts.google.com:443 HTTP/1.1"),
        "accounts.google.com"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_invocations_are_errors_not_panics() {
    let dir = temp_dir("errors");
    let out = dir.join("r.html");
    let out = out.to_str().unwrap();
    let o = botd(&["report", "--out", out]);
    assert!(!o.status.success(), "no capture and no state accepted");
    let o = botd(&["report", "--state", "/nonexistent/state.json", "--out", out]);
    assert!(!o.status.success());
    assert!(text(&o).contains("/nonexistent/state.json"), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "{\"hosts\": 3}").unwrap();
    let o = botd(&["report", "--state", garbage.to_str().unwrap(), "--out", out]);
    assert!(
        !o.status.success() && text(&o).contains("hosts"),
        "{}",
        text(&o)
    );
    let o = botd(&[
        "report",
        "--out",
        "/nonexistent/dir/r.html",
        "tests/data/demo.pcap",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("/nonexistent/dir/r.html"), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
    // The state writer returns errors too (a missing folder, a file where a folder should be).
    let doc = serde_json::json!({"hosts": []});
    assert!(
        botd::document::write_state_atomically(Path::new("/nonexistent/s.json"), &doc).is_err()
    );
    let file = dir.join("plain");
    std::fs::write(&file, "x").unwrap();
    assert!(botd::document::write_state_atomically(&file.join("s.json"), &doc).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
