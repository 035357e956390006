use super::*;

#[test]
fn a_call_costs_one_credit_per_started_minute() {
    for (secs, expected) in [
        (133.0, 3),
        (59.0, 1),
        (60.0, 1),
        (60.5, 2),
        (0.0, 0),
        (-1.0, 0),
    ] {
        assert_eq!(credits(secs), expected, "{secs} s");
    }
}
use crate::test_db::TestDb;

/// A run row in `status` (the caps only count calls of unfinished runs).
async fn run(db: &Db, id: &str, status: &str) {
    db.execute(
        Q::new(
            "INSERT INTO sb_runs (id, workflow, business_id, subject_id, status, seq, \
             created_at, updated_at) VALUES ($1, 'lead_call', 'b', 'l', $2, 0, 0, 0)",
        )
        .bind(id)
        .bind(status),
    )
    .await
    .unwrap();
}

fn call(id: &str, run_id: &str, business: &str) -> CallRecord {
    CallRecord {
        id: id.into(),
        run_id: run_id.into(),
        lead_id: "lead".into(),
        business_id: Some(business.into()),
        attempt: 1,
        status: "dialing".into(),
        conversation_id: None,
        request: "{}".into(),
        error: None,
        ended_at: None,
    }
}

async fn in_flight(db: &Db, business_id: &str) -> (i64, i64) {
    let row: InFlight = db
        .fetch_one(in_flight_query(business_id, now_ms()))
        .await
        .unwrap();
    (row.total, row.business)
}

const UNLIMITED: Caps = Caps {
    global: 100,
    business: 100,
    business_per_minute: None,
    global_per_minute: None,
};

#[tokio::test]
async fn calls_a_minute_are_capped_for_every_business_together() {
    let t = TestDb::new().await;
    let db = &t.db;
    for r in ["r1", "r2", "r3"] {
        run(db, r, "waiting").await;
    }
    let caps = Caps {
        global_per_minute: Some(2),
        ..UNLIMITED
    };
    for (key, run_id, business) in [("r1:1", "r1", "a"), ("r2:1", "r2", "b")] {
        let claim = claim_line(db, &call(key, run_id, business), caps)
            .await
            .unwrap();
        assert_eq!(claim, Claim::Claimed);
    }
    let used = claim_line(db, &call("r3:1", "r3", "c"), caps)
        .await
        .unwrap();
    assert_eq!(
        used,
        Claim::MinuteUsed {
            scope: "global",
            cap: 2
        }
    );
}

#[tokio::test]
async fn a_freed_shared_line_goes_to_the_waiting_business_with_fewer_calls() {
    let t = TestDb::new().await;
    let db = &t.db;
    for r in ["a1", "a2", "a3", "a4", "b1", "b2"] {
        run(db, r, "waiting").await;
    }
    let caps = Caps {
        global: 2,
        ..UNLIMITED
    };
    // Business a takes both lines; b's call waits for one, and so does a's third.
    for key in ["a1", "a2"] {
        let claim = claim_line(db, &call(&format!("{key}:1"), key, "a"), caps).await;
        assert_eq!(claim.unwrap(), Claim::Claimed);
    }
    let busy = Claim::Busy {
        scope: "global",
        cap: 2,
    };
    assert_eq!(
        claim_line(db, &call("b1:1", "b1", "b"), caps)
            .await
            .unwrap(),
        busy
    );
    assert_eq!(
        claim_line(db, &call("a3:1", "a3", "a"), caps)
            .await
            .unwrap(),
        busy
    );
    // A line frees: a (one call in flight) leaves it to b (none), however often it asks.
    end(db, "a1:1", None).await.unwrap();
    for _ in 0..3 {
        let claim = claim_line(db, &call("a3:1", "a3", "a"), caps)
            .await
            .unwrap();
        assert_eq!(claim, Claim::OtherBusinessFirst);
    }
    assert_eq!(
        claim_line(db, &call("b1:1", "b1", "b"), caps)
            .await
            .unwrap(),
        Claim::Claimed
    );
    // Level now (one each), b's next call waits while no line is free, then they alternate.
    assert_eq!(
        claim_line(db, &call("b2:1", "b2", "b"), caps)
            .await
            .unwrap(),
        busy
    );
    end(db, "a2:1", None).await.unwrap();
    // b has one in flight, a has none: a goes first.
    assert_eq!(
        claim_line(db, &call("b2:1", "b2", "b"), caps)
            .await
            .unwrap(),
        Claim::OtherBusinessFirst
    );
    assert_eq!(
        claim_line(db, &call("a3:1", "a3", "a"), caps)
            .await
            .unwrap(),
        Claim::Claimed
    );
}

const CAPS: Caps = Caps {
    global: 3,
    business: 2,
    business_per_minute: None,
    global_per_minute: None,
};

#[tokio::test]
async fn calls_a_minute_are_capped_per_business() {
    let t = TestDb::new().await;
    let db = &t.db;
    for r in ["r1", "r2", "r3", "r4"] {
        run(db, r, "waiting").await;
    }
    let caps = Caps {
        business_per_minute: Some(2),
        ..UNLIMITED
    };
    for (key, run_id) in [("r1:1", "r1"), ("r2:1", "r2")] {
        let claim = claim_line(db, &call(key, run_id, "a"), caps).await.unwrap();
        assert_eq!(claim, Claim::Claimed);
    }
    // The ends of those calls do not give the minute back: it counts calls started.
    end(db, "r1:1", Some(30.0)).await.unwrap();
    let used = claim_line(db, &call("r3:1", "r3", "a"), caps)
        .await
        .unwrap();
    assert_eq!(
        used,
        Claim::MinuteUsed {
            scope: "business",
            cap: 2
        }
    );
    assert!(
        super::call(db, "r3:1").await.unwrap().is_none(),
        "nothing recorded"
    );
    // Another business has its own minute.
    let other = claim_line(db, &call("r4:1", "r4", "b"), caps)
        .await
        .unwrap();
    assert_eq!(other, Claim::Claimed);
}

#[tokio::test]
async fn lines_are_capped_globally_and_per_business_and_freed() {
    let t = TestDb::new().await;
    let db = &t.db;
    for r in ["r1", "r2", "r3", "r4", "r5"] {
        run(db, r, "waiting").await;
    }
    assert_eq!(
        claim_line(db, &call("r1:1", "r1", "a"), CAPS)
            .await
            .unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        claim_line(db, &call("r2:1", "r2", "a"), CAPS)
            .await
            .unwrap(),
        Claim::Claimed
    );
    let busy = claim_line(db, &call("r3:1", "r3", "a"), CAPS)
        .await
        .unwrap();
    assert_eq!(
        busy,
        Claim::Busy {
            scope: "business",
            cap: 2
        }
    );
    assert_eq!(
        claim_line(db, &call("r3:1", "r3", "b"), CAPS)
            .await
            .unwrap(),
        Claim::Claimed
    );
    let busy = claim_line(db, &call("r4:1", "r4", "c"), CAPS)
        .await
        .unwrap();
    assert_eq!(
        busy,
        Claim::Busy {
            scope: "global",
            cap: 3
        }
    );
    assert_eq!(in_flight(db, "a").await, (3, 2));
    // A call whose end was learnt, and one whose run finished, hold no line.
    end(db, "r1:1", None).await.unwrap();
    db.execute(Q::new(
        "UPDATE sb_runs SET status = 'cancelled' WHERE id = 'r2'",
    ))
    .await
    .unwrap();
    assert_eq!(in_flight(db, "a").await, (1, 0));
    assert_eq!(
        claim_line(db, &call("r4:1", "r4", "a"), CAPS)
            .await
            .unwrap(),
        Claim::Claimed
    );
}

#[tokio::test]
async fn a_recorded_call_is_never_claimed_again_unless_it_was_rejected() {
    let t = TestDb::new().await;
    let db = &t.db;
    run(db, "r1", "running").await;
    let c = call("r1:1", "r1", "a");
    assert_eq!(claim_line(db, &c, CAPS).await.unwrap(), Claim::Claimed);
    // Dialing (answer not recorded): another execution must not dial.
    assert_eq!(
        claim_line(db, &c, CAPS).await.unwrap(),
        Claim::AlreadyRecorded
    );
    // The provider said it did not start: dialing again is allowed.
    assert!(
        record_not_started(db, &c.id, "rejected", "503".into())
            .await
            .unwrap()
    );
    assert_eq!(claim_line(db, &c, CAPS).await.unwrap(), Claim::Claimed);
    // A webhook names the call before its answer is recorded: it is adopted, and a late
    // error answer can no longer mark it rejected.
    assert!(adopt_conversation(db, &c.id, "conv_1").await.unwrap());
    assert!(!adopt_conversation(db, &c.id, "conv_1").await.unwrap());
    assert!(
        !record_not_started(db, &c.id, "rejected", "502".into())
            .await
            .unwrap()
    );
    let stored = call_row(db, &c.id).await;
    assert_eq!(
        (stored.status.as_str(), stored.conversation_id.as_deref()),
        ("placed", Some("conv_1"))
    );
    assert_eq!(
        claim_line(db, &c, CAPS).await.unwrap(),
        Claim::AlreadyRecorded
    );
}

async fn call_row(db: &Db, id: &str) -> CallRecord {
    super::call(db, id).await.unwrap().expect("recorded")
}
