//! ONNX `Sigmoid`: 1 / (1 + exp(-x)). https://onnx.ai/onnx/operators/onnx__Sigmoid.html

use super::{s_shaped_lines, Elementwise, Lines, SMOOTH_MARGIN};
use crate::ir::Scalar;

/// `Sigmoid`.
#[derive(Clone, Debug, Default)]
pub struct Sigmoid;

impl Elementwise for Sigmoid {
    const NAME: &'static str = "Sigmoid";
    #[inline]
    fn eval<T: Scalar>(&self, x: T) -> T {
        // Two branches so exp never overflows.
        if x >= T::ZERO {
            T::ONE / (T::ONE + (-x).exp())
        } else {
            let e = x.exp();
            e / (T::ONE + e)
        }
    }
    fn lines(&self, l: f64, u: f64) -> Lines {
        let f = |x: f64| self.eval(x);
        let df = |x: f64| {
            let s = self.eval(x);
            s * (1.0 - s)
        };
        // f'(x) = a at sigma(x) = (1 + sqrt(1 - 4a)) / 2.
        let crit = |a: f64| {
            (a > 0.0 && a < 0.25).then(|| {
                let s = (1.0 + (1.0 - 4.0 * a).sqrt()) / 2.0;
                (s / (1.0 - s)).ln()
            })
        };
        s_shaped_lines(l, u, f, df, crit)
    }
    fn line_offset(&self, l: f64, u: f64, a: f64, upper: bool) -> Option<(f64, f64)> {
        let f = |x: f64| self.eval(x);
        let crit = |a: f64| {
            (a > 0.0 && a < 0.25).then(|| {
                let s = (1.0 + (1.0 - 4.0 * a).sqrt()) / 2.0;
                (s / (1.0 - s)).ln()
            })
        };
        Some(super::s_shaped_offset(l, u, &f, &crit, a, upper))
    }
    fn derivative_range(&self, l: f64, u: f64) -> Option<(f64, f64)> {
        // f' peaks at 0 and falls off on both sides.
        let df = |x: f64| {
            let s = self.eval(x);
            s * (1.0 - s)
        };
        Some((df(l).min(df(u)), df(0.0f64.clamp(l, u))))
    }
    fn range(&self, l: f64, u: f64) -> (f64, f64) {
        ((self.eval(l) - SMOOTH_MARGIN).max(0.0), (self.eval(u) + SMOOTH_MARGIN).min(1.0))
    }
}
