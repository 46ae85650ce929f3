//! A node reaches a NATS server that requires TLS when it trusts the
//! server's CA (`tls_ca`), and is refused a connection when it does not.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use switchboard_cluster::testing::NatsServer;
use switchboard_cluster::{Claim, Cluster, ClusterError, ClusterSettings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_servers_ca_connects_and_without_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
    let (ca_file, cert_file, key_file) = (dir.path().join("ca.pem"), dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&ca_file, ca_pem).unwrap();
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();

    let server = NatsServer::start_with_tls(&cert_file, &key_file);
    let url = server.url().replace("nats://", "tls://");
    let mut trusted = ClusterSettings::new(vec![url.clone()], "a");
    trusted.tls_ca = Some(ca_file);
    let cluster = Cluster::connect(trusted).await.expect("TLS with the server's CA");
    assert!(matches!(cluster.claim("chat/tls").await.unwrap(), Claim::Owned(_)));

    let untrusted = Cluster::connect(ClusterSettings::new(vec![url], "b")).await;
    assert!(matches!(untrusted, Err(ClusterError::Connect(_))), "a server the node cannot verify is refused");
}
