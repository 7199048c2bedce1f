//! Assembles the server from the command line and runs it until a signal.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::{
    audit::Audit,
    auth::Tokens,
    bus::Bus,
    chain::{ChainError, ChainOptions, ChainStage, store::KvStore},
    cli::{LogFormat, ServeArgs},
    cluster::{
        Cluster, LocalAgents, LocalCluster,
        redis::{ConnectError, RedisCluster, RedisOptions},
    },
    delivery::{
        Delivery,
        inbox::{InboxLimits, Inboxes, Mail, by_recipient},
        journal::{Journal, JournalError},
    },
    filter::{FilterStage, PassThrough},
    http,
    http::guard::Guard,
    mcp::{self, McpOptions, identity::Identities, session_store::SessionFile},
    metrics::Metrics,
    permissions::Permissions,
    registry::Registry,
};

/// How long a sender waits for another replica to confirm a delivery, beyond
/// the recipient's reconnect grace.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the plugins folder {0} does not exist; pass --plugins with the folder holding chain.toml (the repository's ./plugins), or --no-filters to run without filters"
    )]
    PluginsMissing(PathBuf),
    #[error("cannot start without the filter chain: {0}")]
    Chain(#[from] ChainError),
    #[error("no state folder: set HOME, XDG_STATE_HOME or pass --state-dir")]
    NoStateDir,
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthFileError),
    #[error(transparent)]
    Store(#[from] mcp::session_store::StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Bind(#[from] http::BindError),
    #[error(transparent)]
    Redis(#[from] ConnectError),
    #[error(transparent)]
    Audit(#[from] crate::audit::OpenError),
    #[error("the server stopped: {0}")]
    Serve(#[from] std::io::Error),
}

/// Crates whose internals flood a debug log (the compiler's every pass):
/// quiet unless `RUST_LOG` names them.
const QUIET_UNLESS_NAMED: [&str; 5] = ["wasmtime", "cranelift", "regalloc2", "wasmparser", "wit_"];

/// The log filter for `RUST_LOG` (default `info`): `rmcp` at warn unless
/// named, and the WebAssembly compiler's crates at warn unless named.
pub fn log_filter(rust_log: Option<&str>) -> EnvFilter {
    let asked = rust_log.map(str::trim).filter(|s| !s.is_empty());
    let mut directives = asked.unwrap_or("info").to_owned();
    for quiet in QUIET_UNLESS_NAMED.into_iter().chain(["rmcp"]) {
        if !directives.contains(quiet) {
            directives.push_str(&format!(",{quiet}=warn"));
        }
    }
    EnvFilter::try_new(&directives).unwrap_or_else(|error| {
        eprintln!(
            "switchboard: RUST_LOG {directives:?} is not a valid filter ({error}); logging at info"
        );
        EnvFilter::new("info,rmcp=warn")
    })
}

pub fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let rust_log = std::env::var("RUST_LOG").ok();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter(rust_log.as_deref()))
        // Colour codes only for a person at a terminal, not for a file or journald.
        .with_ansi(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn default_state_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state"))
        })?;
    Some(base.join("switchboard"))
}

pub async fn run(cli: ServeArgs) -> Result<(), StartError> {
    if !cli.no_filters && !cli.plugins.is_dir() {
        return Err(StartError::PluginsMissing(cli.plugins));
    }
    let auth = cli
        .auth
        .as_deref()
        .map(Tokens::load)
        .transpose()?
        .map(Arc::new);
    if auth.is_none() && !cli.bind.is_loopback() {
        tracing::warn!(
            bind = %cli.bind,
            "LISTENING BEYOND LOOPBACK WITHOUT AUTHENTICATION: anyone who can reach this port can read and send messages as any agent; pass --auth FILE"
        );
    }
    let listener = http::bind(SocketAddr::new(cli.bind, cli.port)).await?;
    let addr = listener.local_addr()?;
    let state_dir = cli
        .state_dir
        .clone()
        .or_else(default_state_dir)
        .ok_or(StartError::NoStateDir)?;
    let store = Arc::new(SessionFile::open(&state_dir, addr.port())?);
    store.spawn_writer();
    let (journal, backlog) = Journal::open(&state_dir, addr.port())?;
    let limits = InboxLimits {
        ttl: cli.inbox_ttl,
        max_messages: cli.inbox_max_messages,
        max_bytes: cli.inbox_max_bytes,
        max_total_bytes: cli.inbox_max_total_bytes,
        max_inboxes: cli.max_inboxes,
    };

    let grace = Duration::from_millis(cli.reconnect_grace_ms);
    let redis = match &cli.redis {
        Some(url) => Some(
            RedisCluster::connect(RedisOptions {
                url: url.clone(),
                replica: cli
                    .replica_id
                    .clone()
                    .unwrap_or_else(|| format!("{:08x}", fastrand::u32(..))),
                lease: Duration::from_millis(cli.lease_ms),
                // The owning replica may wait out a recipient's reconnect first.
                route_timeout: grace + ROUTE_TIMEOUT,
            })
            .await?,
        ),
        None => None,
    };
    let (cluster, kv): (Arc<dyn Cluster>, Option<Arc<dyn KvStore>>) = match &redis {
        Some(redis) => (redis.clone(), Some(Arc::new(redis.store()))),
        None => (
            Arc::new(LocalCluster::numbering_after(store.highest_agent_number())),
            None,
        ),
    };
    // What waited at the last stop goes back to its recipients' inboxes.
    let mail: Arc<dyn Mail> = match &redis {
        Some(redis) => {
            let mail = redis.mail(limits, journal.clone());
            for (to, waiting) in by_recipient(backlog) {
                mail.went_away(&to, waiting);
            }
            mail
        }
        None => {
            let inboxes = Inboxes::new(limits, journal.clone());
            inboxes.restore(backlog);
            Arc::new(inboxes)
        }
    };

    let metrics = Arc::new(Metrics::new(redis.is_some()));
    let options = ChainOptions {
        plugins_dir: cli.plugins.clone(),
        build: !cli.no_build,
        chain_file: None,
        clock: Default::default(),
        max_content_bytes: cli.max_message_bytes,
        metrics: metrics.filters.clone(),
    };
    let filters: Arc<dyn FilterStage> = if cli.no_filters {
        tracing::warn!("--no-filters: messages are delivered unfiltered");
        Arc::new(PassThrough)
    } else {
        // Loading compiles components (up to seconds) and may run cargo (minutes).
        let chain = tokio::task::spawn_blocking(move || match kv {
            Some(kv) => ChainStage::open_with_store(options, kv),
            None => ChainStage::open(options),
        })
        .await
        .map_err(|error| StartError::Serve(std::io::Error::other(error)))??;
        Arc::new(chain.watch()?)
    };
    let delivery = Delivery::new(cluster.clone(), mail.clone());
    let registry = Arc::new(Registry::with_cluster(
        cli.queue_depth,
        grace,
        cluster,
        mail,
        journal.clone(),
    ));
    if let Some(auth) = &auth {
        registry.reserve(auth.current().names());
    }
    let audit = cli
        .audit
        .as_deref()
        .map(|path| Audit::open(path, cli.audit_content, metrics.audit_dropped.clone()))
        .transpose()?
        .map(Arc::new);
    let bus = Arc::new(
        Bus::new(registry, delivery, filters, cli.max_message_bytes)
            .with_metrics(metrics)
            .with_audit(audit.clone()),
    );
    let identities = Arc::new(Identities::default());
    let permissions = cli
        .permission_relay
        .then(|| Arc::new(Permissions::new(bus.registry().clone())));

    let shutdown = CancellationToken::new();
    let leases = redis.as_ref().map(|redis| {
        let registry: Arc<dyn LocalAgents> = bus.registry().clone();
        let agents = Arc::downgrade(&registry);
        redis.start(agents, shutdown.clone())
    });
    // Room for the largest message fully JSON-escaped (a control character
    // is six bytes as `\u0001`) plus the envelope: a message within
    // --max-message-bytes is never refused for its escaping.
    let max_body_bytes = cli.max_message_bytes * 6 + 64 * 1024;
    let mcp = mcp::service(
        bus.clone(),
        store.clone(),
        identities.clone(),
        McpOptions {
            session_idle: Duration::from_secs(cli.session_idle_secs),
            session_prefix: redis.as_ref().map(|r| r.replica().to_owned()),
            permissions: permissions.clone(),
        },
        shutdown.clone(),
    );
    let sessions = mcp.sessions.clone();
    if let Err(error) = sessions.restore_agents().await {
        tracing::warn!(%error, "agents from before the restart get new names");
    }
    tokio::spawn(reload_auth_on_hangup(auth.clone(), bus.registry().clone()));
    let guard = Arc::new(Guard {
        auth,
        any_host: !cli.bind.is_loopback(),
        allowed_origins: cli.allow_origins.clone(),
        identities,
        sessions: sessions.clone(),
        registry: bus.registry().clone(),
        max_agents: cli.max_agents,
        max_sessions: cli.max_sessions,
    });
    let app = http::router(
        mcp,
        bus,
        guard,
        permissions,
        max_body_bytes,
        shutdown.clone(),
    );
    tokio::spawn(stop_on_signal(shutdown.clone(), sessions));
    tracing::info!(
        url = %format!("http://{addr}/mcp"),
        sessions = %store.path().display(),
        replica = redis.as_ref().map(|r| r.replica()),
        "switchboard listening"
    );
    let limits = http::serve::ConnectionLimits {
        max_connections: cli.max_connections.max(1),
        header_read_timeout: Duration::from_millis(cli.header_read_timeout_ms.max(1)),
        idle_timeout: Duration::from_secs(cli.connection_idle_secs.max(1)),
    };
    http::serve::serve(listener, app, limits, shutdown).await?;
    store.flush().await;
    journal.flush().await;
    if let Some(audit) = &audit {
        audit.flush().await;
    }
    if let Some(leases) = leases {
        // Releasing this replica's names is a courtesy; the leases lapse anyway.
        let _ = tokio::time::timeout(Duration::from_secs(2), leases).await;
    }
    tracing::info!("switchboard stopped");
    Ok(())
}

/// `SIGHUP` re-reads the auth file (the conventional "reload your
/// configuration"; its default action would kill the server).
async fn reload_auth_on_hangup(auth: Option<Arc<Tokens>>, registry: Arc<Registry>) {
    #[cfg(unix)]
    {
        let mut hangups =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGHUP");
                    return;
                }
            };
        while hangups.recv().await.is_some() {
            let Some(auth) = &auth else {
                tracing::info!("SIGHUP: no --auth file to re-read");
                continue;
            };
            match auth.reload() {
                Ok(tokens) => {
                    // Revoked names stay reserved: nobody else may pass as them.
                    registry.reserve(tokens.names());
                    tracing::info!(
                        file = %auth.path().display(),
                        tokens = tokens.names().count(),
                        "auth file re-read; its tokens are in force"
                    );
                }
                Err(error) => tracing::error!("SIGHUP: {error}; the tokens in force are unchanged"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (auth, registry);
}

/// How long shutdown waits for agent streams to take their retry hint.
const STREAMS_CLOSE_WITHIN: Duration = Duration::from_secs(1);

async fn stop_on_signal(shutdown: CancellationToken, sessions: Arc<mcp::sessions::AgentSessions>) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
    sessions.close_streams(STREAMS_CLOSE_WITHIN).await;
    shutdown.cancel();
}
