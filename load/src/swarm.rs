//! Connecting many agents: each opens a session and its event stream, a
//! few dozen at a time, with a progress line for the large runs. Each
//! agent's stream is read by its own task, which hands every event to the
//! run's handler and ends when the agent is dropped, or when it leaves for
//! a while (churn) until it comes back on the same session.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::{
    client::{ClientError, Endpoint, Session},
    sse,
};

/// What a run does with an event that arrived on agent `index`'s stream.
pub type Handler = Arc<dyn Fn(u32, sse::Event) + Send + Sync>;

pub struct Agent {
    pub index: u32,
    /// The agent's name, when asked for (`list-agents`).
    pub name: Option<String>,
    pub session: Session,
    /// Reads the stream; `None` while the agent is away.
    reader: Mutex<Option<JoinHandle<()>>>,
    /// The last event id seen, sent back as `Last-Event-ID` on return.
    last_event_id: Arc<Mutex<Option<String>>>,
    handler: Handler,
    live: Arc<AtomicU32>,
}

impl Agent {
    fn reader(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the event stream, as a closed laptop would: the agent is away.
    pub fn leave(&self) {
        if let Some(reader) = self.reader().take() {
            reader.abort();
        }
    }

    /// Re-opens the event stream on the same session, resuming after the
    /// last event seen, as Claude Code does.
    pub async fn come_back(&self) -> Result<(), ClientError> {
        let last = self
            .last_event_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let stream = self.session.open_stream(last.as_deref()).await?;
        let reader = spawn_reader(
            stream,
            self.index,
            self.handler.clone(),
            self.live.clone(),
            self.last_event_id.clone(),
        );
        if let Some(stale) = self.reader().replace(reader) {
            stale.abort();
        }
        Ok(())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Dropping the response body closes the stream's connection, which
        // is how the server learns the agent left.
        self.leave();
    }
}

fn spawn_reader(
    stream: impl futures::Stream<Item = sse::Event> + Send + 'static,
    index: u32,
    handler: Handler,
    live: Arc<AtomicU32>,
    last_event_id: Arc<Mutex<Option<String>>>,
) -> JoinHandle<()> {
    live.fetch_add(1, Ordering::Relaxed);
    // Counted down however the reader ends, aborted included.
    struct Live(Arc<AtomicU32>);
    impl Drop for Live {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let guard = Live(live);
    tokio::spawn(async move {
        let _live = guard;
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Some(id) = &event.id {
                *last_event_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
            }
            handler(index, event);
        }
    })
}

pub struct Swarm {
    pub agents: Vec<Agent>,
    /// Failed connections, by error text.
    pub failures: HashMap<String, u64>,
    pub took: Duration,
    /// Streams still open; a stream the server ends early shows up here.
    pub live: Arc<AtomicU32>,
}

pub struct Options {
    pub count: u32,
    pub concurrency: u32,
    /// Ask each agent its name (needed to address it).
    pub named: bool,
    /// Declare a stable name per agent (`load-<index>`), so mail waits for
    /// it while it is away.
    pub declare: bool,
}

async fn connect_one(
    endpoint: &Endpoint,
    index: u32,
    options: &Options,
    handler: Handler,
    live: Arc<AtomicU32>,
) -> Result<Agent, ClientError> {
    let declared = options.declare.then(|| format!("load-{index}"));
    let session = endpoint.open(declared.as_deref()).await?;
    let stream = session.open_stream(None).await?;
    let last_event_id = Arc::new(Mutex::new(None));
    let reader = spawn_reader(
        stream,
        index,
        handler.clone(),
        live.clone(),
        last_event_id.clone(),
    );
    // The reader already owns the stream: an early error below still drops
    // it through the agent, so no connection is left behind.
    let mut agent = Agent {
        index,
        name: None,
        session,
        reader: Mutex::new(Some(reader)),
        last_event_id,
        handler,
        live,
    };
    let named = options.named;
    if named {
        agent.name = Some(agent.session.whoami().await?);
    }
    Ok(agent)
}

/// Connects `options.count` agents, agent i to `endpoints[i % len]`.
pub async fn connect(endpoints: &[Endpoint], options: Options, handler: Handler) -> Swarm {
    let started = Instant::now();
    let live = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicU32::new(0));
    let ticker = tokio::spawn({
        let done = done.clone();
        let count = options.count;
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!(
                    "[connect {:>4} s] {}/{count} agents",
                    started.elapsed().as_secs(),
                    done.load(Ordering::Relaxed)
                );
            }
        }
    });
    let options = &options;
    let results: Vec<Result<Agent, ClientError>> = futures::stream::iter(0..options.count)
        .map(|index| {
            let (handler, live, done) = (handler.clone(), live.clone(), done.clone());
            async move {
                let endpoint = &endpoints[index as usize % endpoints.len()];
                let result = connect_one(endpoint, index, options, handler, live).await;
                done.fetch_add(1, Ordering::Relaxed);
                result
            }
        })
        .buffer_unordered(options.concurrency as usize)
        .collect()
        .await;
    ticker.abort();
    let mut agents = Vec::with_capacity(results.len());
    let mut failures = HashMap::new();
    for result in results {
        match result {
            Ok(agent) => agents.push(agent),
            Err(error) => *failures.entry(error.to_string()).or_insert(0) += 1,
        }
    }
    agents.sort_by_key(|agent| agent.index);
    Swarm {
        agents,
        failures,
        took: started.elapsed(),
        live,
    }
}
