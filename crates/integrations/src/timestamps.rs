//! Trackers' and forges' timestamps (RFC 3339) next to orch's own
//! (milliseconds since the epoch).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `2024-05-09T10:01:11.123456Z` (or with an offset) → milliseconds since
/// the epoch; `None` when it is no RFC 3339 time.
pub fn parse_millis(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Milliseconds since the epoch → RFC 3339 in UTC, whole seconds rounded
/// down (GitHub's `since` takes `YYYY-MM-DDTHH:MM:SSZ`).
pub fn format_millis(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        assert_eq!(parse_millis("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            parse_millis("2024-05-09T10:01:11+02:00"),
            Some(1_715_241_671_000)
        );
        assert_eq!(parse_millis("yesterday"), None);
        assert_eq!(format_millis(1_715_241_671_999), "2024-05-09T08:01:11Z");
        assert_eq!(
            parse_millis(&format_millis(1_715_241_671_000)),
            Some(1_715_241_671_000)
        );
    }
}
