//! Statements of the built-in account type: credential lookups and the password hash, which
//! no generated read ever selects.

use super::names::*;
use super::{Dialect, Sql};
use crate::model::Model;

pub struct AccountRenderer<'a> {
    pub model: &'a Model,
    pub app: &'a str,
    pub dialect: Dialect,
    pub account_type: usize,
}

impl AccountRenderer<'_> {
    fn table(&self) -> String {
        object_table(self.app, &self.model.types[self.account_type])
    }

    /// `(id, password hash)` of the live account with `username`.
    pub fn by_username(&self, instance: &str, username: &str) -> Sql {
        let mut sql = Sql::new(self.dialect);
        sql.push(&format!("SELECT {COL_ID}, {COL_PASSWORD} FROM ")).ident(&self.table());
        sql.push(&format!(" WHERE {COL_INSTANCE} = ")).bind(instance).push(" AND \"username\" = ").bind(username);
        sql.push(&format!(" AND {COL_TRASHED} IS NULL"));
        sql
    }

    /// `(id, password hash)` of live accounts listing `email` (at most two: more than one
    /// account with the address makes it useless for logging in).
    pub fn by_email(&self, instance: &str, email: &str) -> Sql {
        let ty = &self.model.types[self.account_type];
        let Some((_, emails)) = ty.field("emails") else { return self.by_username(instance, "") };
        let mut sql = Sql::new(self.dialect);
        sql.push(&format!("SELECT DISTINCT a.{COL_ID}, a.{COL_PASSWORD} FROM ")).ident(&self.table());
        sql.push(" a JOIN ").ident(&list_table(self.app, ty, emails));
        sql.push(&format!(
            " e ON e.{COL_INSTANCE} = a.{COL_INSTANCE} AND e.{VALUE_OWNER} = a.{COL_ID} WHERE a.{COL_INSTANCE} = "
        ));
        sql.bind(instance).push(&format!(" AND e.{VALUE} = ")).bind(email);
        sql.push(&format!(" AND a.{COL_TRASHED} IS NULL LIMIT 2"));
        sql
    }

    /// Does the live account `id` exist (a token of a deleted account is refused)?
    pub fn exists(&self, instance: &str, id: &str) -> Sql {
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT 1 FROM ").ident(&self.table());
        sql.push(&format!(" WHERE {COL_INSTANCE} = ")).bind(instance).push(&format!(" AND {COL_ID} = ")).bind(id);
        sql.push(&format!(" AND {COL_TRASHED} IS NULL"));
        sql
    }

    /// Store the password hash of account `id`.
    pub fn set_password(&self, instance: &str, id: &str, hash: &str) -> Sql {
        let mut sql = Sql::new(self.dialect);
        sql.push("UPDATE ").ident(&self.table()).push(&format!(" SET {COL_PASSWORD} = ")).bind(hash);
        sql.push(&format!(" WHERE {COL_INSTANCE} = ")).bind(instance).push(&format!(" AND {COL_ID} = ")).bind(id);
        sql
    }
}
