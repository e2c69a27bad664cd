//! Human-readable reports: one self-contained HTML file (inline CSS, SVG and PNG `data:` URIs,
//! no external resources) summarising one or more signed certificates: the certified-accuracy
//! curve of each method (Cohen et al. 2019) and, on the same axes, the attack ("empirical
//! robust") accuracy from the smallest adversarial radius found per input
//! ([`crate::attack::radius`]), the gap between the two per input, outcome counts, per-class
//! and per-slice tables, the slowest inputs, and counterexample thumbnails for image inputs
//! (clean, adversarial, amplified difference) read from the witness files ([`witnesses`]).
//!
//! The certified radius is a lower bound on the robust radius and the attack radius an upper
//! bound; for a certificate of the base network f an attack radius below a certified radius is
//! a soundness bug, and the report says so at the top, never hides it.

pub mod witnesses;

use crate::cert::{InputResult, Outcome, Statement};
use std::fmt::Write as _;
use witnesses::{Kind, WitnessSet};

/// One certificate to report on.
pub struct ReportRun<'a> {
    /// Heading of the section, e.g. "CROWN (L-inf)".
    pub title: String,
    pub statement: &'a Statement,
    /// Where the signed certificate was written (shown, not linked).
    pub certificate: String,
    /// Clean inputs and checked witnesses for thumbnails (None: no thumbnails).
    pub witnesses: Option<WitnessSet>,
}

impl<'a> ReportRun<'a> {
    pub fn new(title: impl Into<String>, statement: &'a Statement, certificate: impl Into<String>) -> Self {
        ReportRun { title: title.into(), statement, certificate: certificate.into(), witnesses: None }
    }

    /// Adds the witnesses saved beside `certificate` ([`witnesses::dir_for`]) and the clean
    /// inputs from `data` (the certified inputs file), all checked against the certificate.
    pub fn with_witnesses_from(
        mut self,
        certificate: &std::path::Path,
        data: Option<&std::path::Path>,
    ) -> crate::Result<Self> {
        self.witnesses = Some(witnesses::load(self.statement, &witnesses::dir_for(certificate), data)?);
        Ok(self)
    }
}

/// Whether the attack radius of a result can be compared with its certified radius: the
/// certificate covers the base network f and the attack searched in the threat model's norm.
pub fn comparable(s: &Statement) -> bool {
    s.predicate.method.certified_classifier == "base-classifier"
}

/// The attack radius of a result in the certificate's norm: Some(Some(r)) found at r,
/// Some(None) none found, None not searched (or searched in another norm).
fn attack_of(s: &Statement, x: &InputResult) -> Option<Option<f64>> {
    let a = x.attack_radius.as_ref()?;
    (a.norm == s.predicate.threat_model.norm || !comparable(s)).then_some(a.radius)
}

/// Inputs whose attack radius lies below their certified radius in a certificate of the base
/// network (each one a soundness bug of the verifier or of the attack's checks).
pub fn soundness_violations(s: &Statement) -> Vec<&InputResult> {
    if !comparable(s) {
        return vec![];
    }
    s.predicate
        .results
        .per_input
        .iter()
        .filter(|x| x.outcome == Outcome::Proved && matches!(attack_of(s, x), Some(Some(r)) if r < x.certified_radius))
        .collect()
}

/// Attack ("empirical robust") accuracy at radius r: the fraction of inputs for which no
/// adversarial input within distance r was found (attack radius > r, or none found; an input
/// never searched counts as robust, so this stays an upper bound on the true robust accuracy).
/// A clean-misclassified input has attack radius 0. None when no input was searched.
pub fn attack_accuracy_at(s: &Statement, r: f64) -> Option<f64> {
    let rs = &s.predicate.results.per_input;
    if rs.is_empty() || !rs.iter().any(|x| attack_of(s, x).is_some()) {
        return None;
    }
    let k = rs
        .iter()
        .filter(|x| match attack_of(s, x) {
            Some(Some(a)) => a > r,
            Some(None) => true,
            None => x.outcome == Outcome::Error || x.prediction == Some(x.label),
        })
        .count();
    Some(k as f64 / rs.len() as f64)
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Certified accuracy at radius `r` from the per-input results: the fraction of inputs proved
/// with a certified radius of at least `r`.
pub fn certified_accuracy_at(s: &Statement, r: f64) -> f64 {
    let rs = &s.predicate.results.per_input;
    if rs.is_empty() {
        return 0.0;
    }
    let k = rs.iter().filter(|x| x.outcome == Outcome::Proved && x.certified_radius >= r).count();
    k as f64 / rs.len() as f64
}

/// Clean accuracy of the certified classifier from the per-input results.
pub fn clean_accuracy(s: &Statement) -> f64 {
    let rs = &s.predicate.results.per_input;
    if rs.is_empty() {
        return 0.0;
    }
    rs.iter().filter(|x| x.prediction == Some(x.label)).count() as f64 / rs.len() as f64
}

/// The certified-accuracy curve (step function of the radius) as an inline SVG.
pub fn curve_svg(s: &Statement, colour: &str) -> String {
    let p = &s.predicate;
    let (w, h, ml, mr, mt, mb) = (520.0, 300.0, 56.0, 16.0, 16.0, 44.0);
    let (pw, ph) = (w - ml - mr, h - mt - mb);
    let mut rmax = p.threat_model.radii.iter().copied().fold(0.0f64, f64::max);
    for x in &p.results.per_input {
        if x.outcome == Outcome::Proved {
            rmax = rmax.max(x.certified_radius);
        }
    }
    // The attack curve usually reaches further: show up to its upper quartile (larger attack
    // radii sit at the right edge).
    let mut attack: Vec<f64> = p.results.per_input.iter().filter_map(|x| attack_of(s, x).flatten()).collect();
    attack.retain(|r| r.is_finite());
    attack.sort_by(f64::total_cmp);
    if let Some(&q) = attack.get(attack.len() * 3 / 4) {
        rmax = rmax.max(q);
    }
    if !(rmax.is_finite() && rmax > 0.0) {
        rmax = 1.0;
    }
    rmax *= 1.1;
    let sx = |r: f64| ml + pw * (r / rmax).min(1.0);
    let sy = |a: f64| mt + ph * (1.0 - a);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="certified accuracy against radius">"#
    );
    let _ = write!(o, r##"<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>"##);
    for i in 0..=4 {
        let a = i as f64 / 4.0;
        let y = sy(a);
        let _ = write!(
            o,
            r##"<line x1="{ml}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{a:.2}</text>"##,
            ml + pw,
            ml - 4.0,
            y + 4.0
        );
    }
    for i in 0..=4 {
        let r = rmax * i as f64 / 4.0;
        let x = sx(r);
        let _ = write!(
            o,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#999"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            mt + ph,
            mt + ph + 4.0,
            mt + ph + 16.0,
            fmt_radius(r)
        );
    }
    let _ = write!(
        o,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">radius ({} norm; 1/255 = {:.5})</text>"#,
        ml + pw / 2.0,
        h - 8.0,
        escape(&p.threat_model.norm),
        1.0 / 255.0
    );
    let _ = write!(
        o,
        r#"<text x="14" y="{:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 14 {:.1})">certified accuracy</text>"#,
        mt + ph / 2.0,
        mt + ph / 2.0
    );
    // Clean accuracy (dashed).
    let ca = clean_accuracy(s);
    let _ = write!(
        o,
        r##"<line x1="{ml}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#666" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#666">clean {ca:.2}</text>"##,
        ml + pw,
        ml + pw - 4.0,
        sy(ca) - 4.0,
        y = sy(ca)
    );
    // Step curve: accuracy drops just after each proved radius.
    let mut radii: Vec<f64> =
        p.results.per_input.iter().filter(|x| x.outcome == Outcome::Proved).map(|x| x.certified_radius).collect();
    radii.sort_by(|a, b| a.total_cmp(b));
    radii.dedup();
    // Bound methods search radii only up to the largest reported radius: the curve ends there
    // (beyond it the accuracy is unknown, not zero).
    let search_cap = (!p.method.probabilistic)
        .then(|| p.threat_model.radii.iter().copied().fold(0.0f64, f64::max))
        .filter(|&c| c > 0.0);
    let mut pts = vec![(0.0, certified_accuracy_at(s, 0.0))];
    for &r in &radii {
        pts.push((r, certified_accuracy_at(s, r)));
        if search_cap.is_some_and(|c| r >= c) {
            break;
        }
        pts.push((r, certified_accuracy_at(s, r + 1e-12)));
    }
    match search_cap {
        Some(c) => {
            if pts.last().is_some_and(|&(r, _)| r < c) {
                pts.push((c, certified_accuracy_at(s, c)));
            }
            let _ = write!(
                o,
                r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#666">radius search stops at {c}</text>"##,
                ml + pw - 4.0,
                mt + 14.0
            );
        }
        None => pts.push((rmax, certified_accuracy_at(s, rmax))),
    }
    let path: Vec<String> = pts.iter().map(|&(r, a)| format!("{:.1},{:.1}", sx(r), sy(a))).collect();
    let _ = write!(
        o,
        r#"<polyline class="certified" fill="none" stroke="{colour}" stroke-width="2" points="{}"><title>certified accuracy</title></polyline>"#,
        path.join(" ")
    );
    // Attack accuracy: a step function dropping just at each attack radius (robust at r means
    // attack radius > r).
    if let Some(a0) = attack_accuracy_at(s, 0.0) {
        let mut apts = vec![(0.0, a0)];
        for &r in attack.iter().filter(|&&r| r <= rmax) {
            apts.push((r, attack_accuracy_at(s, r - r * 1e-12).unwrap_or(0.0)));
            apts.push((r, attack_accuracy_at(s, r).unwrap_or(0.0)));
        }
        apts.push((rmax, attack_accuracy_at(s, rmax).unwrap_or(0.0)));
        let path: Vec<String> = apts.iter().map(|&(r, a)| format!("{:.1},{:.1}", sx(r), sy(a))).collect();
        let _ = write!(
            o,
            r#"<polyline class="attack" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="7 3" opacity="0.7" points="{}"><title>attack (empirical robust) accuracy</title></polyline>"#,
            path.join(" ")
        );
        let _ = write!(
            o,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}" font-size="11">certified (lower bound)</text><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2" stroke-dasharray="7 3" opacity="0.7"/><text x="{:.1}" y="{:.1}" font-size="11">attack (upper bound)</text>"##,
            ml + 8.0,
            mt + ph - 30.0,
            ml + 30.0,
            mt + ph - 30.0,
            ml + 34.0,
            mt + ph - 26.0,
            ml + 8.0,
            mt + ph - 14.0,
            ml + 30.0,
            mt + ph - 14.0,
            ml + 34.0,
            mt + ph - 10.0
        );
    }
    // The certificate's reported radii.
    for c in &p.results.aggregates.overall.certified_accuracy {
        let _ = write!(
            o,
            r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{colour}"><title>r = {}: {}/{}</title></circle>"#,
            sx(c.radius),
            sy(c.value.rate),
            c.radius,
            c.value.count,
            c.value.n
        );
    }
    o.push_str("</svg>");
    o
}

fn fmt_radius(r: f64) -> String {
    format!("{r:.4}")
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:0.5em 0 1em}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}\
th{background:#eee}td.l,th.l{text-align:left}.note{border:2px solid #c60;background:#fff4e5;padding:0.6em 1em;margin:1em 0}\
code{background:#f2f2f2;padding:0 3px}.error{border:3px solid #c00;background:#fee;padding:0.6em 1em;margin:1em 0}\
figure.w{display:inline-block;margin:0 1em 1em 0;font-size:12px}figure.w img{width:84px;height:84px;image-rendering:pixelated;margin-right:2px;border:1px solid #ccc}";

/// Renders the report. `notes` are shown prominently at the top (plain text, escaped).
pub fn render_html(title: &str, notes: &[String], runs: &[ReportRun]) -> String {
    const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(title),
        escape(title)
    );
    for run in runs {
        let bad = soundness_violations(run.statement);
        if !bad.is_empty() {
            let list: Vec<String> = bad
                .iter()
                .map(|x| {
                    format!(
                        "input {} (certified {}, attack {})",
                        x.index,
                        x.certified_radius,
                        attack_of(run.statement, x).flatten().map_or("-".into(), |r| r.to_string())
                    )
                })
                .collect();
            let _ = writeln!(
                o,
                "<div class=\"error\" id=\"soundness-error\"><strong>SOUNDNESS ERROR in {}.</strong> {} input(s) have an adversarial input closer than their certified radius, which a sound verifier cannot produce (certified radius = lower bound, attack radius = upper bound on the robust radius): {}. Do not rely on this certificate; report the bug.</div>",
                escape(&run.title),
                bad.len(),
                escape(&list.join("; "))
            );
        }
        if let Some(w) = &run.witnesses {
            for pr in &w.problems {
                let _ = writeln!(
                    o,
                    "<div class=\"error\"><strong>Witness file problem ({}).</strong> {}</div>",
                    escape(&run.title),
                    escape(pr)
                );
            }
        }
    }
    for n in notes {
        let _ = writeln!(o, "<div class=\"note\"><strong>Note.</strong> {}</div>", escape(n));
    }
    // Summary across methods.
    o.push_str("<h2>Summary</h2>\n<table><tr><th class=\"l\">method</th><th class=\"l\">certified classifier</th><th class=\"l\">norm</th><th>inputs</th><th>clean accuracy</th><th class=\"l\">certified accuracy (radius: count/n = rate [CI])</th><th class=\"l\">verdict</th><th class=\"l\">certificate</th></tr>\n");
    for run in runs {
        let p = &run.statement.predicate;
        let ov = &p.results.aggregates.overall;
        let ca: Vec<String> = ov
            .certified_accuracy
            .iter()
            .map(|c| {
                format!(
                    "{}: {}/{} = {:.3} [{:.3}, {:.3}]",
                    c.radius, c.value.count, c.value.n, c.value.rate, c.value.lower, c.value.upper
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{:.3}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\"><code>{}</code></td></tr>",
            escape(&run.title),
            escape(&p.method.certified_classifier),
            escape(&p.threat_model.norm),
            ov.n,
            ov.clean_accuracy.rate,
            escape(&ca.join("; ")),
            escape(&p.acceptance.verdict),
            escape(&run.certificate)
        );
    }
    o.push_str("</table>\n");
    for (k, run) in runs.iter().enumerate() {
        section(&mut o, run, COLOURS[k % COLOURS.len()]);
    }
    if let Some(first) = runs.first() {
        let p = &first.statement.predicate;
        let _ = writeln!(
            o,
            "<h2>Provenance</h2><p>Model <code>{}</code> sha256 <code>{}</code>; data <code>{}</code> (manifest sha256 <code>{}</code>); verifier {} {}. Verify each certificate with <code>robustcert check-cert CERT --key PUB.pem</code>.</p>",
            escape(&p.model.name),
            escape(&p.model.digest.sha256),
            escape(&p.dataset.name),
            escape(&p.dataset.manifest_digest.sha256),
            escape(&p.verifier.name),
            escape(&p.verifier.version)
        );
    }
    o.push_str("</body></html>\n");
    o
}

fn section(o: &mut String, run: &ReportRun, colour: &str) {
    let p = &run.statement.predicate;
    let rs = &p.results.per_input;
    let _ = writeln!(o, "<h2>{}</h2>", escape(&run.title));
    let _ = writeln!(
        o,
        "<p>Method <code>{}</code>; certifies {}. {}</p>",
        escape(&p.method.name),
        escape(&p.method.certified_classifier),
        escape(&p.property.description)
    );
    if p.statistics.alpha_per_input > 0.0 {
        let _ = writeln!(o, "<p>{}</p>", escape(&p.statistics.interpretation));
    }
    o.push_str("<h3>Certified accuracy against radius</h3>\n");
    o.push_str(&curve_svg(run.statement, colour));
    attack_note(o, run.statement);
    o.push_str("\n<h3>Outcomes</h3>\n<table><tr>");
    for oc in Outcome::ALL {
        let _ = write!(o, "<th>{}</th>", oc.name());
    }
    o.push_str("</tr><tr>");
    for oc in Outcome::ALL {
        let _ = write!(o, "<td>{}</td>", rs.iter().filter(|x| x.outcome == oc).count());
    }
    o.push_str("</tr></table>\n");
    // Per class.
    let radii = &p.threat_model.radii;
    let k = p.model.num_classes.max(rs.iter().map(|x| x.label + 1).max().unwrap_or(0));
    o.push_str("<h3>Per class</h3>\n<table><tr><th class=\"l\">class</th><th>inputs</th><th>clean accuracy</th>");
    for r in radii {
        let _ = write!(o, "<th>certified @ {r}</th>");
    }
    o.push_str("</tr>\n");
    for c in 0..k {
        let of: Vec<_> = rs.iter().filter(|x| x.label == c).collect();
        let name = p.model.class_names.get(c).cloned().unwrap_or_else(|| format!("class {c}"));
        let n = of.len();
        let rate = |k: usize| if n == 0 { "-".to_string() } else { format!("{k}/{n} = {:.2}", k as f64 / n as f64) };
        let _ = write!(
            o,
            "<tr><td class=\"l\">{} ({c})</td><td>{n}</td><td>{}</td>",
            escape(&name),
            rate(of.iter().filter(|x| x.prediction == Some(c)).count())
        );
        for &r in radii {
            let k = of.iter().filter(|x| x.outcome == Outcome::Proved && x.certified_radius >= r).count();
            let _ = write!(o, "<td>{}</td>", rate(k));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
    slices_table(o, run.statement);
    gap_table(o, run.statement, 15);
    // Slowest inputs.
    let mut timed: Vec<_> = rs.iter().filter_map(|x| x.seconds.map(|s| (s, x))).collect();
    if !timed.is_empty() {
        timed.sort_by(|a, b| b.0.total_cmp(&a.0));
        let total: f64 = timed.iter().map(|t| t.0).sum();
        let _ = writeln!(
            o,
            "<h3>Slowest inputs</h3>\n<p>{} inputs timed, {:.2} s in all.</p><table><tr><th>input</th><th class=\"l\">label</th><th class=\"l\">outcome</th><th>radius</th><th>seconds</th></tr>",
            timed.len(),
            total
        );
        for (s, x) in timed.iter().take(5) {
            let name = p.model.class_names.get(x.label).cloned().unwrap_or_else(|| x.label.to_string());
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{s:.3}</td></tr>",
                x.index,
                escape(&name),
                x.outcome.name(),
                x.certified_radius
            );
        }
        o.push_str("</table>\n");
    }
    if let Some(w) = &run.witnesses {
        thumbnails(o, run.statement, w, 12);
    }
}

/// What the attack curve means for this certificate.
fn attack_note(o: &mut String, s: &Statement) {
    let p = &s.predicate;
    let searched = p.results.per_input.iter().filter(|x| x.attack_radius.is_some()).count();
    if searched == 0 {
        o.push_str(
            "<p>No adversarial radius search was run (certify <code>--attack-radius</code>): no attack curve.</p>\n",
        );
        return;
    }
    let params = p.method.parameters.get("attackRadius").map(|v| v.to_string()).unwrap_or_default();
    let meaning = if comparable(s) {
        "Solid: certified accuracy (a lower bound on the robust accuracy of the network f). Dashed: attack accuracy, \
         the fraction of inputs for which PGD found no misclassified input within distance r (an upper bound). The \
         true robust accuracy lies between the two curves."
    } else {
        "Solid: certified accuracy of the smoothed classifier g. Dashed: attack accuracy of the BASE network f (PGD \
         on f itself, in L2). The two classifiers differ: g may be certified beyond f's attack radius (smoothing \
         buys robustness), so the dashed curve is not a bound on the solid one; it shows how fragile f is without \
         smoothing."
    };
    let _ = writeln!(
        o,
        "<p>{} {searched} of {} inputs searched. Search parameters: <code>{}</code>.</p>",
        escape(meaning),
        p.results.per_input.len(),
        escape(&params)
    );
}

/// Named subgroups (kind "subgroup"; classes have their own table).
fn slices_table(o: &mut String, s: &Statement) {
    let p = &s.predicate;
    let slices: Vec<_> = p.dataset.slices.iter().filter(|sl| sl.kind != "class").collect();
    o.push_str("<h3>Per slice</h3>\n");
    if slices.is_empty() {
        o.push_str("<p>No subgroup slices in this certificate (per-class results are above).</p>\n");
        return;
    }
    let radii = &p.threat_model.radii;
    o.push_str("<table><tr><th class=\"l\">slice</th><th>inputs</th><th>clean accuracy</th>");
    for r in radii {
        let _ = write!(o, "<th>certified @ {r}</th>");
    }
    o.push_str("</tr>\n");
    for sl in slices {
        let of: Vec<&InputResult> = p
            .results
            .per_input
            .iter()
            .filter(|x| sl.indices.binary_search(&x.index).is_ok() || sl.indices.contains(&x.index))
            .collect();
        let n = of.len();
        let rate = |k: usize| if n == 0 { "-".to_string() } else { format!("{k}/{n} = {:.2}", k as f64 / n as f64) };
        let _ = write!(
            o,
            "<tr><td class=\"l\">{}</td><td>{n}</td><td>{}</td>",
            escape(&sl.name),
            rate(of.iter().filter(|x| x.prediction == Some(x.label)).count())
        );
        for &r in radii {
            let _ = write!(o, "<td>{}</td>", rate(of.iter().filter(|x| x.certified_at(r)).count()));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.6}"))
}

/// The inputs with the largest gap between attack radius (upper bound) and certified radius
/// (lower bound): where the verifier leaves the most room.
fn gap_table(o: &mut String, s: &Statement, top: usize) {
    let p = &s.predicate;
    let mut rows: Vec<(&InputResult, Option<f64>, Option<f64>)> = p
        .results
        .per_input
        .iter()
        .filter_map(|x| {
            let a = attack_of(s, x)?;
            let gap = a.map(|a| a - x.certified_radius);
            Some((x, a, gap))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    // Largest gap first; "none found" (unbounded gap) before any number.
    rows.sort_by(|a, b| match (a.2, b.2) {
        (None, None) => a.0.index.cmp(&b.0.index),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => y.total_cmp(&x).then(a.0.index.cmp(&b.0.index)),
    });
    let name = |c: Option<usize>| match c {
        Some(c) => p.model.class_names.get(c).cloned().map_or(c.to_string(), |n| format!("{n} ({c})")),
        None => "abstain".into(),
    };
    let _ = writeln!(
        o,
        "<h3>Gap between attack and certified radius</h3>\n<p>The {} largest of {} (certified radius: 0 unless proved, and \
         searched only up to {}; attack radius: '-' when none was found up to the search limit). {}</p>\n<table class=\"gap\"><tr><th>input</th><th class=\"l\">label</th><th class=\"l\">prediction</th><th class=\"l\">outcome</th><th>certified radius</th><th>attack radius</th><th>gap</th></tr>",
        top.min(rows.len()),
        rows.len(),
        p.method.parameters.get("maxRadius").map_or("the largest reported radius".to_string(), |v| v.to_string()),
        if comparable(s) { "" } else { "The attack radius is the base network f's; the certified radius is the smoothed classifier g's: a negative gap is expected, not an error." }
    );
    for (x, a, gap) in rows.iter().take(top) {
        let bad = comparable(s) && x.outcome == Outcome::Proved && a.is_some_and(|a| a < x.certified_radius);
        let _ = writeln!(
            o,
            "<tr{}><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if bad { " style=\"background:#fcc\"" } else { "" },
            x.index,
            escape(&name(Some(x.label))),
            escape(&name(x.prediction)),
            x.outcome.name(),
            x.certified_radius,
            fmt_opt(*a),
            gap.map_or("unbounded".to_string(), |g| format!("{g:.6}"))
        );
    }
    o.push_str("</table>\n");
}

/// Clean input, adversarial input and amplified difference for the inputs with checked
/// witnesses: counterexamples at eps first, then the closest attack witnesses.
fn thumbnails(o: &mut String, s: &Statement, w: &WitnessSet, max: usize) {
    let p = &s.predicate;
    if witnesses::image_layout(&w.shape).is_none() || w.witnesses.is_empty() {
        return;
    }
    let mut items: Vec<(usize, Kind, f64)> = vec![];
    for x in &p.results.per_input {
        if w.witnesses.contains_key(&(x.index, Kind::Counterexample)) {
            items.push((x.index, Kind::Counterexample, 0.0));
        }
    }
    let mut attacks: Vec<(usize, Kind, f64)> = p
        .results
        .per_input
        .iter()
        .filter(|x| w.witnesses.contains_key(&(x.index, Kind::Attack)))
        .filter_map(|x| Some((x.index, Kind::Attack, x.attack_radius.as_ref()?.radius?)))
        .filter(|t| t.2 > 0.0)
        .collect();
    attacks.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.cmp(&b.0)));
    items.extend(attacks);
    items.truncate(max);
    if items.is_empty() {
        return;
    }
    let (lo, hi) = p.threat_model.clip_box.map_or((None, None), |[a, b]| (Some(a), Some(b)));
    let _ = writeln!(
        o,
        "<h3>Counterexample thumbnails</h3>\n<p>Each: the clean input, the adversarial input (misclassified by the f32 and the f64 forward pass; its digest matches the certificate), and their difference amplified to the full grey range (mid-grey = no change). Files: <code>{}</code>.</p>\n<div class=\"thumbs\">",
        escape(&format!("{}/input-NNNNNN.{{counterexample,attack}}.npy", "STEM.witnesses"))
    );
    let name = |c: Option<usize>| match c {
        Some(c) => p.model.class_names.get(c).cloned().unwrap_or_else(|| c.to_string()),
        None => "-".into(),
    };
    for (i, kind, _) in items {
        let (Some(clean), Some(adv)) = (w.clean.get(&i), w.witnesses.get(&(i, kind))) else { continue };
        let Some(x) = p.results.per_input.iter().find(|x| x.index == i) else { continue };
        let (mut vmin, mut vmax) = (f64::INFINITY, f64::NEG_INFINITY);
        for &v in clean.iter().chain(adv.iter()).filter(|v| v.is_finite()) {
            vmin = vmin.min(f64::from(v));
            vmax = vmax.max(f64::from(v));
        }
        let vlo = lo.unwrap_or(vmin);
        let vhi = hi.unwrap_or(vmax);
        let diff: Vec<f32> = clean.iter().zip(adv).map(|(a, b)| b - a).collect();
        let dmax = diff.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
        let dm = if dmax > 0.0 && dmax.is_finite() { dmax } else { 1.0 };
        let (Some(u0), Some(u1), Some(u2)) = (
            witnesses::png_data_uri(clean, &w.shape, vlo, vhi),
            witnesses::png_data_uri(adv, &w.shape, vlo, vhi),
            witnesses::png_data_uri(&diff, &w.shape, -dm, dm),
        ) else {
            continue;
        };
        let (what, pred, dist) = match kind {
            Kind::Counterexample => ("counterexample at eps", None, None),
            Kind::Attack => {
                let a = x.attack_radius.as_ref();
                ("closest attack", a.and_then(|a| a.witness_prediction), a.and_then(|a| a.radius))
            }
        };
        let _ = writeln!(
            o,
            "<figure class=\"w {}\"><img src=\"{u0}\" alt=\"input {i} clean\"/><img src=\"{u1}\" alt=\"input {i} adversarial\"/><img src=\"{u2}\" alt=\"input {i} difference\"/><figcaption>input {i}, {}: label {}{}{}; |diff| max {:.5} (x{:.0})</figcaption></figure>",
            kind.name(),
            what,
            escape(&name(Some(x.label))),
            pred.map_or(String::new(), |c| format!(" &#8594; {}", escape(&name(Some(c))))),
            dist.map_or(String::new(), |d| format!(", distance {d:.5}")),
            dmax,
            0.5 / dm * (vhi - vlo)
        );
    }
    o.push_str("</div>\n");
}

/// Writes the report of one certificate (with its witnesses and, when `data` is given, clean
/// thumbnails) to `path`.
pub fn write_single(
    path: &std::path::Path,
    title: &str,
    statement: &Statement,
    certificate: &std::path::Path,
    data: Option<&std::path::Path>,
) -> crate::Result<()> {
    let run =
        ReportRun::new(title, statement, certificate.display().to_string()).with_witnesses_from(certificate, data)?;
    let html = render_html(&format!("robustcert report: {}", statement.predicate.model.name), &[], &[run]);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| crate::Error::io(parent, e))?;
    }
    std::fs::write(path, html).map_err(|e| crate::Error::io(path, e))
}

/// An error naming every input whose attack radius lies below its certified radius (see
/// [`soundness_violations`]); Ok when there is none.
pub fn fail_on_soundness_violations(s: &Statement) -> crate::Result<()> {
    let bad = soundness_violations(s);
    if bad.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = bad
        .iter()
        .map(|x| {
            format!(
                "input {}: certified radius {} but an adversarial input at distance {}",
                x.index,
                x.certified_radius,
                x.attack_radius.as_ref().and_then(|a| a.radius).unwrap_or(f64::NAN)
            )
        })
        .collect();
    Err(crate::Error::Verification(format!(
        "SOUNDNESS ERROR: the attack found adversarial inputs closer than the certified radius ({}); the certificate \
         must not be relied on",
        list.join("; ")
    )))
}

/// One line for stdout about the adversarial radius search, or None when none was run:
/// how many witnesses, the median attack radius, attack accuracy at the reported radii.
pub fn attack_summary(s: &Statement) -> Option<String> {
    let p = &s.predicate;
    let searched: Vec<&crate::cert::AttackRadius> =
        p.results.per_input.iter().filter_map(|x| x.attack_radius.as_ref()).collect();
    let first = searched.first()?;
    let mut found: Vec<f64> = searched.iter().filter_map(|a| a.radius).collect();
    found.sort_by(f64::total_cmp);
    let median = found.get(found.len() / 2).map_or("-".to_string(), |m| format!("{m:.6}"));
    let at: Vec<String> = p
        .threat_model
        .radii
        .iter()
        .filter_map(|&r| attack_accuracy_at(s, r).map(|a| format!("{a:.3} @ {r}")))
        .collect();
    let of = if comparable(s) { "f" } else { "the base network f, not g" };
    Some(format!(
        "attack radius ({} PGD, an upper bound on the robust radius of {of}): witness found for {} of {} inputs, \
         median {median}; attack accuracy {}",
        first.norm,
        found.len(),
        searched.len(),
        at.join(", ")
    ))
}
