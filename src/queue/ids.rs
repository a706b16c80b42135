//! Task ids: UUIDs, stored in one canonical form (lowercase, hyphenated);
//! generated ones are UUIDv7, ordered by the clock of the call.

use crate::error::{Error, Result};
use crate::ffi::randomness;
use crate::queue::model::quoted;

/// Validates and canonicalises a task id (any UUID form → lowercase
/// hyphenated). `what` names the argument or option in the error.
pub fn parse_id(what: &str, id: &str) -> Result<String> {
    if is_canonical_id(id) {
        return Ok(id.to_string());
    }
    uuid::Uuid::try_parse(id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| Error::new(format!("{what} must be a UUID, got {}", quoted(id))))
}

/// Whether `id` is already a UUID in the form ids are stored in (lowercase
/// hex, hyphenated 8-4-4-4-12): the common case, checked without parsing.
fn is_canonical_id(id: &str) -> bool {
    let b = id.as_bytes();
    // Every byte a lowercase hex digit or a hyphen, and the four hyphens in
    // their places (no early exit: the loop stays branch-free).
    let (hex, hyphens) = b.iter().fold((0usize, 0usize), |(hex, hyphens), &c| {
        (
            hex + usize::from(c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
            hyphens + usize::from(c == b'-'),
        )
    });
    b.len() == 36 && hex == 32 && hyphens == 4 && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
}

/// A UUIDv7 for the clock `now` (ms). The random bits come from SQLite's
/// PRNG (seeded once by its VFS), not a system call per id.
pub fn new_id(now: i64) -> String {
    let mut random = [0u8; 10];
    randomness(&mut random);
    uuid_v7(now, &random)
}

fn uuid_v7(now: i64, random: &[u8; 10]) -> String {
    let ms = u64::try_from(now).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(ms, random)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_canonicalised() {
        let id = parse_id("id", "0193C1F2-7A5B-7C3D-8E9F-0123456789AB").unwrap();
        assert_eq!(id, "0193c1f2-7a5b-7c3d-8e9f-0123456789ab");
        let e = parse_id("parent_id", "not-a-uuid").unwrap_err();
        assert_eq!(e.msg, "parent_id must be a UUID, got 'not-a-uuid'");
        // The canonical form is taken as is; near misses go through the parser.
        let canonical = "0193c1f2-7a5b-7c3d-8e9f-0123456789ab";
        assert!(is_canonical_id(canonical));
        assert_eq!(parse_id("id", canonical).unwrap(), canonical);
        for near in [
            "0193c1f2-7a5b-7c3d-8e9f-0123456789aB",
            "0193c1f2a7a5b-7c3d-8e9f-0123456789ab",
            "{0193c1f2-7a5b-7c3d-8e9f-0123456789}",
            "0193c1f2-7a5b-7c3d-8e9f-0123456789ag",
        ] {
            assert!(!is_canonical_id(near), "{near}");
        }
        assert!(parse_id("id", "0193c1f2-7a5b-7c3d-8e9f-0123456789ag").is_err());
        assert!(parse_id("id", "{0193c1f2-7a5b-7c3d-8e9f-0123456789}").is_err());
    }

    #[test]
    fn generated_ids_follow_the_supplied_clock() {
        let a = uuid_v7(1_000, &[0xff; 10]);
        let b = uuid_v7(2_000, &[0; 10]);
        assert!(a < b, "v7 ids sort by time: {a} {b}");
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 7);
    }
}
