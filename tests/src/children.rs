//! `switchboard` child processes for multi-process tests: started with their own environment,
//! their output in a log file; stopped with SIGTERM (and waited for) or killed with SIGKILL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// The variable the test crate's `switchboard-process` binary reads its business clock from.
pub const BUSINESS_CLOCK_VAR: &str = "SWITCHBOARD_TEST_BUSINESS_CLOCK";

/// A running `switchboard` child (the test crate's `switchboard-process` binary).
pub struct Process {
    /// For messages, e.g. `worker-2`.
    pub label: String,
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// Where its standard output and error go.
    pub log: PathBuf,
}

impl Process {
    /// Starts `switchboard <role>` with `env` (on top of this process' environment, provider
    /// keys removed: a real key would replace the simulator or the fakes the test steers), its
    /// output appended to `<logs>/<label>.log`. Its business clock is
    /// [`lawful_hour_today`](crate::lawful_hour_today), as the in-process apps' (`env` may set
    /// [`BUSINESS_CLOCK_VAR`] otherwise): calls are inside legal hours whenever the suite runs.
    pub fn start(label: &str, role: &str, env: &[(&str, String)], logs: &Path) -> Process {
        let log = logs.join(format!("{label}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the process' log file");
        let err = out.try_clone().unwrap();
        let mut command = Command::new(program());
        command
            .arg(role)
            .env_remove("ELEVENLABS_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .env_remove("SWITCHBOARD_OPERATOR_KEY")
            .env("NO_COLOR", "1")
            .env(BUSINESS_CLOCK_VAR, crate::lawful_hour_today().to_rfc3339());
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .expect("start switchboard-process");
        let pid = child.id().expect("the child's pid");
        Process {
            label: label.to_owned(),
            child,
            pid,
            log,
        }
    }

    /// Its output so far, without colour codes.
    pub fn log_text(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Panics (with its log) if it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early with {status}:\n{}",
                self.label,
                self.log_text()
            );
        }
    }

    /// Waits up to `deadline` for it to exit by itself; panics otherwise.
    pub async fn exited(&mut self, deadline: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(deadline, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} still runs:\n{}", self.label, self.log_text()))
            .expect("wait for the process")
    }

    /// Sends `signal` (`TERM`, `KILL`).
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid);
    }

    /// Kills it with SIGKILL (no chance to finish anything) and reaps it.
    pub async fn kill(mut self) {
        self.signal("KILL");
        let _ = self.child.wait().await;
    }

    /// Sends SIGTERM and waits up to `deadline` for a clean exit; panics otherwise.
    pub async fn stop(&mut self, deadline: Duration) {
        self.signal("TERM");
        let status = tokio::time::timeout(deadline, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} did not exit within {deadline:?} of SIGTERM:\n{}",
                    self.label,
                    self.log_text()
                )
            })
            .expect("wait for the process");
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM:\n{}",
            self.label,
            self.log_text()
        );
    }
}

/// The test crate's `switchboard-process` binary, beside the test binary's `deps/` folder (where
/// cargo builds it for integration tests).
fn program() -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .expect("the test binary sits in <target>/<profile>/deps");
    let program = profile_dir.join("switchboard-process");
    assert!(program.exists(), "{} is not built", program.display());
    program
}

/// `s` without ANSI colour codes.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The apalis worker name in a `worker running worker=<name>` log line, once written.
pub fn registered_worker_name(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("worker running"))?;
    let name = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("worker="))?;
    Some(name.trim_matches('"').to_owned())
}

/// A directory for the logs of one test's processes.
pub fn log_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sb_{test}_{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("create the log directory");
    dir
}
