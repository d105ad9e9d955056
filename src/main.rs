//! The `draft-publisher` binary: parse the command line, set up logging,
//! hand over to the library.

use clap::Parser;
use draft_publisher::{config::Cli, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match draft_publisher::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            draft_publisher::audit::exit_code(&error)
        }
    }
}
