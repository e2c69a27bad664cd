//! Soundness of bound propagation on random small networks covering every operator with a
//! relaxation: each claimed bound is checked against points of the perturbation set (uniform,
//! on the boundary, at corners for L-inf) and against a search that pushes each output towards
//! its bound. Any violation fails.

use proptest::prelude::*;
use robustcert::bounds::alpha_crown_with_prior;
use robustcert::bounds::propagate::{alpha_crown_lower, AlphaOptions};
use robustcert::bounds::{
    bound_spec, crown_with_splits, AffineCache, BoundTable, Interval, Method, NeuronSplit, Prior, RowWarm,
};
use robustcert::ir::{Graph, Node, NodeId, Param, Tensor, ValueInfo};
use robustcert::ops::{self, Op, Operator};
use robustcert::spec::{Norm, Region};

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
    fn param(&mut self, shape: Vec<usize>, scale: f64) -> Param {
        let n = shape.iter().product();
        Param::new(Tensor::new(shape, self.vec(n, scale)).unwrap(), "w").unwrap()
    }
    fn pick(&mut self, n: usize) -> usize {
        ((self.next() + 1.0) / 2.0 * n as f64).min(n as f64 - 1.0) as usize
    }
}

struct Builder {
    nodes: Vec<Node>,
}
impl Builder {
    fn input(shape: Vec<usize>) -> (Builder, NodeId) {
        let b = Builder {
            nodes: vec![Node { name: "x".into(), op: ops::Input { index: 0 }.into(), inputs: vec![], shape }],
        };
        (b, NodeId(0))
    }
    fn add(&mut self, op: impl Into<Op>, inputs: &[NodeId]) -> NodeId {
        let op = op.into();
        let shapes: Vec<&[usize]> = inputs.iter().map(|i| self.nodes[i.0].shape.as_slice()).collect();
        let shape = op.output_shape(&shapes).unwrap_or_else(|e| panic!("{}: {e}", op.name()));
        self.nodes.push(Node { name: format!("n{}", self.nodes.len()), op, inputs: inputs.to_vec(), shape });
        NodeId(self.nodes.len() - 1)
    }
    fn shape(&self, id: NodeId) -> Vec<usize> {
        self.nodes[id.0].shape.clone()
    }
    fn finish(self, out: NodeId) -> Graph {
        let shape = self.nodes[0].shape.clone();
        Graph::new(
            self.nodes,
            vec![NodeId(0)],
            vec![ValueInfo { name: "x".into(), shape, dynamic_batch: false }],
            vec![out],
            vec!["y".into()],
        )
        .unwrap()
    }
}

fn activation(g: &mut Gen) -> Op {
    match g.pick(5) {
        0 => ops::Relu.into(),
        1 => ops::LeakyRelu { alpha: 0.1 + 0.3 * g.next().abs() }.into(),
        2 => ops::Clip { min: Some(-0.3 - g.next().abs()), max: Some(0.2 + g.next().abs()) }.into(),
        3 => ops::Sigmoid.into(),
        _ => ops::Tanh.into(),
    }
}

/// A dense network: Gemm, MatMul, constant Add/Sub/Mul/Div, a residual Add and activations.
fn dense_net(seed: u64, d: usize) -> Graph {
    let mut g = Gen(seed | 1);
    let (mut b, x) = Builder::input(vec![1, d]);
    let c = b.add(ops::Sub { constant: Some(g.param(vec![d], 0.5)), constant_first: g.next() > 0.0 }, &[x]);
    let c =
        b.add(ops::Div { constant: Some(g.param(vec![1], 0.5).clone_with_offset(1.5)), constant_first: false }, &[c]);
    let h = 3 + g.pick(5);
    let l1 = b.add(
        ops::Gemm {
            b: g.param(vec![h, d], 1.0),
            c: Some(g.param(vec![h], 0.5)),
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: true,
        },
        &[c],
    );
    let a1 = b.add(activation(&mut g), &[l1]);
    let l2 = b.add(ops::MatMul { b: g.param(vec![h, h], 0.8), constant_first: false }, &[a1]);
    let l2 = b.add(ops::Add { constant: Some(g.param(vec![h], 0.3)), constant_first: true }, &[l2]);
    let a2 = b.add(activation(&mut g), &[l2]);
    let r = b.add(ops::Add { constant: None, constant_first: false }, &[a2, a1]);
    let r = b.add(ops::Mul { constant: Some(g.param(vec![h], 1.0)), constant_first: false }, &[r]);
    let a3 = b.add(activation(&mut g), &[r]);
    let k = 2 + g.pick(3);
    let out = b.add(
        ops::Gemm { b: g.param(vec![h, k], 1.0), c: None, alpha: 0.7, beta: 1.0, trans_a: false, trans_b: false },
        &[a3],
    );
    b.finish(out)
}

/// A convolutional network: Conv, BatchNorm, Pad, pools, Concat, Transpose, Reshape, ReduceMean.
fn conv_net(seed: u64, c: usize, hw: usize) -> Graph {
    let mut g = Gen(seed | 1);
    let (mut b, x) = Builder::input(vec![1, c, hw, hw]);
    let m = 2 + g.pick(2);
    let conv = b.add(
        ops::Conv {
            weight: g.param(vec![m, c, 3, 3], 0.6),
            bias: Some(g.param(vec![m], 0.3)),
            strides: vec![1, 1],
            pads: vec![1, 1, 1, 1],
            dilations: vec![1, 1],
            group: 1,
        },
        &[x],
    );
    let var: Vec<f64> = g.vec(m, 1.0).iter().map(|v| v.abs() + 0.2).collect();
    let bn = b.add(
        ops::BatchNorm {
            scale: g.param(vec![m], 1.0),
            bias: g.param(vec![m], 0.3),
            mean: g.param(vec![m], 0.3),
            var: Param::new(Tensor::new(vec![m], var).unwrap(), "var").unwrap(),
            epsilon: 1e-5,
        },
        &[conv],
    );
    // Without the normalisation half the time: an activation right after the first Conv (its
    // bounds then come straight from the Conv's rows on the input).
    let a = if g.next() > 0.0 { b.add(activation(&mut g), &[bn]) } else { b.add(activation(&mut g), &[conv]) };
    // depthwise conv on the activation, then a residual add
    let dw = b.add(
        ops::Conv {
            weight: g.param(vec![m, 1, 3, 3], 0.6),
            bias: None,
            strides: vec![1, 1],
            pads: vec![1, 1, 1, 1],
            dilations: vec![1, 1],
            group: m,
        },
        &[a],
    );
    let r = b.add(ops::Sub { constant: None, constant_first: false }, &[dw, a]);
    let r = b.add(activation(&mut g), &[r]);
    let p = b.add(ops::Pad { pads: vec![0, 0, 1, 0, 0, 0, 0, 1], value: 0.25 }, &[r]);
    let pooled = if g.next() > 0.0 {
        // Disjoint windows, or overlapping ones (a cell in several windows, each optimised
        // on its own by alpha-CROWN).
        let (k, s) = if g.next() > 0.0 { (2, 2) } else { (2 + g.pick(2), 1) };
        b.add(
            ops::MaxPool {
                kernel: vec![k, k],
                strides: vec![s, s],
                pads: vec![0, 0, 0, 0],
                dilations: vec![1, 1],
                ceil_mode: false,
            },
            &[p],
        )
    } else {
        b.add(
            ops::AveragePool {
                kernel: vec![2, 2],
                strides: vec![1, 1],
                pads: vec![1, 1, 0, 0],
                ceil_mode: false,
                count_include_pad: g.next() > 0.0,
            },
            &[p],
        )
    };
    let t = b.add(ops::Transpose { perm: vec![0, 1, 3, 2] }, &[pooled]);
    let gap = b.add(ops::GlobalAveragePool, &[t]);
    let rm = b.add(ops::ReduceMean { axes: vec![2], keepdims: true }, &[t]);
    let s = b.shape(rm);
    let flat_rm = b.add(ops::Reshape { shape: vec![1, s.iter().product()], keep_batch: true }, &[rm]);
    let flat_gap = b.add(ops::Reshape { shape: vec![1, m], keep_batch: true }, &[gap]);
    let cat = b.add(ops::Concat { axis: 1 }, &[flat_gap, flat_rm]);
    let width = b.shape(cat)[1];
    let out = b.add(
        ops::Gemm {
            b: g.param(vec![width, 3], 1.0),
            c: Some(g.param(vec![3], 0.2)),
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
        },
        &[cat],
    );
    b.finish(out)
}

trait Offset {
    fn clone_with_offset(&self, add: f64) -> Param;
}
impl Offset for Param {
    fn clone_with_offset(&self, add: f64) -> Param {
        let v: Vec<f64> = self.f64.data().iter().map(|x| x.abs() + add).collect();
        Param::new(Tensor::new(self.shape().to_vec(), v).unwrap(), "c").unwrap()
    }
}

fn eval(graph: &Graph, x: &[f64]) -> Vec<f64> {
    let shape = graph.input_info[0].shape.clone();
    let t = Tensor::new(shape, x.to_vec()).unwrap();
    graph.forward(&[&t]).unwrap().swap_remove(0).into_data()
}

/// Points of the region: uniform-ish samples, boundary points and (L-inf) corners.
fn sample_points(region: &Region, g: &mut Gen, n: usize) -> Vec<Vec<f64>> {
    let d = region.len();
    let mut pts = vec![region.center.clone()];
    let project = |mut p: Vec<f64>| {
        for i in 0..d {
            p[i] = p[i].clamp(region.lo[i], region.hi[i]);
        }
        p
    };
    for k in 0..n {
        let dir = g.vec(d, 1.0);
        let on_boundary = k % 2 == 0;
        let scale = if on_boundary { 1.0 } else { (g.next() + 1.0) / 2.0 };
        let p: Vec<f64> = match region.norm {
            Norm::Inf => {
                if k % 3 == 0 {
                    // a corner
                    dir.iter().zip(&region.center).map(|(s, c)| c + region.eps * s.signum()).collect()
                } else {
                    dir.iter()
                        .zip(&region.center)
                        .map(|(s, c)| c + region.eps * s * if on_boundary { 1.0 / s.abs().max(1e-9) } else { 1.0 })
                        .collect()
                }
            }
            Norm::L2 => {
                let n2 = dir.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                dir.iter().zip(&region.center).map(|(s, c)| c + region.eps * scale * s / n2).collect()
            }
            Norm::L1 => {
                // a vertex of the L1 ball, or a scaled random direction
                if k % 3 == 0 {
                    let i = g.pick(d);
                    let mut p = region.center.clone();
                    p[i] += region.eps * g.next().signum();
                    p
                } else {
                    let n1 = dir.iter().map(|v| v.abs()).sum::<f64>().max(1e-12);
                    dir.iter().zip(&region.center).map(|(s, c)| c + region.eps * scale * s / n1).collect()
                }
            }
        };
        pts.push(project(p));
    }
    pts
}

/// Pushes output j up (sign +1) or down (-1) by random local search from the best sample,
/// staying inside the region.
fn search(graph: &Graph, region: &Region, start: &[f64], j: usize, sign: f64, g: &mut Gen, steps: usize) -> f64 {
    let mut x = start.to_vec();
    let mut best = sign * eval(graph, &x)[j];
    let mut step = region.eps.max(1e-6) * 0.5;
    for _ in 0..steps {
        let dir = g.vec(x.len(), step);
        let mut cand: Vec<f64> = x.iter().zip(&dir).map(|(a, b)| a + b).collect();
        // back into the region: clamp to the box, then shrink towards the centre
        for i in 0..cand.len() {
            cand[i] = cand[i].clamp(region.lo[i], region.hi[i]);
        }
        let mut t = 1.0;
        while !region.contains(&cand, 0.0) && t > 1e-6 {
            t *= 0.7;
            cand = region.center.iter().zip(&cand).map(|(c, v)| c + (v - c) * 0.7).collect();
        }
        if !region.contains(&cand, 0.0) {
            continue;
        }
        let v = sign * eval(graph, &cand)[j];
        if v > best {
            best = v;
            x = cand;
        } else {
            step *= 0.97;
        }
    }
    sign * best
}

fn check(graph: &Graph, region: &Region, seed: u64) -> Result<(), String> {
    let out = graph.outputs[0];
    let w: usize = graph.node(out).shape.iter().product();
    let mut spec = vec![0.0; w * w];
    for i in 0..w {
        spec[i * w + i] = 1.0;
    }
    let mut g = Gen(seed ^ 0x5eed);
    let pts = sample_points(region, &mut g, 200);
    check_intermediate(graph, region, &pts)?;
    for method in [Method::Ibp, Method::Crown, Method::AlphaCrown] {
        let b = bound_spec(graph, region, method, out, &spec, w).map_err(|e| e.to_string())?;
        for p in &pts {
            if !region.contains(p, 1e-12) {
                continue;
            }
            let y = eval(graph, p);
            for j in 0..w {
                let tol = 1e-9 * (1.0 + y[j].abs());
                if y[j] < b.lower[j] - tol || y[j] > b.upper[j] + tol {
                    return Err(format!(
                        "{method:?}: output {j} = {} outside [{}, {}] at {p:?}",
                        y[j], b.lower[j], b.upper[j]
                    ));
                }
            }
        }
        for j in 0..w {
            // start the search from the sample closest to each bound
            let lo_start = pts.iter().min_by(|a, c| eval(graph, a)[j].total_cmp(&eval(graph, c)[j])).unwrap();
            let hi_start = pts.iter().max_by(|a, c| eval(graph, a)[j].total_cmp(&eval(graph, c)[j])).unwrap();
            let lo = search(graph, region, lo_start, j, -1.0, &mut g, 150);
            let hi = search(graph, region, hi_start, j, 1.0, &mut g, 150);
            let tol = 1e-9 * (1.0 + lo.abs().max(hi.abs()));
            if lo < b.lower[j] - tol || hi > b.upper[j] + tol {
                return Err(format!(
                    "{method:?}: search reached [{lo}, {hi}] beyond the bounds [{}, {}] of output {j}",
                    b.lower[j], b.upper[j]
                ));
            }
            if b.lower[j] > b.upper[j] {
                return Err(format!("{method:?}: empty bounds for output {j}"));
            }
        }
    }
    // alpha-CROWN with input splitting's few steps (lower bounds only): below every sampled
    // output and every output a search reaches.
    let few = AlphaOptions { iterations: 3, final_iterations: 3, ..AlphaOptions::default() };
    let lower = alpha_crown_lower(graph, region, out, &spec, w, few).map_err(|e| e.to_string())?;
    for j in 0..w {
        let start = pts.iter().min_by(|a, c| eval(graph, a)[j].total_cmp(&eval(graph, c)[j])).unwrap();
        let reached = search(graph, region, start, j, -1.0, &mut g, 150);
        let seen = pts.iter().filter(|p| region.contains(p, 1e-12)).map(|p| eval(graph, p)[j]).fold(reached, f64::min);
        if seen < lower[j] - 1e-9 * (1.0 + seen.abs()) {
            return Err(format!("alpha-CROWN (3 steps): output {j} reaches {seen} below its bound {}", lower[j]));
        }
    }
    Ok(())
}

/// Every node's bounds in the tables of each method (the intermediate bounds the relaxations
/// rest on, however they were computed or skipped) hold at the sampled points.
fn check_intermediate(graph: &Graph, region: &Region, pts: &[Vec<f64>]) -> Result<(), String> {
    let every: Vec<NodeId> = (0..graph.nodes.len()).map(NodeId).collect();
    let names = every.iter().map(|i| format!("n{}", i.0)).collect();
    let all = Graph::new(graph.nodes.clone(), graph.inputs.clone(), graph.input_info.clone(), every, names)
        .map_err(|e| e.to_string())?;
    let out = graph.outputs[0];
    for method in [Method::Ibp, Method::Crown, Method::AlphaCrown] {
        let t = BoundTable::new(graph, region, method, out).map_err(|e| e.to_string())?;
        for p in pts.iter().filter(|p| region.contains(p, 1e-12)) {
            for (id, v) in eval_all(&all, p).iter().enumerate() {
                let Some(b) = t.bounds[id].as_ref() else { continue };
                for (k, &y) in v.iter().enumerate() {
                    let tol = 1e-9 * (1.0 + y.abs());
                    if y < b.lo[k] - tol || y > b.hi[k] + tol {
                        return Err(format!(
                            "{method:?}: node {id} ({}) element {k} = {y} outside [{}, {}]",
                            graph.nodes[id].op.name(),
                            b.lo[k],
                            b.hi[k]
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn norm_strategy() -> impl Strategy<Value = Norm> {
    prop_oneof![Just(Norm::Inf), Just(Norm::L2), Just(Norm::L1)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn dense_networks_bounds_are_sound(seed in any::<u64>(), d in 2usize..6, norm in norm_strategy(), eps in 0.01f64..1.5, clip in any::<bool>()) {
        let graph = dense_net(seed, d);
        let mut g = Gen(seed.rotate_left(7) | 1);
        let center: Vec<f64> = g.vec(d, 1.0).iter().map(|v| v * 0.5).collect();
        let region = Region::ball(center, norm, eps, clip.then_some((-0.6, 0.6))).unwrap();
        prop_assert_eq!(check(&graph, &region, seed), Ok(()));
    }

    #[test]
    fn conv_networks_bounds_are_sound(seed in any::<u64>(), c in 1usize..3, hw in 3usize..6, norm in norm_strategy(), eps in 0.01f64..1.0, clip in any::<bool>()) {
        let graph = conv_net(seed, c, hw);
        let mut g = Gen(seed.rotate_left(11) | 1);
        let center: Vec<f64> = g.vec(c * hw * hw, 1.0).iter().map(|v| (v + 1.0) / 2.0).collect();
        let region = Region::ball(center, norm, eps, clip.then_some((0.0, 1.0))).unwrap();
        prop_assert_eq!(check(&graph, &region, seed), Ok(()));
    }
}

// ------------------------------------------------------------------ beta-CROWN on subdomains

/// A ReLU network (Gemm, ReLU, Gemm, ReLU, residual Add, Gemm) whose outputs are the logits
/// and then the two pre-activation layers, so samples can be tested against ReLU splits.
fn relu_net(seed: u64, d: usize) -> (Graph, [NodeId; 2]) {
    let mut g = Gen(seed | 1);
    let (mut b, x) = Builder::input(vec![1, d]);
    let h = 4 + g.pick(5);
    let gemm = |g: &mut Gen, n_in: usize, n_out: usize| ops::Gemm {
        b: g.param(vec![n_out, n_in], 1.0),
        c: Some(g.param(vec![n_out], 0.5)),
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
    };
    let z1 = b.add(gemm(&mut g, d, h), &[x]);
    let a1 = b.add(ops::Relu, &[z1]);
    let z2 = b.add(gemm(&mut g, h, h), &[a1]);
    let z2r = b.add(ops::Add { constant: None, constant_first: false }, &[z2, a1]);
    let a2 = b.add(ops::Relu, &[z2r]);
    let k = 2 + g.pick(3);
    let out = b.add(gemm(&mut g, h, k), &[a2]);
    let graph = Graph::new(
        b.nodes,
        vec![NodeId(0)],
        vec![ValueInfo { name: "x".into(), shape: vec![1, d], dynamic_batch: false }],
        vec![out, z1, z2r],
        vec!["y".into(), "z1".into(), "z2".into()],
    )
    .unwrap();
    (graph, [z1, z2r])
}

/// Every output of the graph at x, flattened.
fn eval_all(graph: &Graph, x: &[f64]) -> Vec<Vec<f64>> {
    let shape = graph.input_info[0].shape.clone();
    let t = Tensor::new(shape, x.to_vec()).unwrap();
    graph.forward(&[&t]).unwrap().into_iter().map(|o| o.into_data()).collect()
}

/// beta-CROWN's claims on a random subdomain (random splits of unstable neurons, bounds seeded
/// by the root's alpha-CROWN table): the clamped intermediate bounds and the output lower
/// bounds hold at every sampled point that satisfies the splits, plus at the end of a search
/// that pushes each output down while keeping them; and a subdomain declared empty has no such
/// sample.
fn check_beta(graph: &Graph, pre: [NodeId; 2], region: &Region, seed: u64) -> Result<usize, String> {
    let out = graph.outputs[0];
    let w: usize = graph.node(out).shape.iter().product();
    let mut spec = vec![0.0; w * w];
    for i in 0..w {
        spec[i * w + i] = 1.0;
    }
    let mut g = Gen(seed ^ 0xbe7a);
    let root = BoundTable::new(graph, region, Method::AlphaCrown, out).map_err(|e| e.to_string())?;
    let mut unstable = Vec::new();
    for &p in &pre {
        let b = root.bounds[p.0].as_ref().unwrap();
        for i in 0..b.lo.len() {
            if b.lo[i] < 0.0 && b.hi[i] > 0.0 {
                unstable.push((p, i));
            }
        }
    }
    if unstable.is_empty() {
        return Ok(0);
    }
    let mut splits: Vec<NeuronSplit> = Vec::new();
    for _ in 0..1 + g.pick(3) {
        let (node, index) = unstable[g.pick(unstable.len())];
        if !splits.iter().any(|s| s.node == node && s.index == index) {
            splits.push(NeuronSplit { node, index, active: g.next() > 0.0 });
        }
    }
    let pre_value =
        |vals: &[Vec<f64>], s: &NeuronSplit| vals[1 + pre.iter().position(|p| *p == s.node).unwrap()][s.index];
    let holds = |vals: &[Vec<f64>]| {
        splits.iter().all(|s| if s.active { pre_value(vals, s) >= 0.0 } else { pre_value(vals, s) <= 0.0 })
    };
    let pts: Vec<Vec<f64>> =
        sample_points(region, &mut g, 600).into_iter().filter(|p| region.contains(p, 1e-12)).collect();
    let inside: Vec<(Vec<f64>, Vec<Vec<f64>>)> = pts
        .into_iter()
        .map(|p| {
            let v = eval_all(graph, &p);
            (p, v)
        })
        .filter(|(_, v)| holds(v))
        .collect();
    let prior = root.bounds.clone();
    let cache = AffineCache::new(graph);
    let Some(mut t) =
        BoundTable::with_splits(graph, region, Method::Crown, out, None, &splits, Prior::Region(&prior), None)
            .map_err(|e| e.to_string())?
    else {
        return match inside.first() {
            Some((p, _)) => Err(format!("subdomain {splits:?} declared empty, yet {p:?} satisfies it")),
            None => Ok(0),
        };
    };
    let crown = t.backward(out, &spec, w).map_err(|e| e.to_string())?;
    let beta = t.beta_lower(out, &spec, w, &splits, 30, &crown.lower, None, &[]).map_err(|e| e.to_string())?;
    // The same subdomain started from its parent's optimised state (the splits but the last),
    // as branch and bound does.
    let parent = &splits[..splits.len() - 1];
    let (warm, parent_bounds): (Vec<RowWarm>, Option<Vec<Option<Interval>>>) = match BoundTable::with_splits(
        graph,
        region,
        Method::Crown,
        out,
        None,
        parent,
        Prior::Region(&prior),
        Some(&cache),
    ) {
        Ok(Some(mut pt)) => {
            let c = pt.backward(out, &spec, w).map_err(|e| e.to_string())?;
            let warm = pt.beta_lower(out, &spec, w, parent, 10, &c.lower, None, &[]).map_err(|e| e.to_string())?.warm;
            (warm, Some(pt.bounds.clone()))
        }
        _ => (Vec::new(), None),
    };
    let from: Vec<Option<&RowWarm>> = warm.iter().map(Some).collect();
    let warm_lower =
        t.beta_lower(out, &spec, w, &splits, 10, &crown.lower, None, &from).map_err(|e| e.to_string())?.lower;
    // The subdomain bounded as branch and bound does it: every node's bounds taken from the
    // parent's table (clamped by the last split), not recomputed.
    let reused_lower = match &parent_bounds {
        Some(pb) => {
            match crown_with_splits(graph, region, out, &spec, w, &splits, Prior::Parent(pb), None)
                .map_err(|e| e.to_string())?
            {
                Some((c, mut rt)) => {
                    let b = rt
                        .beta_lower(out, &spec, w, &splits, 10, &c.lower, None, &from)
                        .map_err(|e| e.to_string())?
                        .lower;
                    Some(c.lower.iter().zip(&b).map(|(a, b)| a.max(*b)).collect::<Vec<f64>>())
                }
                None => match inside.first() {
                    Some((p, _)) => {
                        return Err(format!("subdomain {splits:?} declared empty by reuse, yet {p:?} satisfies it"))
                    }
                    None => None,
                },
            }
        }
        None => None,
    };
    // With thresholds, as branch and bound runs it: far above the bounds, so the optimisation
    // stops early once no row can reach its threshold at its pace.
    let far: Vec<f64> = crown.lower.iter().map(|l| l + 10.0).collect();
    let stopped_lower =
        t.beta_lower(out, &spec, w, &splits, 20, &crown.lower, Some(&far), &from).map_err(|e| e.to_string())?.lower;
    // Filtered smart branching's estimates of the children of the next split: lower bounds on
    // each child (parent's intermediate bounds, the neuron's function exact there).
    let candidates = t.babsr_candidates(&beta.lower_matrices, w, &splits, 4);
    let estimates = t.split_estimates(out, &spec, w, &beta, &candidates).map_err(|e| e.to_string())?;
    let lower = beta.lower;
    for (p, v) in &inside {
        for j in 0..w {
            if v[0][j] < warm_lower[j] - 1e-9 * (1.0 + v[0][j].abs()) {
                return Err(format!(
                    "warm-started beta-CROWN: output {j} = {} below its bound {} at {p:?} ({splits:?})",
                    v[0][j], warm_lower[j]
                ));
            }
            if let Some(r) = reused_lower.as_ref().filter(|r| v[0][j] < r[j] - 1e-9 * (1.0 + v[0][j].abs())) {
                return Err(format!(
                    "beta-CROWN on the parent's bounds: output {j} = {} below its bound {} at {p:?} ({splits:?})",
                    v[0][j], r[j]
                ));
            }
            if v[0][j] < stopped_lower[j] - 1e-9 * (1.0 + v[0][j].abs()) {
                return Err(format!(
                    "beta-CROWN stopped early: output {j} = {} below its bound {} at {p:?} ({splits:?})",
                    v[0][j], stopped_lower[j]
                ));
            }
        }
        for (c, sides) in candidates.iter().zip(estimates.iter().flatten()) {
            let z = v[1 + pre.iter().position(|q| *q == c.0).unwrap()][c.1];
            for (side, est) in sides.iter().enumerate() {
                let on_side = if side == 0 { z >= 0.0 } else { z <= 0.0 };
                for j in (0..w).filter(|_| on_side) {
                    if v[0][j] < est[j] - 1e-9 * (1.0 + v[0][j].abs()) {
                        return Err(format!(
                            "split estimate of {c:?} side {side}: output {j} = {} below {} at {p:?} ({splits:?})",
                            v[0][j], est[j]
                        ));
                    }
                }
            }
        }
        for (k, &node) in pre.iter().enumerate() {
            let b = t.bounds[node.0].as_ref().unwrap();
            for i in 0..b.lo.len() {
                let tol = 1e-9 * (1.0 + v[1 + k][i].abs());
                if v[1 + k][i] < b.lo[i] - tol || v[1 + k][i] > b.hi[i] + tol {
                    return Err(format!(
                        "pre-activation {i} of {node:?} = {} outside [{}, {}] at {p:?}",
                        v[1 + k][i],
                        b.lo[i],
                        b.hi[i]
                    ));
                }
            }
        }
        for j in 0..w {
            if v[0][j] < lower[j] - 1e-9 * (1.0 + v[0][j].abs()) {
                return Err(format!(
                    "beta-CROWN: output {j} = {} below its bound {} at {p:?} ({splits:?})",
                    v[0][j], lower[j]
                ));
            }
        }
    }
    // Push each output down from the lowest sample, accepting only moves that keep the splits.
    for j in 0..w {
        let Some((start, _)) = inside.iter().min_by(|a, b| a.1[0][j].total_cmp(&b.1[0][j])) else { break };
        let mut x = start.clone();
        let mut best = eval_all(graph, &x)[0][j];
        let mut step = region.eps.max(1e-6) * 0.5;
        for _ in 0..300 {
            let cand: Vec<f64> = x
                .iter()
                .zip(g.vec(x.len(), step))
                .enumerate()
                .map(|(i, (a, b))| (a + b).clamp(region.lo[i], region.hi[i]))
                .collect();
            let v = eval_all(graph, &cand);
            if region.contains(&cand, 0.0) && holds(&v) && v[0][j] < best {
                best = v[0][j];
                x = cand;
            } else {
                step *= 0.98;
            }
        }
        if best < lower[j] - 1e-9 * (1.0 + best.abs()) {
            return Err(format!(
                "beta-CROWN: search reached {best} below the bound {} of output {j} ({splits:?})",
                lower[j]
            ));
        }
    }
    Ok(inside.len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn beta_crown_subdomain_bounds_are_sound(seed in any::<u64>(), d in 2usize..5, norm in norm_strategy(), eps in 0.05f64..1.5) {
        let (graph, pre) = relu_net(seed, d);
        let mut g = Gen(seed.rotate_left(5) | 1);
        let center: Vec<f64> = g.vec(d, 0.5);
        let region = Region::ball(center, norm, eps, None).unwrap();
        prop_assert!(check_beta(&graph, pre, &region, seed).is_ok(), "{:?}", check_beta(&graph, pre, &region, seed));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Intermediate bounds refined by branch and bound (src/verify/refine.rs) hold at every
    /// sampled point of the ball, on a network with a skip connection, under every norm.
    #[test]
    fn refined_intermediate_bounds_are_sound(seed in any::<u64>(), d in 2usize..5, norm in norm_strategy(), eps in 0.05f64..1.5, budget in 1usize..60) {
        let (graph, pre) = relu_net(seed, d);
        let mut g = Gen(seed.rotate_left(9) | 1);
        let center: Vec<f64> = g.vec(d, 0.5);
        let region = Region::ball(center, norm, eps, None).unwrap();
        let root = BoundTable::new(&graph, &region, Method::AlphaCrown, graph.outputs[0]).unwrap().bounds;
        let mut bounds = root.clone();
        let cache = AffineCache::new(&graph);
        let far = std::time::Instant::now() + std::time::Duration::from_secs(60);
        robustcert::verify::refine::refine_node(&graph, &region, &mut bounds, pre[1], budget, far, &cache).unwrap();
        let (before, after) = (root[pre[1].0].as_ref().unwrap(), bounds[pre[1].0].as_ref().unwrap());
        for i in 0..after.lo.len() {
            prop_assert!(after.lo[i] >= before.lo[i] && after.hi[i] <= before.hi[i], "loosened neuron {}", i);
        }
        for p in sample_points(&region, &mut g, 600).into_iter().filter(|p| region.contains(p, 1e-12)) {
            let z = &eval_all(&graph, &p)[2];
            for i in 0..z.len() {
                prop_assert!(
                    z[i] >= after.lo[i] - 1e-9 * (1.0 + z[i].abs()) && z[i] <= after.hi[i] + 1e-9 * (1.0 + z[i].abs()),
                    "neuron {} = {} outside [{}, {}] (alpha-CROWN [{}, {}]) at {:?}", i, z[i], after.lo[i], after.hi[i], before.lo[i], before.hi[i], p
                );
            }
        }
    }

    /// alpha-CROWN on top of refined bounds (`Prior::FinalUpto`, as refinement re-runs it after
    /// each layer): nodes up to the first pre-activation are taken as they are, the later ones
    /// are recomputed and intersected with their refined bounds, so they keep the refinement's
    /// gain; every bound, and the output's, holds at every sampled point of the ball.
    #[test]
    fn alpha_crown_on_refined_bounds_keeps_them_and_is_sound(seed in any::<u64>(), d in 2usize..5, norm in norm_strategy(), eps in 0.05f64..1.5) {
        let (graph, pre) = relu_net(seed, d);
        let out = graph.outputs[0];
        let mut g = Gen(seed.rotate_left(21) | 1);
        let center: Vec<f64> = g.vec(d, 0.5);
        let region = Region::ball(center, norm, eps, None).unwrap();
        let mut refined = BoundTable::new(&graph, &region, Method::AlphaCrown, out).unwrap().bounds;
        let far = std::time::Instant::now() + std::time::Duration::from_secs(60);
        robustcert::verify::refine::refine_node(&graph, &region, &mut refined, pre[1], 40, far, &AffineCache::new(&graph)).unwrap();
        let w: usize = graph.node(out).shape.iter().product();
        let mut spec = vec![0.0; w * w];
        for i in 0..w {
            spec[i * w + i] = 1.0;
        }
        let (b, table) = alpha_crown_with_prior(&graph, &region, out, &spec, w, &refined, pre[0]).unwrap();
        let (prior, now) = (refined[pre[1].0].as_ref().unwrap(), table.bounds[pre[1].0].as_ref().unwrap());
        for i in 0..now.lo.len() {
            prop_assert!(now.lo[i] >= prior.lo[i] && now.hi[i] <= prior.hi[i], "lost the refined bound of neuron {}", i);
        }
        for p in sample_points(&region, &mut g, 600).into_iter().filter(|p| region.contains(p, 1e-12)) {
            let v = eval_all(&graph, &p);
            for (k, node) in [out, pre[0], pre[1]].into_iter().enumerate() {
                let iv = table.bounds[node.0].as_ref().unwrap();
                for (i, z) in v[k].iter().enumerate() {
                    let tol = 1e-9 * (1.0 + z.abs());
                    prop_assert!(*z >= iv.lo[i] - tol && *z <= iv.hi[i] + tol, "node {} neuron {} = {} outside [{}, {}]", node.0, i, z, iv.lo[i], iv.hi[i]);
                }
            }
            for (i, y) in v[0].iter().enumerate() {
                let tol = 1e-9 * (1.0 + y.abs());
                prop_assert!(*y >= b.lower[i] - tol && *y <= b.upper[i] + tol, "output {} = {} outside [{}, {}]", i, y, b.lower[i], b.upper[i]);
            }
        }
    }
}
