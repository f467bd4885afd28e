//! The HTTP client of the checks: one GET on a fresh connection to a given
//! address, with the URL's `Host:`, under a time limit for the whole exchange.
//!
//! The socket is ours (the failover checks sample the VIP at 20 Hz with a
//! 300 ms limit per request, so every wait is bounded by that request's
//! deadline); `httparse` reads the status line, the headers and chunk sizes.
//! The host's resolver is never used: callers connect to an address that
//! passed [`super::Ctx::ensure_safe`].

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

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
/// Through `via` (the lab's network is on another host) the connection goes
/// through the SSH hop.
pub fn get(
    via: Option<&crate::jump::Jump>,
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<Response, String> {
    let deadline = Instant::now() + timeout;
    let timed_out = || format!("no answer from {addr} within {} ms", timeout.as_millis());
    let mut s = crate::jump::Stream::connect(via, addr, timeout).map_err(|e| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        ) {
            format!("cannot connect to {addr} within {} ms", timeout.as_millis())
        } else {
            format!("cannot connect to {addr}: {e}")
        }
    })?;
    if let crate::jump::Stream::Direct(t) = &s {
        let _ = t.set_nodelay(true);
    }
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
    let not_http = || format!("{addr} sent something that is not an HTTP answer");
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
                match parse_response(&buf, false) {
                    Parsed::Done(r) => return Ok(r),
                    Parsed::Bad => return Err(not_http()),
                    Parsed::Partial => {}
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
    match parse_response(&buf, true) {
        Parsed::Done(r) => Ok(r),
        _ if buf.is_empty() => Err(format!("{addr} closed the connection without answering")),
        _ => Err(not_http()),
    }
}

/// What the bytes read so far hold.
#[derive(Debug)]
pub enum Parsed {
    /// A whole answer.
    Done(Response),
    /// Not all of it yet.
    Partial,
    /// Not an HTTP/1.x answer.
    Bad,
}

/// Parse an HTTP/1.x answer; `Partial` while it is incomplete (unless `eof`:
/// then the body is what arrived).
pub fn parse_response(buf: &[u8], eof: bool) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if eof => return Parsed::Bad,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Bad,
    };
    let Some(status) = resp.code else {
        return Parsed::Bad;
    };
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        let v = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("content-length") {
            length = v.trim().parse().ok();
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            && v.to_ascii_lowercase().contains("chunked")
        {
            chunked = true;
        }
    }
    let body = &buf[head_len..];
    let body = if chunked {
        match dechunk(body) {
            Some(b) => b,
            None if eof => body.to_vec(),
            None => return Parsed::Partial,
        }
    } else if let Some(n) = length {
        if body.len() < n && !eof {
            return Parsed::Partial;
        }
        body[..n.min(body.len())].to_vec()
    } else if eof || status == 204 || status == 304 {
        body.to_vec()
    } else {
        return Parsed::Partial;
    };
    Parsed::Done(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Decode a complete chunked body; `None` while incomplete.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let (used, size) = match httparse::parse_chunk_size(b).ok()? {
            httparse::Status::Complete(c) => c,
            httparse::Status::Partial => return None,
        };
        b = &b[used..];
        if size == 0 {
            return Some(out);
        }
        let size = usize::try_from(size).ok()?;
        if b.len() < size.checked_add(2)? {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
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
        let done = |b: &[u8], eof| match parse_response(b, eof) {
            Parsed::Done(r) => r,
            p => panic!("{p:?}"),
        };
        let r = done(
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nnodo1\n",
            false,
        );
        assert_eq!((r.status, r.body.as_str()), (200, "nodo1\n"));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nno", false),
            Parsed::Partial
        ));
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nnod\r\n",
                false
            ),
            Parsed::Partial
        ));
        let r = done(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nnod\r\n2\r\no2\r\n0\r\n\r\n",
            false,
        );
        assert_eq!(r.body, "nodo2");
        let r = done(b"HTTP/1.0 404 Not Found\r\n\r\ngone", true);
        assert_eq!((r.status, r.body.as_str()), (404, "gone"));
        assert!(matches!(
            parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false),
            Parsed::Bad
        ));
        assert!(matches!(parse_response(b"HTTP/1.1 200", true), Parsed::Bad));
    }
}
