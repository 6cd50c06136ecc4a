//! One decoded copy of each record the simulated hosts gossip, shared by every host that
//! receives it, as the records exchanges bring are: a host's node decodes a record from the
//! bytes of a datagram, and a thousand hosts would otherwise hold a thousand copies of it.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use control_plane::cluster::records::{Interner, Record, RecordError};
use rustc_hash::{FxHashMap, FxHasher};

/// Wire forms whose hashes collide, each with its decoded record.
type Bucket = Vec<(Box<[u8]>, Arc<Record>)>;

/// The records decoded so far, by a hash of their wire form.
#[derive(Debug, Default)]
pub(super) struct Shared {
    map: Mutex<FxHashMap<u64, Bucket>>,
}

impl Interner for Shared {
    fn intern(&self, wire: &[u8]) -> Result<Arc<Record>, RecordError> {
        let mut h = FxHasher::default();
        wire.hash(&mut h);
        let mut map = self.map.lock().expect("lock poisoned");
        let same = map.entry(h.finish()).or_default();
        if let Some((_, r)) = same.iter().find(|(w, _)| **w == *wire) {
            return Ok(r.clone());
        }
        let r = Arc::new(Record::decode(wire)?);
        same.push((wire.into(), r.clone()));
        Ok(r)
    }
}
