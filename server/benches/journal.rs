//! `cargo bench -p server --bench journal`: what durability costs per
//! message. The journal (a redb file, `fsync` on every commit) in a temporary
//! folder, or in `$JOURNAL_DIR` to measure another disk:
//!
//! - one sender at a time: each write waits for its own commit, the
//!   latency a lone `send-message` pays for being on disk;
//! - N senders at once: commits are shared (group commit), the cost per
//!   message under load;
//! - written and handed to a stream in the same batch, as for an agent
//!   online that reads at once: nothing reaches the disk.
//!
//! Numbers go into docs/performance.md.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use server::delivery::journal::{Journal, Record};

fn record(n: u64) -> Record {
    // A 1 KB message as the stream sends it.
    Record {
        to: "coder".into(),
        at_ms: n,
        notification: format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/claude/channel","params":{{"content":"{}","meta":{{"from":"planner","to":"coder","kind":"agent-message","severity":"info"}}}}}}"#,
            "x".repeat(1024)
        ),
    }
}

fn per_message(took: Duration, messages: u64) -> String {
    let micros = took.as_secs_f64() * 1e6 / messages as f64;
    format!(
        "{micros:>8.1} µs/message  ({:>7.0} messages/s)",
        1e6 / micros
    )
}

async fn lone_sender(journal: &Journal, messages: u64) -> Duration {
    let started = Instant::now();
    for n in 0..messages {
        let (row, written) = journal.put(&record(n));
        written.await;
        journal.remove(row);
    }
    started.elapsed()
}

async fn many_senders(journal: &Arc<Journal>, senders: u64, each: u64) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|s| {
            let journal = journal.clone();
            tokio::spawn(async move {
                for n in 0..each {
                    let (row, written) = journal.put(&record(s * each + n));
                    written.await;
                    journal.remove(row);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("sender");
    }
    started.elapsed()
}

async fn handed_over_at_once(journal: &Journal, messages: u64) -> Duration {
    let started = Instant::now();
    let mut last = None;
    for n in 0..messages {
        let (row, written) = journal.put(&record(n));
        journal.remove(row);
        last = Some(written);
    }
    if let Some(last) = last {
        last.await;
    }
    journal.flush().await;
    started.elapsed()
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = std::env::var_os("JOURNAL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.path().to_owned());
    let (journal, _) = Journal::open(&dir, 0).expect("open the journal");
    println!("journal in {}", dir.display());
    runtime.block_on(async {
        // Warm-up: the file grows to its working size.
        lone_sender(&journal, 50).await;
        let took = lone_sender(&journal, 500).await;
        println!(
            "one sender, each write on disk before the next: {}",
            per_message(took, 500)
        );
        for senders in [10, 100] {
            let each = 5000 / senders;
            let took = many_senders(&journal, senders, each).await;
            println!(
                "{senders:>3} senders at once (group commit):           {}",
                per_message(took, senders * each)
            );
        }
        let took = handed_over_at_once(&journal, 20_000).await;
        println!(
            "written and handed over in one batch:            {}",
            per_message(took, 20_000)
        );
    });
}
