//! The `switchboard` binary; see [`switchboard_cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    switchboard_cli::run().await
}
