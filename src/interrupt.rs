//! Ctrl-C (SIGINT) during a run that changes nodes.
//!
//! The first SIGINT sets a flag: no new task, handler or host starts after it
//! (the runner checks [`interrupted`] before each one), the scripts already
//! running on nodes finish, the recap so far is printed, and labctl exits with
//! [`EXIT_CODE`] (130, as shells report a SIGINT). A second SIGINT stops labctl at
//! once, and the nodes stop what it started there: a script cut off in sending
//! never starts (the transport wraps every script in one compound command that
//! `sh` reads whole before running it), and one already running is stopped by
//! the node's root shell watchdog once the SSH connection is gone (see
//! `transport::ssh`). Managed files are written to a temp file (removed when
//! the write is stopped) and renamed, so they are always either old or new.
//!
//! Host worker threads block SIGINT ([`block_in_this_thread`]) so the signal lands
//! on the main thread and never interrupts a blocking SSH read.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The first SIGINT ends a server (the dashboard) rather than a run of tasks.
static SERVER: AtomicBool = AtomicBool::new(false);

/// The exit code of an interrupted run.
pub const EXIT_CODE: i32 = 130;

const FIRST: &[u8] = b"\nlabctl: interrupted: no new task starts; waiting for the running ones (Ctrl-C again to stop at once)\n";
const FIRST_SERVER: &[u8] = b"\nlabctl: interrupted: stopping\n";
const SECOND: &[u8] = b"\nlabctl: interrupted again: stopping now\n";

extern "C" fn on_sigint(_sig: libc::c_int) {
    // only async-signal-safe calls here: an atomic swap, write(2), _exit(2)
    let again = INTERRUPTED.swap(true, Ordering::SeqCst);
    let msg = match (again, SERVER.load(Ordering::SeqCst)) {
        (true, _) => SECOND,
        (false, true) => FIRST_SERVER,
        (false, false) => FIRST,
    };
    // SAFETY: write(2) and _exit(2) are async-signal-safe; `msg` is a static buffer.
    unsafe {
        libc::write(libc::STDERR_FILENO, msg.as_ptr().cast(), msg.len());
        if again {
            libc::_exit(EXIT_CODE);
        }
    }
}

/// Install the SIGINT handler (idempotent). Interrupted system calls restart.
pub fn install() -> anyhow::Result<()> {
    // SAFETY: a zeroed sigaction is valid; the handler only does async-signal-safe work.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

/// [`install`] for a command that serves until Ctrl-C (the dashboard): the
/// first SIGINT says it is stopping.
pub fn install_for_server() -> anyhow::Result<()> {
    SERVER.store(true, Ordering::SeqCst);
    install()
}

/// Whether SIGINT arrived since labctl started.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Keep SIGINT away from the calling thread (host workers), so it reaches the main thread.
pub fn block_in_this_thread() {
    // SAFETY: plain signal-mask calls on a local, initialised sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
