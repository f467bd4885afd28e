//! Fake lab servers on loopback for the tests without a lab: a DNS server
//! (hickory-proto over a UdpSocket, rotating its answers like bind9) and web
//! servers whose `/info.txt` names their node, like the lab's apache2.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the fake DNS server answers.
#[derive(Clone, Copy, PartialEq)]
pub enum Order {
    /// Rotate the records on every answer (bind9's default `rrset-order cyclic`).
    Cyclic,
    /// Always the same order.
    Fixed,
    /// Never answer.
    Silent,
}

/// The threads of a fake server and their stop flag: told to stop and
/// joined when dropped.
pub struct Threads {
    pub stop: Arc<AtomicBool>,
    pub handles: Vec<JoinHandle<()>>,
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// A DNS server on 127.0.0.1 answering A queries for one name.
pub struct FakeDns {
    pub port: u16,
    pub queries: Arc<AtomicUsize>,
    pub _threads: Threads,
}

impl FakeDns {
    pub fn start(name: &str, records: Vec<Ipv4Addr>, order: Order) -> FakeDns {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let (s2, q2) = (Arc::clone(&stop), Arc::clone(&queries));
        let want = format!("{}.", name.trim_end_matches('.'));
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            let mut n = 0usize;
            while !s2.load(Ordering::SeqCst) {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                q2.fetch_add(1, Ordering::SeqCst);
                if order == Order::Silent {
                    continue;
                }
                let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
                r.metadata.authoritative = true;
                r.metadata.recursion_desired = q.metadata.recursion_desired;
                let Some(query) = q.queries.first().cloned() else {
                    continue;
                };
                let matches = query.name().to_ascii().eq_ignore_ascii_case(&want);
                if matches && query.query_type() == RecordType::A && !records.is_empty() {
                    let k = if order == Order::Cyclic {
                        n % records.len()
                    } else {
                        0
                    };
                    n += 1;
                    for i in 0..records.len() {
                        let a = records[(i + k) % records.len()];
                        r.add_answer(Record::from_rdata(query.name().clone(), 60, RData::A(A(a))));
                    }
                } else if !matches {
                    r.metadata.response_code = ResponseCode::NXDomain;
                }
                r.add_query(query);
                if let Ok(bytes) = r.to_vec() {
                    let _ = sock.send_to(&bytes, from);
                }
            }
        });
        FakeDns {
            port,
            queries,
            _threads: Threads {
                stop,
                handles: vec![handle],
            },
        }
    }
}

/// Web servers on several loopback addresses, one port: each serves
/// `/info.txt` holding its node's name, like the lab's apache2.
pub struct FakeWeb {
    pub port: u16,
    pub hosts: Arc<Mutex<Vec<String>>>,
    pub _threads: Threads,
}

impl FakeWeb {
    pub fn start(servers: &[(Ipv4Addr, &str)]) -> FakeWeb {
        // find a port free on every address
        let listeners = (0..50)
            .find_map(|_| {
                let first = TcpListener::bind((servers[0].0, 0)).ok()?;
                let port = first.local_addr().ok()?.port();
                let mut ls = vec![first];
                for (a, _) in &servers[1..] {
                    ls.push(TcpListener::bind((*a, port)).ok()?);
                }
                Some(ls)
            })
            .expect("a port free on every loopback address");
        let port = listeners[0].local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let hosts = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for (l, (_, name)) in listeners.into_iter().zip(servers) {
            l.set_nonblocking(true).unwrap();
            let (stop, hosts, name) = (Arc::clone(&stop), Arc::clone(&hosts), name.to_string());
            handles.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok((mut c, _)) = l.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let req = String::from_utf8_lossy(&req).into_owned();
                    if let Some(h) = req.lines().find_map(|l| l.strip_prefix("Host: ")) {
                        hosts.lock().unwrap().push(h.trim().to_string());
                    }
                    let (status, body) = if req.starts_with("GET /info.txt ") {
                        ("200 OK", format!("{name}\n"))
                    } else {
                        ("404 Not Found", "not here\n".to_string())
                    };
                    let _ = write!(
                        c,
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            }));
        }
        FakeWeb {
            port,
            hosts,
            _threads: Threads { stop, handles },
        }
    }
}
