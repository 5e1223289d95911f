//! A small HTTP/1.1 server on loopback that stands in for Slack and webhook
//! endpoints: it records every request it reads and answers with scripted
//! replies, so tests and benchmarks can check exactly what pg_vigil sent.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, BufWriter, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often blocked connection threads wake up to notice `stop`.
const POLL: Duration = Duration::from_millis(200);

/// A corrupt Content-Length or chunk size must not make the sink allocate
/// gigabytes; nothing pg_vigil sends comes close to this.
const MAX_BODY: usize = 64 << 20;

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target exactly as sent, query string included.
    pub path: String,
    /// Names are lowercased; values are trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub received_at: Instant,
    pub received_unix_us: i64,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// Extra headers, e.g. `Retry-After`.
    StatusWith(u16, Vec<(String, String)>),
    /// Sleep, then answer; lets tests exercise client timeouts.
    Delay(Duration, u16),
    /// Drop the connection without answering.
    Close,
}

struct Shared {
    stop: AtomicBool,
    records: Mutex<Vec<Request>>,
    recorded: Condvar,
    scripts: Mutex<HashMap<String, VecDeque<Reply>>>,
    default: Mutex<Reply>,
}

/// Poisoning only means a test thread panicked while holding the lock; the
/// data is still the best account of what was received.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn next_reply(&self, path: &str) -> Reply {
        if let Some(reply) = lock(&self.scripts)
            .get_mut(path)
            .and_then(VecDeque::pop_front)
        {
            return reply;
        }
        lock(&self.default).clone()
    }

    /// Checking `stop` under the records lock means nothing is recorded
    /// once `Sink::stop` has returned. Returns false when stopped.
    fn record(&self, req: Request) -> bool {
        let mut records = lock(&self.records);
        if self.stopped() {
            return false;
        }
        records.push(req);
        self.recorded.notify_all();
        true
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

pub struct Sink {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

impl Sink {
    pub fn start() -> Sink {
        Sink::start_on(0).expect("cannot bind the HTTP sink on 127.0.0.1")
    }

    /// Binds `127.0.0.1:port` (0 picks a free port). Only loopback, so test
    /// runs never expose a listener to the network.
    pub fn start_on(port: u16) -> io::Result<Sink> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            records: Mutex::new(Vec::new()),
            recorded: Condvar::new(),
            scripts: Mutex::new(HashMap::new()),
            default: Mutex::new(Reply::Status(200)),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("vigil-sink-accept".into())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Sink {
            shared,
            addr,
            acceptor: Mutex::new(Some(acceptor)),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.records).clone()
    }

    /// Removes and returns what was recorded, so a long benchmark run does
    /// not keep every request in memory.
    pub fn take_requests(&self) -> Vec<Request> {
        std::mem::take(&mut *lock(&self.shared.records))
    }

    pub fn count(&self) -> usize {
        lock(&self.shared.records).len()
    }

    pub fn clear(&self) {
        lock(&self.shared.records).clear();
    }

    pub fn wait_for_count(&self, n: usize, timeout: Duration) -> bool {
        let records = lock(&self.shared.records);
        let (records, _) = self
            .shared
            .recorded
            .wait_timeout_while(records, timeout, |r| r.len() < n)
            .unwrap_or_else(|e| e.into_inner());
        records.len() >= n
    }

    /// Queues replies for requests whose target equals `path` exactly; once
    /// they are used up, that path gets the default reply again.
    pub fn push(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.shared.scripts)
            .entry(path.to_string())
            .or_default()
            .extend(replies);
    }

    pub fn set_default(&self, reply: Reply) {
        *lock(&self.shared.default) = reply;
    }

    /// Returns once the port refuses connections; calling it again does
    /// nothing. Open connections close within `POLL`; a request read after
    /// this point is dropped unanswered and unrecorded, as if the server had
    /// gone away. Recorded requests stay readable.
    pub fn stop(&self) {
        {
            let _records = lock(&self.shared.records);
            self.shared.stop.store(true, Ordering::SeqCst);
        }
        if let Some(acceptor) = lock(&self.acceptor).take() {
            // accept() has no timeout; a connection of our own wakes it up.
            let _ = TcpStream::connect(self.addr);
            let _ = acceptor.join();
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A URL on loopback where nothing listens, for "endpoint down" tests. The
/// port was free a moment ago; another process could grab it, but that is
/// rare enough on a test machine.
pub fn refused_url(path: &str) -> String {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("cannot bind 127.0.0.1:0")
        .port();
    format!("http://127.0.0.1:{port}{path}")
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stopped() {
            return;
        }
        let stream = match conn {
            Ok(stream) => stream,
            // Typically EMFILE; back off instead of spinning on the error.
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let shared = Arc::clone(shared);
        // If the thread cannot be spawned the stream is dropped, which the
        // client sees as a closed connection.
        let _ = thread::Builder::new()
            .name("vigil-sink-conn".into())
            .spawn(move || {
                let _ = serve(&shared, stream);
            });
    }
}

/// Reads from a socket with a short timeout so the thread can notice `stop`,
/// without losing bytes that arrived before a timeout.
struct Conn<'a> {
    reader: BufReader<TcpStream>,
    shared: &'a Shared,
}

impl Conn<'_> {
    /// A timeout is only a chance to check `stop`; anything else ends the
    /// connection.
    fn retry(&self, e: io::Error) -> io::Result<()> {
        match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                if !self.shared.stopped() =>
            {
                Ok(())
            }
            _ => Err(e),
        }
    }

    /// Reads one line, `\n` included, into `out`. Returns false on a clean
    /// end of stream before the first byte.
    fn line(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        out.clear();
        loop {
            // read_until keeps what it read when it fails, so a timeout in
            // the middle of a line loses nothing.
            match self.reader.read_until(b'\n', out) {
                Ok(_) if out.ends_with(b"\n") => return Ok(true),
                Ok(0) if out.is_empty() => return Ok(false),
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) => self.retry(e)?,
            }
        }
    }

    fn required_line(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        if self.line(out)? {
            Ok(())
        } else {
            Err(ErrorKind::UnexpectedEof.into())
        }
    }

    /// Appends exactly `n` bytes to `out`.
    fn exact(&mut self, out: &mut Vec<u8>, n: usize) -> io::Result<()> {
        if out.len() + n > MAX_BODY {
            return Err(ErrorKind::InvalidData.into());
        }
        let mut filled = out.len();
        out.resize(filled + n, 0);
        while filled < out.len() {
            match self.reader.read(&mut out[filled..]) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(k) => filled += k,
                Err(e) => self.retry(e)?,
            }
        }
        Ok(())
    }

    fn chunked_body(&mut self, line: &mut Vec<u8>, body: &mut Vec<u8>) -> io::Result<()> {
        loop {
            self.required_line(line)?;
            let text = std::str::from_utf8(trim_eol(line)).map_err(|_| bad("chunk size"))?;
            let size = text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| bad("chunk size"))?;
            if size == 0 {
                // Trailer fields are not recorded; read up to the blank line.
                loop {
                    self.required_line(line)?;
                    if trim_eol(line).is_empty() {
                        return Ok(());
                    }
                }
            }
            self.exact(body, size)?;
            self.required_line(line)?;
            if !trim_eol(line).is_empty() {
                return Err(bad("chunk terminator"));
            }
        }
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, format!("malformed {what}"))
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Reads one request. Returns it with whether the connection stays open
/// afterwards, or None when the client closed between requests.
fn read_request(
    conn: &mut Conn,
    out: &mut BufWriter<TcpStream>,
    line: &mut Vec<u8>,
) -> io::Result<Option<(Request, bool)>> {
    // RFC 9112 asks servers to ignore empty lines before a request line.
    loop {
        if !conn.line(line)? {
            return Ok(None);
        }
        if !trim_eol(line).is_empty() {
            break;
        }
    }
    let request_line = String::from_utf8_lossy(trim_eol(line));
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("request line"));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut keep_alive = version != "HTTP/1.0";

    let mut headers = Vec::new();
    loop {
        conn.required_line(line)?;
        let raw = trim_eol(line);
        if raw.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(raw);
        let (name, value) = text.split_once(':').ok_or_else(|| bad("header"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }

    let mut chunked = false;
    let mut length = 0;
    let mut expect_continue = false;
    for (name, value) in &headers {
        match name.as_str() {
            "connection" if has_token(value, "close") => keep_alive = false,
            "connection" if has_token(value, "keep-alive") => keep_alive = true,
            "transfer-encoding" => chunked = has_token(value, "chunked"),
            "content-length" => length = value.parse().map_err(|_| bad("Content-Length"))?,
            "expect" => expect_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }

    // curl waits for this before sending bodies over 1 KiB.
    if expect_continue {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        out.flush()?;
    }
    let mut body = Vec::new();
    // Transfer-Encoding wins over Content-Length (RFC 9112 section 6.3).
    if chunked {
        conn.chunked_body(line, &mut body)?;
    } else {
        conn.exact(&mut body, length)?;
    }

    let received_unix_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let request = Request {
        method,
        path,
        headers,
        body,
        received_at: Instant::now(),
        received_unix_us,
    };
    Ok(Some((request, keep_alive)))
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        // The reason phrase is optional; clients go by the code.
        _ => "",
    }
}

fn respond(
    out: &mut BufWriter<TcpStream>,
    head_only: bool,
    code: u16,
    extra: &[(String, String)],
    keep_alive: bool,
) -> io::Result<()> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    write!(out, "HTTP/1.1 {code} {}\r\n", reason(code))?;
    // 204 and 304 cannot carry a body; sending one would desynchronise the
    // next response on a keep-alive connection.
    let bodiless = matches!(code, 204 | 304);
    if !bodiless {
        out.write_all(b"Content-Length: 2\r\n")?;
    }
    write!(out, "Connection: {connection}\r\n")?;
    for (name, value) in extra {
        write!(out, "{name}: {value}\r\n")?;
    }
    out.write_all(b"\r\n")?;
    if !bodiless && !head_only {
        out.write_all(b"ok")?;
    }
    out.flush()
}

/// Sleeps in short steps so `stop` is not held up by a long scripted delay.
/// Returns false if the sink stopped meanwhile.
fn pause(shared: &Shared, delay: Duration) -> bool {
    let end = Instant::now() + delay;
    loop {
        if shared.stopped() {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        thread::sleep(left.min(POLL));
    }
}

fn serve(shared: &Shared, stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(POLL))?;
    let mut out = BufWriter::new(stream.try_clone()?);
    let mut conn = Conn {
        reader: BufReader::with_capacity(16 << 10, stream),
        shared,
    };
    let mut line = Vec::with_capacity(256);
    while let Some((request, keep_alive)) = read_request(&mut conn, &mut out, &mut line)? {
        let head_only = request.method == "HEAD";
        let reply = shared.next_reply(&request.path);
        if !shared.record(request) {
            return Ok(());
        }
        match reply {
            Reply::Status(code) => respond(&mut out, head_only, code, &[], keep_alive)?,
            Reply::StatusWith(code, extra) => {
                respond(&mut out, head_only, code, &extra, keep_alive)?
            }
            Reply::Delay(delay, code) => {
                if !pause(shared, delay) {
                    return Ok(());
                }
                respond(&mut out, head_only, code, &[], keep_alive)?
            }
            Reply::Close => {
                let _ = out.get_ref().shutdown(Shutdown::Both);
                return Ok(());
            }
        }
        if !keep_alive {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(sink: &Sink) -> (TcpStream, BufReader<TcpStream>) {
        let stream = TcpStream::connect(("127.0.0.1", sink.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        (stream, reader)
    }

    fn post(stream: &mut TcpStream, path: &str, body: &str) {
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Idempotency-Key: k-1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    }

    /// Returns the status code, the headers (names lowercased) and the body.
    fn response(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>, String) {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let code = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let Some((name, value)) = line.trim_end().split_once(':') else {
                break;
            };
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (code, headers, String::from_utf8(body).unwrap())
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn keep_alive_and_recorded_request() {
        let sink = Sink::start();
        assert_eq!(
            sink.url("/hook"),
            format!("http://127.0.0.1:{}/hook", sink.port())
        );
        let (mut stream, mut reader) = client(&sink);
        post(&mut stream, "/hook", r#"{"text":"one"}"#);
        let (code, headers, body) = response(&mut reader);
        assert_eq!((code, body.as_str()), (200, "ok"));
        assert_eq!(header(&headers, "connection"), Some("keep-alive"));
        post(&mut stream, "/hook", r#"{"text":"two"}"#);
        assert_eq!(response(&mut reader).0, 200);

        assert!(sink.wait_for_count(2, Duration::from_secs(5)));
        let reqs = sink.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(reqs[0].path, "/hook");
        assert_eq!(reqs[0].header("IDEMPOTENCY-KEY"), Some("k-1"));
        assert_eq!(reqs[0].header("content-type"), Some("application/json"));
        assert!(reqs[0].headers.iter().any(|(n, _)| n == "idempotency-key"));
        assert_eq!(reqs[0].body_str(), r#"{"text":"one"}"#);
        assert_eq!(reqs[1].body_str(), r#"{"text":"two"}"#);
        assert!(reqs[0].received_at <= reqs[1].received_at);
        assert!(reqs[0].received_unix_us > 1_600_000_000_000_000);

        assert_eq!(sink.take_requests().len(), 2);
        assert_eq!(sink.count(), 0);
        assert!(!sink.wait_for_count(1, Duration::from_millis(20)));
    }

    #[test]
    fn scripted_replies_then_default() {
        let sink = Sink::start();
        sink.push(
            "/s",
            [
                Reply::Status(500),
                Reply::StatusWith(429, vec![("Retry-After".into(), "7".into())]),
            ],
        );
        let (mut stream, mut reader) = client(&sink);
        post(&mut stream, "/s", "a");
        assert_eq!(response(&mut reader).0, 500);
        post(&mut stream, "/s", "b");
        let (code, headers, _) = response(&mut reader);
        assert_eq!(code, 429);
        assert_eq!(header(&headers, "retry-after"), Some("7"));
        post(&mut stream, "/s", "c");
        assert_eq!(response(&mut reader).0, 200);

        sink.set_default(Reply::Status(503));
        post(&mut stream, "/other", "d");
        assert_eq!(response(&mut reader).0, 503);
        assert_eq!(sink.count(), 4);
        sink.clear();
        assert_eq!(sink.count(), 0);
    }

    #[test]
    fn delay_answers_late() {
        let sink = Sink::start();
        sink.push("/slow", [Reply::Delay(Duration::from_millis(300), 202)]);
        let (mut stream, mut reader) = client(&sink);
        let started = Instant::now();
        post(&mut stream, "/slow", "x");
        // Recorded as soon as it is read, before the delayed answer.
        assert!(sink.wait_for_count(1, Duration::from_millis(250)));
        assert_eq!(response(&mut reader).0, 202);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn close_drops_connection_unanswered() {
        let sink = Sink::start();
        sink.push("/drop", [Reply::Close]);
        let (mut stream, mut reader) = client(&sink);
        post(&mut stream, "/drop", "x");
        let mut rest = Vec::new();
        assert_eq!(reader.read_to_end(&mut rest).unwrap(), 0);
        assert_eq!(sink.count(), 1);
    }

    #[test]
    fn chunked_body() {
        let sink = Sink::start();
        let (mut stream, mut reader) = client(&sink);
        stream
            .write_all(
                b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
            )
            .unwrap();
        assert_eq!(response(&mut reader).0, 200);
        assert_eq!(sink.requests()[0].body_str(), "hello, world");
    }

    #[test]
    fn connection_close_is_honoured() {
        let sink = Sink::start();
        let (mut stream, mut reader) = client(&sink);
        stream
            .write_all(b"GET /g HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (code, headers, body) = response(&mut reader);
        assert_eq!((code, body.as_str()), (200, "ok"));
        assert_eq!(header(&headers, "connection"), Some("close"));
        let mut rest = Vec::new();
        assert_eq!(reader.read_to_end(&mut rest).unwrap(), 0);
        assert_eq!(sink.requests()[0].body, b"");
    }

    #[test]
    fn stop_refuses_and_drops_later_requests() {
        let sink = Sink::start();
        let (mut stream, mut reader) = client(&sink);
        post(&mut stream, "/a", "before");
        assert_eq!(response(&mut reader).0, 200);
        sink.stop();
        assert!(TcpStream::connect(("127.0.0.1", sink.port())).is_err());
        // The open keep-alive connection is closed without an answer.
        post(&mut stream, "/a", "after");
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        assert!(rest.is_empty());
        let reqs = sink.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].body_str(), "before");
    }

    #[test]
    fn refused_url_refuses() {
        let url = refused_url("/down");
        let addr = url
            .strip_prefix("http://")
            .and_then(|u| u.strip_suffix("/down"))
            .unwrap();
        assert!(TcpStream::connect(addr).is_err());
    }
}
