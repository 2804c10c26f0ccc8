//! An operator's command line for the Redis backend: queues, workers and dead letters.
//!
//! ```text
//! cargo run --example taskweave-admin --features redis -- <url> [--queue NAME] [--namespace NS] <command>
//! ```
//!
//! Commands:
//!
//! - `queues` — every queue of the namespace with its length, waiting and pending entries,
//!   the age of its oldest waiting entry, its dead letters and each consumer's pending
//!   entries and idle time;
//! - `workers` — the live workers of the queue (`--queue`, default `default`);
//! - `dead-letters list [N]` — up to N (default 20) dead letters, oldest first: id, reason,
//!   deliveries, last worker, task, input size;
//! - `dead-letters show ID` — one dead letter with all its fields;
//! - `dead-letters requeue ID|all` — put one or all back on the task stream;
//! - `dead-letters purge` — delete them all.
//!
//! Exits with 0 on success, 1 on an error (printed to stderr, saying what to change), 2 on a
//! bad command line.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use taskweave::transport::redis::{DeadLetter, RedisAdmin};

const USAGE: &str = "usage: taskweave-admin <redis-url> [--queue NAME] [--namespace NS] \
                     queues | workers | dead-letters list [N] | dead-letters show ID | \
                     dead-letters requeue ID|all | dead-letters purge";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let queue = take_flag(&mut args, "--queue").unwrap_or_else(|| "default".into());
    let namespace = take_flag(&mut args, "--namespace").unwrap_or_else(|| "taskweave".into());
    let Some((url, command)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    if !matches!(command.first(), Some(&"queues" | &"workers" | &"dead-letters")) {
        eprintln!("taskweave-admin: unknown command {:?}\n{USAGE}", command.join(" "));
        return ExitCode::from(2);
    }
    let run = async {
        let admin =
            RedisAdmin::builder(url.clone()).namespace(namespace).queue(queue).connect().await?;
        execute(&admin, &command).await
    };
    match futures::executor::block_on(run) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("taskweave-admin: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Removes `--name value` from `args` and returns the value.
fn take_flag(args: &mut Vec<String>, name: &str) -> Option<String> {
    let at = args.iter().position(|arg| arg == name)?;
    args.remove(at);
    (at < args.len()).then(|| args.remove(at))
}

/// Runs one command; `Ok(false)` for a command line it does not understand.
async fn execute(admin: &RedisAdmin, command: &[&str]) -> Result<bool, taskweave::Error> {
    match command {
        ["queues"] => {
            let queues = admin.queues().await?;
            if queues.is_empty() {
                println!("no queues");
            }
            for queue in queues {
                let stats = admin.for_queue(&queue).queue_stats().await?;
                println!(
                    "{}: length {}, waiting {}, pending {}, oldest waiting {}, dead letters {}",
                    stats.queue,
                    stats.length,
                    stats.waiting,
                    stats.pending,
                    stats.oldest_waiting.map_or("-".into(), |age| format!("{age:.1?}")),
                    stats.dead_letters
                );
                for consumer in &stats.consumers {
                    println!(
                        "  consumer {}: pending {}, idle {:.1?}, oldest pending idle {}, {}",
                        consumer.name,
                        consumer.pending,
                        consumer.idle,
                        consumer.oldest_pending_idle.map_or("-".into(), |age| format!("{age:.1?}")),
                        if consumer.alive { "alive" } else { "no heartbeat" }
                    );
                }
            }
        }
        ["workers"] => {
            let workers = admin.workers().await?;
            if workers.is_empty() {
                println!("no live workers on queue {}", admin.queue());
            }
            for worker in workers {
                println!(
                    "{} on {} (pid {}): concurrency {}, tasks {}",
                    worker.name,
                    worker.host,
                    worker.pid,
                    worker.concurrency,
                    worker.tasks.join(",")
                );
            }
        }
        ["dead-letters", "list", rest @ ..] => {
            let limit = match rest {
                [] => 20,
                [n] => match n.parse() {
                    Ok(n) => n,
                    Err(_) => return Ok(false),
                },
                _ => return Ok(false),
            };
            let letters = admin.dead_letters(limit).await?;
            if letters.is_empty() {
                println!("no dead letters on queue {}", admin.queue());
            }
            for letter in &letters {
                println!(
                    "{} {} ago: {} (deliveries {}, worker {}, task {}, input {} bytes)",
                    letter.id,
                    age(letter),
                    letter.reason,
                    letter.deliveries,
                    letter.worker,
                    letter.task.as_deref().unwrap_or("-"),
                    letter.input_bytes
                );
            }
        }
        ["dead-letters", "show", id] => match admin.dead_letter(id).await? {
            Some(letter) => {
                println!(
                    "id: {}\nreason: {}\ndead for: {}",
                    letter.id,
                    letter.reason,
                    age(&letter)
                );
                println!("entry: {}\ndeliveries: {}", letter.entry, letter.deliveries);
                println!("worker: {}\ninput: {} bytes", letter.worker, letter.input_bytes);
                for (name, value) in &letter.fields {
                    println!("{name}: {value}");
                }
            }
            None => {
                return Err(taskweave::Error::Transport(
                    format!(
                        "no dead letter {id} on queue {}: list them with `dead-letters list`",
                        admin.queue()
                    )
                    .into(),
                ));
            }
        },
        ["dead-letters", "requeue", "all"] => {
            let count = admin.requeue_all_dead_letters().await?;
            println!("requeued {count} dead letters on queue {}", admin.queue());
        }
        ["dead-letters", "requeue", id] => match admin.requeue_dead_letter(id).await? {
            Some(entry) => println!("requeued {id} as entry {entry}"),
            None => {
                return Err(taskweave::Error::Transport(
                    format!(
                        "no dead letter {id} on queue {}: list them with `dead-letters list`",
                        admin.queue()
                    )
                    .into(),
                ));
            }
        },
        ["dead-letters", "purge"] => {
            let count = admin.purge_dead_letters().await?;
            println!("purged {count} dead letters on queue {}", admin.queue());
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// How long ago `letter` was dead-lettered, by this machine's clock.
fn age(letter: &DeadLetter) -> String {
    let age = SystemTime::now().duration_since(letter.dead_at).unwrap_or(Duration::ZERO);
    format!("{:.1?}", Duration::from_millis(age.as_millis().try_into().unwrap_or(u64::MAX)))
}
