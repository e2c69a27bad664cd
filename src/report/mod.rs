//! Human-readable reports: one self-contained HTML file (inline CSS and SVG, no external
//! resources) summarising one or more signed certificates: the certified-accuracy curve of each
//! method (Cohen et al. 2019), outcome counts, a per-class table and the slowest inputs.

use crate::cert::{Outcome, Statement};
use std::fmt::Write as _;

/// One certificate to report on.
pub struct ReportRun<'a> {
    /// Heading of the section, e.g. "CROWN (L-inf)".
    pub title: String,
    pub statement: &'a Statement,
    /// Where the signed certificate was written (shown, not linked).
    pub certificate: String,
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
    if rmax <= 0.0 {
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
    let _ = write!(o, r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#, path.join(" "));
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
code{background:#f2f2f2;padding:0 3px}";

/// Renders the report. `notes` are shown prominently at the top (plain text, escaped).
pub fn render_html(title: &str, notes: &[String], runs: &[ReportRun]) -> String {
    const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(title),
        escape(title)
    );
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
}
