// Command-line flags of the storage node's disk limits, shared by mcos-storage and mcos-cluster
// (include only from a main.cc: CLI11 is slow to compile).
#pragma once

#include <CLI/CLI.hpp>

#include "storage/storage_app.h"

namespace mcos::storage {

// Add() registers the flags; Apply() stores them into StorageOptions after parsing.
struct StorageFlags {
  uint64_t min_free_mib = 256;
  uint32_t min_free_percent = 5;
  uint64_t reserve_mib = 64;
  uint64_t memtable_mib = 32;

  void Add(CLI::App& cli) {
    cli.add_option("--min-free-mib", min_free_mib,
                   "Free disk space (MiB) below which new data is refused with RESOURCE_EXHAUSTED "
                   "(reads and deletes go on); keep it above 3 memtables plus the WAL")
        ->capture_default_str();
    cli.add_option("--min-free-percent", min_free_percent,
                   "On a small disk the floor is this share (percent) of the disk's size when that "
                   "is smaller than --min-free-mib, and so is the reserve (0: --min-free-mib "
                   "alone)")
        ->check(CLI::Range(0, 50))
        ->capture_default_str();
    cli.add_option("--reserve-mib", reserve_mib,
                   "Size (MiB) of the space reserve (two files), given back when the disk fills "
                   "up anyway so that deletes and a restart still work (0: none); keep it at "
                   "least twice --memtable-mib: RocksDB resumes after ENOSPC only with a "
                   "memtable's worth free")
        ->capture_default_str();
    cli.add_option("--memtable-mib", memtable_mib,
                   "Memtable size (MiB) of object data; the WAL is kept to twice this")
        ->capture_default_str();
  }
  void Apply(StorageOptions& options) const {
    options.min_free_bytes = min_free_mib << 20;
    options.min_free_percent = min_free_percent;
    options.reserve_bytes = reserve_mib << 20;
    options.memtable_bytes = memtable_mib << 20;
    options.max_total_wal_bytes = 2 * (memtable_mib << 20);
  }
};

}  // namespace mcos::storage
