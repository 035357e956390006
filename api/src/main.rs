//! The `switchboard` binary; see [`switchboard_api::cli`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchboard_api::cli::main().await
}
