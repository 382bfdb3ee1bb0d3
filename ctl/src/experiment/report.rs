//! A run for people and for tools: a text summary, JSON (the record
//! itself), JUnit XML (one test case per check) and one self-contained
//! HTML page with the timeline of faults and probe samples drawn in SVG.

use std::fmt::Write as _;

use dclab_spec::experiment::record::{EventKind, RunRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Json,
    Junit,
    Html,
}

/// The report of `r`; an HTML report opens with `lab`'s picture when the
/// lab still exists.
pub fn render(r: &RunRecord, f: ReportFormat, lab: Option<&dclab_proto::v1::Lab>) -> String {
    match f {
        ReportFormat::Json => serde_json::to_string_pretty(r).expect("records serialize") + "\n",
        ReportFormat::Junit => junit(r),
        ReportFormat::Html => html(r, lab),
    }
}

/// UTC wall clock of a unix time in ms.
pub fn clock(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn took(r: &RunRecord) -> f64 {
    r.ended_unix_ms
        .map_or(0.0, |e| (e - r.started_unix_ms) as f64 / 1000.0)
}

/// The end of a run in a few lines.
pub fn summary(r: &RunRecord) -> String {
    let mut out = String::new();
    let passed = r.checks.iter().filter(|c| c.passed).count();
    let _ = writeln!(
        out,
        "run {}: {} in {:.1} s, {passed} of {} checks as expected",
        r.id,
        r.verdict.name(),
        took(r),
        r.checks.len()
    );
    for f in &r.findings {
        let _ = writeln!(out, "  finding: {f}");
    }
    out
}

/// `ctl experiment show`.
pub fn text(r: &RunRecord) -> String {
    let mut out = format!(
        "run {} of {} on lab {}, started {} UTC, seed {}\n",
        r.id,
        r.experiment,
        r.lab,
        clock(r.started_unix_ms),
        r.seed
    );
    for t in &r.targets {
        let nodes: Vec<String> = t.nodes.iter().map(|(n, h)| format!("{n} on {h}")).collect();
        let _ = writeln!(out, "  target {}: {}", t.target, nodes.join(", "));
    }
    out.push_str("timeline:\n");
    for e in &r.timeline {
        let mark = if e.error.is_some() { "!" } else { " " };
        let effect = e.effect_us.map_or(String::new(), |us| {
            format!(", in effect after {:.1} ms", us as f64 / 1000.0)
        });
        let _ = writeln!(
            out,
            " {mark}{:>8.3} s  {:<6} {:<8} {}{}{}",
            e.at_ms as f64 / 1000.0,
            e.stage,
            format!("{:?}", e.kind).to_lowercase(),
            e.what,
            effect,
            e.error.as_ref().map_or(String::new(), |x| format!(" — {x}"))
        );
    }
    out.push_str("checks:\n");
    for c in &r.checks {
        let _ = writeln!(
            out,
            "  {} [{}] {}: expected {}, observed {}",
            if c.passed { "ok      " } else { "DEVIATED" },
            c.stage,
            c.name,
            c.expected,
            c.observed
        );
    }
    if !r.awaiting_heal.is_empty() {
        out.push_str("awaiting heal (their agents retry until it succeeds):\n");
        for a in &r.awaiting_heal {
            let on = if a.node.is_empty() {
                String::new()
            } else {
                format!(" on {}", a.node)
            };
            let _ = writeln!(
                out,
                "  {} ({}){on}, host {}: {} failed attempts, the last: {}",
                a.fault, a.kind, a.host, a.failed_attempts, a.error
            );
        }
    }
    out.push_str(&summary(r));
    out
}

fn xml(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .flat_map(|c| match c {
            '&' => "&amp;".chars().collect::<Vec<_>>(),
            '<' => "&lt;".chars().collect(),
            '>' => "&gt;".chars().collect(),
            '"' => "&quot;".chars().collect(),
            '\'' => "&apos;".chars().collect(),
            c => vec![c],
        })
        .collect()
}

fn junit(r: &RunRecord) -> String {
    let failures = r.checks.iter().filter(|c| !c.passed).count();
    let errors = usize::from(r.error.is_some());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"dclab experiments\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">",
        r.checks.len(),
        took(r)
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" id=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\" timestamp=\"{}\">",
        xml(&r.experiment),
        xml(&r.id),
        r.checks.len(),
        took(r),
        clock(r.started_unix_ms).replace(' ', "T")
    );
    let _ = writeln!(out, "    <properties>");
    for (k, v) in [
        ("lab", r.lab.clone()),
        ("verdict", r.verdict.name().into()),
        ("seed", r.seed.to_string()),
        ("trace_id", r.trace_id.clone()),
    ] {
        let _ = writeln!(out, "      <property name=\"{k}\" value=\"{}\"/>", xml(&v));
    }
    let _ = writeln!(out, "    </properties>");
    for c in &r.checks {
        let _ = write!(
            out,
            "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\"",
            xml(&r.experiment),
            xml(&c.stage),
            xml(&c.name),
            c.took_ms as f64 / 1000.0
        );
        if c.passed {
            out.push_str("/>\n");
        } else {
            let _ = writeln!(
                out,
                ">\n      <failure message=\"expected {}\">{}</failure>\n    </testcase>",
                xml(&c.expected),
                xml(&c.observed)
            );
        }
    }
    if let Some(e) = &r.error {
        let _ = writeln!(
            out,
            "    <testcase classname=\"{}\" name=\"the run itself\"><error message=\"{}\"/></testcase>",
            xml(&r.experiment),
            xml(e)
        );
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

const WIDTH: f64 = 960.0;

fn html(r: &RunRecord, lab: Option<&dclab_proto::v1::Lab>) -> String {
    let picture = match lab {
        Some(lab) => format!(
            "<h2>The lab</h2><p>As it was when this report was written.</p>{}",
            crate::lab::graph::svg(lab)
        ),
        None => String::new(),
    };
    let span_ms = r
        .timeline
        .iter()
        .map(|e| e.at_ms + e.took_ms)
        .chain(
            r.probes
                .iter()
                .flat_map(|p| p.samples.last().map(|s| s.0 + p.interval_ms)),
        )
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |ms: u64| 150.0 + (ms as f64 / span_ms) * (WIDTH - 170.0);
    let mut svg = String::new();
    let mut row = 0.0;
    let mut lane = |label: &str, svg: &mut String| -> f64 {
        let y = 30.0 + row * 28.0;
        row += 1.0;
        let _ = write!(
            svg,
            "<text x=\"4\" y=\"{:.0}\" class=\"l\">{}</text>",
            y + 14.0,
            xml(label)
        );
        y
    };
    // Stages as bands, faults as bars from apply to heal.
    let y = lane("stages", &mut svg);
    let stages: Vec<_> = r.timeline.iter().filter(|e| e.kind == EventKind::Stage).collect();
    for (i, s) in stages.iter().enumerate() {
        let end = stages.get(i + 1).map_or(span_ms as u64, |n| n.at_ms);
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{y:.0}\" width=\"{:.1}\" height=\"20\" class=\"s{}\"/><text x=\"{:.1}\" y=\"{:.0}\" class=\"t\">{}</text>",
            x(s.at_ms),
            (x(end) - x(s.at_ms)).max(1.0),
            i % 2,
            x(s.at_ms) + 3.0,
            y + 14.0,
            xml(&s.stage)
        );
    }
    let faults: Vec<_> = r
        .timeline
        .iter()
        .filter(|e| e.kind == EventKind::Fault && e.error.is_none())
        .collect();
    let mut drawn = std::collections::BTreeSet::new();
    for f in faults {
        if !drawn.insert(f.what.clone()) {
            continue;
        }
        let id = f.what.split_whitespace().nth(1).unwrap_or("");
        let healed = r
            .timeline
            .iter()
            .find(|e| {
                e.kind == EventKind::Heal
                    && e.what.split_whitespace().nth(1) == Some(id)
                    && e.at_ms >= f.at_ms
            })
            .map_or(span_ms as u64, |h| h.at_ms + h.took_ms);
        let y = lane(&format!("fault {id}"), &mut svg);
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{y:.0}\" width=\"{:.1}\" height=\"20\" class=\"f\"><title>{}</title></rect>",
            x(f.at_ms),
            (x(healed) - x(f.at_ms)).max(2.0),
            xml(&f.what)
        );
    }
    for p in &r.probes {
        let y = lane(&format!("probe {}", p.name), &mut svg);
        let w = (x(p.interval_ms) - x(0)).clamp(0.6, 8.0);
        for (t, ok) in &p.samples {
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{y:.0}\" width=\"{w:.2}\" height=\"20\" class=\"{}\"/>",
                x(*t),
                if *ok { "ok" } else { "no" }
            );
        }
    }
    let checks: Vec<_> = r.timeline.iter().filter(|e| e.kind == EventKind::Check).collect();
    if !checks.is_empty() {
        let y = lane("checks", &mut svg);
        for c in checks {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.0}\" r=\"6\" class=\"{}\"><title>{}</title></circle>",
                x(c.at_ms + c.took_ms),
                y + 10.0,
                if c.error.is_none() { "ok" } else { "no" },
                xml(&c.what)
            );
        }
    }
    let height = 40.0 + row * 28.0;
    let axis: String = (0..=4)
        .map(|i| {
            let ms = (span_ms * f64::from(i) / 4.0) as u64;
            format!(
                "<text x=\"{:.0}\" y=\"{:.0}\" class=\"a\">{:.1} s</text>",
                x(ms) - 10.0,
                height - 4.0,
                ms as f64 / 1000.0
            )
        })
        .collect();
    let rows = |items: Vec<[String; 4]>| -> String {
        items
            .iter()
            .map(|c| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    c[0], c[1], c[2], c[3]
                )
            })
            .collect()
    };
    let check_rows = rows(
        r.checks
            .iter()
            .map(|c| {
                [
                    format!(
                        "<span class=\"{}\">{}</span>",
                        if c.passed { "pass" } else { "fail" },
                        if c.passed { "as expected" } else { "deviated" }
                    ),
                    xml(&format!("{} / {}", c.stage, c.name)),
                    xml(&c.expected),
                    xml(&c.observed),
                ]
            })
            .collect(),
    );
    let probe_rows = rows(
        r.probes
            .iter()
            .map(|p| {
                let ms =
                    |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{:.1} s", v as f64 / 1000.0));
                [
                    xml(&p.name),
                    xml(&format!("{} -> {} ({})", p.from, p.to, p.address)),
                    ms(p.downtime_ms),
                    ms(p.recovery_ms),
                ]
            })
            .collect(),
    );
    let findings: String = r
        .findings
        .iter()
        .map(|f| format!("<li>{}</li>", xml(f)))
        .collect();
    let targets: String = r
        .targets
        .iter()
        .map(|t| {
            let nodes: Vec<String> = t.nodes.iter().map(|(n, h)| format!("{n} on {h}")).collect();
            format!("<li><b>{}</b>: {}</li>", xml(&t.target), xml(&nodes.join(", ")))
        })
        .collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>dclab run {id}: {exp}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}}
h1{{font-size:20px}} table{{border-collapse:collapse;width:100%;margin:8px 0 20px}}
td,th{{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}}
.verdict{{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;background:{vcolor}}}
.pass{{color:#1a7f37}} .fail{{color:#c62828;font-weight:bold}}
svg .l{{font-size:12px;fill:#444}} svg .t{{font-size:11px;fill:#333}} svg .a{{font-size:11px;fill:#777}}
svg .s0{{fill:#e8eef7}} svg .s1{{fill:#f3f3f3}} svg .f{{fill:#e57373}} svg .ok{{fill:#66bb6a}} svg .no{{fill:#c62828}}
</style></head><body>
<h1>{exp} on lab {lab} <span class="verdict">{verdict}</span></h1>
<p>{title}<br>run {id}, started {started} UTC, {took:.1} s, seed {seed}{trace}</p>
{picture}
<h2>Targets</h2><ul>{targets}</ul>
<h2>Timeline</h2>
<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="timeline of stages, faults, probe samples and checks">{svg}{axis}</svg>
<p>Red bars: faults from applied to healed. Probe samples: green answered, red not. Dots: checks.</p>
<h2>Checks</h2><table><tr><th></th><th>check</th><th>expected</th><th>observed</th></tr>{check_rows}</table>
<h2>Probes</h2><table><tr><th>probe</th><th>path</th><th>downtime</th><th>answered after the heal</th></tr>{probe_rows}</table>
<h2>Findings</h2><ul>{findings}</ul>
</body></html>
"#,
        id = xml(&r.id),
        exp = xml(&r.experiment),
        lab = xml(&r.lab),
        verdict = r.verdict.name(),
        vcolor = match r.verdict.exit_code() {
            0 => "#1a7f37",
            1 => "#e65100",
            _ => "#c62828",
        },
        title = xml(&r.title),
        started = clock(r.started_unix_ms),
        took = took(r),
        seed = r.seed,
        trace = if r.trace_id.is_empty() {
            String::new()
        } else {
            format!(", trace {}", xml(&r.trace_id))
        },
        w = WIDTH,
        h = height,
    )
}
