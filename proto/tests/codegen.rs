//! The code generated from proto/dclab.proto is committed (src/codegen/),
//! so building dclab needs no protoc. This test generates it afresh into a
//! temporary directory, with the vendored protoc, and fails on any
//! difference; `DCLAB_GEN_PROTO=write` (what scripts/gen-proto.sh sets)
//! writes it into src/codegen/ instead.

use std::path::{Path, PathBuf};

const REGENERATE: &str = "scripts/gen-proto.sh";
const GENERATED: [&str; 2] = ["dclab.v1.rs", "dclab_descriptor.bin"];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Rust code and the descriptor set (for gRPC reflection) of dclab.proto, in `out`.
fn generate(out: &Path) {
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("the vendored protoc");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    let proto_dir = crate_dir().join("proto");
    tonic_prost_build::configure()
        .out_dir(out)
        .file_descriptor_set_path(out.join("dclab_descriptor.bin"))
        .codec_path("crate::codec::StrictCodec")
        .compile_with_config(config, &[proto_dir.join("dclab.proto")], &[proto_dir])
        .expect("compiling proto/dclab.proto");
}

/// The 1-based line where two texts first differ, with both versions.
fn first_difference(committed: &[u8], fresh: &[u8]) -> String {
    let (committed, fresh) = (String::from_utf8_lossy(committed), String::from_utf8_lossy(fresh));
    let mut fresh_lines = fresh.lines();
    for (i, line) in committed.lines().enumerate() {
        let other = fresh_lines.next();
        if other != Some(line) {
            return format!("line {}: committed {line:?}, generated {other:?}", i + 1);
        }
    }
    match fresh_lines.next() {
        Some(extra) => format!("generated has more lines, from {extra:?}"),
        None => "same lines, other bytes".to_string(),
    }
}

#[test]
fn committed_code_matches_the_proto() {
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path());
    let codegen = crate_dir().join("src").join("codegen");
    if std::env::var_os("DCLAB_GEN_PROTO").is_some_and(|v| v == "write") {
        for name in GENERATED {
            std::fs::copy(tmp.path().join(name), codegen.join(name)).unwrap();
        }
        return;
    }
    let mut stale = Vec::new();
    for name in GENERATED {
        let fresh = std::fs::read(tmp.path().join(name)).unwrap();
        match std::fs::read(codegen.join(name)) {
            Ok(committed) if committed == fresh => {}
            Ok(committed) if name.ends_with(".rs") => {
                stale.push(format!("{name}: {}", first_difference(&committed, &fresh)))
            }
            Ok(_) => stale.push(format!("{name}: differs")),
            Err(e) => stale.push(format!("{name}: {e}")),
        }
    }
    assert!(
        stale.is_empty(),
        "proto/src/codegen/ is not what proto/dclab.proto generates; run {REGENERATE} and commit the result\n{}",
        stale.join("\n")
    );
}
