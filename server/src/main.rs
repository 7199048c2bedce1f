//! The `switchboard` binary: parses the command line and runs the server.

use clap::Parser;
use server::{app, cli::Cli};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    app::init_tracing(cli.log_format);
    match app::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One sentence on stderr, also when logs go to a JSON collector.
            eprintln!("switchboard: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
