//! One placed call, scripted: its conversation (transcript, analysis, result) as ElevenLabs
//! reports it, and the webhook body that announces its end.

use serde_json::json;

use super::voice::{bucket, text};
use super::{SimOutcome, VAR_CALL_ATTEMPT, VAR_CUSTOMER_NAME};
use switchboard_workflows::providers::elevenlabs::{
    self as el, CallResult, Conversation, ConversationAnalysis, ConversationMetadata,
    ConversationStatus, FailureMetadata, FailureReason, InitiationFailureData, OutboundCallRequest,
    PhoneCall, Role, TranscriptTurn, WebhookEnvelope,
};
use switchboard_workflows::providers::voice::Line;

/// One placed call, from which the conversation and webhook are built (a Retell call is
/// scripted the same way and then told in Retell's words).
pub(super) struct SimCall {
    pub(super) req: OutboundCallRequest,
    pub(super) line: Line,
    pub(super) outcome: SimOutcome,
    pub(super) conversation_id: String,
    pub(super) call_sid: String,
    pub(super) started: i64,
}

impl SimCall {
    fn var(&self, name: &str) -> Option<String> {
        let vars = &self
            .req
            .conversation_initiation_client_data
            .dynamic_variables;
        vars.get(name).filter(|v| !v.is_null()).map(text)
    }

    /// Deterministic per (lead, attempt), so a demo replays the same transcript.
    fn hash(&self) -> u64 {
        let user = self
            .req
            .conversation_initiation_client_data
            .user_id
            .as_deref();
        let attempt = self.var(VAR_CALL_ATTEMPT).unwrap_or_default();
        bucket(&format!(
            "{}|{attempt}|script",
            user.unwrap_or(&self.conversation_id)
        ))
    }

    /// `phone_call.type`: `twilio` or `sip_trunking`.
    fn line_kind(&self) -> &'static str {
        match self.line {
            Line::Twilio => "twilio",
            Line::Sip => "sip_trunking",
        }
    }

    /// The media stream's SID (Twilio's `MZ…`), derived from the call's.
    fn stream_sid(&self) -> String {
        format!("MZ{}", &self.call_sid[2..])
    }

    /// The line's result once the call is over.
    fn call_result(&self) -> CallResult {
        match self.outcome {
            SimOutcome::Interested | SimOutcome::NotInterested | SimOutcome::OptOut => {
                CallResult::Answered
            }
            SimOutcome::Voicemail => CallResult::Voicemail,
            SimOutcome::Busy => CallResult::Busy,
            SimOutcome::NoAnswer | SimOutcome::Failed => CallResult::NoAnswer,
        }
    }

    /// The conversation in `status`, with transcript and analysis once it is final.
    pub(super) fn conversation(&self, status: ConversationStatus) -> Conversation {
        let client = &self.req.conversation_initiation_client_data;
        let mut conversation = Conversation {
            agent_id: self.req.agent_id.clone(),
            conversation_id: self.conversation_id.clone(),
            status,
            user_id: client.user_id.clone(),
            transcript: Some(Vec::new()),
            metadata: Some(ConversationMetadata {
                start_time_unix_secs: Some(self.started),
                phone_call: Some(PhoneCall {
                    kind: Some(self.line_kind().into()),
                    direction: Some("outbound".into()),
                    phone_number_id: Some(self.req.agent_phone_number_id.clone()),
                    agent_number: Some("+15550100000".into()),
                    external_number: Some(self.req.to_number.clone()),
                    call_sid: (self.line == Line::Twilio).then(|| self.call_sid.clone()),
                    stream_sid: (self.line == Line::Twilio).then(|| self.stream_sid()),
                    call_result: status.is_final().then(|| self.call_result()),
                }),
                ..Default::default()
            }),
            conversation_initiation_client_data: Some(client.clone()),
            ..Default::default()
        };
        let connected = matches!(
            self.outcome,
            SimOutcome::Interested
                | SimOutcome::NotInterested
                | SimOutcome::Voicemail
                | SimOutcome::OptOut
        );
        if !status.is_final() || !connected {
            return conversation;
        }
        let name = self
            .var(VAR_CUSTOMER_NAME)
            .unwrap_or_else(|| "there".into());
        let (lines, duration, reason, successful, summary) = match self.outcome {
            SimOutcome::Interested | SimOutcome::NotInterested => {
                let variant = (self.hash() % 2) as usize;
                let script = if self.outcome == SimOutcome::Interested {
                    INTERESTED[variant]
                } else {
                    NOT_INTERESTED[variant]
                };
                let summary = if self.outcome == SimOutcome::Interested {
                    format!(
                        "{name} was receptive, asked about next steps and agreed to a follow-up."
                    )
                } else {
                    format!("{name} declined the offer and the agent closed the call politely.")
                };
                (
                    script,
                    60 + self.hash() % 141,
                    "end_call tool was called",
                    "success",
                    summary,
                )
            }
            SimOutcome::OptOut => (
                OPT_OUT,
                30 + self.hash() % 31,
                "end_call tool was called",
                "failure",
                format!("{name} asked not to be called again."),
            ),
            _ => {
                let summary =
                    format!("The call reached {name}'s voicemail; the agent left a short message.");
                (
                    VOICEMAIL,
                    20 + self.hash() % 16,
                    "voicemail_detected",
                    "failure",
                    summary,
                )
            }
        };
        let first = self.first_message(&name);
        let count = lines.len() as f64 + 1.0;
        let turn = |i: usize, role, message| TranscriptTurn {
            role,
            message,
            time_in_call_secs: (duration as f64 * i as f64 / count).round() as i64,
        };
        let mut transcript = Vec::with_capacity(lines.len() + 2);
        if self.outcome != SimOutcome::Voicemail {
            transcript.push(turn(0, Role::Agent, Some(first)));
        }
        for (i, line) in lines.iter().enumerate() {
            let (role, said) = match line.strip_prefix("U: ") {
                Some(said) => (Role::User, said),
                None => (Role::Agent, line.trim_start_matches("A: ")),
            };
            transcript.push(turn(i + 1, role, Some(said.replace("{name}", &name))));
        }
        transcript.push(turn(lines.len() + 1, Role::Agent, None)); // the end_call tool turn
        conversation.transcript = Some(transcript);
        conversation.has_audio = true;
        conversation.has_user_audio = true;
        conversation.has_response_audio = true;
        if let Some(metadata) = conversation.metadata.as_mut() {
            metadata.call_duration_secs = Some(duration as i64);
            metadata.cost = Some((duration * 10) as i64);
            metadata.termination_reason = Some(reason.into());
        }
        conversation.analysis = Some(ConversationAnalysis {
            call_successful: Some(successful.into()),
            transcript_summary: Some(summary),
            evaluation_criteria_results: json!({}),
            data_collection_results: json!({}),
        });
        conversation
    }

    /// The agent's first message: the override with `{{variables}}` filled in, or a default.
    fn first_message(&self, name: &str) -> String {
        let client = &self.req.conversation_initiation_client_data;
        let template = client
            .conversation_config_override
            .as_ref()
            .and_then(|o| o.agent.as_ref())
            .and_then(|a| a.first_message.clone());
        let Some(mut message) = template else {
            return format!(
                "Hi {name}, this is Alex calling from Switchboard. Do you have a minute?"
            );
        };
        for (key, value) in &client.dynamic_variables {
            message = message.replace(&format!("{{{{{key}}}}}"), &text(value));
        }
        message
    }

    /// The final conversation and the webhook body announcing it.
    pub(super) fn finish(&self) -> (Conversation, Result<Vec<u8>, serde_json::Error>) {
        let now = chrono::Utc::now().timestamp();
        let reason = match self.outcome {
            SimOutcome::Busy => Some(FailureReason::Busy),
            SimOutcome::NoAnswer | SimOutcome::Failed => Some(FailureReason::NoAnswer),
            _ => None,
        };
        let Some(reason) = reason else {
            let conversation = self.conversation(ConversationStatus::Done);
            let kind = el::EVENT_TRANSCRIPTION.to_owned();
            let body = serde_json::to_vec(&WebhookEnvelope {
                kind,
                event_timestamp: now,
                data: &conversation,
            });
            return (conversation, body);
        };
        let mut conversation = self.conversation(ConversationStatus::Failed);
        if let Some(metadata) = conversation.metadata.as_mut() {
            metadata.termination_reason =
                Some(format!("Call initiation failed: {}", reason.as_str()));
        }
        let data = InitiationFailureData {
            agent_id: Some(self.req.agent_id.clone()),
            conversation_id: self.conversation_id.clone(),
            failure_reason: reason,
            metadata: Some(FailureMetadata {
                kind: Some(
                    if self.line == Line::Twilio {
                        "twilio"
                    } else {
                        "sip"
                    }
                    .into(),
                ),
                body: match self.line {
                    Line::Twilio => json!({"CallSid": self.call_sid,
                        "CallStatus": reason.as_str(), "To": self.req.to_number}),
                    Line::Sip => json!({"sip_call_id": self.call_sid,
                        "status": reason.as_str(), "to_number": self.req.to_number}),
                },
            }),
        };
        let kind = el::EVENT_INITIATION_FAILURE.to_owned();
        (
            conversation,
            serde_json::to_vec(&WebhookEnvelope {
                kind,
                event_timestamp: now,
                data,
            }),
        )
    }
}

/// Scripted turns after the agent's first message: `A:` agent, `U:` user; `{name}` is replaced.
const INTERESTED: [&[&str]; 2] = [
    &[
        "U: Hi, yes, I have a few minutes.",
        "A: Great! I'm following up on your enquiry. What are you hoping to solve right now?",
        "U: We need this soon. I'm interested, and we have budget set aside this quarter. Can you send me the pricing?",
        "A: Absolutely, I'll email it today. Would a short walkthrough next week help?",
        "U: Yes, let's schedule a demo for next week.",
        "A: Perfect, you'll get an invite shortly. Thanks, {name}!",
    ],
    &[
        "U: Sure, go ahead.",
        "A: You downloaded our guide last week. Is this something your team is looking at?",
        "U: Yes, it sounds good. We're comparing options and I'd like a free trial first.",
        "A: I can set that up. Shall someone check in with you after the trial?",
        "U: Yes please, call me back next week.",
        "A: Will do. Thanks for your time, {name}.",
    ],
];
const NOT_INTERESTED: [&[&str]; 2] = [
    &[
        "U: Who is this?",
        "A: It's Alex from Switchboard, following up on your enquiry. Is now a good time?",
        "U: No thanks, I'm not interested. We already have a solution.",
        "A: Understood. Would it help if I sent some information for later?",
        "U: No, thank you. Goodbye.",
        "A: Of course, I'll make a note. Have a good day.",
    ],
    &[
        "U: I only have a second.",
        "A: I'll be quick: I'm calling about the enquiry you made last month.",
        "U: It's too expensive for us right now and there's no budget this year. Not interested.",
        "A: Thanks for being upfront, {name}. I'll close this out.",
    ],
];
const OPT_OUT: &[&str] = &[
    "U: Who is this?",
    "A: It's Alex from Switchboard, following up on your enquiry.",
    "U: Please stop calling me. Remove me from your list and don't call again.",
    "A: Understood, {name}. You won't hear from us again. Goodbye.",
];
const VOICEMAIL: &[&str] = &[
    "U: Hi, you've reached {name}. I can't take your call right now, please leave a message after the tone.",
    "A: Hi {name}, this is Alex from Switchboard. Sorry I missed you, I'll try again another time.",
];
