//! A [`FlowSink`] on a second thread: the engine's calls are queued in batches and made, in the
//! same order, on the other thread. The sink sees exactly the calls it would see inline, so its
//! results are the same; only the work overlaps. `botd analyze` puts the detector (features,
//! models, host scores) there while the engine reads the next packets: a window's flows all come
//! out when it closes, and are scored while the engine goes on with the next window.
//!
//! Memory is bounded: at most [`MAX_BATCHES`] batches of [`BATCH`] calls exist; when all are
//! out, the engine waits for the sink.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::engine::{FlowSink, Totals, WindowInfo};
use crate::flow::{CloseReason, Flow};

/// Calls per batch.
pub const BATCH: usize = 1024;
/// Most batches at once (about 440 KiB each): room for a window of 32 k flows to be scored
/// while the engine goes on (the 64-copy benchmark capture closes 34 k flows a window).
pub const MAX_BATCHES: usize = 32;

/// One call, in order; a flow's record is the next one of [`Batch::flows`].
enum Call {
    Flow(CloseReason, Option<WindowInfo>),
    WindowClosed(WindowInfo, u64),
    Checkpoint(Totals),
}

/// Calls in order, the flow records apart: copying a record straight into `flows` is one copy,
/// where wrapping it in an enum first cost two (the copies were ~5% of analyze's engine thread).
struct Batch {
    calls: Vec<Call>,
    flows: Vec<Flow>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            calls: Vec::with_capacity(BATCH),
            flows: Vec::with_capacity(BATCH),
        }
    }
}

/// The engine's side: a [`FlowSink`] that queues.
pub struct Relay {
    current: Batch,
    to_sink: Option<SyncSender<Batch>>,
    /// Emptied batches coming back for reuse.
    returned: Receiver<Batch>,
    /// Batches back from the sink that [`Relay::idle`] took from `returned` (reused first).
    spare: Vec<Batch>,
    made: usize,
    max_batches: usize,
    /// The sink's thread is gone (it panicked): calls from then on are lost.
    lost: bool,
}

impl Relay {
    fn send(&mut self) {
        if self.current.calls.is_empty() || self.lost {
            return;
        }
        let next = match self
            .spare
            .pop()
            .map_or_else(|| self.returned.try_recv(), Ok)
        {
            Ok(b) => b,
            Err(_) if self.made < self.max_batches => {
                self.made += 1;
                Batch::new()
            }
            Err(_) => match self.returned.recv() {
                Ok(b) => b,
                Err(_) => {
                    self.lost = true;
                    return;
                }
            },
        };
        let full = std::mem::replace(&mut self.current, next);
        let sent = self.to_sink.as_ref().is_some_and(|t| t.send(full).is_ok());
        if !sent {
            self.lost = true;
        }
    }

    /// Whether the sink has taken every batch sent so far (calls not sent yet, fewer than a
    /// batch, may wait in the current one): the other thread is not busy with them.
    pub fn idle(&mut self) -> bool {
        while let Ok(b) = self.returned.try_recv() {
            self.spare.push(b);
        }
        self.lost || self.spare.len() + 1 >= self.made
    }

    fn push(&mut self, call: Call) {
        self.current.calls.push(call);
        if self.current.calls.len() >= BATCH {
            self.send();
        }
    }
}

impl FlowSink for Relay {
    fn flow(&mut self, flow: &Flow, reason: CloseReason, window: Option<&WindowInfo>) {
        self.current.flows.push(flow.clone());
        self.push(Call::Flow(reason, window.copied()));
    }

    fn window_closed(&mut self, window: &WindowInfo, flows: u64) {
        self.push(Call::WindowClosed(*window, flows));
        // Sent now, so the sink closes the window without waiting for the next one's flows.
        self.send();
    }

    fn checkpoint(&mut self, totals: &Totals) {
        self.push(Call::Checkpoint(*totals));
        // Sent now: the checkpoint is wanted now, not once a batch of records has filled up.
        self.send();
    }
}

/// Runs `run` with a [`Relay`] whose calls reach `sink` on a second thread, in order; returns
/// what `run` returns once the sink has taken every call. At most `max_batches` batches exist
/// (at least 2; [`MAX_BATCHES`] is what `botd analyze` uses). Errors when the thread could not
/// be started or stopped early (then `sink` saw only some of the calls).
pub fn with_sink_thread<S, R>(
    sink: &mut S,
    max_batches: usize,
    run: impl FnOnce(&mut Relay) -> R,
) -> Result<R, String>
where
    S: FlowSink + Send,
{
    let max_batches = max_batches.max(2);
    // Never more batches than either channel holds, so neither side blocks on a full channel.
    let (to_sink, from_engine) = sync_channel::<Batch>(max_batches);
    let (to_engine, returned) = sync_channel::<Batch>(max_batches);
    std::thread::scope(|scope| {
        let consumer = std::thread::Builder::new()
            .name("botd-detector".into())
            .spawn_scoped(scope, move || {
                for mut batch in from_engine {
                    let mut flows = batch.flows.iter();
                    for call in batch.calls.drain(..) {
                        match call {
                            Call::Flow(reason, w) => {
                                if let Some(f) = flows.next() {
                                    sink.flow(f, reason, w.as_ref());
                                }
                            }
                            Call::WindowClosed(w, n) => sink.window_closed(&w, n),
                            Call::Checkpoint(t) => sink.checkpoint(&t),
                        }
                    }
                    batch.flows.clear();
                    // The engine may be gone already (it is done): nothing to give back then.
                    let _ = to_engine.send(batch);
                }
            })
            .map_err(|e| format!("cannot start the detector thread: {e}"))?;
        let mut relay = Relay {
            current: Batch::new(),
            to_sink: Some(to_sink),
            returned,
            spare: Vec::with_capacity(max_batches),
            made: 1,
            max_batches,
            lost: false,
        };
        let out = run(&mut relay);
        relay.send();
        relay.to_sink = None;
        let lost = relay.lost;
        drop(relay);
        match consumer.join() {
            Ok(()) if !lost => Ok(out),
            _ => Err("the detector thread stopped early".to_string()),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::capture::MergedCapture;
    use crate::engine::{Engine, EngineConfig, WindowConfig};
    use std::path::PathBuf;

    /// What a sink saw, in order.
    #[derive(Debug, Default, PartialEq)]
    struct Recorder {
        calls: Vec<String>,
        /// Sleeps this long per window close (a sink slower than the engine).
        slow: Option<std::time::Duration>,
        /// Panics at this call.
        panic_at: Option<usize>,
    }

    impl FlowSink for Recorder {
        fn flow(&mut self, flow: &Flow, reason: CloseReason, window: Option<&WindowInfo>) {
            assert_ne!(Some(self.calls.len()), self.panic_at, "the sink fails");
            self.calls.push(format!(
                "{:?} {} {} {reason:?} {:?}",
                flow.key,
                flow.start_ns,
                flow.total_pkts(),
                window.map(|w| w.index)
            ));
        }
        fn window_closed(&mut self, window: &WindowInfo, flows: u64) {
            if let Some(d) = self.slow {
                std::thread::sleep(d);
            }
            self.calls.push(format!("close {} {flows}", window.index));
        }
    }

    /// The engine over demo.pcap into `sink`: inline, or through a relay of `max_batches`
    /// (then the batches it made).
    fn demo_run(sink: &mut Recorder, threaded: Option<usize>) -> Result<usize, String> {
        let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/demo.pcap");
        let mut engine = Engine::new(EngineConfig {
            // Short windows: many closes, each a burst of records.
            window: WindowConfig::from_secs(20.0, 10.0),
            flow_capacity: 64,
            ..EngineConfig::default()
        });
        let mut cap = MergedCapture::open(&[demo]).unwrap();
        let Some(max_batches) = threaded else {
            while let Some(f) = cap.next_frame().unwrap() {
                engine.on_frame(f.ts_ns, f.link, f.data, f.orig_len, sink);
            }
            engine.finish(sink);
            return Ok(0);
        };
        with_sink_thread(sink, max_batches, |relay| {
            while let Some(f) = cap.next_frame().unwrap() {
                engine.on_frame(f.ts_ns, f.link, f.data, f.orig_len, relay);
            }
            engine.finish(relay);
            relay.made
        })
    }

    #[test]
    fn the_sink_sees_the_same_calls_in_the_same_order() {
        let mut inline = Recorder::default();
        demo_run(&mut inline, None).unwrap();
        assert!(
            inline.calls.len() > 3 * BATCH,
            "{} calls",
            inline.calls.len()
        );
        assert!(
            inline
                .calls
                .iter()
                .filter(|c| c.starts_with("close"))
                .count()
                > 10
        );

        let mut threaded = Recorder::default();
        demo_run(&mut threaded, Some(MAX_BATCHES)).unwrap();
        assert_eq!(threaded.calls, inline.calls);
    }

    #[test]
    fn a_slow_sink_holds_the_engine_at_the_batch_limit() {
        let mut inline = Recorder::default();
        demo_run(&mut inline, None).unwrap();
        let mut slow = Recorder {
            slow: Some(std::time::Duration::from_millis(5)),
            ..Recorder::default()
        };
        // Two batches: the engine fills one while the sink takes the other, then waits.
        let made = demo_run(&mut slow, Some(2)).unwrap();
        assert_eq!(made, 2);
        assert_eq!(slow.calls, inline.calls);
    }

    #[test]
    fn idle_once_the_sink_took_every_batch() {
        let mut slow = Recorder {
            slow: Some(std::time::Duration::from_millis(200)),
            ..Recorder::default()
        };
        let window = WindowInfo {
            index: 0,
            start_ns: 0,
            end_ns: 1,
            ..WindowInfo::default()
        };
        with_sink_thread(&mut slow, 4, |relay| {
            assert!(relay.idle(), "nothing sent yet");
            relay.window_closed(&window, 0);
            assert!(!relay.idle(), "the sink sleeps on the window");
            let t0 = std::time::Instant::now();
            while !relay.idle() {
                assert!(t0.elapsed().as_secs() < 10, "never idle");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            assert!(
                t0.elapsed().as_millis() >= 100,
                "idle before the sink was done"
            );
            // The batch back in `spare` is reused: no new one is made.
            relay.window_closed(&window, 0);
            assert_eq!(relay.made, 2);
        })
        .unwrap();
        assert_eq!(slow.calls, ["close 0 0", "close 0 0"]);
    }

    #[test]
    fn a_sink_that_stops_is_an_error_not_a_hang() {
        let mut failing = Recorder {
            panic_at: Some(100),
            ..Recorder::default()
        };
        let got = demo_run(&mut failing, Some(MAX_BATCHES));
        assert_eq!(got, Err("the detector thread stopped early".to_string()));
        assert_eq!(failing.calls.len(), 100);
    }
}
