//! Scheduling priority of the engine's own threads: the batching threads (one per lane) and the
//! fill helpers, which the card waits on.
//!
//! With dozens of pipelines keeping every core busy, the kernel shares the cores evenly between
//! every runnable thread, so a lane thread waits for a core between its copies and kernel
//! launches while the card idles, and a batch takes longer beside dozens of streams than alone.
//! `NONLOCAL_ENGINE_NICE` (a niceness, -20 to 19) asks the kernel to run these threads at that
//! niceness instead of the process's; a niceness below the process's needs the privilege to
//! raise priorities (CAP_SYS_NICE, root, or an RLIMIT_NICE that allows it), without which the
//! threads keep the process's priority and the engine reports why
//! ([`super::SharedEngine::thread_priority`]; the element logs it).

/// The niceness `NONLOCAL_ENGINE_NICE` asks for, if it is a number.
fn engine_nice() -> Option<i32> {
    nice_from(std::env::var("NONLOCAL_ENGINE_NICE").ok().as_deref())
}

fn nice_from(value: Option<&str>) -> Option<i32> {
    value
        .and_then(|v| v.trim().parse::<i32>().ok())
        .map(|n| n.clamp(-20, 19))
}

/// Run the calling thread at the niceness asked for (nothing when none is): Ok(None) when none
/// is asked for, Ok(Some(n)) once set, Err naming the refusal.
pub(crate) fn prefer_this_thread() -> Result<Option<i32>, String> {
    let Some(nice) = engine_nice() else {
        return Ok(None);
    };
    set_this_thread(nice).map(|()| Some(nice))
}

#[cfg(target_os = "linux")]
fn set_this_thread(nice: i32) -> Result<(), String> {
    // SAFETY: gettid has no preconditions; setpriority with PRIO_PROCESS and a thread id changes
    // only that thread's niceness on Linux.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "NONLOCAL_ENGINE_NICE={nice}: {} (a niceness below the process's needs CAP_SYS_NICE)",
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(not(target_os = "linux"))]
fn set_this_thread(nice: i32) -> Result<(), String> {
    Err(format!(
        "NONLOCAL_ENGINE_NICE={nice}: thread priorities are only set on Linux"
    ))
}

/// The calling thread's niceness.
#[cfg(all(test, target_os = "linux"))]
fn this_thread_nice() -> i32 {
    // SAFETY: as in `set_this_thread`; getpriority's -1 is a valid niceness here (errno unchecked
    // because the call cannot fail for the calling thread).
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn niceness_is_read_and_clamped() {
        assert_eq!(nice_from(None), None);
        assert_eq!(nice_from(Some("-5")), Some(-5));
        assert_eq!(nice_from(Some(" 3 ")), Some(3));
        assert_eq!(nice_from(Some("-99")), Some(-20));
        assert_eq!(nice_from(Some("40")), Some(19));
        assert_eq!(nice_from(Some("high")), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_is_set_alone() {
        let before = this_thread_nice();
        let (set, other) = std::thread::scope(|s| {
            let set = s.spawn(|| set_this_thread(before + 2).map(|()| this_thread_nice()));
            let set = set.join().ok();
            (set, this_thread_nice())
        });
        // A higher niceness (lower priority) is always allowed.
        assert_eq!(set, Some(Ok(before + 2)));
        assert_eq!(other, before, "the calling thread keeps its niceness");
    }
}
