//! Connecting many agents: each opens a session and its event stream, a
//! few dozen at a time, with a progress line for the large runs. Each
//! agent's stream is read by its own task, which hands every event to the
//! run's handler and ends when the agent is dropped.

use std::{
    collections::HashMap,
    sync::{
        Arc,
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
    reader: JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Dropping the response body closes the stream's connection, which
        // is how the server learns the agent left.
        self.reader.abort();
    }
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
}

async fn connect_one(
    endpoint: &Endpoint,
    index: u32,
    named: bool,
    handler: Handler,
    live: Arc<AtomicU32>,
) -> Result<Agent, ClientError> {
    let session = endpoint.open().await?;
    let stream = session.open_stream().await?;
    live.fetch_add(1, Ordering::Relaxed);
    let reader = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            handler(index, event);
        }
        live.fetch_sub(1, Ordering::Relaxed);
    });
    // The reader already owns the stream: an early error below still drops
    // it through the agent, so no connection is left behind.
    let mut agent = Agent {
        index,
        name: None,
        session,
        reader,
    };
    if named {
        agent.name = Some(agent.session.whoami().await?);
    }
    Ok(agent)
}

pub async fn connect(endpoint: &Endpoint, options: Options, handler: Handler) -> Swarm {
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
    let results: Vec<Result<Agent, ClientError>> = futures::stream::iter(0..options.count)
        .map(|index| {
            let (handler, live, done) = (handler.clone(), live.clone(), done.clone());
            async move {
                let result = connect_one(endpoint, index, options.named, handler, live).await;
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
