//! Number formatting shared by the progress line, the summary table and the HTML report:
//! thousands separators, latencies in the unit that reads best, byte sizes. Pure functions.

/// `1234567` as `1,234,567`.
pub fn group_digits(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Microseconds as a short human figure: `850 µs`, `1.25 ms`, `2.10 s`.
pub fn format_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// KiB as a short human figure: `512 KiB`, `12.5 MiB`.
pub fn format_kib(kib: u64) -> String {
    if kib < 10 * 1024 {
        format!("{kib} KiB")
    } else if kib < 10 * 1024 * 1024 {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    } else {
        format!("{:.2} GiB", kib as f64 / (1024.0 * 1024.0))
    }
}

/// A rate with grouped digits: `1,234,567`.
pub fn format_rate(per_second: f64) -> String {
    if per_second > 0.0 && per_second < 10.0 {
        format!("{per_second:.2}")
    } else {
        group_digits(per_second.round() as u64)
    }
}

/// Parses a duration: `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds (`1.5`).
pub fn parse_duration(text: &str) -> anyhow::Result<std::time::Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid duration {text:?}: use e.g. 500ms, 30s, 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => anyhow::bail!("invalid duration unit {other:?} in {text:?}: use ms, s, m or h"),
    };
    if !seconds.is_finite() || seconds > 1e9 {
        anyhow::bail!("duration {text:?} is out of range");
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// Milliseconds since the Unix epoch as `2025-01-31 12:34:56 UTC`.
pub fn format_unix_ms(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for every date after 1970.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(1234567), "1,234,567");
    }

    #[test]
    fn microseconds_are_readable() {
        assert_eq!(format_us(850), "850 µs");
        assert_eq!(format_us(1250), "1.25 ms");
        assert_eq!(format_us(2_100_000), "2.10 s");
    }

    #[test]
    fn unix_times_are_dates() {
        assert_eq!(format_unix_ms(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix_ms(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_unix_ms(1_735_689_599_000), "2024-12-31 23:59:59 UTC");
    }

    #[test]
    fn durations_parse() {
        use std::time::Duration;
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn sizes_and_rates_are_readable() {
        assert_eq!(format_kib(512), "512 KiB");
        assert_eq!(format_kib(20 * 1024), "20.0 MiB");
        assert_eq!(format_rate(1234.4), "1,234");
        assert_eq!(format_rate(2.5), "2.50");
    }
}
