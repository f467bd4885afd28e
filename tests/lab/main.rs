//! The lab tests: real nspawn containers and libvirt VMs, one story per
//! module. They need root; run by a normal user, this binary says so in one
//! line and exits 0 before the test harness starts (`scripts/test`, run as
//! root as CI does, runs them all).

#[path = "../common/mod.rs"]
mod common;

mod cache;
mod class;
mod cli;
mod dashboard;
mod dashboard_netns;
mod drbd;
mod e2e;
mod faults;
mod gfs2;
mod incus;
mod incus_cluster;
mod libvirt;
mod libvirt_remote;
mod link;
mod scenarios;
mod snapshot;
mod stonith;
mod switch;
mod vagrant;
mod verify;

/// Runs before the test harness's `main` (an ELF constructor, as the `ctor`
/// crate makes): a normal user gets the reason and a green exit instead of
/// every lab test panicking on its first step. Only libc calls: Rust's
/// runtime is not set up yet.
#[used]
#[link_section = ".init_array"]
static SKIP_UNLESS_ROOT: extern "C" fn() = skip_unless_root;

extern "C" fn skip_unless_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let msg = b"lab tests skipped: they need root (run scripts/test as root, as CI does)\n";
        // SAFETY: writes a static buffer to stdout, then ends the process
        // without running anything else (no harness, no test).
        unsafe {
            libc::write(1, msg.as_ptr().cast(), msg.len());
            libc::_exit(0);
        }
    }
}
