//! The dashboard's HTTP server (tiny_http): the page and its assets, the view
//! as JSON (`/state`) and as server-sent events (`/events`), the actions
//! (`POST /action`), and the site fetched through the lab (`/www/…`).
//!
//! Safety: a request whose `Host:` is not the address the server listens on
//! is refused (a page on another site cannot reach the dashboard by renaming
//! itself, DNS rebinding); off loopback every request needs the token the URL
//! carries; an action needs the token (the page has it, a page of another
//! origin cannot read it) and an `Origin:` that is the dashboard's own.

use super::actions::{Action, Request as ActionRequest};
use super::probes::Probes;
use super::state::Shared;
use crate::checks::http_client::get;
use crate::checks::{dns, Env};
use hickory_proto::rr::RecordType;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tiny_http::{Header, Method, Request, Response};

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/app.css");

/// Who may talk to the server.
#[derive(Debug, Clone)]
pub struct Access {
    /// The `Host:` values that name this server.
    pub hosts: Vec<String>,
    pub token: String,
    /// Whether reading (the page, the view) needs the token too (off loopback).
    pub token_for_reads: bool,
}

impl Access {
    pub fn for_listen(addr: SocketAddr, token: String) -> Access {
        let mut hosts = vec![addr.to_string()];
        let loopback = addr.ip().is_loopback();
        if loopback {
            hosts.push(format!("localhost:{}", addr.port()));
        }
        Access {
            hosts,
            token,
            token_for_reads: !loopback,
        }
    }

    /// Why a request may not be served, if it may not.
    pub fn refuse(
        &self,
        method: &str,
        host: Option<&str>,
        origin: Option<&str>,
        token: Option<&str>,
    ) -> Option<&'static str> {
        let Some(host) = host.filter(|h| self.hosts.iter().any(|x| x.eq_ignore_ascii_case(h)))
        else {
            return Some("this dashboard answers only to its own address (Host header)");
        };
        let token_ok = token.is_some_and(|t| same(t.as_bytes(), self.token.as_bytes()));
        if method == "POST" {
            if origin.map(|o| o.to_ascii_lowercase())
                != Some(format!("http://{}", host.to_ascii_lowercase()))
            {
                return Some(
                    "actions are accepted only from the dashboard's own page (Origin header)",
                );
            }
            if !token_ok {
                return Some("actions need the dashboard's token");
            }
        } else if self.token_for_reads && !token_ok {
            return Some("this dashboard needs the token of its URL (printed when it started)");
        }
        None
    }
}

/// Compare without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn header<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn query_param<'u>(url: &'u str, name: &str) -> Option<&'u str> {
    let q = url.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

fn hdr(k: &str, v: &str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap_or_else(|_| {
        Header::from_bytes(&b"X-Invalid"[..], &b"1"[..]).expect("a valid header")
    })
}

fn text(status: u16, ctype: &str, body: String) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_data(body.into_bytes())
        .with_status_code(status)
        .with_header(hdr("Content-Type", ctype))
        .with_header(hdr("Cache-Control", "no-store"))
        .with_header(hdr("X-Content-Type-Options", "nosniff"))
}

fn json_error(status: u16, msg: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    text(
        status,
        "application/json",
        serde_json::json!({ "error": msg }).to_string(),
    )
}

/// The server with what it serves.
pub struct Server<'a> {
    pub http: tiny_http::Server,
    pub access: Access,
    pub shared: &'a Shared,
    pub probes: &'a Probes<'a>,
    pub env: &'a Env<'a>,
    pub stop: &'a AtomicBool,
}

impl Server<'_> {
    /// Serve until `stop` is set; each request on a thread of its own.
    pub fn serve<'s>(&'s self, s: &'s std::thread::Scope<'s, '_>) {
        while !self.stop.load(Ordering::SeqCst) {
            match self.http.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(req)) => {
                    s.spawn(move || self.handle(req, s));
                }
                Ok(None) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        self.shared.wake_all();
    }

    fn handle<'s>(&'s self, mut req: Request, s: &'s std::thread::Scope<'s, '_>) {
        let method = match req.method() {
            Method::Get | Method::Head => "GET",
            Method::Post => "POST",
            _ => {
                let _ = req.respond(json_error(405, "only GET and POST"));
                return;
            }
        };
        let url = req.url().to_string();
        let path = url.split('?').next().unwrap_or("/").to_string();
        let token = header(&req, "X-Labctl-Token").or_else(|| query_param(&url, "token"));
        if let Some(why) =
            self.access
                .refuse(method, header(&req, "Host"), header(&req, "Origin"), token)
        {
            let _ = req.respond(json_error(403, why));
            return;
        }
        let r = match (method, path.as_str()) {
            ("GET", "/") => {
                let page = PAGE.replace("{{TOKEN}}", &self.access.token);
                text(200, "text/html; charset=utf-8", page)
                    .with_header(hdr(
                        "Content-Security-Policy",
                        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                    ))
                    .with_header(hdr("Referrer-Policy", "no-referrer"))
            }
            ("GET", "/app.js") => text(200, "text/javascript; charset=utf-8", SCRIPT.into()),
            ("GET", "/app.css") => text(200, "text/css; charset=utf-8", STYLE.into()),
            ("GET", "/state") => text(
                200,
                "application/json",
                serde_json::to_string(&self.shared.snapshot()).unwrap_or_default(),
            ),
            ("GET", "/events") => {
                self.events(req);
                return;
            }
            ("POST", "/action") => self.action(&mut req, s),
            ("GET", p) if p == "/www" || p.starts_with("/www/") => {
                self.www(&url[4.min(url.len())..])
            }
            _ => json_error(404, "no such page"),
        };
        let _ = req.respond(r);
    }

    /// Server-sent events: the whole view at every change (at most every 100 ms).
    fn events(&self, req: Request) {
        let mut w = req.into_writer();
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n\r\n";
        if w.write_all(head.as_bytes())
            .and_then(|_| w.flush())
            .is_err()
        {
            return;
        }
        let mut seen = 0u64;
        let mut quiet = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            let now = self.shared.wait_past(seen, Duration::from_secs(1));
            let msg = if now > seen {
                seen = now;
                quiet = Instant::now();
                let json = serde_json::to_string(&self.shared.snapshot()).unwrap_or_default();
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

    fn action<'s>(
        &'s self,
        req: &mut Request,
        s: &'s std::thread::Scope<'s, '_>,
    ) -> Response<std::io::Cursor<Vec<u8>>> {
        let mut body = Vec::new();
        if req.as_reader().take(4096).read_to_end(&mut body).is_err() {
            return json_error(400, "cannot read the request");
        }
        let r: ActionRequest = match serde_json::from_slice(&body) {
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
    fn www(&self, rest: &str) -> Response<std::io::Cursor<Vec<u8>>> {
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
            (None, Some((server, port, name))) => {
                if !self.probes.limiter.take(&stop) {
                    return json_error(503, "stopping");
                }
                ctx.ensure_safe(server.addr)
                    .and_then(|_| {
                        dns::query(
                            ctx.inv.jump(),
                            SocketAddr::new(server.addr.into(), *port),
                            name,
                            RecordType::A,
                            Duration::from_secs(1),
                        )
                    })
                    .and_then(|a| {
                        a.answers
                            .first()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| format!("{} has no address for {name}", server.label))
                    })
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
                text(r.status, ctype, r.body).with_header(hdr(
                    "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
                ))
            }
            Err(e) => json_error(502, &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_origin_and_token_are_checked() {
        let a = Access::for_listen("127.0.0.1:8080".parse().unwrap(), "s3cret".into());
        let h = Some("127.0.0.1:8080");
        assert_eq!(a.refuse("GET", h, None, None), None);
        assert_eq!(a.refuse("GET", Some("localhost:8080"), None, None), None);
        assert!(a
            .refuse("GET", Some("evil.example:8080"), None, None)
            .is_some());
        assert!(a.refuse("GET", None, None, None).is_some());
        let o = Some("http://127.0.0.1:8080");
        assert_eq!(a.refuse("POST", h, o, Some("s3cret")), None);
        assert!(a.refuse("POST", h, o, Some("wrong")).is_some());
        assert!(a.refuse("POST", h, o, None).is_some());
        assert!(a
            .refuse("POST", h, Some("http://evil.example"), Some("s3cret"))
            .is_some());
        assert!(a.refuse("POST", h, None, Some("s3cret")).is_some());
        // off loopback, reading needs the token too
        let a = Access::for_listen("10.0.0.5:8080".parse().unwrap(), "s3cret".into());
        let h = Some("10.0.0.5:8080");
        assert!(a.refuse("GET", h, None, None).is_some());
        assert_eq!(a.refuse("GET", h, None, Some("s3cret")), None);
        assert!(a
            .refuse("GET", Some("localhost:8080"), None, Some("s3cret"))
            .is_some());
        assert_eq!(query_param("/?a=1&token=x", "token"), Some("x"));
    }
}
