//! The import structure: `botd analyze` (src/analyze.rs), `botd run` (src/live) and `botd
//! report` (src/report) are three front ends over one pipeline (src/pipeline.rs, the document in
//! src/document.rs); none of them reaches into another, so the offline and live paths are built
//! one way and can change apart.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file of `path` (a file, or a folder searched recursively).
fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    for entry in std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The modules of `crate` a source text names: `crate::NAME` paths, and names inside
/// `crate::{...}` groups.
fn crate_modules(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            names.extend(group.split(',').map(|n| ident(n.trim())));
        } else {
            names.push(ident(rest));
        }
    }
    names
}

#[test]
fn the_reader_sees_paths_and_groups() {
    assert_eq!(
        crate_modules("use crate::live::x; use crate::{report, pipeline::y}; crate::analyze::f()"),
        ["live", "report", "pipeline", "analyze"]
    );
}

#[test]
fn analyze_live_and_report_do_not_import_one_another() {
    let fronts = [
        ("analyze", "src/analyze.rs"),
        ("live", "src/live"),
        ("report", "src/report"),
    ];
    let mut checked = 0;
    for (me, path) in fronts {
        let mut files = Vec::new();
        rust_files(&root().join(path), &mut files);
        assert!(!files.is_empty(), "{path}: no sources");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for name in crate_modules(&text) {
                let other = fronts.iter().any(|&(m, _)| m == name && m != me);
                assert!(
                    !other,
                    "{} names crate::{name}: build it in src/pipeline.rs (or src/document.rs) \
                     and use it from there",
                    file.display()
                );
            }
            // Each front end builds its pipeline in one place.
            assert!(
                !text.contains("Detector::new("),
                "{} builds a Detector itself: use pipeline::detector",
                file.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "{checked} files");
}

/// Windows have one owner: the engine works out each window's index, place in time and storage
/// slot ([`botd::engine::WindowInfo`]) and hands them with every record and close; the detector,
/// the score cache and the live loop's reload generations use what it hands out. A module that
/// reads a window's length or step, or a window index modulo something, is a second owner that
/// can come to disagree with the engine.
#[test]
fn only_the_engine_works_out_windows() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut checked = 0;
    for file in files {
        let rel = file
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // The engine owns windows; the configuration builds their length and step.
        if rel == "src/engine.rs" || rel == "src/config.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for needle in [
            "step_ns",
            "length_ns",
            "concurrent()",
            "index %",
            "window %",
        ] {
            // `concurrent()` sizes the per-slot storage: only where the pipeline is built.
            if needle == "concurrent()" && rel == "src/pipeline.rs" {
                continue;
            }
            assert!(
                !text.contains(needle),
                "{rel} uses `{needle}`: take the window's index, slot or overlaps from the \
                 engine's WindowInfo instead of working them out again"
            );
        }
        checked += 1;
    }
    assert!(checked >= 30, "{checked} files");
}
