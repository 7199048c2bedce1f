//! The `switchboard` binary: parses the command line and runs the server.

use std::io::{BufRead, Write};

use clap::{CommandFactory, Parser};
use server::{
    app, auth,
    cli::{CheckArgs, Cli, Command},
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
    match cli.command {
        Some(Command::Check(args)) => return check(args),
        Some(Command::Join(args)) => {
            return match server::client::join::run(args).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("switchboard join: {error}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        Some(Command::Send(args)) => return server::client::trigger::send(args).await,
        Some(Command::Agents(args)) => return server::client::trigger::agents(args).await,
        Some(Command::NewFilter(args)) => {
            return match server::scaffold::run(&args) {
                Ok(created) => {
                    println!("{}", server::scaffold::next_steps(&args.name, &created));
                    std::process::ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("switchboard new-filter: {error}");
                    std::process::ExitCode::from(2)
                }
            };
        }
        Some(Command::Completions { shell }) => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "switchboard", &mut std::io::stdout());
            return std::process::ExitCode::SUCCESS;
        }
        Some(Command::HashToken) | None => {}
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

/// `switchboard check`: 0 when the chain meets the thresholds, 1 when it
/// misses one, 2 when the chain or the input cannot be used.
fn check(args: CheckArgs) -> std::process::ExitCode {
    // The report owns stdout (it may be JSON); logs go to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let owners = server::check::Owners::new(args.categories.clone());
    let report =
        match server::check::resolve_chain(&args.plugins, args.chain.as_deref()).and_then(|chain| {
            server::check::run(
                &args.plugins,
                chain,
                &args.input,
                args.max_message_bytes,
                &owners,
            )
        }) {
            Ok(report) => report,
            Err(error) => {
                eprintln!("switchboard check: {error}");
                return std::process::ExitCode::from(2);
            }
        };
    let mut out = std::io::stdout().lock();
    let printed = if args.json {
        serde_json::to_writer_pretty(&mut out, &report.summary)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        server::check::print_human(
            &report,
            args.verbose,
            &mut out,
            &args.input.display().to_string(),
        )
    };
    if let Err(error) = printed {
        eprintln!("switchboard check: cannot print the report: {error}");
        return std::process::ExitCode::from(2);
    }
    let gate = args.gate.as_str();
    if gate != "chain" && !report.summary.order.iter().any(|name| name == gate) {
        eprintln!(
            "switchboard check: --gate {gate} names no filter of the chain ({}); use `chain` or one of those",
            report.summary.order.join(", ")
        );
        return std::process::ExitCode::from(2);
    }
    let gated = report
        .summary
        .quality
        .as_ref()
        .and_then(|q| q.get(gate))
        .cloned()
        .unwrap_or_default();
    let mut failed = false;
    if let Some(min) = args.min_recall {
        match gated.recall {
            Some(recall) if recall >= min => {}
            Some(recall) => {
                eprintln!(
                    "switchboard check: {gate} recall {recall:.3} is below the required {min}"
                );
                failed = true;
            }
            None => {
                eprintln!(
                    "switchboard check: --min-recall needs lines labelled 1, and {} has none",
                    args.input.display()
                );
                failed = true;
            }
        }
    }
    if let Some(max) = args.max_false_positive_rate {
        match gated.false_positive_rate {
            Some(rate) if rate <= max => {}
            Some(rate) => {
                eprintln!(
                    "switchboard check: {gate} false-positive rate {rate:.3} is above the allowed {max}"
                );
                failed = true;
            }
            None => {
                eprintln!(
                    "switchboard check: --max-false-positive-rate needs lines labelled 0, and {} has none",
                    args.input.display()
                );
                failed = true;
            }
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
