//! SDL text → [`Model`], collecting every error with its position.

use std::collections::{HashMap, HashSet};

use graphql_parser::schema::{self as ast, Definition, TypeDefinition};
use graphql_parser::Pos;

use super::{
    Access, Base, EnumType, Field, HyperMode, HyperService, HyperSpec, Level, Model, ObjectType, Scalar,
    GENERATED_SUFFIXES, MAX_FIELDS, MAX_NAME_LEN, MAX_TYPES, RESERVED_TYPE_NAMES,
};

/// One problem found in an SDL document, at a 1-based line and column (the column counts
/// characters: a tab is one column, a byte-order mark none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

type Doc<'a> = ast::Document<'a, &'a str>;

struct Checker {
    errors: Vec<Diagnostic>,
}

impl Checker {
    fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(Diagnostic { line: pos.line, column: pos.column, message: message.into() });
    }

    /// Names must be plain identifiers that fit in storage names and avoid GraphQL's `__`.
    fn check_name(&mut self, pos: Pos, what: &str, name: &str) -> bool {
        if name.starts_with("__") {
            self.err(pos, format!("{what} name '{name}' is reserved: names may not start with '__'"));
            false
        } else if name.len() > MAX_NAME_LEN {
            self.err(pos, format!("{what} name '{name}' is too long: at most {MAX_NAME_LEN} characters"));
            false
        } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            self.err(pos, format!("{what} name '{name}' is not a valid identifier"));
            false
        } else {
            true
        }
    }

    /// Type and field names also name tables and columns: `__` separates the parts of a
    /// storage name (`app__Type__field`), so it may not appear inside a name either.
    fn check_storage_name(&mut self, pos: Pos, what: &str, name: &str) -> bool {
        if !self.check_name(pos, what, name) {
            false
        } else if name.contains("__") {
            self.err(pos, format!("{what} name '{name}' may not contain '__': storage names use it as a separator"));
            false
        } else if name.starts_with('_') || name.ends_with('_') {
            // `B` + `_c` and `B_` + `c` would both be stored as `B___c`.
            self.err(
                pos,
                format!("{what} name '{name}' may not start or end with '_': storage names join names with '__'"),
            );
            false
        } else {
            true
        }
    }
}

/// Names GraphQL does not allow as enum values (generated `XFields` enums list field names).
const NOT_ENUM_VALUES: [&str; 3] = ["true", "false", "null"];

/// Parse and validate an app schema. On failure every error found is returned, sorted by
/// position; nothing is half-applied because the model is only built when there are none.
pub fn parse_sdl(source: &str) -> Result<Model, Vec<Diagnostic>> {
    let doc: Doc = match ast::parse_schema::<&str>(source) {
        Ok(doc) => doc,
        Err(e) => {
            let mut d = syntax_diagnostic(&e.to_string());
            d.column = char_column(source, d.line, d.column);
            if let Some(ch) = source
                .split('\n')
                .nth(d.line.saturating_sub(1))
                .and_then(|l| l.chars().filter(|&c| c != '\u{feff}').nth(d.column.saturating_sub(1)))
            {
                if !ch.is_ascii() || (ch.is_ascii_control() && !matches!(ch, '\t' | '\r' | '\n')) {
                    d.message = format!(
                        "syntax error: unexpected character {ch:?} (U+{:04X}); names use only ASCII letters, digits and '_'",
                        u32::from(ch)
                    );
                }
            }
            return Err(vec![d]);
        }
    };
    let mut c = Checker { errors: Vec::new() };

    // Pass 1: the names of every definition, so fields can refer to types defined later.
    let mut object_names: HashMap<&str, usize> = HashMap::new();
    let mut enum_names: HashMap<&str, usize> = HashMap::new();
    let mut seen: HashMap<&str, Pos> = HashMap::new();
    let mut objects: Vec<&ast::ObjectType<&str>> = Vec::new();
    let mut enums: Vec<&ast::EnumType<&str>> = Vec::new();
    let mut unions: HashSet<&str> = HashSet::new();
    for def in &doc.definitions {
        let (pos, name) = match def {
            Definition::TypeDefinition(TypeDefinition::Object(o)) => (o.position, o.name),
            Definition::TypeDefinition(TypeDefinition::Enum(e)) => (e.position, e.name),
            Definition::TypeDefinition(TypeDefinition::Scalar(s)) => {
                if Scalar::from_name(s.name).is_none() {
                    c.err(
                        s.position,
                        format!(
                            "custom scalar '{}' is not supported; use ID, String, Int, Float, \
                             Boolean, DateTime, Long or Json",
                            s.name
                        ),
                    );
                }
                continue;
            }
            Definition::TypeDefinition(TypeDefinition::Union(u)) => {
                unions.insert(u.name);
                c.err(u.position, format!("union '{}' cannot be stored: use an object type per member", u.name));
                continue;
            }
            Definition::TypeDefinition(TypeDefinition::Interface(i)) => {
                c.err(i.position, format!("interface '{}' is not supported", i.name));
                continue;
            }
            Definition::TypeDefinition(TypeDefinition::InputObject(i)) => {
                c.err(
                    i.position,
                    format!("input type '{}' is not allowed: input types are generated from the object types", i.name),
                );
                continue;
            }
            Definition::SchemaDefinition(s) => {
                c.err(s.position, "a schema definition is not allowed: the root operations are generated");
                continue;
            }
            Definition::TypeExtension(ext) => {
                let pos = match ext {
                    ast::TypeExtension::Object(o) => o.position,
                    ast::TypeExtension::Scalar(o) => o.position,
                    ast::TypeExtension::Interface(o) => o.position,
                    ast::TypeExtension::Union(o) => o.position,
                    ast::TypeExtension::Enum(o) => o.position,
                    ast::TypeExtension::InputObject(o) => o.position,
                };
                c.err(pos, "type extensions are not supported: declare every field in the type itself");
                continue;
            }
            Definition::DirectiveDefinition(d) => {
                c.err(
                    d.position,
                    format!(
                        "directive definition '@{}' is not allowed: only built-in directives are understood",
                        d.name
                    ),
                );
                continue;
            }
        };
        if let Some(first) = seen.get(name) {
            c.err(pos, format!("duplicate type '{name}' (first defined at {}:{})", first.line, first.column));
            continue;
        }
        seen.insert(name, pos);
        if !c.check_storage_name(pos, "type", name) {
            continue;
        }
        if RESERVED_TYPE_NAMES.contains(&name) {
            c.err(pos, format!("type name '{name}' is reserved"));
            continue;
        }
        match def {
            Definition::TypeDefinition(TypeDefinition::Object(o)) => {
                // Table names are compared without regard to case (SQLite, and PostgreSQL
                // when unquoted), so `Book` and `book` would share one table.
                if let Some(other) = objects.iter().find(|x| x.name.eq_ignore_ascii_case(name)) {
                    c.err(
                        pos,
                        format!(
                            "type '{name}' differs from type '{}' (at {}:{}) only in letter case; \
                             type names must differ in more than case",
                            other.name, other.position.line, other.position.column
                        ),
                    );
                    continue;
                }
                object_names.insert(name, objects.len());
                objects.push(o);
            }
            Definition::TypeDefinition(TypeDefinition::Enum(e)) => {
                enum_names.insert(name, enums.len());
                enums.push(e);
            }
            _ => {}
        }
    }

    // Generated names (`XInput`, `XAggs`, ...) must not collide with a declared type, nor
    // with a name generated for another type (`X` + `ScalarFields` is `XScalar` + `Fields`).
    let mut generated_by: HashMap<String, (&str, &str)> = HashMap::new();
    for o in &objects {
        for suffix in GENERATED_SUFFIXES {
            let generated = format!("{}{}", o.name, suffix);
            match generated_by.get(generated.as_str()) {
                Some((other, other_suffix)) => c.err(
                    o.position,
                    format!(
                        "type '{}' and type '{other}' would both generate '{generated}' ('{}' + '{suffix}' and \
                         '{other}' + '{other_suffix}'); rename one of them",
                        o.name, o.name
                    ),
                ),
                None => {
                    generated_by.insert(generated, (o.name, suffix));
                }
            }
        }
    }
    for o in &objects {
        for suffix in GENERATED_SUFFIXES {
            let generated = format!("{}{}", o.name, suffix);
            if let Some(pos) = seen.get(generated.as_str()) {
                c.err(*pos, format!("type name '{generated}' collides with a name generated for type '{}'", o.name));
            }
        }
        // `HypiAggregationType` has a field `x` and `xWith` per type `X`.
        let with = format!("{}With", Model::lower_first(o.name));
        if let Some(other) = objects.iter().find(|x| Model::lower_first(x.name) == with) {
            c.err(
                other.position,
                format!(
                    "type name '{}' collides with the aggregation field '{with}' generated for type '{}'",
                    other.name, o.name
                ),
            );
        }
    }

    // Pass 2: enums.
    let mut model_enums = Vec::new();
    for e in &enums {
        check_no_directives(&mut c, &e.directives, &format!("enum '{}'", e.name));
        let mut values: Vec<String> = Vec::new();
        if e.values.is_empty() {
            c.err(e.position, format!("enum '{}' has no values", e.name));
        }
        for v in &e.values {
            check_no_directives(&mut c, &v.directives, &format!("enum value '{}.{}'", e.name, v.name));
            if !c.check_name(v.position, "enum value", v.name) {
                continue;
            }
            if NOT_ENUM_VALUES.contains(&v.name) {
                c.err(
                    v.position,
                    format!("enum value '{}.{}' is not allowed: GraphQL reserves true, false and null", e.name, v.name),
                );
                continue;
            }
            if values.iter().any(|x| x == v.name) {
                c.err(v.position, format!("duplicate enum value '{}.{}'", e.name, v.name));
                continue;
            }
            values.push(v.name.to_string());
        }
        model_enums.push(EnumType { name: e.name.to_string(), values, description: e.description.clone() });
    }

    // Pass 3: object types and their fields.
    let mut types = Vec::new();
    for o in &objects {
        if !o.implements_interfaces.is_empty() {
            c.err(o.position, format!("type '{}' implements an interface; interfaces are not supported", o.name));
        }
        let mut fields: Vec<Field> = Vec::new();
        let mut field_index: HashMap<String, usize> = HashMap::new();
        for f in &o.fields {
            let pos = f.position;
            let qualified = format!("{}.{}", o.name, f.name);
            if !c.check_storage_name(pos, "field", f.name) {
                continue;
            }
            // Column names ignore case, so `HYPI_ID` would collide with the system's `hypi_id`.
            if f.name == "hypi" || f.name.to_ascii_lowercase().starts_with("hypi_") {
                c.err(pos, format!("field name '{qualified}' is reserved: 'hypi' and 'hypi_*' belong to the system"));
                continue;
            }
            if NOT_ENUM_VALUES.contains(&f.name) {
                c.err(
                    pos,
                    format!("field name '{qualified}' is not allowed: true, false and null cannot be values of the generated enum '{}Fields'", o.name),
                );
                continue;
            }
            if field_index.contains_key(f.name) {
                c.err(pos, format!("duplicate field '{qualified}'"));
                continue;
            }
            if let Some(other) = fields.iter().find(|x| x.name.eq_ignore_ascii_case(f.name)) {
                c.err(
                    pos,
                    format!(
                        "field '{qualified}' differs from field '{}.{}' (at {}:{}) only in letter case; \
                         column names must differ in more than case",
                        o.name, other.name, other.line, other.column
                    ),
                );
                continue;
            }
            if !f.arguments.is_empty() {
                c.err(pos, format!("field '{qualified}' has arguments; stored fields take none"));
            }
            let Some(shape) = field_shape(&f.field_type) else {
                c.err(pos, format!("field '{qualified}' has a nested list type; only one level of list is supported"));
                continue;
            };
            let base = if let Some(s) = Scalar::from_name(shape.name) {
                Base::Scalar(s)
            } else if let Some(&i) = enum_names.get(shape.name) {
                Base::Enum(i)
            } else if let Some(&i) = object_names.get(shape.name) {
                Base::Object(i)
            } else if unions.contains(shape.name) {
                c.err(pos, format!("field '{qualified}' uses union '{}', which cannot be stored", shape.name));
                continue;
            } else if seen.contains_key(shape.name) || RESERVED_TYPE_NAMES.contains(&shape.name) {
                c.err(pos, format!("field '{qualified}' uses type '{}', which cannot be stored", shape.name));
                continue;
            } else {
                c.err(pos, format!("field '{qualified}' has unknown type '{}'", shape.name));
                continue;
            };
            let mut unique = false;
            for d in &f.directives {
                match d.name {
                    "unique" => {
                        if !d.arguments.is_empty() {
                            c.err(d.position, format!("@unique on '{qualified}' takes no arguments"));
                        }
                        if shape.list || matches!(base, Base::Object(_)) {
                            c.err(d.position, format!("@unique on '{qualified}' needs a single scalar or enum field"));
                        } else if matches!(base, Base::Scalar(Scalar::Json)) {
                            c.err(d.position, format!("@unique on '{qualified}' is not supported for Json fields"));
                        }
                        unique = true;
                    }
                    other => c.err(d.position, format!("unknown directive '@{other}' on field '{qualified}'")),
                }
            }
            field_index.insert(f.name.to_string(), fields.len());
            fields.push(Field {
                name: f.name.to_string(),
                base,
                list: shape.list,
                required: shape.required,
                item_required: shape.item_required,
                unique,
                normalized: false,
                description: f.description.clone(),
                line: pos.line,
                column: pos.column,
            });
        }
        if fields.len() > MAX_FIELDS {
            c.err(
                o.position,
                format!("type '{}' has {} fields; at most {MAX_FIELDS} are allowed", o.name, fields.len()),
            );
        }
        let mut indices = Vec::new();
        let mut access = Access::default();
        let mut hyper = None;
        for d in &o.directives {
            match d.name {
                "indices" => indices.extend(parse_indices(&mut c, d, o.name, &fields, &field_index)),
                "access" => access = parse_access(&mut c, d, o.name),
                "hyper" if hyper.is_some() => c.err(d.position, format!("@hyper is given twice on '{}'", o.name)),
                "hyper" => hyper = Some(parse_hyper(&mut c, d, o.name, &fields, &field_index)),
                other => c.err(d.position, format!("unknown directive '@{other}' on type '{}'", o.name)),
            }
        }
        types.push(ObjectType {
            name: o.name.to_string(),
            fields,
            indices,
            description: o.description.clone(),
            access,
            builtin: false,
            hyper,
            field_index,
        });
    }

    if types.len() > MAX_TYPES {
        c.err(
            Pos { line: 1, column: 1 },
            format!("the schema declares {} object types; at most {MAX_TYPES} are allowed", types.len()),
        );
    }
    check_required_cycles(&mut c, &types);
    if types.is_empty() && c.errors.is_empty() {
        c.err(Pos { line: 1, column: 1 }, "the schema declares no object type");
    }
    if !c.errors.is_empty() {
        for d in &mut c.errors {
            d.column = char_column(source, d.line, d.column);
        }
        c.errors.sort_by_key(|d| (d.line, d.column));
        return Err(c.errors);
    }
    // Every app has the built-in account type, after its own types.
    types.push(ObjectType::account());
    let type_index = types.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
    Ok(Model { types, enums: model_enums, type_index })
}

/// A required one-to-one reference (`b: B!`) means a `B` must exist before an `A` can be
/// written. When such references form a cycle no object of those types can ever be created,
/// and the generated `XInput` types would be invalid GraphQL (an input object may not reach
/// itself through non-null fields only). Every field on such a cycle is reported.
fn check_required_cycles(c: &mut Checker, types: &[ObjectType]) {
    let required_ref = |f: &Field| match f.base {
        Base::Object(t) if f.required && !f.list => Some(t),
        _ => None,
    };
    for (from, ty) in types.iter().enumerate() {
        for f in &ty.fields {
            let Some(to) = required_ref(f) else { continue };
            // Breadth-first from `to` back to `from`, remembering how each type was reached.
            let mut via: Vec<Option<(usize, &str)>> = vec![None; types.len()];
            let mut queue = std::collections::VecDeque::from([to]);
            let mut reached = to == from;
            let mut seen = vec![false; types.len()];
            seen[to] = true;
            while let Some(t) = queue.pop_front() {
                if reached {
                    break;
                }
                for g in &types[t].fields {
                    let Some(next) = required_ref(g) else { continue };
                    if next == from {
                        via[from] = Some((t, g.name.as_str()));
                        reached = true;
                        break;
                    }
                    if !seen[next] {
                        seen[next] = true;
                        via[next] = Some((t, g.name.as_str()));
                        queue.push_back(next);
                    }
                }
            }
            if !reached {
                continue;
            }
            // Rebuild the chain `to → ... → from` from the back.
            let mut chain = Vec::new();
            let mut at = from;
            while let Some((prev, field)) = via[at] {
                chain.push(format!("{}.{field}", types[prev].name));
                if prev == to {
                    break;
                }
                at = prev;
            }
            chain.reverse();
            let mut path = vec![format!("{}.{}", ty.name, f.name)];
            path.extend(chain);
            c.err(
                Pos { line: f.line, column: f.column },
                format!(
                    "field '{}.{}' is part of a cycle of required references ({} -> {}): no object of these \
                     types could ever be created; make one of these fields optional",
                    ty.name,
                    f.name,
                    path.join(" -> "),
                    ty.name
                ),
            );
        }
    }
}

struct Shape<'a> {
    name: &'a str,
    list: bool,
    required: bool,
    item_required: bool,
}

fn field_shape<'a>(ty: &ast::Type<'a, &'a str>) -> Option<Shape<'a>> {
    use ast::Type::*;
    let (inner, required) = match ty {
        NonNullType(t) => (t.as_ref(), true),
        t => (t, false),
    };
    match inner {
        NamedType(n) => Some(Shape { name: n, list: false, required, item_required: false }),
        ListType(item) => {
            let (item, item_required) = match item.as_ref() {
                NonNullType(t) => (t.as_ref(), true),
                t => (t, false),
            };
            match item {
                NamedType(n) => Some(Shape { name: n, list: true, required, item_required }),
                _ => None,
            }
        }
        NonNullType(_) => None,
    }
}

fn check_no_directives<'a>(c: &mut Checker, directives: &[ast::Directive<'a, &'a str>], on: &str) {
    for d in directives {
        c.err(d.position, format!("unknown directive '@{}' on {on}", d.name));
    }
}

/// `@access(read: PUBLIC, write: AUTHENTICATED)`; a level left out stays OWNER.
fn parse_access<'a>(c: &mut Checker, d: &ast::Directive<'a, &'a str>, type_name: &str) -> Access {
    let mut access = Access::default();
    for (name, value) in &d.arguments {
        let level = match value {
            ast::Value::Enum(v) => Level::from_name(v),
            ast::Value::String(v) => Level::from_name(v),
            _ => None,
        };
        let Some(level) = level else {
            c.err(d.position, format!("@access on '{type_name}': {name} must be PUBLIC, AUTHENTICATED or OWNER"));
            continue;
        };
        match *name {
            "read" => access.read = level,
            "write" => access.write = level,
            other => c.err(d.position, format!("@access on '{type_name}' takes read: and write:, not {other}:")),
        }
    }
    access
}

/// `@hyper(search: ["title"], store: ["title", "price"], cache: true, count: true,
/// notify: true, attachments: true, data: true, mode: NON_ATOMIC, modes: {search: ATOMIC})`.
fn parse_hyper<'a>(
    c: &mut Checker,
    d: &ast::Directive<'a, &'a str>,
    type_name: &str,
    fields: &[Field],
    field_index: &HashMap<String, usize>,
) -> HyperSpec {
    let mut spec = HyperSpec { data: true, ..HyperSpec::default() };
    let mut store_given = false;
    let mode_of = |v: &ast::Value<'a, &'a str>| {
        let name = match v {
            ast::Value::Enum(m) => *m,
            ast::Value::String(m) => m.as_str(),
            _ => return None,
        };
        match name {
            "ATOMIC" => Some(HyperMode::Atomic),
            "NON_ATOMIC" => Some(HyperMode::NonAtomic),
            _ => None,
        }
    };
    for (name, value) in &d.arguments {
        let at = format!("@hyper on '{type_name}'");
        match *name {
            "search" | "store" => {
                let ast::Value::List(items) = value else {
                    c.err(d.position, format!("{at}: {name} is a list of field names, e.g. {name}: [\"title\"]"));
                    continue;
                };
                let mut out = Vec::new();
                for item in items {
                    let ast::Value::String(f) = item else {
                        c.err(d.position, format!("{at}: {name} lists field names as strings"));
                        continue;
                    };
                    let Some(&i) = field_index.get(f.as_str()) else {
                        c.err(d.position, format!("{at}: {name} names '{f}', which is not a field of '{type_name}'"));
                        continue;
                    };
                    let field = &fields[i];
                    let text = matches!(field.base, Base::Scalar(Scalar::String | Scalar::Id) | Base::Enum(_));
                    if matches!(field.base, Base::Object(_)) {
                        c.err(
                            d.position,
                            format!(
                                "{at}: {name} names '{f}', a reference; only scalar fields can be {}",
                                if *name == "search" { "searched" } else { "stored" }
                            ),
                        );
                    } else if *name == "search" && (field.list || !text) {
                        c.err(d.position, format!("{at}: search names '{f}', which is not a single String, ID or enum: only those are searched as words"));
                    } else if out.contains(&i) {
                        c.err(d.position, format!("{at}: {name} names '{f}' twice"));
                    } else {
                        out.push(i);
                    }
                }
                if *name == "search" {
                    if items.is_empty() {
                        c.err(d.position, format!("{at}: search names at least one field"));
                    }
                    spec.search = out;
                } else {
                    store_given = true;
                    spec.store = out;
                }
            }
            "data" | "cache" | "count" | "notify" | "attachments" => {
                let ast::Value::Boolean(b) = value else {
                    c.err(d.position, format!("{at}: {name} is true or false"));
                    continue;
                };
                match *name {
                    "data" => spec.data = *b,
                    "cache" => spec.cache = *b,
                    "count" => spec.count = *b,
                    "notify" => spec.notify = *b,
                    _ => spec.attachments = *b,
                }
            }
            "mode" => match mode_of(value) {
                Some(m) => spec.mode = m,
                None => c.err(d.position, format!("{at}: mode is ATOMIC or NON_ATOMIC")),
            },
            "modes" => {
                let ast::Value::Object(m) = value else {
                    c.err(
                        d.position,
                        format!("{at}: modes is an object such as {{search: ATOMIC, cache: NON_ATOMIC}}"),
                    );
                    continue;
                };
                for (service, v) in m {
                    let Some(s) = HyperService::from_name(service) else {
                        c.err(d.position, format!("{at}: modes names '{service}', which is not data, search, cache, count, notify or attachments"));
                        continue;
                    };
                    match mode_of(v) {
                        Some(mode) => spec.modes.push((s, mode)),
                        None => c.err(d.position, format!("{at}: the mode of {service} is ATOMIC or NON_ATOMIC")),
                    }
                }
            }
            other => c.err(
                d.position,
                format!(
                    "{at} takes search, store, data, cache, count, notify, attachments, mode and modes, not {other}"
                ),
            ),
        }
    }
    if !store_given {
        spec.store = spec.search.clone();
    }
    if spec.attachments && field_index.contains_key("attachments") {
        c.err(
            d.position,
            format!("@hyper on '{type_name}': attachments adds a field 'attachments', which the type already has"),
        );
    }
    for (s, _) in &spec.modes {
        if matches!(s, HyperService::Count | HyperService::Attachments) {
            c.err(
                d.position,
                format!(
                    "@hyper on '{type_name}': {} takes no mode: {}",
                    s.as_str(),
                    if *s == HyperService::Count {
                        "the counter is kept in the write's own transaction"
                    } else {
                        "files are written by their own uploads"
                    }
                ),
            );
        }
    }
    for (s, _) in &spec.modes {
        if !spec.services().contains(s) {
            c.err(
                d.position,
                format!("@hyper on '{type_name}': modes gives a mode to {}, which is not turned on", s.as_str()),
            );
        }
    }
    spec
}

/// `@indices(sets: [["a", "b"], ["c"]])` → field index sets.
fn parse_indices<'a>(
    c: &mut Checker,
    d: &ast::Directive<'a, &'a str>,
    type_name: &str,
    fields: &[Field],
    field_index: &HashMap<String, usize>,
) -> Vec<Vec<usize>> {
    let usage = format!("@indices on '{type_name}' takes one argument: sets: [[\"field\", ...], ...]");
    let [(arg, ast::Value::List(sets))] = d.arguments.as_slice() else {
        c.err(d.position, usage);
        return Vec::new();
    };
    if *arg != "sets" {
        c.err(d.position, usage);
        return Vec::new();
    }
    let mut out = Vec::new();
    for set in sets {
        let ast::Value::List(names) = set else {
            c.err(d.position, usage.clone());
            continue;
        };
        let mut idx = Vec::new();
        for n in names {
            let ast::Value::String(n) = n else {
                c.err(d.position, usage.clone());
                continue;
            };
            match field_index.get(n.as_str()) {
                Some(&i) if fields[i].list || fields[i].base == Base::Scalar(Scalar::Json) => c.err(
                    d.position,
                    format!("@indices on '{type_name}': field '{n}' is a list or Json and cannot be indexed"),
                ),
                Some(&i) => idx.push(i),
                None => c.err(d.position, format!("@indices on '{type_name}': unknown field '{type_name}.{n}'")),
            }
        }
        if names.is_empty() {
            c.err(d.position, format!("@indices on '{type_name}': an index set is empty"));
        } else if idx.len() == names.len() {
            out.push(idx);
        }
    }
    out
}

/// graphql-parser advances its column by 8 for a tab and by 0 for `\r` between tokens; diagnostics count characters instead (a tab is one column, as editors and
/// compilers do), so `FILE:line:column` points at the right place in any editor.
fn char_column(source: &str, line: usize, parser_column: usize) -> usize {
    let Some(text) = source.split('\n').nth(line.saturating_sub(1)) else {
        return parser_column;
    };
    let mut col = 1;
    let mut chars = 0;
    // A byte-order mark is invisible in editors: it takes no column in either count.
    for ch in text.chars().filter(|&c| c != '\u{feff}') {
        if col >= parser_column {
            return chars + 1;
        }
        col += match ch {
            '\t' => 8,
            '\r' => 0,
            _ => 1,
        };
        chars += 1;
    }
    chars + 1 + parser_column.saturating_sub(col)
}

/// graphql-parser reports `Parse error at L:C` followed by what it saw and expected.
fn syntax_diagnostic(text: &str) -> Diagnostic {
    let mut line = 1;
    let mut column = 1;
    if let Some(rest) = text.split("Parse error at ").nth(1) {
        let loc: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == ':').collect();
        let mut parts = loc.split(':');
        line = parts.next().and_then(|s| s.parse().ok()).unwrap_or(1);
        column = parts.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    }
    let detail: Vec<&str> = text.lines().skip(1).map(str::trim).filter(|l| !l.is_empty()).collect();
    Diagnostic { line, column, message: format!("syntax error: {}", detail.join("; ")) }
}
