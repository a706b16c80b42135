//! JSON as the queue stores and returns it: the check every stored
//! document passes, and a writer for the objects the verbs return (built
//! straight into one buffer: no tree, no `fmt`).

use crate::error::{Error, Result};

/// Deepest nesting accepted in stored JSON. SQLite's own JSON functions
/// refuse documents nested deeper than 1000 (fewer in older releases), and
/// a claim's result must stay readable with them.
pub const MAX_JSON_DEPTH: usize = 500;

/// Checks that `text` is one JSON value that SQLite's JSON functions can
/// read: well formed, nested at most [`MAX_JSON_DEPTH`] deep, and with no
/// escaped lone surrogate (`"\ud800"`), which strict parsers refuse.
pub fn check_json(what: &str, text: &str) -> Result<()> {
    let bad = |e: String| Error::new(format!("{what} is not valid JSON: {e}"));
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    let mut unicode_escape = false;
    for b in text.bytes() {
        match (in_str, esc, b) {
            (true, true, b) => {
                esc = false;
                unicode_escape |= b == b'u';
            }
            (true, false, b'\\') => esc = true,
            (true, false, b'"') => in_str = false,
            (true, false, _) => {}
            (false, _, b'"') => in_str = true,
            (false, _, b'[' | b'{') => {
                depth += 1;
                max = max.max(depth);
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if max > MAX_JSON_DEPTH {
        return Err(bad(format!(
            "nested {max} deep, more than the {MAX_JSON_DEPTH} allowed"
        )));
    }
    if unicode_escape {
        // Escapes are rare: decode fully to reject lone surrogates.
        serde_json::from_str::<serde_json::Value>(text).map_err(|e| bad(e.to_string()))?;
        return Ok(());
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| bad(e.to_string()))
}

/// Appends `s` as a JSON string literal (RFC 8259 escaping). Runs of bytes
/// that need no escape are copied whole.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    // Most text needs no escape: one branch-free pass finds out.
    let plain = s
        .bytes()
        .fold(true, |ok, b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if plain {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut from = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&s[from..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push_str(esc);
        }
        from = i + 1;
    }
    out.push_str(&s[from..]);
    out.push('"');
}

/// Appends `s` as a JSON string, or `null`.
pub fn push_opt_str(out: &mut String, s: Option<&str>) {
    match s {
        None => out.push_str("null"),
        Some(s) => push_str(out, s),
    }
}

/// Appends `v` in decimal, or `null`.
pub fn push_opt_int(out: &mut String, v: Option<i64>) {
    match v {
        Some(n) => push_int(out, n),
        None => out.push_str("null"),
    }
}

/// Appends `v` in decimal, without going through `fmt`.
pub fn push_int(out: &mut String, v: i64) {
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        // n % 10 < 10: the cast cannot truncate.
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push('-');
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[at..]).unwrap_or("0"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_strings_are_written_as_json() {
        for v in [0, 7, -7, 10, 1_700_000_000_123, i64::MAX, i64::MIN] {
            let mut out = String::new();
            push_int(&mut out, v);
            assert_eq!(out, v.to_string());
        }
        let mut out = String::new();
        push_str(&mut out, "a\"b\\c\nd\u{1}é\u{7f}");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\u{7f}\"");
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é\u{7f}");
    }

    #[test]
    fn json_checks_reject_garbage() {
        assert!(check_json("details", r#"{"a":[1,2]}"#).is_ok());
        assert!(check_json("details", "{").is_err());
        assert!(check_json("details", "NaN").is_err());
        assert!(check_json("details", "1 2").is_err());
        let deep = format!("{}{}", "[".repeat(501), "]".repeat(501));
        assert!(
            check_json("details", &deep)
                .unwrap_err()
                .msg
                .contains("nested 501 deep")
        );
        assert!(check_json("details", r#""\ud800""#).is_err());
    }
}
