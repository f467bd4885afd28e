//! A running `labctl dashboard` for the browser tests: started in a project
//! folder, its URLs read from its first lines (the watch URLs, and the
//! operator's after `actions:`), its output forwarded to the test log; Ctrl-C (SIGINT, by its PID) stops it, and drop kills it if a
//! failed test left it running.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

pub struct Dashboard {
    child: Child,
    /// The operator's URL (with the action token) when it printed one, else the first watch URL.
    pub url: String,
    /// The watch URLs it printed (for the class).
    pub watch: Vec<String>,
    /// The operator's URL, when actions are on.
    pub operator: Option<String>,
    /// `ADDR:PORT` of `url`.
    pub host: String,
}

impl Dashboard {
    /// `labctl ARGS` in `dir` (ARGS holds `dashboard …`).
    pub fn start(dir: &Path, args: &[&str]) -> Dashboard {
        let mut child = super::spawn_labctl(dir, args);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let err = BufReader::new(child.stderr.take().unwrap());
        let mut watch = Vec::new();
        let mut operator = None;
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            eprintln!("{}", line.trim_end());
            for w in line.split_whitespace().filter(|w| w.starts_with("http://")) {
                if line.trim_start().starts_with("actions:") {
                    operator = Some(w.to_string());
                } else {
                    watch.push(w.to_string());
                }
            }
            if line.contains("Ctrl-C") {
                break;
            }
        }
        let url = operator
            .clone()
            .or_else(|| watch.first().cloned())
            .unwrap_or_else(|| panic!("no URL printed"));
        // keep reading its output so it never blocks on a full pipe
        for r in [Box::new(out) as Box<dyn BufRead + Send>, Box::new(err)] {
            std::thread::spawn(move || {
                for l in r.lines().map_while(Result::ok) {
                    eprintln!("dashboard: {l}");
                }
            });
        }
        let host = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        Dashboard {
            child,
            url,
            watch,
            operator,
            host,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The token of `url`'s query (`?token=`), if any.
    pub fn read_token(&self) -> Option<String> {
        let u = self.watch.first()?;
        let q = u.split_once("?token=")?.1;
        Some(q.split(['&', '#']).next()?.to_string())
    }

    /// The action token of the operator's URL (`#act=`), if any.
    pub fn action_token(&self) -> Option<String> {
        Some(self.operator.as_ref()?.split_once("#act=")?.1.to_string())
    }

    /// Ctrl-C: how it ended.
    pub fn interrupt(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on the child this test started, by its PID
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < until,
                "the dashboard did not stop on Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: kill(2) on the child this test started, by its PID
            unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// An HTTP answer read whole: (status, head, body).
pub fn parse_answer(text: &str) -> (u16, String, String) {
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    (status, head.to_string(), body.to_string())
}

/// A raw HTTP request to `host` (ADDR:PORT): the whole answer.
fn exchange(host: &str, raw: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_answer(&String::from_utf8_lossy(&buf))
}

/// A raw HTTP request to the dashboard: (status, body).
pub fn http(host: &str, raw: &str) -> (u16, String) {
    let (status, _, body) = exchange(host, raw);
    (status, body)
}

/// A raw HTTP request: the head of the answer.
pub fn http_head(host: &str, raw: &str) -> (u16, String) {
    let (status, head, _) = exchange(host, raw);
    (status, head)
}

pub fn get(host: &str, path: &str, host_header: &str) -> (u16, String) {
    http(
        host,
        &format!("GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n"),
    )
}

/// The request of an action posted to `host` with these headers.
pub fn action_request(host: &str, origin: Option<&str>, token: Option<&str>, body: &str) -> String {
    let mut h = String::new();
    if let Some(o) = origin {
        h += &format!("Origin: {o}\r\n");
    }
    if let Some(t) = token {
        h += &format!("X-Labctl-Action: {t}\r\n");
    }
    format!(
        "POST /action HTTP/1.1\r\nHost: {host}\r\n{h}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

pub fn post(host: &str, origin: Option<&str>, token: Option<&str>, body: &str) -> (u16, String) {
    http(host, &action_request(host, origin, token, body))
}
