//! Accounts and API-key hashes in the node's SQLite file (tables
//! `accounts` and `api_keys`), through a connection of their own;
//! statements run on blocking threads.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{params, Connection, OptionalExtension};

use crate::accounts::{key_id, new_key, now_ms, open_database, AccountError, AccountInfo};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    name       TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    hash       BLOB PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    account    TEXT NOT NULL REFERENCES accounts(name),
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
";

pub(crate) struct SqliteAccounts {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteAccounts {
    pub(crate) fn open(path: Option<&Path>) -> Result<SqliteAccounts, AccountError> {
        let conn = open_database(path)?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteAccounts { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `call` with `arg` on a blocking thread.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        arg: &str,
        call: impl FnOnce(&mut Connection, &str) -> Result<T, AccountError> + Send + 'static,
    ) -> Result<T, AccountError> {
        let (conn, arg) = (self.conn.clone(), arg.to_owned());
        tokio::task::spawn_blocking(move || call(&mut conn.lock().unwrap_or_else(PoisonError::into_inner), &arg))
            .await
            .map_err(|_| AccountError::Database("the database call failed".into()))?
    }

    pub(crate) async fn resolve(&self, hash: [u8; 32]) -> Result<Option<String>, AccountError> {
        self.call("", move |conn, _| {
            Ok(conn.query_row("SELECT account FROM api_keys WHERE hash = ?1 AND revoked_ms IS NULL", [&hash[..]], |r| r.get(0)).optional()?)
        })
        .await
    }
}

pub(crate) fn add(conn: &mut Connection, name: &str) -> Result<String, AccountError> {
    let tx = conn.transaction()?;
    let inserted = tx.execute("INSERT INTO accounts (name, created_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING", params![name, now_ms() as i64])?;
    if inserted == 0 {
        return Err(AccountError::Exists(name.to_owned()));
    }
    let key = insert_key(&tx, name)?;
    tx.commit()?;
    Ok(key)
}

pub(crate) fn add_key(conn: &mut Connection, name: &str) -> Result<String, AccountError> {
    let tx = conn.transaction()?;
    let exists = tx.query_row("SELECT 1 FROM accounts WHERE name = ?1", [name], |_| Ok(())).optional()?.is_some();
    if !exists {
        return Err(AccountError::NoAccount(name.to_owned()));
    }
    let key = insert_key(&tx, name)?;
    tx.commit()?;
    Ok(key)
}

pub(crate) fn list(conn: &mut Connection) -> Result<Vec<AccountInfo>, AccountError> {
    let mut accounts = conn.prepare("SELECT name, created_ms FROM accounts ORDER BY name")?;
    let mut keys = conn.prepare("SELECT id FROM api_keys WHERE account = ?1 AND revoked_ms IS NULL ORDER BY created_ms, id")?;
    let rows = accounts.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?.collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(name, created)| {
            let keys = keys.query_map([&name], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
            Ok(AccountInfo { name, created_ms: created as u64, keys })
        })
        .collect()
}

pub(crate) fn revoke_key(conn: &mut Connection, id: &str) -> Result<String, AccountError> {
    let account: Option<String> = conn
        .query_row("UPDATE api_keys SET revoked_ms = ?1 WHERE id = ?2 AND revoked_ms IS NULL RETURNING account", params![now_ms() as i64, id], |r| r.get(0))
        .optional()?;
    account.ok_or_else(|| AccountError::NoKey(id.to_owned()))
}

fn insert_key(tx: &rusqlite::Transaction<'_>, account: &str) -> Result<String, AccountError> {
    let (key, hash) = new_key();
    tx.execute("INSERT INTO api_keys (hash, id, account, created_ms) VALUES (?1, ?2, ?3, ?4)", params![&hash[..], key_id(&hash), account, now_ms() as i64])?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hashes_are_stored() {
        let mut conn = open_database(None).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let key = add(&mut conn, "acme").unwrap();
        let stored: i64 = conn.query_row("SELECT count(*) FROM api_keys WHERE instr(hash, ?1) > 0", [key.as_bytes()], |r| r.get(0)).unwrap();
        assert_eq!(stored, 0);
        assert_eq!(list(&mut conn).unwrap()[0].keys.len(), 1);
    }
}
