//! Scoring batches of flows with every model, the detector's costliest step.
//!
//! With overlapping windows (300 s every 150 s) a flow whose packets all fall in the overlap is
//! recorded, identically, in both windows; on real traffic that is close to half the records. So
//! scores are cached by exact feature rows: a record that can come again (it started after the
//! next window's start) keeps its scores, a record that can have come before (it ended before the
//! previous window's end) looks its rows up. The key is the rows' exact bits for every schema the
//! models use, so a hit gives exactly what scoring would. Storage is fixed at start-up: one arena
//! per concurrently open window, emptied when no later window can need it; a full arena stores no
//! more (counted).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::engine::WindowInfo;
use crate::features::Schema;
use crate::host::MAX_MODELS;
use crate::model::Model;

/// Flows scored together.
pub const BATCH: usize = 1024;

/// What the cache may do with one flow's rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reuse {
    /// The record can have been scored in the previous window: look it up.
    pub lookup: bool,
    /// The record can come again in a later window: keep its scores.
    pub keep: bool,
}

impl Reuse {
    /// For a record of `window` spanning `start_ns..=last_ns`: the engine says where the
    /// windows before and after it overlap this one ([`WindowInfo`]).
    pub fn of(window: &WindowInfo, start_ns: u64, last_ns: u64) -> Reuse {
        Reuse {
            // The first window has none before it to have scored the record.
            lookup: window.prev_end_ns.is_some_and(|end| last_ns < end),
            keep: window.next_start_ns.is_some_and(|start| start_ns >= start),
        }
    }
}

/// One batch on its way through scoring.
pub struct Batch<T> {
    /// What the detector keeps of each flow.
    pub flows: Vec<T>,
    /// Each flow's window slot ([`WindowInfo::slot`]) and what the cache may do with it.
    pub reuse: Vec<(usize, Reuse)>,
    /// Feature rows per schema (the detector's schema order).
    pub rows: Vec<Vec<f32>>,
    /// Once scored: `botnet[flow * MAX_MODELS + model]`.
    pub botnet: Vec<bool>,
    pub flows_botnet: [u64; MAX_MODELS],
    pub score_errors: u64,
    pub cache_hits: u64,
    pub cache_full: u64,
}

impl<T> Batch<T> {
    pub fn new(schemas: &[&'static Schema]) -> Batch<T> {
        Batch {
            flows: Vec::with_capacity(BATCH),
            reuse: Vec::with_capacity(BATCH),
            rows: schemas
                .iter()
                .map(|s| Vec::with_capacity(BATCH * s.len()))
                .collect(),
            botnet: vec![false; BATCH * MAX_MODELS],
            flows_botnet: [0; MAX_MODELS],
            score_errors: 0,
            cache_hits: 0,
            cache_full: 0,
        }
    }

    /// A batch with no buffers (a placeholder while one is taken out).
    pub fn empty() -> Batch<T> {
        Batch {
            flows: Vec::new(),
            reuse: Vec::new(),
            rows: Vec::new(),
            botnet: Vec::new(),
            flows_botnet: [0; MAX_MODELS],
            score_errors: 0,
            cache_hits: 0,
            cache_full: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.flows.len() >= BATCH
    }

    /// Empties the batch for reuse (its buffers stay).
    pub fn clear(&mut self) {
        self.flows.clear();
        self.reuse.clear();
        for r in &mut self.rows {
            r.clear();
        }
        self.flows_botnet = [0; MAX_MODELS];
        self.score_errors = 0;
        self.cache_hits = 0;
        self.cache_full = 0;
    }
}

/// The scores of records that may come again, for one window's records.
struct Arena {
    index: HashTable<u32>,
    /// Keys (row bits of every schema), `key_len` each.
    keys: Vec<u32>,
    /// Scores, `n_models` each.
    probs: Vec<f32>,
    capacity: usize,
}

struct RowCache {
    arenas: Vec<Arena>,
    key_len: usize,
    n_models: usize,
    hasher: DefaultHashBuilder,
}

impl RowCache {
    fn new(arenas: usize, capacity: usize, key_len: usize, n_models: usize) -> RowCache {
        RowCache {
            arenas: (0..arenas)
                .map(|_| Arena {
                    index: HashTable::with_capacity(capacity),
                    keys: Vec::with_capacity(capacity * key_len),
                    probs: Vec::with_capacity(capacity * n_models),
                    capacity,
                })
                .collect(),
            key_len,
            n_models,
            hasher: DefaultHashBuilder::default(),
        }
    }

    fn key_at(keys: &[u32], key_len: usize, i: u32) -> &[u32] {
        let start = i as usize * key_len;
        keys.get(start..start + key_len).unwrap_or(&[])
    }

    /// The scores kept for this key, in any arena.
    fn get(&self, key: &[u32]) -> Option<&[f32]> {
        let hash = self.hasher.hash_one(key);
        let (kl, nm) = (self.key_len, self.n_models);
        self.arenas.iter().find_map(|a| {
            let &i = a
                .index
                .find(hash, |&i| RowCache::key_at(&a.keys, kl, i) == key)?;
            let start = i as usize * nm;
            a.probs.get(start..start + nm)
        })
    }

    /// Keeps scores for a record of the window in engine slot `slot`; false when its arena is
    /// full.
    fn put(&mut self, slot: usize, key: &[u32], probs: &[f32]) -> bool {
        let hash = self.hasher.hash_one(key);
        let kl = self.key_len;
        let Some(a) = self.arenas.get_mut(slot) else {
            return false;
        };
        if a.index.len() >= a.capacity {
            return false;
        }
        if a.index
            .find(hash, |&i| RowCache::key_at(&a.keys, kl, i) == key)
            .is_some()
        {
            return true;
        }
        let i = a.index.len() as u32;
        a.keys.extend_from_slice(key);
        a.probs.extend_from_slice(probs);
        let hasher = &self.hasher;
        let keys = &a.keys;
        a.index
            .insert_unique(hash, i, |&j| hasher.hash_one(RowCache::key_at(keys, kl, j)));
        true
    }

    /// Window `closed` is done: the arena no later window can need is emptied. It is the arena
    /// of the slot that closes next, which still holds the records of the window `arenas - 1`
    /// before `closed` (they could come again up to here); the window that slot holds now
    /// keeps nothing before `closed` ends (a record is kept from the next window's start).
    fn window_done(&mut self, closed: &WindowInfo) {
        let n = self.arenas.len().max(1);
        if let Some(a) = self.arenas.get_mut((closed.slot + 1) % n) {
            a.index.clear();
            a.keys.clear();
            a.probs.clear();
        }
    }
}

/// Scores batches with every model (the first [`MAX_MODELS`]).
pub struct Scoring {
    models: Arc<Vec<Model>>,
    model_schema: Vec<usize>,
    schema_lens: Vec<usize>,
    /// Per flow of a batch, `n_models` scores.
    probs: Vec<f32>,
    /// Per model, the scores of the rows scored (not from the cache).
    scored: Vec<f32>,
    /// Rows of the flows that missed the cache, per schema; and which flows they are.
    miss_rows: Vec<Vec<f32>>,
    misses: Vec<u32>,
    key: Vec<u32>,
    cache: Option<RowCache>,
}

impl Scoring {
    pub fn new(
        models: Arc<Vec<Model>>,
        schemas: &[&'static Schema],
        model_schema: Vec<usize>,
    ) -> Scoring {
        let n_models = models.len().min(MAX_MODELS);
        let key_len = schemas.iter().map(|s| s.len()).sum();
        Scoring {
            models,
            model_schema,
            schema_lens: schemas.iter().map(|s| s.len()).collect(),
            probs: vec![0.0; BATCH * n_models.max(1)],
            scored: vec![0.0; BATCH],
            miss_rows: schemas
                .iter()
                .map(|s| Vec::with_capacity(BATCH * s.len()))
                .collect(),
            misses: Vec::with_capacity(BATCH),
            key: Vec::with_capacity(key_len),
            cache: None,
        }
    }

    /// Keeps the scores of records that can come again in a later window: at most `capacity`
    /// per window, `arenas` of them: one per engine slot (the windows open at once, as the engine
    /// keeps them). Nothing to do without overlapping windows.
    pub fn with_cache(mut self, arenas: usize, capacity: usize) -> Scoring {
        if arenas > 1 && capacity > 0 {
            let key_len = self.schema_lens.iter().sum();
            let n_models = self.models.len().min(MAX_MODELS);
            self.cache = Some(RowCache::new(arenas, capacity, key_len, n_models));
        }
        self
    }

    fn n_models(&self) -> usize {
        self.models.len().min(MAX_MODELS)
    }

    /// Flow `i`'s key: its rows' bits, schema after schema.
    fn make_key(key: &mut Vec<u32>, rows: &[Vec<f32>], lens: &[usize], i: usize) {
        key.clear();
        for (r, &len) in rows.iter().zip(lens) {
            let start = i * len;
            if let Some(row) = r.get(start..start + len) {
                key.extend(row.iter().map(|v| v.to_bits()));
            }
        }
    }

    /// Scores every flow of the batch with every model and fills its verdicts.
    pub fn score<T>(&mut self, batch: &mut Batch<T>) {
        let n = batch.len();
        let nm = self.n_models();
        // 1. Flows whose rows were scored in the previous window take those scores.
        self.misses.clear();
        for i in 0..n {
            let hit = match (&self.cache, batch.reuse.get(i)) {
                (Some(cache), Some((_, r))) if r.lookup => {
                    Scoring::make_key(&mut self.key, &batch.rows, &self.schema_lens, i);
                    match (
                        cache.get(&self.key),
                        self.probs.get_mut(i * nm..(i + 1) * nm),
                    ) {
                        (Some(kept), Some(dst)) if kept.len() == dst.len() => {
                            dst.copy_from_slice(kept);
                            true
                        }
                        _ => false,
                    }
                }
                _ => false,
            };
            if hit {
                batch.cache_hits += 1;
            } else {
                self.misses.push(i as u32);
            }
        }
        // 2. The others are scored: in place when nothing hit, else their rows gathered first.
        let all_missed = self.misses.len() == n;
        if !all_missed {
            for ((dst, src), &len) in self
                .miss_rows
                .iter_mut()
                .zip(&batch.rows)
                .zip(&self.schema_lens)
            {
                dst.clear();
                for &i in &self.misses {
                    let start = i as usize * len;
                    if let Some(row) = src.get(start..start + len) {
                        dst.extend_from_slice(row);
                    }
                }
            }
        }
        let mut failed = false;
        let n_miss = self.misses.len();
        for (m, model) in self.models.iter().take(nm).enumerate() {
            if n_miss == 0 {
                break;
            }
            let s = self.model_schema.get(m).copied().unwrap_or(0);
            let rows = if all_missed {
                batch.rows.get(s)
            } else {
                self.miss_rows.get(s)
            };
            let (Some(rows), Some(out)) = (rows, self.scored.get_mut(..n_miss)) else {
                continue;
            };
            // Only the verdicts (>= threshold) are used: scoring may stop at a certain side.
            if model.decide(rows, out).is_err() {
                batch.score_errors += 1;
                failed = true;
                // NaN is on neither side of any threshold: no verdict (0.0 would be "botnet"
                // for a model whose threshold is 0).
                out.fill(f32::NAN);
            }
            for (&i, &p) in self.misses.iter().zip(out.iter()) {
                if let Some(dst) = self.probs.get_mut(i as usize * nm + m) {
                    *dst = p;
                }
            }
        }
        // 3. Records that can come again keep their scores (not after a failed model).
        if let Some(cache) = self.cache.as_mut().filter(|_| !failed) {
            for &i in &self.misses {
                let i = i as usize;
                let Some(&(slot, r)) = batch.reuse.get(i) else {
                    continue;
                };
                if !r.keep {
                    continue;
                }
                Scoring::make_key(&mut self.key, &batch.rows, &self.schema_lens, i);
                let probs = self.probs.get(i * nm..(i + 1) * nm).unwrap_or(&[]);
                if !cache.put(slot, &self.key, probs) {
                    batch.cache_full += 1;
                }
            }
        }
        // 4. Verdicts.
        for i in 0..n {
            for (m, model) in self.models.iter().take(nm).enumerate() {
                let hit = self
                    .probs
                    .get(i * nm + m)
                    .is_some_and(|&p| p >= model.threshold);
                if let Some(b) = batch.botnet.get_mut(i * MAX_MODELS + m) {
                    *b = hit;
                }
                if hit && let Some(c) = batch.flows_botnet.get_mut(m) {
                    *c += 1;
                }
            }
        }
    }

    /// Window `closed` is scored: the cache lets go of what no later window needs.
    pub fn window_done(&mut self, closed: &WindowInfo) {
        if let Some(c) = self.cache.as_mut() {
            c.window_done(closed);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    /// Window `index` of 300 s windows every 150 s, as the engine hands it out.
    fn window(index: u64, start: u64) -> WindowInfo {
        WindowInfo {
            index,
            start_ns: start,
            end_ns: start + 300 * SEC,
            slot: (index & 1) as usize,
            prev_end_ns: (index >= 1).then_some(start + 150 * SEC),
            next_start_ns: Some(start + 150 * SEC),
        }
    }

    /// The first window has no window before it: nothing to look up, however late (in epoch
    /// time) it starts. Later windows look up records that fit in their overlap with the one
    /// before.
    #[test]
    fn only_windows_after_the_first_look_up() {
        let start = 1_700_000_000 * SEC;
        let first = Reuse::of(&window(0, start), start + SEC, start + 2 * SEC);
        assert!(!first.lookup, "window 0 has no previous window: {first:?}");
        let second = Reuse::of(&window(1, start), start + SEC, start + 2 * SEC);
        assert!(second.lookup, "{second:?}");
        // A record that runs past the overlap cannot have been recorded whole before.
        let long = Reuse::of(&window(1, start), start + SEC, start + 151 * SEC);
        assert!(!long.lookup, "{long:?}");
        assert!(Reuse::of(&window(1, start), start + 150 * SEC, start + 160 * SEC).keep);
        let apart = WindowInfo {
            prev_end_ns: None,
            next_start_ns: None,
            ..window(3, start)
        };
        assert_eq!(Reuse::of(&apart, start, start), Reuse::default());
    }

    /// A model that cannot score gives no verdict, even at threshold 0 (where a 0.0 written in
    /// its place would count as botnet). The model is the fuzzers' tree ensemble whose leaf
    /// indices run past its arrays: it loads, and tract refuses to run it.
    #[test]
    fn a_failed_model_flags_nothing() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz_regressions/model_onnx/tract-tree-leaf-out-of-range.onnx");
        let mut model = Model::load(&path).expect("the regression model loads");
        model.threshold = 0.0;
        let schema = model.schema;
        let mut probe = vec![0f32; 2];
        assert!(
            model
                .decide(&vec![0.5; 2 * schema.len()], &mut probe)
                .is_err(),
            "the model must fail to score for this test to mean anything"
        );
        let mut scoring = Scoring::new(Arc::new(vec![model]), &[schema], vec![0]);
        let mut batch: Batch<()> = Batch::new(&[schema]);
        for _ in 0..4 {
            batch.flows.push(());
            batch.reuse.push((0, Reuse::default()));
            batch.rows[0].extend(std::iter::repeat_n(0.5f32, schema.len()));
        }
        scoring.score(&mut batch);
        assert_eq!(batch.score_errors, 1);
        assert_eq!(batch.flows_botnet[0], 0, "a failed model voted botnet");
        assert!(batch.botnet.iter().all(|&b| !b));
    }
}
