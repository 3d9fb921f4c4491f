//! The `switchyard` binary: tunes the allocator, parses the command line
//! and hands off to `cli`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tune_malloc();
    let args = switchyard::cli::Cli::parse();
    switchyard::cli::main(args)
}

/// Sets two of glibc's malloc parameters unless the operator chose them in
/// the environment: at most two arenas (`MALLOC_ARENA_MAX`, or
/// `GLIBC_TUNABLES` naming `arena_max`) and a fixed mmap threshold of
/// 128 KiB (`MALLOC_MMAP_THRESHOLD_`, or `GLIBC_TUNABLES` naming
/// `mmap_threshold`). Must run before any thread starts.
///
/// Arenas: glibc gives threads that meet in malloc arenas of their own, up
/// to eight per core, and an arena keeps what its threads freed. The daemon
/// runs a thread per webhook being stored, so a burst left each of up to 16
/// arenas holding freed pages: measured at a million stored orders, the
/// peak of a burst of 4,000 webhooks fell from 281 to about 228 MB with two
/// arenas, and a long-running daemon no longer keeps that memory.
///
/// The mmap threshold: glibc starts by serving blocks of 128 KiB and more
/// with their own mappings, which go back to the system when freed, but
/// raises that threshold (up to 32 MiB) each time such a block is freed.
/// The store's large buffers then come from the arenas, and the pages they
/// leave behind stay resident. Keeping the threshold fixed took 25 to 35 MB
/// off the peak of the same burst (224-230 MB against 248-260 MB, same
/// store, interleaved runs) at no measurable cost in intake.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        let arenas_chosen =
            std::env::var_os("MALLOC_ARENA_MAX").is_some() || tunables.contains("arena_max");
        let mmap_chosen = std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
            || tunables.contains("mmap_threshold");
        // SAFETY: mallopt only changes glibc's malloc parameters; it is
        // called before this process starts a second thread.
        #[allow(unsafe_code)]
        unsafe {
            if !arenas_chosen {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if !mmap_chosen {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
            }
        }
    }
}
