//! Hour-of-week buckets for seasonal baselines: compare the current hour with
//! the same hour of the same weekday in past weeks.

const USECS_PER_HOUR: i64 = 3_600_000_000;
const HOURS_PER_WEEK: i64 = 168;
/// 2000-01-01, PostgreSQL's epoch, was a Saturday: hour 0 of that day is
/// hour 5 × 24 of a Monday-based week.
const EPOCH_HOUR_OF_WEEK: i64 = 5 * 24;

/// 0..=167 for a local wall-clock timestamp (µs since 2000-01-01 00:00 local),
/// with Monday 00:00–00:59 = 0 and Sunday 23:00–23:59 = 167.
pub fn hour_of_week(local_micros: i64) -> i32 {
    let hours = local_micros.div_euclid(USECS_PER_HOUR);
    (hours + EPOCH_HOUR_OF_WEEK).rem_euclid(HOURS_PER_WEEK) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = USECS_PER_HOUR;

    #[test]
    fn epoch_saturday_and_monday_midnight() {
        assert_eq!(hour_of_week(0), 120); // Sat 2000-01-01 00:00
        assert_eq!(hour_of_week(48 * H), 0); // Mon 2000-01-03 00:00
        assert_eq!(hour_of_week(48 * H - 1), 167); // Sun 23:59:59.999999
        assert_eq!(hour_of_week(48 * H + 13 * H + 59 * 60_000_000), 13);
    }

    #[test]
    fn before_the_epoch_wraps_correctly() {
        assert_eq!(hour_of_week(-1), 119); // Fri 1999-12-31 23:59
        assert_eq!(hour_of_week(-5 * 24 * H), 0); // Mon 1999-12-27 00:00
    }

    #[test]
    fn every_hour_of_a_week_appears_once() {
        let mut seen = [false; 168];
        for h in 0..168 {
            seen[hour_of_week((48 + h) * H) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
