//! Calling hours: a call is dialled only inside its business' hours, in the business' timezone,
//! and inside the legal calling window in the lead's own local time, checked again just before
//! dialling; the clock is set by the test and runs on from there.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use switchboard_tests::*;

const T: Duration = Duration::from_secs(30);

fn patient(name: &str, phone: &str) -> Value {
    json!({
        "business": "dental", "name": name, "phone": phone,
        "custom_fields": {"reason": "Cleaning"}, "sim": {"outcome": "interested"}
    })
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn a_call_that_waited_past_closing_time_is_not_dialled_until_the_next_opening(
    backend: Backend,
) {
    // Friday 2026-10-30, 16:50 in Chicago (CDT, UTC-5): ten minutes before Bright Smile
    // Dental's front desk closes for the weekend, during which the clocks go back an hour.
    let app = spawn_app_configured(
        &backend,
        TestOptions {
            business_clock: Some(at("2026-10-30T21:50:00Z")),
            ..TestOptions::webhooks_wait_an_hour()
        },
        |c| c.max_concurrent_calls = 1,
    )
    .await;
    // One patient's call holds the only line (it lasts ten minutes)…
    let mut long_call = patient("Ada Lovelace", "+13125552671");
    long_call["sim"]["webhook_delay_ms"] = json!(600_000);
    let (_, first_run) = app.create_lead_with(&long_call).await;
    app.wait_for_call_wait(&first_run).await;
    // …so the second patient's call, routed while the desk is open, waits in line.
    let (second_lead, second_run) = app
        .create_lead_with(&patient("Grace Hopper", "+13125552672"))
        .await;
    let run = eventually("the second call waiting for a line", T, || async {
        let run = app.run(&second_run).await;
        (!deferred(&run, "place_call").is_empty()).then_some(run)
    })
    .await;
    let route = &attempts(&run, "place_call")[0]["input"]["route"];
    assert_eq!(
        route["action"]["type"], "call_now",
        "routed while open: {run}"
    );

    // Closing time passes while it waits; then the line frees.
    app.business_clock.set(at("2026-10-30T22:00:30Z"));
    let (status, _) = app.post(&format!("/api/v1/runs/{first_run}/cancel")).await;
    assert_eq!(status, 200);

    // The call is not dialled: it waits for Monday 08:00, which is CST (UTC-6) by then.
    let put_off = |run: &Value| {
        deferred(run, "place_call")
            .iter()
            .any(|a| deferred_because(a).contains("outside the business' opening hours"))
    };
    let seen = within(T, || async {
        let run = app.run(&second_run).await;
        put_off(&run).then_some(run)
    })
    .await;
    let Some(run) = seen else {
        let run = app.run(&second_run).await;
        panic!("the call was not put off until the next opening: {run:#}");
    };
    let put_off = deferred(&run, "place_call")[0];
    assert!(
        deferred_because(put_off).ends_with("the call waits until 2026-11-02T08:00:00-06:00"),
        "{put_off}"
    );
    assert_eq!(run["status"], "waiting", "{run}");
    assert_eq!(app.sim().calls_for(&second_lead), 0, "nothing dialled");
    assert!(
        attempts(&run, "place_call")
            .iter()
            .all(|a| a["attempt"] == 1),
        "waiting for the opening spends no attempt: {run}"
    );
}

async fn the_first_opening_after_the_clocks_change_is_kept_in_local_time(backend: Backend) {
    // Monday 2026-11-02, 07:50 in Chicago, the first opening since the clocks went back: by the
    // summer offset it would be 08:50 and open; it is ten minutes before opening.
    let monday = at("2026-11-02T13:50:00Z");
    let opening = at("2026-11-02T14:00:00Z");
    let app = spawn_app_with(
        &backend,
        TestOptions {
            business_clock: Some(monday),
            ..TestOptions::default()
        },
    )
    .await;
    let (lead, run_id) = app
        .create_lead_with(&patient("Ada Lovelace", "+13125552671"))
        .await;
    let run = waiting_to_dial(&app, &run_id).await;
    let route = &attempts(&run, "place_call")[0]["input"]["route"];
    assert_eq!(route["action"]["type"], "call_after", "{run}");
    let secs = route["action"]["secs"].as_i64().unwrap();
    assert!(
        (1..=(opening - monday).num_seconds()).contains(&secs),
        "called at the opening, not an hour early or late: {secs} s"
    );
    assert_eq!(app.sim().calls_for(&lead), 0);

    // At the opening it is called.
    called_at(&app, &run_id, &lead, opening).await;
}

/// The run, once its call waits to be dialled at a later time.
async fn waiting_to_dial(app: &TestApp, run_id: &str) -> Value {
    eventually("the call waiting for its time", T, || async {
        let run = app.run(run_id).await;
        (run["current_step"] == "place_call" && run["status"] == "waiting").then_some(run)
    })
    .await
}

/// Sets the business clock just past `at`, ends the run's wait for its call time by hand (its
/// timer was set by the clock before the test moved it) and waits for the one call.
async fn called_at(app: &TestApp, run_id: &str, lead: &str, at: DateTime<Utc>) {
    app.business_clock.set(at + chrono::TimeDelta::seconds(1));
    app.resume(run_id).await;
    eventually(&format!("the call at {at}"), T, || async {
        (app.sim().calls_for(lead) == 1).then_some(())
    })
    .await;
}

async fn a_new_york_business_calls_a_los_angeles_lead_at_eight_pacific_not_before(
    backend: Backend,
) {
    // Monday 2026-11-09, 10:50 in New York (the demo business, no opening hours), 07:50 in Los
    // Angeles.
    let eight_pacific = at("2026-11-09T16:00:00Z");
    let app = spawn_app_with(
        &backend,
        TestOptions {
            business_clock: Some(at("2026-11-09T15:50:00Z")),
            ..TestOptions::default()
        },
    )
    .await;
    let person = |phone: &str| {
        json!({"business": "demo", "name": "Ada Lovelace", "phone": phone,
               "sim": {"outcome": "interested"}})
    };
    let (la, la_run) = app.create_lead_with(&person("+13105552671")).await;
    let (ny, _) = app.create_lead_with(&person("+12125552671")).await;
    // The New York lead is called at once; the Los Angeles lead waits and its timeline says
    // which rule holds the call back, and until when.
    eventually("the New York call", T, || async {
        (app.sim().calls_for(&ny) == 1).then_some(())
    })
    .await;
    let run = waiting_to_dial(&app, &la_run).await;
    assert_eq!(app.sim().calls_for(&la), 0, "called before 08:00 Pacific");
    let route = attempts(&run, "route")[0];
    assert!(
        route["log"].to_string().contains(
            "outside the legal calling window 08:00-21:00 in the lead's local time \
             (America/Los_Angeles, from the phone number's region US-CA): the call waits until \
             2026-11-09T08:00:00-08:00"
        ),
        "{route}"
    );
    let (_, page) = app.get(&format!("/api/v1/leads/{la}")).await;
    assert_eq!(
        page["local_time"],
        json!({"zones": ["America/Los_Angeles"], "region": "US-CA", "from": "phone_number"})
    );
    // Resumed early by hand, the call is checked again at the dial and still waits.
    app.resume(&la_run).await;
    eventually("the early dial put off", T, || async {
        let run = app.run(&la_run).await;
        deferred(&run, "place_call")
            .iter()
            .any(|a| deferred_because(a).contains("legal calling window"))
            .then_some(())
    })
    .await;
    assert_eq!(app.sim().calls_for(&la), 0, "called before 08:00 Pacific");
    // At 08:00 Pacific it is called.
    called_at(&app, &la_run, &la, eight_pacific).await;

    // A timezone given with the lead is checked, and wins over the number's region.
    let mut bad = person("+13105552672");
    bad["timezone"] = json!("Mars/Olympus_Mons");
    let resp = app.post_lead(&bad).await;
    assert_eq!(resp.status(), 422);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(
        (&err["error"]["code"], &err["error"]["details"]["field"]),
        (&json!("invalid_timezone"), &json!("timezone")),
        "{err}"
    );
    let mut given = person("+13105552673");
    given["timezone"] = json!("America/New_York");
    let (lead, _) = app.create_lead_with(&given).await;
    let (_, page) = app.get(&format!("/api/v1/leads/{lead}")).await;
    assert_eq!(page["lead"]["timezone"], "America/New_York");
    assert_eq!(page["local_time"]["from"], "lead");
}

crate::on_both_backends!(
    a_new_york_business_calls_a_los_angeles_lead_at_eight_pacific_not_before,
    a_call_that_waited_past_closing_time_is_not_dialled_until_the_next_opening,
    the_first_opening_after_the_clocks_change_is_kept_in_local_time,
);
