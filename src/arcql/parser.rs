//! pest pairs → [`Query`]: one function per rule.

use pest::iterators::Pair;
use pest::Parser as _;
use pest_derive::Parser;

use super::ast::*;
use super::{line_col, ArcqlError, MAX_NESTING, MAX_QUERY_BYTES};

#[derive(Parser)]
#[grammar = "arcql/arcql.pest"]
struct Grammar;

type Result<T> = std::result::Result<T, ArcqlError>;

fn err(text: &str, pos: usize, message: impl Into<String>) -> ArcqlError {
    let (line, column) = line_col(text, pos);
    ArcqlError { line, column, message: message.into(), too_long: false }
}

fn span(p: &Pair<Rule>) -> Span {
    Span { start: p.as_span().start(), end: p.as_span().end() }
}

/// Parse an ArcQL query. Empty text (or only whitespace) means "everything", like `*`.
pub fn parse(text: &str) -> Result<Query> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(ArcqlError {
            too_long: true,
            ..err(text, 0, format!("the query is longer than {MAX_QUERY_BYTES} bytes"))
        });
    }
    prescan(text)?;
    let mut pairs = Grammar::parse(Rule::query, text).map_err(|e| syntax(text, e))?;
    let Some(root) = pairs.next() else {
        return Ok(Query::default());
    };
    let mut q = Query::default();
    for p in root.into_inner() {
        match p.as_rule() {
            Rule::condition => q.filter = Some(condition(text, p)?),
            Rule::sort => {
                for key in p.into_inner().filter(|k| k.as_rule() == Rule::sort_key) {
                    let mut parts = key.into_inner();
                    let Some(path_pair) = parts.next() else { continue };
                    let desc = !matches!(parts.next().map(|d| d.as_rule()), Some(Rule::kw_asc));
                    q.sort.push(SortKey { path: path(path_pair), desc });
                }
            }
            _ => {}
        }
    }
    Ok(q)
}

/// Refuse deep nesting before the recursive-descent grammar sees it. Both parentheses
/// (brackets) and `NOT` recurse: `NOT NOT ... a = 1` nests one level per `NOT`. A `NOT` applies
/// up to the next `AND`/`OR` of its own parenthesis level at most, so the `NOT`s counted for a
/// level are forgotten there and when the level closes.
fn prescan(text: &str) -> Result<()> {
    // NOTs pending per open parenthesis level (the outermost level first).
    let mut nots: Vec<usize> = vec![0];
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut word = String::new();
    let too_deep = |i: usize| err(text, i, format!("parentheses and NOT nest deeper than {MAX_NESTING} levels"));
    let depth = |nots: &[usize]| nots.len() - 1 + nots.iter().sum::<usize>();
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            if word.eq_ignore_ascii_case("not") {
                if let Some(n) = nots.last_mut() {
                    *n += 1;
                }
                if depth(&nots) > MAX_NESTING {
                    return Err(too_deep(i - word.len()));
                }
            } else if word.eq_ignore_ascii_case("and") || word.eq_ignore_ascii_case("or") {
                if let Some(n) = nots.last_mut() {
                    *n = 0;
                }
            }
            word.clear();
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' | '[' => {
                nots.push(0);
                if depth(&nots) > MAX_NESTING {
                    return Err(too_deep(i));
                }
            }
            ')' | ']' if nots.len() > 1 => {
                nots.pop();
            }
            _ => {}
        }
    }
    Ok(())
}

fn rule_name(r: &Rule) -> &'static str {
    match r {
        Rule::value | Rule::string | Rule::number | Rule::boolean | Rule::null => "a value",
        Rule::path | Rule::ident => "a field name",
        Rule::op => "an operator (= != < <= > >= ~ ^ * IN)",
        Rule::in_expr | Rule::kw_in => "IN",
        Rule::kw_and | Rule::kw_or => "AND or OR",
        Rule::sort | Rule::kw_sort => "SORT",
        Rule::kw_asc | Rule::kw_desc => "ASC or DESC",
        Rule::range | Rule::set | Rule::range_open => "a range or set",
        Rule::range_close => "']' or ')'",
        Rule::condition | Rule::conj | Rule::unary | Rule::primary | Rule::comparison => "a condition",
        Rule::kw_exist | Rule::exist => "EXIST",
        Rule::star => "'*'",
        Rule::EOI => "the end of the query",
        _ => "more input",
    }
}

fn syntax(text: &str, e: pest::error::Error<Rule>) -> ArcqlError {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<&str> = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => positives.iter().map(rule_name).collect(),
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    expected.sort_unstable();
    expected.dedup();
    let what = match expected.len() {
        0 => "unexpected input".to_string(),
        1 => format!("expected {}", expected[0]),
        _ => {
            let (last, rest) = expected.split_last().map(|(l, r)| (*l, r.join(", "))).unwrap_or(("", String::new()));
            format!("expected {rest} or {last}")
        }
    };
    let before = text[..pos.min(text.len())].trim_end();
    let prev: String =
        before.chars().rev().take_while(|c| !c.is_whitespace()).collect::<Vec<_>>().into_iter().rev().collect();
    let message = if prev.is_empty() {
        what
    } else {
        let shown: String = prev.chars().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        format!("{what} after '{shown}'")
    };
    err(text, pos, message)
}

fn condition(text: &str, p: Pair<Rule>) -> Result<Expr> {
    let mut parts = Vec::new();
    for c in p.into_inner().filter(|c| c.as_rule() == Rule::conj) {
        parts.push(conj(text, c)?);
    }
    Ok(if parts.len() == 1 { parts.remove(0) } else { Expr::Or(parts) })
}

fn conj(text: &str, p: Pair<Rule>) -> Result<Expr> {
    let mut parts = Vec::new();
    for u in p.into_inner().filter(|c| c.as_rule() == Rule::unary) {
        parts.push(unary(text, u)?);
    }
    Ok(if parts.len() == 1 { parts.remove(0) } else { Expr::And(parts) })
}

fn unary(text: &str, p: Pair<Rule>) -> Result<Expr> {
    let mut inner = p.into_inner();
    let Some(first) = inner.next() else {
        return Err(err(text, 0, "empty condition"));
    };
    match first.as_rule() {
        Rule::kw_not => match inner.next() {
            Some(u) => Ok(Expr::Not(Box::new(unary(text, u)?))),
            None => Err(err(text, first.as_span().end(), "expected a condition after NOT")),
        },
        Rule::primary => primary(text, first),
        _ => Err(err(text, first.as_span().start(), "expected a condition")),
    }
}

fn primary(text: &str, p: Pair<Rule>) -> Result<Expr> {
    let start = p.as_span().start();
    let Some(inner) = p.into_inner().next() else {
        return Err(err(text, start, "expected a condition"));
    };
    match inner.as_rule() {
        Rule::group => match inner.into_inner().next() {
            Some(c) => condition(text, c),
            None => Err(err(text, start, "empty parentheses")),
        },
        Rule::exist => match inner.into_inner().find(|x| x.as_rule() == Rule::path) {
            Some(pp) => Ok(Expr::Exist { path: path(pp) }),
            None => Err(err(text, start, "expected a field name after EXIST")),
        },
        Rule::geo => geo(text, inner),
        Rule::comparison => comparison(text, inner),
        _ => Err(err(text, start, "expected a condition")),
    }
}

fn path(p: Pair<Rule>) -> Path {
    Path { segments: p.as_str().split('.').map(str::to_string).collect(), span: span(&p) }
}

fn comparison(text: &str, p: Pair<Rule>) -> Result<Expr> {
    let start = p.as_span().start();
    let mut inner = p.into_inner();
    let (Some(path_pair), Some(next)) = (inner.next(), inner.next()) else {
        return Err(err(text, start, "expected a comparison"));
    };
    let path = path(path_pair);
    match next.as_rule() {
        Rule::op => {
            let op = match next.as_str() {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                "~" => Op::Words,
                "^" => Op::Prefix,
                _ => Op::Wildcard,
            };
            let Some(v) = inner.next() else {
                return Err(err(text, next.as_span().end(), format!("expected a value after '{}'", op.text())));
            };
            Ok(Expr::Compare { path, op, value: value(text, v)? })
        }
        Rule::in_expr => {
            let Some(body) = next.into_inner().find(|x| matches!(x.as_rule(), Rule::set | Rule::range)) else {
                return Err(err(text, start, "expected a range or set after IN"));
            };
            in_body(text, path, body)
        }
        _ => Err(err(text, start, "expected an operator")),
    }
}

fn in_body(text: &str, path: Path, body: Pair<Rule>) -> Result<Expr> {
    let is_range = body.as_rule() == Rule::range;
    let mut open_incl = false;
    let mut close_incl = false;
    let mut trailing = false;
    let mut values = Vec::new();
    for x in body.into_inner() {
        match x.as_rule() {
            Rule::range_open => open_incl = x.as_str() == "[",
            Rule::range_close => close_incl = x.as_str() == "]",
            Rule::trailing_comma => trailing = true,
            Rule::value => values.push(value(text, x)?),
            _ => {}
        }
    }
    // `(lo, hi)` with exactly two values is parsed as the exclusive range; the planner reads it
    // by the field's type (a set on enum, Boolean and ID fields, an error on strings). A
    // trailing comma, `('x', 'y',)`, always makes a set.
    if is_range || (values.len() == 2 && !trailing) {
        let mut it = values.into_iter();
        match (it.next(), it.next()) {
            (Some(lo), Some(hi)) => Ok(Expr::Range { path, lo, lo_inclusive: open_incl, hi, hi_inclusive: close_incl }),
            _ => Err(err(text, 0, "a range needs two values")),
        }
    } else {
        Ok(Expr::In { path, values })
    }
}

fn value(text: &str, p: Pair<Rule>) -> Result<Value> {
    let sp = span(&p);
    let Some(v) = p.into_inner().next() else {
        return Err(err(text, sp.start, "expected a value"));
    };
    let lit = match v.as_rule() {
        Rule::string => Literal::Str(unescape(v.into_inner().next().map(|s| s.as_str()).unwrap_or(""))),
        Rule::number => number(text, v.as_str(), sp.start)?,
        Rule::boolean => Literal::Bool(v.into_inner().next().map(|b| b.as_rule()) == Some(Rule::kw_true)),
        Rule::null => Literal::Null,
        _ => return Err(err(text, sp.start, "expected a value")),
    };
    Ok(Value { lit, span: sp })
}

fn number(text: &str, s: &str, pos: usize) -> Result<Literal> {
    if s.contains(['.', 'e', 'E']) {
        match s.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Literal::Float(f)),
            _ => Err(err(text, pos, format!("'{s}' is not a finite number"))),
        }
    } else {
        s.parse::<i64>()
            .map(Literal::Int)
            .map_err(|_| err(text, pos, format!("'{s}' does not fit in a 64-bit integer")))
    }
}

/// Backslash escapes: `\n`, `\t`, `\r`; any other escaped character stands for itself.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn geo(text: &str, p: Pair<Rule>) -> Result<Expr> {
    let sp = span(&p);
    let mut nums = Vec::new();
    let mut strs = Vec::new();
    for x in p.into_inner() {
        match x.as_rule() {
            Rule::number => match number(text, x.as_str(), x.as_span().start())? {
                Literal::Int(i) => nums.push(i as f64),
                Literal::Float(f) => nums.push(f),
                _ => {}
            },
            Rule::string => strs.push(unescape(x.into_inner().next().map(|s| s.as_str()).unwrap_or(""))),
            _ => {}
        }
    }
    match (nums.as_slice(), strs.as_slice()) {
        ([lat, lon, r], [lat_field, lon_field]) => Ok(Expr::Geo {
            lat: *lat,
            lon: *lon,
            radius_km: *r,
            lat_field: lat_field.clone(),
            lon_field: lon_field.clone(),
            span: sp,
        }),
        _ => Err(err(text, sp.start, "geo takes (lat, lon, radiusKm, 'latField', 'lonField')")),
    }
}
