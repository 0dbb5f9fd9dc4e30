//! Compiles ONNX's protobuf schema into Rust types with prost; protox parses the
//! `.proto` in pure Rust so that no `protoc` binary is needed on the machine.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let descriptors = protox::compile(["proto/onnx.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
