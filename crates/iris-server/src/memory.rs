//! Simulated model memory: bytes held per in-flight prediction request.
//!
//! The CPU cost ([`crate::cost`]) makes a pod feel CPU pressure; this knob makes it
//! feel memory pressure, the way a model that buffers its inputs and activations per
//! request does. Each request holds a buffer of the configured size, every page of it
//! written (untouched pages of an allocation are not resident and count nowhere; one
//! non-zero byte per page is enough, and costs little CPU), and
//! frees it when the request ends, so a pod's working set grows with its in-flight
//! requests. An optional hold time keeps the buffer (and the request) for a while
//! without spending CPU, like a request waiting on a downstream call: with it, a light
//! CPU load can still hold a lot of memory.
//!
//! Bounds: one request holds at most [`MAX_PER_REQUEST_MIB`] (the flag refuses more)
//! and all requests together at most [`MAX_HELD_BYTES`]; a request that would go past
//! the total holds nothing and says so, so a misconfigured knob under heavy load
//! cannot exhaust the machine (a container's memory limit, when set, bounds it
//! earlier: the kernel OOM-kills the container, as for a real model).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest accepted `--memory-cost-mib`.
pub const MAX_PER_REQUEST_MIB: f64 = 1024.0;
/// Most bytes all in-flight requests hold together (4 GiB).
pub const MAX_HELD_BYTES: u64 = 4 << 30;

/// Allocations above glibc's largest dynamic mmap threshold (`DEFAULT_MMAP_THRESHOLD_MAX`,
/// 32 MiB on 64-bit) are always served by `mmap` and returned by `munmap` on free. A
/// smaller buffer would, after the first free, come from the heap, whose freed pages
/// glibc may keep: the working set would not fall when requests end. So every buffer
/// reserves at least this much address space (untouched, so not resident) and writes
/// only the configured bytes.
const MIN_CAPACITY: usize = (32 << 20) + 4096;

/// Stride of the page-touching loop. Writing one byte per 4 KiB makes every page
/// resident whatever the page size (larger pages are touched several times).
const PAGE: usize = 4096;

/// The process-wide count of held bytes, shared by every request.
#[derive(Debug, Clone, Default)]
pub struct MemoryBudget {
    held: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

impl MemoryBudget {
    /// Bytes held right now by in-flight requests.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// Requests that held nothing because the budget was spent, since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Acquire)
    }

    /// Allocates and touches `bytes` for one request, or returns `None` when that would
    /// take all requests past [`MAX_HELD_BYTES`].
    pub fn hold(&self, bytes: u64) -> Option<Ballast> {
        let reserved = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&sum| sum <= MAX_HELD_BYTES)
            })
            .is_ok();
        if !reserved {
            self.refused.fetch_add(1, Ordering::AcqRel);
            return None;
        }
        let len = usize::try_from(bytes).unwrap_or(usize::MAX);
        // Zeroed allocation (calloc): fresh mmap pages are zero already, so nothing is
        // touched yet, and it costs no CPU per byte even in a debug build (a fill loop
        // would cost ~15 ms per 4 MiB there, enough to make CPU drive the scale).
        let mut buffer: Vec<u8> = vec![0; len.max(MIN_CAPACITY)];
        buffer.truncate(len);
        // One non-zero byte per page: every page gets written, so it is resident and
        // charged to the cgroup (a page only read would map the shared zero page and
        // count nowhere).
        for page in buffer.iter_mut().step_by(PAGE) {
            *page = black_box(0xA5);
        }
        black_box(&buffer);
        Some(Ballast {
            buffer,
            bytes,
            budget: self.clone(),
        })
    }
}

/// One request's held memory; freed (and given back to the budget) on drop.
#[derive(Debug)]
pub struct Ballast {
    buffer: Vec<u8>,
    bytes: u64,
    budget: MemoryBudget,
}

impl Ballast {
    /// Bytes held.
    pub fn len(&self) -> usize {
        self.buffer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }
}

impl Drop for Ballast {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// `VmRSS` of this process, in bytes (for tests and logs).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RSS checks see the whole process: the tests that move it take turns.
    static RSS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn held_memory_is_resident_until_dropped() {
        let _rss = RSS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let budget = MemoryBudget::default();
        let bytes = 64 << 20;
        let before = resident_bytes().unwrap();
        let ballast = budget.hold(bytes).unwrap();
        let during = resident_bytes().unwrap();
        assert_eq!(ballast.len() as u64, bytes);
        assert_eq!(budget.held(), bytes);
        // Other test threads allocate too (a few MiB at most); a 64 MiB step dwarfs them.
        assert!(
            during >= before + bytes * 3 / 4,
            "RSS {before} -> {during} holding {bytes}"
        );
        drop(ballast);
        let after = resident_bytes().unwrap();
        assert_eq!(budget.held(), 0);
        assert!(
            after + bytes * 3 / 4 <= during,
            "RSS {during} -> {after} after freeing {bytes}"
        );
    }

    #[test]
    fn small_buffers_are_given_back_too() {
        // Below glibc's mmap threshold a freed buffer could stay in the heap; the
        // reserved capacity keeps every buffer on mmap (see MIN_CAPACITY).
        let _rss = RSS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let budget = MemoryBudget::default();
        let bytes = 8 << 20;
        for _ in 0..3 {
            let before = resident_bytes().unwrap();
            let ballast = budget.hold(bytes).unwrap();
            let during = resident_bytes().unwrap();
            drop(ballast);
            let after = resident_bytes().unwrap();
            assert!(during >= before + bytes * 3 / 4, "{before} -> {during}");
            assert!(after + bytes * 3 / 4 <= during, "{during} -> {after}");
        }
    }

    #[test]
    fn the_total_is_bounded() {
        let budget = MemoryBudget::default();
        budget.held.store(MAX_HELD_BYTES - 10, Ordering::Release);
        assert!(budget.hold(11).is_none());
        let ballast = budget.hold(10).unwrap();
        assert_eq!(budget.held(), MAX_HELD_BYTES);
        drop(ballast);
        assert_eq!(budget.held(), MAX_HELD_BYTES - 10);
        assert!(budget.hold(u64::MAX).is_none());
        assert_eq!(
            budget.refused(),
            2,
            "each refusal is counted (the log thins out on it)"
        );
    }
}
