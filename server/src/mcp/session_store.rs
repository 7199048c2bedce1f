//! Sessions remembered on disk, so a restarted server restores each Claude
//! Code session (rmcp replays its `initialize`) and gives its agent the same
//! name back. One small JSON file, rewritten atomically on each change.

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
};

use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot create the state folder {path}: {source}; pass --state-dir with a writable folder"
    )]
    CreateDir { path: PathBuf, source: io::Error },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    state: Option<SessionState>,
    name: Option<String>,
}

pub struct SessionFile {
    path: PathBuf,
    records: Mutex<HashMap<String, Record>>,
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
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(records) => records,
                Err(error) => {
                    let aside = path.with_extension("json.bad");
                    tracing::warn!(path = %path.display(), %error, "session file unreadable; set aside as {}", aside.display());
                    let _ = std::fs::rename(&path, aside);
                    HashMap::new()
                }
            },
            Err(error) if error.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "session file unreadable; starting without it");
                HashMap::new()
            }
        };
        Ok(Self {
            path,
            records: Mutex::new(records),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn remembered_name(&self, session: &str) -> Option<String> {
        self.records.lock().await.get(session)?.name.clone()
    }

    pub async fn set_name(&self, session: &str, name: &str) {
        let mut records = self.records.lock().await;
        let Some(record) = records.get_mut(session) else {
            return;
        };
        if record.name.as_deref() == Some(name) {
            return;
        }
        record.name = Some(name.to_owned());
        self.persist(&records).await;
    }

    pub async fn forget(&self, session: &str) {
        let mut records = self.records.lock().await;
        if records.remove(session).is_some() {
            self.persist(&records).await;
        }
    }

    /// Losing the file only costs names after a restart, so a write failure is
    /// logged, not fatal.
    async fn persist(&self, records: &HashMap<String, Record>) {
        let result = async {
            let bytes = serde_json::to_vec(records).map_err(io::Error::other)?;
            let tmp = self.path.with_extension("json.tmp");
            tokio::fs::write(&tmp, bytes).await?;
            tokio::fs::rename(&tmp, &self.path).await
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(path = %self.path.display(), %error, "could not save sessions; names will not survive a restart");
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for SessionFile {
    async fn load(&self, session: &str) -> Result<Option<SessionState>, SessionStoreError> {
        Ok(self
            .records
            .lock()
            .await
            .get(session)
            .and_then(|r| r.state.clone()))
    }

    async fn store(&self, session: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let mut records = self.records.lock().await;
        let record = records.entry(session.to_owned()).or_insert(Record {
            state: None,
            name: None,
        });
        record.state = Some(state.clone());
        self.persist(&records).await;
        Ok(())
    }

    async fn delete(&self, session: &str) -> Result<(), SessionStoreError> {
        self.forget(session).await;
        Ok(())
    }
}
