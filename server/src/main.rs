//! The `switchboard` binary: parses the command line and runs the server.

use std::io::BufRead;

use clap::Parser;
use server::{
    app, auth,
    cli::{Cli, Command},
};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(Command::HashToken) = cli.command {
        let mut token = String::new();
        if std::io::stdin().lock().read_line(&mut token).is_err() || token.trim().is_empty() {
            eprintln!(
                "switchboard: give the token on stdin, e.g. `echo $TOKEN | switchboard hash-token`"
            );
            return std::process::ExitCode::FAILURE;
        }
        println!("sha256 = \"{}\"", auth::hash_token(token.trim()));
        return std::process::ExitCode::SUCCESS;
    }
    app::init_tracing(cli.serve.log_format);
    match app::run(cli.serve).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One sentence on stderr, also when logs go to a JSON collector.
            eprintln!("switchboard: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
