//! Specifications: the input sets a property quantifies over (Lp balls of Wong & Kolter /
//! Zhang et al.'s CROWN, optionally intersected with the valid pixel box; plain boxes as
//! VNN-LIB states them) and the output specification matrix C.

pub mod region;
pub mod vnnlib;

pub use region::{Norm, Region};
