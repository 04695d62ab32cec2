//! The validated app model: what an SDL means once the build step accepted it.
//!
//! `parse` turns SDL text into a [`Model`] or a list of [`Diagnostic`]s (all of them, each with
//! `line:column`). Everything downstream (the GraphQL schema, the SQL renderer, the DDL) reads
//! only this model, so every identifier that reaches SQL has passed the checks in `parse`.
//!
//! Invariants: no I/O, not async; type and field names are GraphQL names of at most
//! [`MAX_NAME_LEN`] characters that do not collide with generated or system names. Because
//! they also name tables and columns: they contain no `__` (the storage-name separator),
//! object type names differ in more than letter case, and so do the field names of a type
//! (SQL identifiers ignore case). Required one-to-one references form no cycle (no object on
//! it could ever be created, and the generated `XInput` types would be invalid GraphQL), so
//! every valid model builds a valid GraphQL schema.

pub mod compat;
mod parse;

pub use parse::{parse_sdl, Diagnostic};

use std::collections::HashMap;

/// Longest type, field or enum value name accepted. PostgreSQL truncates identifiers at 63
/// bytes and storage names combine a type and a field name, so names are kept short.
pub const MAX_NAME_LEN: usize = 40;

/// Most fields of one object type. A type is a table with a column per scalar field (and
/// seven system columns) and a read document with a member per selected field: PostgreSQL
/// allows 1,600 columns, SQLite 2,000 by default.
pub const MAX_FIELDS: usize = 500;

/// Most object types of one app (each is a table, with one more per list field).
pub const MAX_TYPES: usize = 500;

/// A built-in scalar kind of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scalar {
    Id,
    String,
    Int,
    Float,
    Boolean,
    DateTime,
    Long,
    Json,
}

impl Scalar {
    pub fn from_name(name: &str) -> Option<Scalar> {
        Some(match name {
            "ID" => Scalar::Id,
            "String" => Scalar::String,
            "Int" => Scalar::Int,
            "Float" => Scalar::Float,
            "Boolean" => Scalar::Boolean,
            "DateTime" => Scalar::DateTime,
            "Long" => Scalar::Long,
            "Json" => Scalar::Json,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Scalar::Id => "ID",
            Scalar::String => "String",
            Scalar::Int => "Int",
            Scalar::Float => "Float",
            Scalar::Boolean => "Boolean",
            Scalar::DateTime => "DateTime",
            Scalar::Long => "Long",
            Scalar::Json => "Json",
        }
    }
}

/// What a single value of a field is: a scalar, an enum of the app, or an object of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scalar(Scalar),
    /// Index into [`Model::enums`].
    Enum(usize),
    /// Index into [`Model::types`]: the field is a reference.
    Object(usize),
}

/// One field of an object type as written in the SDL.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub base: Base,
    /// `[T]`: a scalar list or a list reference.
    pub list: bool,
    /// The outer `!`.
    pub required: bool,
    /// The `!` inside a list (`[T!]`).
    pub item_required: bool,
    /// `@unique`: enforced per instance by a unique index (for a scalar list: each element
    /// belongs to at most one object).
    pub unique: bool,
    /// Values are stored case- and Unicode-folded (NFKC, lower case) so that uniqueness and
    /// lookups ignore both: the built-in `Account.emails`.
    pub normalized: bool,
    pub description: Option<String>,
    pub line: usize,
    pub column: usize,
}

/// How a field is stored; this decides the table layout and the SQL for reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// A typed column of the type's own table.
    Column,
    /// A one-to-one reference: a column holding the target's id.
    RefColumn(usize),
    /// An ordered link table (`source`, `target`, `position`).
    LinkTable(usize),
    /// A value table (`owner`, `position`, `value`).
    ValueTable,
}

impl Field {
    pub fn storage(&self) -> Storage {
        match (&self.base, self.list) {
            (Base::Object(t), false) => Storage::RefColumn(*t),
            (Base::Object(t), true) => Storage::LinkTable(*t),
            (_, true) => Storage::ValueTable,
            (_, false) => Storage::Column,
        }
    }

    /// The scalar kind a single value of this field is stored as (enums are strings).
    pub fn value_scalar(&self) -> Option<Scalar> {
        match self.base {
            Base::Scalar(s) => Some(s),
            Base::Enum(_) => Some(Scalar::String),
            Base::Object(_) => None,
        }
    }

    pub fn is_reference(&self) -> bool {
        matches!(self.base, Base::Object(_))
    }
}

/// An object type of the app: stored in a table of its own.
#[derive(Debug, Clone)]
pub struct ObjectType {
    pub name: String,
    pub fields: Vec<Field>,
    /// `@indices(sets: ...)`: each set is a list of indexes into `fields`.
    pub indices: Vec<Vec<usize>>,
    pub description: Option<String>,
    /// `@access(read:, write:)`; OWNER for both by default.
    pub access: Access,
    /// The built-in `Account` type (its rows also hold a password hash).
    pub builtin: bool,
    /// `@hyper(...)`: the hyper services that follow this type's objects.
    pub hyper: Option<HyperSpec>,
    field_index: HashMap<String, usize>,
}

/// A hyper service that can follow a type (`@hyper`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HyperService {
    Data,
    Search,
    Cache,
    Count,
    Notify,
    Attachments,
}

impl HyperService {
    pub const ALL: [HyperService; 6] = [
        HyperService::Data,
        HyperService::Search,
        HyperService::Cache,
        HyperService::Count,
        HyperService::Notify,
        HyperService::Attachments,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HyperService::Data => "data",
            HyperService::Search => "search",
            HyperService::Cache => "cache",
            HyperService::Count => "count",
            HyperService::Notify => "notify",
            HyperService::Attachments => "attachments",
        }
    }

    pub fn from_name(name: &str) -> Option<HyperService> {
        HyperService::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// How a write waits for a service that follows its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HyperMode {
    /// The write commits; the service catches up.
    #[default]
    NonAtomic,
    /// The write waits for the service and fails (rolled back) when it fails.
    Atomic,
}

impl HyperMode {
    pub fn as_str(self) -> &'static str {
        match self {
            HyperMode::NonAtomic => "NON_ATOMIC",
            HyperMode::Atomic => "ATOMIC",
        }
    }
}

/// `@hyper(search: [...], store: [...], cache:, count:, notify:, attachments:, data:, mode:,
/// modes: {...})` on a type, validated: field lists are indexes into the type's fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HyperSpec {
    /// Mirror every object as a hyper data document (on unless `data: false`).
    pub data: bool,
    /// Fields searched as words (String, ID or enum, not lists).
    pub search: Vec<usize>,
    /// Fields returned with each search match (default: the searched ones).
    pub store: Vec<usize>,
    pub cache: bool,
    pub count: bool,
    pub notify: bool,
    pub attachments: bool,
    /// The mode of every service without its own in `modes`.
    pub mode: HyperMode,
    pub modes: Vec<(HyperService, HyperMode)>,
}

impl HyperSpec {
    /// The services this spec turns on, in a fixed order.
    pub fn services(&self) -> Vec<HyperService> {
        HyperService::ALL
            .into_iter()
            .filter(|s| match s {
                HyperService::Data => self.data,
                HyperService::Search => !self.search.is_empty(),
                HyperService::Cache => self.cache,
                HyperService::Count => self.count,
                HyperService::Notify => self.notify,
                HyperService::Attachments => self.attachments,
            })
            .collect()
    }

    /// Some service of this spec is in ATOMIC mode.
    pub fn any_atomic(&self) -> bool {
        self.services().into_iter().any(|s| self.mode_of(s) == HyperMode::Atomic)
    }

    /// The mode of `service`.
    pub fn mode_of(&self, service: HyperService) -> HyperMode {
        self.modes.iter().find(|(s, _)| *s == service).map_or(self.mode, |(_, m)| *m)
    }
}

/// Who may see (read) or change (write) objects of a type, besides the admin key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Anyone, anonymous callers included.
    Public,
    /// Any account of the instance.
    Authenticated,
    /// The account that created the object (`hypi.createdBy`).
    Owner,
}

impl Level {
    pub fn from_name(name: &str) -> Option<Level> {
        Some(match name {
            "PUBLIC" => Level::Public,
            "AUTHENTICATED" => Level::Authenticated,
            "OWNER" => Level::Owner,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub read: Level,
    pub write: Level,
}

impl Default for Access {
    fn default() -> Self {
        Access { read: Level::Owner, write: Level::Owner }
    }
}

/// The name of the built-in account type every app has.
pub const ACCOUNT: &str = "Account";

impl ObjectType {
    /// The built-in `Account { username: String! @unique  emails: [String] }` (each address
    /// unique per instance, compared case- and Unicode-insensitively).
    pub fn account() -> ObjectType {
        let field = |name: &str, required: bool, list: bool, unique: bool| Field {
            name: name.to_string(),
            base: Base::Scalar(Scalar::String),
            list,
            required,
            item_required: false,
            unique,
            normalized: list,
            description: None,
            line: 0,
            column: 0,
        };
        // An address belongs to at most one account of an instance, compared without case.
        let fields = vec![field("username", true, false, true), field("emails", false, true, true)];
        let field_index = fields.iter().enumerate().map(|(i, f)| (f.name.clone(), i)).collect();
        ObjectType {
            name: ACCOUNT.to_string(),
            fields,
            indices: Vec::new(),
            description: Some("An account of the instance: it logs in and owns what it creates.".into()),
            access: Access::default(),
            builtin: true,
            hyper: None,
            field_index,
        }
    }

    pub fn field(&self, name: &str) -> Option<(usize, &Field)> {
        self.field_index.get(name).map(|&i| (i, &self.fields[i]))
    }
}

#[derive(Debug, Clone)]
pub struct EnumType {
    pub name: String,
    pub values: Vec<String>,
    pub description: Option<String>,
}

/// The validated app model.
#[derive(Debug, Clone)]
pub struct Model {
    pub types: Vec<ObjectType>,
    pub enums: Vec<EnumType>,
    type_index: HashMap<String, usize>,
}

impl Model {
    /// The built-in account type's index.
    pub fn account_type(&self) -> Option<usize> {
        self.types.iter().position(|t| t.builtin)
    }

    pub fn type_by_name(&self, name: &str) -> Option<(usize, &ObjectType)> {
        self.type_index.get(name).map(|&i| (i, &self.types[i]))
    }

    /// Lower-cased first letter: the name of a type's field in `HypiAggregationType`.
    pub fn lower_first(name: &str) -> String {
        let mut chars = name.chars();
        match chars.next() {
            Some(c) => c.to_lowercase().chain(chars).collect(),
            None => String::new(),
        }
    }
}

/// The flattened system fields, in the order the generated enums list them.
pub const HYPI_FLAT_FIELDS: [&str; 6] =
    ["hypi_id", "hypi_created", "hypi_updated", "hypi_trashed", "hypi_createdBy", "hypi_instanceId"];

/// Type names that the generated schema or the system uses; an app may not define them.
pub const RESERVED_TYPE_NAMES: &[&str] = &[
    "Query",
    "Mutation",
    "Subscription",
    "Hypi",
    "HypiInput",
    "HypiInputOpt",
    "HypiMutationType",
    "HypiUpsertInputUnion",
    "HypiRootAggregate",
    "HypiFilterConnection",
    "HypiResultEdge",
    "HypiAggregationType",
    "PageInfo",
    "AggInt",
    "AggFloat",
    "AggOtherScalar",
    "Pair",
    "AggOrder",
    "TimeUnit",
    "Account",
    "AccessToken",
    "ID",
    "String",
    "Int",
    "Float",
    "Boolean",
    "DateTime",
    "Long",
    "Json",
];

/// Suffixes of the per-type generated names (`XInput`, `XAggs`, ...).
pub const GENERATED_SUFFIXES: &[&str] =
    &["Input", "InputOpt", "Aggs", "Fields", "ScalarFields", "NumericFields", "GroupByOptions"];
