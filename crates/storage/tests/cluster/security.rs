//! Who may talk to a storage node's gRPC port: Raft messages only from members of the
//! group (also without TLS), forged length prefixes refused before allocating, and with
//! mutual TLS only callers holding a certificate of the cluster's CA.

use std::sync::Arc;
use std::time::Duration;

use strata_cluster::{GrpcTls, TlsFiles};
use strata_proto::cluster::raft_client::RaftClient;
use strata_proto::cluster::storage_client::StorageClient;
use strata_proto::cluster::{ClusterMapRequest, RaftMessage, SnapshotChunk};
use strata_raft::RpcKind;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::harness::Cluster;

/// Writes until the cluster acknowledges (it has a leader for every shard).
async fn until_written(c: &Cluster, t: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Err(e) = c.write(t).await {
        assert!(tokio::time::Instant::now() < deadline, "no write acknowledged: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn raft_client(addr: &str) -> RaftClient<Channel> {
    let ch =
        Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect().await.expect("connect");
    RaftClient::new(ch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raft_messages_from_non_members_and_forged_lengths_are_refused() {
    let c = Cluster::start(3).await;
    until_written(&c, 0).await;
    let mut raft = raft_client(&c.peers[&1]).await;
    let append = |from, payload| RaftMessage { group: 0, kind: RpcKind::Append.code(), payload, from };

    // a node that is no member of the group
    let e = raft.call(append(99, Vec::new())).await.expect_err("a non-member's append");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("node 99 is no member of group 0"), "{e:?}");
    let chunk = SnapshotChunk { group: 0, from: 99, data: vec![0; 16] };
    let e = raft
        .install_snapshot(futures_util::stream::iter([chunk]))
        .await
        .expect_err("a non-member's snapshot");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");

    // a member's message that does not decode (length prefixes claiming 2^44 bytes; the
    // decoder's limit itself is tested in strata-raft): answered with an error, not an abort
    let mut forged = Vec::new();
    for _ in 0..4 {
        forged.push(0xFD);
        forged.extend_from_slice(&(1u64 << 44).to_le_bytes());
    }
    let reply = raft.call(append(2, forged)).await.expect("answered");
    assert!(!reply.into_inner().payload.is_empty());

    // the cluster is unharmed
    until_written(&c, 1000).await;
    c.shutdown().await;
}

/// A CA and a member certificate for `hosts`, written to `dir`.
fn make_certs(dir: &std::path::Path, hosts: &[&str]) -> TlsFiles {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("ca");
    let mut member =
        CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).expect("params");
    member.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let cert = member.signed_by(&key, &ca).expect("sign");
    std::fs::create_dir_all(dir).expect("dir");
    let files = TlsFiles {
        cert_file: dir.join("member.pem"),
        key_file: dir.join("member-key.pem"),
        ca_file: dir.join("ca.pem"),
    };
    std::fs::write(&files.cert_file, cert.pem()).expect("write");
    std::fs::write(&files.key_file, key.serialize_pem()).expect("write");
    std::fs::write(&files.ca_file, ca.pem()).expect("write");
    files
}

/// Asks `addr` for the cluster map over `tls` (plaintext when none); Ok iff served.
async fn ask_map(addr: &str, tls: Option<ClientTlsConfig>) -> Result<(), String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut ep = Endpoint::from_shared(format!("{scheme}://{addr}")).map_err(|e| e.to_string())?;
    if let Some(t) = tls {
        ep = ep.tls_config(t).map_err(|e| e.to_string())?;
    }
    let ch = ep.connect_timeout(Duration::from_secs(2)).connect().await.map_err(|e| format!("{e:?}"))?;
    StorageClient::new(ch)
        .get_cluster_map(ClusterMapRequest {})
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_mutual_tls_only_holders_of_a_cluster_certificate_get_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = make_certs(&dir.path().join("ours"), &["127.0.0.1", "localhost"]);
    let theirs = make_certs(&dir.path().join("theirs"), &["127.0.0.1", "localhost"]);
    let tls: Arc<GrpcTls> = GrpcTls::load(&ours).expect("load");
    // the nodes replicate and the client writes over mutual TLS
    let c = Cluster::start_with(3, Some(tls)).await;
    until_written(&c, 0).await;

    let read = |p: &std::path::PathBuf| std::fs::read(p).expect("read");
    let ca = Certificate::from_pem(read(&ours.ca_file));
    let member = Identity::from_pem(read(&ours.cert_file), read(&ours.key_file));
    let stranger = Identity::from_pem(read(&theirs.cert_file), read(&theirs.key_file));
    let addr = c.peers[&1].clone();
    let with = |id: Option<Identity>| {
        let t = ClientTlsConfig::new().ca_certificate(ca.clone());
        Some(match id {
            Some(i) => t.identity(i),
            None => t,
        })
    };
    assert!(ask_map(&addr, with(Some(member))).await.is_ok(), "a member is served");
    let refused = [
        ("plaintext", ask_map(&addr, None).await),
        ("TLS without a client certificate", ask_map(&addr, with(None)).await),
        ("a certificate of another CA", ask_map(&addr, with(Some(stranger))).await),
    ];
    for (who, r) in refused {
        assert!(r.is_err(), "{who} was served");
    }
    until_written(&c, 1000).await;
    c.shutdown().await;
}
