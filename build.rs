//! Generates the gRPC code and the file descriptor set (for server
//! reflection) from `proto/`, with the `protoc` shipped by a crate, so no
//! system `protoc` is needed.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    let proto = "proto/draftpublisher/v1/draft_publisher.proto";
    let well_known = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure()
        // Undecodable requests are INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::api::codec::ServiceCodec")
        .file_descriptor_set_path(out_dir.join("draftpublisher_v1_descriptor.bin"))
        .compile_with_config(config, &[PathBuf::from(proto)], &[PathBuf::from("proto"), well_known])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
