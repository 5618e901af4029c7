//! Running one load test from several processes or pods: each shard takes its share of the
//! connections and of the rate (`--shard I/N`), and all of them start at one wall-clock instant
//! (`--start-at`), so that their interval logs line up second by second for `wsprobe merge`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Shard `index` of `count`, 1-based like the shard flags of jest, Playwright and nextest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let usage = || format!("{text:?}: use I/N with 1 <= I <= N, e.g. 1/4 for the first of four shards");
        let (index, count) = text.split_once('/').ok_or_else(usage)?;
        let index: usize = index.trim().parse().map_err(|_| usage())?;
        let count: usize = count.trim().parse().map_err(|_| usage())?;
        if index == 0 || index > count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// This shard's connections out of `total`: an even split, the first shards taking one
    /// more when it does not divide, so the shards add up to exactly `total`.
    pub fn connections(self, total: usize) -> Result<usize, String> {
        if total < self.count {
            return Err(format!(
                "--connections {total} cannot be split into {} shards: each shard needs at least one connection",
                self.count
            ));
        }
        Ok(total / self.count + usize::from(self.index <= total % self.count))
    }

    /// This shard's part of a total `rate`: in proportion to its connections, so every
    /// connection of every shard is paced alike.
    pub fn rate(self, rate: f64, total_connections: usize) -> Result<f64, String> {
        Ok(rate * self.connections(total_connections)? as f64 / total_connections as f64)
    }
}

/// The longest `--start-at` may lie ahead: the run is bounded in time, waiting included.
pub const MAX_START_DELAY: Duration = Duration::from_secs(3600);

/// Parses an RFC 3339 timestamp (`2026-11-26T18:00:00Z`, `…T18:00:00.250+01:00`).
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let usage = || format!("{text:?}: use an RFC 3339 time like 2026-11-26T18:00:00Z or 2026-11-26T19:00:00+01:00");
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't' | b' ') {
        return Err(usage());
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return Err(usage());
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = text.get(range).ok_or_else(usage)?;
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(usage());
        }
        part.parse().map_err(|_| usage())
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(usage());
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(usage());
        }
        let kept = &fraction[..digits.min(9)];
        nanos = kept.parse::<u32>().map_err(|_| usage())? * 10u32.pow(9 - kept.len() as u32);
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(rest.as_bytes()[0], b'+' | b'-') && rest.as_bytes()[3] == b':' => {
            let hours = number_in(rest, 1..3).ok_or_else(usage)?;
            let minutes = number_in(rest, 4..6).ok_or_else(usage)?;
            if hours > 23 || minutes > 59 {
                return Err(usage());
            }
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return Err(usage()),
    };
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_seconds;
    let seconds = u64::try_from(seconds).map_err(|_| format!("{text:?} is before 1970"))?;
    Ok(UNIX_EPOCH + Duration::new(seconds, nanos))
}

fn number_in(text: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = text.get(range)?;
    part.bytes().all(|b| b.is_ascii_digit()).then(|| part.parse().ok()).flatten()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// How long to wait for `start`, checked against `now`: a start already past (by more than a
/// second) or too far ahead is an error, since shards would then not start together.
pub fn wait_for(start: SystemTime, now: SystemTime) -> Result<Duration, String> {
    match start.duration_since(now) {
        Ok(wait) if wait > MAX_START_DELAY => {
            Err(format!("--start-at is {} s ahead; it may be at most 1 h ahead", wait.as_secs()))
        }
        Ok(wait) => Ok(wait),
        Err(past) if past.duration() <= Duration::from_secs(1) => Ok(Duration::ZERO),
        Err(past) => Err(format!(
            "--start-at was {:.1} s ago: the shards would not start together; give a time a little ahead of the slowest shard's start-up",
            past.duration().as_secs_f64()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_whole() {
        for total in [3, 10, 11, 1000, 1001] {
            for count in 1..=3 {
                let shards: Vec<Shard> = (1..=count).map(|index| Shard { index, count }).collect();
                let connections: usize = shards.iter().map(|s| s.connections(total).unwrap()).sum();
                assert_eq!(connections, total);
                let rate: f64 = shards.iter().map(|s| s.rate(300.0, total).unwrap()).sum();
                assert!((rate - 300.0).abs() < 1e-9, "{rate}");
            }
        }
        assert_eq!(Shard { index: 1, count: 3 }.connections(10), Ok(4));
        assert_eq!(Shard { index: 3, count: 3 }.connections(10), Ok(3));
        assert!(Shard { index: 1, count: 4 }.connections(3).unwrap_err().contains("at least one connection"));
    }

    #[test]
    fn shard_flags_are_one_based() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "1", "a/b", "1/0", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc3339_times_parse_to_the_instant_they_name() {
        let at = |s: &str| parse_rfc3339(s).unwrap().duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(at("1970-01-01T00:00:00Z"), Duration::ZERO);
        assert_eq!(at("2026-11-26T18:00:00Z").as_secs(), 1_795_716_000);
        assert_eq!(at("2026-11-26T19:00:00+01:00").as_secs(), 1_795_716_000);
        assert_eq!(at("2026-11-26T17:30:00-00:30").as_secs(), 1_795_716_000);
        assert_eq!(at("2024-02-29T00:00:00.25Z"), Duration::new(1_709_164_800, 250_000_000));
        for bad in [
            "2026-11-26",
            "2026-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-11-26T18:00:00",
            "2026-11-26T18:00:00+1:00",
            "tomorrow",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_start_in_the_past_or_too_far_ahead_is_refused() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(wait_for(now + Duration::from_secs(5), now), Ok(Duration::from_secs(5)));
        assert_eq!(wait_for(now - Duration::from_millis(500), now), Ok(Duration::ZERO));
        assert!(wait_for(now - Duration::from_secs(3), now).unwrap_err().contains("ago"));
        assert!(wait_for(now + Duration::from_secs(7200), now).unwrap_err().contains("at most 1 h"));
    }
}
