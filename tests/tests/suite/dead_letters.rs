//! Dead letters: a signed webhook whose processing fails answers its error and is kept; an
//! operator lists it, reads its body and replays it once the cause is fixed; an unsigned one is
//! never kept; business keys cannot see them.

use serde_json::json;
use switchboard_tests::*;

crate::on_both_backends!(
    a_signed_webhook_that_fails_is_kept_and_replayed_once_fixed,
    a_malformed_signed_webhook_is_kept_and_its_replay_fails_again,
);

async fn a_signed_webhook_that_fails_is_kept_and_replayed_once_fixed(backend: Backend) {
    // The audio directory cannot be created (a file is in the way): storing audio fails.
    let root = std::env::temp_dir().join(format!("sb-dl-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&root).unwrap();
    let dir = root.join("audio");
    std::fs::write(&dir, b"in the way").unwrap();
    let audio_dir = dir.clone();
    let app = spawn_app_configured(&backend, TestOptions::default(), move |c| {
        c.call_audio_dir = Some(audio_dir);
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let audio = json!({"type": "post_call_audio", "event_timestamp": now,
        "data": {"agent_id": "a", "conversation_id": "conv_dl", "full_audio": "SUQzBAAAAAAA"}});
    let (status, answer) = app.post_webhook(&audio, WEBHOOK_SECRET, now).await;
    assert_eq!(status, 500, "{answer}");
    // The provider sends it again: still one dead letter, failed twice.
    let (status, _) = app.post_webhook(&audio, WEBHOOK_SECRET, now).await;
    assert_eq!(status, 500);
    // Unsigned bodies are never kept.
    let (status, _) = app.post_webhook(&audio, "wrong-secret-entirely", now).await;
    assert_eq!(status, 401);

    let (status, listed) = app.get("/api/v1/dead-letters").await;
    assert_eq!(status, 200, "{listed}");
    let letters = listed["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{listed}");
    let id = letters[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(letters[0]["failures"], 2);
    assert_eq!(letters[0]["provider"], "elevenlabs");
    let (_, letter) = app.get(&format!("/api/v1/dead-letters/{id}")).await;
    assert_eq!(
        letter["body"]["data"]["conversation_id"], "conv_dl",
        "{letter}"
    );

    // Fixed: the replay stores the audio, once.
    std::fs::remove_file(&dir).unwrap();
    let (status, replayed) = app.post(&format!("/api/v1/dead-letters/{id}/replay")).await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["result"]["status"], "stored", "{replayed}");
    assert!(dir.join("conv_dl.mp3").exists());
    assert!(replayed["dead_letter"]["replayed_at"].is_string());
    let (status, _) = app.post(&format!("/api/v1/dead-letters/{id}/replay")).await;
    assert_eq!(status, 409);
    let (_, open) = app.get("/api/v1/dead-letters").await;
    assert_eq!(
        open["dead_letters"],
        json!([]),
        "replayed ones are listed only with all=true"
    );
    let (_, all) = app.get("/api/v1/dead-letters?all=true").await;
    assert_eq!(all["dead_letters"].as_array().unwrap().len(), 1);
    let (_, log) = app.get("/api/v1/audit").await;
    assert_eq!(log["entries"][0]["action"], "dead_letter.replayed", "{log}");

    // Only operators see them.
    let (_, key) = app.create_key("demo").await;
    let (status, _) = app
        .send_with(&client_with_key(&key), "get", "/api/v1/dead-letters", None)
        .await;
    assert_eq!(status, 403);
    std::fs::remove_dir_all(&root).ok();
}

async fn a_malformed_signed_webhook_is_kept_and_its_replay_fails_again(backend: Backend) {
    let app = spawn_app(&backend).await;
    let now = chrono::Utc::now().timestamp();
    let no_call = json!({"type": "post_call_transcription", "event_timestamp": now,
        "data": {"agent_id": "a", "status": "done"}});
    let (status, answer) = app.post_webhook(&no_call, WEBHOOK_SECRET, now).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("malformed_webhook"))
    );
    let (_, listed) = app.get("/api/v1/dead-letters").await;
    let id = listed["dead_letters"][0]["id"].as_str().unwrap().to_owned();
    let (status, answer) = app.post(&format!("/api/v1/dead-letters/{id}/replay")).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "replay_failed");
    assert!(answer["error"]["details"]["error"].is_string(), "{answer}");
    let (_, letter) = app.get(&format!("/api/v1/dead-letters/{id}")).await;
    assert_eq!(letter["failures"], 2, "{letter}");
    assert!(letter["replayed_at"].is_null());
    let (status, _) = app.get("/api/v1/dead-letters/dl_nothing").await;
    assert_eq!(status, 404);
}
