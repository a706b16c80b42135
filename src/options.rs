//! The optional last argument of every verb: a JSON object of options.
//! Unknown keys and wrongly typed values are errors, so a typo such as
//! `{"prority": 5}` is reported instead of silently ignored.

use crate::error::{Error, Result};
use serde_json::{Map, Value as J};

pub struct Options {
    map: Map<String, J>,
}

impl Options {
    /// Parses `text` (NULL or an absent argument gives no options), allowing
    /// only the keys in `allowed`.
    pub fn parse(text: Option<&str>, allowed: &[&str]) -> Result<Options> {
        let Some(text) = text else {
            return Ok(Options { map: Map::new() });
        };
        let v: J = serde_json::from_str(text)
            .map_err(|e| Error::new(format!("options are not valid JSON: {e}")))?;
        let map = match v {
            J::Object(map) => map,
            other => {
                return Err(Error::new(format!(
                    "options must be a JSON object, got {}",
                    kind(&other)
                )));
            }
        };
        if let Some(bad) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Error::new(format!(
                "unknown option \"{bad}\" (expected one of: {})",
                allowed.join(", ")
            )));
        }
        Ok(Options { map })
    }

    /// An integer option. `null` counts as absent.
    pub fn int(&self, key: &str) -> Result<Option<i64>> {
        match self.map.get(key) {
            None | Some(J::Null) => Ok(None),
            Some(J::Number(n)) => whole(key, n).map(Some),
            Some(other) => Err(wrong_type(key, "a whole number", other)),
        }
    }

    /// A non-empty string option. `null` counts as absent.
    pub fn str(&self, key: &str) -> Result<Option<&str>> {
        match self.map.get(key) {
            None | Some(J::Null) => Ok(None),
            Some(J::String(s)) if s.is_empty() => {
                Err(Error::new(format!("option \"{key}\" must not be empty")))
            }
            Some(J::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(key, "a string", other)),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.map.get(key) {
            None | Some(J::Null) => Ok(None),
            Some(J::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(key, "true or false", other)),
        }
    }

    /// The raw JSON value of an option, for options with several forms.
    pub fn get(&self, key: &str) -> Option<&J> {
        match self.map.get(key) {
            None | Some(J::Null) => None,
            Some(v) => Some(v),
        }
    }
}

/// A whole real that is exactly the integer meant: below 2^53. Above, the
/// text it came from may already have been rounded when it was parsed.
pub fn exact_whole(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0).then_some(f as i64)
}

/// A JSON number as a 64-bit integer. Whole numbers written as reals (`2.0`,
/// `1e3`, as some JSON encoders do) are accepted when they are exact.
fn whole(key: &str, n: &serde_json::Number) -> Result<i64> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    let out_of_range = || {
        Error::new(format!(
            "option \"{key}\" is out of range for a 64-bit integer, got {n}"
        ))
    };
    if n.is_u64() {
        return Err(out_of_range());
    }
    match n.as_f64() {
        Some(f) if let Some(i) = exact_whole(f) => Ok(i),
        Some(f) if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_775e18 => {
            Err(Error::new(format!(
                "option \"{key}\" must be written as an integer (a real this large may be rounded), got {n}"
            )))
        }
        Some(f) if f.fract() == 0.0 => Err(out_of_range()),
        _ => Err(Error::new(format!(
            "option \"{key}\" must be a whole number, got {n}"
        ))),
    }
}

fn kind(v: &J) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Number(_) => "a number",
        J::String(_) => "a string",
        J::Array(_) => "an array",
        J::Object(_) => "an object",
    }
}

fn wrong_type(key: &str, want: &str, got: &J) -> Error {
    Error::new(format!(
        "option \"{key}\" must be {want}, got {}",
        kind(got)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_null_mean_no_options() {
        let o = Options::parse(None, &["queue"]).unwrap();
        assert_eq!(o.str("queue").unwrap(), None);
        let o = Options::parse(Some(r#"{"queue": null}"#), &["queue"]).unwrap();
        assert_eq!(o.str("queue").unwrap(), None);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Options::parse(Some(r#"{"prority": 5}"#), &["priority"])
            .err()
            .unwrap();
        assert!(e.msg.contains("unknown option \"prority\""), "{}", e.msg);
    }

    #[test]
    fn types_are_checked() {
        let o = Options::parse(
            Some(r#"{"priority": 1.5, "queue": 3}"#),
            &["priority", "queue"],
        )
        .unwrap();
        assert!(o.int("priority").is_err());
        assert!(o.str("queue").unwrap_err().msg.contains("must be a string"));
        assert!(Options::parse(Some("[1]"), &[]).is_err());
        assert!(Options::parse(Some("{"), &[]).is_err());
    }

    #[test]
    fn whole_reals_are_accepted() {
        let o =
            Options::parse(Some(r#"{"a": 2.0, "b": 1e3, "c": -0.0}"#), &["a", "b", "c"]).unwrap();
        assert_eq!(o.int("a").unwrap(), Some(2));
        assert_eq!(o.int("b").unwrap(), Some(1000));
        assert_eq!(o.int("c").unwrap(), Some(0));
    }

    #[test]
    fn huge_numbers_are_rejected_not_wrapped() {
        let o = Options::parse(Some(r#"{"priority": 1e300}"#), &["priority"]).unwrap();
        assert!(o.int("priority").unwrap_err().msg.contains("out of range"));
        let o = Options::parse(Some(r#"{"p": 18446744073709551616}"#), &["p"]).unwrap();
        assert!(o.int("p").unwrap_err().msg.contains("out of range"));
        let o = Options::parse(Some(r#"{"p": -9223372036854775809}"#), &["p"]).unwrap();
        assert!(o.int("p").unwrap_err().msg.contains("out of range"));
        let o =
            Options::parse(Some(r#"{"priority": 18446744073709551615}"#), &["priority"]).unwrap();
        assert!(o.int("priority").is_err());
    }
}
