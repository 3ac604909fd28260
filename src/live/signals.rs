//! Signals as flags (signal-hook): the handlers only set an atomic flag; the capture loop checks
//! the flags between reads, and the read timeout bounds how long a signal waits.
//!
//! * SIGHUP: reload configuration and models.
//! * SIGTERM, SIGINT: stop (close the open windows, score them, send their alerts, exit 0). A
//!   second SIGTERM/SIGINT while stopping exits at once with status 1.
//! * SIGUSR1: log the counters.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

#[derive(Clone, Default)]
pub struct Signals {
    reload: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    counters: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers. Call it first thing: SIGHUP's default action would end the process.
    pub fn install() -> io::Result<Signals> {
        let s = Signals::default();
        for sig in [SIGTERM, SIGINT] {
            // Registered before the flag: the first signal finds the flag unset and only sets it;
            // a second one finds it set and exits.
            signal_hook::flag::register_conditional_shutdown(sig, 1, s.stop.clone())?;
            signal_hook::flag::register(sig, s.stop.clone())?;
        }
        signal_hook::flag::register(SIGHUP, s.reload.clone())?;
        signal_hook::flag::register(SIGUSR1, s.counters.clone())?;
        Ok(s)
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Whether a SIGHUP came since the last call.
    pub fn take_reload(&self) -> bool {
        self.reload.load(Ordering::Relaxed) && self.reload.swap(false, Ordering::SeqCst)
    }

    /// Whether a SIGUSR1 came since the last call.
    pub fn take_counters(&self) -> bool {
        self.counters.load(Ordering::Relaxed) && self.counters.swap(false, Ordering::SeqCst)
    }

    /// Any flag set (one relaxed load each; checked per frame).
    pub fn pending(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self.reload.load(Ordering::Relaxed)
            || self.counters.load(Ordering::Relaxed)
    }
}
