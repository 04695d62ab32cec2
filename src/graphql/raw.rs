//! A JSON value read where it lies in a read statement's text, for the encoder
//! ([`super::encode`]) to write an object's selected members straight from the statement's
//! document into the response, with no tree of values built and dropped in between.
//!
//! The text comes from SQLite's `json_object` or PostgreSQL's `jsonb_build_object` (whose text
//! has a space after `:` and `,`, and its members in its own order): this module finds the
//! bounds of a value, the members of an object and the elements of an array, and writes a
//! leaf in its model type through the same rule that [`crate::sql::read::normalize`] applies
//! to a tree ([`crate::sql::read::scalar`]: SQLite's 0/1 Booleans, integral Floats, `Json`
//! held as text), with serde_json's own parser and writer for every leaf it does not copy, so
//! the bytes are those of the general path (decode into a tree, then encode). Malformed text
//! is a `None`, never a panic; only what the encoder visits is read, so a fault in a member no
//! field selects goes unseen (the database's own JSON functions wrote the text), and one in a
//! member read nulls that position with an internal error, where the general path fails the
//! whole root field. The scanner does not recurse; the encoder descends as deep as the
//! selection, which the guard bounds.

use std::borrow::Cow;

use serde_json::Value as Json;

use super::encode::write_json;

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end (one past the closing quote) of the string whose opening quote is at `i`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// The end of the value that starts at `i` (no whitespace before it). Containers are matched
/// by depth with strings skipped; what lies between is checked when it is read.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// `s` without the whitespace around it.
pub fn trim(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// Whether `s` (trimmed) is JSON's `null`.
pub fn is_null(s: &str) -> bool {
    s == "null"
}

/// The items of the container `s` (`open` … `close`): each a value, or (objects) a key and a
/// value; `None` when the text is not such a container.
fn items<'s>(
    s: &'s str,
    open: u8,
    close: u8,
    keyed: bool,
    mut each: impl FnMut(Option<&'s str>, &'s str),
) -> Option<()> {
    let b = s.as_bytes();
    if b.first() != Some(&open) || b.last() != Some(&close) {
        return None;
    }
    let mut i = skip_ws(b, 1);
    if i == b.len() - 1 {
        return Some(());
    }
    loop {
        let key = if keyed {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let end = string_end(b, i)?;
            let k = &s[i..end];
            i = skip_ws(b, end);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
            Some(k)
        } else {
            None
        };
        let end = value_end(b, i)?;
        each(key, &s[i..end]);
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(c) if *c == close && i == b.len() - 1 => return Some(()),
            _ => return None,
        }
    }
}

/// Up to this many members, an object's are looked up one after the other; more (a wide type),
/// and they are sorted by key once for a binary search per field.
const SHORT: usize = 8;

/// The members of the object `s`, keys unquoted (and unescaped where they hold an escape): in
/// the text's order, or sorted by key (stably) when there are more than [`SHORT`], for
/// [`member`]; `None` when `s` is not an object.
pub fn members<'s>(s: &'s str, out: &mut Vec<(Cow<'s, str>, &'s str)>) -> Option<()> {
    let mut bad = false;
    items(s, b'{', b'}', true, |k, v| {
        let Some(k) = k else { return };
        match unquote(k) {
            Some(k) => out.push((k, v)),
            None => bad = true,
        }
    })?;
    if out.len() > SHORT {
        out.sort_by(|a, b| a.0.cmp(&b.0));
    }
    (!bad).then_some(())
}

/// The elements of the array `s`; `None` when `s` is not an array.
pub fn elements<'s>(s: &'s str, out: &mut Vec<&'s str>) -> Option<()> {
    items(s, b'[', b']', false, |_, v| out.push(v))
}

/// The value of member `key` of the members `m`: the last one of that key, as a map of them
/// would hold.
pub fn member<'s>(m: &[(Cow<'s, str>, &'s str)], key: &str) -> Option<&'s str> {
    if m.len() <= SHORT {
        return m.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v);
    }
    // Sorted stably: the last of the members of that key is the last before the greater ones.
    let end = m.partition_point(|(k, _)| k.as_ref() <= key);
    m[..end].last().filter(|(k, _)| k == key).map(|(_, v)| *v)
}

/// The text of the quoted string `s`; borrowed when it holds no escape.
fn unquote(s: &str) -> Option<Cow<'_, str>> {
    let inner = s.get(1..s.len().checked_sub(1)?)?;
    if plain(inner) {
        Some(Cow::Borrowed(inner))
    } else {
        serde_json::from_str::<String>(s).ok().map(Cow::Owned)
    }
}

/// A string's text that serde_json writes back unchanged: no escape, no control character.
fn plain(inner: &str) -> bool {
    !inner.bytes().any(|c| c == b'\\' || c < 0x20)
}

/// Write the leaf `s` as a value of the scalar or enum type named `ty`, in the model's types:
/// what [`crate::sql::read::scalar`], the one rule that undoes storage forms, makes of it, as
/// serde_json writes that. A string that rule keeps as it is, and that holds no escape, is
/// copied as it lies; anything else is parsed (a number or a Boolean without allocating) and
/// put through the rule. `None` when `s` is not JSON.
pub fn write_leaf(out: &mut Vec<u8>, s: &str, ty: &str) -> Option<()> {
    let kind = crate::model::Scalar::from_name(ty);
    let quoted = s.len() >= 2 && s.starts_with('"') && s.ends_with('"');
    if quoted && crate::sql::read::keeps_strings(kind) && plain(&s[1..s.len() - 1]) {
        out.extend_from_slice(s.as_bytes());
        return Some(());
    }
    let mut v: Json = serde_json::from_str(s).ok()?;
    crate::sql::read::scalar(kind, &mut v);
    write_json(out, &v);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_elements_of_both_databases_texts() {
        for text in [r#"{"a":1,"&b":[1,{"x":"]"}],"c":"q\"}"}"#, r#"{"a": 1, "&b": [1, {"x": "]"}], "c": "q\"}"}"#] {
            let mut m = Vec::new();
            members(text, &mut m).unwrap();
            let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_ref()).collect();
            assert_eq!(keys, ["a", "&b", "c"], "{text}");
            assert_eq!(member(&m, "c"), Some(r#""q\"}""#));
            let mut e = Vec::new();
            elements(member(&m, "&b").unwrap(), &mut e).unwrap();
            assert_eq!(e.len(), 2);
            assert_eq!(trim(e[1]).replace(' ', ""), r#"{"x":"]"}"#);
        }
        let mut m = Vec::new();
        members("{}", &mut m).unwrap();
        assert!(m.is_empty());
        let mut e = Vec::new();
        elements("[ ]", &mut e).unwrap();
        assert!(e.is_empty());
        // The last of a repeated key, as a map holds it.
        members(r#"{"a":1,"a":2}"#, &mut m).unwrap();
        assert_eq!(member(&m, "a"), Some("2"));
        // A wide object (sorted for a binary search), repeats and all.
        let keys: Vec<String> = (0..40).map(|i| format!("k{}", (i * 7) % 40)).collect();
        let text = format!(
            "{{{},\"k3\": \"again\"}}",
            keys.iter().enumerate().map(|(i, k)| format!("\"{k}\": {i}")).collect::<Vec<_>>().join(", ")
        );
        let mut m = Vec::new();
        members(&text, &mut m).unwrap();
        for (i, k) in keys.iter().enumerate() {
            let want = if k == "k3" { "\"again\"".to_string() } else { i.to_string() };
            assert_eq!(member(&m, k), Some(want.as_str()), "{k}");
        }
        assert_eq!(member(&m, "k40"), None);
        assert_eq!(member(&m, "a"), None);
        assert_eq!(member(&m, "zz"), None);
    }

    #[test]
    fn malformed_text_is_refused_not_a_panic() {
        for text in [
            "",
            "{",
            "}",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":1 \"b\":2}",
            "[1,",
            "[1]]",
            "{\"a\":\"x}",
            "[\"\\",
        ] {
            let mut m = Vec::new();
            let mut e = Vec::new();
            assert!(members(text, &mut m).is_none() || elements(text, &mut e).is_none(), "{text}");
            let mut out = Vec::new();
            let _ = write_leaf(&mut out, text, "String");
        }
    }

    #[test]
    fn leaves_are_written_in_their_model_types() {
        let w = |s: &str, ty: &str| {
            let mut out = Vec::new();
            write_leaf(&mut out, s, ty).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(w("1", "Boolean"), "true");
        assert_eq!(w("0", "Boolean"), "false");
        assert_eq!(w("true", "Boolean"), "true");
        assert_eq!(w("3", "Float"), "3.0");
        assert_eq!(w("-0.0", "Float"), "0.0");
        assert_eq!(w("2.50000000000000000", "Float"), "2.5");
        assert_eq!(w("12", "Int"), "12");
        assert_eq!(w(r#""a\u0041\n""#, "String"), r#""aA\n""#);
        assert_eq!(w(r#""é/x""#, "String"), r#""é/x""#);
        assert_eq!(w(r#""{\"b\": [1, 2]}""#, "Json"), r#"{"b":[1,2]}"#);
        assert_eq!(w(r#""not json""#, "Json"), r#""not json""#);
        assert_eq!(w("null", "Float"), "null");
    }
}
