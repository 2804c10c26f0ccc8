//! The report's HTML: plain string building, inline SVG and CSS, every user-controlled text
//! (task names, keys, worker names, error messages) escaped on its way in.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::client::events::{RunStatus, TaskRecord};

use super::{
    MAX_BARS, MAX_FAILURES, MAX_LANES, MAX_MESSAGE_CHARS, MAX_NAME_CHARS, MAX_NAMES, Snapshot,
};

/// What the file holds while the interval it will report is still running.
pub(super) const NOT_FINISHED: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>\
<title>taskweave performance report (not finished)</title></head><body><p>The work this \
taskweave performance report covers has not finished yet, or it was cancelled or panicked \
before the report could be written.</p></body></html>\n";

/// Everything one report shows.
pub(super) struct ReportData<'a> {
    pub(super) start: &'a Snapshot,
    pub(super) end: &'a Snapshot,
    /// Runs that ended since the start, oldest first.
    pub(super) records: &'a [TaskRecord],
    /// The messages of the listed failures, by key and attempt.
    pub(super) failure_messages: &'a HashMap<(String, u32), String>,
}

/// The lane of runs whose record names no worker: async bodies, which run on the executor,
/// and the runs of a transport that does not say which worker ran them.
const NO_WORKER_LANE: &str = "(no worker named)";
const OTHER_LANE: &str = "other workers";
const OTHER_NAMES: &str = "other names";

/// Colours of the task names with the most runs (Tableau 10 without its red, which marks
/// failures), then of the other names.
const PALETTE: [&str; MAX_NAMES] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
    "#8cd17d", "#499894",
];
const OTHER_COLOUR: &str = "#bab0ac";
const FAILED_COLOUR: &str = "#e15759";

/// Chart geometry, in SVG user units.
const LABEL_WIDTH: f64 = 220.0;
const PLOT_WIDTH: f64 = 900.0;
/// Every chart is this wide, so that their time axes line up; right of the plot is a column
/// for the utilisation chart's numbers.
const CHART_WIDTH: f64 = LABEL_WIDTH + PLOT_WIDTH + 170.0;
/// The characters of a label that fit the label column (the whole text is in its hover
/// title and its `data-` attribute).
const LABEL_CHARS: usize = 34;
const LANE_HEIGHT: f64 = 18.0;
const LANE_GAP: f64 = 4.0;
const AXIS_HEIGHT: f64 = 24.0;
const THROUGHPUT_BINS: usize = 60;
const THROUGHPUT_HEIGHT: f64 = 160.0;
const HISTOGRAM_BINS: usize = 20;
const HISTOGRAM_HEIGHT: f64 = 60.0;
const HISTOGRAM_ROW: f64 = 90.0;
/// Durations whose longest is more than this many times their shortest get a log scale.
const LOG_SCALE_RATIO: f64 = 20.0;

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:1.5em;color:#222;max-width:1200px}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}\
svg.chart{display:block;background:#fafafa;border:1px solid #e5e5e5;margin:0.5em 0;max-width:100%;height:auto}\
svg text{font-size:11px;fill:#333}\
rect.bar.failed{stroke:#000;stroke-width:1}\
rect.track{fill:#eee}rect.busy{fill:#4e79a7}\
ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:0.4em 1.2em}\
span.swatch{display:inline-block;width:0.9em;height:0.9em;margin-right:0.3em;vertical-align:middle;border:1px solid #999}\
table{border-collapse:collapse;font-size:0.9em}td,th{border:1px solid #ddd;padding:0.2em 0.5em;text-align:left;vertical-align:top}\
td.number{text-align:right;font-variant-numeric:tabular-nums}\
td.message{white-space:pre-wrap;font-family:ui-monospace,monospace;max-width:50em;word-break:break-word}\
ul.notes li{color:#8a4b00}p.empty{color:#666}";

/// The failed runs the report lists: the last [`MAX_FAILURES`] runs that did not finish.
pub(super) fn listed_failures(records: &[TaskRecord]) -> impl Iterator<Item = &TaskRecord> {
    let failed: Vec<&TaskRecord> =
        records.iter().filter(|record| record.status != RunStatus::Finished).collect();
    let skip = failed.len().saturating_sub(MAX_FAILURES);
    failed.into_iter().skip(skip)
}

/// The report as one HTML document (polyglot: valid HTML that is also well-formed XML).
pub(super) fn render(data: &ReportData) -> String {
    let from = data.start.at;
    let to = data.records.iter().map(|record| record.stop).fold(data.end.at, Duration::max);
    let span = (to.saturating_sub(from)).max(Duration::from_micros(1));
    let timeline = Timeline { from, span };
    let names = Names::of(data.records);
    let lanes = Lanes::of(data);

    let mut html = String::with_capacity(64 * 1024);
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n");
    html.push_str("<title>taskweave performance report</title>\n<style>");
    html.push_str(STYLE);
    html.push_str("</style>\n</head>\n<body>\n<h1>taskweave performance report</h1>\n");
    summary(&mut html, data, &timeline);
    html.push_str("<h2>Task stream</h2>\n");
    task_stream(&mut html, data.records, &timeline, &names, &lanes);
    legend(&mut html, &names);
    html.push_str("<h2>Throughput</h2>\n");
    throughput(&mut html, data.records, &timeline);
    html.push_str("<h2>Task durations</h2>\n");
    durations(&mut html, data.records, &names);
    html.push_str("<h2>Worker utilisation</h2>\n");
    utilisation(&mut html, data.records, &timeline, &lanes);
    html.push_str("<h2>Failures</h2>\n");
    failures(&mut html, data);
    html.push_str("<h2>Client stats</h2>\n");
    stats(&mut html, data);
    html.push_str("</body>\n</html>\n");
    html
}

/// Where a time falls on the charts' horizontal axis.
struct Timeline {
    from: Duration,
    span: Duration,
}

impl Timeline {
    /// `at`'s position in `0.0..=PLOT_WIDTH` (clamped to the interval).
    fn x(&self, at: Duration) -> f64 {
        let offset = at.saturating_sub(self.from).as_secs_f64();
        (offset / self.span.as_secs_f64()).clamp(0.0, 1.0) * PLOT_WIDTH
    }

    /// The busy time of a run, clipped to the interval.
    fn clipped(&self, record: &TaskRecord) -> Duration {
        let start = record.start.unwrap_or(record.stop).max(self.from);
        record.stop.saturating_sub(start)
    }
}

/// Task names by number of runs: the first [`MAX_NAMES`] get a colour each.
struct Names {
    /// (name, runs), most runs first.
    ranked: Vec<(String, usize)>,
    index: HashMap<String, usize>,
    other_runs: usize,
}

impl Names {
    fn of(records: &[TaskRecord]) -> Names {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for record in records {
            *counts.entry(&record.name).or_default() += 1;
        }
        let mut ranked: Vec<(String, usize)> =
            counts.into_iter().map(|(name, runs)| (name.to_owned(), runs)).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let other_runs = ranked.iter().skip(MAX_NAMES).map(|(_, runs)| runs).sum();
        ranked.truncate(MAX_NAMES);
        let index = ranked.iter().enumerate().map(|(i, (name, _))| (name.clone(), i)).collect();
        Names { ranked, index, other_runs }
    }

    /// The chart group of `name`: its index, or `MAX_NAMES` for the other names.
    fn group(&self, name: &str) -> usize {
        self.index.get(name).copied().unwrap_or(MAX_NAMES)
    }

    fn colour(group: usize) -> &'static str {
        PALETTE.get(group).copied().unwrap_or(OTHER_COLOUR)
    }

    fn label(&self, group: usize) -> &str {
        self.ranked.get(group).map_or(OTHER_NAMES, |(name, _)| name)
    }

    /// The groups that have runs, in order.
    fn groups(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.ranked.len()).chain((self.other_runs > 0).then_some(MAX_NAMES))
    }
}

/// The task stream's lanes: the client's workers (as its stats name them), then any other
/// worker that ran something, then async bodies; at most [`MAX_LANES`].
struct Lanes {
    labels: Vec<String>,
    index: HashMap<String, usize>,
}

impl Lanes {
    fn of(data: &ReportData) -> Lanes {
        let mut names: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for worker in data.start.stats.workers.iter().chain(&data.end.stats.workers) {
            if seen.insert(worker.name.clone()) {
                names.push(worker.name.clone());
            }
        }
        let mut others: Vec<String> = Vec::new();
        let mut unnamed_runs = false;
        for record in data.records {
            match &record.worker {
                Some(worker) => {
                    if seen.insert(worker.to_string()) {
                        others.push(worker.to_string());
                    }
                }
                None => unnamed_runs = true,
            }
        }
        others.sort();
        names.extend(others);
        if unnamed_runs {
            names.push(NO_WORKER_LANE.to_owned());
        }
        let mut labels = Vec::new();
        let mut index = HashMap::new();
        for name in names {
            if labels.len() + 1 < MAX_LANES {
                index.insert(name.clone(), labels.len());
                labels.push(name);
            } else {
                if labels.len() + 1 == MAX_LANES {
                    labels.push(OTHER_LANE.to_owned());
                }
                index.insert(name, MAX_LANES - 1);
            }
        }
        Lanes { labels, index }
    }

    fn of_record(&self, record: &TaskRecord) -> usize {
        let name = record.worker.as_deref().unwrap_or(NO_WORKER_LANE);
        self.index.get(name).copied().unwrap_or(0)
    }
}

fn summary(html: &mut String, data: &ReportData, timeline: &Timeline) {
    let runs = data.records.len();
    let finished = data.records.iter().filter(|r| r.status == RunStatus::Finished).count();
    html.push_str("<section id=\"summary\">\n<table>\n");
    row(
        html,
        "interval",
        &format!(
            "{} (from {} to {} since the client started)",
            duration(timeline.span),
            duration(timeline.from),
            duration(timeline.from + timeline.span)
        ),
    );
    row(html, "when", &format!("from {} to {}", utc(data.start.wall), utc(data.end.wall)));
    row(
        html,
        "runs that ended",
        &format!(
            "{} ({finished} finished, {} failed, panicked or lost)",
            plural(runs, "run"),
            runs - finished
        ),
    );
    let busy: Duration = data.records.iter().map(|record| timeline.clipped(record)).sum();
    row(
        html,
        "compute time",
        &format!(
            "{} (on average {:.1} runs at once)",
            duration(busy),
            busy.as_secs_f64() / timeline.span.as_secs_f64()
        ),
    );
    row(html, "transport", data.end.stats.transport);
    row(html, "executor", data.end.stats.executor);
    html.push_str("</table>\n");

    let mut notes = Vec::new();
    let events = &data.end.events;
    if events.capacity == 0 {
        notes.push(
            "task events are off (ClientBuilder::task_events(0)): no run is shown, only the \
             client's stats; switch them on to see the charts"
                .to_owned(),
        );
    }
    let overwritten = events.dropped.saturating_sub(data.start.events.recorded);
    if overwritten > 0 {
        notes.push(format!(
            "{overwritten} task events of this interval are not shown: the event ring \
             overwrote them; raise ClientBuilder::task_events (now {})",
            events.capacity
        ));
    }
    if runs > MAX_BARS {
        notes.push(format!(
            "the task stream draws the last {MAX_BARS} runs; the {} before them count in the \
             other charts",
            runs - MAX_BARS
        ));
    }
    let failed = runs - finished;
    if failed > MAX_FAILURES {
        notes.push(format!(
            "the failures table lists the last {MAX_FAILURES} of {failed} failed runs"
        ));
    }
    if !notes.is_empty() {
        html.push_str("<ul class=\"notes\" id=\"notes\">\n");
        for note in notes {
            let _ = writeln!(html, "<li>{}</li>", escape(&note));
        }
        html.push_str("</ul>\n");
    }
    html.push_str("</section>\n");
}

fn row(html: &mut String, label: &str, value: &str) {
    let _ = writeln!(html, "<tr><th>{}</th><td>{}</td></tr>", escape(label), escape(value));
}

fn task_stream(
    html: &mut String,
    records: &[TaskRecord],
    timeline: &Timeline,
    names: &Names,
    lanes: &Lanes,
) {
    let height = lanes.labels.len().max(1) as f64 * (LANE_HEIGHT + LANE_GAP) + AXIS_HEIGHT;
    let width = CHART_WIDTH;
    let _ = writeln!(
        html,
        "<svg id=\"task-stream\" class=\"chart\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"task stream\">"
    );
    // The last MAX_BARS runs to end, in lanes.
    let mut drawn: Vec<&TaskRecord> = records.iter().collect();
    drawn.sort_by_key(|record| record.stop);
    let skip = drawn.len().saturating_sub(MAX_BARS);
    let mut bars: Vec<String> = vec![String::new(); lanes.labels.len()];
    for record in &drawn[skip..] {
        let lane = lanes.of_record(record);
        let y = lane as f64 * (LANE_HEIGHT + LANE_GAP);
        let x0 = timeline.x(record.start.unwrap_or(record.stop));
        let x1 = timeline.x(record.stop);
        let group = names.group(&record.name);
        let failed = record.status != RunStatus::Finished;
        let took = record.start.map_or_else(
            || "start unknown".to_owned(),
            |start| duration(record.stop.saturating_sub(start)),
        );
        let _ = writeln!(
            bars[lane],
            "<rect class=\"bar{}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{LANE_HEIGHT}\" \
             fill=\"{}\" data-name=\"{}\"><title>{} · {} · {} · attempt {} · {} · {}</title></rect>",
            if failed { " failed" } else { "" },
            LABEL_WIDTH + x0,
            (x1 - x0).max(1.0),
            Names::colour(group),
            escape_name(&record.name),
            escape_name(&record.name),
            escape_name(&record.key.to_string()),
            escape_name(record.worker.as_deref().unwrap_or(NO_WORKER_LANE)),
            record.attempt,
            record.status.as_str(),
            took,
        );
    }
    for (lane, label) in lanes.labels.iter().enumerate() {
        let y = lane as f64 * (LANE_HEIGHT + LANE_GAP);
        let _ = writeln!(
            html,
            "<g class=\"lane\" data-worker=\"{0}\"><rect class=\"track\" x=\"{LABEL_WIDTH}\" \
             y=\"{y:.1}\" width=\"{PLOT_WIDTH}\" height=\"{LANE_HEIGHT}\"/><text x=\"4\" \
             y=\"{1:.1}\"><title>{0}</title>{2}</text>",
            escape_name(label),
            y + LANE_HEIGHT * 0.7,
            escape_label(label),
        );
        html.push_str(&bars[lane]);
        html.push_str("</g>\n");
    }
    axis(html, timeline, height - AXIS_HEIGHT);
    html.push_str("</svg>\n");
}

/// A time axis at `y`: five ticks, labelled with the time since the interval began.
fn axis(html: &mut String, timeline: &Timeline, y: f64) {
    html.push_str("<g class=\"axis\">");
    for tick in 0..=4 {
        let fraction = f64::from(tick) / 4.0;
        let x = LABEL_WIDTH + fraction * PLOT_WIDTH;
        let anchor = match tick {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            html,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            y + 4.0,
            y + 16.0,
            if tick == 0 { "0".to_owned() } else { duration(timeline.span.mul_f64(fraction)) },
        );
    }
    html.push_str("</g>\n");
}

fn legend(html: &mut String, names: &Names) {
    html.push_str("<ul class=\"legend\" id=\"legend\">\n");
    for group in names.groups() {
        let runs = names.ranked.get(group).map_or(names.other_runs, |(_, runs)| *runs);
        let _ = writeln!(
            html,
            "<li data-name=\"{0}\"><span class=\"swatch\" style=\"background:{1}\"></span>{0} \
             ({2})</li>",
            escape_name(names.label(group)),
            Names::colour(group),
            plural(runs, "run"),
        );
    }
    let _ = writeln!(
        html,
        "<li><span class=\"swatch\" style=\"background:#fff;border:2px solid #000\"></span>outlined: \
         the run failed, panicked or lost its worker</li>"
    );
    html.push_str("</ul>\n");
}

fn throughput(html: &mut String, records: &[TaskRecord], timeline: &Timeline) {
    let mut finished = [0usize; THROUGHPUT_BINS];
    let mut failed = [0usize; THROUGHPUT_BINS];
    for record in records {
        let bin = ((timeline.x(record.stop) / PLOT_WIDTH) * THROUGHPUT_BINS as f64) as usize;
        let bin = bin.min(THROUGHPUT_BINS - 1);
        if record.status == RunStatus::Finished {
            finished[bin] += 1;
        } else {
            failed[bin] += 1;
        }
    }
    let most = (0..THROUGHPUT_BINS).map(|bin| finished[bin] + failed[bin]).max().unwrap_or(0);
    let slice = timeline.span.div_f64(THROUGHPUT_BINS as f64);
    let height = THROUGHPUT_HEIGHT + AXIS_HEIGHT + 10.0;
    let width = CHART_WIDTH;
    let _ = writeln!(
        html,
        "<svg id=\"throughput\" class=\"chart\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"throughput\">"
    );
    let _ = writeln!(
        html,
        "<text x=\"4\" y=\"20\">runs ended per {}</text><text x=\"4\" y=\"36\">(most: {most}, \
         {:.0}/s)</text>",
        duration(slice),
        most as f64 / slice.as_secs_f64().max(1e-9),
    );
    let bar_width = PLOT_WIDTH / THROUGHPUT_BINS as f64;
    let top = 10.0;
    for bin in 0..THROUGHPUT_BINS {
        let x = LABEL_WIDTH + bin as f64 * bar_width;
        let scale = |count: usize| {
            if most == 0 { 0.0 } else { count as f64 / most as f64 * THROUGHPUT_HEIGHT }
        };
        let (ok_height, failed_height) = (scale(finished[bin]), scale(failed[bin]));
        let base = top + THROUGHPUT_HEIGHT;
        let _ = writeln!(
            html,
            "<g class=\"bin\"><title>{} to {}: {} finished, {} failed</title>\
             <rect class=\"finished\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{ok_height:.1}\" fill=\"{}\"/>\
             <rect class=\"failed\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{failed_height:.1}\" fill=\"{FAILED_COLOUR}\"/></g>",
            duration(slice.mul_f64(bin as f64)),
            duration(slice.mul_f64(bin as f64 + 1.0)),
            finished[bin],
            failed[bin],
            base - ok_height,
            (bar_width - 1.0).max(0.5),
            PALETTE[0],
            base - ok_height - failed_height,
            (bar_width - 1.0).max(0.5),
        );
    }
    axis(html, timeline, top + THROUGHPUT_HEIGHT);
    html.push_str("</svg>\n");
}

fn durations(html: &mut String, records: &[TaskRecord], names: &Names) {
    let mut by_group: Vec<Vec<Duration>> = vec![Vec::new(); MAX_NAMES + 1];
    for record in records {
        if let Some(start) = record.start {
            by_group[names.group(&record.name)].push(record.stop.saturating_sub(start));
        }
    }
    let groups: Vec<usize> = names.groups().filter(|group| !by_group[*group].is_empty()).collect();
    let height = (groups.len().max(1) as f64 * HISTOGRAM_ROW).max(30.0);
    let width = CHART_WIDTH;
    let _ = writeln!(
        html,
        "<svg id=\"durations\" class=\"chart\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"task durations\">"
    );
    if groups.is_empty() {
        html.push_str("<text x=\"4\" y=\"20\">no run with a known start in this interval</text>\n");
    }
    for (row, group) in groups.into_iter().enumerate() {
        let runs = &mut by_group[group];
        runs.sort();
        let longest = runs[runs.len() - 1].max(Duration::from_nanos(1));
        let median = runs[runs.len() / 2];
        let scale = Scale::of(runs[0], longest);
        let mut counts = [0usize; HISTOGRAM_BINS];
        for run in runs.iter() {
            counts[scale.bin(*run)] += 1;
        }
        let most = counts.iter().copied().max().unwrap_or(1).max(1);
        let y = row as f64 * HISTOGRAM_ROW + 8.0;
        let name = escape_name(names.label(group));
        let _ = writeln!(
            html,
            "<g class=\"histogram\" data-name=\"{name}\" data-scale=\"{}\"><text x=\"4\" y=\"{:.1}\"><title>{name}</title>{}</text>\
             <text x=\"4\" y=\"{:.1}\">{}</text><text x=\"4\" y=\"{:.1}\">median {}, longest {}</text>",
            if scale.log { "log" } else { "linear" },
            y + 14.0,
            escape_label(names.label(group)),
            y + 30.0,
            plural(runs.len(), "run"),
            y + 44.0,
            duration(median),
            duration(longest),
        );
        let bar_width = PLOT_WIDTH / HISTOGRAM_BINS as f64;
        for (bin, count) in counts.iter().enumerate() {
            let bar_height = *count as f64 / most as f64 * HISTOGRAM_HEIGHT;
            let _ = writeln!(
                html,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bar_height:.1}\" \
                 fill=\"{}\"><title>{} to {}: {}</title></rect>",
                LABEL_WIDTH + bin as f64 * bar_width,
                y + HISTOGRAM_HEIGHT - bar_height,
                (bar_width - 1.0).max(0.5),
                Names::colour(group),
                duration(scale.edge(bin)),
                duration(scale.edge(bin + 1)),
                plural(*count, "run"),
            );
        }
        let _ = writeln!(
            html,
            "<text x=\"{LABEL_WIDTH}\" y=\"{:.1}\">{}{}</text><text x=\"{:.1}\" y=\"{:.1}\" \
             text-anchor=\"end\">{}</text></g>",
            y + HISTOGRAM_HEIGHT + 14.0,
            duration(scale.edge(0)),
            if scale.log { " (log scale)" } else { "" },
            LABEL_WIDTH + PLOT_WIDTH,
            y + HISTOGRAM_HEIGHT + 14.0,
            duration(longest),
        );
    }
    html.push_str("</svg>\n");
}

/// How run durations fall into a histogram's bins: linear from 0 to the longest; or, when the
/// longest is more than [`LOG_SCALE_RATIO`] times the shortest, geometric between them, so that
/// a few slow runs do not put every other run in the first bin.
struct Scale {
    /// Seconds at the left edge (0 on a linear scale) and at the right.
    low: f64,
    high: f64,
    log: bool,
}

impl Scale {
    fn of(shortest: Duration, longest: Duration) -> Scale {
        let high = longest.as_secs_f64().max(1e-9);
        let low = shortest.as_secs_f64().max(1e-9);
        if high / low > LOG_SCALE_RATIO {
            Scale { low, high, log: true }
        } else {
            Scale { low: 0.0, high, log: false }
        }
    }

    fn bin(&self, run: Duration) -> usize {
        let seconds = run.as_secs_f64();
        let fraction = if self.log {
            (seconds.max(self.low) / self.low).ln() / (self.high / self.low).ln()
        } else {
            seconds / self.high
        };
        ((fraction * HISTOGRAM_BINS as f64) as usize).min(HISTOGRAM_BINS - 1)
    }

    /// The left edge of bin `bin` (`HISTOGRAM_BINS`: the right edge of the last).
    fn edge(&self, bin: usize) -> Duration {
        let fraction = bin as f64 / HISTOGRAM_BINS as f64;
        let seconds = if self.log {
            self.low * (self.high / self.low).powf(fraction)
        } else {
            self.high * fraction
        };
        Duration::from_secs_f64(seconds)
    }
}

fn utilisation(html: &mut String, records: &[TaskRecord], timeline: &Timeline, lanes: &Lanes) {
    let mut busy = vec![Duration::ZERO; lanes.labels.len()];
    let mut runs = vec![0usize; lanes.labels.len()];
    for record in records {
        let lane = lanes.of_record(record);
        busy[lane] += timeline.clipped(record);
        runs[lane] += 1;
    }
    let height = lanes.labels.len().max(1) as f64 * (LANE_HEIGHT + LANE_GAP);
    let width = CHART_WIDTH;
    let _ = writeln!(
        html,
        "<svg id=\"utilisation\" class=\"chart\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"worker utilisation\">"
    );
    for (lane, label) in lanes.labels.iter().enumerate() {
        let y = lane as f64 * (LANE_HEIGHT + LANE_GAP);
        // Async bodies run concurrently, as do the workers of the "other" lane: their share
        // can pass 100%; the bar stops at the end.
        let share = busy[lane].as_secs_f64() / timeline.span.as_secs_f64();
        let _ = writeln!(
            html,
            "<g class=\"worker\" data-worker=\"{0}\"><title>{0}: busy {1} of {2} ({3:.1}%), {4}</title>\
             <text x=\"4\" y=\"{5:.1}\">{8}</text>\
             <rect class=\"track\" x=\"{LABEL_WIDTH}\" y=\"{y:.1}\" width=\"{PLOT_WIDTH}\" height=\"{LANE_HEIGHT}\"/>\
             <rect class=\"busy\" x=\"{LABEL_WIDTH}\" y=\"{y:.1}\" width=\"{6:.1}\" height=\"{LANE_HEIGHT}\"/>\
             <text x=\"{7:.1}\" y=\"{5:.1}\">{3:.1}% · {4}</text></g>",
            escape_name(label),
            duration(busy[lane]),
            duration(timeline.span),
            share * 100.0,
            plural(runs[lane], "run"),
            y + LANE_HEIGHT * 0.7,
            share.min(1.0) * PLOT_WIDTH,
            LABEL_WIDTH + PLOT_WIDTH + 8.0,
            escape_label(label),
        );
    }
    html.push_str("</svg>\n");
}

fn failures(html: &mut String, data: &ReportData) {
    html.push_str("<section id=\"failures\">\n");
    let listed: Vec<&TaskRecord> = listed_failures(data.records).collect();
    if listed.is_empty() {
        html.push_str("<p class=\"empty\">No run failed in this interval.</p>\n</section>\n");
        return;
    }
    // A later attempt of the same key that finished: the failure was retried away.
    let mut finished_attempt: HashMap<String, u32> = HashMap::new();
    for record in data.records.iter().filter(|record| record.status == RunStatus::Finished) {
        finished_attempt.insert(record.key.to_string(), record.attempt);
    }
    html.push_str(
        "<table>\n<tr><th>ended</th><th>key</th><th>task name</th><th>worker</th>\
         <th>attempt</th><th>status</th><th>message</th><th>then</th></tr>\n",
    );
    for record in listed {
        let key = record.key.to_string();
        let message = match record.status {
            RunStatus::Lost => "the worker running it was lost".to_owned(),
            _ => data
                .failure_messages
                .get(&(key.clone(), record.attempt))
                .cloned()
                .unwrap_or_else(|| "(the message is no longer in the event ring)".to_owned()),
        };
        let then = match finished_attempt.get(&key) {
            Some(attempt) if *attempt > record.attempt => format!("attempt {attempt} finished"),
            _ => String::new(),
        };
        let _ = writeln!(
            html,
            "<tr class=\"failure\" data-status=\"{status}\"><td class=\"number\">{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td class=\"number\">{}</td><td>{status}</td>\
             <td class=\"message\">{}</td><td>{then}</td></tr>",
            duration(record.stop.saturating_sub(data.start.at)),
            escape_name(&key),
            escape_name(&record.name),
            escape_name(record.worker.as_deref().unwrap_or(NO_WORKER_LANE)),
            record.attempt,
            escape_message(&message),
            status = record.status.as_str(),
        );
    }
    html.push_str("</table>\n</section>\n");
}

fn stats(html: &mut String, data: &ReportData) {
    let (start, end) = (&data.start.stats, &data.end.stats);
    html.push_str("<section id=\"stats\">\n<table class=\"counters\">\n");
    html.push_str(
        "<tr><th>counter</th><th>at the start</th><th>at the end</th><th>change</th></tr>\n",
    );
    let counters: [(&str, u64, u64); 13] = [
        ("tasks waiting", start.tasks.waiting as u64, end.tasks.waiting as u64),
        ("tasks ready", start.tasks.ready as u64, end.tasks.ready as u64),
        ("tasks running", start.tasks.running as u64, end.tasks.running as u64),
        ("tasks finished (held)", start.tasks.finished as u64, end.tasks.finished as u64),
        ("tasks failed (held)", start.tasks.failed as u64, end.tasks.failed as u64),
        ("tasks cancelled (held)", start.tasks.cancelled as u64, end.tasks.cancelled as u64),
        ("tasks finished in all", start.tasks.total_finished, end.tasks.total_finished),
        ("tasks failed in all", start.tasks.total_failed, end.tasks.total_failed),
        ("cancelled while running", start.cancelled_while_running, end.cancelled_while_running),
        ("values held", start.values_held as u64, end.values_held as u64),
        ("bytes held", start.bytes_held.unwrap_or(0), end.bytes_held.unwrap_or(0)),
        ("task events recorded", data.start.events.recorded, data.end.events.recorded),
        ("task events overwritten", data.start.events.dropped, data.end.events.dropped),
    ];
    for (name, before, after) in counters {
        if name == "bytes held" && start.bytes_held.is_none() && end.bytes_held.is_none() {
            continue; // in-process values have no known size
        }
        let _ = writeln!(
            html,
            "<tr><th>{name}</th><td class=\"number\">{before}</td><td class=\"number\">{after}</td>\
             <td class=\"number\">{}</td></tr>",
            change(before, after),
        );
    }
    html.push_str("</table>\n");
    let _ = writeln!(
        html,
        "<p>Event ring: {} entries at most, {} held at the end.</p>",
        data.end.events.capacity, data.end.events.held
    );
    if !end.workers.is_empty() {
        html.push_str(
            "<table class=\"workers\">\n<tr><th>worker</th><th>running at the end</th>\
             <th>completed in all</th><th>completed in this interval</th></tr>\n",
        );
        let before: HashMap<&str, u64> =
            start.workers.iter().map(|worker| (worker.name.as_str(), worker.completed)).collect();
        for worker in &end.workers {
            let earlier = before.get(worker.name.as_str()).copied().unwrap_or(0);
            let _ = writeln!(
                html,
                "<tr><th>{}</th><td class=\"number\">{}</td><td class=\"number\">{}</td>\
                 <td class=\"number\">{}</td></tr>",
                escape_name(&worker.name),
                worker.running,
                worker.completed,
                worker.completed.saturating_sub(earlier),
            );
        }
        html.push_str("</table>\n");
    }
    html.push_str("</section>\n");
}

fn change(before: u64, after: u64) -> String {
    match after.cmp(&before) {
        std::cmp::Ordering::Greater => format!("+{}", after - before),
        std::cmp::Ordering::Less => format!("-{}", before - after),
        std::cmp::Ordering::Equal => "0".to_owned(),
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// A wall-clock time as `2026-12-03 19:30:05 UTC` (std has no calendar: days become a civil
/// date by Howard Hinnant's `civil_from_days`).
fn utc(time: std::time::SystemTime) -> String {
    let Ok(since_epoch) = time.duration_since(std::time::UNIX_EPOCH) else {
        return "(a time before 1970)".to_owned();
    };
    let seconds = since_epoch.as_secs();
    let (days, of_day) = ((seconds / 86_400) as i64, seconds % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60
    )
}

/// A duration for people: `850 µs`, `12.3 ms`, `4.56 s`.
fn duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 1e-6 {
        format!("{} ns", duration.as_nanos())
    } else if seconds < 1e-3 {
        format!("{:.0} µs", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        format!("{seconds:.2} s")
    }
}

/// A key, task name or worker name: cut to [`MAX_NAME_CHARS`] characters, escaped.
fn escape_name(text: &str) -> String {
    escape_cut(text, MAX_NAME_CHARS)
}

/// An error message: cut to [`MAX_MESSAGE_CHARS`] characters, escaped.
fn escape_message(text: &str) -> String {
    escape_cut(text, MAX_MESSAGE_CHARS)
}

/// A label for the charts' label column: cut to [`LABEL_CHARS`] characters, escaped.
fn escape_label(text: &str) -> String {
    escape_cut(text, LABEL_CHARS)
}

fn escape_cut(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((cut, _)) => escape(&format!("{}…", &text[..cut])).into_owned(),
        None => escape(text).into_owned(),
    }
}

/// `text` made safe for HTML and XML text and attribute values: `& < > " '` as character
/// references, and control characters that XML forbids as U+FFFD.
pub(super) fn escape(text: &str) -> Cow<'_, str> {
    let needs = |c: char| {
        matches!(c, '&' | '<' | '>' | '"' | '\'') || (c.is_control() && !matches!(c, '\n' | '\t'))
    };
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            '\n' | '\t' => escaped.push(c),
            c if c.is_control() => escaped.push('\u{fffd}'),
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::client::ClientStats;
    use crate::client::events::TaskEventCounts;
    use crate::scheduler::SchedulerCounts;
    use std::sync::Arc;

    fn snapshot(at: Duration) -> Snapshot {
        Snapshot {
            at,
            wall: std::time::UNIX_EPOCH,
            stats: ClientStats {
                transport: "test",
                executor: "test",
                tasks: SchedulerCounts::default(),
                cancelled_while_running: 0,
                values_held: 0,
                bytes_held: None,
                workers: Vec::new(),
            },
            events: TaskEventCounts::default(),
        }
    }

    fn run_on(worker: &str, index: u64) -> TaskRecord {
        TaskRecord {
            key: format!("task-{index}").into(),
            name: Arc::from("task"),
            worker: Some(Arc::from(worker)),
            start: Some(Duration::from_millis(index)),
            stop: Duration::from_millis(index + 1),
            status: RunStatus::Finished,
            attempt: 1,
        }
    }

    #[test]
    fn workers_beyond_the_lane_cap_share_one_lane() {
        let records: Vec<TaskRecord> = (0..200).map(|i| run_on(&format!("w{i:03}"), i)).collect();
        let (start, end) = (snapshot(Duration::ZERO), snapshot(Duration::from_millis(300)));
        let messages = HashMap::new();
        let html = render(&ReportData {
            start: &start,
            end: &end,
            records: &records,
            failure_messages: &messages,
        });
        assert_eq!(html.matches("<g class=\"lane\"").count(), MAX_LANES);
        assert!(html.contains("data-worker=\"w126\""));
        assert!(!html.contains("data-worker=\"w127\""));
        assert!(html.contains("data-worker=\"other workers\""));
        assert_eq!(html.matches("<rect class=\"bar").count(), 200, "every run still has a bar");
        assert!(html.contains("73 runs</text>"), "the other lane's runs are counted together");
    }

    #[test]
    fn escape_makes_markup_inert() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(
            escape("<script>alert(\"x\" & 'y')</script>"),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("a\u{0}b\rc\nd"), "a\u{fffd}b\u{fffd}c\nd");
    }

    #[test]
    fn long_text_is_cut() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 50);
        let clipped = escape_message(&long);
        assert_eq!(clipped.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert_eq!(escape_name(&long).chars().count(), MAX_NAME_CHARS + 1);
        assert!(clipped.ends_with('…'));
    }

    #[test]
    fn a_histogram_goes_logarithmic_when_durations_span_orders_of_magnitude() {
        let linear = Scale::of(Duration::from_millis(5), Duration::from_millis(10));
        assert!(!linear.log);
        assert_eq!(linear.bin(Duration::from_micros(5_100)), HISTOGRAM_BINS / 2);
        assert_eq!(linear.bin(Duration::from_millis(10)), HISTOGRAM_BINS - 1);
        assert_eq!(linear.edge(0), Duration::ZERO);

        let log = Scale::of(Duration::from_micros(1), Duration::from_secs(1));
        assert!(log.log);
        assert_eq!(log.bin(Duration::from_micros(1)), 0);
        assert_eq!(log.bin(Duration::from_micros(1_100)), HISTOGRAM_BINS / 2);
        assert_eq!(log.bin(Duration::from_secs(1)), HISTOGRAM_BINS - 1);
        assert!((log.edge(HISTOGRAM_BINS / 2).as_secs_f64() - 1e-3).abs() < 1e-9);
        // A zero duration (a run too short for the clock) falls in the first bin.
        assert_eq!(log.bin(Duration::ZERO), 0);
    }

    #[test]
    fn wall_clock_times_read_as_utc() {
        let at = |seconds: u64| std::time::UNIX_EPOCH + Duration::from_secs(seconds);
        assert_eq!(utc(at(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(at(951_782_400)), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(at(1_796_326_205)), "2026-12-03 19:30:05 UTC");
        assert_eq!(utc(at(4_107_542_399)), "2100-02-28 23:59:59 UTC");
        assert_eq!(utc(std::time::UNIX_EPOCH - Duration::from_secs(1)), "(a time before 1970)");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(Duration::from_nanos(420)), "420 ns");
        assert_eq!(duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(duration(Duration::from_micros(12_340)), "12.3 ms");
        assert_eq!(duration(Duration::from_millis(4_560)), "4.56 s");
    }
}
