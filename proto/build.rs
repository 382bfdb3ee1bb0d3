// Compile the protocol with a vendored protoc so a fresh machine needs none installed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
    tonic_prost_build::configure()
        .codec_path("crate::codec::StrictCodec")
        .compile_protos(&["proto/dclab.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/dclab.proto");
    Ok(())
}
