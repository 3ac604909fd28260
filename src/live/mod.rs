//! `botd run`: the live sensor. A capture ([`capture::PnetCapture`], or the TPACKET_V3
//! [`ring::RingCapture`] with `--capture ring`) feeds `(timestamp, frame)` pairs into the same
//! [`Engine`] and [`Detector`] as `botd analyze`, so the same packets give the same alerts; alerts
//! go to the [`AlertSink`] (bounded queue, never blocking the loop).
//!
//! Start-up: signals first (SIGHUP's default action would end the process), the configuration,
//! the capture (root or CAP_NET_RAW), then privileges are dropped ([`privileges`]), then models
//! and the alert sink are loaded as the unprivileged user (as a reload will).
//!
//! The loop ([`LiveLoop`]) allocates nothing per frame: the engine is allocation-free, the
//! captures hand out borrowed buffers, timestamps come from the kernel (ring) or
//! `clock_gettime(CLOCK_REALTIME)` (pnet), and signals are atomic flags.
//!
//! As in `botd analyze`, the detectors run on a second thread ([`LiveLoop::detached`], through
//! [`crate::relay`]: the same records in the same order, so the same alerts): the capture thread
//! only parses frames and keeps the flow table while a closed window is scored. Between such
//! runs, when a signal comes or housekeeping is due (metrics, the quarantine's check) and the
//! detectors are not scoring, the whole loop is on one thread again: a reload
//! installs its detector between two records, exactly where the inline loop would. The state
//! file's document is built on the detectors' thread at a checkpoint between two records
//! ([`Detached::checkpoint`]), so the capture never waits for it; a third thread
//! ([`crate::document::StateWriter`]) writes it.
//!
//! Reload (SIGHUP) builds the new configuration, models, detector and (when `[alerts]` changed)
//! alert sink beside the running ones and installs them only when all are whole; any error is
//! logged and the running ones stay. What a reload changes: `[network]`, `[models]`,
//! `[scoring]`, `[alerts]`, `[metrics]`, `[response]` (the hosts in quarantine and their block
//! counts carry over; turning enforce on needs CAP_NET_ADMIN, which botd keeps only when it
//! started with enforce). What needs a restart (a reload logs that it kept the running
//! value): `[capture]` (the socket is open and privileges are gone), `[privileges]`, `[flows]`
//! (the flow tables and windows are sized from it; keeping them is what keeps the open windows),
//! `[state]` and `[scoring] max_hosts` (the host table is allocated at start-up). Windows already
//! open at a reload (as the engine says: [`Engine::last_open_window`]) are finished by the
//! detector that saw their start (old models, old home prefixes); windows opened after it go to
//! the new detector, and the host states (scores, levels, history) move to the new detector when
//! its first window closes, unless `[scoring]` or the set of model names changed (then host
//! states start afresh). `[scoring] host_idle_secs` and `max_level_changes` are the exception:
//! they apply to the hosts held at once, which are kept.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod capture;
pub mod privileges;
pub mod ring;
pub mod signals;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::alert::{Alert, AlertCounters, AlertSink};
use crate::capture::LinkType;
use crate::config::Config;
use crate::detect::Detector;
use crate::document::StateWriter;
use crate::engine::{Engine, FlowSink, Totals, WindowInfo};
use crate::flow::{CloseReason, Flow};
use crate::model::Model;
use crate::relay;
use crate::response::Quarantine;

use capture::{CaptureStats, LiveCapture, PnetCapture, now_ns};
use ring::{RingCapture, RingOptions};
use signals::Signals;

/// Which capture implementation `botd run` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CaptureKind {
    /// pnet's datalink channel: one `recvfrom` per frame, system-clock timestamps.
    Pnet,
    /// An mmap'd TPACKET_V3 AF_PACKET ring: kernel timestamps, a block of frames per wake-up,
    /// kernel drop counters.
    Ring,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Configuration file (default: config/botd.toml when it exists, else built-in defaults).
    /// SIGHUP re-reads it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Capture on this interface instead of `[capture] interface`.
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,
    /// Capture implementation.
    #[arg(long, value_enum, default_value = "pnet")]
    pub capture: CaptureKind,
    /// Ring blocks of 1 MiB (`--capture ring`): the ring holds this many MiB of frames.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub ring_blocks: usize,
    /// Keep running as root instead of dropping to `[privileges] user`.
    #[arg(long)]
    pub allow_root: bool,
}

/// One line on stderr (the journal under systemd).
macro_rules! log {
    ($($arg:tt)*) => { eprintln!("botd: {}", format_args!($($arg)*)) };
}

use crate::pipeline::{self, alert_sink, load_config};

/// A detector and the last window it is responsible for (windows open when a newer one was
/// installed stay with it).
struct Generation {
    last_window: u64,
    /// Takes the host states of the generation before it when its first window closes.
    inherit: bool,
    detector: Detector,
}

/// Counters of the live loop beyond the engine's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopCounters {
    /// Alerts the detector raised (level changes), before the sink's rate limit.
    pub alerts_raised: u64,
    /// Flows scored by detectors replaced by a reload.
    pub flows_scored_before: u64,
    pub reloads: u64,
    /// Reloads that changed a setting only a restart applies (`[capture]`, `[privileges]`,
    /// `[flows]`, `[state]`, `[scoring] max_hosts`); the running values were kept.
    pub reloads_restart_needed: u64,
    /// Time the detector spent closing each window (wall clock).
    pub scoring: crate::metrics::Histogram,
    /// When the last window closed, in engine time (ns): its end, or the clock when `finish`
    /// closed it early.
    pub last_window_end_ns: u64,
}

/// Where the state file goes (`[state]`) and its writer's thread.
pub struct StateOut {
    pub writer: StateWriter,
    pub path: PathBuf,
    /// `[scoring]` as the document reports it (a reload updates it).
    pub scoring: crate::config::ScoringConfig,
}

impl StateOut {
    /// Builds the document from the detector holding the host states and offers it to the
    /// writer; nothing (not even the copy of the host states) while the previous one is still
    /// being written.
    fn offer(&self, gens: &[Generation], totals: &Totals) {
        if self.writer.busy() {
            return;
        }
        if let Some(g) = gens.first() {
            let doc = crate::document::state_document_at(&g.detector, totals, &self.scoring);
            self.writer.offer(&self.path, doc);
        }
    }
}

/// The capture-independent part of `botd run`: engine, detectors, alert sink. Drive it with
/// [`LiveLoop::frame`] per captured frame and [`LiveLoop::tick`] when a read timed out.
pub struct LiveLoop {
    engine: Engine,
    gens: Vec<Generation>,
    alerts: Option<AlertSink>,
    /// `[response]`: red hosts go into quarantine before their alert reaches the sink.
    quarantine: Option<Quarantine>,
    /// Alerts raised without a sink (tests), in order.
    pub kept: Vec<Alert>,
    link: LinkType,
    pub counters: LoopCounters,
    /// `[state]`: where checkpoints write the host states.
    state: Option<StateOut>,
}

/// The capture thread's side of [`LiveLoop::detached`]: the engine, feeding the detector
/// thread. Allocation-free per frame, as the loop is (the relay's batches are reused).
pub struct Detached<'a> {
    engine: &'a mut Engine,
    relay: &'a mut relay::Relay,
    link: LinkType,
}

impl Detached<'_> {
    /// One captured frame ([`LiveLoop::frame`]).
    #[inline]
    pub fn frame(&mut self, ts_ns: u64, data: &[u8], wire_len: u32) {
        self.engine
            .on_frame(ts_ns, self.link, data, wire_len, self.relay);
    }

    /// No frame came for a while ([`LiveLoop::tick`]).
    pub fn tick(&mut self, now_ns: u64) {
        self.engine.advance(now_ns, self.relay);
    }

    /// Writes the state file ([`LiveLoop::checkpoint`]): the document is built on the
    /// detectors' thread once it has taken the records before this point; the capture goes on.
    pub fn checkpoint(&mut self) {
        self.relay.checkpoint(&self.engine.totals());
    }

    /// Whether the detector thread has taken every window closed so far (it is not scoring):
    /// a good moment to stop for housekeeping without holding up the capture.
    pub fn idle(&mut self) -> bool {
        self.relay.idle()
    }

    pub fn engine(&self) -> &Engine {
        self.engine
    }
}

/// Routes the engine's output to the detector generation owning each window and forwards the
/// detector's alerts to the sink.
struct Forward<'a> {
    gens: &'a mut Vec<Generation>,
    alerts: Option<&'a mut AlertSink>,
    quarantine: Option<&'a mut Quarantine>,
    kept: &'a mut Vec<Alert>,
    counters: &'a mut LoopCounters,
    state: Option<&'a StateOut>,
}

fn owner(gens: &[Generation], window: u64) -> usize {
    gens.iter()
        .position(|g| window <= g.last_window)
        .unwrap_or(gens.len().saturating_sub(1))
}

impl FlowSink for Forward<'_> {
    fn checkpoint(&mut self, totals: &Totals) {
        if let Some(s) = self.state {
            s.offer(self.gens, totals);
        }
    }

    fn flow(&mut self, flow: &Flow, reason: CloseReason, window: Option<&WindowInfo>) {
        let k = owner(self.gens, window.map_or(0, |w| w.index));
        if let Some(g) = self.gens.get_mut(k) {
            g.detector.flow(flow, reason, window);
        }
    }

    fn window_closed(&mut self, window: &WindowInfo, flows: u64) {
        let k = owner(self.gens, window.index);
        if k > 0 {
            // Windows close in order: every window of the older generations is done. Host
            // states move forward generation by generation, then the old ones go.
            for j in 1..=k {
                if let Some((before, after)) = self.gens.split_at_mut_checked(j)
                    && let (Some(prev), Some(next)) = (before.last_mut(), after.first_mut())
                    && next.inherit
                {
                    std::mem::swap(&mut prev.detector.scorer, &mut next.detector.scorer);
                }
            }
            for g in self.gens.drain(..k) {
                self.counters.flows_scored_before += g.detector.counters.flows_scored;
            }
        }
        let Some(g) = self.gens.first_mut() else {
            return;
        };
        let started = std::time::Instant::now();
        g.detector.window_closed(window, flows);
        let spent = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counters.scoring.observe(spent);
        self.counters.last_window_end_ns = window.end_ns;
        for mut a in g.detector.take_alerts() {
            self.counters.alerts_raised += 1;
            if let Some(q) = self.quarantine.as_deref_mut() {
                q.on_alert(&mut a, &g.detector.devices);
            }
            match self.alerts.as_deref_mut() {
                Some(sink) => {
                    sink.send(a, window.end_ns);
                }
                None => self.kept.push(a),
            }
        }
    }
}

impl LiveLoop {
    pub fn new(
        cfg: &Config,
        models: Arc<Vec<Model>>,
        alerts: Option<AlertSink>,
        link: LinkType,
    ) -> LiveLoop {
        // `run` checks the feeds before the capture starts and builds with them
        // ([`LiveLoop::with_detector`]); a broken feed here (tests) runs with none.
        let intel = pipeline::load_intel(cfg).ok().flatten();
        let detector = pipeline::detector(cfg, cfg.network.clone(), models, intel);
        LiveLoop::with_detector(cfg, detector, alerts, link)
    }

    /// A live loop over `detector` (built by [`pipeline::detector`] for `cfg`).
    pub fn with_detector(
        cfg: &Config,
        detector: Detector,
        alerts: Option<AlertSink>,
        link: LinkType,
    ) -> LiveLoop {
        LiveLoop {
            engine: pipeline::engine(cfg),
            gens: vec![Generation {
                last_window: u64::MAX,
                inherit: false,
                detector,
            }],
            alerts,
            quarantine: None,
            kept: Vec::new(),
            link,
            counters: LoopCounters::default(),
            state: None,
        }
    }

    /// New host lifecycle settings (`[scoring] host_idle_secs`, `max_level_changes`) for every
    /// detector's host table, from the next window close on (a reload).
    pub fn set_lifecycle(&mut self, host_idle_secs: u64, max_level_changes: usize) {
        for g in &mut self.gens {
            g.detector
                .scorer
                .set_lifecycle(host_idle_secs, max_level_changes);
        }
    }

    /// Writes the state file at [`LiveLoop::checkpoint`]s (`[state]`); returns the previous
    /// writer.
    pub fn replace_state(&mut self, state: Option<StateOut>) -> Option<StateOut> {
        std::mem::replace(&mut self.state, state)
    }

    /// `[scoring]` as the state document reports it, after a reload.
    pub fn set_state_scoring(&mut self, scoring: &crate::config::ScoringConfig) {
        if let Some(s) = self.state.as_mut() {
            s.scoring = scoring.clone();
        }
    }

    /// Writes the state file (when `[state]` is set and the previous one is written): the
    /// document is built here, between two records (see [`Detached::checkpoint`]).
    pub fn checkpoint(&mut self) {
        if let Some(s) = &self.state {
            s.offer(&self.gens, &self.engine.totals());
        }
    }

    /// One captured frame.
    #[inline]
    pub fn frame(&mut self, ts_ns: u64, data: &[u8], wire_len: u32) {
        let mut sink = Forward {
            gens: &mut self.gens,
            alerts: self.alerts.as_mut(),
            quarantine: self.quarantine.as_mut(),
            kept: &mut self.kept,
            counters: &mut self.counters,
            state: self.state.as_ref(),
        };
        self.engine
            .on_frame(ts_ns, self.link, data, wire_len, &mut sink);
    }

    /// No frame came for a while: time still passes (windows close, flows expire).
    pub fn tick(&mut self, now_ns: u64) {
        let mut sink = Forward {
            gens: &mut self.gens,
            alerts: self.alerts.as_mut(),
            quarantine: self.quarantine.as_mut(),
            kept: &mut self.kept,
            counters: &mut self.counters,
            state: self.state.as_ref(),
        };
        self.engine.advance(now_ns, &mut sink);
    }

    /// Closes every open window, scores it and sends its alerts.
    pub fn finish(&mut self) {
        let mut sink = Forward {
            gens: &mut self.gens,
            alerts: self.alerts.as_mut(),
            quarantine: self.quarantine.as_mut(),
            kept: &mut self.kept,
            counters: &mut self.counters,
            state: self.state.as_ref(),
        };
        self.engine.finish(&mut sink);
        // The windows closed early: they closed at the clock, not at their nominal end.
        let closed = &mut self.counters.last_window_end_ns;
        *closed = (*closed).min(self.engine.clock());
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs `body` with the detectors, the quarantine and the alert sink on a second thread, as
    /// `botd analyze` runs its detector ([`relay`]): `body` hands frames and ticks to the engine
    /// through [`Detached`], the records reach the detectors in the same order, so the alerts
    /// are those of [`LiveLoop::frame`] and [`LiveLoop::tick`]. Returns once the detectors have
    /// taken every record, so everything else (reload, counters, state) is done between such
    /// runs, on one thread. An error: the detector thread could not start or stopped early.
    pub fn detached<R>(&mut self, body: impl FnOnce(&mut Detached<'_>) -> R) -> Result<R, String> {
        let mut sink = Forward {
            gens: &mut self.gens,
            alerts: self.alerts.as_mut(),
            quarantine: self.quarantine.as_mut(),
            kept: &mut self.kept,
            counters: &mut self.counters,
            state: self.state.as_ref(),
        };
        let engine = &mut self.engine;
        let link = self.link;
        relay::with_sink_thread(&mut sink, relay::MAX_BATCHES, |relay| {
            body(&mut Detached {
                engine,
                relay,
                link,
            })
        })
    }

    /// The newest detector (the one new windows go to).
    // why: `gens` starts with one generation and never empties: `install_detector` pops one only
    // to push another, and `window_closed` drains `..k` with `k = owner(..) < gens.len()`.
    #[allow(clippy::expect_used)]
    pub fn detector(&self) -> &Detector {
        &self.gens.last().expect("at least one generation").detector
    }

    /// Every detector generation still holding windows, oldest first.
    pub fn detectors(&self) -> impl Iterator<Item = &Detector> {
        self.gens.iter().map(|g| &g.detector)
    }

    pub fn alert_sink(&self) -> Option<&AlertSink> {
        self.alerts.as_ref()
    }

    /// Takes the alert sink out (to shut it down).
    pub fn take_alert_sink(&mut self) -> Option<AlertSink> {
        self.alerts.take()
    }

    /// Checks botd's nftables table (re-created when a `flush ruleset` removed it); the live
    /// loop calls it every [`crate::response::CHECK_INTERVAL`], windows closing or not (an idle
    /// network closes none).
    pub fn check_quarantine(&mut self) {
        if let Some(q) = self.quarantine.as_mut()
            && let Err(e) = q.check()
        {
            log!("quarantine: checking table inet botd: {e}");
        }
    }

    /// Installs a quarantine (`[response]`) and returns the previous one.
    pub fn replace_quarantine(&mut self, q: Option<Quarantine>) -> Option<Quarantine> {
        std::mem::replace(&mut self.quarantine, q)
    }

    pub fn quarantine(&self) -> Option<&Quarantine> {
        self.quarantine.as_ref()
    }

    /// Installs another sink and returns the previous one.
    pub fn replace_alert_sink(&mut self, sink: AlertSink) -> Option<AlertSink> {
        self.alerts.replace(sink)
    }

    /// The last window index open at the current clock, as the engine has it (windows up to
    /// it stay with the running detector on a reload).
    fn last_open_window(&self) -> u64 {
        self.engine.last_open_window().unwrap_or(0)
    }

    /// Installs a new detector for the windows that open from now on; `keep_hosts`: it takes
    /// over the host states when its first window closes.
    pub fn install_detector(&mut self, detector: Detector, keep_hosts: bool) {
        let last = self.last_open_window();
        if let Some(g) = self.gens.last_mut() {
            g.last_window = last;
        }
        // A generation that will never own a window (two reloads within one window step) is
        // replaced at once, passing its host states on if it had them.
        let mut inherit = keep_hosts;
        if self.gens.len() >= 2
            && let Some(prev) = self.gens.get(self.gens.len() - 2)
            && prev.last_window >= last
            && let Some(skipped) = self.gens.pop()
        {
            inherit = inherit && skipped.inherit;
        }
        self.gens.push(Generation {
            last_window: u64::MAX,
            inherit,
            detector,
        });
        self.counters.reloads += 1;
    }
}

/// The counters as one log line.
/// `alerts`: the sink's counters (the final ones after its shutdown); `None` reads the running
/// sink's.
pub fn counters_line(lp: &LiveLoop, cap: &CaptureStats, alerts: Option<AlertCounters>) -> String {
    let c = &lp.engine().counters;
    let t = lp.engine().table_stats();
    let a = alerts
        .or_else(|| lp.alert_sink().map(|s| s.counters()))
        .unwrap_or_default();
    let opt = |v: Option<u64>| v.map_or_else(|| "n/a".to_string(), |v| v.to_string());
    let scored: u64 = lp.counters.flows_scored_before
        + lp.detectors().map(|d| d.counters.flows_scored).sum::<u64>();
    let mut line = format!(
        "captured={} kernel_packets={} kernel_drops={} capture_errors={} frames={} packets={} \
         bytes={} not_parsed={} out_of_order={} flows={} active_flows={} evicted={} windows={} \
         flows_scored={} alerts_raised={} alerts_sent={} alerts_dropped={} \
         alerts_suppressed={} alert_send_errors={}",
        cap.frames,
        opt(cap.kernel_packets),
        opt(cap.kernel_drops),
        cap.errors,
        c.frames,
        c.packets,
        c.bytes,
        c.unparsed(),
        c.out_of_order,
        c.flows,
        lp.engine().active_flows(),
        t.evicted,
        c.windows_closed,
        scored,
        lp.counters.alerts_raised,
        a.sent,
        a.dropped_queue_full + a.dropped_shutdown,
        a.suppressed_rate_limit,
        a.send_errors,
    );
    if let Some(f) = cap.freeze_q {
        line.push_str(&format!(" ring_freezes={f}"));
    }
    line.push_str(&format!(
        " reloads={} reloads_restart_needed={}",
        lp.counters.reloads, lp.counters.reloads_restart_needed
    ));
    // The host table of the detector closing windows (the oldest generation holds it).
    if let Some(d) = lp.detectors().next() {
        let h = d.scorer.counters;
        line.push_str(&format!(
            " hosts={} hosts_expired={} hosts_evicted={} hosts_refused={} level_changes_dropped={}",
            d.scorer.len(),
            h.hosts_expired,
            h.hosts_evicted,
            h.hosts_refused,
            h.level_changes_dropped,
        ));
    }
    let reasons: Vec<String> = c
        .unparsed_by_reason()
        .filter(|&(_, n)| n > 0)
        .map(|(e, n)| format!("{}={n}", e.name()))
        .collect();
    if !reasons.is_empty() {
        line.push_str(&format!(" (not parsed: {})", reasons.join(" ")));
    }
    line
}

fn apply_overrides(cfg: &mut Config, args: &RunArgs) {
    if let Some(i) = &args.interface {
        cfg.capture.interface = i.clone();
    }
}

/// Re-reads the configuration and models; installs them only when everything loaded.
fn reload(
    lp: &mut LiveLoop,
    current: &mut Config,
    args: &RunArgs,
    path: Option<&Path>,
) -> Result<String, String> {
    let mut new = load_config(path)?;
    apply_overrides(&mut new, args);
    let mut kept = Vec::new();
    if new.capture != current.capture {
        kept.push("[capture]".to_string());
        new.capture = current.capture.clone();
    }
    if new.privileges != current.privileges {
        kept.push("[privileges]".to_string());
        new.privileges = current.privileges.clone();
    }
    if new.flows != current.flows {
        kept.push("[flows]".to_string());
        new.flows = current.flows.clone();
    }
    if new.state != current.state {
        kept.push("[state]".to_string());
        new.state = current.state.clone();
    }
    // The host table is allocated at start-up for `max_hosts` (memory is fixed then).
    let (was, wants) = (current.scoring.max_hosts, new.scoring.max_hosts);
    if wants != was {
        kept.push(format!("[scoring] max_hosts ({was} -> {wants})"));
        new.scoring.max_hosts = was;
    }
    let models = Arc::new(pipeline::load_models(&new.models.dir)?);
    let same_names = models.iter().map(|m| &m.name).eq(lp
        .detector()
        .models()
        .iter()
        .map(|m| &m.name));
    // The host lifecycle's settings apply to the running host table; any other `[scoring]`
    // change makes new host states.
    let (idle, changes) = (new.scoring.host_idle_secs, new.scoring.max_level_changes);
    let lifecycle_note = if (idle, changes)
        != (
            current.scoring.host_idle_secs,
            current.scoring.max_level_changes,
        ) {
        format!(
            "; host_idle_secs {} -> {idle}, max_level_changes {} -> {changes} applied",
            current.scoring.host_idle_secs, current.scoring.max_level_changes
        )
    } else {
        String::new()
    };
    let same_scoring = crate::config::ScoringConfig {
        host_idle_secs: idle,
        max_level_changes: changes,
        ..current.scoring.clone()
    } == new.scoring;
    let keep_hosts = same_names && same_scoring;
    // A broken feed fails the reload: the running feeds stay.
    let intel = pipeline::load_intel(&new)?;
    let intel_note = match &intel {
        Some(i) => format!(
            "; intel {} entries in {} feeds",
            i.entries(),
            i.feeds().len()
        ),
        None => String::new(),
    };
    let mut detector = pipeline::detector(&new, new.network.clone(), models.clone(), intel);
    // What the sensor learnt of names and devices carries over.
    detector.inherit_knowledge(lp.detector());
    let sink = if new.alerts != current.alerts {
        Some(alert_sink(&new)?)
    } else {
        None
    };
    // A changed `[response]`: the new quarantine takes over the block counts and the hosts in
    // quarantine; one that cannot start (nft missing) fails the reload.
    let quarantine = if new.response != current.response {
        Some(match lp.quarantine() {
            Some(old) => old.reconfigure(&new.response)?,
            None => Quarantine::new(&new.response)?,
        })
    } else {
        None
    };
    // Everything is whole: install.
    lp.install_detector(detector, keep_hosts);
    lp.set_lifecycle(idle, changes);
    lp.set_state_scoring(&new.scoring);
    let sink_note = match sink {
        Some(s) => {
            if let Some(old) = lp.replace_alert_sink(s) {
                // The old sink delivers what it has queued off the loop's thread.
                std::thread::spawn(move || old.shutdown(Duration::from_secs(1)));
            }
            "; alert delivery restarted"
        }
        None => "",
    };
    let quarantine_note = match quarantine {
        Some(q) => {
            let mode = q.as_ref().map_or("off", |q| q.mode().as_str());
            lp.replace_quarantine(q);
            format!("; response {mode}")
        }
        None => String::new(),
    };
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    let mut msg = format!(
        "reloaded config and {} models ({}); host states {}{lifecycle_note}{sink_note}{intel_note}{quarantine_note}",
        models.len(),
        names.join(", "),
        if keep_hosts { "kept" } else { "start afresh" },
    );
    if !kept.is_empty() {
        lp.counters.reloads_restart_needed += 1;
        msg.push_str(&format!(
            "; {} changed but need a restart: running values kept",
            kept.join(" ")
        ));
    }
    *current = new;
    Ok(msg)
}

fn open_capture(
    kind: CaptureKind,
    cfg: &Config,
    args: &RunArgs,
) -> Result<Box<dyn LiveCapture>, String> {
    Ok(match kind {
        CaptureKind::Pnet => Box::new(PnetCapture::open(&cfg.capture)?),
        CaptureKind::Ring => Box::new(RingCapture::open(
            &cfg.capture,
            RingOptions {
                blocks: args.ring_blocks,
                ..RingOptions::default()
            },
        )?),
    })
}

/// The live host history as the state document. Host states live in the oldest detector
/// generation until a newer one closes its first window and takes them over.
fn state_document(
    lp: &LiveLoop,
    scoring: &crate::config::ScoringConfig,
) -> Option<crate::document::Document> {
    let detector = lp.detectors().next()?;
    Some(crate::document::state_document(
        detector,
        lp.engine(),
        scoring,
    ))
}

/// Writes the Prometheus metrics to `[metrics] textfile`, when one is configured, rendering into
/// `buf` (one buffer for the sensor's life). A failure is logged and the sensor goes on.
fn write_metrics(
    lp: &LiveLoop,
    cap: &CaptureStats,
    alerts: Option<AlertCounters>,
    cfg: &Config,
    start_ns: u64,
    buf: &mut String,
) {
    let Some(path) = cfg.metrics.textfile() else {
        return;
    };
    let snap = crate::metrics::Snapshot::of(lp, cap, alerts, start_ns);
    crate::metrics::render(buf, &cfg.sensor.resolved_name(), &snap);
    if let Err(e) = crate::metrics::write_atomically(path, buf) {
        log!("metrics file not written: {e}");
    }
}

pub fn run(args: RunArgs) -> Result<(), String> {
    let start_ns = now_ns();
    let signals = Signals::install().map_err(|e| format!("installing signal handlers: {e}"))?;
    // The file a reload re-reads: the one given, else the default path (even when it was absent
    // at start-up and the defaults applied).
    let config_path = args.config.clone();
    let mut cfg = load_config(config_path.as_deref())?;
    apply_overrides(&mut cfg, &args);
    let mut cap = open_capture(args.capture, &cfg, &args)?;
    let enforce = cfg.response.mode == crate::config::ResponseMode::Enforce;
    let who = privileges::drop_privileges(&cfg.privileges, args.allow_root, enforce)?;
    log!("{who}");
    let models = Arc::new(pipeline::load_models(&cfg.models.dir)?);
    // A broken feed stops the start with its file and line.
    let intel = pipeline::load_intel(&cfg)?;
    if let Some(i) = &intel {
        log!(
            "intel: {} entries in {} feeds ({} KiB)",
            i.entries(),
            i.feeds().len(),
            i.memory_bytes() / 1024
        );
    }
    let sink = alert_sink(&cfg)?;
    let detector = pipeline::detector(&cfg, cfg.network.clone(), models.clone(), intel);
    let mut lp = LiveLoop::with_detector(&cfg, detector, Some(sink), cap.link());
    // Off by default; enforce makes botd's nftables table whole here, or the start fails.
    lp.replace_quarantine(Quarantine::new(&cfg.response)?);
    log!(
        "capturing on {} with {} ({}), {} models, windows {} s every {} s",
        cfg.capture.interface,
        cap.name(),
        if cfg.capture.promiscuous {
            "promiscuous"
        } else {
            "not promiscuous"
        },
        models.len(),
        cfg.flows.window_secs,
        cfg.flows.window_secs.saturating_sub(cfg.flows.overlap_secs),
    );
    drop(models);
    lp.tick(now_ns());

    let mut consecutive_errors = 0u32;
    let mut first_error: Option<std::time::Instant> = None;
    let mut last_state = std::time::Instant::now();
    // The state file is built on the detectors' thread and written on its own.
    if let Some(path) = cfg.state.file() {
        lp.replace_state(Some(StateOut {
            writer: StateWriter::start()?,
            path: path.to_path_buf(),
            scoring: cfg.scoring.clone(),
        }));
    }
    let state_every = Duration::from_secs(cfg.state.interval_secs.max(1));
    // The metrics file is written at once (the collector has figures from the start), then on
    // its interval.
    let mut metrics_buf = String::new();
    let mut last_metrics: Option<std::time::Instant> = None;
    let mut last_check = std::time::Instant::now();
    loop {
        if cfg.metrics.textfile().is_some()
            && last_metrics.is_none_or(|t| {
                t.elapsed() >= Duration::from_secs(cfg.metrics.interval_secs.max(1))
            })
        {
            last_metrics = Some(std::time::Instant::now());
            write_metrics(&lp, &cap.stats(), None, &cfg, start_ns, &mut metrics_buf);
        }
        if last_check.elapsed() >= crate::response::CHECK_INTERVAL {
            last_check = std::time::Instant::now();
            lp.check_quarantine();
        }
        if signals.pending() {
            if signals.stop_requested() {
                break;
            }
            if signals.take_reload() {
                match reload(&mut lp, &mut cfg, &args, config_path.as_deref()) {
                    Ok(msg) => log!("{msg}"),
                    Err(e) => log!("reload failed, running configuration and models kept: {e}"),
                }
            }
            if signals.take_counters() {
                log!("counters: {}", counters_line(&lp, &cap.stats(), None));
            }
        }
        // Capture, with the detectors on their own thread, until a signal comes or the next
        // housekeeping above is due.
        let every = |secs: u64| Duration::from_secs(secs.max(1));
        let mut due = last_check + crate::response::CHECK_INTERVAL;
        if cfg.metrics.textfile().is_some() {
            let next = last_metrics.map_or(due, |t| t + every(cfg.metrics.interval_secs));
            due = due.min(next);
        }
        let has_state = cfg.state.file().is_some();
        let failed = lp.detached(|d| {
            loop {
                match cap.next(&mut |ts, data, wire| d.frame(ts, data, wire)) {
                    Ok(0) => d.tick(now_ns().saturating_sub(cap.latency_ns())),
                    Ok(_) => {
                        consecutive_errors = 0;
                        first_error = None;
                    }
                    Err(e) => {
                        consecutive_errors += 1;
                        let since = *first_error.get_or_insert_with(std::time::Instant::now);
                        if consecutive_errors <= 3 {
                            log!("capture error on {}: {e}", cfg.capture.interface);
                        }
                        if since.elapsed() > Duration::from_secs(10) {
                            return Some(format!(
                                "capture on {} failing for 10 s: {e}",
                                cfg.capture.interface
                            ));
                        }
                        std::thread::sleep(Duration::from_millis(
                            cfg.capture.read_timeout_ms.min(1000),
                        ));
                        d.tick(now_ns().saturating_sub(cap.latency_ns()));
                    }
                }
                // The state file for `botd report --state`, on its interval: a checkpoint, where
                // the detectors' thread builds the document; it is written atomically on a third
                // thread (a failure, disk full or permissions, is logged and the sensor goes on).
                // While the previous document is still being written, this one is skipped.
                if has_state && last_state.elapsed() >= state_every {
                    last_state = std::time::Instant::now();
                    d.checkpoint();
                }
                // Signals at once; the intervals' housekeeping once the detectors are not
                // scoring a window, so that waiting for them does not hold up the capture
                // (unless they never are: an overloaded sensor still writes its metrics).
                let now = std::time::Instant::now();
                if signals.pending()
                    || (now >= due && (d.idle() || now >= due + Duration::from_secs(10)))
                {
                    return None;
                }
            }
        })?;
        if let Some(e) = failed {
            lp.finish();
            let alerts = lp
                .take_alert_sink()
                .map(|s| s.shutdown(Duration::from_secs(1)));
            write_metrics(&lp, &cap.stats(), alerts, &cfg, start_ns, &mut metrics_buf);
            return Err(e);
        }
    }
    log!("stopping: closing the open windows");
    lp.finish();
    // The last document, with the windows `finish` closed (built here: the capture is over).
    if let Some(s) = lp.replace_state(None)
        && let Some(doc) = state_document(&lp, &s.scoring)
    {
        s.writer.finish(&s.path, doc);
    }
    let stats = cap.stats();
    // The sink delivers what is queued (1 s at most), then the counters are final.
    let alerts = lp
        .take_alert_sink()
        .map(|s| s.shutdown(Duration::from_secs(1)));
    write_metrics(&lp, &stats, alerts, &cfg, start_ns, &mut metrics_buf);
    log!("stopped: {}", counters_line(&lp, &stats, alerts));
    Ok(())
}
