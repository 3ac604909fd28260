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

use crate::engine::{FlowSink, WindowInfo};
use crate::flow::{CloseReason, Flow};

/// Calls per batch.
pub const BATCH: usize = 1024;
/// Most batches at once (about 440 KiB each): room for a window of 32 k flows to be scored
/// while the engine goes on (the 64-copy benchmark capture closes 34 k flows a window).
pub const MAX_BATCHES: usize = 32;

// Nearly every call is a flow, so the enum is as large as one on purpose (boxing would allocate).
#[allow(clippy::large_enum_variant)]
enum Call {
    Flow(Flow, CloseReason, Option<WindowInfo>),
    WindowClosed(WindowInfo, u64),
}

/// The engine's side: a [`FlowSink`] that queues.
pub struct Relay {
    current: Vec<Call>,
    to_sink: Option<SyncSender<Vec<Call>>>,
    /// Emptied batches coming back for reuse.
    returned: Receiver<Vec<Call>>,
    made: usize,
    /// The sink's thread is gone (it panicked): calls from then on are lost.
    lost: bool,
}

impl Relay {
    fn send(&mut self) {
        if self.current.is_empty() || self.lost {
            return;
        }
        let next = match self.returned.try_recv() {
            Ok(b) => b,
            Err(_) if self.made < MAX_BATCHES => {
                self.made += 1;
                Vec::with_capacity(BATCH)
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

    fn push(&mut self, call: Call) {
        self.current.push(call);
        if self.current.len() >= BATCH {
            self.send();
        }
    }
}

impl FlowSink for Relay {
    fn flow(&mut self, flow: &Flow, reason: CloseReason, window: Option<&WindowInfo>) {
        self.push(Call::Flow(*flow, reason, window.copied()));
    }

    fn window_closed(&mut self, window: &WindowInfo, flows: u64) {
        self.push(Call::WindowClosed(*window, flows));
        // Sent now, so the sink closes the window without waiting for the next one's flows.
        self.send();
    }
}

/// Runs `run` with a [`Relay`] whose calls reach `sink` on a second thread, in order; returns
/// what `run` returns once the sink has taken every call. Errors when the thread could not be
/// started or stopped early (then `sink` saw only some of the calls).
pub fn with_sink_thread<S, R>(sink: &mut S, run: impl FnOnce(&mut Relay) -> R) -> Result<R, String>
where
    S: FlowSink + Send,
{
    let (to_sink, from_engine) = sync_channel::<Vec<Call>>(MAX_BATCHES);
    let (to_engine, returned) = sync_channel::<Vec<Call>>(MAX_BATCHES);
    std::thread::scope(|scope| {
        let consumer = std::thread::Builder::new()
            .name("botd-detector".into())
            .spawn_scoped(scope, move || {
                for mut batch in from_engine {
                    for call in batch.drain(..) {
                        match call {
                            Call::Flow(f, reason, w) => sink.flow(&f, reason, w.as_ref()),
                            Call::WindowClosed(w, n) => sink.window_closed(&w, n),
                        }
                    }
                    // The engine may be gone already (it is done): nothing to give back then.
                    let _ = to_engine.send(batch);
                }
            })
            .map_err(|e| format!("cannot start the detector thread: {e}"))?;
        let mut relay = Relay {
            current: Vec::with_capacity(BATCH),
            to_sink: Some(to_sink),
            returned,
            made: 1,
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
