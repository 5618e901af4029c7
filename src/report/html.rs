//! One self-contained HTML page per report: inline CSS and SVG drawn here, no script and no
//! fetch, so it opens from a CI artifact store or an e-mail as it does from disk.
//!
//! Load pages plot what the HdrHistograms hold: the percentile spectrum on a log "nines" axis
//! (the HdrHistogram convention), and throughput and p99 per interval from the interval log.

use std::fmt::Write;

use hdrhistogram::Histogram;
use serde_json::Value;

use crate::load::interval_log::IntervalLog;
use crate::load::summary::{LoadSummary, Stats};
use crate::outcome::RunReport;

/// One line per shard on a merged page.
pub struct ShardSeries {
    pub label: String,
    pub log: IntervalLog,
}

/// (x, y) points of one plotted line.
type Points = Vec<(f64, f64)>;

const PALETTE: [&str; 8] = ["#1f5fbf", "#d1495b", "#2a9d8f", "#e9a03b", "#6a4c93", "#5c7c2f", "#b5651d", "#3d5a80"];

/// XML's escaping serves HTML too, and it also keeps characters no page should hold out.
use super::run::xml_escape as escape;

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1100px; color: #1d2733; padding: 0 16px; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }}
h2 {{ font-size: 17px; margin: 28px 0 8px; }}
.meta {{ color: #5a6775; margin-bottom: 16px; }}
.verdict {{ display: inline-block; padding: 4px 12px; border-radius: 4px; font-weight: 600; color: #fff; }}
.verdict.passed, .status.PASS {{ background: #2e7d32; }}
.verdict.failed, .verdict.unreachable, .status.FAIL {{ background: #c62828; }}
.verdict.invalid, .status.WARN {{ background: #e08e0b; }}
.status.SKIP, .status.INFO {{ background: #78909c; }}
tr.FAIL td {{ background: #fdf1f1; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
th, td {{ border-bottom: 1px solid #dde3ea; padding: 4px 10px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }}
table#verdicts {{ width: 100%; table-layout: fixed; }}
table#steps {{ width: 100%; }} table#steps th, table#steps td.num, table#steps td.step-verdict {{ white-space: nowrap; }}
td.num, th.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.status {{ font-weight: 600; color: #fff; border-radius: 3px; padding: 1px 6px; font-size: 12px; }}
details {{ margin: 4px 0; }}
summary {{ cursor: pointer; color: #1f5fbf; }}
pre {{ background: #f4f6f8; padding: 8px; overflow-x: auto; font-size: 12px; max-height: 420px; }}
svg {{ background: #fff; border: 1px solid #dde3ea; }}
svg text {{ font: 11px system-ui, sans-serif; fill: #3c4856; }}
.legend span {{ display: inline-block; margin-right: 14px; }}
.swatch {{ display: inline-block; width: 12px; height: 3px; vertical-align: middle; margin-right: 4px; }}
</style>
</head>
<body>
{body}
</body>
</html>
"#,
        title = escape(title)
    )
}

/// A line chart: `series` of (label, points), x and y ticks as (value, label).
struct Chart<'a> {
    id: &'a str,
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    x_ticks: Vec<(f64, String)>,
    series: Vec<(String, Vec<(f64, f64)>)>,
}

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 50.0;

impl Chart<'_> {
    fn svg(&self) -> String {
        let points = self.series.iter().flat_map(|(_, p)| p.iter());
        let (mut x_min, mut x_max, mut y_max) = (f64::MAX, f64::MIN, 0.0f64);
        for &(x, y) in points {
            x_min = x_min.min(x);
            x_max = x_max.max(x);
            y_max = y_max.max(y);
        }
        for (x, _) in &self.x_ticks {
            x_min = x_min.min(*x);
            x_max = x_max.max(*x);
        }
        if x_min > x_max {
            (x_min, x_max) = (0.0, 1.0);
        }
        if (x_max - x_min).abs() < f64::EPSILON {
            x_max = x_min + 1.0;
        }
        let (y_top, y_step) = nice_scale(y_max);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * plot_w;
        let sy = |y: f64| TOP + plot_h - y / y_top * plot_h;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg id="{id}" role="img" aria-label="{title}" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet">"#,
            id = self.id,
            title = escape(self.title)
        );
        // Grid and y ticks.
        let mut y = 0.0;
        while y <= y_top + y_step / 2.0 {
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" x2="{x2}" y1="{py:.1}" y2="{py:.1}" stroke="#e6ebf0"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"##,
                x2 = WIDTH - RIGHT,
                py = sy(y),
                tx = LEFT - 6.0,
                ty = sy(y) + 4.0,
                label = tick_label(y, y_step)
            );
            y += y_step;
        }
        for (x, label) in &self.x_ticks {
            let _ = write!(
                svg,
                r##"<line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{y2}" stroke="#e6ebf0"/><text x="{px:.1}" y="{ty}" text-anchor="middle">{label}</text>"##,
                px = sx(*x),
                y2 = TOP + plot_h,
                ty = TOP + plot_h + 16.0,
                label = escape(label)
            );
        }
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{b}" stroke="#8895a3"/><line x1="{LEFT}" x2="{r}" y1="{b}" y2="{b}" stroke="#8895a3"/>"##,
            b = TOP + plot_h,
            r = WIDTH - RIGHT
        );
        let _ = write!(
            svg,
            r#"<text x="{cx}" y="{by}" text-anchor="middle">{xl}</text><text transform="translate(16 {cy}) rotate(-90)" text-anchor="middle">{yl}</text><text x="{LEFT}" y="18" font-weight="600">{title}</text>"#,
            cx = LEFT + plot_w / 2.0,
            by = HEIGHT - 10.0,
            xl = escape(self.x_label),
            cy = TOP + plot_h / 2.0,
            yl = escape(self.y_label),
            title = escape(self.title)
        );
        for (index, (label, points)) in self.series.iter().enumerate() {
            if points.is_empty() {
                continue;
            }
            let path: Vec<String> = points.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect();
            let _ = write!(
                svg,
                r#"<polyline class="series" data-series="{label}" fill="none" stroke="{color}" stroke-width="{width}" points="{points}"/>"#,
                label = escape(label),
                color = PALETTE[index % PALETTE.len()],
                width = if index == 0 { 2.5 } else { 1.5 },
                points = path.join(" ")
            );
        }
        svg.push_str("</svg>");
        let legend: Vec<String> = self
            .series
            .iter()
            .enumerate()
            .map(|(index, (label, _))| {
                format!(
                    r#"<span><i class="swatch" style="background:{}"></i>{}</span>"#,
                    PALETTE[index % PALETTE.len()],
                    escape(label)
                )
            })
            .collect();
        format!("{svg}\n<div class=\"legend\">{}</div>\n", legend.join(""))
    }
}

/// A round top for the y axis and a step giving 4–8 ticks.
fn nice_scale(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.25);
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(magnitude * 10.0);
    ((max / step).ceil() * step, step)
}

fn tick_label(value: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{value:.0}")
    } else {
        let decimals = (-step.log10()).ceil() as usize;
        format!("{value:.decimals$}")
    }
}

/// Percentile spectrum points: x in "nines" (log10 of 1/(1-q)), y in ms.
fn spectrum(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    // Up to 99.9999 %, or as far as the samples reach: beyond 1/count there is nothing more.
    let max_nines = (histogram.len() as f64).log10().clamp(1.0, 6.0);
    (0..=240)
        .map(|i| {
            let nines = max_nines * i as f64 / 240.0;
            let quantile = 1.0 - 10f64.powf(-nines);
            (nines, histogram.value_at_quantile(quantile) as f64 / 1000.0)
        })
        .collect()
}

fn nines_ticks(series: &[(String, Vec<(f64, f64)>)]) -> Vec<(f64, String)> {
    let reach = series.iter().flat_map(|(_, p)| p.last()).map(|(x, _)| *x).fold(1.0, f64::max);
    let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"];
    labels.iter().enumerate().take(reach.ceil() as usize + 1).map(|(i, l)| (i as f64, l.to_string())).collect()
}

/// Per interval of `tag`: (seconds since start, samples per second) and (seconds, p99 ms).
fn over_time(log: &IntervalLog, tag: &str) -> (Points, Points) {
    let mut rate = Vec::new();
    let mut p99 = Vec::new();
    for interval in log.intervals.iter().filter(|i| i.tag.as_deref() == Some(tag)) {
        let at = (interval.start + interval.length).as_secs_f64();
        let seconds = interval.length.as_secs_f64().max(1e-3);
        rate.push((at, interval.histogram.len() as f64 / seconds));
        if !interval.histogram.is_empty() {
            p99.push((at, interval.histogram.value_at_quantile(0.99) as f64 / 1000.0));
        }
    }
    (rate, p99)
}

fn stats_row(name: &str, stats: &Stats) -> String {
    let ms = |v: u64| format!("{:.3}", v as f64 / 1000.0);
    format!(
        "<tr><td>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr>",
        escape(name),
        stats.count,
        ms(stats.min),
        ms(stats.p50),
        ms(stats.p90),
        ms(stats.p99),
        ms(stats.p999),
        ms(stats.max)
    )
}

/// The page for a load run, or for a merge of shards (`shards` non-empty).
/// Shown under the verdict of a run made with `--insecure`.
const TLS_UNVERIFIED_BANNER: &str = "\n<div id=\"tls-unverified\" class=\"verdict failed\">TLS certificates were not verified (--insecure): the server's identity is unchecked</div>\n";

pub fn load_page(summary: &LoadSummary, log: Option<&IntervalLog>, shards: &[ShardSeries]) -> String {
    let verdict = format!("{:?}", summary.verdict).to_lowercase();
    let mut body = String::new();
    let kind = if shards.is_empty() { "load run" } else { "merged load run" };
    let _ = write!(
        body,
        r#"<h1>wsprobe {kind}: {mode} mode against {target}</h1>
<div class="meta">{connections} connection(s), {loop_kind} loop, {in_flight} in flight, {duration:.1} s{shard_note}</div>
<div id="verdict" class="verdict {verdict}">{verdict}</div>
"#,
        mode = summary.mode,
        target = escape(&summary.target),
        connections = summary.connections,
        loop_kind = summary.loop_kind,
        in_flight = summary.in_flight,
        duration = summary.duration_s,
        shard_note = if shards.is_empty() { String::new() } else { format!(", {} shards", shards.len()) },
    );
    if summary.tls.is_some() {
        body.push_str(TLS_UNVERIFIED_BANNER);
    }
    for reason in summary.failures.iter().chain(&summary.invalid_reasons) {
        let _ = write!(body, "<p>{}</p>", escape(reason));
    }
    let _ = write!(
        body,
        r#"<h2>Counts</h2><table id="counts"><tr><th>sent</th><th>received</th><th>throughput/s</th><th>connects</th><th>connect failures</th><th>lost</th><th>reconnects</th><th>schema violations</th></tr><tr><td class=num>{}</td><td class=num>{}</td><td class=num>{:.0}</td><td class=num>{}/{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr></table>"#,
        summary.sent,
        summary.received,
        summary.throughput_per_s,
        summary.connects,
        summary.connect_attempts,
        summary.connect_failures,
        summary.connections_lost,
        summary.reconnects,
        summary.schema_violations
    );
    body.push_str(r#"<h2>Errors</h2><table id="errors"><tr><th>kind</th><th class=num>count</th></tr>"#);
    if summary.errors.is_empty() {
        body.push_str("<tr><td colspan=2>none</td></tr>");
    }
    for (kind, count) in &summary.errors {
        let _ = write!(body, "<tr><td>{}</td><td class=num>{count}</td></tr>", escape(kind));
    }
    body.push_str("</table>");
    body.push_str(r#"<h2>Latency (ms)</h2><table id="latency"><tr><th>metric</th><th class=num>count</th><th class=num>min</th><th class=num>p50</th><th class=num>p90</th><th class=num>p99</th><th class=num>p99.9</th><th class=num>max</th></tr>"#);
    for (name, stats) in &summary.latency_us {
        let name = if *name == summary.main_latency { format!("{name} (main)") } else { name.to_string() };
        body.push_str(&stats_row(&name, stats));
    }
    if let Some(lag) = &summary.schedule_lag_us {
        body.push_str(&stats_row("schedule lag", lag));
    }
    body.push_str("</table>");

    let main = summary.main_latency;
    match log {
        Some(log) => {
            let mut spectra = Vec::new();
            if let Some(total) = log.total(main) {
                spectra.push((if shards.is_empty() { main.to_string() } else { format!("{main}, merged") }, spectrum(&total)));
            }
            for shard in shards {
                if let Some(total) = shard.log.total(main) {
                    spectra.push((shard.label.clone(), spectrum(&total)));
                }
            }
            let chart = Chart {
                id: "spectrum",
                title: &format!("Percentile spectrum: {main} latency"),
                x_label: "percentile (log scale in nines)",
                y_label: "latency (ms)",
                x_ticks: nines_ticks(&spectra),
                series: spectra,
            };
            let _ = write!(body, "<h2>Percentile spectrum</h2>{}", chart.svg());
            let (rate, p99) = over_time(log, main);
            let mut rates = vec![(if shards.is_empty() { main.to_string() } else { "merged".to_string() }, rate)];
            let mut p99s = vec![(rates[0].0.clone(), p99)];
            for shard in shards {
                let (rate, p99) = over_time(&shard.log, main);
                rates.push((shard.label.clone(), rate));
                p99s.push((shard.label.clone(), p99));
            }
            let seconds_ticks = |series: &[(String, Vec<(f64, f64)>)]| -> Vec<(f64, String)> {
                let end = series.iter().flat_map(|(_, p)| p.last()).map(|(x, _)| *x).fold(1.0, f64::max);
                let step = nice_scale(end).1.max(1.0);
                (0..=((end / step).ceil() as usize)).map(|i| (i as f64 * step, format!("{}", i as f64 * step))).collect()
            };
            let throughput = Chart {
                id: "throughput",
                title: &format!("Throughput: {main} samples per second"),
                x_label: "seconds since start",
                y_label: "per second",
                x_ticks: seconds_ticks(&rates),
                series: rates,
            };
            let p99_chart = Chart {
                id: "p99-over-time",
                title: &format!("p99 of {main} latency per interval"),
                x_label: "seconds since start",
                y_label: "p99 (ms)",
                x_ticks: seconds_ticks(&p99s),
                series: p99s,
            };
            let _ = write!(body, "<h2>Over time</h2>{}{}", throughput.svg(), p99_chart.svg());
        }
        None => body.push_str(
            "<p>No interval log: the plots need the HdrHistogram interval log (<code>--hdr-log</code>, or the <code>.hlog</code> files of the shards).</p>",
        ),
    }
    if !shards.is_empty() {
        body.push_str(r#"<h2>Shards</h2><table id="shards"><tr><th>shard</th><th class=num>count</th><th class=num>p50</th><th class=num>p99</th><th class=num>max</th></tr>"#);
        for shard in shards {
            if let Some(stats) = shard.log.total(main).as_ref().and_then(Stats::of) {
                let ms = |v: u64| format!("{:.3} ms", v as f64 / 1000.0);
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr>",
                    escape(&shard.label),
                    stats.count,
                    ms(stats.p50),
                    ms(stats.p99),
                    ms(stats.max)
                );
            }
        }
        body.push_str("</table>");
    }
    for note in &summary.notes {
        let _ = write!(body, "<p class=meta>note: {}</p>", escape(note));
    }
    page(&format!("wsprobe {kind}: {verdict}"), &body)
}

/// The page for a conformance run (or a `serve` run): the verdict table, each failure's
/// transcript or timeline folded under it.
/// The capacity search: latency against achieved throughput, one point per step (p50 and
/// p99), the capacity marked as a vertical line, and each step's verdict in a table.
pub fn capacity_page(report: &crate::capacity::CapacityReport) -> String {
    use crate::capacity::StepVerdict;
    let mut steps: Vec<&crate::capacity::Step> = report.steps.iter().collect();
    steps.sort_by(|a, b| a.intended_per_s.total_cmp(&b.intended_per_s).then(a.connections.cmp(&b.connections)));
    let points = |pick: fn(&crate::capacity::Step) -> Option<u64>| -> Points {
        steps.iter().filter_map(|s| pick(s).map(|v| (s.achieved_per_s, v as f64 / 1000.0))).collect()
    };
    let (p50, p99) = (points(|s| s.p50_us), points(|s| s.p99_us));
    let top = p99.iter().map(|&(_, y)| y).fold(0.0, f64::max);
    let mut series = vec![("p99 (ms)".to_string(), p99), ("p50 (ms)".to_string(), p50)];
    if let Some(capacity) = report.capacity_per_s {
        series.push(("capacity".to_string(), vec![(capacity, 0.0), (capacity, top)]));
    }
    let max_rate = steps.iter().map(|s| s.achieved_per_s.max(s.intended_per_s)).fold(0.0, f64::max);
    let (x_top, x_step) = nice_scale(max_rate);
    let mut x_ticks = Vec::new();
    let mut x = 0.0;
    while x <= x_top + x_step / 2.0 {
        x_ticks.push((x, tick_label(x, x_step)));
        x += x_step;
    }
    let chart = Chart {
        id: "curve",
        title: "Latency against throughput, one point per step",
        x_label: if report.searched == crate::capacity::Searched::Connections {
            "achieved pushes/s (connections × cadence)"
        } else {
            "achieved messages/s"
        },
        y_label: "latency (ms)",
        x_ticks,
        series,
    };
    let verdict = if report.capacity_per_s.is_some() { "passed" } else { "failed" };
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<h1>wsprobe capacity against {target}</h1>
<div class="meta">{mode} mode, {connections} connection(s), {in_flight} in flight, {step:.0} s steps after {warmup:.0} s warm-up, resolution {resolution:.1}%{slos}</div>
<div id="verdict" class="verdict {verdict}">{conclusion}</div>
{banner}{chart}
<h2>Steps</h2>
<table id="steps"><tr><th>connections</th><th>intended/s</th><th>achieved/s</th><th>p50</th><th>p99</th><th>verdict</th><th>what broke</th></tr>
"#,
        target = escape(&report.target),
        mode = report.mode,
        connections = report.connections,
        in_flight = report.in_flight,
        step = report.step_s,
        warmup = report.warmup_s,
        resolution = report.resolution * 100.0,
        slos =
            if report.slos.is_empty() { String::new() } else { format!(", SLOs {}", escape(&report.slos.join(", "))) },
        conclusion = escape(&crate::capacity::report::conclusion(report)),
        banner = if report.tls.is_some() { TLS_UNVERIFIED_BANNER } else { "" },
        chart = chart.svg(),
    );
    for step in steps {
        let (class, label) = match step.verdict {
            StepVerdict::Passed => ("passed", "passed"),
            StepVerdict::Broken => ("failed", "broken"),
            StepVerdict::Invalid => ("warned", "invalid"),
        };
        let why: Vec<String> =
            step.broken.iter().map(|b| b.to_string()).chain(step.invalid_reasons.iter().cloned()).collect();
        let _ = writeln!(
            body,
            r#"<tr class="step {class}"><td class=num>{}</td><td class=num>{:.0}</td><td class=num>{:.0}</td><td class=num>{}</td><td class=num>{}</td><td class=step-verdict>{label}</td><td>{}</td></tr>"#,
            step.connections,
            step.intended_per_s,
            step.achieved_per_s,
            step.p50_us.map_or("-".to_string(), |v| format!("{:.2} ms", v as f64 / 1000.0)),
            step.p99_us.map_or("-".to_string(), |v| format!("{:.2} ms", v as f64 / 1000.0)),
            escape(&why.join("; "))
        );
    }
    body.push_str("</table>\n");
    page("wsprobe capacity", &body)
}

pub fn run_page(report: &RunReport) -> String {
    let document: Value = serde_json::from_str(&super::run::json(report)).unwrap_or_default();
    run_page_from_json(&document).unwrap_or_default()
}

/// [`run_page`] from the JSON report (`wsprobe run --format json`), so a report saved by CI can
/// be rendered later (`wsprobe report`). `None` when the document is not a run report.
pub fn run_page_from_json(document: &Value) -> Option<String> {
    let cases = document.get("cases")?.as_array()?;
    let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let count = |key: &str| document["summary"][key].as_u64().unwrap_or(0);
    let failed = count("failed");
    let verdict = if failed > 0 { "failed" } else { "passed" };
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<h1>wsprobe run against {target}</h1>
<div class="meta">{profile} profile{bundled}, {cases} case(s) in {secs:.1} s: {passed} passed, {failed} failed, {warned} warned, {skipped} skipped, {info} informational</div>
<div id="verdict" class="verdict {verdict}">{verdict}</div>{unverified}
<h2>Cases</h2>
<table id="verdicts"><colgroup><col style="width:64px"><col style="width:30%"><col style="width:64px"><col style="width:120px"><col></colgroup>
<tr><th>status</th><th>case</th><th>level</th><th>requirement</th><th>detail</th></tr>
"#,
        target = escape(&text(document, "target")),
        profile = escape(&text(document, "profile")),
        bundled = if document["bundled"].as_bool() == Some(true) { " (bundled reference server)" } else { "" },
        cases = cases.len(),
        secs = document["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        passed = count("passed"),
        warned = count("warned"),
        skipped = count("skipped"),
        info = count("informational"),
        unverified = if document["tls"].as_str() == Some(super::run::UNVERIFIED) { TLS_UNVERIFIED_BANNER } else { "" },
    );
    for case in cases {
        let label = match case["status"].as_str().unwrap_or("") {
            "passed" => "PASS",
            "failed" => "FAIL",
            "warned" => "WARN",
            "skipped" => "SKIP",
            _ => "INFO",
        };
        let mut detail = escape(&text(case, "message"));
        let mut lines = String::new();
        for entry in case["transcript"].as_array().into_iter().flatten() {
            let _ = writeln!(
                lines,
                "{:>7} ms {} {} {}",
                entry["at_ms"].as_u64().unwrap_or(0),
                text(entry, "direction"),
                text(entry, "kind"),
                text(entry, "data")
            );
        }
        for moment in case["timeline"].as_array().into_iter().flatten() {
            let _ = writeln!(lines, "{:>7} ms {}", moment["at_ms"].as_u64().unwrap_or(0), text(moment, "event"));
        }
        if !lines.is_empty() {
            let what = if case.get("timeline").is_some() { "timeline" } else { "transcript" };
            let _ = write!(detail, "<details><summary>{what}</summary><pre>{}</pre></details>", escape(&lines));
        }
        let requirement = case["requirement"].as_str().unwrap_or("-");
        let _ = writeln!(
            body,
            r#"<tr class="case {label}"><td><span class="status {label}">{label}</span></td><td>{id}<br><span class=meta>{description}</span></td><td>{level}</td><td>{requirement}</td><td>{detail}</td></tr>"#,
            id = escape(&text(case, "id")),
            description = escape(&text(case, "description")),
            level = escape(&text(case, "level")),
            requirement = escape(requirement),
        );
    }
    body.push_str("</table>");
    for hint in document["hints"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let _ = write!(body, "<p class=meta>hint: {}</p>", escape(hint));
    }
    Some(page(&format!("wsprobe run: {verdict}"), &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_servers_cannot_break_out_of_the_page() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn run_page() {
        let document = serde_json::json!({
            "target": "ws://127.0.0.1:9/ws", "bundled": false, "profile": "core", "duration_ms": 1500,
            "summary": {"passed": 1, "failed": 1, "warned": 0, "skipped": 0, "informational": 0},
            "hints": ["the messages look like the ai profile's"],
            "cases": [
                {"id": "heartbeat.pong", "level": "must", "status": "passed", "requirement": "FR-WS-HEARTBEAT-001",
                 "message": "", "description": "A Ping gets a Pong within 10 s.", "transcript": []},
                {"id": "welcome.first_message", "level": "must", "status": "failed", "requirement": null,
                 "message": "expected Connected, got <MarketData>", "description": "The first message is the welcome.",
                 "transcript": [{"at_ms": 3, "direction": "received", "kind": "text", "data": "{\"type\":\"MarketData\"}"}]}
            ]
        });
        insta::assert_snapshot!(run_page_from_json(&document).unwrap());
    }

    #[test]
    fn axes_get_round_numbers() {
        assert_eq!(nice_scale(7.3), (8.0, 2.0));
        assert_eq!(nice_scale(0.42), (0.5, 0.1));
        assert_eq!(nice_scale(0.0), (1.0, 0.25));
        assert_eq!(nice_scale(1234.0), (1250.0, 250.0));
    }

    #[test]
    fn the_spectrum_reaches_as_many_nines_as_the_samples_support() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in 1..=10_000u64 {
            histogram.record(v).unwrap();
        }
        let points = spectrum(&histogram);
        let (last_nines, last_ms) = *points.last().unwrap();
        assert!((last_nines - 4.0).abs() < 1e-9, "{last_nines}");
        assert!((last_ms - 9.999).abs() < 0.02, "{last_ms}");
        assert!(points.windows(2).all(|w| w[0].1 <= w[1].1), "a spectrum never falls");
    }
}
