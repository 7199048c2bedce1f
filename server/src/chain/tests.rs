//! Tests of the chain against hand-written components in
//! `server/tests/fixtures/hostile/` (WebAssembly text, so no guest toolchain
//! is needed): refusals at load, chain semantics, limits and `on_error`,
//! reloads.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    ChainError, ChainOptions, ChainStage, component::LoadError, instance::Fault, store::MemoryStore,
};
use crate::{filter::Decision, message::Message};

const MAX_CONTENT: usize = 64 * 1024;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/hostile/{name}.wat"))
}

/// A plugins folder with the named fixtures copied in and a chain file.
struct Plugins {
    dir: tempfile::TempDir,
}

impl Plugins {
    fn new(fixtures: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for name in fixtures {
            std::fs::copy(fixture(name), dir.path().join(format!("{name}.wat"))).unwrap();
        }
        Self { dir }
    }

    fn write_chain(&self, text: &str) {
        std::fs::write(self.dir.path().join("chain.toml"), text).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn open(&self) -> Result<ChainStage, ChainError> {
        ChainStage::open_with_store(
            ChainOptions {
                plugins_dir: self.dir.path().to_owned(),
                build: false,
                chain_file: None,
                clock: Default::default(),
                metrics: Default::default(),
                max_content_bytes: MAX_CONTENT,
            },
            Arc::new(MemoryStore::default()),
        )
    }
}

/// A chain file entry for fixture `name`, with extra TOML lines.
fn entry(name: &str, extra: &str) -> String {
    format!("[[filter]]\nname = \"{name}\"\ncomponent = \"{name}.wat\"\n{extra}\n")
}

fn message(content: &str) -> Message {
    Message {
        id: "m1".into(),
        sender: "coder".into(),
        recipient: "reviewer".into(),
        content: content.into(),
        meta: Vec::new(),
        sent_at_ms: 1,
    }
}

fn run(stage: &ChainStage, content: &str) -> Decision {
    stage.run_blocking(message(content))
}

fn rejected(decision: Decision) -> (String, String) {
    match decision {
        Decision::Reject { filter, reason } => (filter, reason),
        other => panic!("expected a reject, got {other:?}"),
    }
}

fn delivered(decision: Decision) -> (Message, Vec<String>) {
    match decision {
        Decision::Deliver {
            message,
            rewritten_by,
        } => (message, rewritten_by),
        other => panic!("expected delivery, got {other:?}"),
    }
}

fn load_error(plugins: &Plugins) -> LoadError {
    match plugins.open() {
        Err(ChainError::Load { source, .. }) => source,
        Err(other) => panic!("expected a load error, got {other}"),
        Ok(_) => panic!("expected a load error, the chain loaded"),
    }
}

#[test]
fn refuses_components_it_cannot_run() {
    let plugins = Plugins::new(&["wrong-version", "wrong-world", "wrong-signature"]);
    plugins.write_chain(&entry("wrong-version", ""));
    let error = load_error(&plugins);
    assert!(matches!(error, LoadError::WrongVersion { ref found, .. } if found == "1.0.0"));
    assert!(
        error
            .to_string()
            .contains("built against switchboard:filter@1.0.0; this server supports 0.1"),
        "{error}"
    );

    for name in ["wrong-world", "wrong-signature"] {
        plugins.write_chain(&entry(name, ""));
        let error = load_error(&plugins);
        assert!(
            matches!(error, LoadError::WrongWorld { .. }),
            "{name}: {error}"
        );
    }

    std::fs::write(plugins.path("garbage.wat"), b"\x7fELF not wasm at all").unwrap();
    plugins.write_chain(&entry("garbage", ""));
    assert!(matches!(
        load_error(&plugins),
        LoadError::NotAComponent { .. }
    ));

    std::fs::write(
        plugins.path("core.wat"),
        wat::parse_str("(module)").unwrap(),
    )
    .unwrap();
    plugins.write_chain(&entry("core", ""));
    assert!(matches!(load_error(&plugins), LoadError::CoreModule { .. }));

    let foreign = "(component (import \"acme:net/socket\" (instance)))";
    std::fs::write(plugins.path("foreign.wat"), foreign).unwrap();
    plugins.write_chain(&entry("foreign", ""));
    assert!(
        matches!(load_error(&plugins), LoadError::UnknownImport { ref import, .. } if import == "acme:net/socket")
    );

    plugins.write_chain(&entry("missing", ""));
    let error = load_error(&plugins);
    assert!(matches!(error, LoadError::Read { .. }));
    assert!(!error.to_string().contains('\n'), "{error}");
}

#[test]
fn no_chain_file_is_refused_and_an_empty_one_passes_everything() {
    let plugins = Plugins::new(&[]);
    let error = plugins.open().err().expect("no chain file must not load");
    assert!(matches!(error, ChainError::Missing(_)), "{error}");
    assert!(error.to_string().contains("--no-filters"), "{error}");

    plugins.write_chain("");
    let stage = plugins.open().unwrap();
    let info = crate::filter::FilterStage::info(&stage);
    assert_eq!((info.generation, info.filters.len()), (1, 0));
    assert_eq!(delivered(run(&stage, "hi")).0.content, "hi");
}

#[test]
fn filters_run_in_order_and_the_first_reject_stops() {
    let plugins = Plugins::new(&["rewrite", "reject", "accept"]);
    plugins.write_chain(&(entry("accept", "") + &entry("rewrite", "")));
    let stage = plugins.open().unwrap();
    let (message, rewritten_by) = delivered(run(&stage, "hello"));
    assert_eq!(message.content, "rewritten");
    assert_eq!(message.meta, vec![("tagged".into(), "yes".into())]);
    assert_eq!(rewritten_by, vec!["rewrite".to_owned()]);

    plugins.write_chain(&(entry("reject", "") + &entry("rewrite", "")));
    stage.reload().unwrap();
    assert_eq!(
        rejected(run(&stage, "hello")),
        ("reject".into(), "nope".into())
    );
}

/// Each hostile behaviour, its fault, and both `on_error` policies.
#[test]
fn hostile_filters_get_their_on_error_policy() {
    let cases: [(&str, &str, Fault); 4] = [
        (
            "loop",
            "timeout_ms = 50\nfuel = 100000000000",
            Fault::Timeout(50),
        ),
        ("loop", "fuel = 1000000", Fault::OutOfFuel(1_000_000)),
        ("alloc", "memory_mib = 4", Fault::Memory(4)),
        (
            "trap",
            "",
            Fault::Trap("wasm `unreachable` instruction executed".into()),
        ),
    ];
    for (name, limits, fault) in cases {
        let plugins = Plugins::new(&[name, "rewrite"]);
        plugins.write_chain(&(entry(name, limits) + &entry("rewrite", "")));
        let stage = plugins.open().unwrap();
        // Content that does not trigger the fixture passes, before and after.
        assert_eq!(delivered(run(&stage, "fine")).0.content, "rewritten");
        let (filter, reason) = rejected(run(&stage, "!boom"));
        assert_eq!(filter, name);
        assert_eq!(reason, format!("filter failed: {fault}"), "{name}");
        // A fresh instance replaced the failed one.
        assert_eq!(delivered(run(&stage, "fine")).0.content, "rewritten");
        assert_eq!(
            rejected(run(&stage, "!again")).1,
            format!("filter failed: {fault}")
        );

        plugins.write_chain(
            &(entry(name, &format!("{limits}\non_error = \"accept\"")) + &entry("rewrite", "")),
        );
        stage.reload().unwrap();
        let (message, rewritten_by) = delivered(run(&stage, "!boom"));
        assert_eq!(
            (message.content.as_str(), rewritten_by),
            ("rewritten", vec!["rewrite".to_owned()])
        );
        let info = crate::filter::FilterStage::info(&stage);
        assert_eq!(info.faults.get(name), Some(&3), "{name}");
    }
}

/// A rewrite past the message limit is the message's size, not a filter
/// fault: the sender is told so, whatever `on_error` says.
#[test]
fn a_rewrite_past_the_limit_is_reported_as_too_large() {
    let plugins = Plugins::new(&["huge"]);
    // Its bump allocator keeps the 10 MiB of every call it survives.
    plugins.write_chain(&entry("huge", "memory_mib = 64\non_error = \"accept\""));
    let stage = plugins.open().unwrap();
    let (filter, reason) = rejected(run(&stage, "!boom"));
    assert_eq!(filter, "huge");
    assert_eq!(
        reason,
        format!(
            "its rewrite made the message 10485760 bytes, over the limit of {MAX_CONTENT} bytes; send a shorter message"
        )
    );
    let info = crate::filter::FilterStage::info(&stage);
    assert_eq!(info.faults.get("huge"), None);
}

/// A wait inside a host call would outlast the deadline; it is refused at once.
#[test]
fn a_filter_cannot_wait_in_wasi() {
    let plugins = Plugins::new(&["sleep", "rewrite"]);
    plugins.write_chain(&(entry("sleep", "timeout_ms = 100") + &entry("rewrite", "")));
    let stage = plugins.open().unwrap();
    let started = std::time::Instant::now();
    let (filter, reason) = rejected(run(&stage, "!sleep 3 s"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "the wait ran: {:?}",
        started.elapsed()
    );
    assert_eq!(filter, "sleep");
    assert!(
        reason.contains("filters may not sleep or block"),
        "{reason}"
    );
    assert_eq!(delivered(run(&stage, "fine")).0.content, "rewritten");
}

/// A filter's new meta replaces the old, but the host's `sender_id` stays as
/// the host set it (filters that echo it back are not setting it).
#[test]
fn a_rewrite_keeps_the_hosts_sender_id() {
    let plugins = Plugins::new(&["rewrite"]);
    plugins.write_chain(&entry("rewrite", ""));
    let stage = plugins.open().unwrap();
    let mut input = message("hello");
    input.meta = vec![("sender_id".into(), "session:4".into())];
    let (output, _) = delivered(stage.run_blocking(input));
    assert_eq!(output.content, "rewritten");
    assert_eq!(
        output.meta,
        [
            ("tagged".to_owned(), "yes".to_owned()),
            ("sender_id".to_owned(), "session:4".to_owned())
        ]
    );
}

#[test]
fn filters_cannot_set_server_meta() {
    let plugins = Plugins::new(&["reserved-meta"]);
    plugins.write_chain(&entry("reserved-meta", ""));
    let stage = plugins.open().unwrap();
    let (_, reason) = rejected(run(&stage, "!x"));
    assert_eq!(
        reason,
        "filter failed: returned an invalid verdict: meta key \"from\" belongs to the server"
    );
}

#[test]
fn a_filter_that_fails_its_probe_is_refused() {
    let plugins = Plugins::new(&["broken"]);
    plugins.write_chain(&entry("broken", ""));
    match plugins.open() {
        Err(ChainError::Probe(error)) => assert_eq!(error.filter, "broken"),
        Err(other) => panic!("expected a probe failure, got {other}"),
        Ok(_) => panic!("the broken chain loaded"),
    }
}

#[test]
fn a_refused_reload_keeps_the_active_chain() {
    let plugins = Plugins::new(&["reject", "broken"]);
    plugins.write_chain(&entry("reject", ""));
    let stage = plugins.open().unwrap();
    assert_eq!(
        stage.reload().unwrap(),
        1,
        "an unchanged chain keeps its generation"
    );

    std::fs::write(plugins.path("reject.wat"), b"garbage").unwrap();
    assert!(stage.reload().is_err());
    plugins.write_chain("[[filter]]\nname = ");
    assert!(stage.reload().is_err());
    plugins.write_chain(&entry("broken", ""));
    assert!(stage.reload().is_err());

    let info = crate::filter::FilterStage::info(&stage);
    assert_eq!(
        (info.generation, info.filters),
        (1, vec!["reject".to_owned()])
    );
    assert_eq!(rejected(run(&stage, "hi")).0, "reject");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stage_runs_messages_and_follows_the_file() {
    let plugins = Plugins::new(&["accept", "reject"]);
    plugins.write_chain(&entry("accept", ""));
    let stage = plugins.open().unwrap().watch().unwrap();
    let stage: &dyn crate::filter::FilterStage = &stage;
    assert!(matches!(
        stage.run(message("hi")).await,
        Decision::Deliver { .. }
    ));

    plugins.write_chain(&entry("reject", ""));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stage.info().generation < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(stage.info().filters, vec!["reject".to_owned()]);
    assert!(matches!(
        stage.run(message("hi")).await,
        Decision::Reject { .. }
    ));
}
