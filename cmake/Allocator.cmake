# mcos_use_allocator(target): links an MCOS binary with jemalloc (Debian's libjemalloc-dev) and
# its configuration (src/common/jemalloc_conf.cc). Measured on this machine kind, where page faults
# and mmap are costly: glibc's malloc maps and unmaps every 1 MiB chunk buffer; with jemalloc a
# 256 MiB download went from ~620-710 to ~1,490-1,820 MB/s and an upload from ~235-250 to
# ~310-330 MB/s through mcos-bench, at equal small-object rates. Sanitizer builds keep their own
# allocator.
find_library(MCOS_JEMALLOC NAMES jemalloc)
function(mcos_use_allocator target)
  if(MCOS_SANITIZE)
    return()
  endif()
  if(NOT MCOS_JEMALLOC)
    message(FATAL_ERROR "jemalloc not found: install libjemalloc-dev (tools/install-deps.sh)")
  endif()
  target_sources(${target} PRIVATE ${PROJECT_SOURCE_DIR}/src/common/jemalloc_conf.cc)
  target_link_libraries(${target} PRIVATE ${MCOS_JEMALLOC})
endfunction()
