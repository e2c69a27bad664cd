//! VNN-LIB properties (the SMT-LIB subset of the VNN-COMP benchmarks, <https://www.vnnlib.org>).
//!
//! A VNN-LIB file states the *violation* of a property: `(declare-const X_i Real)` names input
//! element i (the model input flattened in row-major order), `(declare-const Y_j Real)` output
//! element j, and the conjunction of every `(assert ...)` describes a counterexample. `sat` means
//! some input satisfies all assertions (a counterexample exists), `unsat` that none does.
//!
//! Accepted forms (every one the VNN-COMP files use, and a little more): `;` comments; boolean
//! `and` / `or` nested freely; atoms `(<= a b)`, `(>= a b)`, `(< a b)`, `(> a b)`, `(= a b)`
//! over linear terms (`+`, `-`, `*` by a constant, `/` by a constant, numbers, variables);
//! `set-logic`, `check-sat`, `get-model`, `exit` are ignored. The formula is brought into
//! disjunctive normal form; each disjunct's input atoms must be bounds on single inputs
//! (`a X_i <= b`), its output atoms are linear constraints over Y only. Disjuncts with the same
//! input box are grouped into one [`Case`], so a property is a list of (box, disjunction of
//! conjunctions of `c·y <= d`) cases: the `sat` question is whether, for some case, some input in
//! its box makes the output satisfy one of its conjunctions.
//!
//! Numbers are read as the nearest f64 (as every VNN-COMP tool does); a bound `a X_i <= b` with
//! a ≠ ±1 becomes `X_i <= b / a` rounded outward (the box then contains the stated set). Strict
//! comparisons are kept as a flag: proofs treat them as non-strict (sound), witnesses must satisfy
//! them strictly. Errors carry the line and column (1-based) of the offending form.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Largest number of disjuncts the normal form may reach before the parser refuses the file.
pub const MAX_DISJUNCTS: usize = 1 << 20;
/// Deepest nesting of parentheses accepted (guards the recursive descent).
pub const MAX_DEPTH: usize = 256;

/// A parse or semantic error with its position in the file (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.col, self.message)
    }
}

impl std::error::Error for ParseError {}

/// A position in the source (1-based).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

fn err<T>(pos: Pos, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError { line: pos.line, col: pos.col, message: message.into() })
}

/// One linear output constraint `sum coeffs[j].1 * Y_{coeffs[j].0} <= rhs` (`<` when `strict`).
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    /// (output index, coefficient) pairs, sorted by index, no zero coefficients.
    pub coeffs: Vec<(usize, f64)>,
    pub rhs: f64,
    pub strict: bool,
}

impl Constraint {
    /// The coefficient row over `n` outputs.
    pub fn dense(&self, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; n];
        for &(j, v) in &self.coeffs {
            c[j] += v;
        }
        c
    }

    /// c·y (in f64, rounded to nearest).
    pub fn value(&self, y: &[f64]) -> f64 {
        self.coeffs.iter().map(|&(j, v)| v * y[j]).sum()
    }

    /// Whether y satisfies the constraint.
    pub fn holds(&self, y: &[f64]) -> bool {
        let v = self.value(y);
        if self.strict {
            v < self.rhs
        } else {
            v <= self.rhs
        }
    }
}

/// A disjunction of conjunctions of output constraints (an empty conjunction is `true`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OutputSpec {
    pub disjuncts: Vec<Vec<Constraint>>,
}

impl OutputSpec {
    /// Whether y satisfies some disjunct (y is then a violation of the property).
    pub fn holds(&self, y: &[f64]) -> bool {
        self.disjuncts.iter().any(|conj| conj.iter().all(|c| c.holds(y)))
    }
}

/// One input box with the output condition that makes a point of it a counterexample.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
    pub output: OutputSpec,
}

impl Case {
    /// Whether x lies in the box.
    pub fn contains(&self, x: &[f64]) -> bool {
        x.len() == self.lo.len() && x.iter().zip(self.lo.iter().zip(&self.hi)).all(|(&v, (&l, &h))| v >= l && v <= h)
    }
}

/// A parsed VNN-LIB property: a counterexample is an input of some case's box whose output
/// satisfies that case's output spec. No cases means no counterexample (`unsat`).
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    pub n_inputs: usize,
    pub n_outputs: usize,
    pub cases: Vec<Case>,
}

impl Property {
    /// Whether (x, y) is a counterexample.
    pub fn violated_by(&self, x: &[f64], y: &[f64]) -> bool {
        y.len() == self.n_outputs && self.cases.iter().any(|c| c.contains(x) && c.output.holds(y))
    }

    /// The property written back as VNN-LIB (parsing it gives back an equal property).
    pub fn to_vnnlib(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        for i in 0..self.n_inputs {
            let _ = writeln!(s, "(declare-const X_{i} Real)");
        }
        for j in 0..self.n_outputs {
            let _ = writeln!(s, "(declare-const Y_{j} Real)");
        }
        let constraint = |c: &Constraint| -> String {
            let terms: Vec<String> = c.coeffs.iter().map(|(j, v)| format!("(* {v:?} Y_{j})")).collect();
            let op = if c.strict { "<" } else { "<=" };
            format!("({op} (+ {}) {:?})", terms.join(" "), c.rhs)
        };
        let conj = |cs: &[Constraint]| -> String { cs.iter().map(constraint).collect::<Vec<_>>().join(" ") };
        let bounds = |c: &Case| -> String {
            (0..c.lo.len())
                .map(|i| format!("(>= X_{i} {:?}) (<= X_{i} {:?})", c.lo[i], c.hi[i]))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if self.cases.is_empty() {
            s.push_str("(assert (or))\n");
            return s;
        }
        if self.cases.len() == 1 {
            let c = &self.cases[0];
            for i in 0..self.n_inputs {
                let _ = writeln!(s, "(assert (<= X_{i} {:?}))\n(assert (>= X_{i} {:?}))", c.hi[i], c.lo[i]);
            }
            s.push_str("(assert (or\n");
            for d in &c.output.disjuncts {
                let _ = writeln!(s, "    (and {})", conj(d));
            }
            s.push_str("))\n");
        } else {
            s.push_str("(assert (or\n");
            for c in &self.cases {
                for d in &c.output.disjuncts {
                    let _ = writeln!(s, "    (and {} {})", bounds(c), conj(d));
                }
            }
            s.push_str("))\n");
        }
        s
    }
}

/// Parses VNN-LIB text.
pub fn parse(text: &str) -> Result<Property, ParseError> {
    let forms = read_sexps(text)?;
    let mut inputs: BTreeMap<usize, Pos> = BTreeMap::new();
    let mut outputs: BTreeMap<usize, Pos> = BTreeMap::new();
    // Asserts that are one conjunction (the input box, usually) are kept apart from the
    // disjunctive ones: copied into every disjunct they cost (box size) x (disjuncts), which
    // for a 784-input box and 20,000 disjuncts took 19 s and gigabytes.
    let mut common: Vec<Atom> = Vec::new();
    let mut dnf: Dnf = vec![vec![]]; // true
    let mut first_assert: Option<Pos> = None;
    for f in &forms {
        let Sexp::List(items, pos) = f else {
            return err(f.pos(), format!("expected a command in parentheses, found '{}'", f.text()));
        };
        let Some(Sexp::Atom(head, _)) = items.first() else {
            return err(*pos, "expected a command name (declare-const, assert)");
        };
        match head.as_str() {
            "declare-const" => {
                let [_, Sexp::Atom(name, npos), Sexp::Atom(sort, spos)] = items.as_slice() else {
                    return err(*pos, "expected (declare-const NAME Real)");
                };
                if sort != "Real" {
                    return err(*spos, format!("unsupported sort '{sort}' (only Real)"));
                }
                match var_of(name) {
                    Some(Var::X(i)) => {
                        if inputs.insert(i, *npos).is_some() {
                            return err(*npos, format!("{name} declared twice"));
                        }
                    }
                    Some(Var::Y(j)) => {
                        if outputs.insert(j, *npos).is_some() {
                            return err(*npos, format!("{name} declared twice"));
                        }
                    }
                    None => return err(*npos, format!("unsupported variable name '{name}' (expected X_i or Y_j)")),
                }
            }
            "assert" => {
                let [_, body] = items.as_slice() else {
                    return err(*pos, "expected (assert FORMULA)");
                };
                first_assert.get_or_insert(*pos);
                let mut d = formula(body, &inputs, &outputs, 0)?;
                if d.len() == 1 {
                    common.append(&mut d[0]);
                } else {
                    dnf = and_dnf(dnf, d, *pos)?;
                }
            }
            "set-logic" | "check-sat" | "get-model" | "exit" | "set-info" | "set-option" => {}
            other => return err(*pos, format!("unsupported command '{other}'")),
        }
    }
    for (what, m) in [("X", &inputs), ("Y", &outputs)] {
        if let Some((k, (&i, p))) = m.iter().enumerate().find(|(k, (&i, _))| *k != i) {
            let _ = k;
            return err(*p, format!("{what}_{i} declared but {what}_{} is missing (indices must be 0..n)", i - 1));
        }
    }
    if inputs.is_empty() {
        return err(Pos { line: 1, col: 1 }, "no input variables declared (declare-const X_0 Real)");
    }
    if outputs.is_empty() {
        return err(Pos { line: 1, col: 1 }, "no output variables declared (declare-const Y_0 Real)");
    }
    let (n_in, n_out) = (inputs.len(), outputs.len());
    let mut cases: Vec<Case> = Vec::new();
    // Each distinct box's case, by the bits of its bounds.
    let mut case_of: HashMap<Vec<u64>, usize> = HashMap::new();
    let at = first_assert.unwrap_or(Pos { line: 1, col: 1 });
    // The common atoms once, then each disjunct's own on a copy.
    let mut base = TermBounds::new(n_in);
    let mut any_empty = false;
    for atom in &common {
        any_empty |= !base.add(atom)?;
    }
    let dnf = if any_empty { Vec::new() } else { dnf }; // a false common atom: no input at all
    'terms: for term in dnf {
        let mut t = base.clone();
        for atom in &term {
            if !t.add(atom)? {
                continue 'terms; // a false atom: this disjunct is empty
            }
        }
        let TermBounds { lo, hi, conj } = t;
        for i in 0..n_in {
            if !(lo[i].is_finite() && hi[i].is_finite()) {
                let which = if lo[i].is_finite() { "upper" } else { "lower" };
                return err(
                    at,
                    format!("X_{i} has no finite {which} bound in some disjunct (inputs must lie in a box)"),
                );
            }
        }
        if lo.iter().zip(&hi).any(|(l, h)| l > h) {
            continue; // an empty box: no input
        }
        // Bounds are finite here, so equal bits mean equal boxes (+ 0.0 turns -0.0 into 0.0).
        let key: Vec<u64> = lo.iter().chain(&hi).map(|v| (v + 0.0).to_bits()).collect();
        match case_of.get(&key) {
            Some(&k) => cases[k].output.disjuncts.push(conj),
            None => {
                case_of.insert(key, cases.len());
                cases.push(Case { lo, hi, output: OutputSpec { disjuncts: vec![conj] } });
            }
        }
    }
    for c in &cases {
        for d in &c.output.disjuncts {
            for k in d {
                if let Some(&(j, _)) = k.coeffs.iter().find(|(j, _)| *j >= n_out) {
                    return err(at, format!("Y_{j} is used but not declared"));
                }
            }
        }
    }
    Ok(Property { n_inputs: n_in, n_outputs: n_out, cases })
}

/// One disjunct's input box and output constraints, built atom by atom.
#[derive(Clone)]
struct TermBounds {
    lo: Vec<f64>,
    hi: Vec<f64>,
    conj: Vec<Constraint>,
}

impl TermBounds {
    fn new(n_in: usize) -> TermBounds {
        TermBounds { lo: vec![f64::NEG_INFINITY; n_in], hi: vec![f64::INFINITY; n_in], conj: Vec::new() }
    }

    /// Adds `atom` (sum a v + k <= 0, or < 0); false when it is a constant false atom (the
    /// disjunct is empty).
    fn add(&mut self, atom: &Atom) -> Result<bool, ParseError> {
        let xs: Vec<(usize, f64)> =
            atom.expr.iter().filter_map(|(v, &a)| if let Var::X(i) = v { Some((*i, a)) } else { None }).collect();
        let ys: Vec<(usize, f64)> =
            atom.expr.iter().filter_map(|(v, &a)| if let Var::Y(j) = v { Some((*j, a)) } else { None }).collect();
        let rhs = -atom.constant;
        match (xs.as_slice(), ys.is_empty()) {
            ([], true) => return Ok(if atom.strict { 0.0 < rhs } else { 0.0 <= rhs }),
            ([], false) => self.conj.push(Constraint { coeffs: ys, rhs, strict: atom.strict }),
            ([(i, a)], true) => {
                let (i, a) = (*i, *a);
                if a > 0.0 {
                    let b = exact_quotient(rhs, a).unwrap_or_else(|| crate::num::div_up(rhs, a));
                    self.hi[i] = self.hi[i].min(b);
                } else {
                    let b = exact_quotient(rhs, a).unwrap_or_else(|| crate::num::div_down(rhs, a));
                    self.lo[i] = self.lo[i].max(b);
                }
            }
            ([_], false) => return err(atom.pos, "a constraint may not mix inputs (X) and outputs (Y)"),
            _ => return err(atom.pos, "input constraints must bound a single input (a X_i <= b)"),
        }
        Ok(true)
    }
}

/// b / a when the f64 quotient is exact (q a = b with no rounding), else None.
fn exact_quotient(b: f64, a: f64) -> Option<f64> {
    let q = b / a;
    (q.is_finite() && q.mul_add(a, -b) == 0.0).then_some(q)
}

// ---------------------------------------------------------------------------------------------
// S-expressions

#[derive(Clone, Debug)]
enum Sexp {
    Atom(String, Pos),
    List(Vec<Sexp>, Pos),
}

impl Sexp {
    fn pos(&self) -> Pos {
        match self {
            Sexp::Atom(_, p) | Sexp::List(_, p) => *p,
        }
    }
    fn text(&self) -> String {
        match self {
            Sexp::Atom(s, _) => s.clone(),
            Sexp::List(..) => "(...)".into(),
        }
    }
}

fn read_sexps(text: &str) -> Result<Vec<Sexp>, ParseError> {
    let mut stack: Vec<(Vec<Sexp>, Pos)> = Vec::new();
    let mut top = Vec::new();
    let (mut line, mut col) = (1usize, 1usize);
    let mut chars = text.chars().peekable();
    while let Some(&ch) = chars.peek() {
        let pos = Pos { line, col };
        match ch {
            '\n' => {
                chars.next();
                line += 1;
                col = 1;
            }
            c if c.is_whitespace() => {
                chars.next();
                col += 1;
            }
            ';' => {
                while let Some(&c) = chars.peek() {
                    if c == '\n' {
                        break;
                    }
                    chars.next();
                    col += 1;
                }
            }
            '(' => {
                chars.next();
                col += 1;
                if stack.len() >= MAX_DEPTH {
                    return err(pos, format!("parentheses nested deeper than {MAX_DEPTH}"));
                }
                stack.push((Vec::new(), pos));
            }
            ')' => {
                chars.next();
                col += 1;
                let Some((items, p)) = stack.pop() else {
                    return err(pos, "unbalanced ')'");
                };
                let list = Sexp::List(items, p);
                match stack.last_mut() {
                    Some((parent, _)) => parent.push(list),
                    None => top.push(list),
                }
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == ';' {
                        break;
                    }
                    s.push(c);
                    chars.next();
                    col += 1;
                }
                let atom = Sexp::Atom(s, pos);
                match stack.last_mut() {
                    Some((parent, _)) => parent.push(atom),
                    None => top.push(atom),
                }
            }
        }
    }
    if let Some((_, p)) = stack.last() {
        return err(*p, "unclosed '(' (missing ')' before the end of the file)");
    }
    Ok(top)
}

// ---------------------------------------------------------------------------------------------
// Formulas

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Var {
    X(usize),
    Y(usize),
}

fn var_of(name: &str) -> Option<Var> {
    let idx = |s: &str| -> Option<usize> {
        if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if let Some(r) = name.strip_prefix("X_") {
        return idx(r).map(Var::X);
    }
    if let Some(r) = name.strip_prefix("Y_") {
        return idx(r).map(Var::Y);
    }
    None
}

/// A linear expression: sum of coefficients times variables plus a constant.
#[derive(Clone, Debug, Default)]
struct Linear {
    terms: BTreeMap<Var, f64>,
    constant: f64,
}

impl Linear {
    fn scale(mut self, k: f64) -> Linear {
        for v in self.terms.values_mut() {
            *v *= k;
        }
        self.constant *= k;
        self
    }
    fn add(mut self, o: Linear) -> Linear {
        for (v, a) in o.terms {
            *self.terms.entry(v).or_insert(0.0) += a;
        }
        self.constant += o.constant;
        self
    }
    fn is_constant(&self) -> bool {
        self.terms.values().all(|&a| a == 0.0)
    }
}

/// `expr + constant <= 0` (or `< 0`).
#[derive(Clone, Debug)]
struct Atom {
    expr: BTreeMap<Var, f64>,
    constant: f64,
    strict: bool,
    pos: Pos,
}

type Dnf = Vec<Vec<Atom>>;

fn and_dnf(a: Dnf, b: Dnf, pos: Pos) -> Result<Dnf, ParseError> {
    if a.len().saturating_mul(b.len()) > MAX_DISJUNCTS {
        return err(pos, format!("the formula expands to more than {MAX_DISJUNCTS} disjuncts"));
    }
    if b.len() == 1 {
        // The common case (one more conjunct): extend in place, no copies of `a`.
        let mut a = a;
        let b0 = b.into_iter().next().expect("one");
        for t in &mut a {
            t.extend(b0.iter().cloned());
        }
        return Ok(a);
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in &a {
        for y in &b {
            let mut t = x.clone();
            t.extend(y.iter().cloned());
            out.push(t);
        }
    }
    Ok(out)
}

fn check_declared(
    v: Var,
    pos: Pos,
    inputs: &BTreeMap<usize, Pos>,
    outputs: &BTreeMap<usize, Pos>,
) -> Result<(), ParseError> {
    let ok = match v {
        Var::X(i) => inputs.contains_key(&i),
        Var::Y(j) => outputs.contains_key(&j),
    };
    if ok {
        Ok(())
    } else {
        let name = match v {
            Var::X(i) => format!("X_{i}"),
            Var::Y(j) => format!("Y_{j}"),
        };
        err(pos, format!("{name} is used before it is declared"))
    }
}

fn formula(
    s: &Sexp,
    inputs: &BTreeMap<usize, Pos>,
    outputs: &BTreeMap<usize, Pos>,
    depth: usize,
) -> Result<Dnf, ParseError> {
    if depth > MAX_DEPTH {
        return err(s.pos(), "formula nested too deeply");
    }
    let (items, pos) = match s {
        Sexp::List(items, pos) => (items, *pos),
        Sexp::Atom(a, pos) => {
            return match a.as_str() {
                "true" => Ok(vec![vec![]]),
                "false" => Ok(vec![]),
                _ => err(*pos, format!("expected a formula, found '{a}'")),
            }
        }
    };
    let Some(Sexp::Atom(head, _)) = items.first() else {
        return err(pos, "expected an operator (and, or, <=, >=, <, >, =)");
    };
    let args = &items[1..];
    match head.as_str() {
        "and" => {
            let mut d: Dnf = vec![vec![]];
            for a in args {
                d = and_dnf(d, formula(a, inputs, outputs, depth + 1)?, a.pos())?;
            }
            Ok(d)
        }
        "or" => {
            let mut d: Dnf = Vec::new();
            for a in args {
                d.extend(formula(a, inputs, outputs, depth + 1)?);
                if d.len() > MAX_DISJUNCTS {
                    return err(pos, format!("the formula expands to more than {MAX_DISJUNCTS} disjuncts"));
                }
            }
            Ok(d)
        }
        op @ ("<=" | ">=" | "<" | ">" | "=") => {
            if args.len() < 2 {
                return err(pos, format!("'{op}' needs at least two arguments"));
            }
            let terms: Vec<Linear> =
                args.iter().map(|a| term(a, inputs, outputs, depth + 1)).collect::<Result<_, _>>()?;
            // Chains (<= a b c) mean a <= b and b <= c.
            let mut conj = Vec::new();
            for w in terms.windows(2) {
                let (a, b) = (w[0].clone(), w[1].clone());
                let le = |a: Linear, b: Linear, strict: bool| {
                    let e = a.add(b.scale(-1.0));
                    Atom {
                        expr: e.terms.into_iter().filter(|(_, c)| *c != 0.0).collect(),
                        constant: e.constant,
                        strict,
                        pos,
                    }
                };
                match op {
                    "<=" => conj.push(le(a, b, false)),
                    "<" => conj.push(le(a, b, true)),
                    ">=" => conj.push(le(b, a, false)),
                    ">" => conj.push(le(b, a, true)),
                    _ => {
                        conj.push(le(a.clone(), b.clone(), false));
                        conj.push(le(b, a, false));
                    }
                }
            }
            for a in &conj {
                if a.expr.values().chain(std::iter::once(&a.constant)).any(|v| !v.is_finite()) {
                    return err(pos, "non-finite coefficient or constant");
                }
            }
            Ok(vec![conj])
        }
        "not" | "=>" | "xor" | "ite" => err(pos, format!("'{head}' is not supported (use and/or of comparisons)")),
        other => err(pos, format!("unknown operator '{other}' in a formula")),
    }
}

fn number(s: &str) -> Option<f64> {
    let ok = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && s.bytes().any(|b| b.is_ascii_digit());
    if !ok {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn term(
    s: &Sexp,
    inputs: &BTreeMap<usize, Pos>,
    outputs: &BTreeMap<usize, Pos>,
    depth: usize,
) -> Result<Linear, ParseError> {
    if depth > MAX_DEPTH {
        return err(s.pos(), "term nested too deeply");
    }
    match s {
        Sexp::Atom(a, pos) => {
            if let Some(v) = number(a) {
                return Ok(Linear { terms: BTreeMap::new(), constant: v });
            }
            match var_of(a) {
                Some(v) => {
                    check_declared(v, *pos, inputs, outputs)?;
                    Ok(Linear { terms: [(v, 1.0)].into_iter().collect(), constant: 0.0 })
                }
                None => err(*pos, format!("expected a number or a variable X_i / Y_j, found '{a}'")),
            }
        }
        Sexp::List(items, pos) => {
            let Some(Sexp::Atom(head, _)) = items.first() else {
                return err(*pos, "expected an arithmetic operator (+, -, *, /)");
            };
            let args: Vec<Linear> =
                items[1..].iter().map(|a| term(a, inputs, outputs, depth + 1)).collect::<Result<_, _>>()?;
            match (head.as_str(), args.len()) {
                ("+", n) if n >= 1 => Ok(args.into_iter().fold(Linear::default(), Linear::add)),
                ("-", 1) => Ok(args.into_iter().next().expect("one").scale(-1.0)),
                ("-", n) if n >= 2 => {
                    let mut it = args.into_iter();
                    let first = it.next().expect("two");
                    Ok(it.fold(first, |acc, t| acc.add(t.scale(-1.0))))
                }
                ("*", n) if n >= 1 => {
                    let mut k = 1.0;
                    let mut var: Option<Linear> = None;
                    for t in args {
                        if t.is_constant() {
                            k *= t.constant;
                        } else if var.is_none() {
                            var = Some(t);
                        } else {
                            return err(*pos, "a product of two variables is not linear");
                        }
                    }
                    Ok(match var {
                        Some(v) => v.scale(k),
                        None => Linear { terms: BTreeMap::new(), constant: k },
                    })
                }
                ("/", 2) => {
                    let mut it = args.into_iter();
                    let (a, b) = (it.next().expect("two"), it.next().expect("two"));
                    if !b.is_constant() || b.constant == 0.0 {
                        return err(*pos, "division only by a non-zero constant");
                    }
                    Ok(a.scale(1.0 / b.constant))
                }
                (h, _) => err(*pos, format!("unsupported arithmetic '{h}' with {} argument(s)", items.len() - 1)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acas_like() {
        let p = parse(
            "; c\n(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n\
             (assert (<= X_0 0.5))\n(assert (>= X_0 -0.5))\n(assert (and (<= X_1 1) (>= X_1 0)))\n\
             (assert (or (and (<= Y_0 Y_1)) (and (>= Y_1 0.2) (<= (+ Y_0 (* 2 Y_1)) 3))))\n",
        )
        .unwrap();
        assert_eq!(p.n_inputs, 2);
        assert_eq!(p.cases.len(), 1);
        let c = &p.cases[0];
        assert_eq!((c.lo.clone(), c.hi.clone()), (vec![-0.5, 0.0], vec![0.5, 1.0]));
        assert_eq!(c.output.disjuncts.len(), 2);
        assert_eq!(
            c.output.disjuncts[0],
            vec![Constraint { coeffs: vec![(0, 1.0), (1, -1.0)], rhs: 0.0, strict: false }]
        );
        assert_eq!(c.output.disjuncts[1][0], Constraint { coeffs: vec![(1, -1.0)], rhs: -0.2, strict: false });
        assert_eq!(c.output.disjuncts[1][1], Constraint { coeffs: vec![(0, 1.0), (1, 2.0)], rhs: 3.0, strict: false });
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("(declare-const X_0 Real)\n(assert (<= X_0 foo))").unwrap_err();
        assert_eq!((e.line, e.col), (2, 17));
        let e = parse("(declare-const X_0 Real)\n(assert (<= X_0 1)").unwrap_err();
        assert_eq!((e.line, e.col), (2, 1));
    }
}
