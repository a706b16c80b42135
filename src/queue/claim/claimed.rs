//! A claimed task as `task_claim` returns it, and its JSON.

use crate::queue::json::{check_json, push_int, push_opt_str, push_str};

/// The claimed task, as `task_claim` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: String,
    pub queue: String,
    pub kind: String,
    pub details: Option<String>,
    pub attempt: i64,
    pub max_attempts: i64,
    pub priority: i64,
    pub parent_id: Option<String>,
    pub run_at: i64,
    pub lease_until: i64,
    pub created_at: i64,
    /// Claimed again after an expired lease (not in the JSON; such tasks
    /// come first in a batch).
    pub reclaimed: bool,
}

impl Claimed {
    /// The JSON object `task_claim` returns. `details` is embedded as the
    /// JSON it is; if the stored text is not JSON (edited by hand), it is
    /// returned as a JSON string rather than producing invalid output.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    /// Appends [`Claimed::to_json`]'s object to `out`.
    pub fn write_json(&self, out: &mut String) {
        out.reserve(
            180 + self.id.len()
                + self.kind.len()
                + self.queue.len()
                + self.details.as_ref().map_or(4, String::len)
                + self.parent_id.as_ref().map_or(4, String::len),
        );
        out.push_str("{\"id\":");
        push_str(out, &self.id);
        out.push_str(",\"type\":");
        push_str(out, &self.kind);
        out.push_str(",\"queue\":");
        push_str(out, &self.queue);
        out.push_str(",\"details\":");
        match &self.details {
            None => out.push_str("null"),
            Some(d) if check_json("details", d).is_ok() => out.push_str(d),
            Some(d) => push_str(out, d),
        }
        out.push_str(",\"attempt\":");
        push_int(out, self.attempt);
        out.push_str(",\"max_attempts\":");
        push_int(out, self.max_attempts);
        out.push_str(",\"priority\":");
        push_int(out, self.priority);
        out.push_str(",\"parent_id\":");
        push_opt_str(out, self.parent_id.as_deref());
        out.push_str(",\"run_at\":");
        push_int(out, self.run_at);
        out.push_str(",\"lease_until\":");
        push_int(out, self.lease_until);
        out.push_str(",\"created_at\":");
        push_int(out, self.created_at);
        out.push('}');
    }
}

/// A JSON array of claimed tasks, as `task_claim_batch` returns it.
pub fn list_json(tasks: &[Claimed]) -> String {
    let mut out = String::with_capacity(2 + 300 * tasks.len());
    out.push('[');
    for (i, t) in tasks.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        t.write_json(&mut out);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_json_is_valid_even_with_bad_details() {
        let mut c = Claimed {
            id: "i".into(),
            queue: "q".into(),
            kind: "t\"x".into(),
            details: Some("{\"a\":1}".into()),
            attempt: 1,
            max_attempts: 3,
            priority: 0,
            parent_id: None,
            run_at: 0,
            lease_until: 5,
            created_at: 0,
            reclaimed: false,
        };
        let v: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(v["details"]["a"], 1);
        assert_eq!(v["type"], "t\"x");
        c.details = Some("{broken".into());
        let v: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(v["details"], "{broken");
        c.kind = "q\"\\\n\u{1}é✓".into();
        c.parent_id = Some("p".into());
        let v: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(v["type"], "q\"\\\n\u{1}é✓");
        assert_eq!(v["parent_id"], "p");
        let list: serde_json::Value = serde_json::from_str(&list_json(&[c.clone(), c])).unwrap();
        assert_eq!(list.as_array().map(Vec::len), Some(2));
        assert_eq!(list_json(&[]), "[]");
    }
}
