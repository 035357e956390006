//! The hostile-script suite: every hole a hostile script can use (endless loops, deep recursion,
//! huge strings and arrays, imports, `eval`) ends in a clear error within its limit,
//! on a script thread, while the process (and a well-behaved script beside it) carries on.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Scope};

use super::*;

struct Sandbox {
    engine: Arc<Engine>,
    limits: Limits,
    threads: ScriptThreads,
}

impl Sandbox {
    fn new() -> Self {
        Self::with(Limits::default())
    }

    fn with(limits: Limits) -> Self {
        Sandbox {
            engine: Arc::new(harden(&limits)),
            limits,
            threads: ScriptThreads::start(2).unwrap(),
        }
    }

    /// Compiles `source` and calls its `run()` on a script thread; bounded so a hang fails.
    async fn run(&self, source: &str) -> Result<Dynamic, ScriptError> {
        let (engine, limits, source) =
            (self.engine.clone(), self.limits.clone(), source.to_owned());
        let job = self.threads.run("evil", move || {
            let ast = compile(&engine, &limits, "evil.rhai", &source)?;
            let (result, _log) = with_limits(&limits, || {
                engine.call_fn::<Dynamic>(&mut Scope::new(), &ast, "run", ())
            });
            result.map_err(|e| ScriptError::from_eval("evil.rhai", &e))
        });
        tokio::time::timeout(Duration::from_secs(10), job)
            .await
            .expect("the sandbox let a script run away")?
    }
}

async fn refused(source: &str, expected: &str) -> ScriptError {
    refused_by(&Sandbox::new(), source, expected).await
}

async fn refused_by(sandbox: &Sandbox, source: &str, expected: &str) -> ScriptError {
    let err = match sandbox.run(source).await {
        Ok(v) => panic!("the attack succeeded: {:.200}", v.to_string()),
        Err(e) => e,
    };
    assert!(
        err.to_string()
            .to_lowercase()
            .contains(&expected.to_lowercase()),
        "expected {expected:?} in: {err}"
    );
    err
}

#[tokio::test]
async fn endless_loop_hits_the_operation_limit() {
    refused("fn run() { loop {} }", "too many operations").await;
}

#[tokio::test]
async fn string_doubling_hits_the_string_limit() {
    refused(
        "fn run() { let s = \"x\"; loop { s += s; } }",
        "length of string",
    )
    .await;
}

#[tokio::test]
async fn huge_pad_and_blob_are_refused() {
    refused(
        "fn run() { let s = \"x\"; s.pad(2000000000, \"y\"); s }",
        "length of string",
    )
    .await;
    refused(
        "fn run() { blob(2000000000) }",
        "size of array/blob too large",
    )
    .await;
}

#[tokio::test]
async fn growing_arrays_are_capped() {
    refused(
        "fn run() { let a = []; a.pad(20000, 0); a }",
        "size of array",
    )
    .await;
}

/// Rhai does not apply the map-size limit to keys added by index; what bounds such a map is the
/// operation limit (a few operations per key) together with the string-size limit per value.
#[tokio::test]
async fn growing_maps_are_bounded_by_the_operation_limit() {
    let src = "fn run() { let m = #{}; for i in 0..1000000 { m[`k${i}`] = i; } m }";
    refused(src, "too many operations").await;
}

#[tokio::test]
async fn replace_cannot_blow_up_memory() {
    let src = "fn run() { let s = \"\"; s.pad(8000, \"a\"); s.replace(\"a\", \"aaaaaaaaaa\"); s }";
    refused(src, "replace would make a string").await;
    refused(
        "fn run() { let s = \"\"; s.pad(8000, \"a\"); s.replace('a', \"aaaa\"); s }",
        "replace would make",
    )
    .await;
    // Within limits it still works.
    let ok = Sandbox::new()
        .run("fn run() { let s = \"abc\"; s.replace(\"b\", \"xx\"); s }")
        .await
        .unwrap();
    assert_eq!(ok.into_string().unwrap(), "axxc");
}

#[tokio::test]
async fn deep_recursion_stops_before_the_stack_does() {
    refused("fn f(n) { f(n + 1) } fn run() { f(0) }", "stack overflow").await;
    let nested = format!("fn run() {{ {}1{} }}", "(".repeat(200), ")".repeat(200));
    refused(&nested, "exceeds maximum complexity").await;
}

#[tokio::test]
async fn imports_and_eval_are_unavailable() {
    refused("import \"/etc/passwd\" as p; fn run() { 1 }", "import").await;
    refused("fn run() { eval(\"40 + 2\") }", "eval").await;
    refused("fn run() { sleep(10) }", "sleep is not available").await;
}

#[tokio::test]
async fn oversized_sources_and_too_many_functions_are_refused_before_parsing() {
    let huge = format!("fn run() {{ 1 }} // {}", "x".repeat(70_000));
    let err = refused(&huge, "the limit is 65536").await;
    assert_eq!((err.line, err.column), (0, 0));
    let many: String = (0..100).map(|i| format!("fn f{i}() {{ {i} }}\n")).collect();
    refused(
        &format!("{many} fn run() {{ 1 }}"),
        "number of functions defined exceeds",
    )
    .await;
}

#[tokio::test]
async fn cpu_heavy_but_operation_cheap_calls_hit_the_wall_clock() {
    // ~4 operations per iteration stays under the operation limit; scanning 8 KB each time
    // takes far longer than the (here tightened) clock allows.
    let sandbox = Sandbox::with(Limits {
        max_time: Duration::from_millis(5),
        ..Limits::default()
    });
    let src = "fn run() { let s = \"\"; s.pad(8000, \"a\"); let n = 0; \
               for i in 0..10000 { n += s.index_of(\"b\"); } n }";
    refused_by(&sandbox, src, "time limit exceeded").await;
}

#[tokio::test]
async fn errors_carry_source_line_and_column() {
    let err = Sandbox::new()
        .run("fn run() {\n  let x = 1;\n  x +\n}")
        .await
        .unwrap_err();
    assert_eq!(
        (err.source_name.as_str(), err.line),
        ("evil.rhai", 4),
        "{err}"
    );
    let err = Sandbox::new()
        .run("fn helper(m) {\n    m.missing_field\n}\nfn run() { helper(#{}) }")
        .await
        .unwrap_err();
    assert_eq!((err.line, err.column), (2, 7), "{err}");
    assert!(err.to_string().starts_with("evil.rhai:2:7: "), "{err}");
}

#[tokio::test]
async fn attacks_leave_other_scripts_running() {
    let sandbox = Arc::new(Sandbox::new());
    const ATTACKS: [(&str, &str); 3] = [
        ("fn run() { loop {} }", "too many operations"),
        ("fn f(n) { f(n + 1) } fn run() { f(0) }", "stack overflow"),
        (
            "fn run() { let s = \"x\"; loop { s += s; } }",
            "length of string",
        ),
    ];
    let mut handles = Vec::new();
    for (src, expected) in ATTACKS.iter().cycle().take(12) {
        let sandbox = sandbox.clone();
        handles.push(tokio::spawn(async move {
            refused_by(&sandbox, src, expected).await
        }));
    }
    let good = sandbox
        .run("fn run() { let total = 0; for i in 1..=10 { total += i; } total }")
        .await
        .unwrap();
    assert_eq!(good.as_int().unwrap(), 55);
    for h in handles {
        h.await.unwrap();
    }
    // The threads survive every attack.
    let again = sandbox.run("fn run() { 42 }").await.unwrap();
    assert_eq!(again.as_int().unwrap(), 42);
}

#[tokio::test]
async fn print_and_debug_go_to_a_capped_log() {
    let sandbox = Sandbox::new();
    let (engine, limits) = (sandbox.engine.clone(), sandbox.limits.clone());
    let log = sandbox
        .threads
        .run("log", move || {
            let ast = compile(
                &engine,
                &limits,
                "log.rhai",
                "fn run() { for i in 0..500 { print(`line ${i}`); } }",
            )
            .unwrap();
            with_limits(&limits, || {
                engine.call_fn::<Dynamic>(&mut Scope::new(), &ast, "run", ())
            })
            .1
        })
        .await
        .unwrap();
    assert_eq!(log.len(), Limits::default().max_log_lines);
    assert_eq!(log[0], "line 0");
}

#[tokio::test]
async fn a_tenant_flooding_the_threads_takes_turns_with_the_others() {
    let threads = ScriptThreads::start(1).unwrap();
    let finished = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = Arc::new(std::sync::Mutex::new(gate));
    let job = |tenant: &'static str| {
        let (finished, gate) = (finished.clone(), gate.clone());
        move || {
            // Each call holds the thread until the test lets it go.
            gate.lock().unwrap().recv().unwrap();
            finished.lock().unwrap().push(tenant);
        }
    };
    let call = |tenant: &'static str| {
        let (threads, job) = (threads.clone(), job(tenant));
        tokio::spawn(async move { threads.run(tenant, job).await })
    };
    let mut calls: Vec<_> = (0..10).map(|_| call("flood")).collect();
    // Queued behind ten calls of another tenant, its call waits for one of them at most (besides
    // the one running): first come first served, it would run last.
    let mine = call("mine");
    tokio::task::yield_now().await;
    calls.push(mine);
    for _ in 0..11 {
        release.send(()).unwrap();
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let order = finished.lock().unwrap().clone();
    let mine_at = order.iter().position(|t| *t == "mine").unwrap();
    assert!(mine_at <= 2, "ran at {mine_at}: {order:?}");
}
