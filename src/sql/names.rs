//! Storage names: which table and column holds what. One place, so the DDL, the readers and
//! the writers can never disagree.

use crate::model::{Field, ObjectType};

/// PostgreSQL's identifier limit; longer names are shortened with a stable hash.
const MAX_IDENT: usize = 63;

/// System columns of every object table.
pub const COL_INSTANCE: &str = "hypi_instance";
pub const COL_ID: &str = "hypi_id";
pub const COL_CREATED: &str = "hypi_created";
pub const COL_UPDATED: &str = "hypi_updated";
pub const COL_TRASHED: &str = "hypi_trashed";
pub const COL_CREATED_BY: &str = "hypi_created_by";
pub const COL_VERSION: &str = "hypi_version";
/// The password hash column of the built-in account type.
pub const COL_PASSWORD: &str = "hypi_password";

/// Columns of link tables (list references) and value tables (scalar lists).
pub const LINK_SRC: &str = "src";
pub const LINK_DST: &str = "dst";
pub const POS: &str = "pos";
pub const VALUE_OWNER: &str = "owner";
pub const VALUE: &str = "value";

/// The table of an object type of app `app`.
pub fn object_table(app: &str, ty: &ObjectType) -> String {
    shorten(format!("{app}__{}", ty.name))
}

/// The link table (list reference) or value table (scalar list) of `field`.
pub fn list_table(app: &str, ty: &ObjectType, field: &Field) -> String {
    shorten(format!("{app}__{}__{}", ty.name, field.name))
}

/// The column of a single-valued field is the field's own name.
pub fn column(field: &Field) -> &str {
    &field.name
}

/// Index names of an object table: derived from the table name and a purpose
/// (`unique__email`, `idx__a__b`, `ref__author`).
pub fn index_name(table: &str, purpose: &str) -> String {
    shorten(format!("ix__{table}__{purpose}"))
}

/// Index names of a list table (`pos`, `dst`, `value`). A different prefix from
/// [`index_name`]: the list table `T__unique` must not name its `value` index like the
/// unique index of a field `T.value`.
pub fn list_index_name(table: &str, purpose: &str) -> String {
    shorten(format!("lx__{table}__{purpose}"))
}

fn shorten(name: String) -> String {
    if name.len() <= MAX_IDENT {
        return name;
    }
    // FNV-1a: stable across versions and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut cut = 46;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{h:016x}", &name[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_shortened_stably() {
        let long = "a".repeat(100);
        let s1 = shorten(long.clone());
        assert!(s1.len() <= MAX_IDENT, "{s1}");
        assert_eq!(s1, shorten(long));
        assert_ne!(shorten("b".repeat(100)), s1);
        assert_eq!(shorten("short".into()), "short");
    }
}
