//! `switchboard accounts ...`: creates accounts, issues and revokes their
//! API keys, lists them. Works on the database file of a data directory
//! (a running server sees the changes at its next request), or given the
//! cluster settings `serve` takes, on the cluster's shared account table
//! (every node sees the changes within moments).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use switchboard_server::{AccountError, Accounts, ClusterConfig, DATABASE_FILE};

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

/// Runs an accounts command against `data_dir`'s database, or with
/// `cluster`, against the cluster's shared account table.
pub fn run(data_dir: &Path, cluster: Option<ClusterConfig>, action: AccountsAction) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async {
        let accounts = match cluster {
            Some(config) => match Accounts::connect_shared(config.settings).await {
                Ok(accounts) => accounts,
                Err(e) => return fail(e.to_string()),
            },
            None => {
                let path: PathBuf = data_dir.join(DATABASE_FILE);
                match Accounts::open(Some(&path)) {
                    Ok(accounts) => accounts,
                    Err(e) => return fail(format!("cannot open {}: {e}", path.display())),
                }
            }
        };
        match act(&accounts, action).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e.to_string()),
        }
    })
}

async fn act(accounts: &Accounts, action: AccountsAction) -> Result<(), AccountError> {
    match action {
        AccountsAction::Add { name } => accounts.add(&name).await.map(|key| {
            println!("{key}");
            eprintln!("account {name:?} created; the API key above is shown only once");
        }),
        AccountsAction::AddKey { name } => accounts.add_key(&name).await.map(|key| {
            println!("{key}");
            eprintln!("new API key for {name:?}; it is shown only once");
        }),
        AccountsAction::List => accounts.list().await.map(|list| {
            for account in list {
                println!("{}\tkeys: {}", account.name, if account.keys.is_empty() { "-".to_owned() } else { account.keys.join(",") });
            }
        }),
        AccountsAction::RevokeKey { id } => accounts.revoke_key(&id).await.map(|account| eprintln!("API key {id} of {account:?} revoked")),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("switchboard: {message}");
    ExitCode::FAILURE
}
