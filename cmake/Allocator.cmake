# mcos_use_allocator(target): links an MCOS binary with tcmalloc (tcmalloc_minimal from Debian's
# libgoogle-perftools-dev). Measured on this machine kind, where page faults and mmap are costly,
# with mcos-bench in one run (docs/operating.md, "Allocator"): glibc's malloc maps and unmaps every
# 1 MiB chunk buffer (256 MiB download ~620-710 MB/s, upload ~235-250 MB/s); jemalloc and tcmalloc
# both reach ~1,400-1,800 and ~310-330 MB/s, and tcmalloc serves small objects 10-25% faster than
# jemalloc. Its free memory is given back to the kernel by common::AllocatorTrimmer. Sanitizer
# builds keep their own allocator.
find_library(MCOS_TCMALLOC NAMES tcmalloc_minimal)
function(mcos_use_allocator target)
  if(MCOS_SANITIZE)
    return()
  endif()
  if(NOT MCOS_TCMALLOC)
    message(FATAL_ERROR "tcmalloc not found: install libgoogle-perftools-dev (tools/install-deps.sh)")
  endif()
  target_link_libraries(${target} PRIVATE ${MCOS_TCMALLOC})
endfunction()
