//! ElevenLabs as a [`VoiceProvider`]: the neutral call request becomes an outbound-call body,
//! conversations and webhooks become [`CallEvent`]s.

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::HeaderMap;

use super::{
    AgentOverride, CallResult, ClientData, ConfigOverride, Conversation, ConversationMetadata,
    ConversationStatus, ElevenLabsClient, FailureReason, OutboundCallRequest, PromptOverride, Role,
    SIGNATURE_HEADER, SignatureCheck, TelephonyCallConfig, TtsOverride, WebhookEvent,
};
use crate::providers::ProviderError;
use crate::providers::voice::NoConnect;
use crate::providers::voice::{
    BodyCheck, CallEvent, CallReport, CallRequest, CallStatus, PlacedCall, SignatureError,
    VAR_CALL_KEY, VoiceProvider,
};

/// ElevenLabs Agents: the client plus the secret its webhooks are signed with.
#[derive(Clone)]
pub struct ElevenLabs {
    /// The API client (also used directly for agents).
    pub client: ElevenLabsClient,
    webhook_secret: String,
}

impl std::fmt::Debug for ElevenLabs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElevenLabs")
            .field("client", &self.client)
            .field("webhook_secret", &"<redacted>")
            .finish()
    }
}

impl ElevenLabs {
    /// ElevenLabs through `client`, verifying webhooks with `webhook_secret`.
    pub fn new(client: ElevenLabsClient, webhook_secret: impl Into<String>) -> Self {
        ElevenLabs {
            client,
            webhook_secret: webhook_secret.into(),
        }
    }

    /// The outbound-call body for a neutral request.
    pub fn outbound_request(req: &CallRequest) -> OutboundCallRequest {
        let mut dynamic_variables = req.variables.clone();
        dynamic_variables.insert(VAR_CALL_KEY.into(), req.call_key.clone().into());
        OutboundCallRequest {
            agent_id: req.agent_id.clone(),
            agent_phone_number_id: req.phone_number_id.clone(),
            to_number: req.to_number.clone(),
            conversation_initiation_client_data: ClientData {
                user_id: Some(req.lead_id.clone()),
                dynamic_variables,
                conversation_config_override: Some(ConfigOverride {
                    agent: Some(AgentOverride {
                        prompt: Some(PromptOverride {
                            prompt: Some(req.prompt.clone()),
                        }),
                        first_message: Some(req.first_message.clone()),
                        language: Some(req.language.clone()),
                    }),
                    tts: req.voice_id.clone().map(|voice_id| TtsOverride {
                        voice_id: Some(voice_id),
                    }),
                }),
            },
            telephony_call_config: Some(TelephonyCallConfig {
                ringing_timeout_secs: req.ringing_timeout_secs,
            }),
        }
    }
}

/// The call key echoed in a conversation's dynamic variables.
fn call_key(c: &Conversation) -> Option<String> {
    let vars = &c
        .conversation_initiation_client_data
        .as_ref()?
        .dynamic_variables;
    vars.get(VAR_CALL_KEY)?.as_str().map(str::to_owned)
}

/// A finished conversation as the pipeline reads it. The structured `call_result` decides
/// first, then a voicemail named in the termination reason; a failed conversation in which the
/// person spoke still connected (it is analysed, not dialled again). A conversation without its
/// transcript or metadata (left out of a webhook) is [`CallEvent::Incomplete`].
pub(crate) fn conversation_event(c: &Conversation) -> CallEvent {
    let not_connected = |reason| CallEvent::NotConnected {
        call_id: c.conversation_id.clone(),
        call_key: call_key(c),
        to_number: None,
        reason,
    };
    let termination = c
        .metadata
        .as_ref()
        .and_then(|m| m.termination_reason.as_deref())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let line = c.metadata.as_ref().and_then(call_result);
    if let Some(reason) = line.and_then(line_no_connect) {
        return not_connected(reason);
    }
    if termination.contains("voicemail") {
        return not_connected(NoConnect::Voicemail);
    }
    let (Some(metadata), Some(turns)) = (&c.metadata, &c.transcript) else {
        return CallEvent::Incomplete {
            call_id: c.conversation_id.clone(),
            call_key: call_key(c),
        };
    };
    let person_spoke = turns.iter().any(|t| {
        t.role == Role::User && t.message.as_deref().is_some_and(|m| !m.trim().is_empty())
    });
    if c.status == ConversationStatus::Failed && !person_spoke {
        return not_connected(if termination.contains("busy") {
            NoConnect::Busy
        } else if termination.contains("no-answer") || termination.contains("no_answer") {
            NoConnect::NoAnswer
        } else {
            NoConnect::Unknown
        });
    }
    let transcript = turns
        .iter()
        .filter_map(|t| {
            let role = match t.role {
                Role::Agent => "agent",
                Role::User => "user",
                Role::Unknown => "unknown",
            };
            Some(format!("{role}: {}", t.message.as_deref()?))
        })
        .collect::<Vec<_>>()
        .join("\n");
    CallEvent::Ended(CallReport {
        call_id: c.conversation_id.clone(),
        call_key: call_key(c),
        transcript,
        duration_secs: metadata.call_duration_secs.map(|secs| secs as f64),
    })
}

fn call_result(metadata: &ConversationMetadata) -> Option<CallResult> {
    metadata.phone_call.as_ref()?.call_result
}

/// The line's result when it says the person was not reached.
fn line_no_connect(result: CallResult) -> Option<NoConnect> {
    match result {
        CallResult::Voicemail => Some(NoConnect::Voicemail),
        CallResult::Busy => Some(NoConnect::Busy),
        CallResult::NoAnswer => Some(NoConnect::NoAnswer),
        CallResult::Answered | CallResult::Failed | CallResult::Unknown => None,
    }
}

fn no_connect(reason: FailureReason) -> NoConnect {
    match reason {
        FailureReason::Busy => NoConnect::Busy,
        FailureReason::NoAnswer => NoConnect::NoAnswer,
        FailureReason::Unknown => NoConnect::Unknown,
    }
}

#[async_trait]
impl VoiceProvider for ElevenLabs {
    fn name(&self) -> &'static str {
        super::PROVIDER
    }

    async fn place_call(&self, request: &CallRequest) -> Result<PlacedCall, ProviderError> {
        let body = Self::outbound_request(request);
        let answer = self.client.outbound_call(&body, request.line).await?;
        Ok(PlacedCall {
            // outbound_call refuses answers without one.
            call_id: answer.conversation_id.unwrap_or_default(),
        })
    }

    async fn get_call(&self, call_id: &str) -> Result<CallStatus, ProviderError> {
        let c = self.client.get_conversation(call_id).await?;
        Ok(match c.status {
            ConversationStatus::Done | ConversationStatus::Failed => {
                CallStatus::Finished(conversation_event(&c))
            }
            other => CallStatus::Pending(
                serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unknown".into()),
            ),
        })
    }

    fn webhook_check(
        &self,
        headers: &HeaderMap,
        now_unix: i64,
    ) -> Result<Box<dyn BodyCheck>, SignatureError> {
        let header = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let check = SignatureCheck::start(&self.webhook_secret, header, now_unix)?;
        Ok(Box::new(check))
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<CallEvent, serde_json::Error> {
        Ok(match super::parse_webhook(body)? {
            WebhookEvent::Transcription(c) => conversation_event(&c),
            WebhookEvent::InitiationFailure {
                conversation_id,
                reason,
                to_number,
                ..
            } => CallEvent::NotConnected {
                call_id: conversation_id,
                call_key: None,
                to_number,
                reason: no_connect(reason),
            },
            WebhookEvent::Audio {
                conversation_id,
                full_audio,
            } => {
                let audio = base64::engine::general_purpose::STANDARD
                    .decode(full_audio.trim())
                    .map_err(serde::de::Error::custom)?;
                CallEvent::Audio {
                    call_id: conversation_id,
                    audio,
                }
            }
            WebhookEvent::Other { kind } => CallEvent::Ignored { kind },
        })
    }
}
