//! ONNX `Tanh`. https://onnx.ai/onnx/operators/onnx__Tanh.html

use super::{s_shaped_lines, Elementwise, Lines, SMOOTH_MARGIN};
use crate::ir::Scalar;

/// `Tanh`.
#[derive(Clone, Debug, Default)]
pub struct Tanh;

impl Elementwise for Tanh {
    const NAME: &'static str = "Tanh";
    #[inline]
    fn eval<T: Scalar>(&self, x: T) -> T {
        x.tanh()
    }
    fn lines(&self, l: f64, u: f64) -> Lines {
        let f = |x: f64| x.tanh();
        let df = |x: f64| 1.0 - x.tanh() * x.tanh();
        // f'(x) = a at tanh(x) = sqrt(1 - a).
        let crit = |a: f64| (a > 0.0 && a < 1.0).then(|| (1.0 - a).sqrt().atanh());
        s_shaped_lines(l, u, f, df, crit)
    }
    fn line_offset(&self, l: f64, u: f64, a: f64, upper: bool) -> Option<(f64, f64)> {
        let f = |x: f64| x.tanh();
        let crit = |a: f64| (a > 0.0 && a < 1.0).then(|| (1.0 - a).sqrt().atanh());
        Some(super::s_shaped_offset(l, u, &f, &crit, a, upper))
    }
    fn derivative_range(&self, l: f64, u: f64) -> Option<(f64, f64)> {
        // f' peaks at 0 and falls off on both sides.
        let df = |x: f64| 1.0 - x.tanh() * x.tanh();
        Some((df(l).min(df(u)), df(0.0f64.clamp(l, u))))
    }
    fn range(&self, l: f64, u: f64) -> (f64, f64) {
        ((l.tanh() - SMOOTH_MARGIN).max(-1.0), (u.tanh() + SMOOTH_MARGIN).min(1.0))
    }
}
