//! Calling business scripts: compile once per content hash, see which hooks a script defines,
//! call a hook on the sandbox threads and parse its decision strictly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rhai::{AST, CallFnOptions, Dynamic, Engine, Scope};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::decisions;
use super::host_api::{HostEnv, with_env};
use super::sandbox::{Limits, ScriptError, ScriptThreads, compile, harden, with_limits};

/// A compiled script and the hash of its source (its version).
#[derive(Clone)]
pub struct Compiled {
    /// `sha256` of the source, hex.
    pub hash: String,
    /// The script's name in errors, e.g. `acme/policy.rhai`.
    pub name: String,
    /// Whose turn on the script threads its calls take (the script's name, unless moved to a
    /// lane of its own with [`Compiled::on_lane`]).
    lane: Arc<str>,
    ast: Arc<AST>,
    source: Arc<str>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("name", &self.name)
            .field("hash", &self.hash)
            .finish()
    }
}

impl Compiled {
    /// The same script, its calls taking turns on the script threads as `lane` instead of as
    /// the script's business (a backtest's thousands of calls then never make the business'
    /// live decisions wait behind them).
    pub fn on_lane(&self, lane: &str) -> Compiled {
        Compiled {
            lane: lane.into(),
            ..self.clone()
        }
    }

    /// Whether the script defines `hook` with `arity` parameters.
    pub fn defines(&self, hook: &str, arity: usize) -> bool {
        self.ast
            .iter_functions()
            .any(|f| f.name == hook && f.params.len() == arity)
    }

    /// An error about function `name` (a hook's decision, a test, its parameters), located at
    /// the function's definition.
    pub fn error_at(&self, name: &str, message: String) -> ScriptError {
        let (line, column) = locate_fn(&self.source, name);
        ScriptError {
            source_name: self.name.clone(),
            line,
            column,
            message,
        }
    }

    /// Where the first statement outside a function is, if there is one: hooks are called
    /// without running the top level, so anything there would never run.
    pub fn top_level_statement(&self) -> Option<ScriptError> {
        let statements: &[_] = self.ast.as_ref().as_ref();
        let pos = statements.first()?.position();
        Some(ScriptError {
            source_name: self.name.clone(),
            line: pos.line().unwrap_or(0),
            column: pos.position().unwrap_or(0),
            message: "only `fn` definitions may be at the top level of a script: a statement \
                      there would never run (hooks are called on their own)"
                .into(),
        })
    }

    /// The functions the script defines: name and number of parameters, in source order.
    pub fn functions(&self) -> Vec<(String, usize)> {
        self.ast
            .iter_functions()
            .map(|f| (f.name.to_owned(), f.params.len()))
            .collect()
    }
}

/// A hook's decision and what the script logged while deciding.
#[derive(Clone, Debug, PartialEq)]
pub struct Returned<T> {
    /// The parsed decision.
    pub decision: T,
    /// `print`/`debug` lines, for the run's timeline.
    pub log: Vec<String>,
}

/// Compiled scripts kept at most.
const MAX_CACHED: usize = 512;

/// The process-wide script host: one hardened engine, the script threads, compiled scripts.
pub struct ScriptHost {
    engine: Arc<Engine>,
    limits: Limits,
    threads: ScriptThreads,
    /// By script name and content hash.
    compiled: Mutex<HashMap<(String, String), Compiled>>,
}

/// Hex `sha256` of a script source.
pub fn content_hash(source: &str) -> String {
    hex::encode(Sha256::digest(source.as_bytes()))
}

impl ScriptHost {
    /// A host with `threads` script threads.
    pub fn new(limits: Limits, threads: usize) -> std::io::Result<Self> {
        Ok(ScriptHost {
            engine: Arc::new(harden(&limits)),
            limits,
            threads: ScriptThreads::start(threads)?,
            compiled: Mutex::new(HashMap::new()),
        })
    }

    /// The hardened engine (for the host API reference).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The cached compilation of the source with this hash, named `name`.
    pub fn cached(&self, name: &str, hash: &str) -> Option<Compiled> {
        let cache = self.compiled.lock().ok()?;
        cache.get(&(name.to_owned(), hash.to_owned())).cloned()
    }

    /// Compiles `source` (named `name` in errors), or returns the cached compilation of the same
    /// source. For versions runs use; compilation itself runs on a script thread.
    pub async fn compile(&self, name: &str, source: &str) -> Result<Compiled, ScriptError> {
        let hash = content_hash(source);
        if let Some(c) = self.cached(name, &hash) {
            return Ok(c);
        }
        let compiled = self.compile_once(name, source).await?;
        let mut cache = self.compiled.lock().map_err(|_| poisoned())?;
        // Bounded: far more than the versions in use; clearing only costs recompiles.
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert((name.to_owned(), hash), compiled.clone());
        Ok(compiled)
    }

    /// Compiles `source` without caching it (validation and dry runs of unsaved sources).
    pub async fn compile_once(&self, name: &str, source: &str) -> Result<Compiled, ScriptError> {
        let source: Arc<str> = source.into();
        let (engine, limits, name_owned, src) = (
            self.engine.clone(),
            self.limits.clone(),
            name.to_owned(),
            source.clone(),
        );
        let ast = self
            .threads
            .run(name, move || compile(&engine, &limits, &name_owned, &src))
            .await??;
        Ok(Compiled {
            hash: content_hash(&source),
            name: name.to_owned(),
            lane: name.into(),
            ast: Arc::new(ast),
            source,
        })
    }

    /// Calls `hook(args…)` if the script defines it (`Ok(None)` otherwise) with `env` visible to
    /// the host API, and parses the result into `T`. Arguments are serialised into Rhai values
    /// (maps for structs).
    pub async fn call<T, A>(
        &self,
        script: &Compiled,
        hook: &'static str,
        args: A,
        env: &Arc<HostEnv>,
    ) -> Result<Option<Returned<T>>, ScriptError>
    where
        T: DeserializeOwned + Send + 'static,
        A: HookArgs,
    {
        let args = args
            .into_dynamics()
            .map_err(|e| script.error_at(hook, format!("arguments of {hook}(): {e}")))?;
        if !script.defines(hook, args.len()) {
            return Ok(None);
        }
        let (value, log) = self.invoke(script, hook.to_owned(), args, env).await?;
        let decision = decisions::parse::<T>(hook, &value).map_err(|m| script.error_at(hook, m))?;
        Ok(Some(Returned { decision, log }))
    }

    /// Runs the script's function `name` with no arguments (a `fn test_*()`), with `env`.
    pub async fn run_function(
        &self,
        script: &Compiled,
        name: &str,
        env: &Arc<HostEnv>,
    ) -> Result<Vec<String>, ScriptError> {
        let (_, log) = self
            .invoke(script, name.to_owned(), Vec::new(), env)
            .await?;
        Ok(log)
    }

    /// Calls `name(args…)` on a script thread under the limits, with `env`.
    async fn invoke(
        &self,
        script: &Compiled,
        name: String,
        args: Vec<Dynamic>,
        env: &Arc<HostEnv>,
    ) -> Result<(Dynamic, Vec<String>), ScriptError> {
        let (engine, limits, script, env) = (
            self.engine.clone(),
            self.limits.clone(),
            script.clone(),
            env.clone(),
        );
        let tenant = script.lane.clone();
        self.threads
            .run(&tenant, move || {
                call_here(&engine, &limits, &script, &name, args, &env)
            })
            .await?
    }

    /// Calls `hook(args…)` on the current thread and parses its decision: what a script thread
    /// does for [`ScriptHost::call`], without the hop (benchmarks). Deep recursion needs a big
    /// stack: call from a script thread or the main thread.
    pub fn call_on_this_thread<T: DeserializeOwned>(
        &self,
        script: &Compiled,
        hook: &str,
        args: Vec<Dynamic>,
        env: &Arc<HostEnv>,
    ) -> Result<T, ScriptError> {
        let (value, _log) = call_here(&self.engine, &self.limits, script, hook, args, env)?;
        decisions::parse::<T>(hook, &value).map_err(|m| script.error_at(hook, m))
    }
}

/// Calls `name(args…)` under the limits with `env`, on the current thread.
fn call_here(
    engine: &Engine,
    limits: &Limits,
    script: &Compiled,
    name: &str,
    args: Vec<Dynamic>,
    env: &Arc<HostEnv>,
) -> Result<(Dynamic, Vec<String>), ScriptError> {
    let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
    let (result, log) = with_limits(limits, || {
        with_env(env, || {
            engine.call_fn_with_options::<Dynamic>(
                options,
                &mut Scope::new(),
                &script.ast,
                name,
                args,
            )
        })
    });
    let value = result.map_err(|e| {
        let mut err = ScriptError::from_eval(&script.name, &e);
        // Limits hit outside any expression (operations, time) have no position: point at the
        // function that ran out.
        if err.line == 0 {
            err = script.error_at(name, format!("{} (in {name})", err.message));
        }
        err
    })?;
    Ok((value, log))
}

/// Line and column (1-based) of `fn name` in `source`; `(0, 0)` if not found.
fn locate_fn(source: &str, name: &str) -> (usize, usize) {
    for (i, line) in source.lines().enumerate() {
        let mut from = 0;
        while let Some(at) = line[from..].find("fn ") {
            let start = from + at;
            let rest = line[start + 3..].trim_start();
            if rest.starts_with(name) && rest[name.len()..].trim_start().starts_with('(') {
                return (i + 1, start + 1);
            }
            from = start + 3;
        }
    }
    (0, 0)
}

fn poisoned() -> ScriptError {
    ScriptError {
        source_name: "sandbox".into(),
        line: 0,
        column: 0,
        message: "script cache poisoned".into(),
    }
}

/// Arguments of a hook, each serialised into a Rhai value.
pub trait HookArgs {
    /// The values, in order.
    fn into_dynamics(self) -> Result<Vec<Dynamic>, String>;
}

impl HookArgs for () {
    fn into_dynamics(self) -> Result<Vec<Dynamic>, String> {
        Ok(Vec::new())
    }
}

fn to_dynamic<T: Serialize>(v: &T) -> Result<Dynamic, String> {
    rhai::serde::to_dynamic(v).map_err(|e| e.to_string())
}

impl<A: Serialize> HookArgs for (A,) {
    fn into_dynamics(self) -> Result<Vec<Dynamic>, String> {
        Ok(vec![to_dynamic(&self.0)?])
    }
}

impl<A: Serialize, B: Serialize> HookArgs for (A, B) {
    fn into_dynamics(self) -> Result<Vec<Dynamic>, String> {
        Ok(vec![to_dynamic(&self.0)?, to_dynamic(&self.1)?])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scripting::decisions::{FollowUpChoice, ScoreChoice, Tag};

    const POLICY: &str = r#"
// Scores on budget and fit; calls warm leads again after two hours.
fn score(lead, analysis) {
    let s = (analysis.budget.score + analysis.fit.score) / 2;
    print(`scoring ${lead.name}: ${s}`);
    let tag = if s >= 70 { "hot" } else if s >= 40 { "warm" } else { "cold" };
    #{ score: s, tag: tag, reasons: [`budget ${analysis.budget.score}`, `fit ${analysis.fit.score}`] }
}

fn follow_up(run) {
    if run.score >= 40 { #{ action: "call_again", delay_minutes: 120 } } else { #{ action: "stop", outcome: "not_interested" } }
}

fn route(lead) {
    #{ action: "call_now", delay: 5 }
}
"#;

    fn env() -> Arc<HostEnv> {
        Arc::new(HostEnv {
            now: chrono::Utc::now(),
            tz: chrono_tz::UTC,
            hours: None,
            terminology: Default::default(),
            history: Vec::new(),
            testing: false,
        })
    }

    fn host() -> ScriptHost {
        ScriptHost::new(Limits::default(), 2).unwrap()
    }

    #[tokio::test]
    async fn hooks_decide_and_log() {
        let host = host();
        let script = host.compile("acme/policy.rhai", POLICY).await.unwrap();
        let lead = json!({ "name": "Ada", "source": "web" });
        let analysis = json!({ "budget": { "score": 90 }, "fit": { "score": 70 } });
        let scored = host
            .call::<ScoreChoice, _>(&script, "score", (lead, analysis), &env())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((scored.decision.score, scored.decision.tag), (80, Tag::Hot));
        assert_eq!(scored.decision.reasons, ["budget 90", "fit 70"]);
        assert_eq!(scored.log, ["scoring Ada: 80"]);
        let next = host
            .call::<FollowUpChoice, _>(&script, "follow_up", (json!({ "score": 55 }),), &env())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            next.decision,
            FollowUpChoice::CallAgain { delay_minutes: 120 }
        );
    }

    #[tokio::test]
    async fn a_hook_the_script_does_not_define_falls_to_the_default() {
        let host = host();
        let script = host.compile("acme/policy.rhai", POLICY).await.unwrap();
        let none = host
            .call::<FollowUpChoice, _>(&script, "on_no_answer", (json!({}),), &env())
            .await
            .unwrap();
        assert!(none.is_none());
        // Same name, wrong arity: not the hook either.
        assert!(!script.defines("score", 1));
    }

    #[tokio::test]
    async fn bad_decisions_and_runtime_errors_name_the_place() {
        let host = host();
        let script = host.compile("acme/policy.rhai", POLICY).await.unwrap();
        let err = host
            .call::<crate::scripting::decisions::RouteChoice, _>(
                &script,
                "route",
                (json!({}),),
                &env(),
            )
            .await
            .unwrap_err();
        assert!(err.message.contains("unknown field `delay`"), "{err}");
        assert_eq!(err.source_name, "acme/policy.rhai");
        let err = host
            .call::<ScoreChoice, _>(
                &script,
                "score",
                (json!({ "name": "Ada" }), json!({})),
                &env(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            (err.source_name.as_str(), err.line),
            ("acme/policy.rhai", 4),
            "{err}"
        );
    }

    #[tokio::test]
    async fn compiled_scripts_are_cached_by_content() {
        let host = host();
        let a = host.compile("acme/policy.rhai", POLICY).await.unwrap();
        let b = host.compile("acme/policy.rhai", POLICY).await.unwrap();
        assert!(Arc::ptr_eq(&a.ast, &b.ast));
        assert_eq!(a.hash, content_hash(POLICY));
        let c = host
            .compile("acme/policy.rhai", &format!("{POLICY}\n// edited"))
            .await
            .unwrap();
        assert_ne!(a.hash, c.hash);
        let err = host
            .compile(
                "acme/policy.rhai",
                "fn score(lead, analysis) {\n  #{ score: }\n}",
            )
            .await
            .unwrap_err();
        assert_eq!(err.line, 2, "{err}");
    }
}
