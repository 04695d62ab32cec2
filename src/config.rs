//! Every limit of the request path, its default, and its environment variable
//! (`ARCBASE_LIMIT_<NAME>`, e.g. `ARCBASE_LIMIT_BODY_BYTES=2097152`). Declared once in
//! [`limits!`]: the struct, the defaults, the environment overrides and the table the README
//! shows all come from the same lines.

macro_rules! limits {
    ($( $(#[doc = $doc:literal])+ $name:ident : $ty:ty = $default:expr ; )*) => {
        /// Every limit of the request path (security.md "Starting limits"), each configurable.
        #[derive(Debug, Clone)]
        pub struct Limits {
            $( $(#[doc = $doc])+ pub $name: $ty, )*
        }

        impl Default for Limits {
            fn default() -> Self {
                Limits { $( $name: $default, )* }
            }
        }

        impl Limits {
            /// Every limit: `(name, environment variable, default, description)`.
            pub fn table() -> Vec<(&'static str, String, String, String)> {
                let d = Limits::default();
                vec![$( (
                    stringify!($name),
                    format!("ARCBASE_LIMIT_{}", stringify!($name).to_ascii_uppercase()),
                    d.$name.to_string(),
                    [$($doc),+].iter().map(|s| s.trim()).collect::<Vec<_>>().join(" "),
                ), )*]
            }

            /// This value of every limit, in the order of [`Limits::table`].
            pub fn values(&self) -> Vec<String> {
                vec![$( self.$name.to_string(), )*]
            }

            /// The defaults, with every `ARCBASE_LIMIT_<NAME>` given in `env` applied. A value
            /// that is not a number of the limit's kind is an error naming the variable.
            pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Limits, String> {
                let mut l = Limits::default();
                $(
                    let var = format!("ARCBASE_LIMIT_{}", stringify!($name).to_ascii_uppercase());
                    if let Some(v) = env(&var) {
                        l.$name = v.trim().parse::<$ty>().map_err(|e| format!("{var}={v}: {e}"))?;
                    }
                )*
                Ok(l)
            }
        }
    };
}

limits! {
    /// HTTP request body, bytes (413 above).
    body_bytes: usize = 1 << 20;
    /// Request headers, bytes (431 above).
    header_bytes: usize = 32 << 10;
    /// Time for a client to send a request's headers, milliseconds (the connection closes).
    header_read_ms: u64 = 10_000;
    /// Time for a client to send a request's body, milliseconds (408 after it).
    body_read_ms: u64 = 30_000;
    /// Time a connection may stay open without a request, milliseconds.
    idle_ms: u64 = 60_000;
    /// Open connections at once; past it the longest-idle connection is closed to make room,
    /// and when every connection is busy the new one is answered 503.
    connections: usize = 1024;
    /// Selection depth of a query, fragments followed.
    depth: usize = 12;
    /// Selection depth under `__schema` / `__type` (the standard introspection query nests
    /// `ofType` about ten levels deep).
    introspection_depth: usize = 24;
    /// Nesting of the list-valued introspection fields (`types`, `fields`, `args`, ...) under
    /// `__schema` / `__type`; each level multiplies the answer by every type or field.
    introspection_lists: usize = 3;
    /// Aliased fields in one document.
    aliases: usize = 30;
    /// Root fields of one operation.
    root_fields: usize = 20;
    /// Lexical tokens of one document.
    tokens: usize = 15_000;
    /// Selections (fields, fragment spreads, inline fragments) after expanding every fragment
    /// spread (memoized count).
    expanded_selections: u64 = 10_000;
    /// Directives on one field, fragment or operation.
    directives: usize = 10;
    /// Nesting of brackets (`{ ( [`) in a document, checked before parsing.
    nesting: usize = 64;
    /// Operations in one batch request.
    batch: usize = 10;
    /// Credential checks (`login`, `loginByEmail`, `createAccount`) in one HTTP request,
    /// batch included: each costs an argon2id hash.
    credential_checks: usize = 1;
    /// Password hashes computed at once in the whole process (each takes 19 MiB and tens of
    /// milliseconds of a core).
    hash_concurrency: usize = 2;
    /// How long a credential check waits for a hashing slot, milliseconds (then RATE_LIMITED).
    hash_wait_ms: u64 = 2_000;
    /// Failed logins of one account (or from one client address, times 4) before each further
    /// attempt must wait; the wait doubles with every failure, up to `login_backoff_max_ms`.
    login_failures: u32 = 5;
    /// Longest wait imposed after failed logins, milliseconds.
    login_backoff_max_ms: u64 = 300_000;
    /// Top-level objects per upsert; objects affected by trash/untrash/delete/deleteScalars.
    objects_per_call: usize = 25;
    /// Objects one mutation writes, nested ones included.
    write_objects: usize = 1_000;
    /// List elements one mutation writes (scalar-list values and list references).
    write_values: usize = 10_000;
    /// Values one `deleteScalars` removes.
    scalar_values: usize = 1_000;
    /// Page size when none is given.
    page_default: u32 = 25;
    /// Largest page size; larger requests are clamped.
    page_max: u32 = 100;
    /// Objects one read may return, estimated before it runs as the product of the page sizes
    /// along each nested list (and one per reference).
    read_objects: u64 = 200_000;
    /// Bytes of the documents one read returns (checked as they arrive).
    response_bytes: usize = 8 << 20;
    /// One string value, bytes.
    string_bytes: usize = 1 << 20;
    /// Lists an ArcQL path may go through (`a.b.c` where `a` and `b` are lists is 2): each
    /// multiplies the work by the lists' lengths.
    list_hops: usize = 4;
    /// One-to-one references one query joins (over all its paths and sort keys).
    joins: usize = 32;
    /// Conditions (comparisons, EXIST, geo) in one ArcQL query.
    conditions: usize = 200;
    /// SORT keys of one ArcQL query.
    sort_keys: usize = 8;
    /// Time one statement may run, milliseconds (SQLite: interrupted by a progress handler;
    /// PostgreSQL: `statement_timeout`). TIMEOUT above.
    statement_ms: u64 = 5_000;
    /// Time one write transaction may take, milliseconds (TIMEOUT above, nothing written).
    write_ms: u64 = 10_000;
    /// Time a request waits for a database connection, milliseconds (503 OVERLOADED after it).
    pool_wait_ms: u64 = 3_000;
    /// hyper services: documents, keys, matches or jobs in one answer; also the page when a
    /// request names none (a larger `limit` is refused).
    hyper_page: u32 = 1_000;
    /// hyper services: documents in one `_bulk` call.
    hyper_bulk: usize = 1_000;
    /// hyper services: the body of a `_bulk` call, bytes (other JSON bodies: `body_bytes`).
    hyper_bulk_bytes: usize = 16 << 20;
    /// hyper services: nesting of a JSON document, value or selector.
    json_depth: usize = 64;
    /// hyper storage: one stored object, bytes (413 above; nothing is kept).
    object_bytes: u64 = 100 << 20;
    /// hyper queue: delivery attempts of a job before it is ERROR (with backoff between).
    queue_attempts: u32 = 5;
    /// hyper queue: how long a node holds a job it is delivering, milliseconds; a node that
    /// dies mid-delivery leaves it to be delivered again after this.
    queue_lease_ms: u64 = 30_000;
    /// hyper queue: time one delivery may take, milliseconds.
    queue_timeout_ms: u64 = 10_000;
    /// Subscriptions: time for a WebSocket client to send `connection_init`, milliseconds
    /// (closed with 4408 after it).
    ws_init_ms: u64 = 10_000;
    /// Subscriptions: at once on one WebSocket connection.
    subscriptions_per_connection: usize = 100;
    /// Subscriptions: one WebSocket message from a client, bytes (closed with 1009 above).
    ws_message_bytes: usize = 256 << 10;
    /// Subscriptions: messages a WebSocket client may send per second (closed with 4429 above).
    ws_messages_per_sec: u32 = 100;
    /// Subscriptions: events waiting to be sent to one subscriber; a subscriber whose queue
    /// stays full for 5 s is ended with a reason (it may resume from its last cursor).
    subscriber_queue: usize = 1_000;
    /// Subscriptions: changes replayed from the feed per step while catching up.
    replay_batch: u64 = 500;
    /// The change feed keeps changes at least this long, seconds (7 days), ...
    feed_retention_secs: u64 = 7 * 24 * 3600;
    /// ... and at most about this many rows; older ones are pruned in the background (a cursor
    /// before what is kept is `CURSOR_EXPIRED`). Never past a hyper bridge position that moved
    /// within the retention time.
    feed_retention_rows: i64 = 1_000_000;
    /// The object cache (`get` of `@hyper(cache: true)` types, SQLite): documents kept at most.
    object_cache_entries: usize = 100_000;
    /// The object cache: bytes kept at most (documents as read, plus their keys).
    object_cache_bytes: usize = 64 << 20;
    /// The operation cache (GraphQL texts parsed, guarded and validated once per release):
    /// operations kept at most (0: every request compiles its text).
    operation_cache_entries: usize = 10_000;
    /// The operation cache: bytes kept at most (estimated: about 11 bytes per byte of text).
    operation_cache_bytes: usize = 32 << 20;
    /// The filter cache (ArcQL texts parsed and planned once per release and type): filters
    /// kept at most (0: every request plans its filter).
    filter_cache_entries: usize = 10_000;
    /// The filter cache: bytes kept at most (estimated: 16 bytes per byte of text, plus 512).
    filter_cache_bytes: usize = 16 << 20;
    /// SQLite: bytes of the database file each connection reads through a memory map
    /// (`PRAGMA mmap_size`; 0: none, pages are copied from the OS cache). Mapping makes reads
    /// that miss SQLite's own page cache cheaper (`bench/mmap.sh`), and the
    /// mapped pages count in the process's RSS once per connection that touched them.
    sqlite_mmap_bytes: u64 = 0;
    /// SQLite: how long a read may run on the thread that asked for it, microseconds, before
    /// it is stopped and run again on a connection with a thread of its own (0: every read runs
    /// there). Running on the caller's thread saves two thread wake-ups per statement; a longer
    /// read would hold up the other requests of that thread.
    sqlite_inline_us: u64 = 2_000;
    /// Automatic persisted queries: texts kept by their hash at most (0: none; clients then
    /// send their texts).
    persisted_query_entries: usize = 10_000;
    /// Automatic persisted queries: bytes of text kept at most.
    persisted_query_bytes: usize = 16 << 20;
}

impl Limits {
    pub fn write_limits(&self) -> crate::plan::write::WriteLimits {
        crate::plan::write::WriteLimits {
            max_objects: self.objects_per_call,
            max_string: self.string_bytes,
            max_total_objects: self.write_objects,
            max_values: self.write_values,
        }
    }

    /// The limits of ArcQL queries.
    pub fn arcql(&self) -> crate::plan::filter::QueryLimits {
        crate::plan::filter::QueryLimits {
            list_hops: self.list_hops,
            joins: self.joins,
            conditions: self.conditions,
            sort_keys: self.sort_keys,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_and_errors() {
        let env = |k: &str| match k {
            "ARCBASE_LIMIT_BODY_BYTES" => Some("2048".to_string()),
            "ARCBASE_LIMIT_PAGE_MAX" => Some(" 50 ".to_string()),
            _ => None,
        };
        let l = Limits::from_env(env).unwrap();
        assert_eq!((l.body_bytes, l.page_max, l.depth), (2048, 50, 12));
        let e = Limits::from_env(|k: &str| (k == "ARCBASE_LIMIT_DEPTH").then(|| "deep".to_string())).unwrap_err();
        assert!(e.contains("ARCBASE_LIMIT_DEPTH=deep"), "{e}");
        assert!(Limits::table()
            .iter()
            .any(|(n, v, d, _)| *n == "statement_ms" && v == "ARCBASE_LIMIT_STATEMENT_MS" && d == "5000"));
    }
}
