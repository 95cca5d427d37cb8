//! The worker threads' time slice: how long the kernel lets a thread run before another
//! runnable one on its CPU may take over, and so how soon a thread that wakes gets the CPU.
//!
//! A worker wakes for each frame, does a few microseconds of work and sleeps again. Linux's
//! EEVDF scheduler (6.6 and later) gives a waking thread a deadline one slice after it became
//! eligible, and from 6.12 a thread may ask for its own slice (`sched_setattr` with
//! `sched_runtime`, 0.1 ms to 100 ms, no privilege needed). With the default (0.7 ms times
//! 1 + log2(CPUs): 1.4 ms on 2 CPUs), a worker woken while busy threads hold every CPU often waits for one of
//! them to run out its slice; with a short slice its deadline comes first and it runs at
//! once. Its share of the CPU is unchanged (that is the thread's weight, its nice value); only
//! when it runs is. This is the kernel's interface for latency-sensitive threads that need
//! little CPU each time they run, which a relay is.
//!
//! Older kernels take the call and ignore the slice; [`set`] reads it back and says so.

#![allow(unsafe_code)]

use std::io;
use std::time::Duration;

/// The kernel's bounds on a requested slice (`kernel/sched/syscalls.c`).
pub const MIN: Duration = Duration::from_micros(100);
pub const MAX: Duration = Duration::from_millis(100);

/// `struct sched_attr` (`include/uapi/linux/sched/types.h`), its first version (48 bytes)
/// and the utilization clamps of the second (56).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

const SIZE: u32 = std::mem::size_of::<SchedAttr>() as u32;

/// The calling thread's scheduling attributes.
fn get() -> io::Result<SchedAttr> {
    let mut attr = SchedAttr::default();
    // SAFETY: `attr` is a live, writable `struct sched_attr` of `SIZE` bytes, which is what
    // the call is told; pid 0 is the calling thread and flags must be 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &raw mut attr,
            libc::c_ulong::from(SIZE),
            0,
        )
    };
    if r == 0 {
        Ok(attr)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn put(attr: &SchedAttr) -> io::Result<()> {
    // SAFETY: `attr` is a live `struct sched_attr` whose `size` field says how many bytes the
    // kernel may read; pid 0 is the calling thread and flags must be 0.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw const *attr, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's slice as the kernel reports it, if it reports one (Linux 6.12 and
/// later report the slice of every normal thread, their default included).
pub fn current() -> io::Result<Option<Duration>> {
    let attr = get()?;
    Ok((attr.runtime > 0).then(|| Duration::from_nanos(attr.runtime)))
}

/// What [`set`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The thread now runs with this slice.
    Set(Duration),
    /// The thread is not a normal (`SCHED_OTHER` or `SCHED_BATCH`) thread; left alone.
    NotNormal,
    /// The kernel took the request but reports no such slice (before Linux 6.12).
    Unsupported,
}

/// Asks for `slice` (within [`MIN`]..=[`MAX`]) for the calling thread, keeping its policy and
/// nice value.
pub fn set(slice: Duration) -> io::Result<Outcome> {
    let mut attr = get()?;
    let normal = [libc::SCHED_OTHER, libc::SCHED_BATCH]
        .iter()
        .any(|p| u32::try_from(*p) == Ok(attr.policy));
    if !normal {
        return Ok(Outcome::NotNormal);
    }
    let wanted = slice.clamp(MIN, MAX);
    attr.size = SIZE;
    attr.flags = 0;
    attr.runtime = u64::try_from(wanted.as_nanos()).unwrap_or(u64::MAX);
    attr.deadline = 0;
    attr.period = 0;
    put(&attr)?;
    Ok(match current()? {
        Some(now) if now == wanted => Outcome::Set(now),
        _ => Outcome::Unsupported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's version as (major, minor).
    fn kernel() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut parts = release.split(['.', '-']).map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    #[test]
    fn a_thread_gets_the_slice_it_asks_for_and_only_that_thread() {
        let before = current().unwrap();
        let outcome = std::thread::spawn(|| {
            let outcome = set(Duration::from_micros(250)).unwrap();
            (outcome, current().unwrap())
        })
        .join()
        .unwrap();
        if kernel() >= (6, 12) {
            let wanted = Duration::from_micros(250);
            assert_eq!(outcome, (Outcome::Set(wanted), Some(wanted)));
        } else {
            assert_eq!(outcome.0, Outcome::Unsupported);
        }
        // The slice is per thread: the test's own thread kept its own.
        assert_eq!(current().unwrap(), before);
    }

    #[test]
    fn a_slice_out_of_bounds_is_clamped_as_the_kernel_would() {
        if kernel() < (6, 12) {
            return assert_eq!(
                std::thread::spawn(|| set(Duration::ZERO).unwrap())
                    .join()
                    .unwrap(),
                Outcome::Unsupported
            );
        }
        let (short, long) = std::thread::spawn(|| {
            let short = set(Duration::from_nanos(1)).unwrap();
            let long = set(Duration::from_secs(5)).unwrap();
            (short, long)
        })
        .join()
        .unwrap();
        assert_eq!((short, long), (Outcome::Set(MIN), Outcome::Set(MAX)));
    }

    #[test]
    fn the_nice_value_is_kept() {
        let nice = std::thread::spawn(|| {
            // Raising one's own nice value needs no privilege.
            // SAFETY: nice(2) takes an increment and changes only the calling thread (Linux).
            assert_ne!(unsafe { libc::nice(3) }, -1);
            let before = get().unwrap().nice;
            set(Duration::from_micros(500)).unwrap();
            (before, get().unwrap().nice)
        })
        .join()
        .unwrap();
        assert_eq!(nice.0, nice.1);
        assert!(nice.0 >= 3);
    }
}
