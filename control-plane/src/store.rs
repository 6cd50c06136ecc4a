//! Crash-safe state on disk: one redb database under the state directory.
//!
//! The whole [`State`] is one JSON value under one key, written in one ACID transaction per
//! change. It is small (kilobytes per hundred sandboxes) and this makes every change atomic
//! without a schema of tables to migrate.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, TableDefinition};
use thiserror::Error;

use crate::model::State;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("fabric");
const KEY: &str = "state.v1";

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
        let tx = self.db.begin_read().map_err(|e| io("read")(e.into()))?;
        let table = match tx.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(io("open table")(e.into())),
        };
        let Some(v) = table.get(KEY).map_err(|e| io("get")(e.into()))? else {
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
