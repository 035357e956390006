//! The `switchboard` binary; see [`switchboard_api::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    switchboard_api::cli::run().await
}
