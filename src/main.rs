//! The `chat-orchestrator` binary: parse the command line and run the subcommand (`serve` by
//! default). See `cli` for the subcommands.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = chat_orchestrator::cli::Cli::parse();
    match chat_orchestrator::cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            // for operators and stewards: one plain line, no backtrace
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
