//! dclab's contract: the gRPC code generated from `proto/dclab.proto`
//! (committed under `src/codegen/`, so building needs no protoc; the
//! `codegen` test fails when it drifts from the .proto), the codec it
//! names, and the error every service returns with its mapping to gRPC
//! status. What processes need to run and talk is in `dclab-runtime`; lab
//! and experiment files are in `dclab-spec`.

pub mod codec;
pub mod error;

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    // Generated, and committed by scripts/gen-proto.sh (tests/codegen.rs
    // fails when it drifts from the .proto). include!, not a module, so
    // rustfmt leaves it as generated.
    include!("codegen/dclab.v1.rs");

    /// The compiled dclab.proto, served by the coordinator's reflection service.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("codegen/dclab_descriptor.bin");
}

pub use error::ApiError;
