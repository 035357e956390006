//! The `switchboard` command, built with this crate so the suite can start real processes
//! (`CARGO_BIN_EXE_switchboard-process`): the same `main` as the product's binary, with the
//! business clock of `SWITCHBOARD_TEST_BUSINESS_CLOCK` (RFC 3339) when it is set, as the
//! suite's in-process apps have theirs (see `switchboard_tests::lawful_hour_today`).

use switchboard_api::startup::Overrides;
use switchboard_workflows::policy::BusinessClock;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let business_clock = std::env::var(switchboard_tests::children::BUSINESS_CLOCK_VAR)
        .ok()
        .map_or_else(BusinessClock::system, |at| {
            BusinessClock::starting_at(
                at.parse()
                    .expect("SWITCHBOARD_TEST_BUSINESS_CLOCK is an RFC 3339 instant"),
            )
        });
    switchboard_cli::run_with(Overrides {
        business_clock,
        ..Overrides::default()
    })
    .await
}
