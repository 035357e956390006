//! A small WebDriver client for headless Chromium (through `chromedriver`), enough to drive the
//! dashboard: open pages, wait for conditions in the page, click, and take screenshots.
//!
//! [`Browser::start`] returns `None` (the test is skipped) when Chromium is not installed,
//! unless `SWITCHBOARD_BROWSER_TESTS=required` (as in `.ci/run`, which installs it).

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

/// A Chromium session driven over WebDriver; the driver process ends when this is dropped.
pub struct Browser {
    driver: tokio::process::Child,
    base: String,
    http: reqwest::Client,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session (`width`×`height` window).
    pub async fn start(width: u32, height: u32) -> Option<Browser> {
        let found = |c: &str| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let chromium = ["chromium", "chromium-browser"]
            .into_iter()
            .find(|c| found(c));
        let (Some(chromium), true) = (chromium, found("chromedriver")) else {
            let required =
                std::env::var("SWITCHBOARD_BROWSER_TESTS").is_ok_and(|v| v == "required");
            assert!(
                !required,
                "Chromium and chromedriver are required but not installed"
            );
            eprintln!("skipped: chromium or chromedriver is not installed");
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().unwrap().port()
        };
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        crate::eventually("chromedriver ready", Duration::from_secs(20), || async {
            let status = http.get(format!("{base}/status")).send().await.ok()?;
            let body: Value = status.json().await.ok()?;
            (body["value"]["ready"] == true).then_some(())
        })
        .await;
        let profile =
            std::env::temp_dir().join(format!("sb-chromium-{}", uuid::Uuid::now_v7().simple()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": which(chromium),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={width},{height}"),
                ]
            }
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session answer");
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {resp}"));
        Some(Browser {
            driver,
            base: format!("{base}/session/{session}"),
            http,
            profile,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        resp["value"].clone()
    }

    /// Opens `url`.
    pub async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body; `arguments` available) in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Waits until `script` returns something truthy in the page; returns it.
    pub async fn wait_for(&self, what: &str, script: &str, within: Duration) -> Value {
        crate::eventually(what, within, || async {
            let v = self.eval(script).await;
            let truthy = !(v.is_null() || v == false || v == "" || v == 0);
            truthy.then_some(v)
        })
        .await
    }

    /// Signs in with `key` on the open page's sign-in form (which it waits for), then waits
    /// until the page shows the session.
    pub async fn sign_in(&self, key: &str) {
        let within = Duration::from_secs(30);
        let form = "return document.querySelector('#sign-in-view:not([hidden])') !== null;";
        self.wait_for("the sign-in form", form, within).await;
        self.eval(&format!(
            "document.querySelector('#sign-in-key').value = {}; \
             document.querySelector('#sign-in-submit').click(); return true;",
            json!(key)
        ))
        .await;
        let signed_in = "return document.querySelector('#session:not([hidden])') !== null;";
        self.wait_for("the signed-in page", signed_in, within).await;
    }

    /// Clicks the first element matching `selector`.
    pub async fn click(&self, selector: &str) {
        let script = format!(
            "const e = document.querySelector({}); if (!e) return false; e.click(); return true;",
            json!(selector)
        );
        assert_eq!(
            self.eval(&script).await,
            true,
            "nothing to click at {selector}"
        );
    }

    /// Saves a PNG of the viewport as `<dir>/<name>.png` (dir: `SWITCHBOARD_SCREENSHOTS`, else
    /// `switchboard-screenshots` in the temp dir) and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64 screenshot"))
            .expect("decodes");
        let dir = std::env::var_os("SWITCHBOARD_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("switchboard-screenshots"));
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("screenshot written");
        eprintln!("screenshot: {}", path.display());
        path
    }
}

impl Browser {
    /// Ends the session (closing Chromium) and the driver.
    pub async fn close(self) {
        let _ = self.http.delete(self.base.clone()).send().await;
    }
}

fn which(program: &str) -> String {
    std::process::Command::new("which")
        .arg(program)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| program.to_owned())
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
