//! Statements of the search service. The words of each searched field are computed by the
//! service (lower-case letters and digits, `hyper::search::terms`) and stored as one row per
//! document and field: SQLite in the index's own FTS5 table `hyper_fts_<store id>` (so its
//! BM25 statistics are the index's alone), PostgreSQL as a `tsvector` in
//! `hyper_search_terms` (GIN-indexed), both in the same transaction as the document.
//!
//! Ranking: SQLite sums BM25 over the matching fields of a document; PostgreSQL sums
//! `ts_rank`. Ties go to the smaller key.

use super::{page, Docs};
use crate::hyper::data::Selector;
use crate::hyper::search::Term;
use crate::sql::{Dialect, Sql};

fn fts_table(store_id: i64) -> String {
    format!("hyper_fts_{store_id}")
}

/// What an index needs besides its store row (SQLite: its FTS5 table).
pub fn create_index(dialect: Dialect, store_id: i64) -> Option<Sql> {
    match dialect {
        Dialect::Sqlite => Some(Sql::raw(
            dialect,
            &format!(
                "CREATE VIRTUAL TABLE IF NOT EXISTS {} USING fts5(key UNINDEXED, field UNINDEXED, words, tokenize = 'unicode61 remove_diacritics 0')",
                fts_table(store_id)
            ),
        )),
        Dialect::Postgres => None,
    }
}

/// Remove what [`create_index`] made.
pub fn drop_index(dialect: Dialect, store_id: i64) -> Option<Sql> {
    match dialect {
        Dialect::Sqlite => Some(Sql::raw(dialect, &format!("DROP TABLE IF EXISTS {}", fts_table(store_id)))),
        Dialect::Postgres => None,
    }
}

/// Insert a document unless its key is taken (rows changed: 0 or 1).
pub fn insert_doc(dialect: Dialect, store_id: i64, key: &str, body: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO hyper_search_docs (store_id, key, body) VALUES (").bind(store_id);
    sql.push(", ").bind(key).push(", ").bind(body).push(") ON CONFLICT (store_id, key) DO NOTHING");
    sql
}

/// Write a document, replacing one with its key.
pub fn upsert_doc(dialect: Dialect, store_id: i64, key: &str, body: &str) -> Sql {
    let mut sql = insert_doc(dialect, store_id, key, body);
    sql.text.truncate(sql.text.len() - "DO NOTHING".len());
    sql.push("DO UPDATE SET body = excluded.body");
    sql
}

/// One document: `body`.
pub fn get_doc(dialect: Dialect, store_id: i64, key: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT body FROM hyper_search_docs WHERE store_id = ").bind(store_id).push(" AND key = ").bind(key);
    sql
}

/// Remove a document (rows changed: 0 or 1; PostgreSQL's words go with it by cascade).
pub fn delete_doc(dialect: Dialect, store_id: i64, key: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM hyper_search_docs WHERE store_id = ").bind(store_id).push(" AND key = ").bind(key);
    sql
}

/// Remove a document and its words; the last statement's rows changed say whether it existed.
///
/// The document's row is locked first, as every write of a document does (the replace writes
/// the document, then its words): on PostgreSQL, a removal that took the words first deadlocked
/// with a replace of the same key, and one of the two failed. There the words go by the
/// foreign key's cascade; SQLite (one writer at a time) deletes them first, while their rowid
/// range can still be read from the document's row.
pub fn remove_doc(dialect: Dialect, store_id: i64, key: &str) -> Vec<Sql> {
    match dialect {
        Dialect::Sqlite => vec![delete_words(dialect, store_id, key), delete_doc(dialect, store_id, key)],
        Dialect::Postgres => vec![delete_doc(dialect, store_id, key)],
    }
}

/// Remove the words of a document (to write new ones: [`remove_doc`] removes a document).
pub fn delete_words(dialect: Dialect, store_id: i64, key: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    match dialect {
        // By rowid range (see `insert_words`): `key` is not indexed in FTS5, a delete by it
        // would scan the whole index.
        Dialect::Sqlite => {
            sql.push(&format!("DELETE FROM {} WHERE rowid BETWEEN ", fts_table(store_id)));
            doc_rowid(&mut sql, store_id, key);
            sql.push(&format!(" * {FIELDS_PER_DOC} AND "));
            doc_rowid(&mut sql, store_id, key);
            sql.push(&format!(" * {FIELDS_PER_DOC} + {}", FIELDS_PER_DOC - 1))
        }
        Dialect::Postgres => {
            sql.push("DELETE FROM hyper_search_terms WHERE store_id = ").bind(store_id).push(" AND key = ").bind(key)
        }
    };
    sql
}

/// The most fields of one document an index keeps words of (SQLite numbers a document's
/// FTS5 rows `doc rowid * FIELDS_PER_DOC + field`, so a document's words are one rowid range).
pub const FIELDS_PER_DOC: i64 = 1 << 16;

/// `(SELECT rowid FROM hyper_search_docs WHERE ...)` of a document (SQLite).
fn doc_rowid(sql: &mut Sql, store_id: i64, key: &str) {
    sql.push("(SELECT rowid FROM hyper_search_docs WHERE store_id = ").bind(store_id);
    sql.push(" AND key = ").bind(key).push(")");
}

/// Store the words of fields of a document (at most [`FIELDS_PER_DOC`], after its row in
/// `hyper_search_docs` is written): `(field, words separated by spaces)`.
pub fn insert_words(dialect: Dialect, store_id: i64, key: &str, fields: &[(String, String)]) -> Option<Sql> {
    if fields.is_empty() {
        return None;
    }
    let mut sql = Sql::new(dialect);
    match dialect {
        Dialect::Sqlite => sql.push(&format!("INSERT INTO {} (rowid, key, field, words) VALUES ", fts_table(store_id))),
        Dialect::Postgres => sql.push("INSERT INTO hyper_search_terms (store_id, key, field, tsv) VALUES "),
    };
    for (i, (field, words)) in fields.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(");
        match dialect {
            Dialect::Postgres => sql.bind(store_id).push(", "),
            Dialect::Sqlite => {
                doc_rowid(&mut sql, store_id, key);
                sql.push(&format!(" * {FIELDS_PER_DOC} + {i}, "))
            }
        };
        sql.bind(key).push(", ").bind(field.as_str()).push(", ");
        match dialect {
            Dialect::Sqlite => sql.bind(words.as_str()),
            Dialect::Postgres => sql.push("to_tsvector('simple', ").bind(words.as_str()).push(")"),
        };
        sql.push(")");
    }
    Some(sql)
}

/// The full-text query of `terms`: any of the words (a prefix for `word*`).
fn match_text(dialect: Dialect, terms: &[Term]) -> String {
    let parts: Vec<String> = terms
        .iter()
        .map(|t| match dialect {
            // Words are letters and digits only: nothing in them needs quoting, but quoting
            // keeps FTS5's operators (AND, OR, NOT, NEAR) words.
            Dialect::Sqlite => format!("\"{}\"{}", t.word, if t.prefix { "*" } else { "" }),
            Dialect::Postgres => format!("'{}'{}", t.word, if t.prefix { ":*" } else { "" }),
        })
        .collect();
    parts.join(match dialect {
        Dialect::Sqlite => " OR ",
        Dialect::Postgres => " | ",
    })
}

/// The best matches of index `store_id`: `key, score, body`.
pub fn query(
    dialect: Dialect,
    store_id: i64,
    terms: &[Term],
    fields: Option<&[String]>,
    filter: Option<&Selector>,
    limit: u32,
) -> Sql {
    let mut sql = Sql::new(dialect);
    let fields_in = |sql: &mut Sql, col: &str| {
        if let Some(fields) = fields {
            sql.push(" AND ").push(col).push(" IN (");
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(f.as_str());
            }
            if fields.is_empty() {
                sql.push("NULL");
            }
            sql.push(")");
        }
    };
    let table = fts_table(store_id);
    sql.push("SELECT m.key, m.score, sd.body FROM (");
    match dialect {
        Dialect::Sqlite => {
            sql.push(&format!("SELECT f.key AS key, -SUM(f.rank) AS score FROM {table} f WHERE {table} MATCH "));
            sql.bind(match_text(dialect, terms));
            fields_in(&mut sql, "f.field");
        }
        Dialect::Postgres => {
            sql.push("SELECT t.key AS key, SUM(ts_rank(t.tsv, q.q)) AS score FROM hyper_search_terms t, (SELECT CAST(");
            sql.bind(match_text(dialect, terms)).push(" AS tsquery) AS q) q WHERE t.store_id = ").bind(store_id);
            sql.push(" AND t.tsv @@ q.q");
            fields_in(&mut sql, "t.field");
        }
    }
    // The matches drive the join (SQLite's planner, without fresh statistics, would walk the
    // whole store's documents instead: CROSS JOIN fixes the order).
    let join = if dialect == Dialect::Sqlite { " CROSS JOIN " } else { " JOIN " };
    sql.push(" GROUP BY key) m").push(join).push("hyper_search_docs sd ON sd.store_id = ").bind(store_id);
    sql.push(" AND sd.key = m.key");
    if let Some(filter) = filter {
        sql.push(" WHERE ");
        Docs { dialect, alias: "sd" }.selector(&mut sql, filter);
    }
    sql.push(" ORDER BY m.score DESC, m.key ASC");
    page(&mut sql, limit, 0);
    sql
}
