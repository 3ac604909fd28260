//! botd: a botnet-detection sensor. The engine is sans-IO: callers hand in (timestamp, frame) pairs
//! and receive flow records and window summaries; capture and output live at the edges.

// botd reads hostile traffic, configs and model files: no panic may be reachable from input.
// Every module also states this itself; the few allowed sites carry a `// why:` invariant
// (docs/hardening.md lists them). Unit-test modules allow the lints.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod alert;
pub mod analyze;
pub mod capture;
pub mod cli;
pub mod community_id;
pub mod config;
pub mod detect;
pub mod devices;
pub mod dnsview;
pub mod document;
pub mod engine;
pub mod eve;
pub mod evidence;
pub mod features;
pub mod flow;
pub mod host;
pub mod infra;
pub mod intel;
pub mod live;
pub mod metrics;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod proto;
pub mod relay;
pub mod report;
pub mod response;
pub mod scoring;
pub mod slowbeacon;
pub mod time;
pub mod wire;
