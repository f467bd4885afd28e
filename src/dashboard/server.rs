//! What the dashboard serves (over [`super::http`]): the page and its
//! assets, the view as JSON (`/state`) and as server-sent events
//! (`/events`), the actions (`POST /action`), and the site fetched through
//! the lab (`/www/…`).
//!
//! Who may do what ([`Access`]):
//! - a request whose `Host:` does not name this server is refused (a page on
//!   another site cannot reach it by renaming itself, DNS rebinding); bound to
//!   all addresses (`0.0.0.0`), any name of the machine will do, since every
//!   request then needs the read token;
//! - reading (the page, the view, the site) needs the *read token* of the
//!   class's URL when the server listens off loopback;
//! - an action needs the *action token*, which only the operator's URL
//!   carries (in its `#fragment`: never sent in a request line, a log or a
//!   `Referer`), and an `Origin:` that is the dashboard's own. Off loopback
//!   there is no action token unless `--actions` asked for one.
//!
//! Every answer says `Referrer-Policy: no-referrer`, and every string of the
//! view is masked like the CLI's output ([`crate::redact::mask`]).

use super::actions::{Action, Request as ActionRequest};
use super::http::{Conn, Request, Response};
use super::probes::Probes;
use super::state::Shared;
use crate::checks::http_client::get;
use crate::checks::Env;
use crate::redact::mask;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub(super) const PAGE: &str = include_str!("page/index.html");
pub(super) const SCRIPT: &str = include_str!("page/app.js");
pub(super) const STYLE: &str = include_str!("page/app.css");
pub(super) const LIVE: &str = include_str!("page/live.js");

/// The most page streams (`/events`) at once; the other requests keep the
/// rest of the server's workers.
pub const MAX_STREAMS: usize = 96;

/// Who may talk to the server.
#[derive(Debug, Clone)]
pub struct Access {
    /// The `Host:` values that name this server; `None`: any (bound to all
    /// addresses, where every request needs the read token).
    pub hosts: Option<Vec<String>>,
    pub read_token: String,
    /// Whether reading (the page, the view) needs the read token (off loopback).
    pub token_for_reads: bool,
    /// The action token; `None`: actions are off.
    pub action_token: Option<String>,
}

/// What anyone who can name the server may read: the pages' scripts and
/// styles, the same in every labctl (the pages load them without the token;
/// the class page's drill-downs too, below `/lab/STUDENT/`).
const PUBLIC: [&str; 5] = ["/app.js", "/app.css", "/live.js", "/class.js", "/class.css"];

fn public(path: &str) -> bool {
    PUBLIC.contains(&path)
        || path
            .strip_prefix("/lab/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(_, file)| PUBLIC[..3].contains(&format!("/{file}").as_str()))
}

/// Why a request is refused: its status and the reason shown.
pub type Refusal = (u16, &'static str);

impl Access {
    pub fn for_listen(
        addr: SocketAddr,
        read_token: String,
        action_token: Option<String>,
    ) -> Access {
        let loopback = addr.ip().is_loopback();
        let hosts = if addr.ip().is_unspecified() {
            None
        } else {
            let mut hosts = vec![addr.to_string()];
            if loopback {
                hosts.push(format!("localhost:{}", addr.port()));
            }
            Some(hosts)
        };
        Access {
            hosts,
            read_token,
            token_for_reads: !loopback,
            action_token,
        }
    }

    /// Why a request may not be served, if it may not.
    pub fn refuse(
        &self,
        method: &str,
        path: &str,
        host: Option<&str>,
        origin: Option<&str>,
        read_token: Option<&str>,
        action_token: Option<&str>,
    ) -> Option<Refusal> {
        let host = match (host, &self.hosts) {
            (Some(h), None) if !h.is_empty() => h,
            (Some(h), Some(hosts)) if hosts.iter().any(|x| x.eq_ignore_ascii_case(h)) => h,
            _ => {
                return Some((
                    403,
                    "this dashboard answers only to its own address (Host header)",
                ))
            }
        };
        if method == "POST" {
            if origin.map(|o| o.to_ascii_lowercase())
                != Some(format!("http://{}", host.to_ascii_lowercase()))
            {
                return Some((
                    403,
                    "actions are accepted only from the dashboard's own page (Origin header)",
                ));
            }
            let Some(want) = &self.action_token else {
                return Some((
                    403,
                    "actions are off: this dashboard listens off loopback without --actions",
                ));
            };
            if !action_token.is_some_and(|t| same(t.as_bytes(), want.as_bytes())) {
                return Some((
                    403,
                    "actions need the action token: open the operator's URL labctl printed",
                ));
            }
        } else if self.token_for_reads
            && !public(path)
            && !read_token.is_some_and(|t| same(t.as_bytes(), self.read_token.as_bytes()))
        {
            return Some((
                403,
                "this dashboard needs the token of its URL (printed when it started)",
            ));
        }
        None
    }
}

/// Compare without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The headers every answer carries.
pub(super) fn guarded(r: Response) -> Response {
    r.with_header("Cache-Control", "no-store")
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("X-Frame-Options", "DENY")
}

pub(super) fn text(status: u16, ctype: &str, body: String) -> Response {
    guarded(Response::new(status, ctype, body))
}

pub(super) fn json_error(status: u16, msg: &str) -> Response {
    text(
        status,
        "application/json",
        serde_json::json!({ "error": mask(msg) }).to_string(),
    )
}

/// The server with what it serves.
pub struct Server<'a> {
    pub http: super::http::Server,
    pub access: Access,
    pub shared: &'a Shared,
    pub probes: &'a Probes<'a>,
    pub env: &'a Env<'a>,
    pub stop: &'a AtomicBool,
    pub streams: AtomicUsize,
}

/// Server-sent events on `conn` until `stop` or the client leaves: each
/// value `next` gives (it waits about a second for one, `None`: nothing
/// new), at most every 100 ms, and a comment after 10 quiet seconds. At
/// most [`MAX_STREAMS`] at once (`streams` counts them).
pub(super) fn stream_events(
    conn: Conn,
    stop: &AtomicBool,
    streams: &AtomicUsize,
    mut next: impl FnMut() -> Option<String>,
) {
    if streams.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
        streams.fetch_sub(1, Ordering::SeqCst);
        return conn.respond(json_error(503, "too many pages open: try again later"));
    }
    let _counted = Stream(streams);
    let head = guarded(Response::new(200, "text/event-stream", Vec::new()));
    let Ok(mut w) = conn.stream(head) else {
        return;
    };
    let mut quiet = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let msg = if let Some(json) = next() {
            quiet = Instant::now();
            format!("data: {json}\n\n")
        } else if quiet.elapsed() > Duration::from_secs(10) {
            quiet = Instant::now();
            ": still here\n\n".to_string()
        } else {
            continue;
        };
        if w.write_all(msg.as_bytes()).and_then(|_| w.flush()).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Counts a page stream while it lives.
struct Stream<'a>(&'a AtomicUsize);

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Server<'_> {
    /// Serve until `stop` is set; each request on a thread of its own.
    pub fn serve<'s>(&'s self, s: &'s std::thread::Scope<'s, '_>) {
        let handler = move |req: Request, conn: Conn| self.handle(req, conn, s);
        self.http.serve(s, self.stop, handler);
        self.shared.wake_all();
    }

    fn handle<'s>(&'s self, req: Request, conn: Conn, s: &'s std::thread::Scope<'s, '_>) {
        let method = match req.method.as_str() {
            "GET" | "HEAD" => "GET",
            "POST" => "POST",
            _ => return conn.respond(json_error(405, "only GET and POST")),
        };
        let read_token = req.header("X-Labctl-Token").or_else(|| req.query("token"));
        if let Some((status, why)) = self.access.refuse(
            method,
            req.path(),
            req.header("Host"),
            req.header("Origin"),
            read_token,
            req.header("X-Labctl-Action"),
        ) {
            return conn.respond(json_error(status, why));
        }
        let path = req.path().to_string();
        let r = match (method, path.as_str()) {
            ("GET", "/") => text(200, "text/html; charset=utf-8", PAGE.into()).with_header(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
            ("GET", "/app.js") => text(200, "text/javascript; charset=utf-8", SCRIPT.into()),
            ("GET", "/app.css") => text(200, "text/css; charset=utf-8", STYLE.into()),
            ("GET", "/live.js") => text(200, "text/javascript; charset=utf-8", LIVE.into()),
            ("GET", "/state") => text(200, "application/json", self.shared.masked_json()),
            ("GET", "/events") => return self.events(conn),
            ("POST", "/action") => self.action(&req, s),
            ("GET", p) if p == "/www" || p.starts_with("/www/") => {
                self.www(&req.target[4.min(req.target.len())..])
            }
            _ => json_error(404, "no such page"),
        };
        conn.respond(r)
    }

    /// Server-sent events: the whole view at every change (at most every 100 ms).
    fn events(&self, conn: Conn) {
        let mut seen = 0u64;
        stream_events(conn, self.stop, &self.streams, || {
            let now = self.shared.wait_past(seen, Duration::from_secs(1));
            (now > seen).then(|| {
                seen = now;
                self.shared.masked_json()
            })
        })
    }

    fn action<'s>(&'s self, req: &Request, s: &'s std::thread::Scope<'s, '_>) -> Response {
        let r: ActionRequest = match serde_json::from_slice(&req.body) {
            Ok(r) => r,
            Err(e) => return json_error(400, &format!("not an action: {e}")),
        };
        let offered = self.shared.read(|v| v.actions.clone());
        match Action::parse(&r, &offered) {
            Ok(a) => {
                let probes = self.probes;
                // the action runs on its own thread: the server answers at once
                s.spawn(move || a.run(probes));
                text(202, "application/json", "{\"ok\":true}".into())
            }
            Err(e) => json_error(400, &e),
        }
    }

    /// The site through the lab: its name resolved by the lab's DNS on each
    /// request, fetched from the address it answers (a lab address only).
    fn www(&self, rest: &str) -> Response {
        let Some(www) = self.probes.targets.www.clone() else {
            return json_error(404, "the scenario names no site");
        };
        let Some(url) = www.url else {
            return json_error(404, "the scenario names no site");
        };
        let path = match rest.split('?').next().unwrap_or("") {
            "" => "/".to_string(),
            p => p.to_string(),
        };
        let ctx = self.env.ctx(Instant::now() + Duration::from_secs(5));
        let stop = || self.stop.load(Ordering::SeqCst);
        let addr = match (url.ip(), &www.dns) {
            (Some(a), _) => Ok(a),
            (None, Some((server, _, name))) => {
                match self.probes.www_dns(&ctx, Duration::from_secs(1)) {
                    None => return json_error(503, "stopping"),
                    Some(r) => r.and_then(|answers| {
                        answers
                            .first()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| format!("{} has no address for {name}", server.label))
                    }),
                }
            }
            (None, None) => Err(format!("no DNS server to resolve {}", url.host)),
        };
        let got = addr.and_then(|a| {
            ctx.ensure_safe(a)?;
            if !self.probes.limiter.take(&stop) {
                return Err("stopping".to_string());
            }
            get(
                ctx.inv.jump(),
                SocketAddr::new(a.into(), url.port),
                &url.host_header(),
                &path,
                Duration::from_secs(2),
            )
        });
        match got {
            Ok(r) => {
                let ctype = if path.ends_with('/') || path.ends_with(".html") {
                    "text/html; charset=utf-8"
                } else {
                    "text/plain; charset=utf-8"
                };
                text(r.status, ctype, mask(&r.body)).with_header(
                    "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
                )
            }
            Err(e) => json_error(502, &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_origin_and_tokens_are_checked() {
        let a = Access::for_listen(
            "127.0.0.1:8080".parse().unwrap(),
            "r3ad".into(),
            Some("s3cret".into()),
        );
        let h = Some("127.0.0.1:8080");
        assert_eq!(a.refuse("GET", "/", h, None, None, None), None);
        assert_eq!(
            a.refuse("GET", "/", Some("localhost:8080"), None, None, None),
            None
        );
        assert!(a
            .refuse("GET", "/", Some("evil.example:8080"), None, None, None)
            .is_some());
        assert!(a.refuse("GET", "/", None, None, None, None).is_some());
        let o = Some("http://127.0.0.1:8080");
        assert_eq!(a.refuse("POST", "/", h, o, None, Some("s3cret")), None);
        assert!(a.refuse("POST", "/", h, o, None, Some("wrong")).is_some());
        assert!(a.refuse("POST", "/", h, o, None, None).is_some());
        // the read token is no action token
        assert!(a
            .refuse("POST", "/", h, o, Some("r3ad"), Some("r3ad"))
            .is_some());
        assert!(a
            .refuse(
                "POST",
                "/",
                h,
                Some("http://evil.example"),
                None,
                Some("s3cret")
            )
            .is_some());
        assert!(a
            .refuse("POST", "/", h, None, None, Some("s3cret"))
            .is_some());
        // off loopback, reading needs the read token too
        let a = Access::for_listen("10.0.0.5:8080".parse().unwrap(), "r3ad".into(), None);
        let h = Some("10.0.0.5:8080");
        assert!(a.refuse("GET", "/", h, None, None, None).is_some());
        assert_eq!(a.refuse("GET", "/", h, None, Some("r3ad"), None), None);
        assert!(a
            .refuse("GET", "/", Some("localhost:8080"), None, Some("r3ad"), None)
            .is_some());
        // no action token: no actions at all
        let o = Some("http://10.0.0.5:8080");
        assert!(a
            .refuse("POST", "/", h, o, Some("r3ad"), Some(""))
            .is_some());
        // on all addresses: any name of the machine, with the read token
        let a = Access::for_listen("0.0.0.0:8080".parse().unwrap(), "r3ad".into(), None);
        assert_eq!(
            a.refuse("GET", "/", Some("10.1.81.1:8080"), None, Some("r3ad"), None),
            None
        );
        assert_eq!(
            a.refuse(
                "GET",
                "/",
                Some("teacher.local:8080"),
                None,
                Some("r3ad"),
                None
            ),
            None
        );
        assert!(a
            .refuse("GET", "/", Some("10.1.81.1:8080"), None, None, None)
            .is_some());
        assert!(a
            .refuse("GET", "/", Some(""), None, Some("r3ad"), None)
            .is_some());
        // the script and the style are the same in every labctl: no token
        let h = Some("10.1.81.1:8080");
        assert_eq!(a.refuse("GET", "/app.js", h, None, None, None), None);
        assert!(a.refuse("GET", "/state", h, None, None, None).is_some());
        assert_eq!(
            a.refuse("GET", "/lab/ana/app.js", h, None, None, None),
            None
        );
        assert!(a
            .refuse("GET", "/lab/ana/state", h, None, None, None)
            .is_some());
        assert!(a
            .refuse("GET", "/lab/ana/x/app.js", h, None, None, None)
            .is_some());
    }
}
