//! A class's dashboards in one process (`labctl class dashboard`): every
//! student's lab dashboard on its own loopback port (the student's, reached
//! through their `LocalForward`, acting on their lab only: each is
//! [`super::serve`] on that lab's inventory with the student's action
//! token), and the teacher's page over them all, read-only: each lab's nodes
//! up or down, the scenario, the VIP holder, the failovers the dashboards
//! saw, the lab's last `class verify` per check and when — live — and a
//! drill-down into each lab's own page (`/lab/STUDENT/`, watch only).
//!
//! The teacher's page reads what the labs' dashboards already measure (their
//! [`Shared`] views): no probe of its own. It is served by the same
//! [`super::http`] server and [`super::server::Access`] checks as a lab's page.

use super::http::{Conn, Request};
use super::server::{json_error, stream_events, text, Access, LIVE, PAGE, SCRIPT, STYLE};
use super::state::{masked_value, Shared, View};
use super::{Options, Started};
use crate::inventory::Inventory;
use crate::scenario::Scenario;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const CLASS_PAGE: &str = include_str!("page/class.html");
const CLASS_SCRIPT: &str = include_str!("page/class.js");
const CLASS_STYLE: &str = include_str!("page/class.css");

/// The teacher's page listens here unless told otherwise (a free port when busy).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7100";

/// One student's lab, as the class's dashboards need it.
pub struct Board<'a> {
    pub student: String,
    pub subnet: String,
    pub inv: &'a Inventory,
    pub scenario: Option<&'a Scenario>,
    /// The lab's dashboard: where it listens (`None`: the student has no
    /// port yet, the page shows the lab without its live part) and its action token.
    pub opts: Option<Options>,
    /// The lab's last `class verify`, as JSON (`null`: none yet), read at each look.
    pub last_verify: Box<dyn Fn() -> Value + Sync + 'a>,
}

/// What a lab's dashboard did: started (its URLs) or failed (why).
pub type LabStart<'r> = Result<&'r Started, &'r str>;

/// A lab's live part: its dashboard's view, or why it does not run.
struct Live {
    shared: Shared,
    error: Mutex<Option<String>>,
}

/// Serve the labs' dashboards and the teacher's page (on `listen`, default
/// [`DEFAULT_LISTEN`]) until `should_stop`. `on_start` gets the page's URL
/// (with its read token off loopback); `on_lab` each lab's start or failure.
pub fn run(
    class: &str,
    boards: &[Board],
    listen: Option<SocketAddr>,
    should_stop: &(dyn Fn() -> bool + Sync),
    on_start: &dyn Fn(&str),
    on_lab: &(dyn Fn(&str, LabStart) + Sync),
) -> anyhow::Result<()> {
    let http = super::bind(listen, DEFAULT_LISTEN)?;
    let addr = http.local_addr()?;
    let access = Access::for_listen(addr, super::new_token(), None);
    let query = if access.token_for_reads {
        format!("?token={}", access.read_token)
    } else {
        String::new()
    };
    let lives: Vec<Live> = boards
        .iter()
        .map(|_| Live {
            shared: Shared::new(View::default()),
            error: Mutex::new(None),
        })
        .collect();
    let page = Page {
        class,
        boards,
        lives: &lives,
        http,
        access,
        stop: AtomicBool::new(false),
        streams: AtomicUsize::new(0),
    };
    on_start(&format!("http://{addr}/{query}"));
    std::thread::scope(|s| {
        for (b, live) in boards.iter().zip(&lives) {
            let Some(opts) = &b.opts else {
                continue;
            };
            s.spawn(move || {
                let started = |st: &Started| on_lab(&b.student, Ok(st));
                let r = super::serve(b.inv, b.scenario, opts, &live.shared, should_stop, &started);
                if let Err(e) = r {
                    let msg = crate::error::format_error(&e);
                    on_lab(&b.student, Err(&msg));
                    if let Ok(mut x) = live.error.lock() {
                        *x = Some(msg);
                    }
                }
            });
        }
        let page = &page;
        s.spawn(move || {
            while !should_stop() {
                std::thread::sleep(Duration::from_millis(100));
            }
            page.stop.store(true, Ordering::SeqCst);
        });
        let handler = move |req: Request, conn: Conn| page.handle(req, conn);
        page.http.serve(s, &page.stop, handler);
    });
    Ok(())
}

struct Page<'a> {
    class: &'a str,
    boards: &'a [Board<'a>],
    lives: &'a [Live],
    http: super::http::Server,
    access: Access,
    stop: AtomicBool,
    streams: AtomicUsize,
}

impl Page<'_> {
    fn handle(&self, req: Request, conn: Conn) {
        if req.method != "GET" && req.method != "HEAD" {
            return conn.respond(json_error(405, "the class page is read-only: GET only"));
        }
        let token = req.header("X-Labctl-Token").or_else(|| req.query("token"));
        if let Some((status, why)) =
            self.access
                .refuse("GET", req.path(), req.header("Host"), None, token, None)
        {
            return conn.respond(json_error(status, why));
        }
        let html = |body: &str| {
            text(200, "text/html; charset=utf-8", body.into()).with_header(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            )
        };
        let js = |body: &str| text(200, "text/javascript; charset=utf-8", body.into());
        let css = |body: &str| text(200, "text/css; charset=utf-8", body.into());
        let path = req.path().to_string();
        let r = match path.as_str() {
            "/" => html(CLASS_PAGE),
            "/class.js" => js(CLASS_SCRIPT),
            "/live.js" => js(LIVE),
            "/class.css" => css(CLASS_STYLE),
            "/app.css" => css(STYLE),
            "/state" => text(200, "application/json", self.json()),
            "/events" => {
                let mut last = String::new();
                return stream_events(conn, &self.stop, &self.streams, || {
                    std::thread::sleep(Duration::from_millis(500));
                    let now = self.json();
                    (now != last).then(|| {
                        last = now.clone();
                        now
                    })
                });
            }
            p => {
                let Some((student, file)) = p.strip_prefix("/lab/").and_then(|r| r.split_once('/'))
                else {
                    return conn.respond(json_error(404, "no such page"));
                };
                let Some(i) = self.boards.iter().position(|b| b.student == student) else {
                    return conn.respond(json_error(404, "no such student in this class"));
                };
                let live = &self.lives[i];
                match file {
                    "" => html(PAGE),
                    "app.js" => js(SCRIPT),
                    "live.js" => js(LIVE),
                    "app.css" => css(STYLE),
                    "state" => text(200, "application/json", watch_only(&live.shared)),
                    "events" => {
                        let mut seen = 0u64;
                        return stream_events(conn, &self.stop, &self.streams, || {
                            let now = live.shared.wait_past(seen, Duration::from_secs(1));
                            (now > seen).then(|| {
                                seen = now;
                                watch_only(&live.shared)
                            })
                        });
                    }
                    _ => json_error(
                        404,
                        "the drill-down shows the lab's page only (no actions, no www)",
                    ),
                }
            }
        };
        conn.respond(r)
    }

    /// The class as the page shows it, every string masked.
    fn json(&self) -> String {
        let labs: Vec<Value> = self
            .boards
            .iter()
            .zip(self.lives)
            .map(|(b, live)| lab_json(b, live))
            .collect();
        masked_value(json!({ "class": self.class, "labs": labs })).to_string()
    }
}

/// A lab's view without what only its student may do (actions, www).
fn watch_only(shared: &Shared) -> String {
    let mut v = shared.snapshot();
    v.actions.clear();
    v.www = false;
    masked_value(serde_json::to_value(&v).unwrap_or_default()).to_string()
}

fn lab_json(b: &Board, live: &Live) -> Value {
    let v = live.shared.snapshot();
    let error = live.error.lock().ok().and_then(|e| e.clone());
    let failovers: Vec<Value> = v
        .events
        .iter()
        .filter(|e| e.kind == "failover")
        .map(|e| json!({"t": e.t, "ms": e.ms, "text": e.text}))
        .collect();
    json!({
        "student": b.student,
        "lab": b.inv.lab,
        "subnet": b.subnet,
        "scenario": b.scenario.map(|s| s.name.clone()),
        "live": b.opts.is_some() && error.is_none(),
        "error": error,
        "nodes": v.nodes.iter().map(|n| json!({"name": n.name, "state": n.state})).collect::<Vec<_>>(),
        "vip_holder": v.cluster.as_ref().and_then(|c| c.vip_holder.clone()),
        "members_online": v.cluster.as_ref().map(|c| c.members.iter().filter(|m| m.online).count()),
        "failovers": failovers,
        "verify": (b.last_verify)(),
    })
}
