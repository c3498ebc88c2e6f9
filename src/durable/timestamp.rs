//! Wall-clock times as the result files write them: RFC 3339 UTC, second resolution.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDateTime};

/// The format every result file writes: `2026-11-26T17:21:45Z`.
const FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// The current time as RFC 3339 UTC, e.g. `2026-11-26T17:21:45Z`.
pub(crate) fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Seconds since the Unix epoch as RFC 3339 UTC.
pub(crate) fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or(DateTime::UNIX_EPOCH)
        .format(FORMAT)
        .to_string()
}

/// Seconds since the Unix epoch of a time written by [`now_utc`] (`YYYY-MM-DDTHH:MM:SSZ`);
/// `None` for anything else.
pub(crate) fn parse_rfc3339(s: &str) -> Option<u64> {
    // the `Z` is a literal of the format: read a civil time, then place it in UTC
    let civil = NaiveDateTime::parse_from_str(s, FORMAT).ok()?;
    u64::try_from(civil.and_utc().timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_formats() {
        for secs in [0, 951_782_400, 1_795_713_705, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
        }
        assert_eq!(parse_rfc3339("2026-11-26 17:21:45Z"), None);
        assert_eq!(parse_rfc3339("2026-13-26T17:21:45Z"), None);
    }

    #[test]
    fn formats_utc_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_713_705), "2026-11-26T17:21:45Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(now_utc().len(), "2026-11-26T17:21:45Z".len());
    }
}
