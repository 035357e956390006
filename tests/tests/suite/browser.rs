//! The dashboard in headless Chromium, driven over WebDriver: a lead created through the API
//! appears and advances to `succeeded` without a reload; its run page shows the transcript and
//! the score; a waiting run is cancelled from its page; a candidate script is backtested from
//! the business page; pages fit a phone's width. Screenshots of the main pages are saved (see
//! `Browser::screenshot`).
//!
//! Skipped when Chromium is not installed, unless `SWITCHBOARD_BROWSER_TESTS=required` (as in
//! `.ci/run`, which installs it).

use std::time::Duration;

use crate::backtest::{scored_leads, scoring};
use serde_json::json;
use switchboard_tests::browser::Browser;
use switchboard_tests::*;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_runs_live_and_acts_on_them() {
    let app = spawn_app(&Backend::Sqlite).await;
    let Some(browser) = Browser::start(1280, 900).await else {
        return;
    };
    browser.open(&format!("{}/", app.address)).await;

    // Not signed in, the dashboard asks for a key; a wrong one is refused, the operator's works.
    browser
        .wait_for(
            "the sign-in form",
            "return document.querySelector('#sign-in-view:not([hidden])') !== null;",
            T,
        )
        .await;
    browser
        .eval(
            "document.querySelector('#sign-in-key').value = 'sbk_not-a-real-key'; \
             document.querySelector('#sign-in-submit').click(); return true;",
        )
        .await;
    browser
        .wait_for(
            "the wrong key refused",
            "return document.querySelector('#sign-in-error:not([hidden])') !== null;",
            T,
        )
        .await;
    browser.sign_in(OPERATOR_KEY).await;
    browser
        .wait_for(
            "the runs page",
            "return document.querySelector('#runs-view:not([hidden])') !== null;",
            T,
        )
        .await;
    let who = browser
        .eval("return document.querySelector('#session-who').innerText;")
        .await;
    assert_eq!(who, "Operator");
    // The session cookie is out of the page's reach (HttpOnly).
    let cookies = browser.eval("return document.cookie;").await;
    assert!(
        !cookies
            .as_str()
            .unwrap_or("")
            .contains("switchboard_session"),
        "{cookies}"
    );

    // A lead arrives through the API while the page is open: its row appears and advances.
    let (_, run_id) = app
        .create_lead(json!({"outcome": "interested", "webhook_delay_ms": 300}))
        .await;
    let row = format!("tr[data-run-id=\"{run_id}\"]");
    browser
        .wait_for(
            "the new run's row",
            &format!("return document.querySelector('{row}') !== null;"),
            T,
        )
        .await;
    browser
        .wait_for(
            "the row to show succeeded",
            &format!("const r = document.querySelector('{row}'); return r && r.getAttribute('data-status') === 'succeeded';"),
            T,
        )
        .await;
    let chips = browser
        .wait_for(
            "runs counted per status",
            "const c = document.querySelectorAll('#status-counts li'); return c.length === 6 ? document.querySelector('#status-counts').innerText : null;",
            T,
        )
        .await;
    assert!(chips.as_str().unwrap().contains("succeeded"), "{chips}");
    // The row names the lead as a person looks for it: name and masked phone.
    let who = browser
        .eval(&format!(
            "const l = document.querySelector('{row} .lead-link'); return l ? l.innerText : null;"
        ))
        .await;
    assert_eq!(who, json!("Ada Lovelace +…71"), "{who}");
    browser.screenshot("runs").await;

    // Searching by the lead's name filters the rows (and the URL keeps the filter).
    let search = |text: &str| {
        format!(
            "const i = document.querySelector('#filter-q'); i.value = {}; \
             i.dispatchEvent(new Event('input', {{ bubbles: true }})); return true;",
            json!(text)
        )
    };
    browser.eval(&search("nobody-like-this")).await;
    browser
        .wait_for(
            "no rows for an unknown lead",
            &format!(
                "return document.querySelector('{row}') === null && location.search.includes('q=');"
            ),
            T,
        )
        .await;
    browser.eval(&search("ada")).await;
    browser
        .wait_for(
            "the row back",
            &format!("return document.querySelector('{row}') !== null;"),
            T,
        )
        .await;

    // The run page: the transcript as a conversation and the score with its reasons.
    browser
        .open(&format!("{}/runs/{run_id}", app.address))
        .await;
    let transcript = browser
        .wait_for(
            "the transcript",
            "const t = document.querySelectorAll('#transcript li'); return t.length > 1 ? document.querySelector('#transcript').innerText : null;",
            T,
        )
        .await;
    let transcript = transcript.as_str().unwrap();
    assert!(
        transcript.contains("Agent") && transcript.contains("Lead"),
        "{transcript}"
    );
    let score = browser
        .wait_for(
            "the score",
            "return document.querySelector('#score-value').textContent;",
            T,
        )
        .await;
    assert!(score.as_str().unwrap().ends_with("/ 100"), "{score}");
    let reasons = browser
        .eval("return document.querySelectorAll('#score-reasons li').length;")
        .await;
    assert!(reasons.as_u64().unwrap() >= 1, "score reasons shown");
    let summary = browser
        .eval("return document.querySelector('#analysis-summary').textContent;")
        .await;
    assert!(
        summary.as_str().is_some_and(|s| s.len() > 10),
        "analysis summary: {summary}"
    );
    browser.screenshot("run").await;

    // A run waiting on its call's webhook is cancelled from its page.
    let (_, waiting_id) = app
        .create_lead(json!({"outcome": "interested", "deliver_webhook": false}))
        .await;
    app.wait_for_call_wait(&waiting_id).await;
    browser
        .open(&format!("{}/runs/{waiting_id}", app.address))
        .await;
    browser
        .wait_for(
            "the cancel button",
            "const b = document.querySelector('#cancel-button'); return b && !b.hidden && document.querySelector('#run-status').getAttribute('data-status') === 'waiting';",
            T,
        )
        .await;
    // The lead's compliance facts: where its calling hours are checked, consent, the list.
    let local = browser
        .wait_for(
            "the lead's local time",
            "const t = document.querySelector('#run-lead-local').textContent; return t.includes('America/') ? t : null;",
            T,
        )
        .await;
    assert!(local.as_str().unwrap().contains("US-CA"), "{local}");
    let dnc = browser
        .eval("return document.querySelector('#run-lead-dnc').textContent;")
        .await;
    assert_eq!(dnc, "not listed");
    browser.screenshot("run-waiting").await;
    browser.click("#cancel-button").await;
    browser
        .wait_for(
            "the page to show cancelled",
            "return document.querySelector('#run-status').getAttribute('data-status') === 'cancelled';",
            T,
        )
        .await;
    assert_eq!(app.run(&waiting_id).await["status"], "cancelled");

    // The overview: the analytics' funnel, outcomes, score distribution and breakdown by agent,
    // campaign and objective, drawn from the runs so far.
    browser.open(&format!("{}/overview", app.address)).await;
    let funnel = browser
        .wait_for(
            "the funnel chart",
            "const t = document.querySelector('#chart-funnel'); return t && t.querySelectorAll('rect').length === 5 ? t.textContent : null;",
            T,
        )
        .await;
    assert!(funnel.as_str().unwrap().contains("connected"), "{funnel}");
    let outcomes = browser
        .eval("return document.querySelector('#chart-outcomes').textContent;")
        .await;
    assert!(
        outcomes.as_str().unwrap().contains("handed_off"),
        "{outcomes}"
    );
    let by_agent = browser
        .wait_for(
            "the breakdown by agent",
            "const t = document.querySelector('#analytics-table tbody'); return t && t.textContent.includes('agent') ? t.textContent : null;",
            T,
        )
        .await;
    assert!(by_agent.as_str().unwrap().contains("riley"), "{by_agent}");
    browser.screenshot("overview").await;

    // Schedules: realty's cron campaign, paused from the page (an action with the CSRF token).
    browser.open(&format!("{}/schedules", app.address)).await;
    let row = "tr[data-schedule='realty/re-engage-cold']";
    browser
        .wait_for(
            "realty's schedule",
            &format!("const b = document.querySelector(\"{row} button\"); return b && b.textContent === 'Pause';"),
            T,
        )
        .await;
    browser.screenshot("schedules").await;
    browser.click(&format!("{row} button")).await;
    browser
        .wait_for(
            "the schedule shown paused",
            &format!("const b = document.querySelector(\"{row} button\"); return b && b.textContent === 'Resume';"),
            T,
        )
        .await;
    let (_, listed) = app.get("/api/v1/schedules?business=realty").await;
    assert_eq!(listed["schedules"][0]["paused"], true, "{listed}");

    // Businesses: the list, then one business' highlighted script; a broken change is
    // validated and its error is shown at its line.
    browser.open(&format!("{}/businesses", app.address)).await;
    let listed = browser
        .wait_for(
            "the businesses",
            "const l = document.querySelectorAll('#business-list li'); return l.length >= 4 ? l.length : null;",
            T,
        )
        .await;
    assert!(listed.as_u64().unwrap() >= 4);
    browser
        .open(&format!("{}/businesses/dental", app.address))
        .await;
    browser
        .wait_for(
            "the highlighted script",
            "return document.querySelectorAll('#script-source .tok-keyword').length > 3;",
            T,
        )
        .await;
    let terms = browser
        .eval("return document.querySelector('#business-terms').innerText;")
        .await;
    assert!(terms.as_str().unwrap().contains("patient"), "{terms}");
    browser
        .eval(
            "const e = document.querySelector('#script-editor'); \
             e.value = 'fn route(lead) {\\n    let x = ;\\n}'; return true;",
        )
        .await;
    browser.click("#validate-button").await;
    let marked = browser
        .wait_for(
            "the error at its line",
            "const l = document.querySelector('#validate-lines .code-line.has-error'); return l ? l.getAttribute('data-line') : null;",
            T,
        )
        .await;
    assert_eq!(marked, "2", "the error is on line 2");
    let errors = browser
        .eval("return document.querySelector('#validate-errors').innerText;")
        .await;
    assert!(errors.as_str().unwrap().contains("line 2"), "{errors}");

    // The configuration is edited on the same page: a refusal names the field and saves
    // nothing; a valid change becomes version 2.
    browser
        .wait_for(
            "the configuration",
            "return document.querySelector('#config-editor').value.includes('\"timezone\"');",
            T,
        )
        .await;
    let edit = |change: &str| {
        format!(
            "const e = document.querySelector('#config-editor'); const c = JSON.parse(e.value); \
             {change}; e.value = JSON.stringify(c, null, 2); return true;"
        )
    };
    browser
        .eval(&edit("c.calling.legal_hours = '07:00-21:00'"))
        .await;
    browser.click("#config-save").await;
    let refused = browser
        .wait_for(
            "the refusal",
            "const t = document.querySelector('#config-summary').innerText; return t.startsWith('Not saved') ? t : null;",
            T,
        )
        .await;
    assert!(
        refused.as_str().unwrap().contains("calling.legal_hours"),
        "{refused}"
    );
    browser
        .eval(&edit("c.calling.legal_hours = '09:00-20:00'"))
        .await;
    browser.click("#config-save").await;
    browser
        .wait_for(
            "version 2",
            "return document.querySelector('#config-summary').innerText === 'Saved as version 2.' && document.querySelectorAll('#config-versions li').length === 2;",
            T,
        )
        .await;
    let (_, config) = app.get("/api/v1/businesses/dental/config").await;
    assert_eq!(config["config"]["calling"]["legal_hours"], "09:00-20:00");

    // The do-not-call list: a number added, shown, and taken off again.
    browser
        .eval("document.querySelector('#dnc-phones').value = '+13125552699'; return true;")
        .await;
    browser.click("#dnc-add").await;
    browser
        .wait_for(
            "the listed number",
            "const l = document.querySelectorAll('#dnc-list li'); return l.length === 1 && l[0].textContent.includes('+13125552699');",
            T,
        )
        .await;
    let (_, check) = app
        .get("/api/v1/businesses/dental/do-not-call/+13125552699")
        .await;
    assert_eq!(check["listed"], true, "{check}");
    browser.click("#dnc-list li button").await;
    browser
        .wait_for(
            "the number off the list",
            "return document.querySelectorAll('#dnc-list li').length === 0 && document.querySelector('#dnc-summary').textContent.includes('off the list');",
            T,
        )
        .await;
    browser.screenshot("business").await;

    // The apalis queue view, one click away, lists the engine's step queue.
    browser.click("#nav-queue").await;
    browser
        .wait_for(
            "the queue view",
            "return document.title.includes('Apalis Board') && document.body.innerText.length > 0;",
            T,
        )
        .await;
    let board = app.queue_board_url().await;
    browser.open(&format!("{board}queues")).await;
    browser
        .wait_for(
            "the step queue in the queue view",
            "return document.body.innerText.includes('switchboard.steps');",
            T,
        )
        .await;
    // Its status light follows our log stream.
    browser
        .wait_for(
            "the queue view's status",
            "return document.body.innerText.includes('All systems are operational');",
            T,
        )
        .await;
    browser.screenshot("queue").await;

    // A signed webhook that cannot be processed shows on the dead letters page; replaying it
    // (an action, with the session's CSRF token) fails again and says why.
    let now = chrono::Utc::now().timestamp();
    let no_call = json!({"type": "post_call_transcription", "event_timestamp": now,
        "data": {"agent_id": "a", "status": "done"}});
    let (status, _) = app.post_webhook(&no_call, WEBHOOK_SECRET, now).await;
    assert_eq!(status, 400);
    browser.open(&format!("{}/dead-letters", app.address)).await;
    browser
        .wait_for(
            "the dead letter",
            "return document.querySelector('li.dead-letter button') !== null;",
            T,
        )
        .await;
    browser.screenshot("dead-letters").await;
    browser.click("li.dead-letter button").await;
    browser
        .wait_for(
            "the failed replay explained",
            "const b = document.querySelector('#error-banner'); \
             return !b.hidden && b.innerText.includes('failed again');",
            T,
        )
        .await;

    // Phone width: the runs page fits without sideways scrolling.
    browser.close().await;
    let Some(phone) = Browser::start(390, 844).await else {
        return;
    };
    phone.open(&format!("{}/", app.address)).await;
    phone.sign_in(OPERATOR_KEY).await;
    phone
        .wait_for(
            "rows on a phone",
            &format!("return document.querySelector('{row}') !== null;"),
            T,
        )
        .await;
    let overflow = "return document.documentElement.scrollWidth - window.innerWidth;";
    let sideways = phone.eval(overflow).await;
    assert!(
        sideways.as_i64().unwrap() <= 1,
        "runs page overflows by {sideways}px"
    );
    phone.screenshot("runs-phone").await;
    // The other pages fit too (wide code and tables scroll inside their own box).
    for (page, ready) in [
        (format!("/runs/{run_id}"), "#transcript li"),
        ("/overview".to_owned(), "#chart-funnel rect"),
        ("/schedules".to_owned(), "#schedules-table tbody tr"),
        (
            "/businesses/dental".to_owned(),
            "#script-source .tok-keyword",
        ),
    ] {
        phone.open(&format!("{}{page}", app.address)).await;
        phone
            .wait_for(
                &format!("{page} on a phone"),
                &format!("return document.querySelector('{ready}') !== null;"),
                T,
            )
            .await;
        let sideways = phone.eval(overflow).await;
        let culprits = phone
            .eval(
                "return Array.from(document.querySelectorAll('body *')).filter(e => \
                 e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 8) \
                 .map(e => e.tagName + '#' + e.id + '.' + e.className).join(' ');",
            )
            .await;
        assert!(
            sideways.as_i64().unwrap() <= 1,
            "{page} overflows by {sideways}px on a phone: {culprits}"
        );
    }
    phone.close().await;
}

/// Puts `source` in the business page's script editor.
fn edit_script(source: &str) -> String {
    format!(
        "document.querySelector('#script-editor').value = {}; return true;",
        json!(source)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_business_page_backtests_a_candidate_script() {
    let app = spawn_app(&Backend::Sqlite).await;
    assert_eq!(app.put_script("demo", &scoring(70)).await.0, 200);
    // Five connected calls scored by the active version: 95, 85, 75 and 72 hot, 30 cold.
    let runs = scored_leads(&app, "demo", 2800, &[95, 75, 72, 85, 30]).await;
    let Some(browser) = Browser::start(1280, 900).await else {
        return;
    };
    browser
        .open(&format!("{}/businesses/demo", app.address))
        .await;
    browser.sign_in(OPERATOR_KEY).await;
    browser
        .wait_for(
            "the active script in the editor",
            "return document.querySelector('#script-editor').value.includes('parse_int');",
            T,
        )
        .await;

    // A candidate that does not compile is refused, its error shown at its line as validate does.
    browser
        .eval(&edit_script("fn score(lead, analysis) {\n    let x = ;\n}"))
        .await;
    browser.click("#backtest-button").await;
    let refused = browser
        .wait_for(
            "the refusal",
            "const m = document.querySelector('#backtest-message'); \
             return !m.hidden && m.textContent.includes('not valid') ? m.textContent : null;",
            T,
        )
        .await;
    assert!(
        refused.as_str().unwrap().starts_with("Not run"),
        "{refused}"
    );
    let marked = browser
        .eval(
            "const l = document.querySelector('#backtest-lines .code-line.has-error'); \
             return l ? l.getAttribute('data-line') : null;",
        )
        .await;
    assert_eq!(marked, "2", "the error is on line 2");
    let problems = browser
        .eval("return document.querySelector('#backtest-problems').innerText;")
        .await;
    assert!(problems.as_str().unwrap().contains("line 2"), "{problems}");

    // A higher hot threshold: replayed, followed to its end, and its report drawn.
    browser.eval(&edit_script(&scoring(80))).await;
    browser.click("#backtest-button").await;
    browser
        .wait_for(
            "the backtest's report",
            "return !document.querySelector('#backtest-report').hidden && \
             document.querySelector('#backtest-status').textContent === 'done';",
            Duration::from_secs(60),
        )
        .await;
    let message = browser
        .eval("return document.querySelector('#backtest-message').hidden;")
        .await;
    assert_eq!(message, true, "no error shown once done");
    // Its progress reads `done / total`, all of it replayed.
    let progress = browser
        .eval(
            "const m = document.querySelector('#backtest-progress-text').textContent \
             .match(/(\\d+) \\/ (\\d+)$/); return m ? [Number(m[1]), Number(m[2])] : null;",
        )
        .await;
    assert!(progress[1].as_u64().unwrap() >= 5, "{progress}");
    assert_eq!(progress[0], progress[1], "{progress}");
    let summary = browser
        .eval("return document.querySelector('#backtest-summary').textContent;")
        .await;
    assert!(
        summary.as_str().unwrap().contains(": 2 changed,"),
        "{summary}"
    );

    // The tag transitions: every pair, the move highlighted.
    let tags = browser
        .eval(
            "return Array.from(document.querySelectorAll('#backtest-tags tbody tr')).map(r => \
             [r.children[0].textContent, r.children[1].textContent, r.classList.contains('changed')]);",
        )
        .await;
    assert_eq!(
        tags,
        json!([
            ["cold → cold", "1", false],
            ["hot → hot", "2", false],
            ["hot → warm", "2", true],
        ]),
        "{tags}"
    );

    // The histogram: ten buckets, two bars each, drawn to scale (the same scores before and
    // after: 72 and 75 in 70–79, the tallest).
    let histogram = browser
        .eval(
            "const b = Array.from(document.querySelectorAll('#backtest-histogram .hist-bucket')); \
             return b.map(d => { const bars = d.querySelectorAll('.hist-bar'); \
             return [d.getAttribute('data-before'), d.getAttribute('data-after'), bars.length, \
             Math.round(bars[0].getBoundingClientRect().height), \
             Math.round(bars[1].getBoundingClientRect().height)]; });",
        )
        .await;
    let buckets = histogram.as_array().unwrap();
    assert_eq!(buckets.len(), 10, "{histogram}");
    let counts: Vec<(&str, &str)> = buckets
        .iter()
        .map(|b| (b[0].as_str().unwrap(), b[1].as_str().unwrap()))
        .collect();
    let expected = ["0", "0", "0", "1", "0", "0", "0", "2", "1", "1"];
    assert_eq!(
        counts,
        expected.iter().map(|n| (*n, *n)).collect::<Vec<_>>(),
        "{histogram}"
    );
    for b in buckets {
        assert_eq!(b[2], 2, "two bars per bucket: {histogram}");
    }
    let tallest = &buckets[7];
    let one = &buckets[3];
    assert!(tallest[3].as_i64().unwrap() > 50, "{histogram}");
    assert_eq!(tallest[3], tallest[4], "{histogram}");
    assert!(
        (tallest[3].as_i64().unwrap() - 2 * one[3].as_i64().unwrap()).abs() <= 1,
        "bars to scale: {histogram}"
    );
    assert!(buckets[0][3].as_i64().unwrap() <= 1, "{histogram}");

    // The changed decisions: exactly the two moved leads, each linking to its run.
    let samples = browser
        .eval(
            "return Array.from(document.querySelectorAll('#backtest-samples tbody tr')).map(r => \
             [r.getAttribute('data-run-id'), r.getAttribute('data-hook'), r.children[2].textContent, \
             r.querySelector('a.run-link').getAttribute('href')]);",
        )
        .await;
    let mut samples: Vec<Vec<String>> = serde_json::from_value(samples).unwrap();
    samples.sort();
    let mut moved = vec![
        (runs[1].clone(), "75 hot → 75 warm"),
        (runs[2].clone(), "72 hot → 72 warm"),
    ];
    moved.sort();
    assert_eq!(samples.len(), 2, "{samples:?}");
    for (sample, (run, change)) in samples.iter().zip(&moved) {
        assert_eq!(sample[0], *run, "{samples:?}");
        assert_eq!(sample[1], "score", "{samples:?}");
        assert_eq!(sample[2], *change, "{samples:?}");
        assert_eq!(sample[3], format!("/runs/{run}"), "{samples:?}");
    }
    let errors = browser
        .eval(
            "return [document.querySelectorAll('#backtest-errors tbody tr').length, \
             document.querySelector('#backtest-errors-empty').hidden];",
        )
        .await;
    assert_eq!(errors, json!([0, false]), "no candidate error");
    browser
        .eval("document.querySelector('#backtest').scrollIntoView(); return true;")
        .await;
    browser.screenshot("backtest").await;
    browser
        .eval("document.querySelector('#backtest-samples').scrollIntoView(); return true;")
        .await;
    browser.screenshot("backtest-decisions").await;

    // A candidate that raises, with markup in its error: counted per hook, shown as text, and
    // linked to the first run it raised in.
    let hostile = "fn score(lead, analysis) { throw \"<img src=x onerror=window.pwned=1>\"; }\n";
    browser.eval(&edit_script(hostile)).await;
    browser.click("#backtest-button").await;
    let raised = browser
        .wait_for(
            "the candidate's errors",
            "const r = document.querySelectorAll('#backtest-errors tbody tr'); \
             return document.querySelector('#backtest-status').textContent === 'done' && r.length \
             ? Array.from(r).map(t => [t.children[0].textContent, t.children[1].textContent, \
             t.children[2].textContent, t.querySelector('a.run-link').getAttribute('href')]) : null;",
            Duration::from_secs(60),
        )
        .await;
    let raised: Vec<Vec<String>> = serde_json::from_value(raised).unwrap();
    assert_eq!(raised.len(), 1, "{raised:?}");
    let [hook, message, times, link] = &raised[0][..] else {
        panic!("{raised:?}")
    };
    assert_eq!(
        (hook.as_str(), times.as_str()),
        ("score", "5"),
        "{raised:?}"
    );
    assert!(
        message.contains("<img src=x onerror=window.pwned=1>"),
        "{raised:?}"
    );
    assert!(
        runs.iter().any(|r| *link == format!("/runs/{r}")),
        "{raised:?}"
    );
    let parsed = browser
        .eval(
            "return document.querySelectorAll('#backtest img').length + \
             (window.pwned === undefined ? 0 : 100);",
        )
        .await;
    assert_eq!(parsed, 0, "markup in an error is never parsed");

    // A changed decision's link opens its run.
    browser
        .click(&format!(
            "#backtest-samples tr[data-run-id='{}'] a.run-link",
            runs[1]
        ))
        .await;
    browser
        .wait_for(
            "the decision's run",
            &format!(
                "return location.pathname === '/runs/{0}' && \
                 document.querySelector('#run-id').textContent === '{0}';",
                runs[1]
            ),
            T,
        )
        .await;
    browser.close().await;

    // The report fits a phone's width (its tables become cards, the histogram narrows).
    let Some(phone) = Browser::start(390, 844).await else {
        return;
    };
    phone
        .open(&format!("{}/businesses/demo", app.address))
        .await;
    phone.sign_in(OPERATOR_KEY).await;
    phone
        .wait_for(
            "the editor on a phone",
            "return document.querySelector('#script-editor').value.includes('parse_int');",
            T,
        )
        .await;
    phone.eval(&edit_script(&scoring(80))).await;
    phone.click("#backtest-button").await;
    phone
        .wait_for(
            "the report on a phone",
            "return document.querySelector('#backtest-tags tr.changed') !== null;",
            Duration::from_secs(60),
        )
        .await;
    let sideways = phone
        .eval("return document.documentElement.scrollWidth - window.innerWidth;")
        .await;
    assert!(
        sideways.as_i64().unwrap() <= 1,
        "the backtest report overflows by {sideways}px on a phone"
    );
    phone
        .eval("document.querySelector('#backtest-histogram').scrollIntoView(); return true;")
        .await;
    phone.screenshot("backtest-phone").await;
    phone.close().await;
}
