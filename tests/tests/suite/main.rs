//! The integration suite: one binary. Every scenario runs on SQLite, and on PostgreSQL when
//! `TEST_DATABASE_URL` is set (otherwise the `postgres::` tests say they were skipped).

mod access;
mod agents;
mod analytics;
mod architecture;
mod backtest;
mod browser;
mod business_config;
mod call_windows;
mod chaos;
mod consent;
mod crash;
mod dead_letters;
mod do_not_call;
mod engine;
mod erasure;
mod events;
mod exports;
mod fairness;
mod hostile_text;
mod imports;
mod observability;
mod operator;
mod pipeline;
mod processes;
mod providers;
mod real_world;
mod retell;
mod schedules;
mod scripts;
mod usage;

/// Declares each scenario `async fn name(backend: Backend)` twice: in `sqlite::` and `postgres::`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(switchboard_tests::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    match switchboard_tests::Backend::postgres() {
                        Some(backend) => super::$name(backend).await,
                        None => eprintln!("skipped: TEST_DATABASE_URL is not set"),
                    }
                }
            )*
        }
    };
}
