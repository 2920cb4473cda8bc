//! A minimal W3C WebDriver client (the few calls the app tests need), over tauri-driver, which
//! hands the session to WebKitWebDriver driving the app's real WebKitGTK window.

use std::time::Duration;

use serde_json::{Value, json};

use crate::wait_for;

/// One WebDriver session.
pub struct Session {
    base: String,
    id: String,
}

fn check(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>, what: &str) -> Value {
    let mut resp = resp.unwrap_or_else(|e| panic!("WebDriver {what}: {e}"));
    let v: Value = resp
        .body_mut()
        .read_json()
        .unwrap_or_else(|e| panic!("WebDriver {what}: {e}"));
    v["value"].clone()
}

impl Session {
    /// Starts `application ARGS` through the driver at `port`.
    pub fn start(port: u16, application: &str, args: &[&str]) -> Self {
        let base = format!("http://127.0.0.1:{port}");
        let caps = json!({ "capabilities": { "alwaysMatch": { "tauri:options": { "application": application, "args": args } } } });
        let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
        let v = check(agent.post(format!("{base}/session")).send_json(caps), "new session");
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {v}"))
            .to_string();
        Session { base, id }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{}", self.base, self.id, path)
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build())
    }

    fn post(&self, path: &str, body: Value) -> Value {
        check(Self::agent().post(self.url(path)).send_json(body), path)
    }

    fn get(&self, path: &str) -> Value {
        check(Self::agent().get(self.url(path)).call(), path)
    }

    /// The element matching a CSS selector, if there is one now.
    pub fn find(&self, css: &str) -> Option<String> {
        // W3C names the element reference by this fixed key; an error is {"error": …}.
        const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
        let v = self.post("/element", json!({ "using": "css selector", "value": css }));
        v.get(ELEMENT)?.as_str().map(str::to_string)
    }

    /// Waits for an element to appear.
    pub fn wait(&self, css: &str, timeout: Duration) -> String {
        wait_for(&format!("element {css}"), timeout, || self.find(css))
    }

    /// The element's text; `None` if it went away meanwhile (the UI re-renders live).
    pub fn text(&self, element: &str) -> Option<String> {
        let v = self.get(&format!("/element/{element}/text"));
        v.as_str().map(str::to_string)
    }

    /// Waits until the element's text contains `needle`; returns the text.
    /// On a timeout it says what the element said last, and how long each look took: a slow
    /// page and a wrong one fail differently.
    pub fn wait_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let mut last: Option<String> = None;
        let mut looks = 0u32;
        let mut slowest = Duration::ZERO;
        let started = std::time::Instant::now();
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for(&format!("{css} to say {needle:?}"), timeout, || {
                let look = std::time::Instant::now();
                looks += 1;
                let t = self.find(css).and_then(|el| self.text(&el));
                slowest = slowest.max(look.elapsed());
                last = t.clone();
                t.filter(|t| t.contains(needle))
            })
        }));
        found.unwrap_or_else(|_| {
            panic!(
                "timed out after {:.1?} waiting for {css} to say {needle:?}; it said {last:?} last ({looks} looks, the slowest {slowest:.1?}). The page said:\n{}",
                started.elapsed(),
                self.page_text()
            )
        })
    }

    /// The text the page shows, for a failure message.
    pub fn page_text(&self) -> String {
        let v = self.post(
            "/execute/sync",
            json!({ "script": "return document.body.innerText;", "args": [] }),
        );
        v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
    }

    /// Clicks the element once it is there and enabled, as a person waits for a greyed-out
    /// button: a click on a disabled one does nothing and would leave the test waiting on a
    /// step that never started.
    ///
    /// The live UI re-renders under the test, so a click that lands on a replaced (stale) or
    /// covered element is retried with a fresh lookup; any other WebDriver error fails the test.
    pub fn click(&self, css: &str) {
        wait_for(&format!("a click on {css}"), Duration::from_secs(10), || {
            let el = self.find(css)?;
            if self.get(&format!("/element/{el}/enabled")) != Value::Bool(true) {
                return None;
            }
            let v = self.post(&format!("/element/{el}/click"), json!({}));
            match v.get("error").and_then(Value::as_str) {
                None => Some(()),
                Some("stale element reference" | "element click intercepted" | "element not interactable") => None,
                Some(e) => panic!("WebDriver click on {css}: {e}: {}", v["message"]),
            }
        });
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.wait(css, Duration::from_secs(10));
        self.post(&format!("/element/{el}/value"), json!({ "text": text }));
    }

    /// Empties the input matching `css`.
    pub fn clear(&self, css: &str) {
        let el = self.wait(css, Duration::from_secs(10));
        self.post(&format!("/element/{el}/clear"), json!({}));
    }

    /// Scrolls the element matching `css` to the top of the window (for screenshots of it).
    pub fn scroll_to(&self, css: &str) {
        self.wait(css, Duration::from_secs(10));
        let script = "document.querySelector(arguments[0]).scrollIntoView({block: 'start'}); return true;";
        self.post("/execute/sync", json!({ "script": script, "args": [css] }));
    }

    /// Waits until the page has painted two more frames, so a screenshot shows the current DOM.
    pub fn settle(&self) {
        let script = "const done = arguments[arguments.length - 1]; \
                      requestAnimationFrame(() => requestAnimationFrame(() => done(true)));";
        self.post("/execute/async", json!({ "script": script, "args": [] }));
    }

    /// Saves a PNG screenshot of the window.
    pub fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        self.settle();
        let v = self.get("/screenshot");
        let data = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("screenshot base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, data).expect("write screenshot");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Self::agent()
            .delete(format!("{}/session/{}", self.base, self.id))
            .call();
    }
}
