//! Time: calendar arithmetic, the zone of zone-less stamps, and year inference for RFC 3164
//! stamps (which carry no year).
//!
//! The hot path never calls into chrono: civil dates are turned into day numbers with integer
//! arithmetic, and the zone offset of a local hour is looked up once and cached, so a stream of
//! lines costs one comparison per line for its zone (chrono is only asked when the hour changes).

use std::str::FromStr;

use chrono::{LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((y + i64::from(m <= 2)) as i32, m, d)
}

pub fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// The zone that zone-less stamps are read in.
#[derive(Clone, Debug)]
pub enum Zone {
    /// The machine's zone (TZ, else /etc/localtime), as chrono's `Local` reads it.
    Local,
    /// A fixed offset east of UTC, in seconds (`UTC`, `+01:00`).
    Fixed(i32),
    Named(chrono_tz::Tz),
}

impl Zone {
    /// `None` = local; `UTC`/`Z`; `+HH:MM`, `+HHMM`, `+HH`, `-...`; an IANA name (`Europe/Berlin`).
    pub fn parse(spec: Option<&str>) -> Result<Zone, String> {
        let Some(s) = spec.map(str::trim) else {
            return Ok(Zone::Local);
        };
        if s.eq_ignore_ascii_case("local") {
            return Ok(Zone::Local);
        }
        if s.eq_ignore_ascii_case("utc") || s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("gmt") {
            return Ok(Zone::Fixed(0));
        }
        if s.starts_with('+') || s.starts_with('-') {
            return parse_offset(s.as_bytes())
                .map(Zone::Fixed)
                .ok_or_else(|| format!("time zone {s:?}: an offset is written +HH:MM, +HHMM or +HH"));
        }
        chrono_tz::Tz::from_str(s)
            .map(Zone::Named)
            .map_err(|_| format!("time zone {s:?} is not an IANA zone name (e.g. Europe/Berlin), UTC or an offset like +01:00"))
    }

    /// Seconds since the epoch of local wall time `days`/`secs_of_day` in this zone. An
    /// ambiguous time (the repeated hour when clocks go back) takes the earlier instant; a time
    /// in the gap when clocks go forward takes the offset in effect before the change.
    fn resolve(&self, days: i64, secs_of_day: i64) -> i64 {
        let wall = days * 86_400 + secs_of_day;
        let offset = match self {
            Zone::Fixed(o) => i64::from(*o),
            Zone::Local => offset_of(&chrono::Local, wall),
            Zone::Named(tz) => offset_of(tz, wall),
        };
        wall - offset
    }

    /// The offset east of UTC in seconds at an instant (for the reference's local date).
    pub fn offset_at(&self, utc_secs: i64) -> i64 {
        let Some(dt) = chrono::DateTime::from_timestamp(utc_secs, 0) else {
            return 0;
        };
        let naive = dt.naive_utc();
        match self {
            Zone::Fixed(o) => i64::from(*o),
            Zone::Local => i64::from(chrono::Local.offset_from_utc_datetime(&naive).fix().local_minus_utc()),
            Zone::Named(tz) => i64::from(tz.offset_from_utc_datetime(&naive).fix().local_minus_utc()),
        }
    }
}

fn naive_of(wall: i64) -> Option<NaiveDateTime> {
    let days = wall.div_euclid(86_400);
    let secs = wall.rem_euclid(86_400) as u32;
    let date = NaiveDate::from_num_days_from_ce_opt(i32::try_from(days + 719_163).ok()?)?;
    date.and_hms_opt(secs / 3600, secs / 60 % 60, secs % 60)
}

fn offset_of<Z: TimeZone>(tz: &Z, wall: i64) -> i64 {
    let Some(naive) = naive_of(wall) else {
        return 0;
    };
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(dt) => i64::from(dt.offset().fix().local_minus_utc()),
        LocalResult::Ambiguous(a, _) => i64::from(a.offset().fix().local_minus_utc()),
        // In the gap: the offset before the change is the one in effect just before it (the
        // wall time read as UTC minus a day is safely before any gap of that date).
        LocalResult::None => {
            let before = naive - chrono::Duration::days(1);
            i64::from(tz.offset_from_utc_datetime(&before).fix().local_minus_utc())
        }
    }
}

/// `+HH:MM`, `+HHMM`, `+HH` (and `-`) to seconds east of UTC.
pub fn parse_offset(b: &[u8]) -> Option<i32> {
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let d = |i: usize| -> Option<i32> {
        let c = *b.get(i)?;
        c.is_ascii_digit().then(|| i32::from(c - b'0'))
    };
    let h = d(1)? * 10 + d(2)?;
    let m = match b.len() {
        3 => 0,
        5 => d(3)? * 10 + d(4)?,
        6 if b[3] == b':' => d(4)? * 10 + d(5)?,
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// Tolerance for stamps after the reference: clocks of the logging host and of the machine
/// that reads the log may disagree, and a file's mtime can trail its last line by a little.
pub const FUTURE_TOLERANCE_SECS: i64 = 86_400;

/// Wall-clock (zone-less) times to UTC, with a one-hour cache, and the year of year-less stamps.
#[derive(Clone, Debug)]
pub struct Clock {
    zone: Zone,
    reference_secs: i64,
    forced_year: Option<i32>,
    /// Year of the stream so far, and the month of its last stamp.
    year: Option<i32>,
    last_month: u32,
    /// Local hour number (days * 24 + hour) -> UTC seconds of its start.
    cached_hour: i64,
    cached_utc: i64,
}

impl Clock {
    pub fn new(zone: Zone, reference_secs: i64, forced_year: Option<i32>) -> Clock {
        Clock {
            zone,
            reference_secs,
            forced_year,
            year: None,
            last_month: 0,
            cached_hour: i64::MIN,
            cached_utc: 0,
        }
    }

    pub fn set_reference(&mut self, reference_secs: i64) {
        self.reference_secs = reference_secs;
    }

    /// UTC seconds of a wall-clock time in the configured zone (date already validated).
    pub fn wall_to_utc(&mut self, y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        let days = days_from_civil(y, mo, d);
        let hour = days * 24 + i64::from(h);
        if hour != self.cached_hour {
            self.cached_utc = self.zone.resolve(days, i64::from(h) * 3600);
            self.cached_hour = hour;
        }
        self.cached_utc + i64::from(mi) * 60 + i64::from(s)
    }

    /// The year of a year-less stamp and its UTC seconds. `None` when the date exists in no
    /// candidate year (Feb 29 with a forced non-leap year).
    pub fn resolve_yearless(&mut self, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<(i32, i64)> {
        let y = self.year_for(mo, d, h, mi, s)?;
        Some((y, self.wall_to_utc(y, mo, d, h, mi, s)))
    }

    /// The year of a year-less stamp. `None` when the date exists in no candidate year
    /// (Feb 29 with a forced non-leap year).
    pub fn year_for(&mut self, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i32> {
        if let Some(y) = self.forced_year {
            return (d <= days_in_month(y, mo)).then_some(y);
        }
        let y = match self.year {
            // A big step back in the month (Dec -> Jan, or Nov -> Feb after a quiet spell) is
            // the turn of the year; a small one is reordering and stays in the year. Either
            // way the stamp may not land after the reference: then it is a year earlier.
            Some(cur) => {
                let stream = if mo + 6 <= self.last_month { cur + 1 } else { cur };
                // The stream keeps its year even when this one stamp has to go back a year, so
                // one stray line does not drag the lines after it back.
                self.year = Some(stream);
                self.last_month = mo;
                let mut y = stream;
                while y > cur - 8
                    && (d > days_in_month(y, mo)
                        || self.wall_to_utc(y, mo, d, h, mi, s) > self.reference_secs + FUTURE_TOLERANCE_SECS)
                {
                    y -= 1;
                }
                return (d <= days_in_month(y, mo)).then_some(y);
            }
            None => {
                // First stamp of the stream: the latest year that does not put it after the
                // reference (plus tolerance). The reference's year in the zone is the first try.
                let ref_local = self.reference_secs + self.zone.offset_at(self.reference_secs);
                let (ry, _, _) = civil_from_days(ref_local.div_euclid(86_400));
                let mut found = None;
                for y in (ry - 8..=ry + 1).rev() {
                    if d > days_in_month(y, mo) {
                        continue;
                    }
                    let t = self.wall_to_utc(y, mo, d, h, mi, s);
                    if t <= self.reference_secs + FUTURE_TOLERANCE_SECS {
                        found = Some(y);
                        break;
                    }
                }
                found?
            }
        };
        if d > days_in_month(y, mo) {
            return None;
        }
        self.year = Some(y);
        self.last_month = mo;
        Some(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for z in [-800_000i64, -1, 0, 1, 59, 10_000, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset(b"+01:00"), Some(3600));
        assert_eq!(parse_offset(b"-0530"), Some(-(5 * 3600 + 30 * 60)));
        assert_eq!(parse_offset(b"+02"), Some(7200));
        assert_eq!(parse_offset(b"+1:00"), None);
        assert_eq!(parse_offset(b"+24:00"), None);
        assert!(Zone::parse(Some("Nowhere/City")).is_err());
        assert!(matches!(Zone::parse(Some("UTC")), Ok(Zone::Fixed(0))));
    }

    #[test]
    fn named_zone_dst() {
        let z = Zone::parse(Some("Europe/Berlin")).unwrap();
        let mut c = Clock::new(z, 1_800_000_000, None);
        // 2026-07-01 12:00 CEST = 10:00 UTC
        assert_eq!(c.wall_to_utc(2026, 7, 1, 12, 0, 0), days_from_civil(2026, 7, 1) * 86_400 + 36_000);
        // 2026-01-01 12:00 CET = 11:00 UTC
        assert_eq!(c.wall_to_utc(2026, 1, 1, 12, 0, 0), days_from_civil(2026, 1, 1) * 86_400 + 39_600);
        // Ambiguous 2026-10-25 02:30 takes the earlier instant (CEST): 00:30 UTC.
        assert_eq!(c.wall_to_utc(2026, 10, 25, 2, 30, 0), days_from_civil(2026, 10, 25) * 86_400 + 1_800);
        // Gap 2026-03-29 02:30 (does not exist) uses the offset before: +01:00 -> 01:30 UTC.
        assert_eq!(c.wall_to_utc(2026, 3, 29, 2, 30, 0), days_from_civil(2026, 3, 29) * 86_400 + 5_400);
    }

    #[test]
    fn year_inference() {
        let ref_secs = days_from_civil(2026, 1, 2) * 86_400; // 2026-01-02 00:00 UTC
        let mut c = Clock::new(Zone::Fixed(0), ref_secs, None);
        assert_eq!(c.year_for(12, 31, 23, 59, 0), Some(2025));
        assert_eq!(c.year_for(1, 1, 0, 0, 1), Some(2026));
        assert_eq!(c.year_for(1, 1, 0, 0, 2), Some(2026));
        // Within the tolerance (a day after the reference) stays in the reference's year.
        let mut c = Clock::new(Zone::Fixed(0), ref_secs, None);
        assert_eq!(c.year_for(1, 2, 23, 0, 0), Some(2026));
        let mut c = Clock::new(Zone::Fixed(0), ref_secs, None);
        assert_eq!(c.year_for(1, 4, 0, 0, 0), Some(2025));
        // Feb 29 goes back to the last leap year.
        let mut c = Clock::new(Zone::Fixed(0), ref_secs, None);
        assert_eq!(c.year_for(2, 29, 0, 0, 0), Some(2024));
        let mut c = Clock::new(Zone::Fixed(0), ref_secs, Some(2019));
        assert_eq!(c.year_for(2, 29, 0, 0, 0), None);
        assert_eq!(c.year_for(12, 29, 0, 0, 0), Some(2019));
        // A stream never walks past the reference: after Apr 2026, Oct is Oct 2025.
        let ref_secs = days_from_civil(2026, 9, 1) * 86_400;
        let mut c = Clock::new(Zone::Fixed(0), ref_secs, None);
        assert_eq!(c.year_for(4, 24, 0, 0, 0), Some(2026));
        assert_eq!(c.year_for(8, 31, 0, 0, 0), Some(2026));
        assert_eq!(c.year_for(10, 30, 0, 0, 0), Some(2025));
        // ... until the reference moves on (a live stream).
        c.set_reference(days_from_civil(2026, 11, 1) * 86_400);
        assert_eq!(c.year_for(10, 30, 0, 0, 0), Some(2026));
    }
}
