//! The forwarding database: a compact open-addressing map from `(NetworkId, MacAddr)` to a port.
//!
//! Layout: one flat array of 24-byte slots, linear probing, capacity a power of two, load at
//! most 3/4, deletion by backward shift (no tombstones, so lookups stay short after churn).
//! At 1,000,000 entries the table holds 2^21 slots: 50 bytes per entry.
//!
//! Time is kept per entry as milliseconds since the table's epoch (an `Instant` given at
//! construction), so an entry needs no 16-byte `Instant`.

use std::time::{Duration, Instant};

use crate::ids::{NetworkId, PortId};
use crate::wire::MacAddr;

const FLAG_USED: u8 = 0x01;
const FLAG_STATIC: u8 = 0x02;
const MIN_CAPACITY: usize = 16;

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Slot {
    mac: [u8; 6],
    flags: u8,
    _pad: u8,
    network: u32,
    port: u32,
    seen_ms: u64,
}

impl Slot {
    fn used(&self) -> bool {
        self.flags & FLAG_USED != 0
    }

    fn is_static(&self) -> bool {
        self.flags & FLAG_STATIC != 0
    }

    fn matches(&self, net: NetworkId, mac: MacAddr) -> bool {
        self.used() && self.network == net.0 && self.mac == mac.0
    }
}

/// One entry of the table, as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    /// The network the address lives in.
    pub network: NetworkId,
    /// The address.
    pub mac: MacAddr,
    /// The port it was learned on, or the static port.
    pub port: PortId,
    /// Static entries (endpoints the daemon created) never age and never move by learning.
    pub is_static: bool,
    /// When a frame from this address was last seen (for static entries: when it was added).
    pub last_seen: Instant,
}

/// The MAC table. See the module documentation for its layout.
pub struct MacTable {
    slots: Box<[Slot]>,
    mask: usize,
    len: usize,
    seed: u64,
    epoch: Instant,
}

/// What [`MacTable::upsert_dynamic`] found before it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// A new entry was written.
    Inserted,
    /// The entry existed on the same port; its time was refreshed.
    Refreshed,
    /// The entry existed on another port (given) and now points at the new one.
    Moved(PortId),
    /// A static entry exists for the address; nothing was changed.
    Static(PortId),
    /// The caller did not allow the address onto the port (learning limit). If the address
    /// was known on another port (given), that stale entry was removed.
    Refused(Option<PortId>),
}

impl MacTable {
    /// An empty table. `epoch` is any instant not after the first `now` passed in; `seed` keys
    /// the hash so that addresses chosen by a container cannot be aimed at one probe chain.
    pub fn new(epoch: Instant, seed: u64) -> MacTable {
        MacTable::with_capacity(epoch, seed, 0)
    }

    /// An empty table sized for `entries` without growing.
    pub fn with_capacity(epoch: Instant, seed: u64, entries: usize) -> MacTable {
        let cap = (entries.saturating_mul(4) / 3 + 1)
            .next_power_of_two()
            .max(MIN_CAPACITY);
        MacTable {
            slots: vec![Slot::default(); cap].into_boxed_slice(),
            mask: cap - 1,
            len: 0,
            seed,
            epoch,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the table's slot array.
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>()
    }

    /// Milliseconds since the epoch, the unit entries store.
    #[inline]
    pub(crate) fn tick(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn instant(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    #[inline]
    fn home(&self, net: NetworkId, mac: MacAddr) -> usize {
        let x = (mac.to_u64() ^ self.seed).wrapping_add(u64::from(net.0).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        (fmix64(x) as usize) & self.mask
    }

    #[inline]
    fn find(&self, net: NetworkId, mac: MacAddr) -> Option<usize> {
        let mut i = self.home(net, mac);
        loop {
            let s = &self.slots[i];
            if !s.used() {
                return None;
            }
            if s.matches(net, mac) {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    fn entry_at(&self, i: usize) -> FdbEntry {
        let s = &self.slots[i];
        FdbEntry {
            network: NetworkId(s.network),
            mac: MacAddr(s.mac),
            port: PortId(s.port),
            is_static: s.is_static(),
            last_seen: self.instant(s.seen_ms),
        }
    }

    /// The entry for `(net, mac)`, aged or not.
    pub fn get(&self, net: NetworkId, mac: MacAddr) -> Option<FdbEntry> {
        self.find(net, mac).map(|i| self.entry_at(i))
    }

    /// The port for `(net, mac)` if the entry is static or was seen within `aging` of `now`.
    #[inline]
    pub fn lookup(&self, net: NetworkId, mac: MacAddr, now_ms: u64, aging: Duration) -> Option<PortId> {
        let s = &self.slots[self.find(net, mac)?];
        if s.is_static() || now_ms.saturating_sub(s.seen_ms) <= aging.as_millis() as u64 {
            Some(PortId(s.port))
        } else {
            None
        }
    }

    /// What [`MacTable::upsert_dynamic`] would find and do with the same arguments, without
    /// changing anything (for traces).
    pub fn preview_upsert(&self, net: NetworkId, mac: MacAddr, port: PortId, may_add: bool) -> Upsert {
        match self.find(net, mac).map(|i| &self.slots[i]) {
            Some(s) if s.is_static() => Upsert::Static(PortId(s.port)),
            Some(s) if s.port == port.0 => Upsert::Refreshed,
            Some(s) if !may_add => Upsert::Refused(Some(PortId(s.port))),
            Some(s) => Upsert::Moved(PortId(s.port)),
            None if !may_add => Upsert::Refused(None),
            None => Upsert::Inserted,
        }
    }

    /// Learns `(net, mac)` on `port` at `now_ms` unless a static entry owns the address.
    /// `may_add` says whether the address may newly appear on `port` (insert or move); a
    /// refresh on the same port is always allowed.
    #[inline]
    pub fn upsert_dynamic(&mut self, net: NetworkId, mac: MacAddr, port: PortId, now_ms: u64, may_add: bool) -> Upsert {
        if let Some(i) = self.find(net, mac) {
            let s = &mut self.slots[i];
            if s.is_static() {
                return Upsert::Static(PortId(s.port));
            }
            if s.port == port.0 {
                s.seen_ms = now_ms;
                return Upsert::Refreshed;
            }
            let old = PortId(s.port);
            if !may_add {
                self.remove_at(i);
                return Upsert::Refused(Some(old));
            }
            s.seen_ms = now_ms;
            s.port = port.0;
            return Upsert::Moved(old);
        }
        if !may_add {
            return Upsert::Refused(None);
        }
        self.insert_new(Slot {
            mac: mac.0,
            flags: FLAG_USED,
            _pad: 0,
            network: net.0,
            port: port.0,
            seen_ms: now_ms,
        });
        Upsert::Inserted
    }

    /// Writes a static entry, replacing whatever entry the address had; returns the old one.
    pub fn insert_static(&mut self, net: NetworkId, mac: MacAddr, port: PortId, now: Instant) -> Option<FdbEntry> {
        let slot = Slot {
            mac: mac.0,
            flags: FLAG_USED | FLAG_STATIC,
            _pad: 0,
            network: net.0,
            port: port.0,
            seen_ms: self.tick(now),
        };
        if let Some(i) = self.find(net, mac) {
            let old = self.entry_at(i);
            self.slots[i] = slot;
            return Some(old);
        }
        self.insert_new(slot);
        None
    }

    fn insert_new(&mut self, slot: Slot) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mut i = self.home(NetworkId(slot.network), MacAddr(slot.mac));
        while self.slots[i].used() {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = slot;
        self.len += 1;
    }

    fn grow(&mut self) {
        let new_cap = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); new_cap].into_boxed_slice());
        self.mask = new_cap - 1;
        self.len = 0;
        for s in old.iter().filter(|s| s.used()) {
            self.insert_new(*s);
        }
    }

    /// Removes `(net, mac)` and returns it.
    pub fn remove(&mut self, net: NetworkId, mac: MacAddr) -> Option<FdbEntry> {
        let i = self.find(net, mac)?;
        let e = self.entry_at(i);
        self.remove_at(i);
        Some(e)
    }

    fn remove_at(&mut self, mut hole: usize) {
        // Backward-shift deletion: pull later members of the probe run into the hole when the
        // hole lies between their home slot and where they sit.
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let s = self.slots[j];
            if !s.used() {
                break;
            }
            let home = self.home(NetworkId(s.network), MacAddr(s.mac));
            let dist_hole = hole.wrapping_sub(home) & self.mask;
            let dist_j = j.wrapping_sub(home) & self.mask;
            if dist_hole <= dist_j {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = Slot::default();
        self.len -= 1;
    }

    /// Removes every entry for which `keep` returns false and hands each to `removed`.
    /// Work: one pass over the slots, plus the removals.
    pub fn retain(&mut self, mut keep: impl FnMut(&FdbEntry) -> bool, mut removed: impl FnMut(FdbEntry)) {
        let doomed: Vec<FdbEntry> = self.iter().filter(|e| !keep(e)).collect();
        for e in doomed {
            if let Some(e) = self.remove(e.network, e.mac) {
                removed(e);
            }
        }
    }

    /// Every entry, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = FdbEntry> + '_ {
        (0..self.slots.len())
            .filter(|i| self.slots[*i].used())
            .map(|i| self.entry_at(i))
    }
}

#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn slot_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 24);
    }

    #[test]
    fn memory_per_entry_at_one_million_is_under_64_bytes() {
        let t = MacTable::with_capacity(Instant::now(), 1, 1_000_000);
        assert!(t.memory_bytes() / 1_000_000 <= 64, "{} bytes", t.memory_bytes());
    }

    #[test]
    fn same_mac_in_two_networks_are_two_entries() {
        let t0 = Instant::now();
        let mut t = MacTable::new(t0, 7);
        assert_eq!(
            t.upsert_dynamic(NetworkId(1), mac(1), PortId(1), 0, true),
            Upsert::Inserted
        );
        assert_eq!(
            t.upsert_dynamic(NetworkId(2), mac(1), PortId(2), 0, true),
            Upsert::Inserted
        );
        assert_eq!(
            t.lookup(NetworkId(1), mac(1), 0, Duration::from_secs(1)),
            Some(PortId(1))
        );
        assert_eq!(
            t.lookup(NetworkId(2), mac(1), 0, Duration::from_secs(1)),
            Some(PortId(2))
        );
        assert_eq!(t.lookup(NetworkId(3), mac(1), 0, Duration::from_secs(1)), None);
    }

    #[test]
    fn aged_entries_are_not_found_but_static_ones_are() {
        let t0 = Instant::now();
        let mut t = MacTable::new(t0, 7);
        t.upsert_dynamic(NetworkId(1), mac(1), PortId(1), 0, true);
        t.insert_static(NetworkId(1), mac(2), PortId(2), t0);
        let aging = Duration::from_secs(300);
        assert_eq!(t.lookup(NetworkId(1), mac(1), 300_000, aging), Some(PortId(1)));
        assert_eq!(t.lookup(NetworkId(1), mac(1), 300_001, aging), None);
        assert_eq!(t.lookup(NetworkId(1), mac(2), 10_000_000, aging), Some(PortId(2)));
    }

    #[test]
    fn static_entries_do_not_move() {
        let t0 = Instant::now();
        let mut t = MacTable::new(t0, 7);
        t.insert_static(NetworkId(1), mac(1), PortId(1), t0);
        assert_eq!(
            t.upsert_dynamic(NetworkId(1), mac(1), PortId(9), 5, true),
            Upsert::Static(PortId(1))
        );
        assert_eq!(t.get(NetworkId(1), mac(1)).unwrap().port, PortId(1));
        assert_eq!(
            t.upsert_dynamic(NetworkId(1), mac(3), PortId(1), 5, true),
            Upsert::Inserted
        );
        assert_eq!(
            t.upsert_dynamic(NetworkId(1), mac(3), PortId(2), 6, true),
            Upsert::Moved(PortId(1))
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Learn(u32, u8, u32),
        Static(u32, u8, u32),
        Remove(u32, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3u32, any::<u8>(), 0..8u32).prop_map(|(n, m, p)| Op::Learn(n, m, p)),
            (0..3u32, any::<u8>(), 0..8u32).prop_map(|(n, m, p)| Op::Static(n, m, p)),
            (0..3u32, any::<u8>()).prop_map(|(n, m)| Op::Remove(n, m)),
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_a_hashmap(ops in proptest::collection::vec(op(), 0..600), seed in any::<u64>()) {
            let t0 = Instant::now();
            let mut t = MacTable::new(t0, seed);
            let mut model: HashMap<(u32, u8), (u32, bool)> = HashMap::new();
            for op in ops {
                match op {
                    Op::Learn(n, m, p) => {
                        t.upsert_dynamic(NetworkId(n), mac(m), PortId(p), 0, true);
                        let e = model.entry((n, m)).or_insert((p, false));
                        if !e.1 { e.0 = p; }
                    }
                    Op::Static(n, m, p) => {
                        t.insert_static(NetworkId(n), mac(m), PortId(p), t0);
                        model.insert((n, m), (p, true));
                    }
                    Op::Remove(n, m) => {
                        let got = t.remove(NetworkId(n), mac(m)).map(|e| (e.port.0, e.is_static));
                        prop_assert_eq!(got, model.remove(&(n, m)));
                    }
                }
                prop_assert_eq!(t.len(), model.len());
            }
            for ((n, m), (p, st)) in &model {
                let e = t.get(NetworkId(*n), mac(*m)).unwrap();
                prop_assert_eq!((e.port.0, e.is_static), (*p, *st));
            }
            prop_assert_eq!(t.iter().count(), model.len());
        }
    }
}
