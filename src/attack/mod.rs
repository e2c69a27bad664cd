//! Adversarial attacks: falsification before (and beside) verification.
//!
//! - [`gradient`]: reverse-mode gradients through the graph IR (forward tape + transposed
//!   point Jacobians taken from the operators' own relaxations).
//! - [`pgd`]: projected gradient descent with random restarts over boxes and Lp balls, towards a
//!   disjunction of conjunctions of linear output constraints ([`Goal`]); every reported point
//!   is checked with the f32 and the f64 forward pass.
//! - [`radius`]: the smallest adversarial radius per input (PGD at bracketed and bisected radii,
//!   line search towards the input): an upper bound on the robust radius, next to the certified
//!   lower bound.
//!
//! ```no_run
//! use robustcert::attack::{pgd, Goal, PgdOptions};
//! use robustcert::spec::{Norm, Region};
//! let model = robustcert::onnx::load_file("model.onnx")?;
//! let g = &model.graph;
//! let out = robustcert::bounds::radius::decision_node(g);
//! let region = Region::ball(vec![0.5; 784], Norm::Inf, 0.03, Some((0.0, 1.0)))?;
//! let goal = Goal::misclassification(10, 7);
//! if let Some(found) = pgd(g, &region, out, &goal, &PgdOptions::default())? {
//!     println!("adversarial input, logits {:?}", found.y);
//! }
//! # Ok::<(), robustcert::Error>(())
//! ```

pub mod gradient;
pub mod pgd;
pub mod radius;

pub use pgd::{check_point, minimize, pgd, Found, Goal, PgdOptions};
