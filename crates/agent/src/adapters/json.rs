//! Lenient field access on agent JSON lines: a missing or oddly typed field reads as
//! absent, never as an error, because the CLIs add and change fields between versions.

use serde_json::{Map, Value};

/// Display summaries are cut to this many characters.
pub(crate) const SUMMARY_CHARS: usize = 200;

/// How a stdout line parsed.
pub(crate) enum Line {
    /// Blank: nothing to report.
    Blank,
    /// A JSON object, with the line as seen (for `Unknown` events).
    Object(Map<String, Value>),
    /// Anything else: not JSON, or JSON that is not an object.
    Other,
}

/// Parses one output line. A trailing newline, a carriage return and a UTF-8 BOM
/// are ignored.
pub(crate) fn parse_line(line: &str) -> Line {
    let trimmed = line.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Line::Blank;
    }
    // serde_json bounds nesting depth (128), so hostile input cannot overflow the stack.
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(map)) => Line::Object(map),
        _ => Line::Other,
    }
}

/// The line without its line ending, for `Unknown { raw }`.
pub(crate) fn raw(line: &str) -> String {
    line.trim_end_matches(['\n', '\r']).to_owned()
}

pub(crate) fn str_field<'a>(v: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

pub(crate) fn obj_field<'a>(
    v: &'a Map<String, Value>,
    key: &str,
) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// A token count: a non-negative integer, or a float that is one (truncated);
/// anything else is 0.
pub(crate) fn count(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                // `as` saturates at u64::MAX for huge floats.
                .map_or(0, |f| f as u64)
        }),
        _ => 0,
    }
}

pub(crate) fn count_field(v: &Map<String, Value>, key: &str) -> u64 {
    count(v.get(key))
}

/// A small unsigned number (attempt counters, HTTP statuses).
pub(crate) fn small_field<T: TryFrom<u64>>(v: &Map<String, Value>, key: &str) -> Option<T> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| T::try_from(n).ok())
}

/// A USD amount: finite and non-negative, else absent.
pub(crate) fn cost_field(v: &Map<String, Value>, key: &str) -> Option<f64> {
    v.get(key)
        .and_then(Value::as_f64)
        .filter(|f| f.is_finite() && *f >= 0.0)
}

/// A value as display text: strings as they are, anything else as compact JSON.
pub(crate) fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `s` cut to `max` characters (on a char boundary), with `…` when cut, and with
/// line breaks folded so a summary stays on one dashboard line.
pub(crate) fn summarize(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push('…');
            return out;
        }
        out.push(if c == '\n' || c == '\r' { ' ' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_are_lenient() {
        assert_eq!(count(Some(&json!(5))), 5);
        assert_eq!(count(Some(&json!(5.9))), 5);
        assert_eq!(count(Some(&json!(-1))), 0);
        assert_eq!(count(Some(&json!("5"))), 0);
        assert_eq!(count(Some(&json!(1e300))), u64::MAX);
        assert_eq!(count(None), 0);
    }

    #[test]
    fn summarize_cuts_on_char_boundaries() {
        assert_eq!(summarize("héllo\nworld", 5), "héllo…");
        assert_eq!(summarize("a\nb", 10), "a b");
    }

    #[test]
    fn non_objects_are_other() {
        assert!(matches!(parse_line("42"), Line::Other));
        assert!(matches!(parse_line("not json"), Line::Other));
        assert!(matches!(parse_line("  \r\n"), Line::Blank));
        assert!(matches!(parse_line("\u{feff}{}\r\n"), Line::Object(_)));
        let deep = "[".repeat(100_000);
        assert!(matches!(parse_line(&deep), Line::Other));
    }
}
