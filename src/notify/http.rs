//! The HTTP side of delivery: a tokio current-thread runtime and a reqwest
//! client that send a batch of notifications concurrently with hard time
//! limits. Nothing here touches PostgreSQL, so it is safe to run while the
//! runtime's helper threads (DNS) exist; the worker passes plain values in and
//! gets plain values out.

use super::channel::{self, Policy};
use super::retry::{parse_retry_after, Attempt};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// One POST to make.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: i64,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub idempotency_key: String,
    /// For an email channel, its `options`: the request goes out by SMTP
    /// (`mail::send`), `body` being the stored `EmailBody`.
    pub mail_options: Option<String>,
}

/// How often a running batch checks whether it should stop (SIGTERM).
const CANCEL_POLL: Duration = Duration::from_millis(50);
/// How much of an error response body is kept for `last_error`.
const ERROR_BODY_BYTES: usize = 1024;

pub struct Sender {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    policy: Arc<Policy>,
    timeout: Duration,
    /// `vigil.ssl_ca_file`'s certificates for SMTP's TLS (lettre's type).
    mail_roots: Arc<Vec<lettre::transport::smtp::client::Certificate>>,
}

/// The certificates of a PEM bundle (`vigil.ssl_ca_file`), or why none can be
/// used: a bundle that holds no certificate, or one that does not parse, is
/// an error rather than silently trusting nothing extra.
pub fn extra_roots(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, String> {
    let certs = reqwest::Certificate::from_pem_bundle(pem)
        .map_err(|e| format!("not a PEM bundle of certificates: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

/// DNS through the system resolver (as reqwest's default does, on the
/// runtime's blocking threads), keeping only the addresses the destination
/// policy allows: a host name that resolves to a link-local or metadata
/// address is never connected to. IP-literal hosts never reach a resolver;
/// `send_one` checks them before the request.
struct PolicyResolver {
    policy: Arc<Policy>,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let lookup = host.clone();
            let addrs: Vec<SocketAddr> =
                tokio::task::spawn_blocking(move || (lookup.as_str(), 0).to_socket_addrs())
                    .await
                    .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })??
                    .collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match channel::check_resolved(&host, a.ip(), &policy) {
                    Ok(()) => true,
                    Err(e) => {
                        refused = Some(e);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let e = refused.unwrap_or_else(|| format!("{host} has no addresses"));
                return Err(e.into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Sender {
    pub fn new(timeout: Duration, max_idle_per_host: usize) -> Result<Sender, String> {
        Sender::with_policy(timeout, max_idle_per_host, "", Vec::new())
    }

    /// A sender that applies the destination policy with `allow_list`
    /// (`vigil.allowed_internal_hosts`) to every URL and resolved address,
    /// and trusts `roots` (`vigil.ssl_ca_file`) besides the bundled public roots.
    pub fn with_policy(
        timeout: Duration,
        max_idle_per_host: usize,
        allow_list: &str,
        roots: Vec<reqwest::Certificate>,
    ) -> Result<Sender, String> {
        let policy = Arc::new(Policy::parse(allow_list));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .enable_io()
            // The runtime's blocking threads (DNS look-ups) must never run
            // PostgreSQL's signal handlers: those belong to the main thread.
            .on_thread_start(block_signals)
            .build()
            .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
        let mut builder = reqwest::Client::builder();
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
        let client = builder
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(max_idle_per_host)
            .tcp_nodelay(true)
            // A webhook that redirects elsewhere is a misconfiguration, and
            // following it could hand the payload to a third party.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pg_vigil/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(PolicyResolver {
                policy: policy.clone(),
            }))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Sender {
            runtime,
            client,
            policy,
            timeout,
            mail_roots: Arc::new(Vec::new()),
        })
    }

    /// Trusts the certificates of PEM bundle `pem` (`vigil.ssl_ca_file`) for
    /// email channels' TLS too.
    pub fn set_mail_roots(&mut self, pem: &[u8]) {
        self.mail_roots = Arc::new(super::mail::roots_of(pem));
    }

    /// Sends every request, at most `max_concurrency` at a time. Returns one
    /// entry per request in completion order; `None` for requests that were
    /// cut short because `cancelled()` turned true (they were maybe sent).
    pub fn send_all(
        &self,
        requests: Vec<Request>,
        max_concurrency: usize,
        cancelled: impl Fn() -> bool,
    ) -> Vec<(i64, Option<Attempt>)> {
        let ids: Vec<i64> = requests.iter().map(|r| r.id).collect();
        let permits = Arc::new(Semaphore::new(max_concurrency.max(1)));
        self.runtime.block_on(async {
            let mut tasks = JoinSet::new();
            for request in requests {
                let client = self.client.clone();
                let permits = permits.clone();
                let policy = self.policy.clone();
                let roots = self.mail_roots.clone();
                let timeout = self.timeout;
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let id = request.id;
                    let attempt = match &request.mail_options {
                        Some(options) => {
                            super::mail::send(
                                &request.url,
                                options,
                                &String::from_utf8_lossy(&request.body),
                                &request.idempotency_key,
                                &policy,
                                &roots,
                                timeout,
                            )
                            .await
                        }
                        None => send_one(&client, &policy, request).await,
                    };
                    (id, attempt)
                });
            }
            let mut results = Vec::with_capacity(ids.len());
            let mut tick = tokio::time::interval(CANCEL_POLL);
            loop {
                tokio::select! {
                    joined = tasks.join_next() => match joined {
                        Some(Ok((id, attempt))) => results.push((id, Some(attempt))),
                        Some(Err(e)) => debug_assert!(false, "send task failed: {e}"),
                        None => break,
                    },
                    _ = tick.tick() => if cancelled() {
                        tasks.abort_all();
                        while tasks.join_next().await.is_some() {}
                        break;
                    },
                }
            }
            let done: std::collections::HashSet<i64> = results.iter().map(|r| r.0).collect();
            results.extend(
                ids.into_iter()
                    .filter(|id| !done.contains(id))
                    .map(|id| (id, None)),
            );
            results
        })
    }
}

async fn send_one(client: &reqwest::Client, policy: &Policy, request: Request) -> Attempt {
    // The same check as when the channel was stored (the row may predate the
    // policy or have been written with other settings), on the URL exactly as
    // reqwest gets it.
    let url = match channel::parse_http_url(&request.url, policy) {
        Ok(url) => url,
        Err(e) => return Attempt::Invalid(e),
    };
    let mut builder = client
        .post(url)
        .header("content-type", "application/json")
        .header("idempotency-key", &request.idempotency_key);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let response = match builder.body(request.body).send().await {
        Ok(r) => r,
        Err(e) => return classify_error(e),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, unix_now()));
    // Reading the body lets the connection go back to the pool; keep only a
    // prefix of it for the error message.
    let mut body = Vec::new();
    let mut response = response;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = ERROR_BODY_BYTES.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            // A 2xx status line means it was accepted, whatever the body does.
            Err(e) if e.is_timeout() && !(200..300).contains(&status) => return Attempt::Timeout,
            Err(_) => break,
        }
    }
    Attempt::Http {
        status,
        retry_after,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn classify_error(e: reqwest::Error) -> Attempt {
    if e.is_timeout() {
        return Attempt::Timeout;
    }
    let invalid = e.is_builder();
    // reqwest names the URL in its message, and URLs carry secrets.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut certificate = false;
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        certificate |= is_certificate_error(cause);
        source = cause.source();
    }
    if invalid {
        Attempt::Invalid(format!("invalid request: {message}"))
    } else if certificate {
        // Retrying cannot make an untrusted or wrong certificate good: the
        // receiver's operator or vigil.ssl_ca_file must change, then a replay.
        Attempt::Invalid(format!(
            "TLS certificate refused (for a private CA set vigil.ssl_ca_file, then replay): {message}"
        ))
    } else {
        Attempt::Connection(message)
    }
}

/// Whether `cause` is rustls refusing the receiver's certificate. It
/// reaches reqwest (and lettre) wrapped in `io::Error`s (two, today), whose
/// `source` skips what they wrap, so those are unwrapped here.
pub(super) fn is_certificate_error(cause: &(dyn std::error::Error + 'static)) -> bool {
    let mut error = cause;
    loop {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        match error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => error = inner,
            None => return false,
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn block_signals() {
    // SAFETY: plain libc calls on this (new) thread's own signal mask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A self-signed CA certificate made for this test (no key kept).
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBmDCCAT2gAwIBAgIUbJZKZpWFWYKIZc1VaOnxquB/kG8wCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVcGdfdmlnaWwtdW5pdC10ZXN0LWNhMCAXDTI2MTIwMjIwMzYw
MloYDzIxMjYxMTA4MjAzNjAyWjAgMR4wHAYDVQQDDBVwZ192aWdpbC11bml0LXRl
c3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQxKL79Q5BQQGfWHWqzYnDu
JzJ3iUZHB7wdN/bEt1ywssC8Rjnf+mSZ+clilpxTnhoPk4CChkkfVxwEhvlrpPOt
o1MwUTAdBgNVHQ4EFgQU9gAOQhHUz2/KqvzyuOYgWsqE0oIwHwYDVR0jBBgwFoAU
9gAOQhHUz2/KqvzyuOYgWsqE0oIwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNJADBGAiEA6Eg4ljhByYYB68TEyJRBgz64ZlgNhzZNjpvSqqK7EocCIQDfMW4h
zaYbG7Yuk+4DOcnoRdH6oporLchP8lbb4wEkMQ==
-----END CERTIFICATE-----\n";

    #[test]
    fn ca_bundles_give_their_certificates_or_say_why_not() {
        assert_eq!(extra_roots(TEST_CA.as_bytes()).unwrap().len(), 1);
        let two = format!("{TEST_CA}{TEST_CA}");
        assert_eq!(extra_roots(two.as_bytes()).unwrap().len(), 2);
        assert!(extra_roots(b"").unwrap_err().contains("no PEM certificate"));
        assert!(extra_roots(b"not pem at all\n")
            .unwrap_err()
            .contains("no PEM certificate"));
        let broken = TEST_CA.replace("MII", "@@@");
        assert!(
            extra_roots(broken.as_bytes()).is_err(),
            "a damaged certificate is refused"
        );
        // A sender with extra roots builds.
        let roots = extra_roots(TEST_CA.as_bytes()).unwrap();
        assert!(Sender::with_policy(Duration::from_secs(1), 1, "", roots).is_ok());
    }

    /// A one-shot loopback server answering each connection with `reply`.
    fn serve(replies: Vec<&'static str>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for reply in replies {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                loop {
                    let n = s.read(&mut buf).unwrap();
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            seen.push(text);
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                s.write_all(reply.as_bytes()).unwrap();
            }
            seen
        });
        (url, handle)
    }

    /// Accepts connections and holds them open without ever answering.
    fn silent_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/slow", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().take(8) {
                held.push(stream);
            }
            std::thread::sleep(Duration::from_secs(10));
        });
        url
    }

    fn request(id: i64, url: &str) -> Request {
        Request {
            id,
            url: url.to_string(),
            headers: vec![("X-Token".into(), "t1".into())],
            body: br#"{"text":"hi"}"#.to_vec(),
            idempotency_key: format!("key-{id}"),
            mail_options: None,
        }
    }

    #[test]
    fn posts_json_with_idempotency_key_and_channel_headers() {
        let (url, server) = serve(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ]);
        let sender = Sender::new(Duration::from_secs(5), 4).unwrap();
        let out = sender.send_all(vec![request(7, &url)], 4, || false);
        assert_eq!(out.len(), 1);
        assert!(
            matches!(&out[0], (7, Some(Attempt::Http { status: 200, .. }))),
            "{out:?}"
        );
        let seen = server.join().unwrap();
        let req = seen[0].to_ascii_lowercase();
        assert!(req.starts_with("post /hook http/1.1"), "{req}");
        assert!(req.contains("idempotency-key: key-7"));
        assert!(req.contains("x-token: t1"));
        assert!(req.contains("content-type: application/json"));
        assert!(seen[0].ends_with(r#"{"text":"hi"}"#));
    }

    #[test]
    fn retry_after_and_error_body_are_reported() {
        let (url, server) = serve(vec![
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 7\r\nConnection: close\r\n\r\nslow it",
        ]);
        let sender = Sender::new(Duration::from_secs(5), 4).unwrap();
        let out = sender.send_all(vec![request(1, &url)], 4, || false);
        server.join().unwrap();
        assert_eq!(
            out[0].1,
            Some(Attempt::Http {
                status: 429,
                retry_after: Some(Duration::from_secs(2)),
                body: "slow it".into()
            })
        );
    }

    #[test]
    fn refused_connections_and_timeouts_are_told_apart() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let refused = format!("http://127.0.0.1:{port}/x");
        let silent = silent_server();
        let sender = Sender::new(Duration::from_millis(300), 4).unwrap();
        let mut out = sender.send_all(vec![request(1, &refused), request(2, &silent)], 4, || false);
        out.sort_by_key(|r| r.0);
        assert!(
            matches!(&out[0].1, Some(Attempt::Connection(e)) if !e.contains(&port.to_string())),
            "{out:?}"
        );
        assert_eq!(out[1].1, Some(Attempt::Timeout));
    }

    #[test]
    fn cancelling_returns_every_request_unfinished() {
        let silent = silent_server();
        let sender = Sender::new(Duration::from_secs(30), 4).unwrap();
        let start = std::time::Instant::now();
        let out = sender.send_all(vec![request(1, &silent), request(2, &silent)], 1, || {
            start.elapsed() > Duration::from_millis(200)
        });
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r.1.is_none()), "{out:?}");
    }

    #[test]
    fn link_local_literal_urls_are_refused_at_send_time_without_connecting() {
        let sender = Sender::new(Duration::from_secs(5), 4).unwrap();
        let out = sender.send_all(
            vec![
                request(1, "http://169.254.169.254/latest/meta-data/"),
                request(2, "http://2852039166/"),
                request(3, "http://[::ffff:169.254.169.254]/"),
            ],
            4,
            || false,
        );
        assert_eq!(out.len(), 3);
        for (id, attempt) in out {
            match attempt {
                Some(Attempt::Invalid(e)) => {
                    assert!(e.contains("refused by the destination policy"), "{id}: {e}");
                    assert!(!e.contains("meta-data"), "{e}");
                }
                other => panic!("{id}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_resolver_drops_addresses_the_policy_refuses() {
        use reqwest::dns::Resolve;
        use std::str::FromStr;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let resolve = |allow: &str, name: &str| {
            let r = PolicyResolver {
                policy: Arc::new(Policy::parse(allow)),
            };
            rt.block_on(r.resolve(reqwest::dns::Name::from_str(name).unwrap()))
                .map(|addrs| addrs.map(|a| a.ip().to_string()).collect::<Vec<_>>())
                .map_err(|e| e.to_string())
        };
        // getaddrinfo resolves numeric names to themselves: the same path as
        // a DNS name whose record points at the metadata service.
        let err = resolve("", "169.254.169.254").unwrap_err();
        assert!(err.contains("resolves to 169.254.169.254"), "{err}");
        assert_eq!(
            resolve("169.254.0.0/16", "169.254.169.254").unwrap(),
            vec!["169.254.169.254"]
        );
        assert_eq!(resolve("", "127.0.0.1").unwrap(), vec!["127.0.0.1"]);
    }
}
