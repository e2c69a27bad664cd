//! Core operators. Each file holds one operator and everything robustcert knows about it:
//! shape inference and the forward pass now, interval (IBP) and backward linear relaxation
//! (CROWN) beside them, in the manner of auto_LiRPA's per-operator `interval_propagate` /
//! `bound_backward`. The [`Op`] enum dispatches statically, so engines loop over the graph
//! without trait objects.
//!
//! Adding an operator: a file here implementing [`Operator`] (or [`Elementwise`] for a
//! pointwise activation), a variant in [`Op`], and its lowering in `onnx/lower.rs`.

use crate::error::Result;
use crate::ir::{Scalar, Tensor};

pub mod broadcast;

mod add;
mod average_pool;
mod batch_norm;
mod clip;
mod concat;
mod constant;
mod conv;
mod div;
mod gemm;
mod global_average_pool;
mod input;
mod leaky_relu;
mod matmul;
mod max_pool;
mod mul;
mod pad;
mod reduce_mean;
mod relu;
mod reshape;
mod sigmoid;
mod softmax;
mod sub;
mod tanh;
mod transpose;

pub use add::Add;
pub use average_pool::AveragePool;
pub use batch_norm::BatchNorm;
pub use clip::Clip;
pub use concat::Concat;
pub use constant::Constant;
pub use conv::Conv;
pub use div::Div;
pub use gemm::Gemm;
pub use global_average_pool::GlobalAveragePool;
pub use input::Input;
pub use leaky_relu::LeakyRelu;
pub use matmul::MatMul;
pub use max_pool::MaxPool;
pub use mul::Mul;
pub use pad::Pad;
pub use reduce_mean::ReduceMean;
pub use relu::Relu;
pub use reshape::Reshape;
pub use sigmoid::Sigmoid;
pub use softmax::Softmax;
pub use sub::Sub;
pub use tanh::Tanh;
pub use transpose::Transpose;

/// What every operator provides. Shapes are full shapes, axis 0 the batch.
pub trait Operator {
    /// The operator's name as users know it (the ONNX op type it implements).
    fn name(&self) -> &'static str;
    /// The output shape for the given variable-input shapes, or why they do not fit.
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>>;
    /// Evaluates the operator on concrete inputs.
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>>;
    /// Number of constant parameter values the operator holds.
    fn parameter_count(&self) -> usize {
        0
    }
    /// Overwrites a single input with the output, when the operator can (pointwise ones);
    /// `None` when it cannot. Lets the executor skip an allocation and a pass over memory.
    fn forward_in_place<T: Scalar>(&self, _x: &mut Tensor<T>) -> Option<Result<()>> {
        None
    }
}

/// A pointwise activation: `forward` and shapes come from [`eval`](Elementwise::eval).
pub trait Elementwise {
    const NAME: &'static str;
    fn eval<T: Scalar>(&self, x: T) -> T;
}

impl<E: Elementwise> Operator for E {
    fn name(&self) -> &'static str {
        E::NAME
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        arity(E::NAME, inputs.len(), 1)?;
        Ok(inputs[0].to_vec())
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        arity(E::NAME, inputs.len(), 1)?;
        let x = inputs[0];
        Tensor::new(
            x.shape().to_vec(),
            x.data().iter().map(|&v| self.eval(v)).collect(),
        )
    }
}

/// Checks the number of variable inputs.
pub(crate) fn arity(op: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(crate::error::Error::InvalidModel(format!(
            "{op} takes {want} variable input(s), got {got}"
        )));
    }
    Ok(())
}

macro_rules! ops {
    ($($variant:ident),* $(,)?) => {
        /// A core operator with its constant parameters.
        #[derive(Clone, Debug)]
        pub enum Op { $($variant($variant)),* }

        impl Operator for Op {
            fn name(&self) -> &'static str {
                match self { $(Op::$variant(o) => o.name()),* }
            }
            fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
                match self { $(Op::$variant(o) => o.output_shape(inputs)),* }
            }
            fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
                match self { $(Op::$variant(o) => o.forward(inputs)),* }
            }
            fn parameter_count(&self) -> usize {
                match self { $(Op::$variant(o) => o.parameter_count()),* }
            }
            fn forward_in_place<T: Scalar>(&self, x: &mut Tensor<T>) -> Option<Result<()>> {
                match self { $(Op::$variant(o) => o.forward_in_place(x)),* }
            }
        }
        $(impl From<$variant> for Op { fn from(o: $variant) -> Op { Op::$variant(o) } })*
    };
}

ops!(
    Input,
    Constant,
    Gemm,
    MatMul,
    Add,
    Sub,
    Mul,
    Div,
    Relu,
    LeakyRelu,
    Sigmoid,
    Tanh,
    Clip,
    Conv,
    BatchNorm,
    Reshape,
    Transpose,
    Concat,
    Pad,
    MaxPool,
    AveragePool,
    GlobalAveragePool,
    ReduceMean,
    Softmax,
);
