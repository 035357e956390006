//! Validation of a script version before it can become active: it compiles, its entry points
//! take the right parameters, and its own `fn test_*()` functions pass against fixtures with a
//! fixed clock (Monday 2026-01-05, 10:00 in the business' timezone).

use std::sync::Arc;

use serde::Serialize;

use super::host::ScriptHost;
use super::host_api::{HostEnv, test_clock};
use super::sandbox::ScriptError;
use super::sandbox::script_name;
use crate::business::Business;

/// An entry point a script may define.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = HookDoc)]
pub struct Hook {
    pub name: &'static str,
    /// Its parameters' names.
    #[schema(value_type = Vec<String>)]
    pub params: &'static [&'static str],
    /// What it returns.
    pub returns: &'static str,
    /// What happens when the script does not define it (or it fails).
    pub default: &'static str,
}

/// The entry points, all optional.
pub const HOOKS: &[Hook] = &[
    Hook {
        name: "terminology",
        params: &[],
        returns: "#{ lead: \"patient\", appointment: \"visit\", … }",
        default: "the business' [terminology]",
    },
    Hook {
        name: "objectives",
        params: &[],
        returns: "[#{ name, description }, …] (the first is the default)",
        default: "the business' [[objectives]]",
    },
    Hook {
        name: "route",
        params: &["lead"],
        returns: "#{ action: \"call_now\" | \"call_later\" (delay_minutes) | \"call_at\" (at) | \"never\" (reason), agent?, objective?, priority? (0–10), outside_hours? (true: this lead may be called outside the calling hours) }",
        default: "the campaign for the lead's source (its agent and objective), else the default agent and first objective; priority 5; now if open, else at the next opening. Unless `outside_hours` is set, the hours are checked again just before dialling: a call due while closed waits for the next opening",
    },
    Hook {
        name: "context",
        params: &["lead", "history"],
        returns: "#{ sections: [text, …], first_message? }",
        default: "who the lead is in the business' terminology, its custom fields, and how the last call ended; the agent's first message",
    },
    Hook {
        name: "score",
        params: &["lead", "analysis"],
        returns: "#{ score: 0–100, tag: \"hot\" | \"warm\" | \"cold\" | \"disqualified\", reasons: [text, …] }",
        default: "intent 30%, budget 20%, fit 20%, urgency 15%, engagement 15%; hot at [calling] hand_off_score, warm at follow_up_score",
    },
    Hook {
        name: "follow_up",
        params: &["run"],
        returns: "#{ action: \"call_again\" (delay_minutes) | \"hand_off\" (reason) | \"stop\" (outcome) | \"opt_out\" (reason?: the number goes on the do-not-call list; this and its other open runs end opted_out) }",
        default: "hot: hand off; warm: call again after [calling] follow_up_after_secs while calls remain; else stop",
    },
    Hook {
        name: "on_no_answer",
        params: &["run"],
        returns: "as follow_up",
        default: "call again after [calling] retry_after_secs while calls remain, else stop as unreachable",
    },
];

/// What validating a script found.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ValidationReport)]
pub struct Report {
    /// Compiles, right arities, every test passed.
    pub valid: bool,
    /// `sha256` of the source.
    pub hash: String,
    /// Compile and arity errors, with line and column.
    pub errors: Vec<ScriptError>,
    /// The entry points the script defines.
    pub hooks: Vec<String>,
    /// Each `fn test_*()` and how it went.
    pub tests: Vec<TestOutcome>,
}

/// One `fn test_*()`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TestOutcome {
    pub name: String,
    pub passed: bool,
    /// Why it failed, with line and column.
    pub error: Option<ScriptError>,
    /// What it logged.
    pub log: Vec<String>,
}

impl Report {
    /// The errors of a report that is not valid: compile/arity errors and failed tests.
    pub fn problems(&self) -> Vec<ScriptError> {
        let failed = self.tests.iter().filter_map(|t| {
            t.error.clone().map(|mut e| {
                e.message = format!("{} failed: {}", t.name, e.message);
                e
            })
        });
        self.errors.iter().cloned().chain(failed).collect()
    }
}

/// Validates `source` as `business`' script. Has no side effects.
pub async fn validate(host: &ScriptHost, business: &Business, source: &str) -> Report {
    let name = script_name(&business.id);
    let mut report = Report {
        valid: false,
        hash: super::host::content_hash(source),
        errors: Vec::new(),
        hooks: Vec::new(),
        tests: Vec::new(),
    };
    let script = match host.compile_once(&name, source).await {
        Ok(s) => s,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    report.errors.extend(script.top_level_statement());
    let functions = script.functions();
    for (f, arity) in &functions {
        let problem = match HOOKS.iter().find(|h| h.name == f) {
            Some(h) if h.params.len() == *arity => {
                report.hooks.push(f.clone());
                None
            }
            Some(h) => Some(format!(
                "{f} must take {} parameter(s) ({}), not {arity}",
                h.params.len(),
                h.params.join(", ")
            )),
            None if f.starts_with("test_") && *arity != 0 => {
                Some(format!("{f} must take no parameters"))
            }
            None => None,
        };
        if let Some(message) = problem {
            report.errors.push(script.error_at(f, message));
        }
    }
    let now = test_clock(business.tz());
    let env = Arc::new(HostEnv::for_business(business, now, Vec::new(), true));
    for (f, arity) in functions {
        if !f.starts_with("test_") || arity != 0 {
            continue;
        }
        let outcome = match host.run_function(&script, &f, &env).await {
            Ok(log) => TestOutcome {
                name: f,
                passed: true,
                error: None,
                log,
            },
            Err(e) => TestOutcome {
                name: f,
                passed: false,
                error: Some(e),
                log: Vec::new(),
            },
        };
        report.tests.push(outcome);
    }
    report.valid = report.errors.is_empty() && report.tests.iter().all(|t| t.passed);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::business::shipped;
    use crate::scripting::sandbox::Limits;

    fn host() -> ScriptHost {
        ScriptHost::new(Limits::default(), 1).unwrap()
    }

    #[tokio::test]
    async fn every_shipped_script_is_valid() {
        let host = host();
        let all = shipped();
        assert_eq!(all.len(), 4);
        for d in all {
            let report = validate(&host, &d.business, &d.script).await;
            assert!(report.valid, "{}: {:#?}", d.business.id, report.problems());
            assert!(!report.tests.is_empty(), "{} has no tests", d.business.id);
        }
    }

    #[tokio::test]
    async fn wrong_arity_and_failing_tests_are_reported_where_they_are() {
        let host = host();
        let demo = shipped().remove(0).business;
        let source = "fn route(lead, extra) {\n  #{ action: \"call_now\" }\n}\n\n\
                      fn test_open_on_monday_morning() {\n  assert(is_open(), \"open\");\n  set_clock(\"2026-01-10T10:00\");\n  assert(weekday() == \"sun\", \"a sunday\");\n}\n";
        let report = validate(&host, &demo, source).await;
        assert!(!report.valid);
        assert_eq!(report.errors.len(), 1);
        let e = &report.errors[0];
        assert_eq!((e.line, e.column), (1, 1));
        assert!(
            e.message
                .contains("route must take 1 parameter(s) (lead), not 2"),
            "{e}"
        );
        let t = &report.tests[0];
        assert!(!t.passed);
        let err = t.error.as_ref().unwrap();
        assert_eq!(err.line, 8, "{err}");
        assert!(err.message.contains("a sunday"), "{err}");
        assert!(
            report.problems()[1]
                .message
                .starts_with("test_open_on_monday_morning failed")
        );
    }

    #[tokio::test]
    async fn a_syntax_error_has_line_and_column() {
        let host = host();
        let demo = shipped().remove(0).business;
        let report = validate(&host, &demo, "fn score(lead, analysis) {\n  let x = ;\n}").await;
        assert!(!report.valid);
        assert_eq!(report.errors[0].line, 2);
        assert!(report.errors[0].column > 0);
    }

    #[tokio::test]
    async fn imports_and_statements_outside_functions_are_refused() {
        let host = host();
        let demo = shipped().remove(0).business;
        let report = validate(
            &host,
            &demo,
            "fn score(lead, analysis) { 50 }

loop {}
",
        )
        .await;
        assert!(!report.valid);
        let e = &report.errors[0];
        assert_eq!((e.line, e.column), (3, 1), "{e}");
        assert!(e.message.contains("only `fn` definitions"), "{e}");
        for source in [
            "import \"policy\" as p;\nfn score(lead, analysis) { 50 }",
            "fn score(lead, analysis) { import \"policy\" as p; 50 }",
        ] {
            let report = validate(&host, &demo, source).await;
            assert!(!report.valid, "{source}");
            assert!(
                report.errors[0].message.contains("import"),
                "{:?}",
                report.errors
            );
        }
    }
}
