//! Crash-safe state on disk: one redb database under the state directory.
//!
//! The whole [`State`] is one JSON value under one key, written in one ACID transaction per
//! change. It is small (kilobytes per hundred sandboxes) and this makes every change atomic
//! without a schema of tables to migrate.
//!
//! Beside it, an [`Intent`]: what the operation under way is about to make in the kernel
//! (namespaces, interfaces, files), written before it makes any. A crash before the state
//! that owns them is committed leaves the intent behind, and the next start removes what it
//! names; after the commit the objects are the state's, and the intent is simply cleared.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, TableDefinition};
use thiserror::Error;

use crate::model::{Endpoint, Sandbox, State};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("fabric");
const KEY: &str = "state.v1";
const INTENT: &str = "intent.v1";

/// The kernel objects an operation is about to make, as the objects of the model that will
/// own them once it commits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Intent {
    /// `sandbox create`: its namespace (created, or published when adopted or shared), its
    /// endpoints' interfaces, its /etc files and published ports.
    CreateSandbox {
        /// The sandbox.
        sandbox: Sandbox,
        /// Its endpoints.
        endpoints: Vec<Endpoint>,
    },
    /// `network connect`: one interface in an existing sandbox.
    Connect {
        /// The sandbox.
        sandbox: Sandbox,
        /// The new endpoint.
        endpoint: Endpoint,
    },
}

/// A failure of the store. The state on disk is as it was before the failing call.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open state database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: Box<redb::DatabaseError>,
    },
    /// A read or write transaction failed.
    #[error("state database {what} failed: {detail}")]
    Io {
        /// Which step.
        what: &'static str,
        /// What redb said.
        detail: String,
    },
    /// The stored value is not a state this version understands.
    #[error("stored state is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// The open database.
pub struct Store {
    db: Database,
}

fn io(what: &'static str) -> impl Fn(redb::Error) -> StoreError {
    move |e| StoreError::Io {
        what,
        detail: e.to_string(),
    }
}

impl Store {
    /// Opens (or creates) `dir/state.redb`.
    ///
    /// # Errors
    /// [`StoreError::Open`].
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join("state.redb");
        let db = Database::create(&path).map_err(|e| StoreError::Open {
            path,
            source: Box::new(e),
        })?;
        Ok(Store { db })
    }

    /// The stored state, or `None` on first start.
    ///
    /// # Errors
    /// [`StoreError::Io`] or [`StoreError::Corrupt`].
    pub fn load(&self) -> Result<Option<State>, StoreError> {
        self.get(KEY)
    }

    /// Records what an operation is about to make (`Some`), or that nothing is under way
    /// (`None`), in one durable transaction.
    ///
    /// # Errors
    /// [`StoreError::Io`]; the previous intent stays on disk.
    pub fn set_intent(&self, intent: Option<&Intent>) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| io("begin")(e.into()))?;
        {
            let mut t = tx.open_table(TABLE).map_err(|e| io("open table")(e.into()))?;
            match intent {
                Some(i) => {
                    let bytes = serde_json::to_vec(i)?;
                    t.insert(INTENT, bytes.as_slice()).map_err(|e| io("insert")(e.into()))?;
                }
                None => {
                    t.remove(INTENT).map_err(|e| io("remove")(e.into()))?;
                }
            }
        }
        tx.commit().map_err(|e| io("commit")(e.into()))
    }

    /// The intent a crash left behind, if any.
    ///
    /// # Errors
    /// [`StoreError::Io`] or [`StoreError::Corrupt`].
    pub fn intent(&self) -> Result<Option<Intent>, StoreError> {
        self.get(INTENT)
    }

    /// The JSON value under `key`, or `None` when there is none (or no table yet).
    fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| io("read")(e.into()))?;
        let table = match tx.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(io("open table")(e.into())),
        };
        let Some(v) = table.get(key).map_err(|e| io("get")(e.into()))? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(v.value())?))
    }

    /// Replaces the stored state in one durable transaction.
    ///
    /// # Errors
    /// [`StoreError::Io`]; the previous state stays on disk.
    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(state)?;
        let tx = self.db.begin_write().map_err(|e| io("begin")(e.into()))?;
        {
            let mut t = tx.open_table(TABLE).map_err(|e| io("open table")(e.into()))?;
            t.insert(KEY, bytes.as_slice()).map_err(|e| io("insert")(e.into()))?;
        }
        tx.commit().map_err(|e| io("commit")(e.into()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_intent_outlives_the_handle_until_cleared() {
        let dir = std::env::temp_dir().join(format!("cp-store-intent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = State::with_defaults(
            [
                Id::from_random([1; 32]),
                Id::from_random([2; 32]),
                Id::from_random([3; 32]),
            ],
            SystemTime::UNIX_EPOCH,
        );
        let spec = crate::model::SandboxSpec {
            name: "vm1".into(),
            port_kind: "tap".into(),
            ..Default::default()
        };
        let sb = s
            .create_sandbox(
                spec,
                Id::from_random([4; 32]),
                Id::from_random([5; 32]),
                Path::new("/run/netns"),
                SystemTime::UNIX_EPOCH,
            )
            .unwrap();
        let intent = Intent::CreateSandbox {
            sandbox: s.sandboxes[&sb].clone(),
            endpoints: s.endpoints_of_sandbox(&sb).into_iter().cloned().collect(),
        };
        {
            let store = Store::open(&dir).unwrap();
            assert_eq!(store.intent().unwrap(), None);
            store.set_intent(Some(&intent)).unwrap();
        }
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.intent().unwrap(), Some(intent));
        store.set_intent(None).unwrap();
        assert_eq!(store.intent().unwrap(), None);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use super::*;
    use crate::ids::Id;
    use std::time::SystemTime;

    #[test]
    fn save_then_load_in_a_new_handle() {
        let dir = std::env::temp_dir().join(format!("cp-store-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = State::with_defaults(
            [
                Id::from_random([1; 32]),
                Id::from_random([2; 32]),
                Id::from_random([3; 32]),
            ],
            SystemTime::UNIX_EPOCH,
        );
        {
            let st = Store::open(&dir).unwrap();
            assert!(st.load().unwrap().is_none());
            st.save(&s).unwrap();
        }
        let st = Store::open(&dir).unwrap();
        assert_eq!(st.load().unwrap(), Some(s));
        drop(st);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
