//! The dashboard in headless Chromium: a finished run shows in the runs list and its timeline.
//!
//! Skipped when Chromium is not installed, unless `SWITCHBOARD_BROWSER_TESTS=required` (as in
//! `.ci/run`, which installs it).

use std::time::Duration;

use serde_json::json;
use switchboard_tests::*;

/// Renders `url` in headless Chromium (scripts run) and returns the resulting DOM.
async fn render(url: String) -> Option<String> {
    let chromium = ["chromium", "chromium-browser"].into_iter().find(|c| {
        std::process::Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(chromium) = chromium else {
        let required = std::env::var("SWITCHBOARD_BROWSER_TESTS").is_ok_and(|v| v == "required");
        assert!(!required, "Chromium is required but not installed");
        eprintln!("skipped: chromium is not installed");
        return None;
    };
    let profile =
        std::env::temp_dir().join(format!("sb-chromium-{}", uuid::Uuid::now_v7().simple()));
    let output = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=8000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("chromium finished")
        .unwrap();
    let _ = std::fs::remove_dir_all(profile);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_runs_and_the_step_timeline() {
    let app = spawn_app(&Backend::Sqlite).await;
    let (_, run_id) = app
        .create_lead(json!({"outcome": "interested", "webhook_delay_ms": 50}))
        .await;
    app.wait_for_status(&run_id, "succeeded", Duration::from_secs(30))
        .await;

    let Some(list) = render(format!("{}/", app.address)).await else {
        return;
    };
    assert!(
        list.contains(&format!("data-run-id=\"{run_id}\"")),
        "run missing from the runs page:\n{list}"
    );

    let page = render(format!("{}/runs/{run_id}", app.address))
        .await
        .unwrap();
    assert!(page.contains("id=\"run-status\""), "{page}");
    for step in LEAD_CALL_STEPS {
        assert!(
            page.contains(&format!("data-step=\"{step}\"")),
            "step {step} missing from the timeline:\n{page}"
        );
    }
    assert!(page.contains("data-status=\"succeeded\""), "{page}");
}
