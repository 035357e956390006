//! The sandbox tenant scripts run in: a hardened Rhai engine, size-limited compilation, errors
//! with `source:line:col`, and a pool of big-stack threads that keeps scripts off the async
//! workers. Every setting closes a hole a hostile script could use (see `sandbox/tests.rs`).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{AST, Dynamic, Engine, EvalAltResult, FuncRegistration, ImmutableString, Position};

/// Limits on one script.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Rhai operations per call (`loop {}`).
    pub max_operations: u64,
    /// Wall-clock time per call (operation-cheap but CPU-heavy built-ins).
    pub max_time: Duration,
    /// Bytes in one string (`s += s`, `pad`, `replace`).
    pub max_string_size: usize,
    /// Items in one array or blob.
    pub max_array_size: usize,
    /// Entries in one map.
    pub max_map_size: usize,
    /// Nested function calls (deep recursion overflows native stacks).
    pub max_call_levels: usize,
    /// Nesting of expressions, at top level and in functions.
    pub max_expr_depth: usize,
    /// Bytes of script source (compilation is not covered by the operation limit).
    pub max_source_bytes: usize,
    /// Functions one script may define.
    pub max_functions: usize,
    /// Lines a call may log.
    pub max_log_lines: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 50_000,
            max_time: Duration::from_millis(50),
            max_string_size: 8 * 1024,
            max_array_size: 10_000,
            max_map_size: 1_000,
            max_call_levels: 16,
            max_expr_depth: 32,
            max_source_bytes: 64 * 1024,
            max_functions: 64,
            max_log_lines: 100,
        }
    }
}

/// Stack of the threads scripts run on: native recursion inside Rhai needs far more than a
/// 2 MiB tokio worker stack at the allowed depth.
pub const SCRIPT_THREAD_STACK: usize = 8 * 1024 * 1024;

/// The script name in errors.
pub fn script_name(business_id: &str) -> String {
    format!("{business_id}/policy.rhai")
}

/// A script error as authors see it: where, and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, utoipa::ToSchema)]
#[error("{source_name}:{line}:{column}: {message}")]
pub struct ScriptError {
    /// The script's name, e.g. `acme/policy.rhai`.
    #[serde(rename = "source")]
    pub source_name: String,
    /// 1-based line (0 when the error has no position).
    pub line: usize,
    /// 1-based column (0 when the error has no position).
    pub column: usize,
    /// What went wrong.
    pub message: String,
}

impl ScriptError {
    fn at(source_name: &str, pos: Position, message: impl Into<String>) -> Self {
        ScriptError {
            source_name: source_name.to_owned(),
            line: pos.line().unwrap_or(0),
            column: pos.position().unwrap_or(0),
            message: message.into(),
        }
    }

    /// A runtime error, located at its innermost position (inside the script's own functions).
    pub fn from_eval(source_name: &str, err: &EvalAltResult) -> Self {
        let inner = err.unwrap_inner();
        let message = match inner {
            EvalAltResult::ErrorTerminated(reason, _) => format!("script stopped: {reason}"),
            other => {
                let text = other.to_string();
                // Rhai appends " (line L, position C)"; the location is reported separately.
                match text.rfind(" (line ") {
                    Some(i) => text[..i].to_owned(),
                    None => text,
                }
            }
        };
        ScriptError::at(source_name, inner.position(), message)
    }
}

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static MAX_LOG: Cell<usize> = const { Cell::new(0) };
}

/// Adds a line to the current call's log (capped in lines and length).
pub(crate) fn log_line(line: &str) {
    let max = MAX_LOG.with(Cell::get);
    LOG.with(|l| {
        let mut l = l.borrow_mut();
        if l.len() < max {
            l.push(line.chars().take(500).collect());
        }
    })
}

/// Builds the hardened engine shared by every business (build once per process).
pub fn harden(limits: &Limits) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(limits.max_operations)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
        .set_max_functions(limits.max_functions)
        .set_max_modules(0)
        .set_module_resolver(DummyModuleResolver::new())
        .set_max_strings_interned(0)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true)
        .disable_symbol("eval")
        // Scripts are self-contained: no modules to import (the resolver finds none anyway).
        .disable_symbol("import");
    engine.on_print(log_line);
    engine.on_debug(|s, _, pos| log_line(&format!("{pos}: {s}")));
    // The clock is read at every operation (a few ns): a script stops within one operation of
    // its time limit, and the data limits bound what one operation can cost.
    engine.on_progress(|_| {
        DEADLINE.with(|d| match d.get() {
            Some(deadline) if Instant::now() > deadline => {
                Some(Dynamic::from("time limit exceeded"))
            }
            _ => None,
        })
    });
    // `replace` allocates the whole result before Rhai's size check: check first, for every
    // string/char combination of the built-in.
    let max = limits.max_string_size;
    let replace = || {
        FuncRegistration::new("replace").with_comments([
            "/// Replaces every `find` in the string by `sub`, in place (returns `()`); refused if the result would exceed the string size limit.",
        ])
    };
    replace().register_into_engine(
        &mut engine,
        move |s: &mut ImmutableString, find: &str, sub: &str| checked_replace(s, find, sub, max),
    );
    replace().register_into_engine(
        &mut engine,
        move |s: &mut ImmutableString, find: char, sub: &str| {
            checked_replace(s, find.encode_utf8(&mut [0; 4]), sub, max)
        },
    );
    replace().register_into_engine(
        &mut engine,
        move |s: &mut ImmutableString, find: &str, sub: char| {
            checked_replace(s, find, sub.encode_utf8(&mut [0; 4]), max)
        },
    );
    // Rhai's own `sleep(INT)` / `sleep(FLOAT)` would park a script thread: replace both.
    let sleep = || {
        FuncRegistration::new("sleep")
            .with_comments(["/// Not available: scripts decide, they do not wait."])
    };
    sleep().register_into_engine(
        &mut engine,
        |_: rhai::INT| -> Result<(), Box<EvalAltResult>> {
            Err("sleep is not available to scripts".into())
        },
    );
    sleep().register_into_engine(
        &mut engine,
        |_: rhai::FLOAT| -> Result<(), Box<EvalAltResult>> {
            Err("sleep is not available to scripts".into())
        },
    );
    super::host_api::register(&mut engine);
    engine
}

/// `s.replace(find, sub)` in place, refused before allocating if the result would exceed `max`.
fn checked_replace(
    s: &mut ImmutableString,
    find: &str,
    sub: &str,
    max: usize,
) -> Result<(), Box<EvalAltResult>> {
    let hits = if find.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(find).count()
    };
    let len = s.len() - hits * find.len() + hits * sub.len();
    if len > max {
        return Err(format!("replace would make a string of {len} bytes (limit {max})").into());
    }
    *s = s.replace(find, sub).into();
    Ok(())
}

/// Compiles `source`, refusing oversized ones before the parser sees them.
pub fn compile(
    engine: &Engine,
    limits: &Limits,
    source_name: &str,
    source: &str,
) -> Result<AST, ScriptError> {
    if source.len() > limits.max_source_bytes {
        return Err(ScriptError::at(
            source_name,
            Position::NONE,
            format!(
                "script is {} bytes; the limit is {}",
                source.len(),
                limits.max_source_bytes
            ),
        ));
    }
    let mut ast = engine
        .compile(source)
        .map_err(|e| ScriptError::at(source_name, e.position(), e.err_type().to_string()))?;
    ast.set_source(source_name);
    Ok(ast)
}

/// Runs `f` under the wall-clock limit and collects what it logged. Call on a script thread.
pub fn with_limits<T>(limits: &Limits, f: impl FnOnce() -> T) -> (T, Vec<String>) {
    DEADLINE.with(|d| d.set(Some(Instant::now() + limits.max_time)));
    MAX_LOG.with(|m| m.set(limits.max_log_lines));
    LOG.with(|l| l.borrow_mut().clear());
    let out = f();
    DEADLINE.with(|d| d.set(None));
    (out, LOG.with(|l| std::mem::take(&mut *l.borrow_mut())))
}

type Job = Box<dyn FnOnce() + Send>;

/// A small pool of big-stack threads that runs script calls off the async workers. Calls queue
/// per tenant (a business' script) and the threads take them in turns, one tenant after the
/// other: a business flooding the pool (validations of heavy tests, say) holds at most its share
/// of the threads while another business' calls wait.
#[derive(Clone)]
pub struct ScriptThreads {
    pool: Arc<Pool>,
}

/// The handle the callers share: the threads stop when the last one is dropped.
struct Pool {
    shared: Arc<Shared>,
}

/// What the threads and the callers share.
struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
}

#[derive(Default)]
struct Queues {
    /// Each tenant's calls, in order.
    jobs: HashMap<String, VecDeque<Job>>,
    /// The tenants with calls queued, in the order they take their next turn.
    turns: VecDeque<String>,
    closed: bool,
}

impl Queues {
    fn push(&mut self, tenant: &str, job: Job) {
        let queue = self.jobs.entry(tenant.to_owned()).or_default();
        if queue.is_empty() {
            self.turns.push_back(tenant.to_owned());
        }
        queue.push_back(job);
    }

    /// The next call: the first of the tenant whose turn it is, who then goes to the back.
    fn next(&mut self) -> Option<Job> {
        let tenant = self.turns.pop_front()?;
        let queue = self.jobs.get_mut(&tenant)?;
        let job = queue.pop_front();
        if queue.is_empty() {
            self.jobs.remove(&tenant);
        } else {
            self.turns.push_back(tenant);
        }
        job
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Ok(mut q) = self.shared.queues.lock() {
            q.closed = true;
        }
        self.shared.ready.notify_all();
    }
}

impl ScriptThreads {
    /// Starts `threads` script threads.
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            ready: Condvar::new(),
        });
        for i in 0..threads.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("script-{i}"))
                .stack_size(SCRIPT_THREAD_STACK)
                .spawn(move || {
                    while let Some(job) = shared.take() {
                        // A panic inside a job must not take the thread down with it.
                        drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)));
                    }
                })?;
        }
        Ok(ScriptThreads {
            pool: Arc::new(Pool { shared }),
        })
    }

    /// Runs `f` on a script thread, in `tenant`'s turn, and awaits its result.
    pub async fn run<T: Send + 'static>(
        &self,
        tenant: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ScriptError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        let lost = || ScriptError::at("sandbox", Position::NONE, "the script thread was lost");
        let shared = &self.pool.shared;
        shared.queues.lock().map_err(|_| lost())?.push(tenant, job);
        shared.ready.notify_one();
        rx.await.map_err(|_| lost())
    }
}

impl Shared {
    /// Waits for the next call; `None` once the pool is dropped.
    fn take(&self) -> Option<Job> {
        let mut q = self.queues.lock().ok()?;
        loop {
            if q.closed {
                return None;
            }
            if let Some(job) = q.next() {
                return Some(job);
            }
            q = self.ready.wait(q).ok()?;
        }
    }
}

#[cfg(test)]
mod tests;
