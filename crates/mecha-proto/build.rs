//! Generates Rust code for Dapr's wire contract, from the descriptor set that
//! `scripts/extract-dapr-protos.py` extracted from the official Python SDK
//! wheel, and for Mecha's own protocols (`proto/mecha/**`) and daprd's
//! placement protocol (`proto/dapr/proto/placement`), compiled with
//! protox. No protoc is needed.
use prost::Message;

fn main() {
    let path = "proto/dapr.fds.bin";
    println!("cargo:rerun-if-changed={path}");
    println!("cargo:rerun-if-changed=proto/mecha");
    println!("cargo:rerun-if-changed=proto/dapr");
    let bytes = std::fs::read(path).expect("read the committed descriptor set");
    let dapr = prost_types::FileDescriptorSet::decode(bytes.as_slice())
        .expect("decode the committed descriptor set");
    let mecha = protox::compile(
        [
            "mecha/internal/v1/invocation.proto",
            "mecha/testing/v1/echo.proto",
            "dapr/proto/placement/v1/placement.proto",
        ],
        ["proto"],
    )
    .expect("compile Mecha's own protos, and daprd's placement protocol");
    for fds in [dapr, mecha] {
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(true)
            // Methods not written yet answer UNIMPLEMENTED.
            .generate_default_stubs(true)
            .bytes(".")
            .compile_fds(fds)
            .expect("generate code from the descriptor set");
    }
}
