//! Checks on a notification channel's target before it is stored and again
//! before each send: URLs must be plain http(s) with a host and no embedded
//! credentials, parsed by the `url` crate (the parser reqwest uses, so what is
//! checked is what is connected to), and must pass the destination policy;
//! headers must be sendable; and what reaches a log line is redacted (URLs
//! carry secrets).
//!
//! The destination policy refuses hosts that are link-local (169.254.0.0/16,
//! fe80::/10), cloud metadata endpoints (169.254.169.254, fd00:ec2::254,
//! 100.100.100.200, `metadata.google.internal`) or unspecified (0.0.0.0/8,
//! `::`), in any spelling the URL parser normalises (decimal, octal and hex
//! IPv4, IPv4-mapped and NAT64 IPv6). Loopback and private ranges stay
//! allowed. `vigil.allowed_internal_hosts` lists hosts and CIDRs allowed
//! anyway. The worker applies the same check to every address a host name
//! resolves to, at send time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// The channel kinds `vigil.channels.kind` allows.
pub const KINDS: [&str; 7] = [
    "slack",
    "webhook",
    "pg_notify",
    "pagerduty",
    "msteams",
    "alertmanager",
    "email",
];

/// What a channel kind decides for its rows of `vigil.channels` beyond its
/// target, applied by the channels trigger (`vigil._channel_kind_traits`):
/// written here, beside the kind list, so that adding a kind touches this
/// file alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KindTraits {
    /// Whether it sends grouped messages (`group_by`). PagerDuty groups by
    /// dedup_key and Alertmanager by its routes itself, and a pg_notify
    /// listener gets one payload per alert event.
    pub groups: bool,
    /// Whether it hears of every close (`send_resolved` forced): an
    /// incident nobody resolves stays open there.
    pub always_resolved: bool,
    /// The `max_per_second` a new channel gets when none is given: Slack
    /// accepts about one message per second per incoming webhook.
    pub default_max_per_second: Option<f64>,
}

/// The traits of channel kind `kind`, None for a kind that is not one.
pub fn kind_traits(kind: &str) -> Option<KindTraits> {
    let t = |groups, always_resolved, default_max_per_second| KindTraits {
        groups,
        always_resolved,
        default_max_per_second,
    };
    Some(match kind {
        "slack" => t(true, false, Some(1.0)),
        "webhook" | "msteams" | "email" => t(true, false, None),
        "pg_notify" => t(false, false, None),
        "pagerduty" | "alertmanager" => t(false, true, None),
        _ => return None,
    })
}

/// PostgreSQL's identifier limit also bounds a NOTIFY channel name.
const MAX_NOTIFY_CHANNEL: usize = 63;

/// Host names of cloud metadata services, refused by name (they also
/// resolve to refused addresses, but only inside that cloud).
const METADATA_NAMES: [&str; 1] = ["metadata.google.internal"];

/// The setting that allows internal destinations, named in messages.
pub const ALLOW_SETTING: &str = "vigil.allowed_internal_hosts";

/// Destinations allowed despite the policy: `vigil.allowed_internal_hosts`,
/// a comma-separated list of host names, IP addresses and CIDRs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Policy {
    names: Vec<String>,
    nets: Vec<(IpAddr, u8)>,
}

impl Policy {
    /// Parses the setting; entries that are neither a host name, an IP
    /// address nor a CIDR (`addr/len`) are ignored (they allow nothing).
    pub fn parse(list: &str) -> Policy {
        let mut policy = Policy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Some((addr, len)) = entry.split_once('/') {
                if let (Ok(ip), Ok(len)) = (parse_ip(addr), len.trim().parse::<u8>()) {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    if len <= max {
                        policy.nets.push((ip, len));
                    }
                }
            } else if let Ok(ip) = parse_ip(entry) {
                policy.nets.push((ip, if ip.is_ipv4() { 32 } else { 128 }));
            } else {
                policy.names.push(normalise_name(entry));
            }
        }
        policy
    }

    fn allows_name(&self, name: &str) -> bool {
        let name = normalise_name(name);
        self.names.contains(&name)
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        let canonical = canonical(ip);
        self.nets
            .iter()
            .any(|&(net, len)| in_net(ip, net, len) || in_net(canonical, net, len))
    }
}

fn parse_ip(text: &str) -> Result<IpAddr, std::net::AddrParseError> {
    let text = text.trim();
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    text.parse()
}

fn normalise_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) addresses
/// reach the embedded IPv4 address: judge them as that address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Why the policy refuses an address, or None when it does not.
pub fn refused_reason(ip: IpAddr) -> Option<&'static str> {
    const METADATA: &str = "a cloud metadata address";
    match canonical(ip) {
        IpAddr::V4(v4) => {
            if v4 == Ipv4Addr::new(169, 254, 169, 254) || v4 == Ipv4Addr::new(100, 100, 100, 200) {
                Some(METADATA)
            } else if v4.octets()[..2] == [169, 254] {
                Some("a link-local address")
            } else if v4.octets()[0] == 0 {
                Some("an unspecified address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some(METADATA)
            } else if v6.segments()[0] & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else {
                None
            }
        }
    }
}

fn refusal(host: &str, reason: &str) -> String {
    format!(
        "url host {host} is {reason}, refused by the destination policy; list it in {ALLOW_SETTING} to allow it"
    )
}

/// The destination policy for a parsed URL's host.
pub(super) fn check_host(host: &Host<&str>, policy: &Policy) -> Result<(), String> {
    match *host {
        Host::Domain(name) => {
            let name = normalise_name(name);
            if METADATA_NAMES.contains(&name.as_str()) && !policy.allows_name(&name) {
                return Err(refusal(&name, "a cloud metadata host"));
            }
            Ok(())
        }
        Host::Ipv4(v4) => check_ip(&v4.to_string(), IpAddr::V4(v4), policy),
        Host::Ipv6(v6) => check_ip(&format!("[{v6}]"), IpAddr::V6(v6), policy),
    }
}

fn check_ip(shown: &str, ip: IpAddr, policy: &Policy) -> Result<(), String> {
    match refused_reason(ip) {
        Some(reason) if !policy.allows_ip(ip) => Err(refusal(shown, reason)),
        _ => Ok(()),
    }
}

/// The policy for an address a host name resolved to, at send time: a name
/// listed in the allow-list may resolve anywhere.
pub fn check_resolved(name: &str, ip: IpAddr, policy: &Policy) -> Result<(), String> {
    if policy.allows_name(name) {
        return Ok(());
    }
    match refused_reason(ip) {
        Some(reason) if !policy.allows_ip(ip) => Err(format!(
            "url host {} resolves to {ip}, {reason}, refused by the destination policy; list it in {ALLOW_SETTING} to allow it",
            normalise_name(name)
        )),
        _ => Ok(()),
    }
}

/// Validates `url` for a channel of `kind` under `policy`; the error names
/// what is wrong and never repeats the URL's path, query or credentials.
pub fn validate_target(kind: &str, url: &str, policy: &Policy) -> Result<(), String> {
    match kind {
        "slack" | "webhook" | "pagerduty" | "msteams" => parse_http_url(url, policy).map(|_| ()),
        "email" => super::mail::parse_smtp_url(url, policy).map(|_| ()),
        // What is checked is what is posted to: the API endpoint itself.
        "alertmanager" => {
            let u = parse_http_url(url, policy)?;
            if u.path().ends_with("/api/v2/alerts") {
                Ok(())
            } else {
                Err("url of an alertmanager channel must be its API v2 alerts endpoint, http(s)://<host>:<port>/api/v2/alerts".into())
            }
        }
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

/// Parses an http(s) URL exactly as reqwest will, and checks it.
pub fn parse_http_url(url: &str, policy: &Policy) -> Result<Url, String> {
    // The URL parser silently drops tabs and newlines and trims spaces, so
    // refuse them rather than store a string that differs from what is sent.
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("url must not contain spaces or control characters".into());
    }
    let parsed = Url::parse(url).map_err(|e| match e {
        url::ParseError::EmptyHost => "url must name a host".to_string(),
        url::ParseError::InvalidPort => "url port must be 1-65535".to_string(),
        url::ParseError::RelativeUrlWithoutBase => {
            "url must start with http:// or https://".to_string()
        }
        url::ParseError::IdnaError
        | url::ParseError::InvalidIpv4Address
        | url::ParseError::InvalidIpv6Address
        | url::ParseError::InvalidDomainCharacter => {
            "url host is not a valid host name or IP address".to_string()
        }
        _ => "url is not a valid http(s) URL".to_string(),
    })?;
    let scheme = parsed.scheme();
    if scheme != "http" && scheme != "https" {
        // The parser guarantees scheme syntax; a long one may be a secret.
        return Err(if scheme.len() <= 16 {
            format!("url scheme must be http or https, got \"{scheme}\"")
        } else {
            "url must start with http:// or https://".to_string()
        });
    }
    // `http:host`, `http:\\host` and `https:///host` all parse (to a host the
    // text does not plainly show): require the plain `scheme://host` form.
    let rest = &url[scheme.len() + 1..];
    match rest.strip_prefix("//") {
        None => return Err("url must start with http:// or https://".into()),
        Some(r) if r.starts_with(['/', '\\']) || r.is_empty() => {
            return Err("url must name a host".into())
        }
        Some(_) => {}
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("url must not embed credentials (user:password@); put them in headers".into());
    }
    let Some(host) = parsed.host() else {
        return Err("url must name a host".into());
    };
    if parsed.port() == Some(0) {
        return Err("url port must be 1-65535, got \"0\"".into());
    }
    check_host(&host, policy)?;
    Ok(parsed)
}

/// Scheme and host only: what may appear in a log line or an error message.
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => match u.host_str() {
            Some(host) if !host.is_empty() => format!("{}://{host}/…", u.scheme()),
            _ => "(invalid url)".to_string(),
        },
        Err(_) => "(invalid url)".to_string(),
    }
}

/// Header names are HTTP tokens, values without control characters but tab:
/// checked by the `http` crate's `HeaderName`/`HeaderValue` (through
/// reqwest), the types the worker sends with, so what is accepted here is
/// what is sent.
pub fn validate_header(name: &str, value: &str) -> Result<(), String> {
    use reqwest::header::{HeaderName, HeaderValue};
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("headers: \"{name}\" is not a valid header name"));
    }
    if HeaderValue::from_str(value).is_err() {
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

    fn validate(kind: &str, url: &str) -> Result<(), String> {
        validate_target(kind, url, &Policy::default())
    }

    #[test]
    fn every_kind_has_traits_and_only_kinds_do() {
        for kind in KINDS {
            assert!(kind_traits(kind).is_some(), "{kind}");
        }
        assert_eq!(kind_traits("sms"), None);
        let slack = kind_traits("slack").unwrap();
        assert!(slack.groups && !slack.always_resolved);
        assert_eq!(slack.default_max_per_second, Some(1.0));
        for kind in ["pagerduty", "alertmanager"] {
            let t = kind_traits(kind).unwrap();
            assert!(!t.groups && t.always_resolved, "{kind}");
        }
        assert!(!kind_traits("pg_notify").unwrap().groups);
        assert_eq!(
            KINDS
                .iter()
                .filter(|k| kind_traits(k).unwrap().groups)
                .count(),
            4,
            "slack, webhook, msteams and email group"
        );
    }

    #[test]
    fn http_and_https_urls_with_hosts_are_accepted() {
        for url in [
            "https://hooks.slack.com/services/T000/B000/XXXX",
            "http://127.0.0.1:8080/hook",
            "http://[::1]:9000/x?y=1",
            "HTTPS://example.com",
        ] {
            assert_eq!(validate("webhook", url), Ok(()), "{url}");
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
            ("http://[::1/x", "not a valid host name or IP address"),
            ("http:example.com/x", "must start with http"),
            ("https:\\\\example.com/x", "must start with http"),
            (
                "javascript-with-a-long-scheme:secret",
                "must start with http",
            ),
            (
                "hooks.example.com/T/B/SECRET?u=https://x",
                "must start with http",
            ),
        ];
        for (url, want) in cases {
            let err = validate("slack", url).unwrap_err();
            assert!(err.contains(want), "{url}: {err}");
            assert!(
                !err.contains("SECRET") && !err.contains("secret"),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn pg_notify_targets_are_channel_names() {
        assert_eq!(validate("pg_notify", "vigil_out"), Ok(()));
        assert!(validate("pg_notify", " ").is_err());
        assert!(validate("pg_notify", &"x".repeat(64))
            .unwrap_err()
            .contains("at most 63"));
    }

    #[test]
    fn an_alertmanager_channel_names_its_api_endpoint() {
        let p = Policy::default();
        assert_eq!(
            validate_target("alertmanager", "http://127.0.0.1:9093/api/v2/alerts", &p),
            Ok(())
        );
        assert_eq!(
            validate_target(
                "alertmanager",
                "https://am.example.com/prefix/api/v2/alerts",
                &p
            ),
            Ok(())
        );
        for bad in [
            "http://127.0.0.1:9093/",
            "http://127.0.0.1:9093/api/v1/alerts",
            "http://127.0.0.1:9093/api/v2/alerts/",
        ] {
            let err = validate_target("alertmanager", bad, &p).unwrap_err();
            assert!(err.contains("/api/v2/alerts"), "{err}");
        }
        assert!(
            validate_target("alertmanager", "http://169.254.169.254/api/v2/alerts", &p).is_err()
        );
    }

    #[test]
    fn unknown_kinds_list_the_allowed_ones() {
        let err = validate("sms", "x").unwrap_err();
        assert_eq!(
            err,
            "kind must be one of slack, webhook, pg_notify, pagerduty, msteams, alertmanager, email, got \"sms\""
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
        assert_eq!(redact("http://[::1]:9/x"), "http://[::1]/…");
        // The host the sender would connect to, not the text after the '@'.
        assert_eq!(
            redact("http://a.example\\@169.254.169.254/SECRET"),
            "http://a.example/…"
        );
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
        assert!(validate_header("X-É", "v").is_err());
    }

    #[test]
    fn every_header_accepted_is_one_reqwest_sends() {
        let names = [
            "X-A",
            "authorization",
            "X_Weird.Name~1",
            "Bad Name",
            "X:A",
            "",
            "X-É",
        ];
        let values = [
            "v", "a\tb", " padded ", "café", "v\r\n", "\u{7f}", "", "quote\"s",
        ];
        for name in names {
            for value in values {
                let ours = validate_header(name, value).is_ok();
                let request = reqwest::Client::new()
                    .post("http://127.0.0.1:9/")
                    .header(name, value)
                    .build();
                assert_eq!(ours, request.is_ok(), "{name:?}: {value:?}");
            }
        }
    }

    fn refused(url: &str) -> String {
        validate("webhook", url).expect_err(url)
    }

    #[test]
    fn link_local_metadata_and_unspecified_hosts_are_refused_in_every_spelling() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.1.1/",
            "http://2852039166/",          // decimal 169.254.169.254
            "http://0xa9.0xfe.0xa9.0xfe/", // hex
            "http://0251.0376.0251.0376/", // octal
            "http://0xA9FEA9FE/",          // one hex number
            "http://169.254.43518/",       // a.b.c16
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[fe80::1]/",
            "http://[FEBF::1]:8080/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./",
            "http://0.0.0.0:8080/",
            "http://0/",
            "http://[::]/",
            "http://[::ffff:0.0.0.0]/",
        ] {
            let err = refused(url);
            assert!(
                err.contains("refused by the destination policy"),
                "{url}: {err}"
            );
            assert!(err.contains(ALLOW_SETTING), "{url}: {err}");
            assert!(err.starts_with("url host "), "{url}: {err}");
            assert!(
                !err.contains("meta-data") && !err.contains("computeMetadata"),
                "{err}"
            );
        }
    }

    #[test]
    fn zone_ids_and_malformed_ip_hosts_are_refused_as_invalid_hosts() {
        for url in [
            "http://[fe80::1%25eth0]/",
            "http://[fe80::1%eth0]/",
            "http://[::1/",
        ] {
            assert!(
                refused(url).contains("not a valid host name or IP address"),
                "{url}"
            );
        }
    }

    #[test]
    fn refusals_name_the_host_the_parser_normalised() {
        assert!(refused("http://2852039166/x").contains("169.254.169.254 is a cloud metadata"));
        assert!(refused("http://[fe80::1]/").contains("[fe80::1] is a link-local"));
        assert!(refused("http://0.0.0.0/").contains("unspecified"));
    }

    #[test]
    fn loopback_private_and_public_hosts_stay_allowed() {
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://127.1.2.3/",
            "http://[::1]:9000/",
            "http://10.0.0.5/",
            "http://192.168.1.1/",
            "http://172.16.0.1/",
            "http://100.64.0.1/",
            "http://169.253.255.255/",
            "http://169.255.0.1/",
            "http://[fec0::1]/",
            "http://[fd00:ec2::253]/",
            "https://metadata.google.internal.example.com/",
            "https://hooks.slack.com/services/T/B/X",
        ] {
            assert_eq!(validate("webhook", url), Ok(()), "{url}");
        }
    }

    #[test]
    fn a_backslash_url_is_judged_by_the_host_the_parser_connects_to() {
        // The parser (like reqwest) reads '\' as '/': the host ends there.
        let err = refused("http://169.254.169.254\\x.example.com/");
        assert!(err.contains("169.254.169.254"), "{err}");
        // Here the host is 127.0.0.1 and "@169.254.169.254" is path.
        assert_eq!(
            validate("webhook", "http://127.0.0.1\\@169.254.169.254/"),
            Ok(())
        );
        let parsed = parse_http_url("http://127.0.0.1\\@169.254.169.254/", &Policy::default());
        assert_eq!(parsed.unwrap().host_str(), Some("127.0.0.1"));
    }

    #[test]
    fn the_allow_list_admits_listed_hosts_and_cidrs_only() {
        let policy = Policy::parse(
            " 169.254.10.0/24 , metadata.google.internal, fe80::1,bogus/99,, [fd00:ec2::254]",
        );
        let ok = |url: &str| validate_target("webhook", url, &policy);
        assert_eq!(ok("http://169.254.10.7/"), Ok(()));
        assert_eq!(ok("http://[::ffff:169.254.10.7]/"), Ok(()));
        assert!(ok("http://169.254.11.7/").is_err());
        assert!(ok("http://169.254.169.254/").is_err());
        assert_eq!(ok("http://metadata.google.internal/"), Ok(()));
        assert_eq!(ok("http://[fe80::1]/"), Ok(()));
        assert!(ok("http://[fe80::2]/").is_err());
        assert_eq!(ok("http://[fd00:ec2::254]/"), Ok(()));
        assert_eq!(Policy::parse(""), Policy::default());
        assert_eq!(Policy::parse("0.0.0.0/0").nets.len(), 1);
        assert_eq!(
            validate_target(
                "webhook",
                "http://169.254.169.254/",
                &Policy::parse("0.0.0.0/0")
            ),
            Ok(())
        );
    }

    #[test]
    fn resolved_addresses_get_the_same_policy() {
        let none = Policy::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(check_resolved("evil.example", ip("169.254.169.254"), &none)
            .unwrap_err()
            .contains("evil.example resolves to 169.254.169.254, a cloud metadata address"));
        assert!(check_resolved("evil.example", ip("::ffff:169.254.1.1"), &none).is_err());
        assert!(check_resolved("evil.example", ip("fe80::5"), &none).is_err());
        assert_eq!(check_resolved("ok.example", ip("127.0.0.1"), &none), Ok(()));
        assert_eq!(check_resolved("ok.example", ip("10.1.2.3"), &none), Ok(()));
        let named = Policy::parse("Internal.Example.");
        assert_eq!(
            check_resolved("internal.example", ip("169.254.0.9"), &named),
            Ok(())
        );
        let cidr = Policy::parse("169.254.0.0/16");
        assert_eq!(
            check_resolved("x.example", ip("169.254.0.9"), &cidr),
            Ok(())
        );
    }
}
#[cfg(test)]
mod review_url_tests {
    use super::*;

    /// The 0.1.0 review's URLs (issue 16): what create_channel accepts is
    /// what the sender can use, both ways.
    #[test]
    fn validation_agrees_with_the_sender_on_the_reviews_urls() {
        for url in [
            "http://256.256.256.256/",
            "http://1.2.3.4.5/",
            "http://exa%zzmple.com/",
            "http://exa^mple.com/",
            "http://[fe80::1%25eth0]/",
        ] {
            assert!(parse_http_url(url, &Policy::default()).is_err(), "{url}");
            assert!(url::Url::parse(url).is_err(), "reqwest's parser too: {url}");
        }
        let ok = parse_http_url("http://example.com:/hook", &Policy::default()).unwrap();
        assert_eq!(ok.as_str(), "http://example.com/hook");
        assert!(reqwest::Client::new().get(ok).build().is_ok());
    }
}
