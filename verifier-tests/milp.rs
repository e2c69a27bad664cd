//! LP/MILP over ReLU networks (src/bounds/lp.rs) against exact answers: on random 2-input
//! networks the exact minimum of c.y over a box is found by brute force (for every activation
//! pattern, the vertices of its cell's arrangement: the minimum of a piecewise-linear function
//! on a box is attained at one of them), and the MILP must agree; the LP value lies below the
//! MILP value, the rigorous (Neumaier-Shcherbina) bound below the exact minimum, the MILP's
//! point re-checked by the forward pass reaches the MILP value, and no sampled point goes
//! below the proven bound. Refusals (unsupported op, size caps) and the deadline are checked.

use proptest::prelude::*;
use robustcert::bounds::lp::{
    lp_min, lp_min_max, max_objective_at, milp_min, milp_min_max, objective_at, LpOptions, LpStatus, ReluSplit,
};
use robustcert::bounds::{BoundTable, Method};
use robustcert::ir::{Graph, Node, NodeId, Param, Tensor, ValueInfo};
use robustcert::ops::{self, Op};
use robustcert::spec::Region;
use std::time::{Duration, Instant};

/// A tiny deterministic generator for weights (proptest drives the seeds).
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

fn param(shape: Vec<usize>, v: Vec<f64>) -> Param {
    Param::new(Tensor::new(shape, v).unwrap(), "w").unwrap()
}

/// A fully connected ReLU network, weights kept for the brute force: layer k maps width
/// `dims[k]` to `dims[k + 1]` by w (out x in, row-major) and b; ReLU between layers.
struct Mlp {
    dims: Vec<usize>,
    w: Vec<Vec<f64>>,
    b: Vec<Vec<f64>>,
}

impl Mlp {
    fn random(seed: u64, dims: Vec<usize>) -> Mlp {
        let mut g = Gen(seed | 1);
        let mut w = vec![];
        let mut b = vec![];
        for k in 0..dims.len() - 1 {
            w.push(g.vec(dims[k] * dims[k + 1], 1.0));
            b.push(g.vec(dims[k + 1], 0.5));
        }
        Mlp { dims, w, b }
    }

    /// The network in the IR: Gemm (trans_b) and Relu nodes.
    fn graph(&self) -> Graph {
        let mut nodes = vec![Node {
            name: "x".into(),
            op: ops::Input { index: 0 }.into(),
            inputs: vec![],
            shape: vec![1, self.dims[0]],
        }];
        let layers = self.dims.len() - 1;
        for k in 0..layers {
            let (i, o) = (self.dims[k], self.dims[k + 1]);
            let gemm = ops::Gemm {
                b: param(vec![o, i], self.w[k].clone()),
                c: Some(param(vec![o], self.b[k].clone())),
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: true,
            };
            let prev = nodes.len() - 1;
            nodes.push(Node { name: format!("fc{k}"), op: gemm.into(), inputs: vec![NodeId(prev)], shape: vec![1, o] });
            if k + 1 < layers {
                let prev = nodes.len() - 1;
                nodes.push(Node {
                    name: format!("relu{k}"),
                    op: ops::Relu.into(),
                    inputs: vec![NodeId(prev)],
                    shape: vec![1, o],
                });
            }
        }
        let out = NodeId(nodes.len() - 1);
        Graph::new(
            nodes,
            vec![NodeId(0)],
            vec![ValueInfo { name: "x".into(), shape: vec![1, self.dims[0]], dynamic_batch: false }],
            vec![out],
            vec!["y".into()],
        )
        .unwrap()
    }

    /// Pre-activations of every layer (the last one is the output), with an optional forced
    /// activation pattern (true = pass) instead of the ReLU.
    fn layers(&self, x: &[f64], pattern: Option<&[bool]>) -> Vec<Vec<f64>> {
        let mut h = x.to_vec();
        let mut out = vec![];
        let mut pi = 0;
        for k in 0..self.dims.len() - 1 {
            let (i, o) = (self.dims[k], self.dims[k + 1]);
            let pre: Vec<f64> =
                (0..o).map(|j| self.b[k][j] + (0..i).map(|t| self.w[k][j * i + t] * h[t]).sum::<f64>()).collect();
            out.push(pre.clone());
            if k + 2 == self.dims.len() {
                break; // the output layer has no ReLU
            }
            h = pre
                .iter()
                .map(|&v| {
                    let on = match pattern {
                        Some(p) => {
                            pi += 1;
                            p[pi - 1]
                        }
                        None => v > 0.0,
                    };
                    if on {
                        v
                    } else {
                        0.0
                    }
                })
                .collect();
        }
        out
    }

    fn objective(&self, x: &[f64], c: &[f64]) -> f64 {
        let y = self.layers(x, None).pop().unwrap();
        y.iter().zip(c).map(|(a, b)| a * b).sum()
    }

    /// The exact minimum of c.y over the box [lo, hi] of a 2-input network. For each activation
    /// pattern every neuron's pre-activation is affine in x; the pattern's cell is cut out of
    /// the box by those lines, and the network is affine on it, so its minimum is at a vertex:
    /// an intersection of two of the lines (box edges included). Every such point in the box is
    /// a real input, so the minimum of the true network over all of them is the exact minimum.
    fn brute_min(&self, c: &[f64], lo: &[f64], hi: &[f64]) -> (f64, Vec<f64>) {
        self.brute_min_max(&[(c.to_vec(), 0.0)], lo, hi)
    }

    fn max_objective(&self, x: &[f64], rows: &[(Vec<f64>, f64)]) -> f64 {
        rows.iter().map(|(c, b)| self.objective(x, c) - b).fold(f64::NEG_INFINITY, f64::max)
    }

    /// The exact minimum of max_k (c_k.y - b_k): as `brute_min`, with the lines where two rows
    /// are equal (affine under a pattern too) added to each pattern's arrangement.
    fn brute_min_max(&self, rows: &[(Vec<f64>, f64)], lo: &[f64], hi: &[f64]) -> (f64, Vec<f64>) {
        assert_eq!(self.dims[0], 2);
        let hidden: usize = self.dims[1..self.dims.len() - 1].iter().sum();
        let mut best = (f64::INFINITY, vec![]);
        for mask in 0u64..(1 << hidden) {
            let pattern: Vec<bool> = (0..hidden).map(|k| mask >> k & 1 == 1).collect();
            // Affine forms a.x + b of each hidden pre-activation under the pattern: evaluate
            // at 0, e1, e2 (exact for affine maps).
            let at = |x: [f64; 2]| -> Vec<f64> {
                let mut l = self.layers(&x, Some(&pattern));
                let y = l.pop().unwrap();
                let mut v = l.concat();
                // Pairwise differences of the objective rows.
                let r: Vec<f64> =
                    rows.iter().map(|(c, b)| y.iter().zip(c).map(|(a, b)| a * b).sum::<f64>() - b).collect();
                for i in 0..r.len() {
                    for j in i + 1..r.len() {
                        v.push(r[i] - r[j]);
                    }
                }
                v
            };
            let (f0, f1, f2) = (at([0.0, 0.0]), at([1.0, 0.0]), at([0.0, 1.0]));
            let mut lines: Vec<(f64, f64, f64)> =
                (0..f0.len()).map(|k| (f1[k] - f0[k], f2[k] - f0[k], f0[k])).collect();
            lines.push((1.0, 0.0, -lo[0]));
            lines.push((1.0, 0.0, -hi[0]));
            lines.push((0.0, 1.0, -lo[1]));
            lines.push((0.0, 1.0, -hi[1]));
            for i in 0..lines.len() {
                for j in i + 1..lines.len() {
                    let ((a1, b1, c1), (a2, b2, c2)) = (lines[i], lines[j]);
                    let det = a1 * b2 - a2 * b1;
                    if det.abs() < 1e-12 {
                        continue;
                    }
                    let x = [(-c1 * b2 + c2 * b1) / det, (-a1 * c2 + a2 * c1) / det];
                    if x[0] < lo[0] - 1e-9 || x[0] > hi[0] + 1e-9 || x[1] < lo[1] - 1e-9 || x[1] > hi[1] + 1e-9 {
                        continue;
                    }
                    let x = vec![x[0].clamp(lo[0], hi[0]), x[1].clamp(lo[1], hi[1])];
                    let v = self.max_objective(&x, rows);
                    if v < best.0 {
                        best = (v, x);
                    }
                }
            }
        }
        best
    }
}

fn table<'g>(graph: &'g Graph, region: &'g Region) -> BoundTable<'g> {
    BoundTable::new(graph, region, Method::Crown, graph.outputs[0]).unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

/// Every check of one random 2-input case; returns the LP and MILP values.
fn check_two_input_case(seed: u64, dims: Vec<usize>, lo: Vec<f64>, hi: Vec<f64>, c: Vec<f64>) -> (f64, f64) {
    let net = Mlp::random(seed, dims);
    let graph = net.graph();
    let region = Region::from_box(lo.clone(), hi.clone()).unwrap();
    let t = table(&graph, &region);
    let opts = LpOptions::default();
    let (exact, at) = net.brute_min(&c, &lo, &hi);
    let milp = milp_min(&graph, &region, &t, &c, &opts).unwrap();
    let lp = lp_min(&graph, &region, &t, &c, &opts).unwrap();
    let ctx = format!("seed {seed}, exact {exact} at {at:?}, milp {milp:?}, lp {lp:?}");
    assert_eq!(milp.status, LpStatus::Optimal, "{ctx}");
    assert!(milp.exact, "{ctx}");
    assert_eq!(lp.status, LpStatus::Optimal, "{ctx}");
    let (mv, lv) = (milp.unsound_value.unwrap(), lp.unsound_value.unwrap());
    // The MILP finds the exact minimum, within the solver's tolerances.
    assert!(close(mv, exact, 1e-6), "MILP {mv} vs exact {exact}: {ctx}");
    // Its point, re-checked by the forward pass (the IR's and ours), reaches that value.
    let p = milp.point.clone().unwrap();
    assert!((0..2).all(|i| lo[i] <= p[i] && p[i] <= hi[i]), "{ctx}");
    let fwd = objective_at(&graph, &p, &c).unwrap();
    assert!(close(fwd, net.objective(&p, &c), 1e-12), "{ctx}");
    assert!(close(fwd, mv, 1e-6) && fwd >= exact - 1e-9, "forward {fwd}: {ctx}");
    // LP <= MILP; the proven bound is below the exact minimum (no tolerance beyond the
    // rounding of the brute force's own evaluation) and close to the LP value (the dual's
    // multipliers are good).
    assert!(lv <= mv + 1e-7, "{ctx}");
    assert!(lp.proven_lower_bound <= exact + 1e-12, "{ctx}");
    assert!(milp.proven_lower_bound <= exact + 1e-12, "{ctx}");
    assert!(close(lp.proven_lower_bound, lv, 1e-6), "{ctx}");
    // Sampled points never beat the proven bound nor (beyond tolerance) the MILP.
    let mut g = Gen(seed ^ 0x9e37);
    for _ in 0..300 {
        let x: Vec<f64> = (0..2).map(|i| lo[i] + (hi[i] - lo[i]) * (g.next() + 1.0) / 2.0).collect();
        let v = net.objective(&x, &c);
        assert!(v >= lp.proven_lower_bound && v >= mv - 1e-6, "sample {x:?} = {v}: {ctx}");
    }
    (lv, mv)
}

fn two_input_case() -> impl Strategy<Value = (u64, Vec<usize>, Vec<f64>, Vec<f64>, Vec<f64>)> {
    (any::<u64>(), 2usize..5, 1usize..4, 1usize..3, -1.0f64..1.0, -1.0f64..1.0, 0.1f64..2.0, 0.1f64..2.0).prop_flat_map(
        |(seed, h1, h2, k, x0, x1, w0, w1)| {
            let dims = if h2 == 3 { vec![2, h1, k] } else { vec![2, h1, h2 + 1, k] };
            (
                Just(seed),
                Just(dims),
                Just(vec![x0, x1]),
                Just(vec![x0 + w0, x1 + w1]),
                prop::collection::vec(-1.0f64..1.0, k),
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn milp_is_exact_and_lp_bounds_are_ordered_on_two_input_nets(
        (seed, dims, lo, hi, c) in two_input_case()
    ) {
        check_two_input_case(seed, dims, lo, hi, c);
    }
}

/// The relaxation is strictly looser than the MILP on some of these networks (so the MILP's
/// binaries do real work, and the test above can tell the two apart).
#[test]
fn lp_is_strictly_below_milp_on_some_networks() {
    let mut strict = 0;
    for seed in 1..25u64 {
        let (lv, mv) = check_two_input_case(seed, vec![2, 4, 3, 1], vec![-1.0, -1.0], vec![1.0, 1.0], vec![1.0]);
        if lv < mv - 1e-3 {
            strict += 1;
        }
    }
    assert!(strict >= 3, "only {strict} of 24 networks have an LP gap");
}

/// Conjunctions of output constraints (a VNN-LIB disjunct): the MILP's min of max_k
/// (c_k.y - b_k) is the exact one, the proven bound lies below it, and the point re-checks.
#[test]
fn min_of_max_matches_brute_force() {
    for seed in 1..30u64 {
        let net = Mlp::random(seed, vec![2, 3, 3, 3]);
        let graph = net.graph();
        let (lo, hi) = (vec![-1.0, -0.5], vec![0.5, 1.0]);
        let region = Region::from_box(lo.clone(), hi.clone()).unwrap();
        let t = table(&graph, &region);
        let mut g = Gen(seed + 100);
        let rows: Vec<(Vec<f64>, f64)> = (0..1 + seed as usize % 3).map(|_| (g.vec(3, 1.0), g.next() * 0.3)).collect();
        let (exact, at) = net.brute_min_max(&rows, &lo, &hi);
        let m = milp_min_max(&graph, &region, &t, &rows, &LpOptions::default()).unwrap();
        let l = lp_min_max(&graph, &region, &t, &rows, &LpOptions::default()).unwrap();
        let ctx = format!("seed {seed}: exact {exact} at {at:?}, milp {m:?}, lp {l:?}");
        assert_eq!(m.status, LpStatus::Optimal, "{ctx}");
        let mv = m.unsound_value.unwrap();
        assert!(close(mv, exact, 1e-6), "{ctx}");
        let fwd = max_objective_at(&graph, &m.point.clone().unwrap(), &rows).unwrap();
        assert!(close(fwd, mv, 1e-6), "forward {fwd}: {ctx}");
        assert!(l.proven_lower_bound <= exact + 1e-12 && m.proven_lower_bound <= exact + 1e-12, "{ctx}");
        assert!(l.unsound_value.unwrap() <= mv + 1e-7, "{ctx}");
        assert!(close(l.proven_lower_bound, l.unsound_value.unwrap(), 1e-6), "{ctx}");
    }
}

/// Split constraints restrict to a subdomain: the two halves of a split cover the whole
/// problem, each is no lower, and a split the bounds rule out is an empty (proven) subdomain.
#[test]
fn relu_splits_partition_the_problem() {
    let mut checked = 0;
    for seed in 1..40u64 {
        let net = Mlp::random(seed, vec![2, 4, 3, 1]);
        let graph = net.graph();
        let region = Region::from_box(vec![-1.0, -1.0], vec![1.0, 1.0]).unwrap();
        let t = table(&graph, &region);
        let relu = NodeId(2);
        let pre = t.bounds[1].as_ref().unwrap();
        let Some(i) = (0..4).find(|&i| pre.lo[i] < 0.0 && pre.hi[i] > 0.0) else { continue };
        let c = [1.0];
        let full = milp_min(&graph, &region, &t, &c, &LpOptions::default()).unwrap().unsound_value.unwrap();
        let half = |active| {
            let opts = LpOptions { splits: vec![ReluSplit { relu, index: i, active }], ..LpOptions::default() };
            let m = milp_min(&graph, &region, &t, &c, &opts).unwrap();
            let l = lp_min(&graph, &region, &t, &c, &opts).unwrap();
            // The point lies in the subdomain: neuron i of the first layer has the split's sign.
            let p = m.point.clone().unwrap();
            let z = net.layers(&p, None)[0][i];
            assert!(if active { z >= -1e-7 } else { z <= 1e-7 }, "seed {seed}: split {active}, pre-activation {z}");
            assert!(l.proven_lower_bound <= m.unsound_value.unwrap() + 1e-9);
            m.unsound_value.unwrap()
        };
        let (on, off) = (half(true), half(false));
        assert!(on >= full - 1e-6 && off >= full - 1e-6, "seed {seed}: {on} {off} vs {full}");
        assert!(close(on.min(off), full, 1e-6), "seed {seed}: {on} {off} vs {full}");
        checked += 1;
        // A neuron that is provably inactive cannot be split active.
        if let Some(k) = (0..4).find(|&k| pre.hi[k] < 0.0) {
            let opts = LpOptions { splits: vec![ReluSplit { relu, index: k, active: true }], ..LpOptions::default() };
            let m = lp_min(&graph, &region, &t, &c, &opts).unwrap();
            assert_eq!((m.status, m.proven_lower_bound), (LpStatus::Infeasible, f64::INFINITY));
        }
    }
    assert!(checked >= 10, "only {checked} networks had an unstable first-layer neuron");
}

/// A small convolutional network (Conv, Reshape, Gemm): LP <= MILP <= sampled values, and the
/// MILP point re-checked by the forward pass reaches the MILP value.
#[test]
fn conv_net_milp_is_consistent_with_samples() {
    for seed in 1..6u64 {
        let mut g = Gen(seed);
        let conv = ops::Conv {
            weight: param(vec![2, 1, 2, 2], g.vec(8, 1.0)),
            bias: Some(param(vec![2], g.vec(2, 0.3))),
            strides: vec![1, 1],
            pads: vec![0, 0, 0, 0],
            dilations: vec![1, 1],
            group: 1,
        };
        let nodes = vec![
            Node { name: "x".into(), op: ops::Input { index: 0 }.into(), inputs: vec![], shape: vec![1, 1, 3, 3] },
            Node { name: "conv".into(), op: conv.into(), inputs: vec![NodeId(0)], shape: vec![1, 2, 2, 2] },
            Node { name: "relu".into(), op: ops::Relu.into(), inputs: vec![NodeId(1)], shape: vec![1, 2, 2, 2] },
            Node {
                name: "flat".into(),
                op: ops::Reshape { shape: vec![1, 8], keep_batch: true }.into(),
                inputs: vec![NodeId(2)],
                shape: vec![1, 8],
            },
            Node {
                name: "fc".into(),
                op: ops::Gemm {
                    b: param(vec![8, 2], g.vec(16, 1.0)),
                    c: None,
                    alpha: 1.0,
                    beta: 1.0,
                    trans_a: false,
                    trans_b: false,
                }
                .into(),
                inputs: vec![NodeId(3)],
                shape: vec![1, 2],
            },
        ];
        let info = vec![ValueInfo { name: "x".into(), shape: vec![1, 1, 3, 3], dynamic_batch: false }];
        let graph = Graph::new(nodes, vec![NodeId(0)], info, vec![NodeId(4)], vec!["y".into()]).unwrap();
        let center = g.vec(9, 0.5);
        let region =
            Region::from_box(center.iter().map(|v| v - 0.4).collect(), center.iter().map(|v| v + 0.4).collect())
                .unwrap();
        let t = table(&graph, &region);
        let c = [1.0, -1.0];
        let milp = milp_min(&graph, &region, &t, &c, &LpOptions::default()).unwrap();
        let lp = lp_min(&graph, &region, &t, &c, &LpOptions::default()).unwrap();
        let mv = milp.unsound_value.unwrap();
        assert_eq!(milp.status, LpStatus::Optimal);
        assert!(lp.proven_lower_bound <= lp.unsound_value.unwrap() + 1e-9 && lp.unsound_value.unwrap() <= mv + 1e-7);
        let fwd = objective_at(&graph, &milp.point.clone().unwrap(), &c).unwrap();
        assert!(close(fwd, mv, 1e-6), "seed {seed}: forward {fwd} vs MILP {mv}");
        for _ in 0..300 {
            let x: Vec<f64> =
                (0..9).map(|i| region.lo[i] + (region.hi[i] - region.lo[i]) * (g.next() + 1.0) / 2.0).collect();
            let v = objective_at(&graph, &x, &c).unwrap();
            assert!(v >= lp.proven_lower_bound && v >= mv - 1e-6, "seed {seed}: sample value {v}, MILP {mv}");
        }
    }
}

/// Operators outside the encoding are refused, naming the node and the op.
#[test]
fn unsupported_operators_are_refused_by_name() {
    for (op, name) in [(Op::from(ops::Sigmoid), "Sigmoid"), (Op::from(ops::LeakyRelu { alpha: 0.1 }), "LeakyRelu")] {
        let net = Mlp::random(3, vec![2, 3, 1]);
        let mut graph = net.graph();
        graph.nodes[2].op = op;
        graph.nodes[2].name = "act".into();
        let region = Region::from_box(vec![0.0, 0.0], vec![1.0, 1.0]).unwrap();
        let t = table(&graph, &region);
        for e in [
            milp_min(&graph, &region, &t, &[1.0], &LpOptions::default()).unwrap_err(),
            lp_min(&graph, &region, &t, &[1.0], &LpOptions::default()).unwrap_err(),
        ] {
            let msg = e.to_string();
            assert!(msg.contains(name) && msg.contains("'act'"), "{msg}");
        }
    }
}

/// Caps are respected: too many binaries or variables is a clear error before any solving,
/// and a bound table from a smaller region is refused.
#[test]
fn size_caps_and_region_checks() {
    let net = Mlp::random(5, vec![2, 30, 1]);
    let graph = net.graph();
    let region = Region::from_box(vec![-3.0, -3.0], vec![3.0, 3.0]).unwrap();
    let t = table(&graph, &region);
    let unstable = {
        let pre = t.bounds[1].as_ref().unwrap();
        (0..30).filter(|&i| pre.lo[i] < 0.0 && pre.hi[i] > 0.0).count()
    };
    assert!(unstable > 6, "{unstable}");
    let opts = LpOptions { max_binaries: 6, ..LpOptions::default() };
    let msg = milp_min(&graph, &region, &t, &[1.0], &opts).unwrap_err().to_string();
    assert!(msg.contains("more than 6 binaries"), "{msg}");
    // The LP needs no binaries: the same cap does not stop it.
    let lp = lp_min(&graph, &region, &t, &[1.0], &opts).unwrap();
    assert_eq!((lp.status, lp.binaries), (LpStatus::Optimal, 0));
    let opts = LpOptions { max_variables: 20, ..LpOptions::default() };
    let msg = lp_min(&graph, &region, &t, &[1.0], &opts).unwrap_err().to_string();
    assert!(msg.contains("more than 20 variables"), "{msg}");
    // Bounds computed on a smaller region do not hold on this one.
    let small = Region::from_box(vec![-1.0, -1.0], vec![1.0, 1.0]).unwrap();
    let t_small = table(&graph, &small);
    let msg = lp_min(&graph, &region, &t_small, &[1.0], &LpOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("does not contain"), "{msg}");
    // Wrong objective length.
    assert!(lp_min(&graph, &region, &t, &[1.0, 2.0], &LpOptions::default()).is_err());
}

/// The solver cannot hang the caller: a MILP far beyond microlp's reach stops at the deadline
/// (with or without an incumbent), and the proven bound still holds.
#[test]
fn milp_stops_at_the_deadline() {
    let net = Mlp::random(11, vec![8, 40, 40, 1]);
    let graph = net.graph();
    let region = Region::from_box(vec![-1.0; 8], vec![1.0; 8]).unwrap();
    let t = table(&graph, &region);
    let opts = LpOptions { max_binaries: 1000, time_limit: Duration::from_millis(1500), ..LpOptions::default() };
    let start = Instant::now();
    let m = milp_min(&graph, &region, &t, &[1.0], &opts).unwrap();
    let took = start.elapsed();
    assert!(m.binaries > 40, "{}", m.binaries);
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert!(!m.exact && matches!(m.status, LpStatus::TimeLimit | LpStatus::NoSolution), "{:?}", m.status);
    let mut g = Gen(7);
    for _ in 0..300 {
        let x = g.vec(8, 1.0);
        assert!(net.objective(&x, &[1.0]) >= m.proven_lower_bound);
    }
}

/// Refined intermediate bounds (src/verify/refine.rs) against the exact range of each
/// second-layer neuron, found by the brute force on the network cut after that layer: never
/// inside it (sound), never looser than alpha-CROWN's; returns how many bounds the refinement
/// moved at least halfway from alpha-CROWN's to the exact value.
fn check_refinement(seed: u64, dims: Vec<usize>, lo: Vec<f64>, hi: Vec<f64>) -> usize {
    use robustcert::verify::refine::refine_node;
    let net = Mlp::random(seed, dims.clone());
    let graph = net.graph();
    let region = Region::from_box(lo.clone(), hi.clone()).unwrap();
    let root = BoundTable::new(&graph, &region, Method::AlphaCrown, graph.outputs[0]).unwrap().bounds;
    let mut bounds = root.clone();
    // Nodes: x, fc0, relu0, fc1, ...: fc1 is the second layer's pre-activation.
    let fc1 = NodeId(3);
    let cache = robustcert::bounds::AffineCache::new(&graph);
    let far = Instant::now() + Duration::from_secs(60);
    refine_node(&graph, &region, &mut bounds, fc1, 200, far, &cache).unwrap();
    let cut = Mlp { dims: dims[..3].to_vec(), w: net.w[..2].to_vec(), b: net.b[..2].to_vec() };
    let (before, after) = (root[3].as_ref().unwrap(), bounds[3].as_ref().unwrap());
    let mut moved = 0;
    for j in 0..dims[2] {
        let mut e = vec![0.0; dims[2]];
        e[j] = 1.0;
        let exact_lo = cut.brute_min(&e, &lo, &hi).0;
        e[j] = -1.0;
        let exact_hi = -cut.brute_min(&e, &lo, &hi).0;
        let ctx = format!(
            "seed {seed} {dims:?} neuron {j}: exact [{exact_lo}, {exact_hi}], alpha [{}, {}], refined [{}, {}]",
            before.lo[j], before.hi[j], after.lo[j], after.hi[j]
        );
        assert!(after.lo[j] <= exact_lo + 1e-9 * (1.0 + exact_lo.abs()), "lower bound above the minimum: {ctx}");
        assert!(after.hi[j] >= exact_hi - 1e-9 * (1.0 + exact_hi.abs()), "upper bound below the maximum: {ctx}");
        assert!(after.lo[j] >= before.lo[j] && after.hi[j] <= before.hi[j], "refinement loosened a bound: {ctx}");
        if before.lo[j] < 0.0 && before.hi[j] > 0.0 {
            moved += usize::from(
                after.lo[j] - before.lo[j] >= 0.5 * (exact_lo - before.lo[j]) && exact_lo > before.lo[j] + 1e-6,
            );
            moved += usize::from(
                before.hi[j] - after.hi[j] >= 0.5 * (before.hi[j] - exact_hi) && exact_hi < before.hi[j] - 1e-6,
            );
        }
    }
    moved
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn refined_intermediate_bounds_contain_the_exact_range(
        seed in any::<u64>(), h1 in 2usize..6, h2 in 2usize..5, x0 in -1.0f64..1.0, x1 in -1.0f64..1.0, w0 in 0.1f64..2.0, w1 in 0.1f64..2.0
    ) {
        check_refinement(seed, vec![2, h1, h2, 2], vec![x0, x1], vec![x0 + w0, x1 + w1]);
    }
}

/// Refinement does real work: on some networks it closes at least half the gap between
/// alpha-CROWN's bound of a second-layer neuron and the exact one.
#[test]
fn refinement_tightens_bounds_on_some_networks() {
    let moved: usize =
        (1..25u64).map(|seed| check_refinement(seed, vec![2, 5, 4, 1], vec![-1.0, -1.0], vec![1.0, 1.0])).sum();
    assert!(moved >= 5, "only {moved} bounds moved halfway to the exact range");
}
