// Compile the protocol with a vendored protoc so a fresh machine needs none installed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // For gRPC server reflection: grpcurl lists and calls without the .proto.
        .file_descriptor_set_path(out.join("dclab_descriptor.bin"))
        .codec_path("crate::codec::StrictCodec")
        .compile_protos(&["proto/dclab.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/dclab.proto");
    Ok(())
}
