//! Bytes as a TOML config: parsing and validation must never panic, and every error must name
//! the file, with a line:col inside the text when it has one.
#![no_main]

use botd::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::from_str(&text, "fuzz.toml") {
        Ok(cfg) => {
            let _ = cfg.validate();
            let _ = cfg.engine_config();
            let _ = cfg.summary();
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.contains("fuzz.toml"), "{shown}");
            let lines = text.split('\n').count();
            for p in &e.problems {
                if let Some((line, col)) = p.line_col {
                    assert!(line >= 1 && col >= 1);
                    assert!(line <= lines, "line {line} of {lines}");
                }
            }
        }
    }
});
