//! What a host still has to tell others: items (encoded membership updates or records), each
//! sent a bounded number of times piggybacked on protocol messages, the least-sent first.
//!
//! A newer item under the same key replaces the older one. The heap holds (sends left, age,
//! key) entries and forgets replaced or finished ones lazily, so filling a message costs
//! O(k log n) for k items taken, whatever the backlog's size.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hash;

use bytes::Bytes;
use rustc_hash::FxHashMap;

struct Item {
    data: Bytes,
    left: u32,
    seq: u64,
}

/// A dissemination backlog keyed by `K`.
pub struct Backlog<K> {
    items: FxHashMap<K, Item>,
    heap: BinaryHeap<(u32, Reverse<u64>, K)>,
    seq: u64,
}

impl<K> Default for Backlog<K> {
    fn default() -> Self {
        Backlog {
            items: FxHashMap::default(),
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

/// Bytes an item costs in a message beyond its own: its length prefix.
pub const ITEM_OVERHEAD: usize = 3;

impl<K: Clone + Eq + Hash + Ord> Backlog<K> {
    /// Queues `data` under `key` to be sent `times` times, replacing what `key` held.
    pub fn push(&mut self, key: K, data: Bytes, times: u32) {
        self.seq += 1;
        let seq = self.seq;
        self.items.insert(key.clone(), Item { data, left: times, seq });
        self.heap.push((times, Reverse(seq), key));
        // Replaced and finished entries linger in the heap; rebuild when they dominate.
        if self.heap.len() > 64 && self.heap.len() > 4 * self.items.len() {
            let live = self.items.iter().map(|(k, it)| (it.left, Reverse(it.seq), k.clone()));
            self.heap = live.collect();
        }
    }

    /// Takes items for one message into `out` while they fit in `budget` bytes (less what
    /// they use), each counted as sent once.
    pub fn fill(&mut self, budget: &mut usize, out: &mut Vec<Bytes>) {
        let mut skipped = Vec::new();
        let mut misses = 0;
        while *budget > ITEM_OVERHEAD {
            let Some((left, Reverse(seq), key)) = self.heap.pop() else {
                break;
            };
            let Some(item) = self.items.get_mut(&key) else { continue };
            if item.seq != seq || item.left != left {
                continue;
            }
            let cost = item.data.len() + ITEM_OVERHEAD;
            if cost > *budget {
                skipped.push((left, Reverse(seq), key));
                // A few misses mean the message is about full.
                misses += 1;
                if misses >= 4 {
                    break;
                }
                continue;
            }
            *budget -= cost;
            out.push(item.data.clone());
            item.left -= 1;
            if item.left == 0 {
                self.items.remove(&key);
            } else {
                // Back in line after this message: one message carries an item once.
                skipped.push((item.left, Reverse(seq), key));
            }
        }
        self.heap.extend(skipped);
        if self.items.is_empty() && self.items.capacity() > 64 {
            // A burst went out: give its room back (every host holds a backlog).
            self.items.shrink_to(16);
            self.heap.clear();
            self.heap.shrink_to(16);
        }
    }

    /// Keeps at most `max` items, dropping those sent most (fewest sends left; among equals,
    /// the last in line):
    /// a burst of updates (thousands of hosts joining) must not grow every host's backlog
    /// without bound; what is dropped has been sent a few times already, and anti-entropy
    /// repairs the rest (Serf's queue depth limit does the same).
    pub fn cap(&mut self, max: usize) {
        if self.items.len() <= max {
            return;
        }
        // Down to three quarters, so the sort is paid once per max/4 pushes.
        let keep = max - max / 4;
        let mut all: Vec<(u32, Reverse<u64>, K)> = self
            .items
            .iter()
            .map(|(k, it)| (it.left, Reverse(it.seq), k.clone()))
            .collect();
        all.sort_unstable_by(|a, b| b.cmp(a));
        for (_, _, k) in all.drain(keep..) {
            self.items.remove(&k);
        }
        self.heap = all.into_iter().collect();
    }

    /// Items still to be sent.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is left to send.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_sent_first_newest_replaces_and_each_is_sent_its_times() {
        let mut b: Backlog<u8> = Backlog::default();
        b.push(1, Bytes::from_static(b"old"), 2);
        b.push(1, Bytes::from_static(b"new"), 2);
        b.push(2, Bytes::from_static(b"two"), 3);
        let mut sent = Vec::new();
        loop {
            let mut budget = 100;
            let mut out = Vec::new();
            b.fill(&mut budget, &mut out);
            if out.is_empty() {
                break;
            }
            sent.push(out);
        }
        // Key 2 has more sends left, so it goes first; "old" is never sent.
        assert_eq!(sent[0], [Bytes::from_static(b"two"), Bytes::from_static(b"new")]);
        let all: Vec<Bytes> = sent.concat();
        assert_eq!(all.iter().filter(|d| d.as_ref() == b"new").count(), 2);
        assert_eq!(all.iter().filter(|d| d.as_ref() == b"two").count(), 3);
        assert!(all.iter().all(|d| d.as_ref() != b"old"));
        assert!(b.is_empty());
    }

    #[test]
    fn a_capped_backlog_drops_the_most_sent() {
        let mut b: Backlog<u8> = Backlog::default();
        for k in 0..8u8 {
            b.push(k, Bytes::from(vec![k]), 2 + u32::from(k % 2));
        }
        b.cap(8);
        assert_eq!(b.len(), 8, "under the cap: nothing dropped");
        b.cap(4);
        assert_eq!(b.len(), 3, "down to three quarters of the cap");
        let mut out = Vec::new();
        let mut budget = 100;
        b.fill(&mut budget, &mut out);
        // The kept ones had the most sends left (odd keys: 3); among equals, the order in
        // which they are sent (oldest first) decides.
        let kept: Vec<u8> = out.iter().map(|d| d[0]).collect();
        assert_eq!(kept, [1, 3, 5]);
    }

    #[test]
    fn a_message_takes_what_fits() {
        let mut b: Backlog<u8> = Backlog::default();
        b.push(1, Bytes::from(vec![0; 50]), 1);
        b.push(2, Bytes::from(vec![0; 10]), 1);
        let mut budget = 30;
        let mut out = Vec::new();
        b.fill(&mut budget, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 10);
        assert_eq!(budget, 30 - 10 - ITEM_OVERHEAD);
        assert_eq!(b.len(), 1, "the large one waits for a roomier message");
    }
}
