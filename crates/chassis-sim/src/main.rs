//! `chassis-sim`: run one reference chassis (see `chassis_sim::cli`).

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "chassis_sim=info".into()))
        .with_writer(std::io::stderr)
        .init();
    chassis_sim::cli::run(chassis_sim::cli::Args::parse()).await
}
