//! `http`: GET a URL whose host is resolved through the lab DNS server, like
//! `curl http://www.example.com/info.txt` from a client of the lab.
//!
//! ```yaml
//! - http: {url: "http://www.{{ domain }}/info.txt", dns: dns, nodes: [nodo1, nodo2]}
//! - http: {url: "http://{{ vip }}/", expect_body: "It works"}
//! - http: {url: "http://www.{{ domain }}/info.txt", dns: dns, same_node: true}
//! ```
//!
//! Every request resolves the host again (so DNS round robin shows), opens a
//! fresh connection to the first address, and sends HTTP/1.1 with the URL's
//! `Host:` and `Connection: close`. `info.txt` holds the name of the node that
//! served it: `nodes:` expects every listed node to answer at least once over
//! `requests:` requests; `same_node: true` expects one node to answer them all.

use super::{dns, node_list, Host, Outcome, PrepareCtx};
use crate::duration::Dur;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The `http:` check as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `http://HOST[:PORT]/PATH`; HOST is a name (resolved through `dns:`) or an address.
    pub url: String,
    /// The node whose DNS server resolves the URL's host name.
    #[serde(default)]
    pub dns: Option<String>,
    /// That DNS server's port (default 53).
    #[serde(default)]
    pub dns_port: Option<u16>,
    /// The status every answer must have (default 200).
    #[serde(default)]
    pub expect_status: Option<u16>,
    /// Text every answer's body must contain.
    #[serde(default)]
    pub expect_body: Option<String>,
    /// Every one of these nodes must answer at least once (`info.txt` names the node).
    #[serde(default)]
    pub nodes: Option<Vec<String>>,
    /// Every answer must come from the same node (active/passive).
    #[serde(default)]
    pub same_node: bool,
    /// How many requests, each on a fresh connection (default 1; 10 with `nodes`/`same_node`).
    #[serde(default)]
    pub requests: Option<u32>,
    /// Time limit of each request (default 2s).
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// An `http://` URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    /// Parse `http://host[:port][/path]` (no https, no user info, IPv4 or names only).
    pub fn parse(s: &str) -> Result<Url, String> {
        let s = s.trim();
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "`{s}`: only http:// URLs can be checked (not {scheme}://)"
                ))
            }
            None => {
                return Err(format!(
                    "`{s}` is not a URL; write it like http://www.example.com/info.txt"
                ))
            }
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (auth, path) = rest.split_at(end);
        let path = path.split('#').next().unwrap_or_default();
        let path = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if auth.contains('@') || auth.contains('[') {
            return Err(format!(
                "`{s}`: user names and IPv6 addresses are not supported"
            ));
        }
        let (host, port) = match auth.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("`{s}`: `{p}` is not a port"))?,
            ),
            None => (auth, 80),
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        {
            return Err(format!("`{s}`: `{host}` is not a host name or address"));
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("`{s}`: the path has spaces; write them as %20"));
        }
        Ok(Url {
            host: host.to_ascii_lowercase(),
            port,
            path,
        })
    }

    /// The `Host:` header: the host, and the port when it is not 80.
    pub fn host_header(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The host as an address, when it is one.
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.host.parse().ok()
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.host_header(), self.path)
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// GET `path` from `addr` with `Host: host` on a fresh connection; at most `timeout` in all.
pub fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<Response, String> {
    let deadline = Instant::now() + timeout;
    let timed_out = || format!("no answer from {addr} within {} ms", timeout.as_millis());
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        ) {
            format!("cannot connect to {addr} within {} ms", timeout.as_millis())
        } else {
            format!("cannot connect to {addr}: {e}")
        }
    })?;
    let _ = s.set_nodelay(true);
    let left = |d: Instant| {
        d.checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    };
    let _ = s.set_write_timeout(left(deadline).or(Some(Duration::from_millis(1))));
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: labctl-verify\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("cannot send the request to {addr}: {e}"))?;
    const MAX: usize = 1 << 20;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let Some(rem) = left(deadline) else {
            return Err(timed_out());
        };
        let _ = s.set_read_timeout(Some(rem));
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > MAX {
                    break;
                }
                if let Some(r) = parse_response(&buf, false) {
                    return Ok(r);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if buf.is_empty() => return Err(format!("{addr} closed the connection: {e}")),
            Err(_) => break,
        }
    }
    parse_response(&buf, true).ok_or_else(|| {
        if buf.is_empty() {
            format!("{addr} closed the connection without answering")
        } else {
            format!("{addr} sent something that is not an HTTP answer")
        }
    })
}

/// Parse an HTTP/1.x answer; `None` while it is incomplete (unless `eof`).
pub fn parse_response(buf: &[u8], eof: bool) -> Option<Response> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let body = &buf[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        dechunk(body).or(if eof { Some(body.to_vec()) } else { None })?
    } else if let Some(n) = length {
        if body.len() < n && !eof {
            return None;
        }
        body[..n.min(body.len())].to_vec()
    } else if eof || status == 204 || status == 304 {
        body.to_vec()
    } else {
        return None;
    };
    Some(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Decode a complete chunked body; `None` while incomplete.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_s = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_s.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// A prepared `http` check.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: Url,
    pub dns: Option<(Host, u16)>,
    pub expect_status: u16,
    pub expect_body: Option<String>,
    pub nodes: Vec<String>,
    pub same_node: bool,
    pub requests: u32,
    pub timeout: Duration,
}

impl Spec {
    pub(crate) fn prepare(&self, ctx: &PrepareCtx) -> anyhow::Result<Plan> {
        let url = Url::parse(&self.url).map_err(|m| ctx.err(format!("http: {m}")))?;
        let dns = match &self.dns {
            Some(d) => Some((ctx.host("http: dns", d)?, self.dns_port.unwrap_or(53))),
            None => None,
        };
        if dns.is_none() && url.ip().is_none() {
            return Err(ctx.err(format!(
                "http: `{}` is a name and the check has no `dns:` server to resolve it (the host's resolver is never used)\n  fix: add `dns: <the DNS node>`, e.g. dns: dns",
                url.host
            )));
        }
        let nodes = node_list(
            ctx,
            "http: nodes",
            self.nodes.as_deref().unwrap_or_default(),
        )?;
        let many = !nodes.is_empty() || self.same_node;
        let requests = self.requests.unwrap_or(if many { 10 } else { 1 });
        if !(1..=1000).contains(&requests) {
            return Err(ctx.err("http: `requests:` must be 1 to 1000"));
        }
        if requests < nodes.len() as u32 {
            return Err(ctx.err(format!(
                "http: {requests} requests cannot reach {} nodes\n  fix: raise `requests:`",
                nodes.len()
            )));
        }
        let timeout = self.timeout.map(|d| d.0).unwrap_or(Duration::from_secs(2));
        if timeout.is_zero() || timeout > Duration::from_secs(60) {
            return Err(ctx.err("http: `timeout:` must be more than 0 and at most 60s"));
        }
        Ok(Plan {
            url,
            dns,
            expect_status: self.expect_status.unwrap_or(200),
            expect_body: self.expect_body.clone(),
            nodes,
            same_node: self.same_node,
            requests,
            timeout,
        })
    }
}

/// Resolve `host` through a lab DNS server: the first A record it answers.
pub(crate) fn resolve(
    ctx: &super::Ctx,
    server: &Host,
    port: u16,
    host: &str,
    timeout: Duration,
) -> Result<Ipv4Addr, String> {
    ctx.ensure_safe(server.addr)?;
    let a = dns::query(
        SocketAddr::new(server.addr.into(), port),
        host,
        RecordType::A,
        timeout,
    )
    .map_err(|e| format!("resolving {host} through {}: {e}", server.label))?;
    if a.rcode != ResponseCode::NoError {
        return Err(format!("{} answered {} for {host}", server.label, a.rcode));
    }
    let first = a
        .answers
        .first()
        .ok_or_else(|| format!("{} has no A record for {host}", server.label))?;
    first.parse().map_err(|_| {
        format!(
            "{} answered `{first}` for {host}, not an address",
            server.label
        )
    })
}

impl Plan {
    pub(crate) fn summary(&self) -> String {
        let mut s = format!("http {}", self.url);
        if !self.nodes.is_empty() {
            s.push_str(&format!(" from {}", self.nodes.join("+")));
        }
        if self.same_node {
            s.push_str(" from one node");
        }
        s
    }

    pub(crate) fn deadline(&self) -> Duration {
        let round = self.timeout * self.requests;
        if self.nodes.is_empty() {
            round * 2 + Duration::from_secs(10)
        } else {
            // rounds go on for up to SETTLE while a listed node has not answered
            round * 2 + SETTLE + round + Duration::from_secs(10)
        }
    }

    /// One request: resolve, check the address, GET; the answer's node (if named).
    fn one(&self, ctx: &super::Ctx) -> Result<(Ipv4Addr, Option<String>), String> {
        let addr = match (&self.dns, self.url.ip()) {
            (_, Some(ip)) => ip,
            (Some((server, port)), None) => {
                resolve(ctx, server, *port, &self.url.host, self.timeout)?
            }
            (None, None) => return Err("no DNS server to resolve the host".into()),
        };
        ctx.ensure_safe(addr)?;
        let r = get(
            SocketAddr::new(addr.into(), self.url.port),
            &self.url.host_header(),
            &self.url.path,
            self.timeout,
        )?;
        if r.status != self.expect_status {
            return Err(format!(
                "{addr} answered status {} (expected {}){}",
                r.status,
                self.expect_status,
                snippet(&r.body)
            ));
        }
        if let Some(want) = &self.expect_body {
            if !r.body.contains(want.as_str()) {
                return Err(format!(
                    "the answer from {addr} does not contain `{want}`{}",
                    snippet(&r.body)
                ));
            }
        }
        Ok((
            addr,
            super::node_in_body(&ctx.inv, &r.body).map(String::from),
        ))
    }

    pub(crate) fn run(&self, ctx: &super::Ctx) -> Outcome {
        let mut by_node: BTreeMap<String, u32> = BTreeMap::new();
        let mut addrs: Vec<Ipv4Addr> = Vec::new();
        let start = Instant::now();
        let mut sent = 0u32;
        let mut rounds = 0u32;
        loop {
            rounds += 1;
            if let Err(o) = self.round(ctx, &mut by_node, &mut addrs, &mut sent) {
                return o;
            }
            // a listed node that has not answered yet may be on its way back
            // (a load balancer's health checks, a DNS cache): more rounds, up to SETTLE
            let missing = self.nodes.iter().any(|n| !by_node.contains_key(n.as_str()));
            if !missing || start.elapsed() >= SETTLE {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        self.judge(&by_node, &addrs, sent, rounds, start.elapsed())
    }

    /// `requests` requests, counting who answered; the failure of the first that failed.
    fn round(
        &self,
        ctx: &super::Ctx,
        by_node: &mut BTreeMap<String, u32>,
        addrs: &mut Vec<Ipv4Addr>,
        sent: &mut u32,
    ) -> Result<(), Outcome> {
        for i in 0..self.requests {
            *sent += 1;
            match self.one(ctx) {
                Ok((addr, node)) => {
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                    *by_node
                        .entry(node.unwrap_or_else(|| "?".into()))
                        .or_default() += 1;
                }
                Err(e) => {
                    let which = if self.requests > 1 {
                        format!("request {} of {}: ", i + 1, self.requests)
                    } else {
                        String::new()
                    };
                    return Err(Outcome::fail(format!("{which}{e}")));
                }
            }
        }
        Ok(())
    }

    /// The verdict over every answer.
    fn judge(
        &self,
        by_node: &BTreeMap<String, u32>,
        addrs: &[Ipv4Addr],
        sent: u32,
        rounds: u32,
        took: Duration,
    ) -> Outcome {
        let answered = by_node
            .iter()
            .map(|(n, c)| format!("{n} ×{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let addrs_s = addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mut seen = format!(
            "{} ×{sent} from {addrs_s}; answered by {answered}",
            self.expect_status
        );
        if rounds > 1 {
            seen.push_str(&format!(
                " ({rounds} rounds of {} over {})",
                self.requests,
                crate::duration::human_ms(took.as_millis() as u64)
            ));
        }
        let missing: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| !by_node.contains_key(n.as_str()))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Outcome::fail(format!(
                "{} never answered over {sent} requests in {} ({seen})",
                missing.join(", "),
                crate::duration::human_ms(took.as_millis() as u64)
            ));
        }
        if self.same_node {
            if by_node.len() > 1 {
                return Outcome::fail(format!("answers came from more than one node ({seen})"));
            }
            if by_node.contains_key("?") {
                return Outcome::fail(format!(
                    "the answers name no node of the inventory, so the node cannot be told ({seen})"
                ));
            }
        }
        Outcome::pass(seen)
    }
}

/// How long rounds of requests go on while a node of `nodes:` has not answered.
const SETTLE: Duration = Duration::from_secs(10);

/// `: "first 60 characters of the body"` for failure messages.
fn snippet(body: &str) -> String {
    let t: String = body.trim().chars().take(60).collect();
    if t.is_empty() {
        String::new()
    } else {
        format!(": {:?}", t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = Url::parse("http://www.example.com/info.txt").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("www.example.com", 80, "/info.txt")
        );
        assert_eq!(u.host_header(), "www.example.com");
        let u = Url::parse("http://10.1.1.100:8080").unwrap();
        assert_eq!(u.ip(), Some("10.1.1.100".parse().unwrap()));
        assert_eq!(u.path, "/");
        assert_eq!(u.host_header(), "10.1.1.100:8080");
        assert_eq!(u.to_string(), "http://10.1.1.100:8080/");
        assert_eq!(Url::parse("http://h?x=1").unwrap().path, "/?x=1");
        assert!(Url::parse("https://x/")
            .unwrap_err()
            .contains("only http://"));
        assert!(Url::parse("www.example.com").is_err());
        assert!(Url::parse("http://x:99999/").is_err());
        assert!(Url::parse("http://u@x/").is_err());
        assert!(Url::parse("http:///x").is_err());
    }

    #[test]
    fn parses_answers() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nnodo1\n",
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "nodo1\n"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nno", false).is_none());
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nnod\r\n2\r\no2\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.body, "nodo2");
        let r = parse_response(b"HTTP/1.0 404 Not Found\r\n\r\ngone", true).unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "gone"));
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", true).is_none());
    }
}
