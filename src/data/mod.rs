//! Datasets and arrays in: NumPy `.npy` / `.npz` files (the format of the NumPy "NEP 1" spec).
//! Evaluation datasets (arrays, the MedMNIST v2 npz layout, PNG/JPEG image folders) with
//! preprocessing, selection and manifests: [`dataset`], [`images`].

pub mod dataset;
pub mod images;
pub mod npy;

pub use npy::{read_array, read_npz_array, write_npy};
