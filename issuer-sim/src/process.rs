//! Process settings the simulators share (issuer-sim and loadgen's binaries).

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`).
///
/// mimalloc asks for huge pages on its arenas (`madvise(MADV_HUGEPAGE)`), so the first touch
/// of each fresh 2 MiB of heap zeroes all of it inside one page fault. On the project's VM
/// that fault takes 2-4 ms, and a single-threaded simulator stalls for all of it: at the
/// start of a run loadgen touched ~26 MiB this way and sent its first second up to 80 ms
/// late against its schedule, which its latency counts (docs/performance.md, session 13).
/// With 4 KiB pages the same memory costs as much in all but comes a page at a time. A
/// simulator's heap is small (tens of MiB), so the TLB gains nothing from huge pages here.
///
/// # Errors
/// The system call's error (a kernel without the option); callers log it and go on.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_process_reports_huge_pages_off_once_disabled() -> std::io::Result<()> {
        super::disable_transparent_huge_pages()?;
        assert!(rustix::thread::transparent_huge_pages_are_disabled()?);
        Ok(())
    }
}
