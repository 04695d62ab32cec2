//! The request guard: limits checked on the document before async-graphql validates or runs
//! it. Validation is synchronous CPU work that a timeout cannot interrupt, so every check
//! here is linear in the document's size.
//!
//! 1. [`scan`] (before parsing): token count and bracket nesting, so the parser never sees a
//!    document that could exhaust its stack or take long to parse.
//! 2. [`check`] (after parsing): aliases, root fields, directives per node, selection depth
//!    and the number of selections (fields, spreads, inline fragments) once every fragment
//!    is expanded. Fragment costs
//!    are memoized, so a document of fragments each spreading the next ten times is counted
//!    in time linear in its size and rejected, and fragment cycles are found.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, FragmentDefinition, OperationType, Selection, SelectionSet};
use async_graphql::{Name, Positioned};

use crate::config::Limits;
use crate::error::{ApiError, ApiResult};

/// Count tokens and the deepest bracket nesting without parsing.
pub fn scan(query: &str, limits: &Limits) -> ApiResult<()> {
    let b = query.as_bytes();
    let mut i = 0;
    let mut tokens = 0usize;
    let mut depth = 0usize;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            0xEF if b[i..].starts_with(&[0xEF, 0xBB, 0xBF]) => i += 3,
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' => {
                tokens += 1;
                if b[i..].starts_with(b"\"\"\"") {
                    i += 3;
                    while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                        i += if b[i..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                    }
                    i += 3;
                } else {
                    i += 1;
                    while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
            }
            b'{' | b'(' | b'[' => {
                tokens += 1;
                depth += 1;
                if depth > limits.nesting {
                    return Err(ApiError::limit(format!(
                        "the document nests brackets deeper than {} levels",
                        limits.nesting
                    )));
                }
                i += 1;
            }
            b'}' | b')' | b']' => {
                tokens += 1;
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'.' if b[i..].starts_with(b"...") => {
                tokens += 1;
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' => {
                tokens += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.' | b'+' | b'-')) {
                    i += 1;
                }
            }
            _ => {
                tokens += 1;
                i += 1;
            }
        }
        if tokens > limits.tokens {
            return Err(ApiError::limit(format!("the document has more than {} tokens", limits.tokens)));
        }
    }
    Ok(())
}

/// The deepest nesting of `[`/`{` in JSON text, outside strings, without parsing it. Linear
/// and iterative: it runs before any JSON parser so none of them recurses past the limit.
/// Malformed text is measured all the same; the parser reports it afterwards.
pub fn json_nesting(text: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Variables nest at most `limits.nesting` levels (the variables object itself is one), the
/// same bound that [`scan`] puts on literals in the document.
pub fn check_variables(vars: &async_graphql::Variables, limits: &Limits) -> ApiResult<()> {
    use async_graphql::Value as ConstValue;
    // Iterative, so a value built by other means than bounded JSON cannot overflow the stack.
    let mut stack: Vec<(&ConstValue, usize)> = vars.values().map(|v| (v, 2)).collect();
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &ConstValue>> = match v {
            ConstValue::List(items) => Box::new(items.iter()),
            ConstValue::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        if depth > limits.nesting {
            return Err(ApiError::limit(format!("the variables nest deeper than {} levels", limits.nesting)));
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    Ok(())
}

/// Facts about a selection set (a fragment's are computed once).
///
/// Introspection is measured apart from data: the standard introspection query that every
/// tool sends (GraphiQL, graphql-codegen, Apollo's tooling) nests `ofType` ten levels deep,
/// which says nothing about its cost, while `types { fields { type { fields ... } } }` fans out
/// by every type and field at each level. So under `__schema` / `__type` the depth has a
/// bound of its own and the nesting of the list-valued introspection fields (`types`,
/// `fields`, `args`, ...) is bounded too; the standard query nests three of them.
#[derive(Clone, Copy, Default)]
struct Cost {
    /// Selections (fields, spreads, inline fragments) after full expansion (saturating).
    fields: u64,
    /// Deepest field nesting, every field counted.
    depth: usize,
    /// Deepest nesting of fields with an introspection list's name, every field counted
    /// (what matters once the set turns out to be under `__schema` / `__type`).
    lists: usize,
    /// Deepest field nesting outside introspection subtrees.
    data_depth: usize,
    /// Deepest nesting under an introspection root field, the root included.
    intro_depth: usize,
    /// Deepest nesting of introspection list fields under an introspection root field.
    intro_lists: usize,
}

impl Cost {
    fn max(self, o: Cost) -> Cost {
        Cost {
            fields: self.fields.saturating_add(o.fields),
            depth: self.depth.max(o.depth),
            lists: self.lists.max(o.lists),
            data_depth: self.data_depth.max(o.data_depth),
            intro_depth: self.intro_depth.max(o.intro_depth),
            intro_lists: self.intro_lists.max(o.intro_lists),
        }
    }
}

/// Introspection fields that return one element per type, field, argument or value.
const INTROSPECTION_LISTS: [&str; 8] =
    ["types", "fields", "args", "inputFields", "interfaces", "possibleTypes", "enumValues", "directives"];

struct Checker<'a> {
    doc: &'a ExecutableDocument,
    limits: &'a Limits,
    memo: HashMap<&'a Name, Cost>,
    in_progress: Vec<&'a Name>,
    aliases: usize,
}

/// Check a parsed document; returns the type of the operation that would run.
pub fn check(doc: &ExecutableDocument, operation_name: Option<&str>, limits: &Limits) -> ApiResult<OperationType> {
    let mut c = Checker { doc, limits, memo: HashMap::new(), in_progress: Vec::new(), aliases: 0 };
    // In the document's order: the parser keeps fragments and operations in hash maps, and
    // the error a client gets must not change from one run to the next.
    let mut fragments: Vec<_> = doc.fragments.iter().collect();
    fragments.sort_by_key(|(_, f)| (f.pos.line, f.pos.column));
    for (name, frag) in fragments {
        c.directives(frag.node.directives.len())?;
        c.fragment(name, frag)?;
    }
    let mut operations: Vec<_> = doc.operations.iter().collect();
    operations.sort_by_key(|(_, op)| (op.pos.line, op.pos.column));
    let mut chosen = None;
    for (name, op) in operations {
        c.directives(op.node.directives.len())?;
        let cost = c.set(&op.node.selection_set.node)?;
        if cost.data_depth > limits.depth {
            return Err(ApiError::limit(format!(
                "the query is nested {} levels deep; the limit is {}",
                cost.data_depth, limits.depth
            )));
        }
        if cost.intro_depth > limits.introspection_depth {
            return Err(ApiError::limit(format!(
                "the introspection query is nested {} levels deep; the limit is {}",
                cost.intro_depth, limits.introspection_depth
            )));
        }
        if cost.intro_lists > limits.introspection_lists {
            return Err(ApiError::limit(format!(
                "the introspection query nests {} list fields (types, fields, args, ...); the limit is {}",
                cost.intro_lists, limits.introspection_lists
            )));
        }
        if cost.fields > limits.expanded_selections {
            return Err(ApiError::limit(format!(
                "the query expands to more than {} selections",
                limits.expanded_selections
            )));
        }
        let roots = c.root_fields(&op.node.selection_set.node, 0);
        if roots > limits.root_fields {
            return Err(ApiError::limit(format!(
                "the operation has {roots} root fields; the limit is {}",
                limits.root_fields
            )));
        }
        let selected = match (operation_name, name) {
            (None, _) => true,
            (Some(want), Some(n)) => want == n.as_str(),
            (Some(_), None) => false,
        };
        if selected {
            chosen = Some(op.node.ty);
        }
    }
    if c.aliases > limits.aliases {
        return Err(ApiError::limit(format!(
            "the document uses {} aliases; the limit is {}",
            c.aliases, limits.aliases
        )));
    }
    Ok(chosen.unwrap_or(OperationType::Query))
}

impl<'a> Checker<'a> {
    fn directives(&self, n: usize) -> ApiResult<()> {
        if n > self.limits.directives {
            return Err(ApiError::limit(format!(
                "{n} directives on one node; the limit is {}",
                self.limits.directives
            )));
        }
        Ok(())
    }

    fn fragment(&mut self, name: &'a Name, frag: &'a Positioned<FragmentDefinition>) -> ApiResult<Cost> {
        if let Some(cost) = self.memo.get(name) {
            return Ok(*cost);
        }
        if self.in_progress.contains(&name) {
            return Err(ApiError::new(
                crate::error::ErrorCode::GraphqlValidation,
                format!("fragment '{name}' spreads itself"),
            ));
        }
        if self.in_progress.len() > self.limits.nesting {
            return Err(ApiError::limit("fragments spread each other too deeply"));
        }
        self.in_progress.push(name);
        let cost = self.set(&frag.node.selection_set.node)?;
        self.in_progress.pop();
        self.memo.insert(name, cost);
        Ok(cost)
    }

    fn set(&mut self, set: &'a SelectionSet) -> ApiResult<Cost> {
        let mut total = Cost::default();
        for item in &set.items {
            let cost = match &item.node {
                Selection::Field(f) => {
                    self.directives(f.node.directives.len())?;
                    if f.node.alias.is_some() {
                        self.aliases += 1;
                    }
                    let sub = self.set(&f.node.selection_set.node)?;
                    let name = f.node.name.node.as_str();
                    let list = usize::from(INTROSPECTION_LISTS.contains(&name));
                    let mut c = Cost {
                        fields: sub.fields.saturating_add(1),
                        depth: sub.depth + 1,
                        lists: sub.lists + list,
                        data_depth: sub.data_depth + 1,
                        intro_depth: sub.intro_depth,
                        intro_lists: sub.intro_lists,
                    };
                    if name == "__schema" || name == "__type" {
                        c.data_depth = 1;
                        c.intro_depth = sub.depth + 1;
                        c.intro_lists = sub.lists;
                    }
                    c
                }
                // Spreads and inline fragments count as selections themselves: validation
                // and planning visit each one, so a tree of spreads that ends in no field at
                // all (an unknown or empty fragment) must not expand for free.
                Selection::InlineFragment(frag) => {
                    self.directives(frag.node.directives.len())?;
                    let sub = self.set(&frag.node.selection_set.node)?;
                    Cost { fields: sub.fields.saturating_add(1), ..sub }
                }
                Selection::FragmentSpread(spread) => {
                    self.directives(spread.node.directives.len())?;
                    let name = &spread.node.fragment_name.node;
                    let sub = match self.doc.fragments.get_key_value(name) {
                        Some((n, frag)) => self.fragment(n, frag)?,
                        // Unknown fragments are reported by GraphQL validation.
                        None => Cost::default(),
                    };
                    Cost { fields: sub.fields.saturating_add(1), ..sub }
                }
            };
            total = total.max(cost);
            if total.fields > self.limits.expanded_selections {
                return Err(ApiError::limit(format!(
                    "the query expands to more than {} selections",
                    self.limits.expanded_selections
                )));
            }
        }
        Ok(total)
    }

    fn root_fields(&self, set: &SelectionSet, depth: usize) -> usize {
        if depth > self.limits.nesting {
            return usize::MAX;
        }
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(_) => 1,
                Selection::InlineFragment(f) => self.root_fields(&f.node.selection_set.node, depth + 1),
                Selection::FragmentSpread(s) => self
                    .doc
                    .fragments
                    .get(&s.node.fragment_name.node)
                    .map_or(0, |f| self.root_fields(&f.node.selection_set.node, depth + 1)),
            })
            .fold(0usize, usize::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(q: &str) -> ApiResult<OperationType> {
        let limits = Limits::default();
        scan(q, &limits)?;
        let doc = async_graphql::parser::parse_query(q).map_err(|e| ApiError::validation(e.to_string()))?;
        check(&doc, None, &limits)
    }

    #[test]
    fn fragment_bomb_is_rejected_quickly() {
        // Fragments each spreading the next ten times, 8 levels: 10^8 expanded selections.
        let mut q = String::from("query { ...F0 }\n");
        for i in 0..8 {
            let spreads = (0..10).map(|_| format!("...F{}", i + 1)).collect::<Vec<_>>().join(" ");
            q.push_str(&format!("fragment F{i} on Query {{ {spreads} }}\n"));
        }
        q.push_str("fragment F8 on Query { __typename }\n");
        let start = std::time::Instant::now();
        let err = run(&q).unwrap_err();
        assert!(start.elapsed() < std::time::Duration::from_millis(50));
        assert!(err.message.contains("expands"), "{}", err.message);
    }

    #[test]
    fn cycles_depth_aliases_and_roots() {
        assert!(run("query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }").is_err());
        // (The innermost selection set must not be empty, or this is a parse error.)
        let deep = format!("{{ {} b {} }}", "a {".repeat(20), "}".repeat(20));
        assert!(run(&deep).unwrap_err().message.contains("nested"));
        let aliases: String = (0..31).map(|i| format!("a{i}: __typename ")).collect();
        // Nested, so the root-field limit (20) does not trip first.
        assert!(run(&format!("{{ x {{ {aliases} }} }}")).unwrap_err().message.contains("aliases"));
        let roots: String = (0..21).map(|i| format!("f{i} ")).collect();
        assert!(run(&format!("{{ {roots} }}")).unwrap_err().message.contains("root fields"));
        assert_eq!(run("mutation { a }").ok(), Some(OperationType::Mutation));
        // Spreads count as selections: a bomb of spreads that ends in an unknown fragment
        // selects no field at all and must still be rejected.
        let mut q = String::from("query { ...F0 }\n");
        for i in 0..8 {
            let spreads = (0..10).map(|_| format!("...F{}", i + 1)).collect::<Vec<_>>().join(" ");
            q.push_str(&format!("fragment F{i} on Query {{ {spreads} }}\n"));
        }
        q.push_str("fragment F8 on Query { ...Missing }\n");
        assert!(run(&q).unwrap_err().message.contains("expands"));
    }

    /// The shape of the introspection query GraphiQL and graphql-codegen send: `ofType`
    /// nested eight levels under `types { fields { args { type ... } } }`.
    fn standard_introspection() -> String {
        let mut type_ref = String::from("kind name");
        for _ in 0..8 {
            type_ref = format!("kind name ofType {{ {type_ref} }}");
        }
        format!(
            "query IntrospectionQuery {{ __schema {{ queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }}
               types {{ ...FullType }} directives {{ name description locations args {{ ...InputValue }} }} }} }}
             fragment FullType on __Type {{ kind name description
               fields(includeDeprecated: true) {{ name description args {{ ...InputValue }} type {{ ...TypeRef }} isDeprecated deprecationReason }}
               inputFields {{ ...InputValue }} interfaces {{ ...TypeRef }}
               enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }}
               possibleTypes {{ ...TypeRef }} }}
             fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue }}
             fragment TypeRef on __Type {{ {type_ref} }}"
        )
    }

    #[test]
    fn introspection_is_measured_apart_from_data() {
        assert_eq!(run(&standard_introspection()).ok(), Some(OperationType::Query));
        // ... but fanning out by types and fields at every level is refused,
        let fan = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
        assert!(run(fan).unwrap_err().message.contains("nests 4 list fields"), "{:?}", run(fan));
        let fan =
            "{ __type(name: \"Q\") { fields { type { fields { type { fields { type { fields { name } } } } } } } } }";
        assert!(run(fan).unwrap_err().message.contains("list fields"));
        // ... and so is deep nesting under introspection,
        let deep = format!("{{ __type(name: \"Q\") {{ {} name {} }} }}", "ofType {".repeat(30), "}".repeat(30));
        assert!(run(&deep).unwrap_err().message.contains("introspection query is nested"));
        // while data keeps its own depth limit, also next to introspection.
        let data =
            format!("{{ __typename __schema {{ types {{ name }} }} {} b {} }}", "a {".repeat(13), "}".repeat(13));
        assert!(run(&data).unwrap_err().message.contains("nested 14 levels"));
    }

    #[test]
    fn json_nesting_and_variables() {
        assert_eq!(json_nesting(b"{\"a\": [1, {\"b\": \"[[[{{{\\\"[[\"}]}"), 3);
        assert_eq!(json_nesting(b"[[[]]] [[]]"), 3);
        assert_eq!(json_nesting(&b"[".repeat(100_000)), 100_000);
        let limits = Limits::default();
        let mut v = serde_json::json!(1);
        for _ in 0..63 {
            v = serde_json::json!([v]);
        }
        // The variables object is level 1, so 63 nested lists reach level 64.
        let vars = async_graphql::Variables::from_json(serde_json::json!({ "v": v.clone() }));
        assert!(check_variables(&vars, &limits).is_ok());
        let vars = async_graphql::Variables::from_json(serde_json::json!({ "v": [v] }));
        assert!(check_variables(&vars, &limits).unwrap_err().message.contains("variables"));
    }

    #[test]
    fn scan_bounds_nesting_and_tokens() {
        let limits = Limits::default();
        let deep = "{".repeat(50_000);
        assert!(scan(&deep, &limits).unwrap_err().message.contains("nests"));
        let many = "a ".repeat(20_000);
        assert!(scan(&many, &limits).unwrap_err().message.contains("tokens"));
        // Brackets inside strings and comments do not count.
        let quoted = format!("{{ a(s: \"{}\") }} # {}", "{".repeat(500), "(".repeat(500));
        assert!(scan(&quoted, &limits).is_ok());
    }
}
