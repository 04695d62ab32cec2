//! Who is asking, and what `@access` lets them see and change. No SQL here: `sql` renders
//! [`Allowed`] into every statement it writes, and the operations layer decides with the
//! same rules what needs no statement at all (creating, registering).

use crate::model::{Level, Model};

/// The caller of one request, as authentication decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Viewer {
    /// The admin key (or development mode): everything.
    #[default]
    Admin,
    /// An account of the instance (its id).
    Account(String),
    /// No credentials, on an instance that allows anonymous requests.
    Anonymous,
}

/// Which existing objects of one type a viewer may read or change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed<'a> {
    All,
    Nothing,
    /// Only the objects this account created (`hypi.createdBy`).
    CreatedBy(&'a str),
}

impl Viewer {
    /// The account id, for an account.
    pub fn account(&self) -> Option<&str> {
        match self {
            Viewer::Account(id) => Some(id),
            _ => None,
        }
    }

    /// What the type's `@access` lets this viewer read (`write = false`) or change.
    pub fn allowed(&self, model: &Model, type_idx: usize, write: bool) -> Allowed<'_> {
        let access = model.types[type_idx].access;
        let level = if write { access.write } else { access.read };
        match (self, level) {
            (Viewer::Admin, _) | (_, Level::Public) | (Viewer::Account(_), Level::Authenticated) => Allowed::All,
            (Viewer::Anonymous, _) => Allowed::Nothing,
            (Viewer::Account(id), Level::Owner) => Allowed::CreatedBy(id),
        }
    }

    /// May this viewer create objects of `type_idx`?
    pub fn may_create(&self, model: &Model, type_idx: usize) -> bool {
        match self {
            Viewer::Admin | Viewer::Account(_) => true,
            Viewer::Anonymous => model.types[type_idx].access.write == Level::Public,
        }
    }
}
