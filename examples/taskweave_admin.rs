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
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}\n(--queue defaults to \"default\", --namespace to \"taskweave\")");
        return ExitCode::SUCCESS;
    }
    let flags = take_flag(&mut args, "--queue")
        .and_then(|queue| Ok((queue, take_flag(&mut args, "--namespace")?)));
    let (queue, namespace) = match flags {
        Ok((queue, namespace)) => (
            queue.unwrap_or_else(|| "default".into()),
            namespace.unwrap_or_else(|| "taskweave".into()),
        ),
        Err(problem) => return usage_error(&problem),
    };
    let Some((url, command)) = args.split_first() else {
        return usage_error("give a Redis URL and a command");
    };
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    if !matches!(command.first(), Some(&"queues" | &"workers" | &"dead-letters")) {
        return usage_error(&format!("unknown command {:?}", command.join(" ")));
    }
    let run = async {
        let admin =
            RedisAdmin::builder(url.clone()).namespace(namespace).queue(queue).connect().await?;
        execute(&admin, &command).await
    };
    match futures::executor::block_on(run) {
        Ok(Done::Ok) => ExitCode::SUCCESS,
        Ok(Done::Usage(problem)) => usage_error(&problem),
        Ok(Done::Failed(problem)) => {
            eprintln!("taskweave-admin: {problem}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("taskweave-admin: {error}");
            ExitCode::FAILURE
        }
    }
}

/// How a command ended, short of a Redis error.
enum Done {
    Ok,
    /// The command line is wrong (exit 2): what was wrong.
    Usage(String),
    /// The command could not be done (exit 1): why, and what to do.
    Failed(String),
}

/// Says what was wrong with the command line, then the usage; exit code 2.
fn usage_error(problem: &str) -> ExitCode {
    eprintln!("taskweave-admin: {problem}\n{USAGE}");
    ExitCode::from(2)
}

/// Removes `--name value` from `args` and returns the value, if the flag is there; an error
/// when it is there without a value.
fn take_flag(args: &mut Vec<String>, name: &str) -> Result<Option<String>, String> {
    let Some(at) = args.iter().position(|arg| arg == name) else { return Ok(None) };
    args.remove(at);
    match args.get(at) {
        Some(value) if !value.starts_with("--") => Ok(Some(args.remove(at))),
        _ => Err(format!("{name} needs a value, such as {name} demo")),
    }
}

/// Runs one command.
async fn execute(admin: &RedisAdmin, command: &[&str]) -> Result<Done, taskweave::Error> {
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
                    Err(_) => {
                        let problem =
                            format!("{n:?} is not a number: give how many to list, say 20");
                        return Ok(Done::Usage(problem));
                    }
                },
                _ => return Ok(Done::Usage("dead-letters list takes at most one number".into())),
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
                return Ok(Done::Failed(format!(
                    "no dead letter {id} on queue {}: list them with `dead-letters list`",
                    admin.queue()
                )));
            }
        },
        ["dead-letters", "requeue", "all"] => {
            let count = admin.requeue_all_dead_letters().await?;
            println!("requeued {count} dead letters on queue {}", admin.queue());
        }
        ["dead-letters", "requeue", id] => match admin.requeue_dead_letter(id).await? {
            Some(entry) => println!("requeued {id} as entry {entry}"),
            None => {
                return Ok(Done::Failed(format!(
                    "no dead letter {id} on queue {}: list them with `dead-letters list`",
                    admin.queue()
                )));
            }
        },
        ["dead-letters", "purge"] => {
            let count = admin.purge_dead_letters().await?;
            println!("purged {count} dead letters on queue {}", admin.queue());
        }
        ["dead-letters", "show" | "requeue"] => {
            let problem =
                format!("dead-letters {} needs an id (from `dead-letters list`)", command[1]);
            return Ok(Done::Usage(problem));
        }
        _ => return Ok(Done::Usage(format!("cannot read the command {:?}", command.join(" ")))),
    }
    Ok(Done::Ok)
}

/// How long ago `letter` was dead-lettered, by this machine's clock.
fn age(letter: &DeadLetter) -> String {
    let age = SystemTime::now().duration_since(letter.dead_at).unwrap_or(Duration::ZERO);
    format!("{:.1?}", Duration::from_millis(age.as_millis().try_into().unwrap_or(u64::MAX)))
}
