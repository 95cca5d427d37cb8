//! Calendar arithmetic for the timestamps podterm writes (RFC 3339, UTC): pure code.

/// The proleptic Gregorian date (year, month, day) of `days` (at least 0) after 1970-01-01:
/// Howard Hinnant's `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>),
/// for the days from 1970 on. Audit times (`audit::Time`) and the dev cluster's Kubernetes
/// timestamps (`devcluster::objects::rfc3339`) are written with it.
pub fn civil_from_days(days: i64) -> (u32, u32, u32) {
    // Days since 0000-03-01, in 400-year eras of 146,097 days.
    let z = days as u64 + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    // Months from March: 0 is March, 11 is February.
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year as u32, month as u32, day as u32)
}
