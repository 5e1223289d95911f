//! A small HTTP/1.1 server on loopback that stands in for Slack, webhook,
//! PagerDuty and Teams endpoints in the e2e tests and the delivery benchmark
//! (`vigil_sink`): it records every request it reads and answers with scripted
//! replies, so they can check exactly what pg_vigil sent and how it copes with
//! failures. hyper serves the HTTP on a tokio runtime the sink owns, so
//! synchronous test code calls it like any other object.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::error::Error;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::runtime::Runtime;

/// A corrupt Content-Length or chunk size must not make the sink allocate
/// gigabytes; nothing pg_vigil sends comes close to this.
const MAX_BODY: usize = 64 << 20;

/// Enough to keep up with the worker's 32 concurrent connections on the
/// 2-core benchmark machine, without each of a test run's sinks starting a
/// thread per core on a large one.
const THREADS: usize = 2;

/// Tasks never block, so the runtime's threads end at once; this only
/// bounds `stop` if one ever did.
const SHUTDOWN: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target exactly as sent, query string included.
    pub path: String,
    /// Names are lowercased; values are trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Taken once the whole body has been read.
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

/// Every answer carries the body `ok` (none on 204 and 304, none to HEAD). A
/// code outside 100..=999 or an unsendable header drops the connection.
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
        if self.stop.load(Ordering::SeqCst) {
            return false;
        }
        records.push(req);
        self.recorded.notify_all();
        true
    }
}

pub struct Sink {
    shared: Arc<Shared>,
    addr: SocketAddr,
    runtime: Mutex<Option<Runtime>>,
}

impl Sink {
    pub fn start() -> Sink {
        Sink::start_on(0).expect("cannot bind the HTTP sink on 127.0.0.1")
    }

    /// Binds `127.0.0.1:port` (0 picks a free port). Only loopback, so test
    /// runs never expose a listener to the network.
    pub fn start_on(port: u16) -> io::Result<Sink> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(THREADS)
            .thread_name("vigil-sink")
            .enable_io()
            .enable_time()
            .build()?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            records: Mutex::new(Vec::new()),
            recorded: Condvar::new(),
            scripts: Mutex::new(HashMap::new()),
            default: Mutex::new(Reply::Status(200)),
        });
        runtime.spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Sink {
            shared,
            addr,
            runtime: Mutex::new(Some(runtime)),
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

    /// Returns once the port refuses connections and every open connection
    /// is closed; calling it again does nothing. A request read meanwhile is
    /// dropped unanswered and unrecorded, as if the server had gone away, and
    /// so is one waiting out a `Reply::Delay`. Recorded requests stay
    /// readable.
    pub fn stop(&self) {
        {
            let _records = lock(&self.shared.records);
            self.shared.stop.store(true, Ordering::SeqCst);
        }
        if let Some(runtime) = lock(&self.runtime).take() {
            // Shutting the runtime down drops every task: the listener and
            // each connection with it.
            runtime.shutdown_timeout(SHUTDOWN);
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

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Typically EMFILE; back off instead of spinning on the error.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Answers are small; waiting to coalesce them only adds latency.
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(Arc::clone(&shared), req));
            // An error (the client went away, a bad request, a scripted
            // hang-up) ends only this connection.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// An error makes hyper drop the connection without answering.
type HangUp = Box<dyn Error + Send + Sync>;

/// Reads the whole request, records it, then answers as scripted.
async fn answer(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
) -> Result<Response<Full<Bytes>>, HangUp> {
    let (head, body) = req.into_parts();
    let body = Limited::new(body, MAX_BODY).collect().await?.to_bytes();
    let received_unix_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let request = Request {
        method: head.method.to_string(),
        path: head.uri.to_string(),
        headers: head
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes());
                (name.as_str().to_string(), value.trim().to_string())
            })
            .collect(),
        body: Vec::from(body),
        received_at: Instant::now(),
        received_unix_us,
    };
    let reply = shared.next_reply(&request.path);
    if !shared.record(request) {
        return Err("the sink has stopped".into());
    }
    let (code, extra) = match reply {
        Reply::Status(code) => (code, Vec::new()),
        Reply::StatusWith(code, extra) => (code, extra),
        Reply::Delay(delay, code) => {
            tokio::time::sleep(delay).await;
            (code, Vec::new())
        }
        Reply::Close => return Err("scripted hang-up".into()),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    *response.status_mut() = StatusCode::from_u16(code)?;
    for (name, value) in extra {
        response
            .headers_mut()
            .append(HeaderName::try_from(name)?, HeaderValue::try_from(value)?);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;

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
        assert_eq!(header(&headers, "connection"), None);
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
                Reply::Status(204),
            ],
        );
        let (mut stream, mut reader) = client(&sink);
        post(&mut stream, "/s", "a");
        assert_eq!(response(&mut reader).0, 500);
        post(&mut stream, "/s", "b");
        let (code, headers, _) = response(&mut reader);
        assert_eq!(code, 429);
        assert_eq!(header(&headers, "retry-after"), Some("7"));
        // A 204 carries no body, so the next answer is read in step.
        post(&mut stream, "/s", "c");
        let (code, _, body) = response(&mut reader);
        assert_eq!((code, body.as_str()), (204, ""));
        post(&mut stream, "/s", "d");
        assert_eq!(response(&mut reader).0, 200);

        sink.set_default(Reply::Status(503));
        post(&mut stream, "/other", "e");
        assert_eq!(response(&mut reader).0, 503);
        assert_eq!(sink.count(), 5);
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
    fn stop_drops_an_answer_still_delayed() {
        let sink = Sink::start();
        sink.push("/slow", [Reply::Delay(Duration::from_secs(60), 200)]);
        let (mut stream, mut reader) = client(&sink);
        post(&mut stream, "/slow", "x");
        assert!(sink.wait_for_count(1, Duration::from_secs(5)));
        sink.stop();
        let mut rest = Vec::new();
        assert_eq!(reader.read_to_end(&mut rest).unwrap(), 0);
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
        // The open keep-alive connection is closed: what is sent on it gets
        // no answer and is not recorded (the write itself may fail).
        let _ = stream.write_all(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nafter");
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
