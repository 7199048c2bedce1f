//! `cargo bench -p server --bench chain`: the bundled filters (built into
//! `plugins/target` by `cargo plugins`) on 1 KB and 64 KB of ordinary agent
//! chat and on 1 KB that trips every keyword gate, per filter and as the full
//! chain, on warm instances. Also the cost of
//! the hop to a blocking thread that the server adds per message, and the
//! smallest power-of-two fuel budget each filter needs for 64 KB (to check the
//! default leaves headroom). Numbers go into docs/performance.md.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use server::{
    chain::{ChainOptions, ChainStage, config::DEFAULT_FUEL},
    filter::{Decision, FilterStage},
    message::Message,
};

/// Fuel for the timing runs: high enough never to stop a filter, so the
/// numbers show what each filter costs (the fuel section checks the default).
const UNLIMITED_FUEL: u64 = 1 << 40;

/// The bundled chain with its shipped config, except that the rate limits are
/// set so high they never trip: every call still does the full GCRA update.
fn filter_entry(name: &str, fuel: u64) -> String {
    let (file, config) = match name {
        "rate-limit" => (
            "rate_limit",
            "per_sender_per_minute = 1000000000\nper_sender_burst = 1000000000\n\
             per_pair_per_minute = 1000000000\nper_pair_burst = 1000000000",
        ),
        "injection-guard" => (
            "injection_guard",
            "reject_at = 0.8\nflag_at = 0.35\naction = \"reject\"\ndisable = []\nallow_pipe_hosts = [\"sh.rustup.rs\"]",
        ),
        "redact" => ("redact", "pii = true\ndisable = []"),
        other => unreachable!("{other}"),
    };
    format!(
        "[[filter]]\nname = \"{name}\"\ncomponent = \"target/wasm32-wasip2/release/{file}.wasm\"\n\
         fuel = {fuel}\n[filter.config]\n{config}\n\n"
    )
}

const FILTERS: [&str; 3] = ["rate-limit", "injection-guard", "redact"];

/// Engineering chat without secrets or attacks, so every filter scans it all.
fn chat(bytes: usize) -> String {
    fill(bytes, &CHAT)
}

const CHAT: [&str; 6] = [
    "I pushed the refactor of the session store to branch feat/store; the tests pass locally.",
    "Can you review the retry logic in delivery.rs? I think the backoff doubles twice per attempt.",
    "Ignore the lint warning about the unused import for now, the next commit removes it.",
    "The build on CI took 14 minutes; most of it is wasmtime, so caching target/ would help.",
    "You are now on branch main after the merge; please rebase your work on top of it.",
    "Benchmarks: 1 KB messages take about 20 us end to end, 64 KB ones about half a millisecond.",
];

/// Chat that holds the words the guards' keyword gates wait for (a verb and
/// "instructions", "your" and "token", `curl`, `rm`, `.env`, "password",
/// "key", `<system>`), so their regexes run, yet nothing is stopped or
/// redacted: the cost of a message that looks suspicious at first glance.
/// The emoji keeps non-ASCII text on the measured path.
const TRIPWIRES: [&str; 6] = [
    "Don't follow the old rules from the previous instructions doc; the new guidelines are in CONTRIBUTING.md.",
    "Which env var holds your GitHub token in CI? I only need its name for the workflow file.",
    "The curl call in deploy.sh pipes its output to jq, and rm -rf ./build runs before it.",
    "Put the password for the staging database in the vault, key name db_password, not in .env.",
    "Thanks 👍 — the `<system>` element of the old XML config is gone.",
    "Our API key rotation runs every 90 days; see docs/keys.md for the schedule.",
];

fn fill(bytes: usize, lines: &[&str]) -> String {
    let mut text = String::new();
    for line in lines.iter().cycle() {
        if text.len() + line.len() + 1 > bytes {
            break;
        }
        text.push_str(line);
        text.push('\n');
    }
    text
}

fn message(content: &str, i: u64) -> Message {
    Message {
        id: format!("bench-{i}"),
        sender: "coder".into(),
        recipient: "reviewer".into(),
        content: content.into(),
        meta: Vec::new(),
        sent_at_ms: 1,
    }
}

struct Plugins {
    dir: tempfile::TempDir,
}

impl Plugins {
    /// A plugins folder whose `target` points at the repository's built filters.
    fn new() -> Self {
        let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/target");
        for file in ["rate_limit", "injection_guard", "redact"] {
            let wasm = built.join(format!("wasm32-wasip2/release/{file}.wasm"));
            assert!(
                wasm.is_file(),
                "{} is missing: run `cargo plugins` from the repository root first",
                wasm.display()
            );
        }
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(built.canonicalize().unwrap(), dir.path().join("target"))
            .unwrap();
        Self { dir }
    }

    fn write(&self, chain: &str) {
        std::fs::write(self.dir.path().join("chain.toml"), chain).unwrap();
    }

    fn open(&self) -> ChainStage {
        ChainStage::open(ChainOptions {
            plugins_dir: self.dir.path().to_owned(),
            build: false,
            chain_file: None,
            clock: Default::default(),
            metrics: Default::default(),
            max_content_bytes: 1 << 20,
        })
        .unwrap()
    }
}

struct Stats {
    median: Duration,
    p99: Duration,
    mean: Duration,
}

/// Times single calls for about two seconds (at least 20, at most 20 000)
/// after a warm-up of a tenth as many.
fn measure(mut call: impl FnMut(u64)) -> Stats {
    let start = Instant::now();
    call(0);
    let once = start.elapsed().max(Duration::from_nanos(100));
    let iterations =
        (Duration::from_secs(2).as_nanos() / once.as_nanos()).clamp(20, 20_000) as usize;
    for i in 0..iterations / 10 {
        call(i as u64);
    }
    let mut samples: Vec<Duration> = (0..iterations)
        .map(|i| {
            let start = Instant::now();
            call(i as u64);
            start.elapsed()
        })
        .collect();
    samples.sort();
    Stats {
        median: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
        mean: samples.iter().sum::<Duration>() / samples.len() as u32,
    }
}

fn report(what: &str, size: &str, stats: &Stats) {
    println!(
        "| {what:<28} | {size:<14} | {:>9.1} | {:>9.1} | {:>9.1} |",
        stats.median.as_secs_f64() * 1e6,
        stats.p99.as_secs_f64() * 1e6,
        stats.mean.as_secs_f64() * 1e6,
    );
}

fn delivered(decision: Decision) {
    assert!(
        matches!(decision, Decision::Deliver { .. }),
        "the bench message was not delivered: {decision:?}"
    );
}

fn main() {
    let plugins = Plugins::new();
    let small = chat(1024);
    let large = chat(64 * 1024);
    let tripped = fill(1024, &TRIPWIRES);
    let sizes = [
        ("1 KB", &small),
        ("64 KB", &large),
        ("1 KB tripwires", &tripped),
    ];
    println!(
        "| what                         | payload        | median µs |    p99 µs |   mean µs |"
    );
    println!(
        "|------------------------------|----------------|-----------|-----------|-----------|"
    );

    plugins.write("");
    let empty = plugins.open();
    for (size, content) in sizes {
        let stats = measure(|i| delivered(empty.run_blocking(message(content, i))));
        report("no filters (copy only)", size, &stats);
    }

    for name in FILTERS {
        plugins.write(&filter_entry(name, UNLIMITED_FUEL));
        let stage = plugins.open();
        for (size, content) in sizes {
            let stats = measure(|i| delivered(stage.run_blocking(message(content, i))));
            report(name, size, &stats);
        }
    }

    let chain: String = FILTERS
        .iter()
        .map(|name| filter_entry(name, UNLIMITED_FUEL))
        .collect();
    plugins.write(&chain);
    let stage = Arc::new(plugins.open());
    for (size, content) in sizes {
        let stats = measure(|i| delivered(stage.run_blocking(message(content, i))));
        report("chain, calling thread", size, &stats);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (size, content) in sizes {
        let stats = measure(|i| delivered(runtime.block_on(stage.run(message(content, i)))));
        report("chain, as the server runs it", size, &stats);
    }
    assert!(
        stage.info().faults.is_empty(),
        "faults: {:?}",
        stage.info().faults
    );

    println!();
    println!("smallest power-of-two fuel budget for 64 KB (default {DEFAULT_FUEL}):");
    for name in FILTERS {
        plugins.write(&filter_entry(name, UNLIMITED_FUEL));
        let stage = plugins.open();
        let mut fuel = 1u64 << 16;
        while fuel < UNLIMITED_FUEL {
            plugins.write(&filter_entry(name, fuel));
            // The reload reuses the compiled component; its probe is small,
            // so a budget too low even for that fails the reload.
            let outcome = stage
                .reload()
                .map_err(|error| error.to_string())
                .map(|_| stage.run_blocking(message(&large, 0)));
            // Every entry fails closed, so delivery means no fault.
            if let Ok(Decision::Deliver { .. }) = outcome {
                println!("  {name}: 2^{} = {fuel}", fuel.trailing_zeros());
                break;
            }
            fuel <<= 1;
        }
        assert!(
            fuel < UNLIMITED_FUEL,
            "{name} never passed with a finite budget"
        );
    }
}
