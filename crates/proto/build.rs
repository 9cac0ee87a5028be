//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and prost.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = ["prometheus/remote.proto"];
    for f in files.iter().chain(&["prometheus/types.proto"]) {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(files, [&root])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
