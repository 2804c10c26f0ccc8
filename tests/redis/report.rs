//! A performance report of work run by a Redis worker: a lane per worker the runs name, a bar
//! per run, and a failure's message as the worker sent it.

use taskweave::events::RunStatus;

use crate::tasks::{Add, Parse};
use crate::{RedisServer, client, run, worker};

#[test]
fn a_performance_report_shows_the_runs_of_a_redis_worker() {
    run(|| async {
        let server = RedisServer::start();
        let worker = worker(&server, "report", 2).await;
        let client = client(&server, "report").await;
        let path = std::env::temp_dir()
            .join(format!("taskweave-redis-report-{}.html", std::process::id()));
        let sum = taskweave::performance_report(&client, &path, async {
            let futures = client.map_task::<Add>((0..50).map(|i| (i, 1)));
            let failed = client.submit_task::<Parse>("forty-two".into()).await;
            assert!(failed.is_err());
            client.gather(&futures).await.map(|values| values.iter().sum::<i64>())
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(sum, (1..=50).sum::<i64>());

        let html = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(!html.contains("http://") && !html.contains("https://"));
        // One lane per worker that ran something, as the runs name them (runs that name
        // none share one lane).
        let records = client.task_stream(..);
        let workers: std::collections::BTreeSet<Option<String>> =
            records.iter().map(|record| record.worker.as_deref().map(str::to_owned)).collect();
        assert_eq!(html.matches("<g class=\"lane\"").count(), workers.len(), "{workers:?}");
        for worker in &workers {
            let lane = worker.as_deref().unwrap_or("(no worker named)");
            assert!(html.contains(&format!("data-worker=\"{lane}\"")), "{lane} has a lane");
        }
        assert_eq!(html.matches("<rect class=\"bar").count(), 51);
        assert_eq!(html.matches("<rect class=\"bar failed\"").count(), 1);
        assert_eq!(records.iter().filter(|r| r.status == RunStatus::Failed).count(), 1);
        // The worker's message (escaping is checked in tests/report.rs).
        assert!(html.contains("failed: invalid digit found in string"), "the message is shown");
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}
