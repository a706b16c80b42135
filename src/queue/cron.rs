//! Recurring schedules: a 5-field cron expression or `@every <duration>`,
//! parsed once into a [`Spec`] that answers "when next?" and "when last?".
//! Pure arithmetic on UTC milliseconds: no clock, no SQLite, no state, so
//! every process computes the same occurrences from the same text.
//!
//! HOW THE SEARCH WORKS. A cron spec is five bit sets. `next_after` walks
//! the calendar coarse to fine: a month not in the set jumps to the next
//! listed month, a day that does not match jumps to the next matching day
//! of that month (a 31-bit mask built once per month visited), then the
//! next listed hour, then the next listed minute; any miss restarts from
//! the coarser field. So the cost is bounded by months visited, never by
//! minutes. `last_at_or_before` is the same walk backwards.
//!
//! The horizon is 400 years, not the 30 or so a leap day alone needs: the
//! proleptic Gregorian calendar repeats exactly every 400 years (146097
//! days, a whole number of weeks), so a spec that finds nothing in 400
//! years never occurs at all. That makes "never occurs" a parse error that
//! is exact, and keeps rare AND-rule specs such as `0 0 29 2 */7` (Feb 29
//! on a Sunday, gaps of up to 40 years) from wrongly reporting nothing.
//! The worst case, a spec that never occurs, visits 4800 months.

use crate::error::{Error, Result};

/// A parsed schedule expression.
///
/// Two texts that mean the same parse to equal specs (`@daily` and
/// `0 0 * * *`). The fields are public for reading; a spec built by hand
/// with empty sets or a period below 1 ms simply never occurs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A cron expression, as bit sets: bit `n` set means value `n` matches.
    Cron {
        /// Minutes 0-59.
        minutes: u64,
        /// Hours 0-23.
        hours: u32,
        /// Days of the month 1-31 (bit 0 unused).
        days: u32,
        /// Months 1-12 (bit 0 unused).
        months: u16,
        /// Days of the week 0-6, Sunday 0 (a 7 in the text is folded into 0).
        weekdays: u8,
        /// crontab(5)'s day rule: true when neither day field starts with
        /// `*`, and then a day matches if either field does; otherwise
        /// both must.
        days_or: bool,
    },
    /// `@every <duration>`: the multiples of `period_ms` since the epoch.
    Every { period_ms: i64 },
}

const MINUTE_MS: i64 = 60_000;
const MINUTES_PER_DAY: i64 = 1_440;
/// See the file header: one full Gregorian cycle.
const HORIZON_YEARS: i64 = 400;
/// The longest `@every` period, in seconds.
const MAX_PERIOD_S: u64 = 366 * 86_400;
const UNITS_HINT: &str = "units d, h, m, s";

/// One of the five cron fields: its name in messages, its range, and the
/// names it accepts for its values (index + `lo` is the value).
struct Field {
    name: &'static str,
    lo: u32,
    hi: u32,
    names: &'static [&'static str],
    names_hint: &'static str,
}

const MINUTE: Field = Field {
    name: "minute",
    lo: 0,
    hi: 59,
    names: &[],
    names_hint: "",
};
const HOUR: Field = Field {
    name: "hour",
    lo: 0,
    hi: 23,
    names: &[],
    names_hint: "",
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    lo: 1,
    hi: 31,
    names: &[],
    names_hint: "",
};
const MONTH: Field = Field {
    name: "month",
    lo: 1,
    hi: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
    names_hint: " or a month name (jan-dec)",
};
/// 0-7: both 0 and 7 are Sunday, as in crontab(5).
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    lo: 0,
    hi: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    names_hint: " or a weekday name (sun-sat)",
};

/// The macros and the 5-field forms they stand for (vixie cron's table).
const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

impl Spec {
    /// Parses `text`. Errors (Error::new) say which field and why, e.g.
    ///   `cron "61 * * * *": minute field "61": 61 is out of range 0-59`
    ///   `cron "* * *": expected 5 fields (minute hour day-of-month month day-of-week), got 3`
    ///   `"@every 10ms": "ms" is not a unit: the period is whole seconds, at least 1s …`
    pub fn parse(text: &str) -> Result<Spec> {
        let text = text.trim();
        if text.starts_with('@') {
            parse_at(text).map_err(|why| Error::new(format!("{}: {why}", shown(text))))
        } else {
            let spec = parse_cron(text)
                .map_err(|why| Error::new(format!("cron {}: {why}", shown(text))))?;
            // Exact, not a heuristic: see HORIZON_YEARS.
            if spec.next_after(0).is_none() {
                return Err(Error::new(format!(
                    "cron {}: never occurs: no date in any year has that \
                     day-of-month in those months (and that day-of-week)",
                    shown(text)
                )));
            }
            Ok(spec)
        }
    }

    /// The first occurrence strictly after `after_ms` (milliseconds since
    /// the Unix epoch, UTC), in ms; cron occurrences fall on whole minutes.
    /// None if there is none within the horizon or the result would
    /// overflow.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match *self {
            Spec::Every { period_ms } if period_ms > 0 => after_ms
                .div_euclid(period_ms)
                .checked_add(1)?
                .checked_mul(period_ms),
            Spec::Every { .. } => None,
            Spec::Cron { .. } => {
                // The first whole minute strictly after `after_ms`.
                let from = after_ms.div_euclid(MINUTE_MS) + 1;
                minute_to_ms(self.search(from, Direction::Forward)?)
            }
        }
    }

    /// The last occurrence at or before `at_ms`, if any within the horizon
    /// (for a "latest missed occurrence only" catch-up rule).
    pub fn last_at_or_before(&self, at_ms: i64) -> Option<i64> {
        match *self {
            Spec::Every { period_ms } if period_ms > 0 => {
                at_ms.div_euclid(period_ms).checked_mul(period_ms)
            }
            Spec::Every { .. } => None,
            Spec::Cron { .. } => {
                minute_to_ms(self.search(at_ms.div_euclid(MINUTE_MS), Direction::Backward)?)
            }
        }
    }

    /// The first matching minute (counted from the epoch) at or after
    /// `from`, or at or before it, walking months, days, hours, minutes.
    fn search(&self, from: i64, dir: Direction) -> Option<i64> {
        let Spec::Cron {
            minutes,
            hours,
            months,
            ..
        } = *self
        else {
            return None;
        };
        let (hours, months) = (u64::from(hours), u64::from(months));
        let forward = dir == Direction::Forward;
        let (mut y, mut mo, mut d) = civil_from_days(from.div_euclid(MINUTES_PER_DAY));
        let in_day = from.rem_euclid(MINUTES_PER_DAY);
        // Both below 60, from the rem_euclid above.
        let (mut h, mut mi) = ((in_day / 60) as u32, (in_day % 60) as u32);
        let (first_year, last_year) = if forward {
            (y, y + HORIZON_YEARS)
        } else {
            (y - HORIZON_YEARS, y)
        };
        // Where each field starts when a coarser one moves: 00:00 of the
        // first day going forward, 23:59 of the last day going backward.
        let (h0, mi0) = if forward { (0, 0) } else { (23, 59) };
        loop {
            if y < first_year || y > last_year {
                return None;
            }
            match dir.seek(months, mo, 1, 12) {
                Some(m) if m == mo => {}
                Some(m) => (mo, d, h, mi) = (m, dir.day0(y, m), h0, mi0),
                None => {
                    // No listed month left this year: the first (or last)
                    // listed one of the next (previous) year.
                    y += if forward { 1 } else { -1 };
                    mo = dir.seek(months, dir.month0(), 1, 12)?;
                    (d, h, mi) = (dir.day0(y, mo), h0, mi0);
                    continue;
                }
            }
            match dir.seek(self.month_days(y, mo), d, 1, 31) {
                Some(n) if n == d => {}
                Some(n) => (d, h, mi) = (n, h0, mi0),
                None => {
                    (y, mo) = dir.step_month(y, mo);
                    (d, h, mi) = (dir.day0(y, mo), h0, mi0);
                    continue;
                }
            }
            match dir.seek(hours, h, 0, 23) {
                Some(n) if n == h => {}
                Some(n) => (h, mi) = (n, mi0),
                None => {
                    (y, mo, d) = dir.step_day(y, mo, d);
                    (h, mi) = (h0, mi0);
                    continue;
                }
            }
            match dir.seek(minutes, mi, 0, 59) {
                Some(n) => mi = n,
                None => {
                    // Past the last listed minute of this hour: the next
                    // hour's first minute (or the previous one's last),
                    // crossing into the neighbouring day if need be.
                    mi = mi0;
                    match (forward, h) {
                        (true, 23) => ((y, mo, d), h) = (dir.step_day(y, mo, d), 0),
                        (false, 0) => ((y, mo, d), h) = (dir.step_day(y, mo, d), 23),
                        (true, _) => h += 1,
                        (false, _) => h -= 1,
                    }
                    continue;
                }
            }
            return (days_from_civil(y, mo, d) * MINUTES_PER_DAY)
                .checked_add(i64::from(h * 60 + mi));
        }
    }

    /// The days of month `mo` of year `y` that pass the day rule, as bits
    /// 1-31.
    fn month_days(&self, y: i64, mo: u32) -> u64 {
        let Spec::Cron {
            days,
            weekdays,
            days_or,
            ..
        } = *self
        else {
            return 0;
        };
        let len = days_in_month(y, mo);
        let first_weekday = weekday(days_from_civil(y, mo, 1));
        let mut by_weekday = 0u64;
        for d in 1..=len {
            if weekdays & (1 << ((first_weekday + d - 1) % 7)) != 0 {
                by_weekday |= 1 << d;
            }
        }
        let by_day = u64::from(days) & bits(1, len);
        if days_or {
            by_day | by_weekday
        } else {
            by_day & by_weekday
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    Backward,
}

impl Direction {
    /// The nearest set bit of `mask` at or after `from` (at or before it,
    /// going backward), within `lo..=hi`.
    fn seek(self, mask: u64, from: u32, lo: u32, hi: u32) -> Option<u32> {
        let window = match self {
            Direction::Forward if from <= hi => bits(from.max(lo), hi),
            Direction::Backward if from >= lo => bits(lo, from.min(hi)),
            _ => 0,
        };
        let hits = mask & window;
        if hits == 0 {
            None
        } else if self == Direction::Forward {
            Some(hits.trailing_zeros())
        } else {
            Some(63 - hits.leading_zeros())
        }
    }

    /// Where a month search starts in a new year: January or December.
    fn month0(self) -> u32 {
        match self {
            Direction::Forward => 1,
            Direction::Backward => 12,
        }
    }

    /// Where a day search starts in a new month: its first or last day.
    fn day0(self, y: i64, mo: u32) -> u32 {
        match self {
            Direction::Forward => 1,
            Direction::Backward => days_in_month(y, mo),
        }
    }

    fn step_month(self, y: i64, mo: u32) -> (i64, u32) {
        match (self, mo) {
            (Direction::Forward, 12) => (y + 1, 1),
            (Direction::Forward, _) => (y, mo + 1),
            (Direction::Backward, 1) => (y - 1, 12),
            (Direction::Backward, _) => (y, mo - 1),
        }
    }

    fn step_day(self, y: i64, mo: u32, d: u32) -> (i64, u32, u32) {
        match self {
            Direction::Forward if d < days_in_month(y, mo) => (y, mo, d + 1),
            Direction::Backward if d > 1 => (y, mo, d - 1),
            _ => {
                let (y, mo) = self.step_month(y, mo);
                (y, mo, self.day0(y, mo))
            }
        }
    }
}

/// Bits `lo..=hi` set (`hi` at most 63).
fn bits(lo: u32, hi: u32) -> u64 {
    if lo > hi || hi > 63 {
        return 0;
    }
    (u64::MAX >> (63 - hi)) & (u64::MAX << lo)
}

fn minute_to_ms(minute: i64) -> Option<i64> {
    minute.checked_mul(MINUTE_MS)
}

// ---- civil dates (proleptic Gregorian, UTC) --------------------------------
//
// Howard Hinnant's days_from_civil / civil_from_days
// (http://howardhinnant.github.io/date_algorithms.html): years counted from
// March so the leap day ends the year, eras of 400 years so every division
// is on non-negative numbers. Day 0 is 1970-01-01. Inputs here come from
// i64 milliseconds, so years stay within about ±300 million: no overflow.

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both small and positive by construction: day 1-31, month 1-12.
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// 0 for Sunday; 1970-01-01 was a Thursday.
fn weekday(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

// ---- parsing -----------------------------------------------------------------

/// The text as quoted in messages: escaped, and cut if it is long.
fn shown(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("\"{}…\"", cut.escape_debug())
    }
}

/// `@every <duration>` or a macro. Errors are the reason only; the caller
/// names the text.
fn parse_at(text: &str) -> std::result::Result<Spec, String> {
    let mut words = text.split_ascii_whitespace();
    let word = words.next().unwrap_or("");
    // Macros are case-insensitive, like the names in fields.
    let head = word.to_ascii_lowercase();
    let rest: Vec<&str> = words.collect();
    if head == "@every" {
        return match rest[..] {
            [duration] => parse_duration(duration).map(|period_ms| Spec::Every { period_ms }),
            [] => Err(format!(
                "@every needs a duration, like 30s, 5m or 1h30m ({UNITS_HINT})"
            )),
            _ => Err("@every takes one duration without spaces, like 1h30m".to_string()),
        };
    }
    if head == "@reboot" {
        return Err("@reboot is not supported: schedules follow the clock, \
                    and there is no daemon start to run at"
            .to_string());
    }
    let Some((_, expansion)) = MACROS.iter().find(|(name, _)| *name == head) else {
        return Err(format!(
            "unknown macro {}: expected @yearly, @annually, @monthly, @weekly, \
             @daily, @midnight, @hourly or @every <duration>",
            shown(word)
        ));
    };
    if !rest.is_empty() {
        return Err(format!("{word} takes nothing after it"));
    }
    parse_cron(expansion)
}

/// A duration such as `90s`, `5m`, `1h30m` or `2d`, in milliseconds:
/// integer amounts, units d, h, m, s each at most once and in that order.
/// Case-insensitive, like the rest of `@every`.
fn parse_duration(text: &str) -> std::result::Result<i64, String> {
    const UNITS: [(&str, u64); 4] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    let lower = text.to_ascii_lowercase();
    let too_long = || format!("the period must be at most 366d ({MAX_PERIOD_S}s)");
    let mut rest = lower.as_str();
    let mut total: u64 = 0;
    // Index into UNITS of the last unit read: the next must come after it.
    let mut last: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (amount, after) = rest.split_at(digits);
        let unit_len = after
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if amount.is_empty() {
            return Err(format!("expected a number at {}", shown(rest)));
        }
        if unit.is_empty() {
            return Err(if after.starts_with(['.', ',']) {
                "amounts must be whole numbers (write 90m, not 1.5h)".to_string()
            } else {
                format!("{amount} has no unit ({UNITS_HINT})")
            });
        }
        let Some(index) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(if matches!(unit, "ms" | "us" | "µs" | "ns") {
                format!(
                    "{unit:?} is not a unit: the period is whole seconds, at least 1s ({UNITS_HINT})"
                )
            } else {
                format!("unknown unit {} ({UNITS_HINT})", shown(unit))
            });
        };
        if last.is_some_and(|l| index <= l) {
            return Err("units must come largest first, each once (like 1d2h3m4s)".to_string());
        }
        last = Some(index);
        // Digits only, so a failure is an overflow.
        let n: u64 = amount.parse().map_err(|_| too_long())?;
        total = n
            .checked_mul(UNITS[index].1)
            .and_then(|s| s.checked_add(total))
            .ok_or_else(too_long)?;
        rest = after;
    }
    if total == 0 {
        return Err("the period must be at least 1s".to_string());
    }
    if total > MAX_PERIOD_S {
        return Err(too_long());
    }
    // At most 366d in seconds: fits easily in milliseconds.
    Ok(total as i64 * 1_000)
}

/// Five whitespace-separated fields.
fn parse_cron(text: &str) -> std::result::Result<Spec, String> {
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields[..] else {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
            fields.len()
        ));
    };
    // In the order written, so the first bad field is the one reported.
    // Values were checked against each field's `hi`, so each fits its type.
    let minutes = parse_field(minute, &MINUTE)?;
    let hours = parse_field(hour, &HOUR)? as u32;
    let days = parse_field(dom, &DAY_OF_MONTH)? as u32;
    let months = parse_field(month, &MONTH)? as u16;
    let dow_bits = parse_field(dow, &DAY_OF_WEEK)?;
    Ok(Spec::Cron {
        minutes,
        hours,
        days,
        months,
        // 7 is another name for Sunday.
        weekdays: ((dow_bits | dow_bits >> 7) & 0x7f) as u8,
        // crontab(5): "*" as the first character, so `*/2` counts as
        // unrestricted too (vixie cron and cronie read it the same way).
        days_or: !dom.starts_with('*') && !dow.starts_with('*'),
    })
}

/// One field: a comma-separated list of `*`, `v`, `a-b`, each with an
/// optional `/step`; `a/step` means `a-hi/step`, as cronie reads it.
fn parse_field(text: &str, f: &Field) -> std::result::Result<u64, String> {
    let mut mask = 0u64;
    for item in text.split(',') {
        mask |= parse_item(item, f)
            .map_err(|why| format!("{} field {}: {why}", f.name, shown(text)))?;
    }
    Ok(mask)
}

fn parse_item(item: &str, f: &Field) -> std::result::Result<u64, String> {
    if item.is_empty() {
        return Err("empty list element".to_string());
    }
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(step, f)?)),
        None => (item, None),
    };
    let (a, b) = if range == "*" {
        (f.lo, f.hi)
    } else if let Some((a, b)) = range.split_once('-') {
        if a.is_empty() || b.is_empty() {
            return Err(format!("range {} needs a value at both ends", shown(range)));
        }
        let (a, b) = (parse_value(a, f)?, parse_value(b, f)?);
        if a > b {
            return Err(format!("range {range} runs backwards ({a} > {b})"));
        }
        (a, b)
    } else if range.is_empty() {
        return Err(format!("{} needs a value before the /", shown(item)));
    } else {
        let a = parse_value(range, f)?;
        (a, if step.is_some() { f.hi } else { a })
    };
    let step = step.unwrap_or(1) as usize;
    Ok((a..=b).step_by(step).fold(0, |m, v| m | 1 << v))
}

/// A step: a number 1 to the field's maximum (a larger one could only ever
/// pick the first value, which is almost certainly not what was meant).
fn parse_step(text: &str, f: &Field) -> std::result::Result<u32, String> {
    if text.is_empty() {
        return Err("missing step after /".to_string());
    }
    let Some(n) = number(text) else {
        return Err(format!("step {} is not a number", shown(text)));
    };
    if n == 0 || n > u64::from(f.hi) {
        return Err(format!("step {text} is out of range 1-{}", f.hi));
    }
    Ok(n as u32)
}

/// A number within the field's range, or (month, weekday) a three-letter
/// name, case-insensitive. Names may be mixed with numbers in a range.
fn parse_value(text: &str, f: &Field) -> std::result::Result<u32, String> {
    if let Some(n) = number(text) {
        if n < u64::from(f.lo) || n > u64::from(f.hi) {
            return Err(format!("{text} is out of range {}-{}", f.lo, f.hi));
        }
        return Ok(n as u32);
    }
    let lower = text.to_ascii_lowercase();
    match f.names.iter().position(|name| *name == lower) {
        Some(i) => Ok(i as u32 + f.lo),
        None => Err(format!("{} is not a number{}", shown(text), f.names_hint)),
    }
}

/// Plain decimal digits (no sign), saturating: a huge number is still a
/// number, reported as out of range rather than as garbage.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "YYYY-MM-DD HH:MM" or "YYYY-MM-DD HH:MM:SS", UTC, in ms.
    fn at(s: &str) -> i64 {
        let n: Vec<i64> = s
            .split(['-', ' ', ':'])
            .map(|p| p.parse().unwrap())
            .collect();
        let days = days_from_civil(n[0], n[1] as u32, n[2] as u32);
        let secs = n[3] * 3600 + n[4] * 60 + n.get(5).copied().unwrap_or(0);
        (days * 86_400 + secs) * 1000
    }

    /// The inverse of `at`, for readable assertions.
    fn show(ms: i64) -> String {
        let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
        let s = ms.rem_euclid(86_400_000) / 1000;
        let mut out = format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", s / 3600, s / 60 % 60);
        if s % 60 != 0 || ms % 1000 != 0 {
            out += &format!(":{:02}.{:03}", s % 60, ms.rem_euclid(1000));
        }
        out
    }

    fn spec(text: &str) -> Spec {
        Spec::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// The first `n` occurrences after `start`, shown.
    fn nexts(text: &str, start: &str, n: usize) -> Vec<String> {
        let s = spec(text);
        let mut t = at(start);
        (0..n)
            .map(|_| {
                t = s.next_after(t).unwrap();
                show(t)
            })
            .collect()
    }

    /// Whether `ms` is an occurrence, read off the fields directly rather
    /// than through the search.
    fn matches(s: &Spec, ms: i64) -> bool {
        match *s {
            Spec::Every { period_ms } => ms.rem_euclid(period_ms) == 0,
            Spec::Cron {
                minutes,
                hours,
                days,
                months,
                weekdays,
                days_or,
            } => {
                if ms.rem_euclid(MINUTE_MS) != 0 {
                    return false;
                }
                let day = ms.div_euclid(86_400_000);
                let (_, mo, d) = civil_from_days(day);
                let minute = ms.rem_euclid(86_400_000) / MINUTE_MS;
                let dom = days & (1 << d) != 0;
                let dow = weekdays & (1 << weekday(day)) != 0;
                minutes & (1 << (minute % 60)) != 0
                    && hours & (1 << (minute / 60)) != 0
                    && months & (1 << mo) != 0
                    && if days_or { dom || dow } else { dom && dow }
            }
        }
    }

    #[test]
    fn civil_dates_count_every_day_once() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(weekday(0), 4); // Thursday
        assert_eq!(weekday(days_from_civil(2000, 1, 1)), 6); // Saturday
        assert_eq!(weekday(days_from_civil(2024, 2, 29)), 4); // Thursday
        // Day by day over 1600-2400 (both ways round 1900, 2000, 2100):
        // each day is the next calendar date, and converts back.
        let (mut y, mut m, mut d) = (1600, 1, 1);
        for day in days_from_civil(1600, 1, 1)..days_from_civil(2400, 12, 31) {
            assert_eq!(civil_from_days(day), (y, m, d));
            assert_eq!(days_from_civil(y, m, d), day);
            (y, m, d) = if d < days_in_month(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
        assert!(is_leap(2000) && is_leap(2024) && is_leap(1600));
        assert!(!is_leap(1900) && !is_leap(2100) && !is_leap(2023));
    }

    /// The rows of a text table: `|`-separated cells, trimmed; blank lines
    /// and `#` comments skipped.
    fn rows(table: &str) -> impl Iterator<Item = Vec<&str>> {
        table
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split('|').map(str::trim).collect())
    }

    /// expression | start | the next occurrences, in order.
    const NEXT: &str = "
    # Steps on every field.
    */15 * * * *      | 2024-01-01 10:07 | 2024-01-01 10:15, 2024-01-01 10:30, 2024-01-01 10:45, 2024-01-01 11:00
    0 */6 * * *       | 2024-01-01 05:00 | 2024-01-01 06:00, 2024-01-01 12:00, 2024-01-01 18:00, 2024-01-02 00:00
    0 0 */10 * *      | 2024-01-25 00:00 | 2024-01-31 00:00, 2024-02-01 00:00, 2024-02-11 00:00, 2024-02-21 00:00, 2024-03-01 00:00
    0 0 1 */3 *       | 2024-02-15 00:00 | 2024-04-01 00:00, 2024-07-01 00:00, 2024-10-01 00:00, 2025-01-01 00:00
    # Sun, Tue, Thu, Sat; 2024-01-01 is a Monday.
    0 0 * * */2       | 2024-01-01 00:00 | 2024-01-02 00:00, 2024-01-04 00:00, 2024-01-06 00:00, 2024-01-07 00:00, 2024-01-09 00:00
    # Ranges and lists, with steps; a/n means a-max/n.
    10-40/10 * * * *  | 2024-01-01 00:00 | 2024-01-01 00:10, 2024-01-01 00:20, 2024-01-01 00:30, 2024-01-01 00:40, 2024-01-01 01:10
    5/20 * * * *      | 2024-01-01 00:00 | 2024-01-01 00:05, 2024-01-01 00:25, 2024-01-01 00:45, 2024-01-01 01:05
    0 0 20/5 * *      | 2024-02-01 00:00 | 2024-02-20 00:00, 2024-02-25 00:00, 2024-03-20 00:00
    0 1-3,22 * * *    | 2024-01-01 02:30 | 2024-01-01 03:00, 2024-01-01 22:00, 2024-01-02 01:00
    # The 31st (and the 30th) skip the short months.
    0 0 31 * *        | 2024-01-31 00:00 | 2024-03-31 00:00, 2024-05-31 00:00, 2024-07-31 00:00, 2024-08-31 00:00, 2024-10-31 00:00
    0 0 30 * *        | 2024-01-30 00:00 | 2024-03-30 00:00, 2024-04-30 00:00
    # Leap days: 1900 and 2100 are not leap years, 2000 is.
    0 0 29 2 *        | 2023-01-01 00:00 | 2024-02-29 00:00, 2028-02-29 00:00
    0 0 29 2 *        | 2096-03-01 00:00 | 2104-02-29 00:00, 2108-02-29 00:00
    0 0 29 2 *        | 1896-03-01 00:00 | 1904-02-29 00:00
    0 0 29 2 *        | 1999-12-31 23:59 | 2000-02-29 00:00
    # Both day fields restricted: the 13th or any Friday.
    0 12 13 * 5       | 2024-09-01 00:00 | 2024-09-06 12:00, 2024-09-13 12:00, 2024-09-20 12:00, 2024-09-27 12:00, 2024-10-04 12:00, 2024-10-11 12:00, 2024-10-13 12:00, 2024-10-18 12:00
    # One of them `*`: both must match.
    0 12 * * 5        | 2024-09-01 00:00 | 2024-09-06 12:00, 2024-09-13 12:00, 2024-09-20 12:00
    0 12 13 * *       | 2024-09-01 00:00 | 2024-09-13 12:00, 2024-10-13 12:00
    # `*/5` starts with `*`, so the AND rule: a 13th that is a Sunday or a Friday.
    0 0 13 * */5      | 2024-09-01 00:00 | 2024-09-13 00:00, 2024-10-13 00:00, 2024-12-13 00:00, 2025-04-13 00:00, 2025-06-13 00:00
    # Feb 29 on a Sunday: 40 years from 2088 to 2128, past a 30-year horizon.
    0 0 29 2 */7      | 2090-01-01 00:00 | 2128-02-29 00:00
    # The OR rule makes a leap day or a Monday: every Monday of February.
    0 0 29 2 1        | 2025-01-01 00:00 | 2025-02-03 00:00, 2025-02-10 00:00, 2025-02-17 00:00, 2025-02-24 00:00, 2026-02-02 00:00
    # Sunday as 7, also ending a range.
    0 0 * * 7         | 2024-01-01 00:00 | 2024-01-07 00:00, 2024-01-14 00:00
    0 0 * * 5-7       | 2024-01-01 00:00 | 2024-01-05 00:00, 2024-01-06 00:00, 2024-01-07 00:00, 2024-01-12 00:00
    # Names; 2024-07-01 is a Monday.
    0 9 * jan,jul mon-fri | 2024-01-31 09:00 | 2024-07-01 09:00, 2024-07-02 09:00, 2024-07-03 09:00, 2024-07-04 09:00, 2024-07-05 09:00, 2024-07-08 09:00
    # Year rollover; a start on an occurrence, or just before one.
    * * * * *         | 2024-12-31 23:59    | 2025-01-01 00:00, 2025-01-01 00:01
    * * * * *         | 2024-12-31 23:59:59 | 2025-01-01 00:00
    59 23 31 12 *     | 2024-12-31 23:59    | 2025-12-31 23:59
    0 0 1 1 *         | 2024-12-31 23:59    | 2025-01-01 00:00, 2026-01-01 00:00
    # Macros; 2024-06-01 is a Saturday.
    @yearly           | 2024-06-01 00:00 | 2025-01-01 00:00
    @monthly          | 2024-06-01 00:00 | 2024-07-01 00:00
    @weekly           | 2024-06-01 00:00 | 2024-06-02 00:00, 2024-06-09 00:00
    @daily            | 2024-06-01 00:00 | 2024-06-02 00:00
    @hourly           | 2024-06-01 10:30 | 2024-06-01 11:00, 2024-06-01 12:00
    # @every: multiples of the period since the epoch. 2024-01-01 is a
    # multiple of 1h30m, so the first is the one after it.
    @every 1h30m      | 2024-01-01 00:00 | 2024-01-01 01:30, 2024-01-01 03:00, 2024-01-01 04:30
    @every 90s        | 2024-01-01 00:00 | 2024-01-01 00:01:30.000, 2024-01-01 00:03
    @every 2d         | 1970-01-02 12:00 | 1970-01-03 00:00, 1970-01-05 00:00
    @every 7m         | 1969-12-31 23:59 | 1970-01-01 00:00, 1970-01-01 00:07
    ";

    #[test]
    fn occurrences_follow_the_fields() {
        for row in rows(NEXT) {
            let [text, start, want] = row[..] else {
                panic!("bad row {row:?}")
            };
            let want: Vec<&str> = want.split(',').map(str::trim).collect();
            assert_eq!(nexts(text, start, want.len()), want, "{text} after {start}");
        }
    }

    /// expression | at | the last occurrence at or before.
    const LAST: &str = "
    */15 * * * *          | 2024-01-01 10:15    | 2024-01-01 10:15
    */15 * * * *          | 2024-01-01 10:15:30 | 2024-01-01 10:15
    */15 * * * *          | 2024-01-01 10:14:59 | 2024-01-01 10:00
    0 0 29 2 *            | 2104-02-28 00:00    | 2096-02-29 00:00
    0 0 29 2 *            | 1904-01-01 00:00    | 1896-02-29 00:00
    0 0 31 12 *           | 2024-06-01 00:00    | 2023-12-31 00:00
    0 0 31 * *            | 2024-05-30 00:00    | 2024-03-31 00:00
    0 12 13 * 5           | 2024-10-12 00:00    | 2024-10-11 12:00
    0 9 * jan,jul mon-fri | 2024-07-01 08:59    | 2024-01-31 09:00
    10-40/10 3 * * *      | 2024-01-01 02:00    | 2023-12-31 03:40
    * * * * *             | 2025-01-01 00:00:30 | 2025-01-01 00:00
    0 0 29 2 */7          | 2127-01-01 00:00    | 2088-02-29 00:00
    @every 1h30m          | 2024-01-01 00:00    | 2024-01-01 00:00
    @every 1h30m          | 2024-01-01 01:29:59 | 2024-01-01 00:00
    @every 7m             | 1969-12-31 23:59    | 1969-12-31 23:53
    ";

    #[test]
    fn the_last_occurrence_is_at_or_before() {
        for row in rows(LAST) {
            let [text, t, want] = row[..] else {
                panic!("bad row {row:?}")
            };
            let got = spec(text).last_at_or_before(at(t)).map(show);
            assert_eq!(got.as_deref(), Some(want), "{text} at {t}");
        }
    }

    #[test]
    fn equal_meanings_parse_equal() {
        let same: &[(&str, &str)] = &[
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 jan *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * sun"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
            ("@DAILY", "0 0 * * *"),
            ("0 0 * * 0", "0 0 * * 7"),
            ("0 0 * * 0-6", "0 0 * * *"),
            ("0 0 * * 1-7", "0 0 * * *"),
            ("0 9 * JAN,Jul MON-fri", "0 9 * 1,7 1-5"),
            ("0 9 * jan-3 mon-5", "0 9 * 1-3 1-5"),
            ("  0\t0   * *  *\n", "0 0 * * *"),
            ("*/20 * * * *", "0,20,40 * * * *"),
            ("0/20 * * * *", "0-59/20 * * * *"),
            ("@every 90s", "@every 1m30s"),
            ("@every 1H", "@every 60m"),
            ("@every 2d", "@every 48h"),
        ];
        for (a, b) in same {
            assert_eq!(spec(a), spec(b), "{a} vs {b}");
        }
        assert_eq!(
            spec("@every 366d"),
            Spec::Every {
                period_ms: 366 * 86_400_000
            }
        );
        assert_eq!(spec("@every 1s"), Spec::Every { period_ms: 1_000 });
        // The day rule comes from the text, not from what the sets hold.
        assert_ne!(spec("0 0 1-31 * 1"), spec("0 0 * * 1"));
        assert_ne!(spec("0 0 1 * */1"), spec("0 0 1 * 0-7"));
    }

    /// input | the whole error message.
    const BAD: &str = r#"
    # Out of range, per field.
    61 * * * *      | cron "61 * * * *": minute field "61": 61 is out of range 0-59
    * 24 * * *      | cron "* 24 * * *": hour field "24": 24 is out of range 0-23
    * * 0 * *       | cron "* * 0 * *": day-of-month field "0": 0 is out of range 1-31
    * * 1,32 * *    | cron "* * 1,32 * *": day-of-month field "1,32": 32 is out of range 1-31
    * * * 13 *      | cron "* * * 13 *": month field "13": 13 is out of range 1-12
    * * * 0 *       | cron "* * * 0 *": month field "0": 0 is out of range 1-12
    * * * * 8       | cron "* * * * 8": day-of-week field "8": 8 is out of range 0-7
    * * * * 1-9     | cron "* * * * 1-9": day-of-week field "1-9": 9 is out of range 0-7
    99999999999999999999 * * * * | cron "99999999999999999999 * * * *": minute field "99999999999999999999": 99999999999999999999 is out of range 0-59
    # Steps.
    */0 * * * *     | cron "*/0 * * * *": minute field "*/0": step 0 is out of range 1-59
    */60 * * * *    | cron "*/60 * * * *": minute field "*/60": step 60 is out of range 1-59
    * * * * */8     | cron "* * * * */8": day-of-week field "*/8": step 8 is out of range 1-7
    */ * * * *      | cron "*/ * * * *": minute field "*/": missing step after /
    */x * * * *     | cron "*/x * * * *": minute field "*/x": step "x" is not a number
    1/2/3 * * * *   | cron "1/2/3 * * * *": minute field "1/2/3": step "2/3" is not a number
    # Ranges and lists.
    5-1 * * * *     | cron "5-1 * * * *": minute field "5-1": range 5-1 runs backwards (5 > 1)
    * * * * fri-mon | cron "* * * * fri-mon": day-of-week field "fri-mon": range fri-mon runs backwards (5 > 1)
    5- * * * *      | cron "5- * * * *": minute field "5-": range "5-" needs a value at both ends
    -5 * * * *      | cron "-5 * * * *": minute field "-5": range "-5" needs a value at both ends
    /5 * * * *      | cron "/5 * * * *": minute field "/5": "/5" needs a value before the /
    1,,2 * * * *    | cron "1,,2 * * * *": minute field "1,,2": empty list element
    1, * * * *      | cron "1, * * * *": minute field "1,": empty list element
    # Garbage and names where they do not belong.
    a b c d e       | cron "a b c d e": minute field "a": "a" is not a number
    +5 * * * *      | cron "+5 * * * *": minute field "+5": "+5" is not a number
    *-5 * * * *     | cron "*-5 * * * *": minute field "*-5": "*" is not a number
    * * * foo *     | cron "* * * foo *": month field "foo": "foo" is not a number or a month name (jan-dec)
    * * * january * | cron "* * * january *": month field "january": "january" is not a number or a month name (jan-dec)
    * * * * funday  | cron "* * * * funday": day-of-week field "funday": "funday" is not a number or a weekday name (sun-sat)
    * * mon * *     | cron "* * mon * *": day-of-month field "mon": "mon" is not a number
    # Field counts.
    * * *           | cron "* * *": expected 5 fields (minute hour day-of-month month day-of-week), got 3
    * * * * * *     | cron "* * * * * *": expected 5 fields (minute hour day-of-month month day-of-week), got 6
    # Never occurs.
    0 0 30 2 *          | cron "0 0 30 2 *": never occurs: no date in any year has that day-of-month in those months (and that day-of-week)
    0 0 31 4 *          | cron "0 0 31 4 *": never occurs: no date in any year has that day-of-month in those months (and that day-of-week)
    0 0 31 2,4,6,9,11 * | cron "0 0 31 2,4,6,9,11 *": never occurs: no date in any year has that day-of-month in those months (and that day-of-week)
    # Macros.
    @reboot         | "@reboot": @reboot is not supported: schedules follow the clock, and there is no daemon start to run at
    @fortnightly    | "@fortnightly": unknown macro "@fortnightly": expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>
    @               | "@": unknown macro "@": expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>
    @daily 5        | "@daily 5": @daily takes nothing after it
    # Durations.
    @every          | "@every": @every needs a duration, like 30s, 5m or 1h30m (units d, h, m, s)
    @every 1h 30m   | "@every 1h 30m": @every takes one duration without spaces, like 1h30m
    @every 0s       | "@every 0s": the period must be at least 1s
    @every 0h0m     | "@every 0h0m": the period must be at least 1s
    @every 500ms    | "@every 500ms": "ms" is not a unit: the period is whole seconds, at least 1s (units d, h, m, s)
    @every 10x      | "@every 10x": unknown unit "x" (units d, h, m, s)
    @every 10       | "@every 10": 10 has no unit (units d, h, m, s)
    @every 1h30     | "@every 1h30": 30 has no unit (units d, h, m, s)
    @every 1.5h     | "@every 1.5h": amounts must be whole numbers (write 90m, not 1.5h)
    @every h        | "@every h": expected a number at "h"
    @every -5m      | "@every -5m": expected a number at "-5m"
    @every 30m1h    | "@every 30m1h": units must come largest first, each once (like 1d2h3m4s)
    @every 1h1h     | "@every 1h1h": units must come largest first, each once (like 1d2h3m4s)
    @every 367d     | "@every 367d": the period must be at most 366d (31622400s)
    @every 366d1s   | "@every 366d1s": the period must be at most 366d (31622400s)
    @every 999999999999999999d   | "@every 999999999999999999d": the period must be at most 366d (31622400s)
    @every 99999999999999999999s | "@every 99999999999999999999s": the period must be at most 366d (31622400s)
    "#;

    #[test]
    fn bad_input_says_which_field_and_why() {
        let fields = "expected 5 fields (minute hour day-of-month month day-of-week)";
        let blank = [
            ("", format!(r#"cron "": {fields}, got 0"#)),
            ("  \t", format!(r#"cron "": {fields}, got 0"#)),
        ];
        let table = rows(BAD).map(|row| (row[0], row[1].to_string()));
        for (text, want) in table.chain(blank) {
            match Spec::parse(text) {
                Ok(s) => panic!("{text:?} parsed as {s:?}"),
                Err(e) => assert_eq!(e.msg, want, "{text:?}"),
            }
        }
        // A long text is cut in the message, and odd characters escaped.
        let long = format!("{} * * * *", "1,".repeat(500));
        assert!(Spec::parse(&long).unwrap_err().msg.len() < 250);
        let odd = Spec::parse("\u{0} * * * *").unwrap_err().msg;
        assert!(odd.starts_with(r#"cron "\0 * * * *""#), "{odd}");
    }

    #[test]
    fn extreme_times_never_panic() {
        let specs = [
            spec("* * * * *"),
            spec("0 0 29 2 *"),
            spec("0 0 29 2 */7"),
            spec("0 12 13 * 5"),
            spec("@every 1s"),
            spec("@every 366d"),
            // Built by hand: nothing can match, and no division by zero.
            Spec::Every { period_ms: 0 },
            Spec::Every { period_ms: -5 },
            Spec::Cron {
                minutes: 0,
                hours: 0,
                days: 0,
                months: 0,
                weekdays: 0,
                days_or: false,
            },
            Spec::Cron {
                minutes: u64::MAX,
                hours: u32::MAX,
                days: u32::MAX,
                months: u16::MAX,
                weekdays: u8::MAX,
                days_or: true,
            },
        ];
        let times = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
        for s in &specs {
            for &t in &times {
                if let Some(n) = s.next_after(t) {
                    assert!(n > t && matches(s, n), "{s:?} after {t}: {n}");
                }
                if let Some(l) = s.last_at_or_before(t) {
                    assert!(l <= t && matches(s, l), "{s:?} at {t}: {l}");
                }
            }
        }
        let minute = spec("* * * * *");
        assert_eq!(minute.next_after(i64::MAX), None);
        assert_eq!(minute.last_at_or_before(i64::MIN), None);
        assert_eq!(
            minute.next_after(i64::MIN),
            Some(i64::MIN - i64::MIN % MINUTE_MS)
        );
        assert_eq!(
            minute.last_at_or_before(i64::MAX),
            Some(i64::MAX - i64::MAX % MINUTE_MS)
        );
        let second = spec("@every 1s");
        assert_eq!(second.next_after(i64::MAX), None);
        assert_eq!(second.last_at_or_before(i64::MIN), None);
        assert_eq!(second.next_after(-1001), Some(-1000));
        assert_eq!(second.next_after(-1000), Some(0));
        assert_eq!(second.last_at_or_before(-1), Some(-1000));
    }

    #[test]
    fn next_is_the_first_match_after_any_start() {
        let texts = [
            "* * * * *",
            "*/15 * * * *",
            "0 */6 * * *",
            "0 0 */10 * *",
            "0 0 1 */3 *",
            "0 0 * * */2",
            "0 0 31 * *",
            "0 0 29 2 *",
            "0 0 29 2 */7",
            "0 12 13 * 5",
            "0 9 * jan,jul mon-fri",
            "10-40/10 3,17 * * *",
            "59 23 31 12 *",
            "30 4 1,15 * 0",
            "0 0 1-7 * 1",
            "0 0 */5 * 1-5",
            "@every 1h30m",
            "@every 7m13s",
        ];
        // Starts from 1890 to 2210 by a fixed pseudo-random walk, plus the
        // edges where calendars go wrong.
        let (lo, hi) = (at("1890-01-01 00:00"), at("2210-01-01 00:00"));
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut starts: Vec<i64> = (0..400)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                lo + ((seed >> 11) % (hi - lo) as u64) as i64
            })
            .collect();
        for edge in [
            "1900-02-28 23:59",
            "2000-02-28 23:59",
            "2000-02-29 23:59",
            "2100-02-28 23:59",
            "2024-02-29 00:00",
            "2024-12-31 23:59",
            "1969-12-31 23:59",
            "1970-01-01 00:00",
        ] {
            starts.extend([at(edge) - 1, at(edge), at(edge) + 1]);
        }
        for text in texts {
            let s = spec(text);
            for &t in &starts {
                let n = s
                    .next_after(t)
                    .unwrap_or_else(|| panic!("{text} after {}", show(t)));
                assert!(
                    n > t && matches(&s, n),
                    "{text} after {}: {}",
                    show(t),
                    show(n)
                );
                if n - t < 3 * 86_400_000 {
                    // No match skipped: brute force over the minutes (or, for
                    // @every, seconds) strictly between.
                    let unit = if matches!(s, Spec::Every { .. }) {
                        1_000
                    } else {
                        MINUTE_MS
                    };
                    let mut m = (t.div_euclid(unit) + 1) * unit;
                    while m < n {
                        assert!(
                            !matches(&s, m),
                            "{text} after {}: skipped {}",
                            show(t),
                            show(m)
                        );
                        m += unit;
                    }
                }
                // The last one at or before t is the one before n.
                let l = s.last_at_or_before(t).unwrap();
                assert!(
                    l <= t && matches(&s, l),
                    "{text} at {}: {}",
                    show(t),
                    show(l)
                );
                assert_eq!(s.next_after(l), Some(n), "{text} at {}", show(t));
                assert_eq!(s.last_at_or_before(n), Some(n));
                assert_eq!(s.last_at_or_before(n - 1), Some(l));
            }
        }
    }
}
