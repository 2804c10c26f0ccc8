//! `/metrics`: the client's statistics and the dashboard's task duration histogram in the
//! Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;

use super::model::{BUCKETS, Model};
use crate::client::ClientStats;

/// A label value with `\`, `"` and newlines escaped, as the format asks.
fn label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The metrics text for `stats` (taken for this request) and the sampler's `model`.
pub(crate) fn render(stats: &ClientStats, model: &Model) -> String {
    let mut out = String::new();
    let tasks = stats.tasks;
    // `write!` to a String cannot fail.
    let _ = writeln!(out, "# HELP taskweave_tasks Tasks the client holds, by state.");
    let _ = writeln!(out, "# TYPE taskweave_tasks gauge");
    for (state, count) in [
        ("waiting", tasks.waiting),
        ("ready", tasks.ready),
        ("running", tasks.running),
        ("finished", tasks.finished),
        ("failed", tasks.failed),
        ("cancelled", tasks.cancelled),
    ] {
        let _ = writeln!(out, "taskweave_tasks{{state=\"{state}\"}} {count}");
    }
    let _ = writeln!(
        out,
        "# HELP taskweave_tasks_finished_total Tasks finished since the client started."
    );
    let _ = writeln!(out, "# TYPE taskweave_tasks_finished_total counter");
    let _ = writeln!(out, "taskweave_tasks_finished_total {}", tasks.total_finished);
    let _ = writeln!(
        out,
        "# HELP taskweave_tasks_failed_total Tasks failed for good since the client started."
    );
    let _ = writeln!(out, "# TYPE taskweave_tasks_failed_total counter");
    let _ = writeln!(out, "taskweave_tasks_failed_total {}", tasks.total_failed);
    let _ = writeln!(out, "# HELP taskweave_queue_depth Tasks ready and waiting for a worker.");
    let _ = writeln!(out, "# TYPE taskweave_queue_depth gauge");
    let _ = writeln!(out, "taskweave_queue_depth {}", tasks.ready);
    let _ = writeln!(out, "# HELP taskweave_workers Workers of the client's transport.");
    let _ = writeln!(out, "# TYPE taskweave_workers gauge");
    let _ = writeln!(out, "taskweave_workers {}", model.worker_count(stats));
    let _ = writeln!(out, "# HELP taskweave_worker_running Tasks each worker runs now.");
    let _ = writeln!(out, "# TYPE taskweave_worker_running gauge");
    for worker in &stats.workers {
        let _ = writeln!(
            out,
            "taskweave_worker_running{{worker=\"{}\"}} {}",
            label(&worker.name),
            worker.running
        );
    }
    let _ = writeln!(out, "# HELP taskweave_values_held Task values the client holds.");
    let _ = writeln!(out, "# TYPE taskweave_values_held gauge");
    let _ = writeln!(out, "taskweave_values_held {}", stats.values_held);
    let _ = writeln!(
        out,
        "# HELP taskweave_task_duration_seconds How long task runs took, by task name (runs \
         the dashboard read from the task-event ring)."
    );
    let _ = writeln!(out, "# TYPE taskweave_task_duration_seconds histogram");
    for (name, row) in model.names() {
        let name = label(name);
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(row.buckets.iter()) {
            cumulative += count;
            let _ = writeln!(
                out,
                "taskweave_task_duration_seconds_bucket{{name=\"{name}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += row.buckets[BUCKETS.len()];
        let _ = writeln!(
            out,
            "taskweave_task_duration_seconds_bucket{{name=\"{name}\",le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "taskweave_task_duration_seconds_sum{{name=\"{name}\"}} {}",
            row.duration_sum
        );
        let _ =
            writeln!(out, "taskweave_task_duration_seconds_count{{name=\"{name}\"}} {cumulative}");
    }
    let _ = writeln!(
        out,
        "# HELP taskweave_task_events_missed_total Task events dropped from the ring before the \
         dashboard read them."
    );
    let _ = writeln!(out, "# TYPE taskweave_task_events_missed_total counter");
    let _ = writeln!(out, "taskweave_task_events_missed_total {}", model.missed);
    out
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
