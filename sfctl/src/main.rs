//! `sfctl`: see `sfctl --help` and README "Operations".

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match sfctl::run(sfctl::Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sfctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
