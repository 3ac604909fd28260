//! The offline pipeline's sink, as `botd analyze` wires it: every record to the detector, and
//! each window's alerts kept in order.

use botd::alert::Alert;
use botd::detect::Detector;
use botd::engine::{FlowSink, WindowInfo};
use botd::flow::{CloseReason, Flow};

pub struct Offline<'a> {
    pub detector: &'a mut Detector,
    pub alerts: Vec<Alert>,
}

impl FlowSink for Offline<'_> {
    fn flow(&mut self, flow: &Flow, reason: CloseReason, window: Option<&WindowInfo>) {
        self.detector.flow(flow, reason, window);
    }
    fn window_closed(&mut self, window: &WindowInfo, flows: u64) {
        self.detector.window_closed(window, flows);
        self.alerts.extend(self.detector.take_alerts());
    }
}
