//! The probe's exit codes and the names of its environment, shared with the probe itself
//! (`probe/magic.rs`, which the probe includes too): a leaf, so that every module may name
//! them without naming the crate root.

include!("../probe/magic.rs");
