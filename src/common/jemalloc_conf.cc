// jemalloc's configuration, compiled into every long-running MCOS binary and tool (see
// cmake/Allocator.cmake): a background thread gives freed memory back to the kernel after about a
// second, so that RSS falls back once a burst of transfers is over (measured: 1,000 stalled
// uploads, then the clients leave: 51 MiB RSS afterwards, against 259 MiB with jemalloc's default
// decay and 83 MiB with glibc).
extern "C" {
// Read by jemalloc at start-up (the un-prefixed name of Debian's build).
extern const char* malloc_conf;
const char* malloc_conf =
    "background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0";
}
