//! What scripts decide, as strict Rust types: a map a hook returns is parsed field by field, and a
//! missing, misspelled or mistyped field is an error that names it (never a silent default).

use rhai::Dynamic;
use rhai::serde::DynamicDeserializer;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `route(lead)`: whether, when and how to call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum RouteChoice {
    /// Call now.
    CallNow {
        /// Agent key from the business configuration (default: the campaign's or business' agent).
        #[serde(default)]
        agent: Option<String>,
        /// The call's objective (default: the business' first objective).
        #[serde(default)]
        objective: Option<String>,
        /// 0–10.
        #[serde(default)]
        priority: Option<u8>,
        /// This lead may be called outside the business' calling hours (say they asked to be
        /// called at 19:30); otherwise a call is only ever dialled inside them.
        #[serde(default)]
        outside_hours: bool,
    },
    /// Call after a delay (e.g. at the next opening).
    CallLater {
        /// Minutes from now.
        delay_minutes: u64,
        #[serde(default)]
        agent: Option<String>,
        #[serde(default)]
        objective: Option<String>,
        #[serde(default)]
        priority: Option<u8>,
        #[serde(default)]
        outside_hours: bool,
    },
    /// Call at a time (RFC 3339, or local `2026-11-21T10:30` in the business' timezone).
    CallAt {
        /// When.
        at: String,
        #[serde(default)]
        agent: Option<String>,
        #[serde(default)]
        objective: Option<String>,
        #[serde(default)]
        priority: Option<u8>,
        #[serde(default)]
        outside_hours: bool,
    },
    /// Do not call.
    Never {
        /// Why, for the timeline.
        reason: String,
    },
}

/// `score(lead, analysis)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreChoice {
    /// 0–100.
    pub score: u8,
    /// `hot`, `warm`, `cold` or `disqualified`.
    pub tag: Tag,
    /// Why, one line per reason.
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// A lead's status tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tag {
    Hot,
    Warm,
    Cold,
    Disqualified,
}

/// `follow_up(run)` and `on_no_answer(run)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum FollowUpChoice {
    /// Call again after a delay.
    CallAgain {
        /// Minutes from now.
        delay_minutes: u64,
    },
    /// Hand the lead to a human.
    HandOff {
        /// Why.
        reason: String,
    },
    /// Stop.
    Stop {
        /// How the run ends (`not_interested`, `unreachable`, …).
        outcome: String,
    },
    /// The person does not want to be called again: the number goes on the business'
    /// do-not-call list, this run and the number's other open runs end `opted_out`.
    OptOut {
        /// Why, kept as the list entry's note.
        #[serde(default)]
        reason: Option<String>,
    },
}

/// `terminology()`: the business' words, e.g. `#{ lead: "patient", appointment: "visit" }`.
pub type TerminologyChoice = std::collections::BTreeMap<String, String>;

/// `objectives()`: `[#{ name: "…", description: "…" }, …]`, the first being the default.
pub type ObjectivesChoice = Vec<crate::business::Objective>;

/// `context(lead, history)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextChoice {
    /// Prompt sections, joined by blank lines after the agent's base prompt.
    pub sections: Vec<String>,
    /// The first sentence (default: the agent's).
    #[serde(default)]
    pub first_message: Option<String>,
}

/// Parses what hook `hook` returned into `T`; the error names the field at fault.
pub fn parse<T: DeserializeOwned>(hook: &str, value: &Dynamic) -> Result<T, String> {
    let result: Result<T, _> = serde_path_to_error::deserialize(DynamicDeserializer::new(value));
    result.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // Rhai wraps serde messages in a parse error; keep just the message.
        let message = match &*inner {
            rhai::EvalAltResult::ErrorParsing(
                rhai::ParseErrorType::BadInput(rhai::LexError::ImproperSymbol(_, m)),
                _,
            ) => m.clone(),
            other => other.to_string(),
        };
        if path == "." {
            format!("{hook}() returned an invalid decision: {message}")
        } else {
            format!("{hook}() returned an invalid decision at `{path}`: {message}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str) -> Dynamic {
        crate::scripting::sandbox::harden(&Default::default())
            .eval::<Dynamic>(src)
            .unwrap()
    }

    #[test]
    fn valid_decisions_parse() {
        let route: RouteChoice = parse(
            "route",
            &eval(r#"#{ action: "call_later", delay_minutes: 90, objective: "Schedule Showing" }"#),
        )
        .unwrap();
        assert_eq!(
            route,
            RouteChoice::CallLater {
                delay_minutes: 90,
                agent: None,
                objective: Some("Schedule Showing".into()),
                priority: None,
                outside_hours: false,
            }
        );
        let score: ScoreChoice = parse(
            "score",
            &eval(r#"#{ score: 82, tag: "hot", reasons: ["budget fits"] }"#),
        )
        .unwrap();
        assert_eq!((score.score, score.tag), (82, Tag::Hot));
        let f: FollowUpChoice = parse(
            "follow_up",
            &eval(r#"#{ action: "stop", outcome: "not_interested" }"#),
        )
        .unwrap();
        assert_eq!(
            f,
            FollowUpChoice::Stop {
                outcome: "not_interested".into()
            }
        );
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse::<ScoreChoice>("score", &eval(r#"#{ tag: "hot" }"#)).unwrap_err();
        assert!(err.contains("missing field `score`"), "{err}");
        let err = parse::<FollowUpChoice>(
            "follow_up",
            &eval(r#"#{ action: "call_again", delay_minuts: 5 }"#),
        )
        .unwrap_err();
        assert!(err.contains("delay_minuts"), "{err}");
        let err =
            parse::<ScoreChoice>("score", &eval(r#"#{ score: 300, tag: "hot" }"#)).unwrap_err();
        assert!(err.contains("`score`"), "{err}");
        let err =
            parse::<ScoreChoice>("score", &eval(r#"#{ score: 50, tag: "lukewarm" }"#)).unwrap_err();
        assert!(err.contains("`tag`") && err.contains("lukewarm"), "{err}");
        let err = parse::<RouteChoice>("route", &eval(r#"#{ action: "teleport" }"#)).unwrap_err();
        assert!(err.contains("teleport"), "{err}");
        // `exit(7)` or any non-map is refused too.
        let err = parse::<ScoreChoice>("score", &eval("7")).unwrap_err();
        assert!(
            err.starts_with("score() returned an invalid decision"),
            "{err}"
        );
    }
}
