//! Cluster mode: several switchboard nodes share rooms through NATS
//! JetStream, one owner node per room at a time.
//!
//! This crate is the layer under the server's routing and failover:
//!
//! - [`Cluster::connect`] validates [`ClusterSettings`], connects one NATS
//!   client and creates (or opens) what the cluster keeps in JetStream: the
//!   lease bucket, the alarm bucket and the storage stream.
//! - [`Cluster::claim`] makes this node a room's owner ([`Claim::Owned`] with
//!   a self-renewing [`Lease`]) or names the live owner ([`Claim::Held`]).
//!   A lease is lost at once and for good when a renewal is refused or its
//!   TTL passes without one; [`Lease::revision`] is its fencing token.
//! - [`JetStreamStore`] implements [`switchboard_store::Store`] on a JetStream
//!   stream: reads come from an in-memory replica of each room the node
//!   owns, loaded by [`JetStreamStore::load_room`] after a claim; a commit is
//!   reported `Ok` only once JetStream acknowledged it, and a commit by a
//!   node that is no longer the owner is refused by JetStream itself.
//! - [`Tables`] opens shared tables ([`Table`]): key-value buckets every
//!   node mirrors in memory through a watch ([`Table::follow`]), written
//!   with compare-and-set only.
//! - [`names::encode_room`] is how a room name appears in subjects and keys.
//! - `testing::NatsServer` (feature `testing`) runs a `nats-server` for tests.
//!
//! ```no_run
//! use switchboard_cluster::{Claim, Cluster, ClusterSettings, JetStreamStore};
//! use switchboard_store::{Batch, Store, Write};
//!
//! # async fn run() -> Result<(), switchboard_cluster::ClusterError> {
//! let cluster = Cluster::connect(ClusterSettings::new(vec!["nats://127.0.0.1:4222".into()], "node-1")).await?;
//! let store = JetStreamStore::new(&cluster);
//! match cluster.claim("chat/lobby").await? {
//!     Claim::Owned(lease) => {
//!         store.load_room(&lease).await?; // before the room starts here
//!         let batch = Batch { room: "chat/lobby".into(), writes: vec![Write::Put("topic".into(), b"hi".to_vec())] };
//!         store.commit(batch, Box::new(|result| println!("stored in JetStream: {result:?}")));
//!         // ... run the room while lease.is_held(); when it stops:
//!         store.forget_room("chat/lobby");
//!         lease.release().await?;
//!     }
//!     Claim::Held { node } => println!("{node} owns the room: forward there"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Everything is designed for nats-server 2.9 (Debian's): see
//! `docs/cluster.md`, "Storage and leases", for subjects, buckets, TTLs,
//! fencing and what a newer server would improve.

mod cluster;
mod error;
mod lease;
pub mod names;
mod settings;
mod stats;
mod store;
mod table;

#[cfg(feature = "testing")]
pub mod testing;

pub use cluster::Cluster;
pub use error::ClusterError;
pub use lease::{Claim, Holder, Lease, LeaseWatch};
pub use settings::{ClusterSettings, SettingsError, DEFAULT_LEASE_TTL, DEFAULT_PREFIX, MAX_LEASE_TTL, MIN_LEASE_TTL};
pub use stats::ClusterStats;
pub use store::{JetStreamStore, StoreOptions, DEFAULT_COMPACT_AFTER};
pub use table::{Change, Follower, Table, Tables};
