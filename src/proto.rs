//! Code generated from `proto/draftpublisher/v1/draft_publisher.proto`, and
//! its file descriptor set for server reflection.

/// The `draftpublisher.v1` package.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("draftpublisher.v1");

    /// Serialized descriptors of the package, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("draftpublisher_v1_descriptor");
}
