//! `strata certs`: makes a cluster CA and a member certificate for the mutual TLS between
//! cluster members (storage nodes, ingestors, queriers), so a local cluster, docker compose
//! or a first Helm install needs no other tool. Production clusters may use their own CA
//! (cert-manager, Vault): any PEM certificate chaining to the CA given to every member works.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// Flags of `strata certs`.
#[derive(Debug, clap::Args)]
pub(crate) struct CertsArgs {
    /// Directory to write `ca.pem`, `ca-key.pem`, `member.pem` and `member-key.pem` to
    /// (created; keys are readable by their owner only).
    #[arg(long)]
    out: PathBuf,
    /// Names the member certificate is valid for: every host name and IP address members
    /// dial storage nodes at, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
    hosts: Vec<String>,
    /// Replace certificates already in --out (otherwise they are kept and nothing is written).
    #[arg(long)]
    force: bool,
}

/// The files `strata certs` writes, as (name, is a private key).
const FILES: [(&str, bool); 4] =
    [("ca.pem", false), ("ca-key.pem", true), ("member.pem", false), ("member-key.pem", true)];

pub(crate) fn certs(a: CertsArgs) -> anyhow::Result<()> {
    if !a.force && FILES.iter().all(|(f, _)| a.out.join(f).is_file()) {
        eprintln!(
            "strata certs: {} already holds a CA and a member certificate; kept (--force replaces them)",
            a.out.display()
        );
        return Ok(());
    }
    anyhow::ensure!(!a.hosts.is_empty(), "--hosts names no host");
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, "strata cluster CA");
    ca.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?).context("making the CA")?;
    let mut member = CertificateParams::new(a.hosts.clone()).context("--hosts")?;
    member.distinguished_name.push(DnType::CommonName, "strata cluster member");
    member.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    member.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let member_key = KeyPair::generate()?;
    let member_cert = member.signed_by(&member_key, &ca).context("signing the member certificate")?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let contents = [ca.pem(), ca.key().serialize_pem(), member_cert.pem(), member_key.serialize_pem()];
    for ((name, secret), text) in FILES.iter().zip(contents) {
        write(&a.out.join(name), &text, *secret)?;
    }
    eprintln!("strata certs: wrote a CA and a member certificate for {:?} to {}", a.hosts, a.out.display());
    Ok(())
}

fn write(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true).mode(if secret { 0o600 } else { 0o644 });
    std::io::Write::write_all(
        &mut o.open(path).with_context(|| format!("writing {}", path.display()))?,
        text.as_bytes(),
    )
    .with_context(|| format!("writing {}", path.display()))
}
