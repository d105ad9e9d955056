//! The `draft-publisher` binary: parse the command line, set up logging and
//! traces, hand over to the library, flush the traces.

use clap::Parser;
use draft_publisher::{config::Cli, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let telemetry = match telemetry::init(cli.log_format) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            tracing::error!("{error:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = draft_publisher::run(cli).await;
    telemetry.shutdown().await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            draft_publisher::audit::exit_code(&error)
        }
    }
}
