//! Limits and settings shared by the server and the GraphQL layer.

/// Every limit of the request path (security.md "Starting limits"). All are configurable.
#[derive(Debug, Clone)]
pub struct Limits {
    /// HTTP request body, bytes (413 above).
    pub body_bytes: usize,
    /// Selection depth of a query, fragments followed.
    pub depth: usize,
    /// Selection depth under `__schema` / `__type` (the standard introspection query nests
    /// `ofType` about ten levels deep).
    pub introspection_depth: usize,
    /// Nesting of the list-valued introspection fields (`types`, `fields`, `args`, ...) under
    /// `__schema` / `__type`; each level multiplies the answer by every type or field.
    pub introspection_lists: usize,
    /// Aliased fields in one document.
    pub aliases: usize,
    /// Root fields of one operation.
    pub root_fields: usize,
    /// Lexical tokens of one document.
    pub tokens: usize,
    /// Selections (fields, fragment spreads, inline fragments) after expanding every fragment
    /// spread (memoized count).
    pub expanded_selections: u64,
    /// Directives on one field, fragment or operation.
    pub directives: usize,
    /// Nesting of brackets (`{ ( [`) in a document, checked before parsing.
    pub nesting: usize,
    /// Operations in one batch request.
    pub batch: usize,
    /// Top-level objects per upsert; objects affected by trash/untrash/delete.
    pub objects_per_call: usize,
    /// Page size when none is given.
    pub page_default: u32,
    /// Largest page size; larger requests are clamped.
    pub page_max: u32,
    /// One string value, bytes.
    pub string_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 1 << 20,
            depth: 12,
            introspection_depth: 24,
            introspection_lists: 3,
            aliases: 30,
            root_fields: 20,
            tokens: 15_000,
            expanded_selections: 10_000,
            directives: 10,
            nesting: 64,
            batch: 10,
            objects_per_call: 25,
            page_default: 25,
            page_max: 100,
            string_bytes: 1 << 20,
        }
    }
}

impl Limits {
    pub fn write_limits(&self) -> crate::plan::write::WriteLimits {
        crate::plan::write::WriteLimits { max_objects: self.objects_per_call, max_string: self.string_bytes }
    }
}
