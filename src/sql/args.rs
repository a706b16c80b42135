//! Reading SQL values: the arguments of a function and the columns of a
//! `tasks` write, one vocabulary for both. Each value carries the name the
//! error calls it by (`type must be text, got an integer`, `column priority
//! must be an integer, got text`).

use crate::error::{Error, Result};
use crate::ffi::Value;
use std::fmt;

/// What a value is called in messages.
#[derive(Debug, Clone, Copy)]
pub enum Name<'a> {
    /// A function argument: `worker`.
    Arg(&'a str),
    /// A column of the `tasks` table: `column priority`.
    Column(&'a str),
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Arg(n) => f.write_str(n),
            Name::Column(n) => write!(f, "column {n}"),
        }
    }
}

/// A value and its name.
#[derive(Debug, Clone, Copy)]
pub struct Arg<'a> {
    pub value: Value<'a>,
    pub name: Name<'a>,
}

/// Argument `i` of `args` (NULL when absent, as an omitted optional one).
pub fn arg<'a>(args: &[Value<'a>], i: usize, name: &'a str) -> Arg<'a> {
    Arg {
        value: args.get(i).copied().unwrap_or(Value::Null),
        name: Name::Arg(name),
    }
}

impl<'a> Arg<'a> {
    fn wrong(self, want: &str) -> Error {
        Error::new(format!(
            "{} must be {want}, got {}",
            self.name,
            self.value.type_name()
        ))
    }

    /// Text, required.
    pub fn text(self) -> Result<&'a str> {
        match self.value {
            Value::Text(s) => Ok(s),
            _ => Err(self.wrong("text")),
        }
    }

    /// Text, required and not empty.
    pub fn nonempty(self) -> Result<&'a str> {
        let s = self.text()?;
        if s.is_empty() {
            return Err(Error::new(format!("{} must not be empty", self.name)));
        }
        Ok(s)
    }

    /// Text, or NULL for none (an argument that may be NULL says so).
    pub fn text_or_null(self) -> Result<Option<&'a str>> {
        match self.value {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s)),
            _ => Err(self.wrong("text or NULL")),
        }
    }

    /// Text if set: a NULL column is a column left out.
    pub fn opt_text(self) -> Result<Option<&'a str>> {
        match self.value {
            Value::Null => Ok(None),
            _ => self.text().map(Some),
        }
    }

    /// An integer, required; a real is refused.
    pub fn integer(self) -> Result<i64> {
        match self.value {
            Value::Integer(n) => Ok(n),
            _ => Err(self.wrong("an integer")),
        }
    }

    /// An integer, required; a real that is exactly a whole number is
    /// taken as one, as the options accept `2.0`.
    pub fn whole(self) -> Result<i64> {
        match self.value {
            Value::Integer(n) => Ok(n),
            Value::Real(r) if let Some(i) = exact_whole(r) => Ok(i),
            _ => Err(self.wrong("an integer")),
        }
    }

    /// An integer if set; a real that is exactly a whole number is taken
    /// as one, as the options accept `2.0`.
    pub fn opt_whole(self) -> Result<Option<i64>> {
        match self.value {
            Value::Null => Ok(None),
            Value::Integer(n) => Ok(Some(n)),
            Value::Real(r) if let Some(i) = exact_whole(r) => Ok(Some(i)),
            _ => Err(self.wrong("an integer")),
        }
    }
}

/// A whole real that is exactly the integer meant: below 2^53. Above, the
/// text it came from may already have been rounded when it was parsed.
pub fn exact_whole(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0).then_some(f as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_argument_or_the_column() {
        let args = [Value::Integer(3)];
        assert_eq!(
            arg(&args, 0, "type").text().unwrap_err().msg,
            "type must be text, got an integer"
        );
        assert_eq!(arg(&args, 1, "details").text_or_null().unwrap(), None);
        let col = Arg {
            value: Value::Text("x"),
            name: Name::Column("priority"),
        };
        assert_eq!(
            col.opt_whole().unwrap_err().msg,
            "column priority must be an integer, got text"
        );
        assert_eq!(
            arg(&[Value::Text("")], 0, "worker")
                .nonempty()
                .unwrap_err()
                .msg,
            "worker must not be empty"
        );
    }

    #[test]
    fn only_exact_whole_reals_are_integers() {
        assert_eq!(exact_whole(2.0), Some(2));
        assert_eq!(exact_whole(-0.0), Some(0));
        assert_eq!(exact_whole(2.5), None);
        assert_eq!(exact_whole(9_007_199_254_740_992.0), None);
    }
}
