#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = botd::cli::Cli::parse();
    match botd::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("botd: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
