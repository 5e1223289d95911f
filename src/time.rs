//! Timestamps as PostgreSQL and RFC 3339 write them: parsed to exact Unix
//! seconds with the fraction as written (chrono checks dates and times), and
//! printed as UTC RFC 3339 for receivers.

/// A point in time as whole Unix seconds plus the fraction digits as written,
/// so normalising neither invents nor drops precision.
pub struct Instant {
    pub unix: i64,
    pub fraction: String,
}

/// Parses `YYYY-MM-DD[T ]HH:MM:SS[.fraction]` followed by `Z` or an offset
/// `±HH[:MM[:SS]]`: RFC 3339 and PostgreSQL's timestamptz text alike. Without
/// an offset the instant is unknown, so that is rejected too.
pub fn parse_timestamp(raw: &str) -> Option<Instant> {
    let s = raw.trim();
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let d = b.get(from..from + len)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0, |n, &c| n * 10 + i64::from(c - b'0')))
    };
    let separators = b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && b.get(13) == Some(&b':')
        && b.get(16) == Some(&b':');
    if !separators {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    // chrono checks the date (month lengths, leap years) and the time.
    let date = chrono::NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32)?;
    let time = chrono::NaiveTime::from_hms_opt(hour as u32, minute as u32, second as u32)?;
    let mut rest = &s[19..];
    let mut fraction = "";
    if let Some(after_dot) = rest.strip_prefix('.') {
        let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        (fraction, rest) = after_dot.split_at(len);
    }
    let offset = parse_offset(rest)?;
    let unix = date.and_time(time).and_utc().timestamp() - offset;
    // RFC 3339 readers such as Go's stop at nanoseconds.
    let fraction = fraction.chars().take(9).collect();
    Some(Instant { unix, fraction })
}

/// Seconds east of UTC; PostgreSQL prints the shortest exact form.
fn parse_offset(s: &str) -> Option<i64> {
    if s.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let parts: Vec<&str> = s[1..].split(':').collect();
    if parts.len() > 3 {
        return None;
    }
    let mut seconds = 0;
    for (part, (unit, max)) in parts.into_iter().zip([(3_600, 23), (60, 59), (1, 59)]) {
        if part.len() != 2 || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n: i64 = part.parse().ok()?;
        if n > max {
            return None;
        }
        seconds += n * unit;
    }
    Some(sign * seconds)
}

/// UTC RFC 3339, which every Alertmanager receiver parses; text that is not
/// a timestamp passes through so nothing is silently lost.
pub fn rfc3339(raw: &str) -> String {
    let Some(instant) = parse_timestamp(raw) else {
        return raw.to_owned();
    };
    let Some(at) = chrono::DateTime::from_timestamp(instant.unix, 0) else {
        return raw.to_owned();
    };
    let fraction = if instant.fraction.is_empty() {
        String::new()
    } else {
        format!(".{}", instant.fraction)
    };
    // The fraction as written (chrono would pad it to 3, 6 or 9 digits).
    format!("{}{fraction}Z", at.format("%Y-%m-%dT%H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(text: &str) -> Option<i64> {
        parse_timestamp(text).map(|t| t.unix)
    }

    #[test]
    fn timestamps_parse_to_exact_unix_seconds() {
        let ten_utc = Some(1_795_428_000);
        assert_eq!(unix("2026-11-23T10:00:00.123+00:00"), ten_utc);
        assert_eq!(unix("2026-11-23 10:00:00+00"), ten_utc);
        assert_eq!(unix("2026-11-23T15:30:00+05:30"), ten_utc);
        assert_eq!(unix("2026-11-23 06:00:00.999999-04"), ten_utc);
        assert_eq!(unix("2026-11-23T10:00:00Z"), ten_utc);
        assert_eq!(unix("2026-11-23t10:00:00z"), ten_utc);
        assert_eq!(unix("2026-11-23 10:53:28+00:53:28"), ten_utc);
        assert_eq!(unix(" 2000-01-01T00:00:00Z "), Some(946_684_800));
        assert_eq!(unix("2024-02-29 23:59:59+00"), Some(1_709_251_199));
        assert_eq!(unix("1970-01-01T05:29:59+05:30"), Some(-1));
    }

    #[test]
    fn malformed_timestamps_are_rejected() {
        let bad = [
            "",
            "infinity",
            "2026-11-23T10:00:00",
            "2026-11-23T10:00:00.+00",
            "2026-11-23T10:00:00+5:30",
            "2026-11-23T10:00:00+0530",
            "2026-11-23T10:00:00+05:30:00:00",
            "2026-11-23T10:00:00+24",
            "2026-11-23T10:00:00+05:60",
            "2026-02-29T10:00:00Z",
            "2026-13-01T10:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T10:00:60Z",
            "2026-11-23X10:00:00Z",
            "2026-11-23T1a:00:00Z",
            "2026-11-23T10:00:00Z junk",
            "2026-11-23T10:00:00+é",
            "２026-11-23T10:00:00Z",
            "2026-11-23T10:00:00é",
        ];
        for text in bad {
            assert_eq!(unix(text), None, "{text:?}");
        }
    }
}
