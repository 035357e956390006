//! The `switchboard` command, built with this crate so the suite can start real processes
//! (`CARGO_BIN_EXE_switchboard-process`): the same `main` as the product's binary.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    switchboard_cli::run().await
}
