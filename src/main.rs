//! The `switchyard` binary: chooses and tunes the allocators, parses the
//! command line and hands off to `cli`.

use std::process::ExitCode;

use clap::Parser;

/// Rust's allocations go to jemalloc. With glibc's malloc a fifth of the
/// daemon's CPU in a burst of webhooks was the allocator itself (searching
/// and consolidating its free lists); measured against it in the same
/// runs, the daemon spends 0.7 to 0.9 of the CPU per delivery
/// (BENCHMARKS.md, "the allocator"). The C libraries (zstd) still use
/// glibc's malloc, tuned below.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main` (the environment's
/// `_RJEM_MALLOC_CONF` is read after them, so an operator can still change
/// them): two arenas, as for glibc below (each arena keeps what its threads
/// freed); freed pages given back to the system at once rather than after
/// ten seconds (8 MB less at the peak of a burst at 10,000 orders than
/// with a second's delay); and each thread's cache of freed blocks kept
/// small (blocks up to 8 KB, 32 of a size, against 32 KB and 200): a burst
/// runs a thread per webhook being stored, and the smaller caches took
/// another 10 to 14 MB off its peak. Neither cost measurable CPU.
#[allow(unsafe_code, non_upper_case_globals)]
// SAFETY: jemalloc reads this NUL-terminated string once, at its start;
// the symbol is the prefixed `malloc_conf` of the jemalloc this crate
// links (declared weak there, so this definition is the one it reads).
#[unsafe(export_name = "_rjem_malloc_conf")]
static malloc_conf: Option<&'static u8> = Some(
    &b"narenas:2,dirty_decay_ms:0,muzzy_decay_ms:0,tcache_max:8192,tcache_nslots_small_max:32\0"[0],
);

fn main() -> ExitCode {
    tune_malloc();
    let args = switchyard::cli::Cli::parse();
    switchyard::cli::main(args)
}

/// Sets two of glibc's malloc parameters (for what C code allocates; they
/// were chosen when all of the daemon's memory came from glibc) unless the
/// operator chose them in
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
