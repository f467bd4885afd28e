//! The dashboard's HTTP/1.1 server, small and bounded, on std and httparse:
//! nothing a client sends can grow the server's memory or its threads past
//! fixed limits ([`Limits`]).
//!
//! One thread reads every request head: it polls the listening socket and
//! the connections still sending their head, each into a buffer of at most
//! [`Limits::max_head`] bytes (plus a body of at most [`Limits::max_body`]),
//! and drops a connection whose head is not complete within
//! [`Limits::head_timeout`]. At most [`Limits::max_pending`] connections wait
//! for their head: beyond that the oldest is dropped, so idle connections
//! cost a few bytes each, never a thread, and cannot keep a new client out.
//! A complete request goes to a thread of its own, at most
//! [`Limits::max_workers`] at once (beyond: `503`), whose reads and writes
//! time out. One request per connection (`Connection: close`).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The bounds of the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The most bytes of a request head (request line and headers).
    pub max_head: usize,
    /// The most header lines.
    pub max_headers: usize,
    /// The most bytes of a request body.
    pub max_body: usize,
    /// How long a client may take to send its whole request.
    pub head_timeout: Duration,
    /// The most connections waiting for their head at once.
    pub max_pending: usize,
    /// The most requests being answered at once (page streams included).
    pub max_workers: usize,
    /// How long one read or write of an answer may block.
    pub io_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head: 16 * 1024,
            max_headers: 48,
            max_body: 4096,
            head_timeout: Duration::from_secs(10),
            max_pending: 256,
            max_workers: 128,
            io_timeout: Duration::from_secs(10),
        }
    }
}

/// A request, read whole.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `HEAD`, `POST`, …
    pub method: String,
    /// The request target: `/path?query`.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
}

impl Request {
    /// The value of the first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("/")
    }

    /// The value of the query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        let q = self.target.split_once('?')?.1;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn head(&self, length: Option<usize>) -> String {
        let mut h = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (k, v) in &self.headers {
            // a value never carries a line break into the head
            if !v.contains(['\r', '\n']) {
                h += &format!("{k}: {v}\r\n");
            }
        }
        if let Some(n) = length {
            h += &format!("Content-Length: {n}\r\n");
        }
        h += "Connection: close\r\n\r\n";
        h
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// The connection of one request, to answer it.
pub struct Conn {
    stream: TcpStream,
    head_only: bool,
}

impl Conn {
    /// Answer and close.
    pub fn respond(mut self, r: Response) {
        let mut out = r.head(Some(r.body.len())).into_bytes();
        if !self.head_only {
            out.extend_from_slice(&r.body);
        }
        let _ = self
            .stream
            .write_all(&out)
            .and_then(|_| self.stream.flush());
    }

    /// Send the head of `r` without a length (its body is sent as it comes):
    /// the stream to write the body to.
    pub fn stream(mut self, r: Response) -> std::io::Result<TcpStream> {
        self.stream.write_all(r.head(None).as_bytes())?;
        self.stream.flush()?;
        Ok(self.stream)
    }
}

/// A connection still sending its request.
struct Pending {
    stream: TcpStream,
    peer: SocketAddr,
    buf: Vec<u8>,
    since: Instant,
}

enum Step {
    More,
    Done(Request),
    /// Answer this status and close.
    Refuse(u16, &'static str),
    Gone,
}

/// A listening socket with its limits.
pub struct Server {
    listener: TcpListener,
    pub limits: Limits,
    busy: AtomicUsize,
}

/// Counts a worker while it lives.
struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Server {
    pub fn bind(addr: SocketAddr, limits: Limits) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            limits,
            busy: AtomicUsize::new(0),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// How many requests are being answered now.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::SeqCst)
    }

    /// Serve until `stop` is set: each complete request goes to `handler`
    /// on a thread of its own (of `s`).
    pub fn serve<'s, H>(
        &'s self,
        s: &'s std::thread::Scope<'s, '_>,
        stop: &'s AtomicBool,
        handler: H,
    ) where
        H: Fn(Request, Conn) + Send + Sync + Copy + 's,
    {
        let mut pending: VecDeque<Pending> = VecDeque::new();
        while !stop.load(Ordering::SeqCst) {
            let mut fds = Vec::with_capacity(pending.len() + 1);
            fds.push(libc::pollfd {
                fd: self.listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            for p in &pending {
                fds.push(libc::pollfd {
                    fd: p.stream.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            // SAFETY: poll(2) on descriptors this function owns, `fds.len()` entries.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
            if n < 0 {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            let mut kept = VecDeque::with_capacity(pending.len());
            for (mut p, fd) in pending.drain(..).zip(fds.iter().skip(1)) {
                if fd.revents == 0 {
                    if p.since.elapsed() < self.limits.head_timeout {
                        kept.push_back(p);
                    } else {
                        refuse(&mut p.stream, 408, "the request took too long");
                    }
                    continue;
                }
                match self.read_more(&mut p) {
                    Step::More if p.since.elapsed() < self.limits.head_timeout => kept.push_back(p),
                    Step::More => refuse(&mut p.stream, 408, "the request took too long"),
                    Step::Done(req) => self.dispatch(s, p.stream, req, handler),
                    Step::Refuse(status, why) => refuse(&mut p.stream, status, why),
                    Step::Gone => {}
                }
            }
            pending = kept;
            if fds[0].revents != 0 {
                self.accept_all(&mut pending);
            }
        }
    }

    fn accept_all(&self, pending: &mut VecDeque<Pending>) {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    if pending.len() >= self.limits.max_pending {
                        // the oldest waits longest for nothing: a new client always gets in
                        pending.pop_front();
                    }
                    pending.push_back(Pending {
                        stream,
                        peer,
                        buf: Vec::new(),
                        since: Instant::now(),
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // out of descriptors and the like: drop the oldest waiting, try later
                Err(_) => {
                    pending.pop_front();
                    return;
                }
            }
        }
    }

    fn read_more(&self, p: &mut Pending) -> Step {
        let cap = self.limits.max_head + self.limits.max_body;
        let mut chunk = [0u8; 4096];
        loop {
            let room = (cap + 1).saturating_sub(p.buf.len()).min(chunk.len());
            if room == 0 {
                break;
            }
            match p.stream.read(&mut chunk[..room]) {
                // a client that sent its whole request and closed its side
                // (`ssh -W`, `nc -N`) still gets its answer
                Ok(0) => {
                    return match self.parse(p) {
                        Step::More => Step::Gone,
                        step => step,
                    }
                }
                Ok(n) => p.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Step::Gone,
            }
        }
        self.parse(p)
    }

    fn parse(&self, p: &Pending) -> Step {
        let mut headers = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(&p.buf) {
            Ok(httparse::Status::Complete(n)) if n <= self.limits.max_head => n,
            Ok(httparse::Status::Complete(_)) => {
                return Step::Refuse(431, "the request head is too large")
            }
            Ok(httparse::Status::Partial) if p.buf.len() > self.limits.max_head => {
                return Step::Refuse(431, "the request head is too large")
            }
            Ok(httparse::Status::Partial) => return Step::More,
            Err(httparse::Error::TooManyHeaders) => {
                return Step::Refuse(431, "too many header lines")
            }
            Err(_) => return Step::Refuse(400, "not an HTTP request"),
        };
        let mut out = Request {
            method: req.method.unwrap_or_default().to_string(),
            target: req.path.unwrap_or("/").to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            peer: p.peer,
        };
        for h in req.headers.iter() {
            let Ok(v) = std::str::from_utf8(h.value) else {
                return Step::Refuse(400, "a header value is not text");
            };
            out.headers.push((h.name.to_string(), v.trim().to_string()));
        }
        if out.header("Transfer-Encoding").is_some() {
            return Step::Refuse(411, "send a Content-Length, not a transfer encoding");
        }
        let length = match out.header("Content-Length").map(str::parse::<usize>) {
            None => 0,
            Some(Ok(n)) if n <= self.limits.max_body => n,
            Some(Ok(_)) => return Step::Refuse(413, "the request body is too large"),
            Some(Err(_)) => return Step::Refuse(400, "a bad Content-Length"),
        };
        if p.buf.len() < head_len + length {
            return Step::More;
        }
        out.body = p.buf[head_len..head_len + length].to_vec();
        Step::Done(out)
    }

    fn dispatch<'s, H>(
        &'s self,
        s: &'s std::thread::Scope<'s, '_>,
        mut stream: TcpStream,
        req: Request,
        handler: H,
    ) where
        H: Fn(Request, Conn) + Send + Sync + 's,
    {
        if self.busy.fetch_add(1, Ordering::SeqCst) >= self.limits.max_workers {
            self.busy.fetch_sub(1, Ordering::SeqCst);
            refuse(&mut stream, 503, "the dashboard is busy: try again");
            return;
        }
        let busy = Busy(&self.busy);
        let ready = stream.set_nonblocking(false).is_ok()
            && stream
                .set_read_timeout(Some(self.limits.io_timeout))
                .is_ok()
            && stream
                .set_write_timeout(Some(self.limits.io_timeout))
                .is_ok();
        if !ready {
            return;
        }
        let head_only = req.method == "HEAD";
        // no thread to be had: the connection is dropped with the closure
        let _ = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn_scoped(s, move || {
                let _busy = busy;
                handler(req, Conn { stream, head_only });
            });
    }
}

/// Answer `status` with a short JSON reason on a connection being dropped
/// (never blocking: what does not fit in the socket's buffer is not sent).
fn refuse(stream: &mut TcpStream, status: u16, why: &str) {
    let body = serde_json::json!({ "error": why }).to_string();
    let r = Response::new(status, "application/json", body);
    let mut out = r.head(Some(r.body.len())).into_bytes();
    out.extend_from_slice(&r.body);
    let _ = stream.write(&out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(bytes: &[u8]) -> Pending {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_s, peer) = l.accept().unwrap();
        Pending {
            stream: c,
            peer,
            buf: bytes.to_vec(),
            since: Instant::now(),
        }
    }

    fn server() -> Server {
        Server::bind("127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap()
    }

    #[test]
    fn heads_and_bodies_are_bounded() {
        let s = server();
        match s.parse(&pending(b"GET /a?token=x HTTP/1.1\r\nHost: h\r\n\r\n")) {
            Step::Done(r) => {
                assert_eq!(r.path(), "/a");
                assert_eq!(r.query("token"), Some("x"));
                assert_eq!(r.header("host"), Some("h"));
            }
            _ => panic!("a whole request"),
        }
        assert!(matches!(
            s.parse(&pending(b"GET / HTTP/1.1\r\nHost: h\r\n")),
            Step::More
        ));
        let mut long = b"GET / HTTP/1.1\r\nX-A: ".to_vec();
        long.resize(s.limits.max_head + 1, b'a');
        assert!(matches!(s.parse(&pending(&long)), Step::Refuse(431, _)));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..100 {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(s.parse(&pending(&many)), Step::Refuse(431, _)));
        let big = b"POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n";
        assert!(matches!(s.parse(&pending(big)), Step::Refuse(413, _)));
        let part = b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab";
        assert!(matches!(s.parse(&pending(part)), Step::More));
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(s.parse(&pending(chunked)), Step::Refuse(411, _)));
    }
}
