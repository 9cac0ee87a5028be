//! Compiles `proto/` with protox (pure Rust, no system `protoc`), prost, and tonic for the
//! cluster services.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = ["prometheus/remote.proto"];
    for f in files.iter().chain(&["prometheus/types.proto"]) {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(files, [&root])?;
    prost_build::Config::new().compile_fds(fds)?;
    let cluster = "strata/cluster.proto";
    println!("cargo:rerun-if-changed={}", root.join(cluster).display());
    let fds = protox::compile([cluster], [&root])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    // the public query API, with its descriptors kept for gRPC server reflection
    let query = "strata/query.proto";
    println!("cargo:rerun-if-changed={}", root.join(query).display());
    let fds = protox::compile([query], [&root])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("query_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
