//! Checks on a notification channel's target before it is stored: URLs must
//! be plain http(s) with a host and no embedded credentials, headers must be
//! sendable, and what reaches a log line is redacted (URLs carry secrets).

/// The channel kinds `vigil.channels.kind` allows.
pub const KINDS: [&str; 3] = ["slack", "webhook", "pg_notify"];

/// PostgreSQL's identifier limit also bounds a NOTIFY channel name.
const MAX_NOTIFY_CHANNEL: usize = 63;

/// Validates `url` for a channel of `kind`; the error names what is wrong.
pub fn validate_target(kind: &str, url: &str) -> Result<(), String> {
    match kind {
        "slack" | "webhook" => validate_http_url(url),
        "pg_notify" => {
            if url.trim().is_empty() {
                Err("url must name the NOTIFY channel for kind pg_notify".into())
            } else if url.len() > MAX_NOTIFY_CHANNEL {
                Err(format!(
                    "url (the NOTIFY channel) must be at most {MAX_NOTIFY_CHANNEL} bytes, got {}",
                    url.len()
                ))
            } else {
                Ok(())
            }
        }
        other => Err(format!(
            "kind must be one of {}, got \"{other}\"",
            KINDS.join(", ")
        )),
    }
}

struct Parts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host: &'a str,
    port: Option<&'a str>,
}

fn split_url(url: &str) -> Result<Parts<'_>, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "url must start with http:// or https://".to_string())?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (inner, after) = v6
            .split_once(']')
            .ok_or_else(|| "url has an unterminated IPv6 host".to_string())?;
        (inner, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    Ok(Parts {
        scheme,
        userinfo,
        host,
        port,
    })
}

fn validate_http_url(url: &str) -> Result<(), String> {
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("url must not contain spaces or control characters".into());
    }
    let p = split_url(url)?;
    if !p.scheme.eq_ignore_ascii_case("http") && !p.scheme.eq_ignore_ascii_case("https") {
        // Only echo what really is a scheme: anything else may be a secret path.
        let is_scheme = p.scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && p.scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        return Err(if is_scheme {
            format!("url scheme must be http or https, got \"{}\"", p.scheme)
        } else {
            "url must start with http:// or https://".to_string()
        });
    }
    if p.userinfo.is_some() {
        return Err("url must not embed credentials (user:password@); put them in headers".into());
    }
    if p.host.is_empty() {
        return Err("url must name a host".into());
    }
    if let Some(port) = p.port {
        match port.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => {}
            _ => return Err(format!("url port must be 1-65535, got \"{port}\"")),
        }
    }
    Ok(())
}

/// Scheme and host only: what may appear in a log line or an error message.
pub fn redact(url: &str) -> String {
    match split_url(url) {
        Ok(p) if !p.host.is_empty() => format!("{}://{}/…", p.scheme, p.host),
        _ => "(invalid url)".to_string(),
    }
}

/// Header names are HTTP tokens; values must not break the header block.
pub fn validate_header(name: &str, value: &str) -> Result<(), String> {
    const SEPARATORS: &str = "()<>@,;:\\\"/[]?={} \t";
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_graphic() && !SEPARATORS.contains(c))
    {
        return Err(format!("headers: \"{name}\" is not a valid header name"));
    }
    // What HTTP allows in a field value: no control characters but tab.
    if value.chars().any(|c| c.is_ascii_control() && c != '\t') {
        return Err(format!(
            "headers: the value of \"{name}\" must not contain control characters (CR, LF, NUL ...)"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if [
        "content-length",
        "host",
        "idempotency-key",
        "transfer-encoding",
    ]
    .contains(&lower.as_str())
    {
        return Err(format!("headers: \"{name}\" is set by pg_vigil itself"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_urls_with_hosts_are_accepted() {
        for url in [
            "https://hooks.slack.com/services/T000/B000/XXXX",
            "http://127.0.0.1:8080/hook",
            "http://[::1]:9000/x?y=1",
            "HTTPS://example.com",
        ] {
            assert_eq!(validate_target("webhook", url), Ok(()), "{url}");
        }
    }

    #[test]
    fn other_schemes_missing_hosts_credentials_and_bad_ports_are_rejected() {
        let cases = [
            ("ftp://example.com/x", "scheme must be http or https"),
            ("file:///etc/passwd", "scheme must be http or https"),
            ("example.com/hook", "must start with http"),
            ("https:///path", "must name a host"),
            (
                "https://user:secret@example.com/",
                "must not embed credentials",
            ),
            ("https://example.com:0/", "port must be 1-65535"),
            ("https://example.com:99999/", "port must be 1-65535"),
            ("https://example.com:abc/", "port must be 1-65535"),
            ("https://exa mple.com/", "spaces or control characters"),
            (
                "https://example.com/\nX-Injected: 1",
                "spaces or control characters",
            ),
            ("http://[::1/x", "unterminated IPv6"),
            (
                "hooks.example.com/T/B/SECRET?u=https://x",
                "must start with http",
            ),
        ];
        for (url, want) in cases {
            let err = validate_target("slack", url).unwrap_err();
            assert!(err.contains(want), "{url}: {err}");
            assert!(
                !err.contains("SECRET") && !err.contains("secret"),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn pg_notify_targets_are_channel_names() {
        assert_eq!(validate_target("pg_notify", "vigil_out"), Ok(()));
        assert!(validate_target("pg_notify", " ").is_err());
        assert!(validate_target("pg_notify", &"x".repeat(64))
            .unwrap_err()
            .contains("at most 63"));
    }

    #[test]
    fn unknown_kinds_list_the_allowed_ones() {
        let err = validate_target("email", "x").unwrap_err();
        assert_eq!(
            err,
            "kind must be one of slack, webhook, pg_notify, got \"email\""
        );
    }

    #[test]
    fn redaction_keeps_only_scheme_and_host() {
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact("http://127.0.0.1:8080/x?token=s"),
            "http://127.0.0.1/…"
        );
        assert_eq!(redact("nonsense"), "(invalid url)");
        assert_eq!(redact("https://u:p@h/x"), "https://h/…");
    }

    #[test]
    fn headers_must_be_tokens_without_line_breaks_and_not_ours() {
        assert_eq!(validate_header("Authorization", "Bearer abc"), Ok(()));
        assert_eq!(validate_header("X-Api-Key", "k"), Ok(()));
        assert!(validate_header("Bad Name", "v").is_err());
        assert!(validate_header("", "v").is_err());
        assert!(validate_header("X-A", "v\r\nX-B: injected").is_err());
        assert!(validate_header("X-A", "v\u{1}").is_err());
        assert!(validate_header("X-A", "v\u{7f}").is_err());
        assert_eq!(validate_header("X-A", "a\tb"), Ok(()));
        assert!(validate_header("Idempotency-Key", "v")
            .unwrap_err()
            .contains("set by pg_vigil"));
        assert!(validate_header("content-length", "1").is_err());
    }
}
