//! `dns`: ask a lab DNS server directly, like `dig @dns www.example.com`.
//!
//! ```yaml
//! - dns: {server: dns, name: "www.{{ domain }}", expect: [10.1.1.101, 10.1.1.102], round_robin: true}
//! ```
//!
//! One hickory-proto message per query over a plain `UdpSocket`, so the
//! answers keep the order the server sent (a caching resolver would re-serve
//! one order and hide round robin). The answer set must equal `expect:` exactly
//! (records of the asked type only, so a CNAME chain in front is fine); with
//! `round_robin: true` the first answer must change across `queries:` queries
//! (bind9 answers in cyclic or random order unless told `rrset-order fixed`;
//! with random order and two records, 10 queries all starting with the same
//! one happen 0.2% of the time).

use super::{Check, Ctx, Host, Outcome, PrepareCtx};
use crate::duration::Dur;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The `dns:` check as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The DNS server: a node of the inventory (or a lab address).
    pub server: String,
    /// The name to look up.
    pub name: String,
    /// Record type: A (default), AAAA, CNAME, MX, NS, TXT, PTR, SOA...
    #[serde(default, rename = "type")]
    pub rtype: Option<String>,
    /// The exact set of answers (any order). Without it: at least one answer.
    pub expect: Option<Vec<String>>,
    /// Every answer must be one of these (at least one answer); for "any live node".
    pub expect_any: Option<Vec<String>>,
    /// The first answer must vary over `queries` queries.
    #[serde(default)]
    pub round_robin: bool,
    /// Queries for `round_robin` (default 10).
    pub queries: Option<u32>,
    /// The server's port (default 53).
    pub port: Option<u16>,
    /// Time to wait for each answer (default 2s).
    pub timeout: Option<Dur>,
}

/// A prepared `dns` check.
#[derive(Debug, Clone)]
pub struct Plan {
    pub server: Host,
    pub port: u16,
    pub name: String,
    pub rtype: RecordType,
    pub expect: Option<Vec<String>>,
    pub expect_any: Option<Vec<String>>,
    pub round_robin: bool,
    pub queries: u32,
    pub timeout: Duration,
}

prepare_by_plan!(Spec);

impl Spec {
    pub(crate) fn plan(&self, ctx: &PrepareCtx) -> anyhow::Result<Plan> {
        let server = ctx.host("dns: server", &self.server)?;
        let tname = self
            .rtype
            .as_deref()
            .unwrap_or("A")
            .trim()
            .to_ascii_uppercase();
        let rtype = RecordType::from_str(&tname)
            .ok()
            .filter(|t| !matches!(t, RecordType::Unknown(_)))
            .ok_or_else(|| {
                ctx.err(format!(
                    "dns: `type: {tname}` is not a DNS record type\n  fix: use A, AAAA, CNAME, MX, NS, TXT, PTR or SOA"
                ))
            })?;
        if self.name.trim().is_empty() {
            return Err(ctx.err("dns: `name:` is empty\n  fix: e.g. name: www.example.com"));
        }
        Name::from_ascii(self.name.trim())
            .map_err(|e| ctx.err(format!("dns: `name: {}` is not a DNS name: {e}", self.name)))?;
        let queries = self
            .queries
            .unwrap_or(if self.round_robin { 10 } else { 1 });
        if self.round_robin && !(2..=200).contains(&queries) {
            return Err(ctx.err("dns: `queries:` must be 2 to 200 with `round_robin: true`"));
        }
        if !(1..=200).contains(&queries) {
            return Err(ctx.err("dns: `queries:` must be 1 to 200"));
        }
        if self.expect.is_some() && self.expect_any.is_some() {
            return Err(ctx.err(
                "dns: `expect:` (exactly these answers) and `expect_any:` (answers among these) exclude each other\n  fix: keep one",
            ));
        }
        let timeout = self.timeout.map(|d| d.0).unwrap_or(Duration::from_secs(2));
        if timeout.is_zero() || timeout > Duration::from_secs(30) {
            return Err(ctx.err("dns: `timeout:` must be more than 0 and at most 30s"));
        }
        Ok(Plan {
            server,
            port: self.port.unwrap_or(53),
            name: self.name.trim().to_string(),
            rtype,
            expect: self
                .expect
                .as_ref()
                .map(|v| v.iter().map(|s| normalize(s)).collect()),
            expect_any: self
                .expect_any
                .as_ref()
                .map(|v| v.iter().map(|s| normalize(s)).collect()),
            round_robin: self.round_robin,
            queries,
            timeout,
        })
    }
}

impl Check for Plan {
    fn summary(&self) -> String {
        format!("dns {} {} @{}", self.name, self.rtype, self.server.label)
    }

    fn deadline(&self) -> Duration {
        self.timeout * self.queries + Duration::from_secs(10)
    }

    fn run(&self, ctx: &Ctx) -> Outcome {
        if let Err(e) = ctx.ensure_safe(self.server.addr) {
            return Outcome::fail(e);
        }
        let server = SocketAddr::new(self.server.addr.into(), self.port);
        let mut orders: Vec<Vec<String>> = Vec::new();
        for i in 0..self.queries {
            if ctx.stopped() {
                return Outcome::fail(format!(
                    "stopped at its time limit after {i} of {} queries",
                    self.queries
                ));
            }
            let ans = match query(ctx.inv.jump(), server, &self.name, self.rtype, self.timeout) {
                Ok(a) => a,
                Err(e) => {
                    let which = if self.queries > 1 {
                        format!("query {} of {}: ", i + 1, self.queries)
                    } else {
                        String::new()
                    };
                    return Outcome::fail(format!("{which}{e}"));
                }
            };
            if ans.rcode != ResponseCode::NoError {
                return Outcome::fail(format!(
                    "{} answered {} for {} {}",
                    self.server.label, ans.rcode, self.name, self.rtype
                ));
            }
            if let Some(bad) = self.judge_set(&ans.answers) {
                return Outcome::fail(bad);
            }
            orders.push(ans.answers);
        }
        let first = &orders[0];
        if !self.round_robin {
            return Outcome::pass(first.join(", "));
        }
        judge_round_robin(&orders)
    }
}

impl Plan {
    /// Why an answer set is wrong, if it is.
    fn judge_set(&self, got: &[String]) -> Option<String> {
        let shown = |v: &[String]| {
            if v.is_empty() {
                "no answer".to_string()
            } else {
                v.join(", ")
            }
        };
        if let Some(any) = &self.expect_any {
            if got.is_empty() {
                return Some(format!(
                    "{} has no {} record for {} (expected one of {})",
                    self.server.label,
                    self.rtype,
                    self.name,
                    any.join(", ")
                ));
            }
            let extra: Vec<&String> = got.iter().filter(|a| !any.contains(a)).collect();
            if !extra.is_empty() {
                return Some(format!(
                    "{} {}: got {}; expected only answers among {}",
                    self.name,
                    self.rtype,
                    shown(got),
                    any.join(", ")
                ));
            }
            return None;
        }
        match &self.expect {
            None if got.is_empty() => Some(format!(
                "{} has no {} record for {}",
                self.server.label, self.rtype, self.name
            )),
            None => None,
            Some(want) => {
                let mut a = got.to_vec();
                a.sort();
                let mut b = want.clone();
                b.sort();
                if a == b {
                    return None;
                }
                let missing: Vec<String> = b.iter().filter(|x| !a.contains(x)).cloned().collect();
                let extra: Vec<String> = a.iter().filter(|x| !b.contains(x)).cloned().collect();
                let mut why = Vec::new();
                if !missing.is_empty() {
                    why.push(format!("missing {}", missing.join(", ")));
                }
                if !extra.is_empty() {
                    why.push(format!("unexpected {}", extra.join(", ")));
                }
                if why.is_empty() {
                    why.push("a record is repeated".into());
                }
                Some(format!(
                    "{} {}: got {}; expected {} ({})",
                    self.name,
                    self.rtype,
                    shown(got),
                    shown(want),
                    why.join("; ")
                ))
            }
        }
    }
}

/// Round robin: the first answer must not always be the same one.
pub(crate) fn judge_round_robin(orders: &[Vec<String>]) -> Outcome {
    let n = orders.len();
    let first = orders.first().cloned().unwrap_or_default();
    if first.len() < 2 {
        return Outcome::fail(format!(
            "round robin needs at least two answers; got {} ({})",
            first.len(),
            first.join(", ")
        ));
    }
    let mut firsts: BTreeMap<&str, usize> = BTreeMap::new();
    for o in orders {
        if let Some(f) = o.first() {
            *firsts.entry(f.as_str()).or_default() += 1;
        }
    }
    let counts = firsts
        .iter()
        .map(|(a, c)| format!("{a} ×{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    if firsts.len() < 2 {
        return Outcome::fail(format!(
            "{}: the order never varied over {n} queries (first answer always {counts})",
            first.join(", ")
        ));
    }
    Outcome::pass(format!(
        "{}; first answer varied over {n} queries ({counts})",
        first.join(", ")
    ))
}

/// `WWW.Example.com.` → `www.example.com`: answers compare without case and the root dot.
pub fn normalize(s: &str) -> String {
    s.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// What a DNS server answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub rcode: ResponseCode,
    /// The answers of the asked type, normalized, in the order sent.
    pub answers: Vec<String>,
}

/// Ask `server` for `name`/`rtype` over UDP (recursion desired, like dig),
/// waiting at most `timeout` in all. Through `via` (the lab's network is on
/// another host) the query goes over TCP through the SSH hop instead: DNS
/// over TCP is the same question and the same answer (RFC 7766).
pub fn query(
    via: Option<&crate::jump::Jump>,
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Result<Answer, String> {
    let mut qname =
        Name::from_ascii(name).map_err(|e| format!("`{name}` is not a DNS name: {e}"))?;
    qname.set_fqdn(true);
    let mut msg = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(qname, rtype));
    let id = msg.metadata.id;
    let bytes = msg
        .to_vec()
        .map_err(|e| format!("cannot encode the query: {e}"))?;
    if let Some(j) = via {
        return query_tcp(j, server, &bytes, id, rtype, timeout);
    }

    let bind: SocketAddr = if server.ip().is_loopback() {
        (Ipv4Addr::LOCALHOST, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    sock.connect(server)
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    let deadline = Instant::now() + timeout;
    // two sends: a lost datagram on a busy bridge costs half the timeout, not the check
    let mut tries = 0;
    let mut buf = [0u8; 4096];
    loop {
        if tries < 2 {
            sock.send(&bytes)
                .map_err(|e| format!("cannot send to {server}: {e}"))?;
            tries += 1;
        }
        let resend_at = if tries < 2 {
            Instant::now() + timeout / 2
        } else {
            deadline
        };
        loop {
            let now = Instant::now();
            let until = resend_at.min(deadline);
            if now >= until {
                break;
            }
            let _ = sock.set_read_timeout(Some(until - now));
            match sock.recv(&mut buf) {
                Ok(n) => {
                    let Ok(resp) = Message::from_vec(&buf[..n]) else {
                        continue; // garbage: keep waiting for the real answer
                    };
                    if resp.metadata.id != id || resp.metadata.message_type != MessageType::Response
                    {
                        continue;
                    }
                    return Ok(answer_of(&resp, rtype));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(format!(
                        "no DNS server answers on {server} (connection refused: is the DNS service running?)"
                    ))
                }
                Err(e) => return Err(format!("no answer from {server}: {e}")),
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no answer from the DNS server {server} within {} ms",
                timeout.as_millis()
            ));
        }
    }
}

fn answer_of(resp: &Message, rtype: RecordType) -> Answer {
    Answer {
        rcode: resp.metadata.response_code,
        answers: resp
            .answers
            .iter()
            .filter(|r| r.record_type() == rtype)
            .map(|r| normalize(&r.data.to_string()))
            .collect(),
    }
}

/// One query over TCP through the SSH hop.
fn query_tcp(
    via: &crate::jump::Jump,
    server: SocketAddr,
    bytes: &[u8],
    id: u16,
    rtype: RecordType,
    timeout: Duration,
) -> Result<Answer, String> {
    let s = via
        .connect(server)
        .map_err(|e| format!("cannot reach {server} through {}: {e}", via.label()))?;
    let _ = s.set_read_timeout(Some(timeout.max(Duration::from_millis(1))));
    exchange_tcp(s, server, bytes, id, rtype)
        .map_err(|e| format!("{e} (DNS over TCP through {})", via.label()))
}

/// DNS over a byte stream: a 2-byte length, then the message, both ways.
fn exchange_tcp(
    mut s: impl std::io::Read + std::io::Write,
    server: SocketAddr,
    bytes: &[u8],
    id: u16,
    rtype: RecordType,
) -> Result<Answer, String> {
    let timed_out = || format!("no answer from the DNS server {server} in time");
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    s.write_all(&framed)
        .map_err(|e| format!("cannot send to {server}: {e}"))?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => format!(
            "no DNS server answers on {server} (the connection closed: is the DNS service running?)"
        ),
        _ => timed_out(),
    })?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).map_err(|_| timed_out())?;
    let resp =
        Message::from_vec(&buf).map_err(|e| format!("a bad DNS answer from {server}: {e}"))?;
    if resp.metadata.id != id || resp.metadata.message_type != MessageType::Response {
        return Err(format!("{server} answered another question"));
    }
    Ok(answer_of(&resp, rtype))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn dns_over_a_stream_is_framed_both_ways() {
        use hickory_proto::rr::{rdata::A, RData, Record};
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut len = [0u8; 2];
            c.read_exact(&mut len).unwrap();
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            c.read_exact(&mut q).unwrap();
            let mut m = Message::from_vec(&q).unwrap();
            m.metadata.message_type = MessageType::Response;
            let name = m.queries[0].name().clone();
            m.add_answer(Record::from_rdata(name, 60, RData::A(A::new(10, 1, 1, 101))));
            let r = m.to_vec().unwrap();
            c.write_all(&(r.len() as u16).to_be_bytes()).unwrap();
            c.write_all(&r).unwrap();
        });
        let mut msg = Message::new(7, MessageType::Query, OpCode::Query);
        msg.add_query(Query::query(
            Name::from_ascii("www.example.com.").unwrap(),
            RecordType::A,
        ));
        let s = std::net::TcpStream::connect(server).unwrap();
        let a = exchange_tcp(s, server, &msg.to_vec().unwrap(), 7, RecordType::A).unwrap();
        assert_eq!(a.answers, v(&["10.1.1.101"]));
        t.join().unwrap();
        // a server that closes without answering
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let t = std::thread::spawn(move || drop(listener.accept().unwrap()));
        let s = std::net::TcpStream::connect(server).unwrap();
        t.join().unwrap();
        let e = exchange_tcp(s, server, &msg.to_vec().unwrap(), 7, RecordType::A).unwrap_err();
        assert!(e.contains("connection closed"), "{e}");
    }

    #[test]
    fn round_robin_needs_two_answers_and_a_varying_first() {
        let ok = judge_round_robin(&[v(&["a", "b"]), v(&["b", "a"]), v(&["a", "b"])]);
        assert!(ok.passed, "{}", ok.detail);
        assert!(ok.detail.contains("a ×2, b ×1"), "{}", ok.detail);
        let same = judge_round_robin(&[v(&["a", "b"]), v(&["a", "b"])]);
        assert!(
            !same.passed && same.detail.contains("never varied"),
            "{}",
            same.detail
        );
        let one = judge_round_robin(&[v(&["a"]), v(&["a"])]);
        assert!(
            !one.passed && one.detail.contains("at least two"),
            "{}",
            one.detail
        );
    }

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize(" WWW.Example.COM. "), "www.example.com");
        assert_eq!(normalize("10.1.1.101"), "10.1.1.101");
    }

    #[test]
    fn exact_set() {
        let p = Plan {
            server: Host {
                label: "dns".into(),
                addr: Ipv4Addr::LOCALHOST,
            },
            port: 53,
            name: "www".into(),
            rtype: RecordType::A,
            expect: Some(v(&["1.1.1.1", "2.2.2.2"])),
            expect_any: None,
            round_robin: false,
            queries: 1,
            timeout: Duration::from_secs(1),
        };
        assert!(p.judge_set(&v(&["2.2.2.2", "1.1.1.1"])).is_none());
        let m = p.judge_set(&v(&["1.1.1.1"])).unwrap();
        assert!(m.contains("missing 2.2.2.2"), "{m}");
        let m = p.judge_set(&v(&["1.1.1.1", "2.2.2.2", "3.3.3.3"])).unwrap();
        assert!(m.contains("unexpected 3.3.3.3"), "{m}");
        let m = p.judge_set(&[]).unwrap();
        assert!(m.contains("got no answer"), "{m}");
        let p = Plan {
            expect: None,
            expect_any: Some(v(&["1.1.1.1", "2.2.2.2"])),
            ..p
        };
        assert!(p.judge_set(&v(&["2.2.2.2"])).is_none());
        assert!(p.judge_set(&v(&["1.1.1.1", "2.2.2.2"])).is_none());
        assert!(p
            .judge_set(&v(&["3.3.3.3"]))
            .unwrap()
            .contains("only answers among"));
        assert!(p.judge_set(&[]).unwrap().contains("no A record"));
    }
}
