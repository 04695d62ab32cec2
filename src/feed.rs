//! The change feed's vocabulary: every write appends one row per object it changed, in the
//! write's own transaction (`sql::changes` renders the rows, `ops::changes` reads them in
//! commit order). Subscriptions and the sync worker consume it.

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeOp {
    Insert,
    Update,
    Trash,
    Untrash,
    Delete,
    Link,
    Unlink,
}

impl ChangeOp {
    pub const ALL: [ChangeOp; 7] = [
        ChangeOp::Insert,
        ChangeOp::Update,
        ChangeOp::Trash,
        ChangeOp::Untrash,
        ChangeOp::Delete,
        ChangeOp::Link,
        ChangeOp::Unlink,
    ];

    /// The stored form (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Insert => "insert",
            ChangeOp::Update => "update",
            ChangeOp::Trash => "trash",
            ChangeOp::Untrash => "untrash",
            ChangeOp::Delete => "delete",
            ChangeOp::Link => "link",
            ChangeOp::Unlink => "unlink",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeOp> {
        ChangeOp::ALL.into_iter().find(|op| op.as_str().eq_ignore_ascii_case(s))
    }
}

/// A change to record: the object (of the model's type `type_idx`), what happened, and the
/// object's version after it. Owned: a write keeps its changes until its commit writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    pub type_idx: usize,
    pub id: String,
    pub op: ChangeOp,
    pub version: i64,
    /// The object's owner (`hypi.createdBy`), recorded for a DELETE.
    pub owner: Option<String>,
}

/// A recorded change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its position in the feed; positions grow in commit order as [`crate::ops::changes`]
    /// delivers them.
    pub seq: i64,
    pub instance: String,
    pub type_name: String,
    pub id: String,
    pub op: ChangeOp,
    pub version: i64,
    /// When (the write's timestamp, stored form).
    pub at: String,
    /// The owner of a deleted object (DELETE only).
    pub owner: Option<String>,
}
