//! The `[cluster]` settings against the real binary: file, environment and
//! flags in that order, `config show`, the mistakes `config check` names,
//! and a node that cannot reach NATS refusing to start.

#[path = "support/config_cli.rs"]
mod config_cli;

use config_cli::{run, run_bounded, switchboard, table, write};

#[test]
fn cluster_keys_follow_the_file_then_the_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.toml",
        "[cluster]\nservers = [\"nats://10.0.0.1:4222\"]\nnode = \"file-node\"\nlease_ttl = \"10s\"\nreplicas = 3\nprefix = \"sb\"\n",
    );
    let (ok, shown, err) = run(switchboard()
        .args(["config", "show", "--config"])
        .arg(&file)
        .env("SWITCHBOARD_NODE", "env-node")
        .env("SWITCHBOARD_CLUSTER_LEASE_TTL", "4s")
        .env("SWITCHBOARD_CLUSTER", "nats://10.0.0.2:4222,nats://10.0.0.3:4222")
        .args(["--node", "flag-node", "--cluster-forward-timeout", "2s"]));
    assert!(ok, "{err}");
    let cluster = table(&shown, "cluster");
    for line in [
        "servers = [\"nats://10.0.0.2:4222\", \"nats://10.0.0.3:4222\"]",
        "node = \"flag-node\"",
        "prefix = \"sb\"",
        "lease_ttl = \"4s\"",
        "forward_timeout = \"2s\"",
        "replicas = 3",
    ] {
        assert!(cluster.contains(&line), "{line:?} missing in [cluster] of\n{shown}");
    }
    // Without any, a single node: no servers.
    let (ok, shown, _) = run(switchboard().args(["config", "show"]));
    assert!(ok);
    assert!(table(&shown, "cluster").contains(&"servers = []"), "{shown}");
}

#[test]
fn cluster_mistakes_are_named_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "ttl.toml",
            "[cluster]\nservers = [\"nats://h:1\"]\nlease_ttl = \"100ms\"\n",
            "ttl.toml line 3: `cluster.lease_ttl`: the lease TTL must be 500ms to 5m",
        ),
        (
            "scheme.toml",
            "[cluster]\nservers = [\"http://h:1\"]\n",
            "scheme.toml line 2: `cluster.servers`: NATS server URL \"http://h:1\": the scheme must be nats or tls",
        ),
        ("node.toml", "[cluster]\nservers = [\"nats://h:1\"]\nnode = \"a.b\"\n", "node.toml line 3: `cluster.node`: node name \"a.b\" must be 1-64 characters"),
        ("alone.toml", "[cluster]\nnode = \"a\"\n", "alone.toml: cluster settings are given but cluster.servers (--cluster) names no NATS server"),
        ("replicas.toml", "[cluster]\nreplicas = 7\n", "replicas.toml line 2: `cluster.replicas`: 7 is out of range: must be 1 to 5"),
    ];
    for (name, text, expected) in cases {
        let file = write(dir.path(), name, text);
        let (ok, _, stderr) = run(switchboard().args(["config", "check"]).arg(&file));
        assert!(!ok, "{name} passed");
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
    let (ok, _, stderr) = run(switchboard().args(["config", "show", "--cluster", "nats://h:1", "--node", "x y"]));
    assert!(!ok);
    assert!(stderr.contains("must be 1-64 characters"), "{stderr}");
}

#[test]
fn a_node_that_cannot_reach_nats_does_not_start() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("nats://127.0.0.1:{port}");
    let (code, stdout, stderr) = run_bounded(switchboard().args(["serve", "--memory", "--listen", "127.0.0.1:0", "--node", "lonely", "--cluster", &url]));
    assert_ne!(code, Some(0));
    assert!(!stdout.contains("listening"), "{stdout}");
    assert!(stderr.contains("NATS"), "{stderr}");
}
