//! The `items` argument of `task_complete_batch` and `task_fail_batch`,
//! read in one pass over the text with serde visitors: no JSON tree is
//! built, and text without escapes is borrowed from the argument. A result
//! is kept as the JSON text it was written as, as `task_complete` stores
//! it.

use crate::error::{Error, Result};
use crate::queue::model::MAX_BATCH;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// One item of a batch: `{"id": …, "attempt": n, "result": …}` for
/// completions, `{"id": …, "attempt": n, "error": "…"}` for failures.
/// Text is borrowed from the call's argument where it has no escapes.
pub struct Item<'a> {
    pub id: Cow<'a, str>,
    pub attempt: Option<i64>,
    /// The result's JSON text, as written.
    pub result: Option<&'a str>,
    pub error: Option<Cow<'a, str>>,
}

/// Reads the items in one pass over the text, without building a JSON
/// tree. Syntax errors stop the parse; an item of the wrong shape is
/// recorded and reported after it, by position.
pub fn items(json: &str, fail: bool) -> Result<Vec<Item<'_>>> {
    let list = match serde_json::from_str::<Top<'_>>(json)
        .map_err(|e| Error::new(format!("items are not valid JSON: {e}")))?
    {
        Top::Items(list) => list,
        Top::NotArray => return Err(Error::new("items must be a JSON array of objects")),
        Top::TooMany(count) => {
            return Err(Error::new(format!(
                "at most {MAX_ITEMS} items per call, got {count}"
            )));
        }
    };
    let allowed: &[&str] = if fail {
        &["id", "attempt", "error"]
    } else {
        &["id", "attempt", "result"]
    };
    list.into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let at = |msg: String| Error::new(format!("item {i}: {msg}"));
            let Some(raw) = raw else {
                return Err(at("must be an object".into()));
            };
            // Of several unknown keys, the least in sorted order is named,
            // whatever order they were written in.
            let misplaced = match (fail, raw.result.is_some(), raw.error.is_some()) {
                (true, true, _) => Some(Cow::Borrowed("result")),
                (false, _, true) => Some(Cow::Borrowed("error")),
                _ => None,
            };
            if let Some(bad) = [raw.unknown, misplaced].into_iter().flatten().min() {
                return Err(at(format!(
                    "unknown key \"{bad}\" (expected one of: {})",
                    allowed.join(", ")
                )));
            }
            let Some(Scalar::Str(id)) = raw.id else {
                return Err(at("\"id\" must be a task id string".into()));
            };
            let attempt = match raw.attempt {
                None | Some(Scalar::Null) => None,
                Some(Scalar::Int(n)) => Some(n),
                Some(_) => return Err(at("\"attempt\" must be a whole number".into())),
            };
            let result = raw.result.map(RawValue::get).filter(|r| *r != "null");
            let error = match raw.error {
                Some(Scalar::Str(e)) => Some(e),
                None if !fail => None,
                _ => return Err(at("\"error\" must be text".into())),
            };
            Ok(Item {
                id,
                attempt,
                result,
                error,
            })
        })
        .collect()
}

const MAX_ITEMS: usize = MAX_BATCH as usize;

/// The items argument as read.
enum Top<'a> {
    /// Each element (`None`: not an object).
    Items(Vec<Option<RawItem<'a>>>),
    NotArray,
    /// More than [`MAX_ITEMS`] elements: how many (none of them kept).
    TooMany(usize),
}

/// One element of the items list (`None`: not an object).
struct Obj<'a>(Option<RawItem<'a>>);

/// The keys of one item object as found, checked by `items`.
#[derive(Default)]
struct RawItem<'a> {
    id: Option<Scalar<'a>>,
    attempt: Option<Scalar<'a>>,
    result: Option<&'a RawValue>,
    error: Option<Scalar<'a>>,
    /// The least key that no batch verb knows.
    unknown: Option<Cow<'a, str>>,
}

/// A value an item's key may hold, as far as the checks need to know.
enum Scalar<'a> {
    Null,
    /// An integer that fits in 64 bits.
    Int(i64),
    Str(Cow<'a, str>),
    /// Anything else: a larger or fractional number, a boolean, a list, an
    /// object.
    Other,
}

/// An object key.
struct Key<'a>(Cow<'a, str>);

/// Skips the rest of a list or object whose value is refused.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> std::result::Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> std::result::Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Visitor methods that turn every JSON scalar into `$out`.
macro_rules! scalars_are {
    ($out:expr) => {
        fn visit_bool<E>(self, _: bool) -> std::result::Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_i64<E>(self, _: i64) -> std::result::Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_u64<E>(self, _: u64) -> std::result::Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_f64<E>(self, _: f64) -> std::result::Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_str<E>(self, _: &str) -> std::result::Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
            Ok($out)
        }
    };
}

struct TopVisitor;
impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of objects")
    }
    scalars_are!(Top::NotArray);
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Top<'de>, A::Error> {
        drain_map(map).map(|()| Top::NotArray)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Top<'de>, A::Error> {
        let mut list = Vec::new();
        while let Some(Obj(item)) = seq.next_element::<Obj<'de>>()? {
            list.push(item);
            if list.len() > MAX_ITEMS {
                // Count the rest for the message; keep none of it.
                let mut count = list.len();
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    count += 1;
                }
                return Ok(Top::TooMany(count));
            }
        }
        Ok(Top::Items(list))
    }
}

struct ObjVisitor;
impl<'de> Visitor<'de> for ObjVisitor {
    type Value = Obj<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object")
    }
    scalars_are!(Obj(None));
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Obj<'de>, A::Error> {
        drain_seq(seq).map(|()| Obj(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Obj<'de>, A::Error> {
        // A repeated key keeps its last value, as in a JSON object.
        let mut it = RawItem::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                "id" => it.id = Some(map.next_value()?),
                "attempt" => it.attempt = Some(map.next_value()?),
                "result" => it.result = Some(map.next_value()?),
                "error" => it.error = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    if it.unknown.as_ref().is_none_or(|u| key < *u) {
                        it.unknown = Some(key);
                    }
                }
            }
        }
        Ok(Obj(Some(it)))
    }
}

struct ScalarVisitor;
impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a value")
    }
    fn visit_unit<E>(self) -> std::result::Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_i64<E>(self, n: i64) -> std::result::Result<Scalar<'de>, E> {
        Ok(Scalar::Int(n))
    }
    fn visit_u64<E>(self, n: u64) -> std::result::Result<Scalar<'de>, E> {
        Ok(i64::try_from(n).map_or(Scalar::Other, Scalar::Int))
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> std::result::Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> std::result::Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(s.to_string())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Scalar<'de>, A::Error> {
        drain_seq(seq).map(|()| Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Scalar<'de>, A::Error> {
        drain_map(map).map(|()| Scalar::Other)
    }
}

struct KeyVisitor;
impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> std::result::Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> std::result::Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(s.to_string())))
    }
}

macro_rules! deserialize_with {
    ($($ty:ident => $visitor:ident, $how:ident;)*) => {$(
        impl<'de> Deserialize<'de> for $ty<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                d.$how($visitor)
            }
        }
    )*};
}

deserialize_with! {
    Top => TopVisitor, deserialize_any;
    Obj => ObjVisitor, deserialize_any;
    Scalar => ScalarVisitor, deserialize_any;
    Key => KeyVisitor, deserialize_str;
}
