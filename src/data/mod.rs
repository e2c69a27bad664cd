//! Datasets and arrays in: NumPy `.npy` / `.npz` files (the format of the NumPy "NEP 1" spec).

pub mod dataset;
pub mod images;
pub mod npy;

pub use npy::{read_array, read_npz_array, write_npy};
