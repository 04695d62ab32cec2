//! Release compatibility: a new release of an app may only add (new types, new nullable
//! fields, new enum values, new references). Everything else would strand stored data.

use super::{Base, Field, Model};

/// Every change of `new` relative to `old` that a release may not make, in a stable order.
pub fn breaking_changes(old: &Model, new: &Model) -> Vec<String> {
    let mut out = Vec::new();
    for ot in &old.types {
        let Some((_, nt)) = new.type_by_name(&ot.name) else {
            if new.enums.iter().any(|e| e.name == ot.name) {
                out.push(format!("type {} became an enum", ot.name));
            } else {
                out.push(format!("type {} was removed", ot.name));
            }
            continue;
        };
        for of in &ot.fields {
            let Some((_, nf)) = nt.field(&of.name) else {
                out.push(format!("field {}.{} was removed", ot.name, of.name));
                continue;
            };
            let (was, is) = (shape(old, of), shape(new, nf));
            if was != is {
                out.push(format!("field {}.{} changed type from {was} to {is}", ot.name, of.name));
            }
            if of.unique != nf.unique {
                let what = if nf.unique { "gained" } else { "lost" };
                out.push(format!("field {}.{} {what} @unique", ot.name, of.name));
            }
        }
        for nf in &nt.fields {
            if ot.field(&nf.name).is_none() && nf.required {
                out.push(format!("new field {}.{} is non-null; new fields must be nullable", nt.name, nf.name));
            }
        }
    }
    for oe in &old.enums {
        let Some(ne) = new.enums.iter().find(|e| e.name == oe.name) else {
            if new.type_by_name(&oe.name).is_none() {
                out.push(format!("enum {} was removed", oe.name));
            } else {
                out.push(format!("enum {} became a type", oe.name));
            }
            continue;
        };
        for v in &oe.values {
            if !ne.values.contains(v) {
                out.push(format!("enum value {}.{v} was removed", oe.name));
            }
        }
    }
    out
}

/// A field's type as written (`[Book!]!`), with names resolved.
fn shape(model: &Model, f: &Field) -> String {
    let base = match &f.base {
        Base::Scalar(s) => s.name().to_string(),
        Base::Enum(e) => model.enums[*e].name.clone(),
        Base::Object(t) => model.types[*t].name.clone(),
    };
    let inner = if f.list { format!("[{base}{}]", if f.item_required { "!" } else { "" }) } else { base };
    format!("{inner}{}", if f.required { "!" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_sdl;

    fn changes(old: &str, new: &str) -> Vec<String> {
        breaking_changes(&parse_sdl(old).unwrap(), &parse_sdl(new).unwrap())
    }

    #[test]
    fn additions_are_compatible() {
        let old = "type A { x: Int  r: Rating } enum Rating { GOOD }";
        let new = "type A { x: Int  r: Rating  y: String  b: B  bs: [B!] } type B { z: Int! } enum Rating { GOOD BAD }";
        assert_eq!(changes(old, new), Vec::<String>::new());
    }

    #[test]
    fn everything_else_is_listed() {
        let old = "type A { x: Int  y: String!  z: [Int]  u: String @unique } type Gone { a: Int } enum E { P Q }";
        let new = "type A { x: String  y: String  z: [Int!]  u: String  n: Int! } enum E { P }";
        assert_eq!(
            changes(old, new),
            vec![
                "field A.x changed type from Int to String",
                "field A.y changed type from String! to String",
                "field A.z changed type from [Int] to [Int!]",
                "field A.u lost @unique",
                "new field A.n is non-null; new fields must be nullable",
                "type Gone was removed",
                "enum value E.Q was removed",
            ]
        );
    }
}
