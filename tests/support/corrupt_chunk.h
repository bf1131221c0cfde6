// Flips a bit in the middle of one stored chunk of a stopped storage node's RocksDB database, as a
// bad disk would: for e2e tests that a copy failing its checksums is never served.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "storage/rocksdb_engine.h"

namespace mcos::testing {

// Chunk `index` of the object whose record has `data_id`, in the database at `db_path` (the node
// must be stopped). NOT_FOUND if there is no such chunk.
inline absl::Status CorruptChunk(const std::string& db_path, const std::string& data_id,
                                 uint64_t index) {
  storage::RocksDbOptions options;
  options.path = db_path;
  auto engine = storage::RocksDbEngine::Open(options);
  if (!engine.ok()) return engine.status();
  rocksdb::DB* db = (*engine)->db_for_test();
  const std::string key = storage::DataKey(data_id, index);
  std::string value;
  if (!db->Get(rocksdb::ReadOptions(), (*engine)->data_cf_for_test(), key, &value).ok()) {
    return absl::NotFoundError(absl::StrCat("no chunk ", index, " of that object"));
  }
  value[value.size() / 2] = static_cast<char>(value[value.size() / 2] ^ 0x40);
  rocksdb::WriteOptions sync;
  sync.sync = true;
  if (!db->Put(sync, (*engine)->data_cf_for_test(), key, value).ok()) {
    return absl::InternalError("cannot write the corrupted chunk back");
  }
  return absl::OkStatus();
}

}  // namespace mcos::testing
