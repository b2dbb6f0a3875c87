//! What `[tuning]` means on this machine: which CPUs the shards go on, and how much locked
//! memory their io_uring rings need.
//!
//! This is the only part of `config` that reads the machine (the process's CPU affinity mask),
//! and it does so only when asked: [`TuningConfig::shard_cpus`] at start-up and in
//! `check-config`. glommio's `CpuSet::online()` ignores `taskset` and cgroup cpusets, so the
//! mask comes from `sched_getaffinity` here instead.

use std::fmt;
use std::io;
use std::num::NonZeroUsize;

use super::{ConfigError, TuningConfig};

/// Most shards a config may ask for (`tuning.shards`).
pub const MAX_SHARDS: usize = crate::topic::MAX_SHARDS;

/// glommio refuses to start an executor when the RLIMIT_MEMLOCK soft limit is below this,
/// whatever the executor would really lock (`Reactor::new`, glommio 0.9.0).
pub const GLOMMIO_MIN_MEMLOCK_BYTES: u64 = 512 * 1024;

/// Every executor creates three io_uring rings: main, latency and poll.
const RINGS_PER_SHARD: u64 = 3;
/// The kernel pins and charges memory in whole pages.
const PAGE_BYTES: u64 = 4096;
/// A submission queue entry.
const SQE_BYTES: u64 = 64;
/// A completion queue entry; the kernel makes the completion queue twice the ring depth.
const CQE_BYTES: u64 = 16;
/// The submission queue's index array, per entry.
const SQ_INDEX_BYTES: u64 = 4;
/// Head, tail, masks and flags of both queues (`struct io_rings`), rounded up.
const RING_HEADER_BYTES: u64 = 512;

/// A CPU a shard can be pinned to: an id below `CPU_SETSIZE`, so it fits a `cpu_set_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CpuId(usize);

impl CpuId {
    /// CPU ids are below this (`CPU_SETSIZE`, 1024 on Linux).
    pub const MAX_EXCLUSIVE: usize = libc::CPU_SETSIZE as usize;

    /// Makes a CPU id; `None` at or above [`CpuId::MAX_EXCLUSIVE`].
    pub fn new(id: usize) -> Option<Self> {
        (id < Self::MAX_EXCLUSIVE).then_some(Self(id))
    }

    /// The id, as `glommio::Placement::Fixed` takes it.
    pub fn get(self) -> usize {
        self.0
    }

    /// A list such as `0-3, 6, 8-9` for messages.
    pub fn list(cpus: &[CpuId]) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut index = 0;
        while index < cpus.len() {
            let start = cpus[index].0;
            let mut end = start;
            while index + 1 < cpus.len() && cpus[index + 1].0 == end + 1 {
                index += 1;
                end += 1;
            }
            parts.push(if end > start {
                format!("{start}-{end}")
            } else {
                start.to_string()
            });
            index += 1;
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

impl fmt::Display for CpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The CPUs this process may run on, in increasing order: its affinity mask as `taskset`,
/// cgroup cpusets and systemd's `CPUAffinity=` left it.
pub fn available_cpus() -> io::Result<Vec<CpuId>> {
    // SAFETY: `cpu_set_t` is a plain bit array, for which all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the size and the pointer describe `set`, which
    // outlives the call. Called before any shard thread exists, the calling thread's mask is
    // the process's.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..CpuId::MAX_EXCLUSIVE)
        // SAFETY: `cpu` is below CPU_SETSIZE, the number of bits in `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .map(CpuId)
        .collect())
}

impl TuningConfig {
    /// The CPU of each shard, in shard order, checked against this process's affinity mask.
    pub fn shard_cpus(&self) -> Result<Vec<CpuId>, ConfigError> {
        let available = available_cpus().map_err(ConfigError::Affinity)?;
        self.shard_cpus_within(&available)
    }

    /// The CPU of each shard when the process may run on `available`: `tuning.cpus` (or
    /// `available` when it is empty), cut to `tuning.shards` when that is set.
    pub fn shard_cpus_within(&self, available: &[CpuId]) -> Result<Vec<CpuId>, ConfigError> {
        let mut pool = if self.cpus.is_empty() {
            available.to_vec()
        } else {
            if let Some(cpu) = self.cpus.iter().find(|cpu| !available.contains(cpu)) {
                return Err(ConfigError::invalid(
                    "tuning.cpus",
                    format!(
                        "CPU {cpu} is not in this process's CPU affinity mask ({}); taskset, \
                         cgroup cpusets and systemd's CPUAffinity= decide which CPUs the broker \
                         may use",
                        CpuId::list(available)
                    ),
                ));
            }
            self.cpus.clone()
        };
        let shards = self.shards.map_or(pool.len(), NonZeroUsize::get);
        if shards > pool.len() {
            // Validation already refuses more shards than a non-empty `cpus` list, so the pool
            // here is the affinity mask.
            return Err(ConfigError::invalid(
                "tuning.shards",
                format!(
                    "{shards} shards need {shards} CPUs, but this process may run on {} ({}): \
                     a shard is pinned to a CPU of its own",
                    pool.len(),
                    CpuId::list(&pool)
                ),
            ));
        }
        pool.truncate(shards.min(MAX_SHARDS));
        Ok(pool)
    }
}

/// An upper estimate of the memory `shards` executors lock, in bytes: what RLIMIT_MEMLOCK must
/// allow when the broker runs without CAP_IPC_LOCK.
///
/// Per shard, for each of its three io_uring rings:
/// - the submission queue entries: `ring_depth` × 64 bytes, in whole pages;
/// - the ring mapping: `ring_depth` × 4 bytes of submission index, 2 × `ring_depth` × 16
///   bytes of completion queue and a header, in whole pages;
/// - `io_memory_bytes`, which glommio registers with every ring, and the kernel charges once
///   per registration.
///
/// Measured on kernel 6.18 without CAP_IPC_LOCK: `io_uring_setup` itself fails with ENOMEM
/// under a tight limit, so the rings are counted here too; the registered `io_memory` is
/// charged everywhere. The result is never below
/// [`GLOMMIO_MIN_MEMLOCK_BYTES`], glommio's own floor. With the defaults (depth 256, 128 KiB)
/// a shard needs about 468 KiB.
pub fn required_locked_memory_bytes(tuning: &TuningConfig, shards: usize) -> u64 {
    let depth = tuning.ring_depth as u64;
    let sqes = page_align(depth * SQE_BYTES);
    let ring = page_align(depth * SQ_INDEX_BYTES + 2 * depth * CQE_BYTES + RING_HEADER_BYTES);
    let io_memory = page_align(tuning.io_memory_bytes as u64);
    let per_shard = RINGS_PER_SHARD * (sqes + ring + io_memory);
    (per_shard * shards as u64).max(GLOMMIO_MIN_MEMLOCK_BYTES)
}

fn page_align(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_BYTES) * PAGE_BYTES
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::Config;

    fn cpus(ids: &[usize]) -> Vec<CpuId> {
        ids.iter().map(|&id| CpuId::new(id).unwrap()).collect()
    }

    fn tuning(text: &str) -> TuningConfig {
        format!("[tuning]\n{text}")
            .parse::<Config>()
            .unwrap()
            .tuning
    }

    #[test]
    fn auto_is_one_shard_per_cpu_of_the_mask() {
        let placed = tuning("").shard_cpus_within(&cpus(&[2, 3, 5])).unwrap();
        assert_eq!(placed, cpus(&[2, 3, 5]));
    }

    #[test]
    fn a_shard_count_takes_the_first_cpus() {
        let placed = tuning("shards = 2")
            .shard_cpus_within(&cpus(&[2, 3, 5]))
            .unwrap();
        assert_eq!(placed, cpus(&[2, 3]));
        let placed = tuning("shards = 1\ncpus = [5, 3]")
            .shard_cpus_within(&cpus(&[2, 3, 5]))
            .unwrap();
        assert_eq!(placed, cpus(&[5]));
    }

    #[test]
    fn listed_cpus_keep_their_order() {
        let placed = tuning("cpus = [5, 2]")
            .shard_cpus_within(&cpus(&[2, 3, 5]))
            .unwrap();
        assert_eq!(placed, cpus(&[5, 2]));
    }

    #[test]
    fn more_shards_than_the_mask_is_an_error_naming_both() {
        let err = tuning("shards = 4")
            .shard_cpus_within(&cpus(&[0, 1]))
            .unwrap_err();
        assert_eq!(err.key(), Some("tuning.shards"));
        let text = err.to_string();
        assert!(text.contains("4 shards need 4 CPUs"), "{text}");
        assert!(text.contains("may run on 2 (0-1)"), "{text}");
    }

    #[test]
    fn a_cpu_outside_the_mask_is_an_error() {
        let err = tuning("cpus = [0, 7]")
            .shard_cpus_within(&cpus(&[0, 1]))
            .unwrap_err();
        assert_eq!(err.key(), Some("tuning.cpus"));
        assert!(err.to_string().contains("CPU 7 is not in"), "{err}");
    }

    #[test]
    fn this_process_has_cpus() {
        let available = available_cpus().unwrap();
        assert!(!available.is_empty());
        assert!(available.windows(2).all(|w| w[0] < w[1]));
        let placed = Config::default().tuning.shard_cpus().unwrap();
        assert_eq!(placed, available);
    }

    #[test]
    fn cpu_lists_read_as_ranges() {
        assert_eq!(CpuId::list(&cpus(&[0, 1, 2, 3, 6, 8, 9])), "0-3, 6, 8-9");
        assert_eq!(CpuId::list(&cpus(&[4])), "4");
        assert_eq!(CpuId::list(&[]), "none");
        assert!(CpuId::new(CpuId::MAX_EXCLUSIVE).is_none());
    }

    #[test]
    fn locked_memory_estimate() {
        let defaults = Config::default().tuning;
        // 3 rings × (16 KiB of entries + 12 KiB of ring + 128 KiB of io memory) per shard.
        assert_eq!(
            required_locked_memory_bytes(&defaults, 2),
            2 * 3 * 156 * 1024
        );
        assert_eq!(
            required_locked_memory_bytes(&defaults, 4),
            4 * 3 * 156 * 1024
        );
        // One shard (468 KiB) is below glommio's floor.
        assert_eq!(
            required_locked_memory_bytes(&defaults, 1),
            GLOMMIO_MIN_MEMLOCK_BYTES
        );
        // glommio's floor applies even to tiny configs.
        let small = tuning("ring_depth = 8\nio_memory_bytes = 65536");
        assert_eq!(
            required_locked_memory_bytes(&small, 1),
            GLOMMIO_MIN_MEMLOCK_BYTES
        );
        // glommio's own default (10 MiB of io memory) on 8 shards: about 240 MiB.
        let big = tuning("io_memory_bytes = 10485760");
        assert!(required_locked_memory_bytes(&big, 8) > 8 * 3 * 10 * 1024 * 1024);
    }
}
