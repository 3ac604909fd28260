//! Command-line front door: wires capture readers, the engine and writers. No logic of its own.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::capture::MergedCapture;
use crate::engine::{Engine, EngineConfig, FlowSink, WindowConfig};
use crate::output::{FlowWriter, Format};
use crate::wire::ParseError;

#[derive(Parser, Debug)]
#[command(
    name = "botd",
    version,
    about = "Botnet-detection sensor: flows, models, host alerts"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Export Argus-compatible bidirectional flows (CTU-13 binetflow columns first).
    Flows(FlowsArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    Csv,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct FlowsArgs {
    /// Window length in seconds (the original detector used 300); without it, whole-capture flows.
    #[arg(long, value_name = "SECS")]
    pub window: Option<f64>,
    /// Overlap of consecutive windows in seconds (default: half the window, as the original).
    #[arg(long, value_name = "SECS", requires = "window")]
    pub overlap: Option<f64>,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: FormatArg,
    /// Write here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Most flows held at once (per open window); the longest-idle flow is evicted beyond it.
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub flow_capacity: usize,
    /// Capture files (pcap or pcapng, optionally gzip) or directories, read as one stream.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
}

/// Runs the command; errors are printed by the caller.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Flows(args) => flows(args),
    }
}

fn flows(args: FlowsArgs) -> Result<(), String> {
    let window = match args.window {
        None => None,
        Some(len) => {
            let overlap = args.overlap.unwrap_or(len / 2.0);
            Some(WindowConfig::from_secs(len, overlap).ok_or_else(|| {
                format!(
                    "--window {len} --overlap {overlap}: the window must be positive and the overlap shorter than it"
                )
            })?)
        }
    };
    let cfg = EngineConfig {
        flow_capacity: args.flow_capacity,
        window,
        ..EngineConfig::default()
    };
    let format = match args.format {
        FormatArg::Csv => Format::Csv,
        FormatArg::Json => Format::Json,
    };
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path).map_err(|e| format!("{}: cannot create: {e}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut writer = FlowWriter::new(
        BufWriter::with_capacity(1 << 20, out),
        format,
        window.is_some(),
    );
    let mut engine = Engine::new(cfg);
    let read_result = replay(&args.captures, &mut engine, &mut writer);
    engine.finish(&mut writer);
    let records = writer.records;
    writer.finish().map_err(|e| format!("writing flows: {e}"))?;
    report(&engine, records);
    read_result
}

/// Feeds every frame of the captures to the engine. A read error stops the input but what was
/// read is still processed; the error is returned after the engine finishes.
pub fn replay(
    paths: &[PathBuf],
    engine: &mut Engine,
    sink: &mut impl FlowSink,
) -> Result<(), String> {
    let mut capture = MergedCapture::open(paths).map_err(|e| e.to_string())?;
    let result = loop {
        match capture.next_frame() {
            Ok(Some(frame)) => {
                engine.on_frame(frame.ts_ns, frame.link, frame.data, frame.orig_len, sink);
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e.to_string()),
        }
    };
    let stats = capture.stats();
    for w in &stats.warnings {
        eprintln!("botd: warning: {w}");
    }
    if stats.damaged_records_skipped > 0 {
        eprintln!(
            "botd: {} damaged capture records skipped",
            stats.damaged_records_skipped
        );
    }
    result
}

/// One summary line on stderr: what was read, what was not parsed and why, what the table did.
fn report(engine: &Engine, records: u64) {
    let c = &engine.counters;
    let t = engine.table_stats();
    let mut line = format!(
        "botd: {} frames, {} packets, {} flow records, {} evicted (table full), {} windows",
        c.frames, c.packets, records, t.evicted, c.windows_closed
    );
    let unparsed: Vec<String> = ParseError::ALL
        .iter()
        .filter(|e| c.parse_errors[e.index()] > 0)
        .map(|e| format!("{}={}", e.name(), c.parse_errors[e.index()]))
        .collect();
    if !unparsed.is_empty() {
        line.push_str(&format!("; not parsed: {}", unparsed.join(" ")));
    }
    if c.out_of_order > 0 {
        line.push_str(&format!("; {} out-of-order timestamps", c.out_of_order));
    }
    eprintln!("{line}");
}
