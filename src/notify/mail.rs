//! Email channels: SMTP by lettre (async on the worker's tokio runtime,
//! rustls), one message per notification — an alert event, or a group —
//! with a text and an HTML part. Nothing here touches PostgreSQL.
//!
//! A channel's `url` is `smtp://host[:port]` (STARTTLS, port 587 unless
//! given; `options.tls` `"none"` for a plain relay) or `smtps://host[:port]`
//! (implicit TLS, port 465); its `options` hold the envelope and the login
//! (`EmailOptions`), which are secret like the URL.

use super::channel::{self, Policy};
use super::retry::Attempt;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// Most recipients (`to` and `cc` together) one channel sends to.
const MAX_RECIPIENTS: usize = 50;

/// What an email channel's `options` hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailOptions {
    pub from: String,
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// For `smtp://` only: `starttls` (default, required) or `none`.
    #[serde(default)]
    pub tls: TlsMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    #[default]
    Starttls,
    None,
}

/// The stored body of an email notification (rendered at enqueue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailBody {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// An SMTP server as a channel names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    /// `smtps://`: TLS from the first byte.
    pub implicit_tls: bool,
}

/// Parses and checks an email channel's URL under the destination policy;
/// the error never repeats more of it than scheme and host.
pub fn parse_smtp_url(url: &str, policy: &Policy) -> Result<Server, String> {
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("url must not contain spaces or control characters".into());
    }
    let u = url::Url::parse(url)
        .map_err(|e| format!("url must be smtp://host[:port] or smtps://host[:port]: {e}"))?;
    let implicit_tls = match u.scheme() {
        "smtp" => false,
        "smtps" => true,
        other => {
            return Err(format!(
                "url scheme of an email channel must be smtp or smtps, got \"{other}\""
            ))
        }
    };
    if !u.username().is_empty() || u.password().is_some() {
        return Err("url must not embed credentials; put username and password in options".into());
    }
    if !(u.path().is_empty() || u.path() == "/") || u.query().is_some() || u.fragment().is_some() {
        return Err("url of an email channel is only smtp(s)://host[:port]".into());
    }
    let Some(h) = u.host() else {
        return Err("url must name the SMTP server's host".into());
    };
    channel::check_host(&h, policy)?;
    let host = match h {
        url::Host::Domain(d) => d.to_owned(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    };
    // smtp is not a "special" scheme to the URL parser, so an IPv4 host
    // stays text: judge it as the address. (Other spellings that resolve
    // to an address — decimal, octal — are caught when the worker resolves
    // the host: `resolve` checks every address.)
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        channel::check_resolved(&host, ip, policy)?;
    }
    let port = u.port().unwrap_or(if implicit_tls { 465 } else { 587 });
    Ok(Server {
        host,
        port,
        implicit_tls,
    })
}

/// What is wrong with `options` for an email channel, naming the key and
/// never its value; None when they will do.
pub fn check_options(options: &Value) -> Option<String> {
    let o: EmailOptions = match serde_json::from_value(options.clone()) {
        Ok(o) => o,
        Err(e) => {
            // serde names the key; values it quotes are cut off here.
            let e = e.to_string();
            let e = e.split(", expected").next().unwrap_or(&e).to_owned();
            return Some(format!(
                "options of an email channel must be {{\"from\": \"...\", \"to\": [\"...\"], \"cc\"?, \"username\"?, \"password\"?, \"tls\"?: \"starttls\" | \"none\"}}: {}",
                e.chars().take(200).collect::<String>()
            ));
        }
    };
    if o.from.parse::<Mailbox>().is_err() {
        return Some("options.from must be an email address (\"Name <a@b>\" or \"a@b\")".into());
    }
    if o.to.is_empty() {
        return Some("options.to must list at least one address".into());
    }
    if o.to.len() + o.cc.len() > MAX_RECIPIENTS {
        return Some(format!(
            "options.to and options.cc list at most {MAX_RECIPIENTS} addresses together"
        ));
    }
    for (key, list) in [("to", &o.to), ("cc", &o.cc)] {
        if let Some(i) = list.iter().position(|a| a.parse::<Mailbox>().is_err()) {
            return Some(format!("options.{key}[{i}] is not an email address"));
        }
    }
    if o.username.is_some() != o.password.is_some() {
        return Some("options.username and options.password go together".into());
    }
    None
}

/// The message for `body`, from and to `o`, with `Message-ID`
/// `<idempotency_key@pg_vigil>`: a retry after a lost reply sends the same
/// ID, so mail clients show it once.
pub fn build_message(
    body: &EmailBody,
    o: &EmailOptions,
    idempotency_key: &str,
) -> Result<Message, String> {
    let mailbox = |a: &str| {
        a.parse::<Mailbox>()
            .map_err(|e| format!("bad address: {e}"))
    };
    let mut m = Message::builder()
        .from(mailbox(&o.from)?)
        .subject(one_line(&body.subject))
        .message_id(Some(format!("<{idempotency_key}@pg_vigil>")))
        .user_agent(concat!("pg_vigil/", env!("CARGO_PKG_VERSION")).to_owned());
    for a in &o.to {
        m = m.to(mailbox(a)?);
    }
    for a in &o.cc {
        m = m.cc(mailbox(a)?);
    }
    m.multipart(
        MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(body.text.clone()),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(body.html.clone()),
            ),
    )
    .map_err(|e| format!("cannot build the message: {e}"))
}

/// A header value on one line: control characters (CR, LF) become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The certificates of a PEM bundle (`vigil.ssl_ca_file`) as lettre takes
/// them, one per block; blocks that do not parse are skipped (the HTTP side
/// already warned about the file).
pub fn roots_of(pem: &[u8]) -> Vec<Certificate> {
    let text = String::from_utf8_lossy(pem);
    let end = "-----END CERTIFICATE-----";
    text.split_inclusive(end)
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
        .filter_map(|b| Certificate::from_pem(b.trim().as_bytes()).ok())
        .collect()
}

/// Sends one email notification: `payload` an `EmailBody`, `options` the
/// channel's `EmailOptions`. The server's addresses are resolved and
/// checked against the destination policy here, and the connection goes
/// to a checked address (TLS still verifies the host name). SMTP replies
/// come back as `Attempt::Smtp` (4xx retried, 5xx failed).
pub async fn send(
    url: &str,
    options: &str,
    payload: &str,
    idempotency_key: &str,
    policy: &Policy,
    roots: &[Certificate],
    timeout: Duration,
) -> Attempt {
    let server = match parse_smtp_url(url, policy) {
        Ok(s) => s,
        Err(e) => return Attempt::Invalid(e),
    };
    let o: EmailOptions = match serde_json::from_str(options) {
        Ok(o) => o,
        Err(_) => return Attempt::Invalid("the channel's options are not email options".into()),
    };
    let body: EmailBody = match serde_json::from_str(payload) {
        Ok(b) => b,
        Err(_) => {
            return Attempt::Invalid(
                "the payload is not an email body ({\"subject\", \"text\", \"html\"})".into(),
            )
        }
    };
    let message = match build_message(&body, &o, idempotency_key) {
        Ok(m) => m,
        Err(e) => return Attempt::Invalid(e),
    };
    let addr = match resolve(&server, policy, timeout).await {
        Ok(a) => a,
        Err(e) => return Attempt::Connection(e),
    };
    let tls = || -> Result<TlsParameters, String> {
        let mut b = TlsParameters::builder(server.host.clone());
        for r in roots {
            b = b.add_root_certificate(r.clone());
        }
        b.build_rustls().map_err(|e| format!("TLS setup: {e}"))
    };
    let tls = if server.implicit_tls {
        tls().map(Tls::Wrapper)
    } else if o.tls == TlsMode::Starttls {
        tls().map(Tls::Required)
    } else {
        Ok(Tls::None)
    };
    let tls = match tls {
        Ok(t) => t,
        Err(e) => return Attempt::Invalid(e),
    };
    let mut builder =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
            .port(addr.port())
            .timeout(Some(timeout))
            .tls(tls);
    if let (Some(u), Some(p)) = (&o.username, &o.password) {
        builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
    }
    let transport = builder.build();
    match tokio::time::timeout(timeout.saturating_mul(3), transport.send(message)).await {
        Err(_) => Attempt::Timeout,
        Ok(Ok(reply)) => Attempt::Smtp {
            code: reply_code(&reply.code().to_string()),
            message: reply.message().collect::<Vec<_>>().join(" "),
        },
        Ok(Err(e)) => classify(&e),
    }
}

fn reply_code(text: &str) -> u16 {
    text.trim().parse().unwrap_or(0)
}

fn classify(e: &lettre::transport::smtp::Error) -> Attempt {
    classify_error(
        ErrorKind {
            timeout: e.is_timeout(),
            code: e.status().map(|c| reply_code(&c.to_string())),
            tls: e.is_tls(),
            client: e.is_client(),
        },
        e,
    )
}

/// What lettre's error says of itself (kept apart so the decision below
/// can be tested: lettre's errors cannot be made outside it).
struct ErrorKind {
    timeout: bool,
    /// The server's reply code, when it replied.
    code: Option<u16>,
    /// lettre's own TLS errors (setting TLS up, not the handshake).
    tls: bool,
    /// lettre's "client" errors, which include a server offering no
    /// STARTTLS to a transport that requires it.
    client: bool,
}

fn classify_error(kind: ErrorKind, e: &(dyn std::error::Error + 'static)) -> Attempt {
    if kind.timeout {
        return Attempt::Timeout;
    }
    // lettre's message has the server's reply and its causes' (never the
    // password).
    let message = e.to_string();
    if let Some(code) = kind.code {
        return Attempt::Smtp { code, message };
    }
    // lettre reports rustls refusing the certificate in the handshake as a
    // connection error (its cause, wrapped in io::Errors): retrying cannot
    // make the certificate good, so it fails for good, as over HTTPS.
    let mut certificate = false;
    let mut cause = Some(e);
    while let Some(c) = cause {
        certificate |= super::http::is_certificate_error(c);
        cause = c.source();
    }
    if certificate {
        return Attempt::Invalid(format!(
            "TLS certificate refused (for a private CA set vigil.ssl_ca_file, then replay): {message}"
        ));
    }
    if kind.tls {
        return Attempt::Invalid(format!(
            "TLS with the SMTP server failed (for a private CA set vigil.ssl_ca_file, then replay): {message}"
        ));
    }
    // smtp:// requires STARTTLS and lettre does not send in clear to a
    // server that does not offer it; retrying will not make it offer it.
    if kind.client && message.contains("STARTTLS") {
        return Attempt::Invalid(format!(
            "the SMTP server does not offer STARTTLS, which smtp:// requires (use smtps:// if it speaks TLS from the start; options.tls \"none\" only for a plain relay you trust): {message}"
        ));
    }
    Attempt::Connection(message)
}

/// The first address of the server the destination policy allows.
async fn resolve(
    server: &Server,
    policy: &Policy,
    timeout: Duration,
) -> Result<SocketAddr, String> {
    let lookup = tokio::time::timeout(
        timeout,
        tokio::net::lookup_host((server.host.as_str(), server.port)),
    )
    .await
    .map_err(|_| format!("resolving {} timed out", server.host))?
    .map_err(|e| format!("resolving {}: {e}", server.host))?;
    let mut refused = None;
    for a in lookup {
        match channel::check_resolved(&server.host, a.ip(), policy) {
            Ok(()) => return Ok(a),
            Err(e) => refused = Some(e),
        }
    }
    Err(refused.unwrap_or_else(|| format!("{} has no addresses", server.host)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options() -> EmailOptions {
        EmailOptions {
            from: "pg_vigil <vigil@example.com>".into(),
            to: vec!["oncall@example.com".into()],
            cc: vec![],
            username: None,
            password: None,
            tls: TlsMode::None,
        }
    }

    #[test]
    fn smtp_urls_name_a_server_and_nothing_else() {
        let p = Policy::default();
        assert_eq!(
            parse_smtp_url("smtp://127.0.0.1:2525", &p),
            Ok(Server {
                host: "127.0.0.1".into(),
                port: 2525,
                implicit_tls: false
            })
        );
        assert_eq!(
            parse_smtp_url("smtps://mail.example.com", &p).unwrap().port,
            465
        );
        assert_eq!(
            parse_smtp_url("smtp://mail.example.com/", &p).unwrap().port,
            587
        );
        for (bad, why) in [
            ("http://mail.example.com", "smtp or smtps"),
            ("smtp://u:pw@mail.example.com", "credentials"),
            ("smtp://mail.example.com/x", "only smtp(s)://host[:port]"),
            ("smtp://169.254.169.254:25", "refused"),
            ("smtp://[fe80::1]:25", "refused"),
            ("smtp://metadata.google.internal", "refused"),
        ] {
            let e = parse_smtp_url(bad, &p).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn email_options_are_checked_by_key() {
        assert_eq!(
            check_options(&json!({"from": "a@b.example", "to": ["c@d.example"]})),
            None
        );
        let cases = [
            (json!({"to": ["c@d.example"]}), "missing field `from`"),
            (json!({"from": "a@b.example", "to": []}), "at least one"),
            (
                json!({"from": "nope", "to": ["c@d.example"]}),
                "options.from",
            ),
            (
                json!({"from": "a@b.example", "to": ["c@d.example", "bad"]}),
                "options.to[1]",
            ),
            (
                json!({"from": "a@b.example", "to": ["c@d.example"], "username": "u"}),
                "go together",
            ),
            (
                json!({"from": "a@b.example", "to": ["c@d.example"], "tls": "maybe"}),
                "options of an email channel",
            ),
            (
                json!({"from": "a@b.example", "to": ["c@d.example"], "secret": "s3cr3t"}),
                "unknown field `secret`",
            ),
        ];
        for (o, want) in cases {
            let e = check_options(&o).unwrap_or_else(|| panic!("{o} passed"));
            assert!(e.contains(want), "{o}: {e}");
            assert!(!e.contains("s3cr3t"));
        }
    }

    #[test]
    fn a_message_has_both_parts_and_a_stable_message_id() {
        let body = EmailBody {
            subject: "[FIRING:1] Health dropped\r\nBcc: evil@example.com".into(),
            text: "plain".into(),
            html: "<p>html</p>".into(),
        };
        let m = build_message(&body, &options(), "6f1c").unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Message-ID: <6f1c@pg_vigil>"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(
            raw.contains("text/plain") && raw.contains("text/html"),
            "{raw}"
        );
        assert!(!raw.contains("\r\nBcc:"), "header injection: {raw}");
        assert!(raw.contains("To: oncall@example.com"), "{raw}");
    }

    /// An error as lettre makes one: its kind's words, then its cause.
    #[derive(Debug)]
    struct Lettre(&'static str, Option<std::io::Error>);

    impl std::fmt::Display for Lettre {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)?;
            if let Some(e) = &self.1 {
                write!(f, ": {e}")?;
            }
            Ok(())
        }
    }

    impl std::error::Error for Lettre {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_ref().map(|e| e as _)
        }
    }

    fn kind() -> ErrorKind {
        ErrorKind {
            timeout: false,
            code: None,
            tls: false,
            client: false,
        }
    }

    #[test]
    fn smtp_errors_that_retrying_cannot_fix_fail_for_good() {
        // rustls refusing the certificate, as lettre 0.11 reports it: a
        // connection error whose io::Error wraps rustls' (was retried until
        // the deadline).
        let refused = Lettre(
            "Connection error",
            Some(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            )),
        );
        match classify_error(kind(), &refused) {
            Attempt::Invalid(e) => assert!(
                e.contains("vigil.ssl_ca_file") && e.contains("UnknownIssuer"),
                "{e}"
            ),
            other => panic!("retried: {other:?}"),
        }
        // No STARTTLS offered to smtp://: nothing is sent in clear, and
        // retrying will not make the server offer it.
        let no_starttls = Lettre(
            "internal client error: STARTTLS is not supported on this server",
            None,
        );
        let client = ErrorKind {
            client: true,
            ..kind()
        };
        match classify_error(client, &no_starttls) {
            Attempt::Invalid(e) => assert!(e.contains("does not offer STARTTLS"), "{e}"),
            other => panic!("retried: {other:?}"),
        }
        // A refused login is the server's 535: permanent (retry.rs fails 5xx).
        let login = Lettre(
            "permanent error (535): 5.7.8 Authentication credentials invalid",
            None,
        );
        let replied = ErrorKind {
            code: Some(535),
            ..kind()
        };
        assert!(matches!(
            classify_error(replied, &login),
            Attempt::Smtp { code: 535, .. }
        ));
        // What retrying can fix is retried.
        let down = Lettre(
            "Connection error",
            Some(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        );
        assert!(matches!(
            classify_error(kind(), &down),
            Attempt::Connection(_)
        ));
        let handshake = Lettre(
            "Connection error",
            Some(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::AlertReceived(rustls::AlertDescription::InternalError),
            )),
        );
        assert!(matches!(
            classify_error(kind(), &handshake),
            Attempt::Connection(_)
        ));
        let timeout = ErrorKind {
            timeout: true,
            ..kind()
        };
        assert_eq!(classify_error(timeout, &down), Attempt::Timeout);
    }

    #[test]
    fn ca_bundles_split_into_certificates() {
        assert!(roots_of(b"not pem").is_empty());
    }
}
