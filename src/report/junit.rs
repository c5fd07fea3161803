//! JUnit XML: one `<testcase>` per variant and model, so CI systems show failures natively.
//!
//! One `<testsuite>` per model. A failing variant carries a `<failure>` naming the failed checks
//! with their reasons and an excerpt of the output; an error variant an `<error>`; an ungraded
//! one `<skipped>`. Everything is escaped for XML 1.0, and characters XML 1.0 cannot carry at
//! all (most control characters) are written as visible `\u{…}` text instead.

use super::Report;
use crate::analysis::{VariantResult, Verdict};
use crate::text::xml;
use std::fmt::Write;

fn case_name(v: &VariantResult) -> String {
    format!(
        "{} [{}] ({})",
        v.probe_id,
        v.axes_label(),
        super::short_id(&v.variant_id)
    )
}

/// Renders the report as JUnit XML.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let total: usize = r.results.iter().map(|m| m.variants.len()).sum();
    let count = |v: Verdict| -> usize {
        r.results
            .iter()
            .flat_map(|m| &m.variants)
            .filter(|x| x.verdict == v)
            .count()
    };
    let _ = writeln!(
        o,
        r#"<testsuites name="cliffprobe {}" tests="{total}" failures="{}" errors="{}" skipped="{}">"#,
        xml(&r.run.id),
        count(Verdict::Fail),
        count(Verdict::Error),
        count(Verdict::Ungraded)
    );
    for m in &r.results {
        let c = |v: Verdict| m.variants.iter().filter(|x| x.verdict == v).count();
        let _ = writeln!(
            o,
            r#"  <testsuite name="{}" tests="{}" failures="{}" errors="{}" skipped="{}" timestamp="{}">"#,
            xml(&m.model),
            m.variants.len(),
            c(Verdict::Fail),
            c(Verdict::Error),
            c(Verdict::Ungraded),
            xml(&r.run.started_at)
        );
        let _ = writeln!(o, "    <properties>");
        let _ = writeln!(
            o,
            r#"      <property name="run" value="{}"/>"#,
            xml(&m.run_id)
        );
        let _ = writeln!(
            o,
            r#"      <property name="counting" value="variants; a variant passes when most of its graded samples pass"/>"#
        );
        let _ = writeln!(o, "    </properties>");
        for v in &m.variants {
            let _ = write!(
                o,
                r#"    <testcase name="{}" classname="{}.{}.{}""#,
                xml(&case_name(v)),
                xml(&m.model),
                v.tier.as_str(),
                xml(&v.capability)
            );
            match v.verdict {
                Verdict::Pass => {
                    let _ = writeln!(o, "/>");
                }
                Verdict::Fail => {
                    let _ = writeln!(o, ">");
                    let (message, body) = match &v.evidence {
                        Some(e) => {
                            let checks: Vec<String> = e
                                .failed_checks
                                .iter()
                                .map(|c| format!("{}: {}", c.check, c.reason))
                                .collect();
                            let mut body = String::new();
                            for c in &checks {
                                let _ = writeln!(body, "failed {c}");
                            }
                            let _ = writeln!(
                                body,
                                "samples: {} pass, {} fail, {} error",
                                v.samples.pass, v.samples.fail, v.samples.error
                            );
                            let _ = write!(
                                body,
                                "output (sample {}):\n{}{}",
                                e.sample,
                                e.output,
                                if e.truncated { "…" } else { "" }
                            );
                            (checks.join("; "), body)
                        }
                        None => ("failed".to_string(), String::new()),
                    };
                    let _ = writeln!(
                        o,
                        r#"      <failure message="{}" type="check">{}</failure>"#,
                        xml(&crate::grade::excerpt(&message, 300)),
                        xml(&body)
                    );
                    let _ = writeln!(o, "    </testcase>");
                }
                Verdict::Error => {
                    let _ = writeln!(o, ">");
                    let msg = v
                        .evidence
                        .as_ref()
                        .and_then(|e| e.error.clone())
                        .unwrap_or_else(|| "no answer".into());
                    let _ = writeln!(
                        o,
                        r#"      <error message="{}" type="error">{}</error>"#,
                        xml(&crate::grade::excerpt(&msg, 300)),
                        xml(&format!(
                            "every sample errored ({}); an error is not a failure and is outside the pass rates",
                            v.samples.error
                        ))
                    );
                    let _ = writeln!(o, "    </testcase>");
                }
                Verdict::Ungraded => {
                    let _ = writeln!(o, ">");
                    let _ = writeln!(
                        o,
                        r#"      <skipped message="ungraded: a check could not be graded (e.g. no canonical answer to compare)"/>"#
                    );
                    let _ = writeln!(o, "    </testcase>");
                }
            }
        }
        let _ = writeln!(o, "  </testsuite>");
    }
    let _ = writeln!(o, "</testsuites>");
    o
}
