//! How ipta's values are stored in MySQL, and read back: times as DATETIME(6) (UTC wall time,
//! microseconds) and addresses as `INET6_ATON` bytes (4 for IPv4, 16 for IPv6). Every module
//! that sends a time as a parameter or reads one from a row converts here, so there is one
//! conversion each way; the calendar arithmetic is integer-only and allocates nothing (the
//! batch writer converts every row's time).

use std::net::IpAddr;

use mysql::Value;

use crate::record::Timestamp;

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CivilTime {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micro: u32,
}

impl CivilTime {
    /// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
    pub fn from_micros(us: i64) -> CivilTime {
        let secs = us.div_euclid(1_000_000);
        let micro = us.rem_euclid(1_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        CivilTime {
            year,
            month,
            day,
            hour: (sod / 3600) as u8,
            minute: (sod % 3600 / 60) as u8,
            second: (sod % 60) as u8,
            micro,
        }
    }

    /// Inverse of `from_micros`.
    pub fn to_micros(&self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(self.month);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        secs * 1_000_000 + i64::from(self.micro)
    }

    /// DATETIME holds years 1000 to 9999.
    pub fn in_sql_range(&self) -> bool {
        (1000..=9999).contains(&self.year)
    }
}

/// The record's time as a DATETIME, or None when it is outside what DATETIME can hold.
pub fn sql_time(ts: Timestamp) -> Option<CivilTime> {
    let c = CivilTime::from_micros(ts.micros());
    c.in_sql_range().then_some(c)
}

/// A time as a DATETIME(6) parameter. Years outside 0 to 9999 are clamped (DATETIME cannot
/// hold them; writers check [`sql_time`] first and never send such a row).
pub fn ts_value(t: Timestamp) -> Value {
    datetime_value(CivilTime::from_micros(t.micros()))
}

/// A broken-down time as a DATETIME(6) parameter.
pub fn datetime_value(c: CivilTime) -> Value {
    Value::Date(c.year.clamp(0, 9999) as u16, c.month, c.day, c.hour, c.minute, c.second, c.micro)
}

/// A text or binary column read back (both protocols give bytes); None for NULL.
pub fn value_bytes(v: Option<&Value>) -> Option<&[u8]> {
    match v {
        Some(Value::Bytes(b)) => Some(b),
        _ => None,
    }
}

/// An integer column read back: binary protocol numbers, or the text protocol's digits.
pub fn value_int(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Int(i)) => Some(*i),
        Some(Value::UInt(u)) => Some(*u as i64),
        Some(Value::Bytes(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// A DATETIME read back as a Timestamp (the store keeps UTC): a binary-protocol `Date`, or the
/// text protocol's `YYYY-MM-DD[ HH:MM:SS[.ffffff]]`. None for NULL and anything else.
pub fn value_ts(v: Option<&Value>) -> Option<Timestamp> {
    let c = match *v? {
        Value::Date(y, mo, d, h, mi, s, us) => CivilTime {
            year: i32::from(y),
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
            micro: us,
        },
        Value::Bytes(ref b) => parse_datetime(b)?,
        _ => return None,
    };
    Some(Timestamp(c.to_micros()))
}

/// `YYYY-MM-DD`, optionally followed by ` HH:MM:SS` and a fraction of 1 to 6 digits.
fn parse_datetime(b: &[u8]) -> Option<CivilTime> {
    fn num(b: &[u8]) -> Option<u32> {
        if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(b.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    }
    let (date, time) = match b.len() {
        10 => (b, &b""[..]),
        n if n >= 19 && b[10] == b' ' => (&b[..10], &b[11..]),
        _ => return None,
    };
    if date[4] != b'-' || date[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(&date[..4])?, num(&date[5..7])?, num(&date[8..10])?);
    let (mut hour, mut minute, mut second, mut micro) = (0, 0, 0, 0);
    if !time.is_empty() {
        if time[2] != b':' || time[5] != b':' {
            return None;
        }
        (hour, minute, second) = (num(&time[..2])?, num(&time[3..5])?, num(&time[6..8])?);
        let frac = &time[8..];
        if !frac.is_empty() {
            let digits = frac.strip_prefix(b".")?;
            if digits.len() > 6 {
                return None;
            }
            micro = num(digits)? * 10u32.pow(6 - digits.len() as u32);
        }
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(CivilTime {
        year: year as i32,
        month: month as u8,
        day: day as u8,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        micro,
    })
}

/// An address stored as `INET6_ATON` bytes, read back (None for any other length).
pub fn addr_of(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

/// An address as `INET6_ATON` bytes, for a parameter.
pub fn addr_value(ip: IpAddr) -> Value {
    match ip {
        IpAddr::V4(a) => Value::Bytes(a.octets().to_vec()),
        IpAddr::V6(a) => Value::Bytes(a.octets().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time_round_trips() {
        for us in [
            0i64,
            1_762_320_908_123_456,
            -1,
            951_782_400_000_000, // 2000-02-29
            253_402_300_799_999_999,
            -30_610_224_000_000_000,
        ] {
            let c = CivilTime::from_micros(us);
            assert_eq!(c.to_micros(), us, "{c:?}");
            let ch = chrono::DateTime::from_timestamp_micros(us).unwrap();
            use chrono::{Datelike, Timelike};
            assert_eq!(
                (
                    c.year,
                    c.month as u32,
                    c.day as u32,
                    c.hour as u32,
                    c.minute as u32,
                    c.second as u32
                ),
                (
                    ch.year(),
                    ch.month(),
                    ch.day(),
                    ch.hour(),
                    ch.minute(),
                    ch.second()
                )
            );
        }
        assert!(!CivilTime::from_micros(-40_000_000_000_000_000).in_sql_range());
    }

    #[test]
    fn timestamps_become_datetime_values_and_back() {
        // 2025-11-05T05:35:08.123456Z
        let t = Timestamp(1_762_320_908_123_456);
        let v = ts_value(t);
        assert_eq!(v, Value::Date(2025, 11, 5, 5, 35, 8, 123_456));
        assert_eq!(value_ts(Some(&v)), Some(t));
        assert_eq!(value_ts(Some(&Value::NULL)), None);
        assert_eq!(value_ts(None), None);
    }

    #[test]
    fn text_datetimes_are_read() {
        let b = |s: &str| value_ts(Some(&Value::Bytes(s.as_bytes().to_vec())));
        assert_eq!(b("2025-11-05 05:35:08.123456"), Some(Timestamp(1_762_320_908_123_456)));
        assert_eq!(b("2025-11-05 05:35:08.12"), Some(Timestamp(1_762_320_908_120_000)));
        assert_eq!(b("2025-11-05 05:35:08"), Some(Timestamp(1_762_320_908_000_000)));
        assert_eq!(b("2025-11-05"), Some(Timestamp(1_762_300_800_000_000)));
        for bad in ["", "2025-11-05 05:35", "2025/11/05", "2025-13-05", "2025-11-05 05:35:08.1234567", "x025-11-05"] {
            assert_eq!(b(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn addresses_round_trip() {
        for ip in ["192.0.2.1", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let Value::Bytes(b) = addr_value(ip) else { panic!() };
            assert_eq!(addr_of(&b), Some(ip));
        }
        assert_eq!(addr_of(b"abc"), None);
    }
}
