//! Sessions remembered on disk, so a restarted server takes each Claude
//! Code session back (with the `initialize` it began with) and gives its agent the same
//! name back, and never hands an `agent-N` number out twice. One JSON file,
//! rewritten atomically by a background writer that coalesces changes
//! (rewriting it per change made connecting N agents cost O(N²)), and flushed
//! at shutdown.

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rmcp::model::InitializeRequestParams;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// How long the writer gathers changes before rewriting the file.
const WRITE_COALESCE: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot create the state folder {path}: {source}; pass --state-dir with a writable folder"
    )]
    CreateDir { path: PathBuf, source: io::Error },
}

/// What the client said when it began the session (the file's format
/// since rmcp kept it, so files from before still load).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionState {
    initialize_params: InitializeRequestParams,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    state: Option<SessionState>,
    name: Option<String>,
    /// The name of the token that created the session: after a restart only
    /// that token may use it.
    #[serde(default)]
    owner: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    sessions: HashMap<String, Record>,
    /// The highest N of an `agent-N` name given out so far: a restarted
    /// server numbers on from here, so no number ever names two agents.
    #[serde(default)]
    highest_agent_number: u64,
}

/// What the file held before it recorded the agent numbers: the sessions alone.
#[derive(Deserialize)]
#[serde(untagged)]
enum OnDisk {
    Current(Contents),
    Sessions(HashMap<String, Record>),
}

impl From<OnDisk> for Contents {
    fn from(on_disk: OnDisk) -> Self {
        match on_disk {
            OnDisk::Current(contents) => contents,
            OnDisk::Sessions(sessions) => {
                let highest_agent_number = sessions
                    .values()
                    .filter_map(|r| agent_number(r.name.as_deref()?))
                    .max()
                    .unwrap_or(0);
                Contents {
                    sessions,
                    highest_agent_number,
                }
            }
        }
    }
}

/// The N of a name `agent-N`.
fn agent_number(name: &str) -> Option<u64> {
    name.strip_prefix("agent-")?.parse().ok()
}

pub struct SessionFile {
    path: PathBuf,
    records: Mutex<Contents>,
    changed: Notify,
    version: AtomicU64,
    written: AtomicU64,
    write: tokio::sync::Mutex<()>,
}

impl SessionFile {
    /// Opens (or starts) the file `sessions-<port>.json` in `dir`. A file that
    /// cannot be read is set aside as `.bad` rather than blocking startup.
    pub fn open(dir: &Path, port: u16) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(format!("sessions-{port}.json"));
        let records = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<OnDisk>(&bytes) {
                Ok(on_disk) => on_disk.into(),
                Err(error) => {
                    let aside = path.with_extension("json.bad");
                    tracing::warn!(path = %path.display(), %error, "session file unreadable; set aside as {}", aside.display());
                    let _ = std::fs::rename(&path, aside);
                    Contents::default()
                }
            },
            Err(error) if error.kind() == io::ErrorKind::NotFound => Contents::default(),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "session file unreadable; starting without it");
                Contents::default()
            }
        };
        Ok(Self {
            path,
            records: Mutex::new(records),
            changed: Notify::new(),
            version: AtomicU64::new(0),
            written: AtomicU64::new(0),
            write: tokio::sync::Mutex::new(()),
        })
    }

    /// Starts the background writer, for the life of the process.
    pub fn spawn_writer(self: &Arc<Self>) {
        let file = self.clone();
        tokio::spawn(async move {
            loop {
                file.changed.notified().await;
                tokio::time::sleep(WRITE_COALESCE).await;
                file.flush().await;
            }
        });
    }

    fn lock(&self) -> MutexGuard<'_, Contents> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark_changed(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// Writes pending changes now. Losing the file only costs names after a
    /// restart, so a write failure is logged, not fatal.
    pub async fn flush(&self) {
        let _writing = self.write.lock().await;
        let version = self.version.load(Ordering::SeqCst);
        if self.written.load(Ordering::SeqCst) == version {
            return;
        }
        let bytes = serde_json::to_vec(&*self.lock());
        let result = async {
            let tmp = self.path.with_extension("json.tmp");
            write_private(&tmp, &bytes.map_err(io::Error::other)?).await?;
            tokio::fs::rename(&tmp, &self.path).await
        }
        .await;
        match result {
            Ok(()) => self.written.store(version, Ordering::SeqCst),
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "could not save sessions; names will not survive a restart")
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file holds `session` (restored on its next request).
    pub fn knows(&self, session: &str) -> bool {
        self.lock().sessions.contains_key(session)
    }

    /// Remembers a new session and what its `initialize` said.
    pub fn remember(&self, session: &str, initialize: &InitializeRequestParams) {
        self.lock()
            .sessions
            .entry(session.to_owned())
            .or_default()
            .state = Some(SessionState {
            initialize_params: initialize.clone(),
        });
        self.mark_changed();
    }

    /// Whether `session` completed an `initialize` before: only such a
    /// session can be taken back after a restart.
    pub fn was_initialized(&self, session: &str) -> bool {
        self.lock()
            .sessions
            .get(session)
            .is_some_and(|r| r.state.is_some())
    }

    pub fn owner(&self, session: &str) -> Option<String> {
        self.lock().sessions.get(session)?.owner.clone()
    }

    pub fn set_owner(&self, session: &str, owner: &str) {
        let mut records = self.lock();
        let record = records.sessions.entry(session.to_owned()).or_default();
        if record.owner.as_deref() != Some(owner) {
            record.owner = Some(owner.to_owned());
            self.mark_changed();
        }
    }

    pub async fn remembered_name(&self, session: &str) -> Option<String> {
        self.lock().sessions.get(session)?.name.clone()
    }

    /// Every remembered session that had an agent, with its name.
    pub fn remembered_agents(&self) -> Vec<(String, String)> {
        self.lock()
            .sessions
            .iter()
            .filter_map(|(session, r)| Some((session.clone(), r.name.clone()?)))
            .collect()
    }

    /// The highest `agent-N` number given out before, by this server or the
    /// ones before it on this port.
    pub fn highest_agent_number(&self) -> u64 {
        self.lock().highest_agent_number
    }

    pub async fn set_name(&self, session: &str, name: &str) {
        let mut contents = self.lock();
        let number = agent_number(name).unwrap_or(0);
        if number > contents.highest_agent_number {
            contents.highest_agent_number = number;
            self.mark_changed();
        }
        let Some(record) = contents.sessions.get_mut(session) else {
            return;
        };
        if record.name.as_deref() != Some(name) {
            record.name = Some(name.to_owned());
            self.mark_changed();
        }
    }

    pub async fn forget(&self, session: &str) {
        if self.lock().sessions.remove(session).is_some() {
            self.mark_changed();
        }
    }
}

/// Writes `bytes` to `path` readable by this user only: without `--auth`, a
/// live session id is all it takes to act as that agent.
async fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).await?;
    // `mode` applies only to a new file; a leftover one is fixed here.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .await?;
    }
    file.write_all(bytes).await?;
    file.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn agent_numbers_and_names_outlive_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let file = SessionFile::open(dir.path(), 1).unwrap();
        let initialize = InitializeRequestParams::default();
        file.remember("s1", &initialize);
        file.remember("s2", &initialize);
        file.set_name("s1", "agent-1").await;
        file.set_name("s2", "agent-2").await;
        file.set_name("s1", "coder").await;
        file.forget("s2").await;
        file.flush().await;

        let reopened = SessionFile::open(dir.path(), 1).unwrap();
        assert_eq!(
            reopened.highest_agent_number(),
            2,
            "agent-2 left, its number stays used"
        );
        assert_eq!(
            reopened.remembered_agents(),
            [("s1".to_owned(), "coder".to_owned())]
        );
        assert!(reopened.was_initialized("s1"));
        assert!(!reopened.was_initialized("s2"));
    }

    #[test]
    fn a_file_of_the_earlier_format_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sessions-1.json"),
            r#"{"s1": {"state": null, "name": "agent-7"}, "s2": {"state": null, "name": "coder"}}"#,
        )
        .unwrap();
        let file = SessionFile::open(dir.path(), 1).unwrap();
        assert_eq!(file.highest_agent_number(), 7);
        assert_eq!(file.remembered_agents().len(), 2);
    }
}
