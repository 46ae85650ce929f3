//! Room leases against a real nats-server: claim, race, renewal, loss,
//! release.

use std::time::Duration;

use switchboard_cluster::testing::NatsServer;
use switchboard_cluster::{Claim, Cluster, ClusterError, ClusterSettings, Lease};

/// Short, so losses show quickly; long enough that a busy machine does not
/// cost a renewal.
const TTL: Duration = Duration::from_secs(2);

async fn node(server: &NatsServer, name: &str) -> Cluster {
    let mut settings = ClusterSettings::new(vec![server.url()], name);
    settings.lease_ttl = TTL;
    Cluster::connect(settings).await.expect("connect")
}

fn owned(claim: Claim) -> Lease {
    match claim {
        Claim::Owned(lease) => lease,
        Claim::Held { node } => panic!("expected to own the room, {node} holds it"),
    }
}

fn held_by(claim: Claim) -> String {
    match claim {
        Claim::Held { node } => node,
        Claim::Owned(lease) => panic!("expected the room to be held elsewhere, got lease {}", lease.revision()),
    }
}

/// Claims until this node owns the room, for at most `limit`.
async fn claim_until_owned(cluster: &Cluster, room: &str, limit: Duration) -> Lease {
    let started = tokio::time::Instant::now();
    loop {
        if let Claim::Owned(lease) = cluster.claim(room).await.unwrap() {
            return lease;
        }
        assert!(started.elapsed() < limit, "{} could not claim {room} within {limit:?}", cluster.node());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_claim_owns_and_later_claims_name_the_owner() {
    let server = NatsServer::start();
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    assert!(a.is_connected());
    let lease = owned(a.claim("chat/lobby").await.unwrap());
    assert!(lease.is_held());
    assert_eq!(lease.room(), "chat/lobby");
    assert_eq!(held_by(b.claim("chat/lobby").await.unwrap()), "a");
    assert_eq!(held_by(a.claim("chat/lobby").await.unwrap()), "a", "a second claim by the holder does not make a second lease");
    assert_eq!(b.owner("chat/lobby").await.unwrap().as_deref(), Some("a"));
    assert!(b.is_current("chat/lobby", lease.revision()).await.unwrap());
    assert_eq!(b.owner("chat/other").await.unwrap(), None);
    // Names with characters NATS reserves are rooms like any other.
    let odd = owned(b.claim("chat/a.b c*>").await.unwrap());
    assert_eq!(held_by(a.claim("chat/a.b c*>").await.unwrap()), "b");
    assert!(matches!(a.claim("").await, Err(ClusterError::BadRoom(_))));
    assert_eq!(a.stats().leases_held, 1);
    assert_eq!(a.stats().claims_held_elsewhere, 2);
    assert_eq!(b.stats().leases_held, 1);
    drop(odd);
    assert_eq!(b.stats().leases_held, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_racing_claims_make_exactly_one_owner() {
    let server = NatsServer::start();
    let mut nodes = Vec::new();
    for i in 0..4 {
        nodes.push(node(&server, &format!("n{i}")).await);
    }
    let claims = (0..20).map(|i| {
        let cluster = nodes[i % nodes.len()].clone();
        tokio::spawn(async move { (cluster.node().to_owned(), cluster.claim("chat/fresh").await.unwrap()) })
    });
    let mut winners = Vec::new();
    let mut named = Vec::new();
    let mut leases = Vec::new();
    for claim in claims {
        match claim.await.unwrap() {
            (node, Claim::Owned(lease)) => {
                winners.push(node);
                leases.push(lease);
            }
            (_, Claim::Held { node }) => named.push(node),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one owner, got {winners:?}");
    assert_eq!(named.len(), 19);
    assert!(named.iter().all(|n| *n == winners[0]), "every loser names the winner {}: {named:?}", winners[0]);
    assert_eq!(nodes[0].owner("chat/fresh").await.unwrap(), Some(winners[0].clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_keep_the_lease_past_several_ttls() {
    let server = NatsServer::start();
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    let lease = owned(a.claim("chat/long").await.unwrap());
    for _ in 0..4 {
        tokio::time::sleep(TTL).await;
        assert!(lease.is_held());
        assert_eq!(held_by(b.claim("chat/long").await.unwrap()), "a");
    }
    assert!(b.is_current("chat/long", lease.revision()).await.unwrap(), "renewals keep the fencing token");
    assert_eq!(a.stats().lease_losses, 0);
    assert!(a.stats().round_trips >= 8, "renewals are round trips: {:?}", a.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_stops_renewing_loses_the_room_to_another_node() {
    let server = NatsServer::start();
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    let old = owned(a.claim("chat/paused").await.unwrap());
    let watch = old.watch();
    old.stop_renewing();
    assert_eq!(held_by(b.claim("chat/paused").await.unwrap()), "a", "held until the TTL passes");
    tokio::time::timeout(TTL * 2, old.lost()).await.expect("the lease is lost once the TTL passes");
    assert!(!old.is_held() && !watch.is_held());
    let new = claim_until_owned(&b, "chat/paused", TTL * 5).await;
    assert!(new.revision() > old.revision(), "tokens grow: {} then {}", old.revision(), new.revision());
    assert!(!b.is_current("chat/paused", old.revision()).await.unwrap(), "the old token no longer validates");
    assert!(b.is_current("chat/paused", new.revision()).await.unwrap());
    assert!(!old.is_held(), "lost for good");
    assert_eq!(a.stats().lease_losses, 1);
    assert_eq!(a.stats().leases_held, 0);
    assert!(matches!(old.release().await, Err(ClusterError::LeaseLost(_))));
    assert_eq!(b.owner("chat/paused").await.unwrap().as_deref(), Some("b"), "a late release by the old holder changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_lets_another_node_claim_at_once() {
    let server = NatsServer::start();
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    let lease = owned(a.claim("chat/handover").await.unwrap());
    let watch = lease.watch();
    lease.release().await.unwrap();
    assert!(!watch.is_held());
    assert_eq!(b.owner("chat/handover").await.unwrap(), None);
    let next = owned(b.claim("chat/handover").await.unwrap());
    assert!(next.is_held());
    assert_eq!(a.stats().lease_losses, 0, "a release is not a loss");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_process_takes_over_its_own_leases() {
    let server = NatsServer::start();
    let before = node(&server, "a").await;
    let old = owned(before.claim("chat/restart").await.unwrap());
    old.stop_renewing();
    let after = node(&server, "a").await;
    let new = owned(after.claim("chat/restart").await.unwrap());
    assert!(new.revision() > old.revision());
    tokio::time::timeout(TTL * 2, old.lost()).await.expect("the old process's lease ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_say_what_is_wrong() {
    let server = NatsServer::start();
    let mut other_ttl = ClusterSettings::new(vec![server.url()], "a");
    node(&server, "first").await;
    other_ttl.lease_ttl = Duration::from_secs(7);
    let err = Cluster::connect(other_ttl).await.err().expect("a different TTL is refused");
    assert!(matches!(err, ClusterError::Setup(_)) && err.to_string().contains("lease_ttl"), "{err}");

    let mut more_replicas = ClusterSettings::new(vec![server.url()], "a");
    more_replicas.lease_ttl = TTL;
    more_replicas.replicas = 3;
    let err = Cluster::connect(more_replicas).await.err().expect("other replicas are refused");
    assert!(matches!(err, ClusterError::Setup(_)) && err.to_string().contains("replicas"), "{err}");

    let mut nobody = ClusterSettings::new(vec!["nats://127.0.0.1:1".into()], "a");
    nobody.lease_ttl = TTL;
    assert!(matches!(Cluster::connect(nobody).await, Err(ClusterError::Connect(_))));
    let plain = NatsServer::start_without_jetstream();
    let err = Cluster::connect(ClusterSettings::new(vec![plain.url()], "a")).await.err().expect("JetStream is needed");
    assert!(matches!(err, ClusterError::Setup(_)) && err.to_string().contains("JetStream"), "{err}");
    let bad = ClusterSettings::new(vec!["127.0.0.1:4222".into()], "a");
    assert!(matches!(Cluster::connect(bad).await, Err(ClusterError::Settings(_))));
}
