//! Graph's date-times (ISO 8601, seven fractional digits, `Z`) and when to renew.

use std::time::{Duration, SystemTime};

use super::MINUTE;

/// When to renew a subscription of `lifetime` that expires at `expiration`: a quarter of its
/// lifetime before, but at least 5 minutes and at most 24 hours before.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let expires = UNIX_EPOCH + Duration::from_secs(10_000);
/// let at = msgraph_notify::subscription::renew_at(expires, Duration::from_secs(3600));
/// assert_eq!(expires.duration_since(at).unwrap(), Duration::from_secs(900));
/// ```
pub fn renew_at(expiration: SystemTime, lifetime: Duration) -> SystemTime {
    let margin = (lifetime / 4).clamp(
        Duration::from_secs(5 * MINUTE),
        Duration::from_secs(24 * 60 * MINUTE),
    );
    expiration.checked_sub(margin).unwrap_or(expiration)
}

/// `time` as Graph writes `expirationDateTime`: UTC, seven fractional digits,
/// `2026-11-29T23:00:00.0000000Z`. Times before 1970 are written as 1970-01-01.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_nanos(1_795_993_200_123_456_789);
/// assert_eq!(msgraph_notify::subscription::format_date_time(t), "2026-11-29T23:00:00.1234567Z");
/// ```
pub fn format_date_time(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:07}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos() / 100
    )
}

/// Parses an ISO 8601 date-time with an offset as Graph writes them (`subscriptionExpirationDateTime`):
/// `YYYY-MM-DDTHH:MM:SS`, 0 to 7 fractional digits, then `Z` or `±HH:MM`. `None` for anything
/// else or a time before 1970.
///
/// ```
/// use msgraph_notify::subscription::{format_date_time, parse_date_time};
/// let t = parse_date_time("2021-12-31T16:16:44.9907405+05:30").unwrap();
/// assert_eq!(format_date_time(t), "2021-12-31T10:46:44.9907405Z");
/// assert!(parse_date_time("2021-12-31").is_none());
/// ```
pub fn parse_date_time(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
        })
    };
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && (sep(10, b'T') || sep(10, b't')) && sep(13, b':'))
        || !sep(16, b':')
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u64;
    if sep(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 7 {
            return None;
        }
        nanos = num(start..i)? * 10u64.pow(9 - digits as u32);
    }
    let offset_secs: i64 = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let h = num(i + 1..i + 3)?;
            let m = num(i + 4..i + 6)?;
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i64::try_from(h * 3600 + m * 60).ok()?;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day)?;
    let local = i64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()?;
    let utc = u64::try_from(local.checked_sub(offset_secs)?).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(utc, u32::try_from(nanos).ok()?))
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date from 1970 on.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    if year < 1970 {
        return None;
    }
    let years: u64 = (1970..year)
        .map(|y| if is_leap(y) { 366 } else { 365 })
        .sum();
    let months: u64 = (1..month).map(|m| days_in_month(year, m)).sum();
    Some(years + months + day - 1)
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(mut days: u64) -> (u64, u64, u64) {
    let mut year = 1970;
    loop {
        let len = if is_leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let mut month = 1;
    while days >= days_in_month(year, month) {
        days -= days_in_month(year, month);
        month += 1;
    }
    (year, month, days + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_leap_years_and_offsets() {
        for text in [
            "1970-01-01T00:00:00.0000000Z",
            "2024-02-29T23:59:59.9999999Z",
            "2026-11-29T23:00:00.0000000Z",
            "2100-03-01T00:00:00.0000000Z",
        ] {
            let t = parse_date_time(text).unwrap();
            assert_eq!(format_date_time(t), text);
        }
        assert_eq!(
            format_date_time(parse_date_time("2019-09-18T00:52:45.9696658+00:00").unwrap()),
            "2019-09-18T00:52:45.9696658Z"
        );
        assert_eq!(
            format_date_time(parse_date_time("2016-03-19T22:11:09.952-08:00").unwrap()),
            "2016-03-20T06:11:09.9520000Z"
        );
        for bad in [
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T23:00:00",
            "2026-11-29T23:00:00.Z",
            "2026-11-29T23:00:00.12345678Z",
            "2026-11-29T23:00:00+5:30",
            "1969-12-31T23:59:59Z",
            "NA",
            "",
        ] {
            assert!(parse_date_time(bad).is_none(), "{bad}");
        }
    }
}
