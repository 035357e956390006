//! The simulated OpenAI side: the chat-completions handler and the keyword-based transcript
//! analysis behind it.

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use switchboard_workflows::providers::openai::{
    self, AssistantMessage, CallAnalysis, ChatCompletionRequest, ChatCompletionResponse, Choice,
    CtaInteractions, Dimension, Level, Sentiment, Usage,
};

pub(super) async fn chat_completions(body: Bytes) -> Response {
    let req: ChatCompletionRequest = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => {
            return openai_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                e.to_string(),
            );
        }
    };
    let input = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map_or("", |m| m.content.as_str());
    if input.contains("[sim:quota]") {
        let message =
            "You exceeded your current quota, please check your plan and billing details.";
        return openai_error(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            Some("insufficient_quota"),
            message.into(),
        );
    }
    if input.contains("[sim:error]") {
        return openai_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            None,
            "Simulated server error".into(),
        );
    }
    let analysis = serde_json::to_string(&analyze_transcript(input)).unwrap_or_default();
    let (content, refusal, finish) = if input.contains("[sim:refuse]") {
        (
            None,
            Some("I'm sorry, but I can't help with that request.".to_owned()),
            "stop",
        )
    } else if input.contains("[sim:filter]") {
        (None, None, "content_filter")
    } else if req
        .max_completion_tokens
        .is_some_and(|budget| budget < answer_tokens(input, &analysis))
    {
        (Some(analysis.chars().take(40).collect()), None, "length")
    } else {
        (Some(analysis), None, "stop")
    };
    let prompt_tokens = req
        .messages
        .iter()
        .map(|m| m.content.len() / 4 + 4)
        .sum::<usize>() as u32;
    let completion_tokens = (content
        .as_deref()
        .or(refusal.as_deref())
        .map_or(0, str::len)
        / 4) as u32;
    Json(ChatCompletionResponse {
        id: format!("chatcmpl-sim-{}", uuid::Uuid::now_v7().simple()),
        object: "chat.completion".into(),
        created: chrono::Utc::now().timestamp(),
        model: req.model,
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".into(),
                content,
                refusal,
            },
            finish_reason: Some(finish.into()),
        }],
        usage: Some(Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }),
    })
    .into_response()
}

/// Tokens the answer takes: its length in tokens of ~4 characters, or [`LONG_ANSWER_TOKENS`]
/// when the input asks for a long one (`[sim:truncate]`).
fn answer_tokens(input: &str, analysis: &str) -> u32 {
    if input.contains("[sim:truncate]") {
        LONG_ANSWER_TOKENS
    } else {
        (analysis.len() / 4) as u32
    }
}

/// The tokens of an answer that runs long: more than a first analysis may use, less than twice.
const LONG_ANSWER_TOKENS: u32 = openai::ANALYSIS_TOKENS * 3 / 2;

fn openai_error(status: StatusCode, kind: &str, code: Option<&str>, message: String) -> Response {
    let error = openai::ApiError {
        message,
        kind: Some(kind.into()),
        param: None,
        code: code.map(Into::into),
    };
    (status, Json(openai::ApiErrorBody { error })).into_response()
}

/// Customer phrases that count against the lead, with the objection they express.
const NEGATIVE: &[(&str, Option<&str>)] = &[
    ("not interested", Some("Not interested")),
    ("no thanks", None),
    ("don't call", Some("Asked not to be called again")),
    ("do not call", Some("Asked not to be called again")),
    ("remove me", Some("Asked not to be called again")),
    ("too expensive", Some("Price is too high")),
    ("no budget", Some("No budget")),
    ("already have", Some("Already has a solution")),
    ("already use", Some("Already has a solution")),
    ("not a good time", Some("Bad timing")),
];
const POSITIVE: &[&str] = &[
    "interested",
    "yes",
    "sure",
    "sounds good",
    "great",
    "let's",
    "send me",
    "pricing",
    "demo",
    "trial",
    "sample",
    "call me back",
    "next week",
];
const URGENT: &[&str] = &[
    "soon",
    "this quarter",
    "asap",
    "urgent",
    "right away",
    "this month",
];
const BUDGET: &[&str] = &[
    "budget set aside",
    "have budget",
    "budget approved",
    "can afford",
];
const VOICEMAIL_CUES: &[&str] = &["leave a message", "after the tone", "voicemail"];
const CUSTOMER_LABELS: &[&str] = &[
    "user", "customer", "lead", "prospect", "patient", "caller", "client",
];
const AGENT_LABELS: &[&str] = &["agent", "assistant", "ai", "bot"];

/// The customer's lines when the transcript labels speakers (`User: …`), else the whole text.
fn customer_text(input: &str) -> (String, usize) {
    let label = |line: &str| {
        line.split_once(':')
            .map(|(l, _)| l.trim().to_ascii_lowercase())
    };
    let is = |line: &str, set: &[&str]| label(line).is_some_and(|l| set.contains(&l.as_str()));
    let lines: Vec<&str> = input.lines().collect();
    let picked: Vec<&str> = if lines.iter().any(|l| is(l, CUSTOMER_LABELS)) {
        lines
            .into_iter()
            .filter(|l| is(l, CUSTOMER_LABELS))
            .collect()
    } else if lines.iter().any(|l| is(l, AGENT_LABELS)) {
        lines.into_iter().filter(|l| !is(l, AGENT_LABELS)).collect()
    } else {
        lines
    };
    let count = picked.iter().filter(|l| !l.trim().is_empty()).count();
    // Words only, space-separated and space-padded, so phrases match on word boundaries.
    let words: String = picked
        .join("\n")
        .replace('’', "'")
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    (
        format!(
            " {} ",
            words.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
        count,
    )
}

/// A deterministic analysis from keywords: positive phrases raise the scores, declines lower them.
pub(super) fn analyze_transcript(input: &str) -> CallAnalysis {
    let said_has = |said: &str, phrase: &str| said.contains(&format!(" {phrase} "));
    let (mut said, lines) = customer_text(input);
    let voicemail = VOICEMAIL_CUES.iter().any(|c| said_has(&said, c));
    let mut objections: Vec<String> = Vec::new();
    let mut negatives = Vec::new();
    for (phrase, objection) in NEGATIVE {
        if said_has(&said, phrase) {
            negatives.push(*phrase);
            if let Some(o) = objection.filter(|o| !objections.iter().any(|x| x == o)) {
                objections.push(o.to_string());
            }
            said = said.replace(&format!(" {phrase} "), " ");
        }
    }
    let found = |set: &[&'static str]| {
        set.iter()
            .copied()
            .filter(|p| said_has(&said, p))
            .collect::<Vec<_>>()
    };
    let (positives, urgent, budget) = (found(POSITIVE), found(URGENT), found(BUDGET));
    let (pos, neg) = (positives.len() as i64, negatives.len() as i64);
    let score = |v: i64| v.clamp(0, 100) as u8;
    let dim = |score: u8, reasoning: String| Dimension {
        level: if score >= 70 {
            Level::High
        } else if score >= 40 {
            Level::Medium
        } else {
            Level::Low
        },
        score,
        reasoning,
    };
    let signals = format!(
        "customer signals: positive [{}], negative [{}]",
        positives.join(", "),
        negatives.join(", ")
    );
    let has = |words: &[&str]| words.iter().any(|w| said_has(&said, w));
    let cta = CtaInteractions {
        pricing: has(&["pricing", "price", "cost"]),
        demo: has(&["demo", "walkthrough"]),
        follow_up: has(&[
            "follow up",
            "follow-up",
            "call me back",
            "call back",
            "next week",
        ]),
        sample: has(&["sample", "trial"]),
        escalated_to_human: has(&["human", "real person", "manager", "representative"]),
    };
    if voicemail || lines == 0 {
        let why = if voicemail {
            "The call reached voicemail"
        } else {
            "The customer said nothing"
        };
        return CallAnalysis {
            summary: format!("{why}; no conversation took place."),
            sentiment: Sentiment::Neutral,
            objections: Vec::new(),
            next_action: "Call back at a different time of day.".into(),
            intent: dim(20, format!("{why}.")),
            urgency: dim(10, format!("{why}.")),
            budget: dim(20, format!("{why}.")),
            fit: dim(40, format!("{why}.")),
            engagement: dim(5, format!("{why}.")),
            cta: CtaInteractions::default(),
            opt_out: false,
        };
    }
    let sentiment = if neg > 0 && neg >= pos {
        Sentiment::Negative
    } else if pos >= 2 && pos > neg {
        Sentiment::Positive
    } else {
        Sentiment::Neutral
    };
    let do_not_call = objections.iter().any(|o| o.starts_with("Asked not"));
    let next_action = match sentiment {
        _ if do_not_call => "Do not call again; mark the lead as disqualified.",
        Sentiment::Negative => {
            "Close out for now; nurture with a light-touch follow-up in a few months."
        }
        _ if cta.demo => "Send the demo invite and the pricing sheet.",
        Sentiment::Positive => "Follow up within two days with the requested information.",
        Sentiment::Neutral => "Try again in a few days.",
    };
    let mood = match sentiment {
        Sentiment::Positive => "was receptive",
        Sentiment::Neutral => "was non-committal",
        Sentiment::Negative => "was not interested",
    };
    let mut summary = format!("The customer {mood}.");
    if !objections.is_empty() {
        summary.push_str(&format!(
            " Objections: {}.",
            objections.join(", ").to_lowercase()
        ));
    }
    let wants: Vec<&str> = [
        (cta.pricing, "pricing"),
        (cta.demo, "a demo"),
        (cta.sample, "a trial"),
        (cta.follow_up, "a follow-up"),
    ]
    .into_iter()
    .filter_map(|(on, what)| on.then_some(what))
    .collect();
    if !wants.is_empty() {
        summary.push_str(&format!(" They asked for {}.", wants.join(", ")));
    }
    let budget_no = objections
        .iter()
        .any(|o| o == "No budget" || o == "Price is too high");
    CallAnalysis {
        summary,
        sentiment,
        objections,
        next_action: next_action.into(),
        intent: dim(score(45 + 10 * pos - 25 * neg), signals.clone()),
        urgency: dim(
            score(30 + 25 * urgent.len() as i64 - 15 * neg),
            format!("urgency cues: [{}]", urgent.join(", ")),
        ),
        budget: dim(
            score(40 + 35 * budget.len() as i64 - if budget_no { 35 } else { 0 }),
            format!(
                "budget cues: [{}]{}",
                budget.join(", "),
                if budget_no {
                    "; budget objection raised"
                } else {
                    ""
                }
            ),
        ),
        fit: dim(score(50 + 5 * pos - 15 * neg), signals),
        engagement: dim(
            score(20 + 10 * lines.min(4) as i64 + 5 * pos - 5 * neg),
            format!("{lines} customer turns"),
        ),
        cta,
        opt_out: do_not_call,
    }
}
