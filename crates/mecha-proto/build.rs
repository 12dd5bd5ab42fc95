//! Generates Rust code for Dapr's wire contract from the descriptor set that
//! `scripts/extract-dapr-protos.py` extracted from the official Python SDK
//! wheel. No protoc is needed.
use prost::Message;

fn main() {
    let path = "proto/dapr.fds.bin";
    println!("cargo:rerun-if-changed={path}");
    let bytes = std::fs::read(path).expect("read the committed descriptor set");
    let fds = prost_types::FileDescriptorSet::decode(bytes.as_slice())
        .expect("decode the committed descriptor set");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Methods not written yet answer UNIMPLEMENTED.
        .generate_default_stubs(true)
        .bytes(".")
        .compile_fds(fds)
        .expect("generate code from the descriptor set");
}
