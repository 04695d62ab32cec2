//! Generated objects and selections through `get` and `find`: the encoder writes each object
//! from its read statement's JSON text (`graphql::raw`, no tree of it built), and every answer
//! must be byte for byte the general path's (the document decoded into JSON, then encoded),
//! which the differential of `tests/common` runs for every query here. The values are the ones
//! where the two could part: strings with escapes, control characters and non-ASCII, Floats
//! integral, negative zero and of every magnitude, SQLite's 0/1 Booleans, Json held as text,
//! Longs past 2^53, nested objects and lists, aliases, repeated fields and `__typename`. The
//! values read back are also checked against what was written (an in-memory model), so the
//! two paths cannot agree on a wrong answer. Runs on SQLite and, under
//! `ARCBASE_TEST_BACKEND=postgres`, on PostgreSQL, whose `jsonb` text has its own spacing and
//! member order.

#![allow(clippy::unwrap_used)]

mod common;
use common::rng::Rng;
use common::*;
use serde_json::{json, Map, Value};

const SCHEMA: &str = r#"
type Thing {
  n: Int
  big: Long
  data: Json
  when: DateTime
  flag: Boolean
  ratio: Float
  kind: Kind
  label: String
  flags: [Boolean]
  ratios: [Float]
  labels: [String]
  blobs: [Json]
  part: Part
  parts: [Part]
}
type Part {
  name: String
  lit: Boolean
  weight: Float
  data: Json
}
enum Kind { A B }
"#;

fn text(rng: &mut Rng) -> String {
    const PIECES: [&str; 14] =
        ["a", "Zz", "\"", "\\", "\n", "\t", "\u{1}", "\u{1f}", "é", "😀", "/", " ", "\u{7f}", "\u{2028}"];
    (0..rng.below(6)).map(|_| rng.pick(&PIECES)).collect()
}

fn float(rng: &mut Rng) -> f64 {
    match rng.below(3) {
        0 => rng.pick(&[0.0, -0.0, 1.0, 3.0, -7.0, 2.5, 0.1, 1e300, -1e-300, 1e21, 123_456_789_012_345_680.0]),
        1 => (rng.below(2000) as f64 - 1000.0) / 8.0,
        _ => loop {
            let x = f64::from_bits(rng.next());
            if x.is_finite() {
                break x;
            }
        },
    }
}

fn json_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 2 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.below(1 << 40) as i64 - (1 << 39)),
        3 => json!((rng.below(1000) as f64) / 4.0),
        4 => json!(text(rng)),
        5 => Value::Array((0..rng.below(4)).map(|_| json_value(rng, depth + 1)).collect()),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.below(4) {
                m.insert(text(rng), json_value(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

/// Sometimes absent, sometimes null, else `make`.
fn maybe(rng: &mut Rng, o: &mut Map<String, Value>, key: &str, make: impl FnOnce(&mut Rng) -> Value) {
    match rng.below(5) {
        0 => {}
        1 => {
            o.insert(key.into(), Value::Null);
        }
        _ => {
            o.insert(key.into(), make(rng));
        }
    }
}

fn part(rng: &mut Rng) -> Value {
    let mut o = Map::new();
    maybe(rng, &mut o, "name", |r| json!(text(r)));
    maybe(rng, &mut o, "lit", |r| json!(r.below(2) == 0));
    maybe(rng, &mut o, "weight", |r| json!(float(r)));
    maybe(rng, &mut o, "data", |r| json_value(r, 0));
    Value::Object(o)
}

fn thing(rng: &mut Rng) -> Value {
    let mut o = Map::new();
    maybe(rng, &mut o, "n", |r| json!(r.below(1 << 31) as i64 - (1 << 30)));
    maybe(rng, &mut o, "big", |r| json!(r.pick(&[i64::MAX, i64::MIN, (1 << 53) + 1, -(1 << 60), 0, 42])));
    maybe(rng, &mut o, "data", |r| json_value(r, 0));
    maybe(rng, &mut o, "when", |r| json!(r.pick(&["2026-12-07T10:11:12.345Z", "1999-01-01T00:00:00.000Z"])));
    maybe(rng, &mut o, "flag", |r| json!(r.below(2) == 0));
    maybe(rng, &mut o, "ratio", |r| json!(float(r)));
    maybe(rng, &mut o, "kind", |r| json!(r.pick(&["A", "B"])));
    maybe(rng, &mut o, "label", |r| json!(text(r)));
    let list = |r: &mut Rng, f: &dyn Fn(&mut Rng) -> Value| Value::Array((0..r.below(4)).map(|_| f(r)).collect());
    if rng.below(2) == 0 {
        o.insert("flags".into(), list(rng, &|r| json!(r.below(2) == 0)));
    }
    if rng.below(2) == 0 {
        o.insert("ratios".into(), list(rng, &|r| json!(float(r))));
    }
    if rng.below(2) == 0 {
        o.insert("labels".into(), list(rng, &|r| json!(text(r))));
    }
    if rng.below(2) == 0 {
        o.insert("blobs".into(), list(rng, &|r| json_value(r, 1)));
    }
    if rng.below(2) == 0 {
        o.insert("part".into(), part(rng));
    }
    if rng.below(2) == 0 {
        o.insert("parts".into(), list(rng, &part));
    }
    Value::Object(o)
}

/// A selection of `Part`, with aliases, repeats and `__typename` now and then.
fn part_selection(rng: &mut Rng) -> String {
    let mut s = String::from("name");
    for f in ["lit", "weight", "data", "__typename", "name"] {
        match rng.below(4) {
            0 => {}
            1 => s.push_str(&format!(" a_{}: {f}", f.trim_start_matches('_'))),
            _ => s.push_str(&format!(" {f}")),
        }
    }
    s
}

/// A selection of `Thing`: always its id (to find the object in the model), then fields drawn
/// from all of them.
fn thing_selection(rng: &mut Rng) -> String {
    let mut s = String::from("hypi { id }");
    for f in [
        "n",
        "big",
        "data",
        "when",
        "flag",
        "ratio",
        "kind",
        "label",
        "flags",
        "ratios",
        "labels",
        "blobs",
        "__typename",
        "label",
    ] {
        match rng.below(4) {
            0 => {}
            1 => s.push_str(&format!(" x{}_{}: {f}", rng.below(2), f.trim_start_matches('_'))),
            _ => s.push_str(&format!(" {f}")),
        }
    }
    if rng.below(3) > 0 {
        s.push_str(&format!(" part {{ {} }}", part_selection(rng)));
    }
    if rng.below(3) > 0 {
        s.push_str(&format!(" parts {{ {} }}", part_selection(rng)));
    }
    if rng.below(4) == 0 {
        s.push_str(&format!(" other: parts(first: 1) {{ {} }}", part_selection(rng)));
    }
    if rng.below(4) == 0 {
        s.push_str(" hypi { impl created }");
    }
    s
}

/// Check what a read gave for the fields the model knows exactly (strings, Booleans, Ints,
/// Longs, enums, Json) where the selection put them under their own names.
fn check_against_model(got: &Value, sent: &Value) {
    for f in ["label", "flag", "n", "big", "kind", "data", "labels", "flags"] {
        if let Some(v) = got.get(f) {
            let want = sent.get(f).cloned().unwrap_or(Value::Null);
            let want = if want.is_null() && matches!(f, "labels" | "flags") { json!([]) } else { want };
            assert_eq!(v, &want, "field {f} of {sent} read as {got}");
        }
    }
}

#[tokio::test]
async fn generated_objects_read_from_their_statements_text_match_the_general_path() {
    let t = TestApp::new(SCHEMA).await;
    let seed = 0x51ed_2701_9e37_79b9_u64;
    let mut rng = Rng(seed);
    let mut sent = std::collections::HashMap::new();
    for round in 0..4 {
        let batch: Vec<Value> = (0..12).map(|_| thing(&mut rng)).collect();
        let ids = t.upsert(json!({ "Thing": batch.clone() })).await;
        for (id, v) in ids.iter().zip(batch) {
            sent.insert(id.clone(), v);
        }
        for (i, id) in ids.iter().enumerate() {
            let sel = thing_selection(&mut rng);
            let q = format!("query($id: String!) {{ get(type: Thing, id: $id) {{ ... on Thing {{ {sel} }} }} }}");
            let data = t.ok(&q, json!({ "id": id })).await;
            check_against_model(&data["get"], &sent[id]);
            if i % 4 == 0 {
                let sel = thing_selection(&mut rng);
                let q = format!(
                    "query($after: String) {{ find(type: Thing, arcql: \"*\", first: 7, after: $after) {{ edges {{ cursor node {{ __typename ... on Thing {{ {sel} }} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
                );
                let mut after = Value::Null;
                loop {
                    let data = t.ok(&q, json!({ "after": after })).await;
                    let conn = &data["find"];
                    for e in conn["edges"].as_array().unwrap() {
                        let id = e["node"]["hypi"]["id"].as_str().unwrap();
                        assert_eq!(e["cursor"], id);
                        check_against_model(&e["node"], &sent[id]);
                    }
                    if conn["pageInfo"]["hasNextPage"] != json!(true) {
                        break;
                    }
                    after = conn["pageInfo"]["endCursor"].clone();
                }
            }
        }
        eprintln!("round {round} of seed {seed:#x}: {} objects", sent.len());
    }
}
