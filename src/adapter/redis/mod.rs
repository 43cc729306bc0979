//! The Redis adapter (docs/cluster.md). STUB: being written.
