//! Timestamp formatting without a date library: botd prints UTC, as `ra` does on a UTC machine.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt;

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY/MM/DD HH:MM:SS.ffffff` in UTC, the CTU-13 binetflow StartTime format.
pub struct ArgusTime(pub u64);

impl fmt::Display for ArgusTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = (self.0 / 1_000_000_000) as i64;
        let micros = (self.0 % 1_000_000_000) / 1000;
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}/{mo:02}/{d:02} {:02}:{:02}:{:02}.{micros:06}",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        )
    }
}

/// Seconds with six decimals, as Argus prints durations.
pub struct Secs(pub u64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0 / 1000;
        write!(f, "{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_ra() {
        // 2018-03-09 20:49:16.520001 UTC
        let ns = 1_520_628_556_520_001_000;
        assert_eq!(ArgusTime(ns).to_string(), "2018/03/09 20:49:16.520001");
        assert_eq!(ArgusTime(0).to_string(), "1970/01/01 00:00:00.000000");
        assert_eq!(
            ArgusTime(951_782_400_000_000_000).to_string(),
            "2000/02/29 00:00:00.000000"
        );
        assert_eq!(Secs(9_979_656_123).to_string(), "9.979656");
    }
}
