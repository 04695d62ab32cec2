//! [`Query`] → ArcQL text that parses back to the same query.

use super::ast::*;

pub fn print(q: &Query) -> String {
    let mut out = String::new();
    match &q.filter {
        Some(e) => expr(&mut out, e),
        None => out.push('*'),
    }
    if !q.sort.is_empty() {
        out.push_str(" SORT ");
        for (i, k) in q.sort.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&k.path.dotted());
            out.push_str(if k.desc { " DESC" } else { " ASC" });
        }
    }
    out
}

fn nested(out: &mut String, e: &Expr) {
    if matches!(e, Expr::And(_) | Expr::Or(_)) {
        out.push('(');
        expr(out, e);
        out.push(')');
    } else {
        expr(out, e);
    }
}

fn expr(out: &mut String, e: &Expr) {
    match e {
        Expr::Or(xs) | Expr::And(xs) => {
            let sep = if matches!(e, Expr::Or(_)) { " OR " } else { " AND " };
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                nested(out, x);
            }
        }
        Expr::Not(x) => {
            out.push_str("NOT ");
            nested(out, x);
        }
        Expr::Compare { path, op, value: v } => {
            out.push_str(&path.dotted());
            out.push(' ');
            out.push_str(op.text());
            out.push(' ');
            value(out, &v.lit);
        }
        Expr::Range { path, lo, lo_inclusive, hi, hi_inclusive } => {
            out.push_str(&path.dotted());
            out.push_str(" IN ");
            out.push(if *lo_inclusive { '[' } else { '(' });
            value(out, &lo.lit);
            out.push_str(", ");
            value(out, &hi.lit);
            out.push(if *hi_inclusive { ']' } else { ')' });
        }
        Expr::In { path, values } => {
            out.push_str(&path.dotted());
            out.push_str(" IN (");
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                value(out, &v.lit);
            }
            if values.len() == 2 {
                out.push(',');
            }
            out.push(')');
        }
        Expr::Exist { path } => {
            out.push_str("EXIST ");
            out.push_str(&path.dotted());
        }
        Expr::Geo { lat, lon, radius_km, lat_field, lon_field, .. } => {
            out.push_str("geo(");
            out.push_str(&format!("{lat:?}, {lon:?}, {radius_km:?}, "));
            string(out, lat_field);
            out.push_str(", ");
            string(out, lon_field);
            out.push(')');
        }
    }
}

fn value(out: &mut String, l: &Literal) {
    match l {
        Literal::Str(s) => string(out, s),
        Literal::Int(i) => out.push_str(&i.to_string()),
        Literal::Float(f) => out.push_str(&format!("{f:?}")),
        Literal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Literal::Null => out.push_str("null"),
    }
}

fn string(out: &mut String, s: &str) {
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
}
