//! robustcert: certified robustness for ONNX classifiers.
//!
//! Models are imported from ONNX ([`onnx::load_file`]) into one graph IR ([`ir::Graph`]) that
//! every engine shares; the forward pass runs in f32 (what devices run) and f64 (what the
//! verifier reasons in).
//!
//! ```no_run
//! let model = robustcert::onnx::load_file("model.onnx")?;
//! let x = robustcert::data::read_array("x.npy")?.map(|v| v as f32);
//! let samples = model.graph.as_samples(x)?;
//! let logits = model.graph.run_samples(&samples)?;
//! println!("{:?}", logits.shape());
//! # Ok::<(), robustcert::Error>(())
//! ```

pub mod attack;
pub mod bounds;
pub mod cert;
pub mod cli;
pub mod data;
pub mod error;
pub mod gate;
pub mod ir;
pub mod num;
pub mod onnx;
pub mod ops;
pub mod report;
pub mod smoothing;
pub mod spec;
pub mod verify;

pub use error::{Error, Result};
