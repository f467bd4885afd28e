//! A small WebDriver client for the browser tests: Debian's `chromedriver`
//! (package chromium-driver) driving headless `chromium`, over the W3C
//! WebDriver HTTP protocol (one request per connection, JSON bodies).
//! The driver process and the browser session end on drop. The browser runs
//! on this machine, or inside a network namespace ([`Browser::start_in_netns`]),
//! as another machine's browser would.

use super::free_port;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Browser {
    driver: Child,
    /// Where the driver answers.
    ip: String,
    port: u16,
    session: String,
}

/// One HTTP exchange with the driver: the JSON it answered.
fn call(
    ip: &str,
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let mut s = TcpStream::connect_timeout(
        &format!("{ip}:{port}").parse().map_err(|e| format!("{e}"))?,
        Duration::from_secs(5),
    )
    .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    // read the head, then exactly Content-Length bytes (the driver keeps the connection open)
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let (head_len, length) = loop {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("{method} {path}: the driver closed the connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| format!("{method} {path}: no Content-Length in {head}"))?;
            break (i + 4, length);
        }
    };
    while buf.len() < head_len + length {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let rest = String::from_utf8_lossy(&buf[head_len..]).into_owned();
    let v: Value = serde_json::from_str(&rest).map_err(|e| format!("{e}: {rest}"))?;
    if v["value"].get("error").is_some() {
        return Err(format!("{method} {path}: {}", v["value"]));
    }
    Ok(v["value"].clone())
}

impl Browser {
    /// Start chromedriver and a headless chromium session.
    pub fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (packages chromium and chromium-driver: scripts/install-host-deps)");
        Browser::session(driver, "127.0.0.1", port)
    }

    /// Start chromedriver and chromium inside the network namespace `ns`
    /// (its loopback up): the driver answers on `ns_ip`, to this machine's
    /// `host_ip` only.
    pub fn start_in_netns(ns: &str, ns_ip: &str, host_ip: &str) -> Browser {
        let port = 9515;
        let driver = Command::new("ip")
            .args(["netns", "exec", ns, "chromedriver"])
            .arg(format!("--port={port}"))
            .arg(format!("--allowed-ips={host_ip}"))
            .arg("--allowed-origins=*")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver in the namespace");
        Browser::session(driver, ns_ip, port)
    }

    fn session(driver: Child, ip: &str, port: u16) -> Browser {
        let mut b = Browser {
            driver,
            ip: ip.to_string(),
            port,
            session: String::new(),
        };
        let until = Instant::now() + Duration::from_secs(30);
        while call(ip, port, "GET", "/status", None).is_err() {
            assert!(Instant::now() < until, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--no-proxy-server"]
            }
        }}});
        let v = call(ip, port, "POST", "/session", Some(&caps)).expect("a chromium session");
        b.session = v["sessionId"].as_str().unwrap().to_string();
        b
    }

    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Result<Value, String> {
        call(
            &self.ip,
            self.port,
            method,
            &format!("/session/{}{what}", self.session),
            body.as_ref(),
        )
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .unwrap();
    }

    /// Run `script` (a function body) in the page: what it returned.
    pub fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .unwrap()
    }

    /// The page's text (its `main`, else its body).
    pub fn text(&self) -> String {
        self.js("return (document.querySelector('main') || document.body).innerText")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// [`Browser::wait_for`] that must succeed: else the test fails saying
    /// `what` is not shown, with the page's text.
    pub fn must(&self, script: &str, limit: Duration, what: &str) -> Duration {
        self.wait_for(script, limit)
            .unwrap_or_else(|| panic!("the page does not show {what}: {}", self.text()))
    }

    /// Wait up to `limit` for `script` to return true; the time it took, or `None`.
    pub fn wait_for(&self, script: &str, limit: Duration) -> Option<Duration> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if self.js(script) == Value::Bool(true) {
                return Some(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Click the element `css` selects (found again if the page redrew it meanwhile).
    pub fn click(&self, css: &str) {
        let mut last = String::new();
        for _ in 0..50 {
            let e = self
                .cmd(
                    "POST",
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .unwrap_or_else(|e| panic!("no element {css}: {e}"));
            let id = e
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(|v| v.as_str())
                .unwrap()
                .to_string();
            match self.cmd("POST", &format!("/element/{id}/click"), Some(json!({}))) {
                Ok(_) => return,
                Err(e) if e.contains("stale element") => last = e,
                Err(e) => panic!("click {css}: {e}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("click {css}: {last}");
    }

    /// Save a screenshot of the page as a PNG file.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = self.cmd("GET", "/screenshot", None).unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.cmd("DELETE", "", None);
        // SAFETY: kill(2) on the chromedriver this test started, by its PID
        unsafe { libc::kill(self.driver.id() as i32, libc::SIGTERM) };
        let _ = self.driver.wait();
    }
}
