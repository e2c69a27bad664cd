//! JUnit XML for the gate: the de-facto schema of Ant's JUnitReport task (as read by Jenkins,
//! GitLab, and GitHub reporters such as dorny/test-reporter and mikepenz/action-junit-report):
//! `<testsuites>` holding one `<testsuite>`, one `<testcase>` per threshold, a `<failure>` on a
//! threshold that does not hold, an `<error>` when the gate could not run. XML 1.0: text and
//! attributes are escaped, and characters XML cannot carry (most C0 controls) are replaced.

use super::GateReport;
use std::fmt::Write as _;

/// Escapes text for XML 1.0 content and attribute values (double-quoted).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Kept literally in attributes, newlines would be normalised to spaces by parsers.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            // Not allowed anywhere in XML 1.0 (not even as character references).
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn secs(v: f64) -> String {
    format!("{:.3}", if v.is_finite() && v > 0.0 { v } else { 0.0 })
}

/// The JUnit XML of a gate run. The certification's wall-clock time is the suite's `time`; each
/// test case's `time` is 0.000, since a threshold is only read off the finished certificate.
pub fn render(r: &GateReport) -> String {
    let n = r.thresholds.len();
    let failures = r.failures();
    let suite = format!("robustcert check {}", r.config.display());
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\" time=\"{}\">",
        escape(&suite),
        secs(r.seconds)
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{}\" \
         timestamp=\"{}\">",
        escape(&suite),
        secs(r.seconds),
        escape(r.timestamp.trim_end_matches('Z'))
    );
    x.push_str("    <properties>\n");
    let signed = if r.signing.signed { "yes: " } else { "NO: " }.to_string() + &r.signing.source;
    for (k, v) in [
        ("certificate", r.envelope.display().to_string()),
        ("certificate.sha256", r.envelope_sha256.clone()),
        ("signed", signed),
        ("keyid", r.signing.keyid.clone()),
        ("model", r.model_name.clone()),
        ("model.sha256", r.model_sha256.clone()),
        ("method", format!("{} {} ({})", r.method, r.norm, r.certified_classifier)),
        ("inputs", r.n.to_string()),
    ] {
        let _ = writeln!(x, "      <property name=\"{}\" value=\"{}\"/>", escape(k), escape(&v));
    }
    x.push_str("    </properties>\n");
    let classname = format!("robustcert.gate.{}", r.model_name);
    for t in &r.thresholds {
        let _ =
            write!(x, "    <testcase name=\"{}\" classname=\"{}\" time=\"0.000\"", escape(&t.name), escape(&classname));
        if t.recorded.pass {
            x.push_str("/>\n");
        } else {
            let msg = t.message();
            let _ = writeln!(
                x,
                ">\n      <failure message=\"{}\" type=\"threshold\">{}&#10;criterion {}&#10;certificate {}</failure>\n    \
                 </testcase>",
                escape(&msg),
                escape(&msg),
                escape(&t.recorded.criterion.to_text()),
                escape(&r.envelope.display().to_string())
            );
        }
    }
    let _ = writeln!(x, "    <system-out>{}</system-out>", escape(&r.summary_lines().join("\n")));
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// The JUnit XML of a gate that could not run (bad configuration, missing model, ...): one test
/// case carrying an `<error>`, so CI shows why instead of an empty report.
pub fn render_error(config: &str, message: &str, seconds: f64) -> String {
    let suite = format!("robustcert check {config}");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{s}\" tests=\"1\" failures=\"0\" errors=\"1\" \
         time=\"{t}\">\n  <testsuite name=\"{s}\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" \
         time=\"{t}\">\n    <testcase name=\"robustcert check\" classname=\"robustcert.gate\" time=\"{t}\">\n      \
         <error message=\"{m}\" type=\"error\">{m}</error>\n    </testcase>\n  </testsuite>\n</testsuites>\n",
        s = escape(&suite),
        t = secs(seconds),
        m = escape(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
        assert_eq!(escape("x\u{1}y\nz"), "x\u{FFFD}y&#10;z");
        assert_eq!(escape("class 4 (mél)"), "class 4 (mél)");
    }
}
