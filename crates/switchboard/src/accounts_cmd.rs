//! `switchboard accounts ...`: creates accounts, issues and revokes their
//! API keys, lists them. Works on the database file of a data directory;
//! a running server sees the changes at its next request.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use switchboard_server::{Accounts, DATABASE_FILE};

/// What to do with accounts.
#[derive(Subcommand)]
pub enum AccountsAction {
    /// Create an account; prints its first API key (shown only this once).
    Add {
        /// 1-64 characters of A-Z a-z 0-9 _ -.
        name: String,
    },
    /// Issue a further API key for an account (prints it, once).
    AddKey {
        /// The account.
        name: String,
    },
    /// List accounts and the ids of their active API keys.
    List,
    /// Revoke an API key, by the id `accounts list` shows.
    RevokeKey {
        /// The key's id (12 hex digits).
        id: String,
    },
}

/// Runs an accounts command against `data_dir`'s database.
pub fn run(data_dir: &Path, action: AccountsAction) -> ExitCode {
    let path: PathBuf = data_dir.join(DATABASE_FILE);
    let accounts = match Accounts::open(Some(&path)) {
        Ok(accounts) => accounts,
        Err(e) => return fail(format!("cannot open {}: {e}", path.display())),
    };
    let result = match action {
        AccountsAction::Add { name } => accounts.add(&name).map(|key| {
            println!("{key}");
            eprintln!("account {name:?} created; the API key above is shown only once");
        }),
        AccountsAction::AddKey { name } => accounts.add_key(&name).map(|key| {
            println!("{key}");
            eprintln!("new API key for {name:?}; it is shown only once");
        }),
        AccountsAction::List => accounts.list().map(|list| {
            for account in list {
                println!("{}\tkeys: {}", account.name, if account.keys.is_empty() { "-".to_owned() } else { account.keys.join(",") });
            }
        }),
        AccountsAction::RevokeKey { id } => accounts.revoke_key(&id).map(|account| eprintln!("API key {id} of {account:?} revoked")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e.to_string()),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("switchboard: {message}");
    ExitCode::FAILURE
}
