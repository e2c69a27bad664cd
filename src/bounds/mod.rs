//! Sound bound propagation over the graph IR: interval bound propagation (IBP, Gowal et al.
//! 2018), CROWN's backward linear relaxation (Zhang et al. 2018) with CROWN-computed
//! intermediate bounds and dual-norm concretisation, all in f64 with rounding accounted for.

pub mod affine;
pub mod lp;
mod pool_lines;
pub mod propagate;
pub mod radius;

pub use propagate::{
    alpha_crown_with_prior, alpha_crown_with_table, bound_spec, crown_lower_with_minimizers, crown_with_splits,
    AffineCache, BetaBounds, BoundTable, Interval, LinearLower, Method, NeuronSplit, Prior, RowWarm, SpecBounds,
};
