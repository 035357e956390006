//! `switchboard scripts check|test|backtest|reference`: for authors working from files in
//! `scripts/`.

pub mod backtest;

use std::path::{Path, PathBuf};

use clap::Subcommand;
use switchboard_workflows::business::Definition;
use switchboard_workflows::scripting::host::ScriptHost;
use switchboard_workflows::scripting::host_api::reference_markdown;
use switchboard_workflows::scripting::sandbox::{Limits, ScriptError};
use switchboard_workflows::scripting::validate::{Report, validate};

/// What to do with a business folder's script.
#[derive(Subcommand, Debug)]
pub enum ScriptsCommand {
    /// Check a business folder (or its policy.rhai): business.toml parses, the script compiles
    /// and its entry points take the right parameters.
    Check {
        /// `scripts/<business>` or `scripts/<business>/policy.rhai`.
        path: PathBuf,
    },
    /// `check`, then run the script's `fn test_*()` functions (clock: Monday 2026-01-05 10:00
    /// in the business' timezone).
    Test {
        /// `scripts/<business>` or `scripts/<business>/policy.rhai`.
        path: PathBuf,
    },
    /// Replay the folder's script over the business' recorded decisions in a database (read
    /// only) and print what it would have decided differently: per hook, routing, scores and
    /// tags, follow-ups, its errors and changed decisions with their runs.
    Backtest(backtest::BacktestArgs),
    /// Print the entry points and host functions scripts can use.
    Reference,
}

/// Runs the command; the exit code is 0 when everything passed.
pub async fn run(command: ScriptsCommand) -> anyhow::Result<i32> {
    let host = ScriptHost::new(Limits::default(), 1)?;
    let (path, with_tests) = match command {
        ScriptsCommand::Reference => {
            print!("{}", reference_markdown(host.engine()));
            return Ok(0);
        }
        ScriptsCommand::Backtest(args) => {
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            return backtest::run(args, &mut out, &mut err).await;
        }
        ScriptsCommand::Check { path } => (path, false),
        ScriptsCommand::Test { path } => (path, true),
    };
    let folder = if path.is_dir() {
        path.clone()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let script_path = folder.join("policy.rhai");
    let definition = match Definition::load(&folder) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    let report = validate(&host, &definition.business, &definition.script).await;
    Ok(print_report(&script_path, &report, with_tests))
}

fn located(path: &Path, e: &ScriptError) -> String {
    format!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message)
}

fn print_report(path: &Path, report: &Report, with_tests: bool) -> i32 {
    for e in &report.errors {
        eprintln!("{}", located(path, e));
    }
    if !report.errors.is_empty() {
        return 1;
    }
    println!(
        "ok: {} (entry points: {})",
        path.display(),
        if report.hooks.is_empty() {
            "none, all defaults".to_owned()
        } else {
            report.hooks.join(", ")
        }
    );
    if !with_tests {
        return 0;
    }
    let mut failed = 0;
    for t in &report.tests {
        match &t.error {
            None => println!("test {} ... ok", t.name),
            Some(e) => {
                failed += 1;
                println!("test {} ... FAILED\n  {}", t.name, located(path, e));
            }
        }
    }
    println!("{} passed, {failed} failed", report.tests.len() - failed);
    i32::from(failed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(id: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts")
            .join(id)
    }

    #[tokio::test]
    async fn shipped_folders_check_and_test_clean() {
        for id in ["demo", "realty", "dental", "saas"] {
            let check = run(ScriptsCommand::Check { path: shipped(id) })
                .await
                .unwrap();
            let test = run(ScriptsCommand::Test {
                path: shipped(id).join("policy.rhai"),
            })
            .await
            .unwrap();
            assert_eq!((check, test), (0, 0), "{id}");
        }
    }

    #[tokio::test]
    async fn a_broken_folder_fails_with_exit_code_1() {
        let dir = std::env::temp_dir().join(format!("sb-scripts-{}", std::process::id()));
        let folder = dir.join("demo");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(
            shipped("demo").join("business.toml"),
            folder.join("business.toml"),
        )
        .unwrap();
        std::fs::write(
            folder.join("policy.rhai"),
            "fn score(lead, analysis) { #{ score: 1, tag: \"cold\" } }\nfn test_hot() { assert(score(sample_lead(), sample_analysis()).tag == \"hot\", \"hot\"); }\n",
        )
        .unwrap();
        assert_eq!(
            run(ScriptsCommand::Check {
                path: folder.clone()
            })
            .await
            .unwrap(),
            0
        );
        assert_eq!(
            run(ScriptsCommand::Test {
                path: folder.clone()
            })
            .await
            .unwrap(),
            1
        );
        std::fs::write(folder.join("policy.rhai"), "fn route(lead) {").unwrap();
        assert_eq!(
            run(ScriptsCommand::Check {
                path: folder.clone()
            })
            .await
            .unwrap(),
            1
        );
        // A broken business.toml fails on its own, with the script valid again.
        std::fs::write(
            folder.join("policy.rhai"),
            "fn route(lead) { #{ action: \"call_now\" } }",
        )
        .unwrap();
        std::fs::write(folder.join("business.toml"), "id = \"demo\"").unwrap();
        assert!(
            Definition::load(&folder)
                .unwrap_err()
                .contains("business.toml")
        );
        assert_eq!(
            run(ScriptsCommand::Check { path: folder }).await.unwrap(),
            1
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
