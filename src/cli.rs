//! Command-line front door: wires capture readers, the engine and writers. No logic of its own.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::capture::MergedCapture;
use crate::engine::{Engine, EngineConfig, FlowSink, WindowConfig};
use crate::flow::IndexKind;
use crate::output::{FlowWriter, Format};

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
    /// The whole pipeline on captures: flows, features, every model, host scores; a host table,
    /// optional JSON and syslog alerts, and detection against a truth file.
    Analyze(crate::analyze::AnalyzeArgs),
    /// Check a configuration file (default config/botd.toml) and summarise it.
    CheckConfig {
        /// The file; without it config/botd.toml, or the built-in defaults when that is absent.
        file: Option<PathBuf>,
    },
    /// Write the feature vectors of every flow record (one CSV row each, no header but a `#`
    /// line naming the features), as the models see them.
    Features(FeaturesArgs),
    /// Score feature rows (as `botd features` writes them) with one model: prints the botnet
    /// probability per row, or with --bench the scoring speed.
    Score(ScoreArgs),
    /// List the models of a folder with their schema, trees, threshold and metrics; exits
    /// non-zero when one is invalid.
    Models(ModelsArgs),
    /// The live sensor: capture on an interface, score windows, send alerts; SIGHUP reloads,
    /// SIGTERM stops, SIGUSR1 logs counters.
    Run(crate::live::RunArgs),
    /// Write the per-host timeline report: one self-contained HTML page (from captures, or from
    /// a running sensor's --state file).
    Report(crate::report::ReportArgs),
    /// List the threat-intelligence feeds of a folder (default `[intel] dir`) with their format,
    /// entry counts and errors; exits non-zero when one is broken.
    Intel(IntelArgs),
    /// The hosts `[response] mode = "enforce"` put in quarantine (botd's nftables sets): list
    /// them, or release one now.
    Quarantine(crate::response::QuarantineArgs),
    /// tract's check of a model file, in the child process of a build that aborts on panic
    /// (`crate::model::check_in_child`); not for users.
    #[command(name = crate::model::CHECK_MODEL, hide = true)]
    CheckModel { file: PathBuf },
}

#[derive(clap::Args, Debug)]
pub struct IntelArgs {
    /// The feed folder; without it `[intel] dir` of the configuration.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Configuration file (default: config/botd.toml when it exists, else built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct FeaturesArgs {
    /// Feature schema: argus, ctu or proto.
    #[arg(long, default_value = "argus")]
    pub schema: String,
    /// Window length in seconds (default 300, the windows models are trained on); 0 for
    /// whole-capture flows.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub window: f64,
    #[arg(long, value_name = "SECS")]
    pub overlap: Option<f64>,
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Feature rows: comma-separated floats, one row per line, `#` lines ignored.
    pub rows: PathBuf,
    /// Instead of printing, score this many rows (the file's rows repeated) in batches of 1024
    /// on one thread and print rows/s.
    #[arg(long, value_name = "N")]
    pub bench: Option<usize>,
}

#[derive(clap::Args, Debug)]
pub struct ModelsArgs {
    /// Models folder (every *.onnx directly in it; `unused/` is ignored).
    #[arg(long, value_name = "DIR", default_value = "models")]
    pub dir: PathBuf,
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
    /// The flow table's key index: hashbrown's SwissTable, or botd's own linear probing (faster
    /// on large captures, see the README's Performance section).
    #[arg(long, value_enum, value_name = "KIND", default_value = "hashbrown")]
    pub flow_index: IndexKind,
    /// CSV: add the application columns (App, AppName, DnsRcode, Ja3, Ja4, HttpUserAgent,
    /// PeerNamed) after the Argus ones. JSON always carries the application summary (`App`).
    #[arg(long)]
    pub app: bool,
    /// Community ID seed of the records' `CommunityId` (the same as the other sensors whose
    /// records are joined with these; Zeek's and Suricata's default is 0).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub community_id_seed: u16,
    /// Capture files (pcap or pcapng, optionally gzip) or directories, read as one stream.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
}

/// Runs the command; errors are printed by the caller.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Flows(args) => flows(args),
        Command::Analyze(args) => crate::analyze::analyze(args),
        Command::CheckConfig { file } => {
            println!("{}", crate::config::check_config_command(file.as_deref())?);
            Ok(())
        }
        Command::Models(args) => models(args),
        Command::Intel(args) => intel(args),
        Command::Report(args) => crate::report::report(args),
        Command::Run(args) => crate::live::run(args),
        Command::Features(args) => features(args),
        Command::Score(args) => score(args),
        Command::Quarantine(args) => crate::response::quarantine_command(args),
        Command::CheckModel { file } => check_model(&file),
    }
}

fn score(args: ScoreArgs) -> Result<(), String> {
    let model = crate::model::Model::load(&args.model).map_err(|e| e.to_string())?;
    let nf = model.schema.len();
    let text =
        std::fs::read_to_string(&args.rows).map_err(|e| format!("{}: {e}", args.rows.display()))?;
    let mut rows: Vec<f32> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let before = rows.len();
        for field in line.split(',') {
            rows.push(
                field
                    .trim()
                    .parse()
                    .map_err(|e| format!("{}:{}: {field:?}: {e}", args.rows.display(), i + 1))?,
            );
        }
        if rows.len() - before != nf {
            return Err(format!(
                "{}:{}: {} values, the model's schema {} has {nf}",
                args.rows.display(),
                i + 1,
                rows.len() - before,
                model.schema.name
            ));
        }
    }
    let n = rows.len() / nf;
    if n == 0 {
        return Err(format!("{}: no rows", args.rows.display()));
    }
    const BATCH: usize = 1024;
    // Every row has `nf` values (checked above), so a chunk of `BATCH * nf` values is at most
    // BATCH whole rows; `probs` is resized to each chunk's rows within its capacity.
    let mut probs: Vec<f32> = Vec::with_capacity(BATCH);
    match args.bench {
        None => {
            let mut out = BufWriter::new(io::stdout().lock());
            for batch in rows.chunks(BATCH * nf) {
                probs.resize(batch.len() / nf, 0.0);
                model.score(batch, &mut probs)?;
                for p in &probs {
                    writeln!(out, "{p}").map_err(|e| e.to_string())?;
                }
            }
            out.flush().map_err(|e| e.to_string())
        }
        Some(total) => {
            // Batches cycle over the file's rows, as check_onnx.py --bench does.
            let batches: Vec<&[f32]> = rows.chunks(BATCH * nf).collect();
            let start = std::time::Instant::now();
            let mut done = 0;
            let mut checksum = 0f64;
            for batch in batches.iter().cycle() {
                if done >= total {
                    break;
                }
                let k = batch.len() / nf;
                probs.resize(k, 0.0);
                model.score(batch, &mut probs)?;
                checksum += f64::from(probs.first().copied().unwrap_or(0.0));
                done += k;
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "botd {}: {done} rows in {secs:.3} s = {:.0} rows/s (checksum {checksum:.3})",
                model.name,
                done as f64 / secs
            );
            Ok(())
        }
    }
}

fn window_config(
    window: Option<f64>,
    overlap: Option<f64>,
) -> Result<Option<WindowConfig>, String> {
    match window {
        None => Ok(None),
        Some(0.0) => Ok(None),
        Some(len) => {
            let overlap = overlap.unwrap_or(len / 2.0);
            WindowConfig::from_secs(len, overlap).map(Some).ok_or_else(|| {
                format!(
                    "--window {len} --overlap {overlap}: the window must be positive and the overlap shorter than it"
                )
            })
        }
    }
}

fn features(args: FeaturesArgs) -> Result<(), String> {
    let schema = crate::features::schema_by_name(&args.schema).ok_or_else(|| {
        format!(
            "--schema {}: botd computes argus, ctu and proto",
            args.schema
        )
    })?;
    let cfg = EngineConfig {
        window: window_config(Some(args.window), args.overlap)?,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(cfg);
    let mut rows = crate::features::FeatureRows::new(schema);
    let read_result = replay(&args.captures, &mut engine, &mut rows);
    engine.finish(&mut rows);
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path).map_err(|e| format!("{}: cannot create: {e}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    let write = |out: &mut BufWriter<Box<dyn Write>>| -> io::Result<()> {
        writeln!(out, "# {}", schema.features.join(","))?;
        for row in rows.rows.chunks(schema.len()) {
            let mut first = true;
            for v in row {
                if !first {
                    out.write_all(b",")?;
                }
                first = false;
                // Shortest text that reads back as the same f32.
                write!(out, "{v}")?;
            }
            out.write_all(b"\n")?;
        }
        out.flush()
    };
    match write(&mut out) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        Err(e) => return Err(format!("writing features: {e}")),
    }
    read_result
}

/// `botd __check-model`, for `crate::model::check_in_child`, which reads a clean error from the
/// exit status 1 and stderr (the message alone), and a malformed model from death by a signal:
/// so a panic aborts here in every build, as it does in one without unwinding. An abort is an
/// expected answer here: no core file for it.
fn check_model(file: &std::path::Path) -> Result<(), String> {
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
    if let Err(e) = crate::model::check_model_file(file) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    Ok(())
}

fn intel(args: IntelArgs) -> Result<(), String> {
    let cfg = crate::pipeline::load_config(args.config.as_deref())?;
    let dir = match args.dir.as_deref().or(cfg.intel.dir()) {
        Some(d) => d.to_path_buf(),
        None => return Err("no feed folder: give --dir or set [intel] dir".into()),
    };
    let limits = crate::intel::IntelLimits {
        max_entries: cfg.intel.max_entries,
        max_feeds: cfg.intel.max_feeds,
    };
    let reports = crate::intel::IntelSet::inspect_dir(&dir, &limits).map_err(|e| e.to_string())?;
    let mut broken = 0;
    for r in &reports {
        match r {
            Ok(feed) => println!("{feed}"),
            Err(e) => {
                broken += 1;
                println!("BROKEN {e}");
            }
        }
    }
    // The whole set as the sensor would load it: limits over all feeds, memory held.
    match crate::intel::IntelSet::load_dir(&dir, &limits) {
        Ok((set, _)) => println!(
            "{} feeds, {} entries, {} KiB held",
            set.feeds().len(),
            set.entries(),
            set.memory_bytes() / 1024
        ),
        Err(e) => {
            println!("not loadable as a whole: {e}");
            broken = broken.max(1);
        }
    }
    if broken > 0 {
        return Err(format!("{}: {broken} broken feed(s)", dir.display()));
    }
    Ok(())
}

fn models(args: ModelsArgs) -> Result<(), String> {
    let loaded = crate::model::load_dir(&args.dir)?;
    if loaded.is_empty() {
        return Err(format!("{}: no *.onnx models", args.dir.display()));
    }
    let mut invalid = 0;
    for result in &loaded {
        match result {
            Ok(m) => {
                let meta = |k: &str| m.metadata.get(k).map_or("-", String::as_str);
                println!("{}", m.path.display());
                println!(
                    "  schema {} v{} ({}), {} features",
                    m.schema.name,
                    meta("botd.schema_version"),
                    m.schema.hash(),
                    m.schema.len()
                );
                match m.trees() {
                    Some(t) => println!("  forest: {t} trees, scored by botd's forest evaluator"),
                    None => println!("  graph scored by tract"),
                }
                println!(
                    "  threshold {}, window {} s / overlap {} s, trained {}",
                    m.threshold,
                    meta("botd.window_secs"),
                    meta("botd.overlap_secs"),
                    meta("botd.trained_at")
                );
                println!("  metrics {}", meta("botd.metrics"));
            }
            Err(e) => {
                invalid += 1;
                println!("{}", e.path.display());
                println!("  INVALID: {}", e.what);
            }
        }
    }
    if invalid > 0 {
        return Err(format!("{invalid} of {} models invalid", loaded.len()));
    }
    Ok(())
}

fn flows(args: FlowsArgs) -> Result<(), String> {
    let window = window_config(args.window, args.overlap)?;
    let cfg = EngineConfig {
        flow_capacity: args.flow_capacity,
        flow_index: args.flow_index,
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
    // FlowWriter hands its records over in large batches: no second buffer in between.
    let mut writer = FlowWriter::new(out, format, window.is_some())
        .with_app_columns(args.app)
        .with_community_id_seed(args.community_id_seed);
    let mut engine = Engine::new(cfg);
    let read_result = replay(&args.captures, &mut engine, &mut writer);
    engine.finish(&mut writer);
    let records = writer.records;
    match writer.finish() {
        Ok(_) => {}
        // A closed pipe (`botd flows x.pcap | head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        Err(e) => return Err(format!("writing flows: {e}")),
    }
    report(&engine, records);
    read_result
}

/// Feeds every frame of the captures to the engine. A read error stops the input but what was
/// read is still processed; the error is returned after the engine finishes. Frames go in with
/// [`Engine::on_frame_deferred`]: the caller's `engine.finish` (or any other engine call)
/// processes the last few.
pub fn replay(
    paths: &[PathBuf],
    engine: &mut Engine,
    sink: &mut impl FlowSink,
) -> Result<(), String> {
    let mut capture = MergedCapture::open(paths).map_err(|e| e.to_string())?;
    let result = loop {
        match capture.next_frame() {
            Ok(Some(frame)) => {
                engine.on_frame_deferred(frame.ts_ns, frame.link, frame.data, frame.orig_len, sink);
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
    let unparsed: Vec<String> = c
        .unparsed_by_reason()
        .filter(|&(_, n)| n > 0)
        .map(|(e, n)| format!("{}={n}", e.name()))
        .collect();
    if !unparsed.is_empty() {
        line.push_str(&format!("; not parsed: {}", unparsed.join(" ")));
    }
    if c.out_of_order > 0 {
        line.push_str(&format!("; {} out-of-order timestamps", c.out_of_order));
    }
    eprintln!("{line}");
}
