//! `botd report`: the original detector's main window as one self-contained HTML page.
//!
//! The page lists the models and the home hosts (coloured by level, red first); for the host and
//! model picked it plots the host's predicted botnet flows and total flows per window, and its
//! score over time against the red / red_rising / yellow_clear thresholds; hovering or clicking a
//! window shows its evidence (models, counts, top peers). Everything is inlined (the vendored
//! uPlot library, its CSS and the data as JSON), and a Content-Security-Policy forbids any fetch,
//! so the file opens offline and cannot phone home.
//!
//! The data is the JSON document `botd analyze --json` writes (`hosts[]`, `models[]`,
//! `counters`), plus an optional `scoring` object with the thresholds. The live sensor writes the
//! same document to its state file ([`crate::document`]); `botd report --state FILE`
//! renders it.
//!
//! Vendored: `vendor/uPlot.iife.min.js` and `vendor/uPlot.min.css` are uPlot 1.6.32 (MIT, see
//! `vendor/uPlot.LICENSE` and `README.md` in this folder), unmodified from `npm pack uplot@1.6.32`.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use crate::config::{Config, NetworkConfig, ScoringConfig};
use crate::document::{scoring_json, state_document};
use crate::pipeline::{self, load_config, parse_home};

const TEMPLATE: &str = include_str!("page.html");
const APP_JS: &str = include_str!("app.js");
const UPLOT_JS: &str = include_str!("vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("vendor/uPlot.min.css");

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Configuration file (default: config/botd.toml when it exists, else built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Models folder; overrides `[models] dir`.
    #[arg(long, value_name = "DIR", conflicts_with = "state")]
    pub models: Option<PathBuf>,
    /// Home network prefixes, comma-separated; overrides the configuration.
    #[arg(
        long,
        value_name = "CIDR,...",
        value_delimiter = ',',
        conflicts_with = "state"
    )]
    pub home: Vec<String>,
    /// Render a running sensor's state file (`[state] file`) instead of analysing captures.
    #[arg(long, value_name = "FILE", conflicts_with = "captures")]
    pub state: Option<PathBuf>,
    /// The HTML page to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Captures, read as one stream (as `botd analyze` without --truth).
    #[arg(value_name = "CAPTURE", required_unless_present = "state")]
    pub captures: Vec<PathBuf>,
}

/// Runs `botd report`.
pub fn report(args: ReportArgs) -> Result<(), String> {
    let cfg = load_config(args.config.as_deref())?;
    let (mut doc, read_error) = match &args.state {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let doc: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            if !doc.get("hosts").is_some_and(serde_json::Value::is_array) {
                return Err(format!("{}: no \"hosts\" array", path.display()));
            }
            (doc, None)
        }
        None => {
            let home = if args.home.is_empty() {
                cfg.network.clone()
            } else {
                parse_home(&args.home)?
            };
            let models_dir = args.models.clone().unwrap_or(cfg.models.dir.clone());
            let (doc, read_error) = analyze_document(&cfg, home, &models_dir, &args.captures)?;
            (doc, read_error)
        }
    };
    if let Some(obj) = doc.as_object_mut() {
        obj.entry("scoring")
            .or_insert_with(|| scoring_json(&cfg.scoring));
        let source = match &args.state {
            Some(p) => format!("state {}", p.display()),
            None => args
                .captures
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        };
        obj.entry("source").or_insert(source.into());
    }
    let page = report_from_json(&doc);
    std::fs::write(&args.out, page).map_err(|e| format!("{}: {e}", args.out.display()))?;
    match read_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The page for a document of the shape `botd analyze --json` writes. A document without a
/// `scoring` object is drawn with the default thresholds.
pub fn report_from_json(doc: &serde_json::Value) -> String {
    let mut doc = doc.clone();
    if let Some(obj) = doc.as_object_mut() {
        obj.entry("scoring")
            .or_insert_with(|| scoring_json(&ScoringConfig::default()));
    }
    let data = script_safe_json(&doc);
    // One pass over the template, so a placeholder inside the inlined data is never expanded.
    let mut out = String::with_capacity(TEMPLATE.len() + UPLOT_JS.len() + data.len() + 16_384);
    let mut rest = TEMPLATE;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest.get(start..).and_then(|r| r.find("}}")) else {
            break;
        };
        out.push_str(rest.get(..start).unwrap_or_default());
        let key = rest.get(start + 2..start + len).unwrap_or_default();
        match key {
            "UPLOT_CSS" => out.push_str(UPLOT_CSS),
            "UPLOT_JS" => out.push_str(UPLOT_JS),
            "APP_JS" => out.push_str(APP_JS),
            "DATA" => out.push_str(&data),
            other => {
                out.push_str("{{");
                out.push_str(other);
                out.push_str("}}");
            }
        }
        rest = rest.get(start + len + 2..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// JSON that can sit inside a `<script>` element: `<`, `>` and `&` are escaped, so no string in
/// the data (a model name, a file path) can close the element or open a comment.
fn script_safe_json(doc: &serde_json::Value) -> String {
    let text = serde_json::to_string(doc).unwrap_or_else(|_| "{}".into());
    let mut out = String::with_capacity(text.len() + 64);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Runs the whole pipeline on the captures (one stream) and returns the document `botd analyze
/// --json` would write for them (hosts, models, counters, plus `scoring`), and the capture read
/// error, if any, after which what was read is still reported.
pub fn analyze_document(
    cfg: &Config,
    home: NetworkConfig,
    models_dir: &Path,
    captures: &[PathBuf],
) -> Result<(serde_json::Value, Option<String>), String> {
    let models = std::sync::Arc::new(pipeline::load_models(models_dir)?);
    let run = pipeline::run_captures(cfg, home, models, captures, None)?;
    let doc = state_document(&run.detector, &run.engine, &cfg.scoring);
    let doc = serde_json::to_value(doc).map_err(|e| e.to_string())?;
    Ok((doc, run.read_error))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_close_the_script_element() {
        let doc = serde_json::json!({"hosts": [], "models": [{"name": "</script><b>{{DATA}}"}]});
        let page = report_from_json(&doc);
        assert_eq!(page.matches("</script>").count(), 3, "{page}");
        assert!(!page.contains("<b>"));
        assert!(page.contains("{{DATA}}"));
    }
}
