// Flips a bit in the middle of one stored chunk of a stopped storage node's RocksDB engine, as a
// bad disk would: for e2e tests that a copy failing its checksums is never served.
#pragma once

#include <fstream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "storage/rocksdb_engine.h"

namespace mcos::testing {

// Chunk `index` of the object whose record has `data_id`, in the database at `db_path` (the node
// must be stopped), in the data column family or in the object's data file. NOT_FOUND if there is
// no such chunk.
inline absl::Status CorruptChunk(const std::string& db_path, const std::string& data_id,
                                 uint64_t index) {
  storage::RocksDbOptions options;
  options.path = db_path;
  auto engine = storage::RocksDbEngine::Open(options);
  if (!engine.ok()) return engine.status();
  rocksdb::DB* db = (*engine)->db_for_test();
  // The record says where the chunk is.
  std::unique_ptr<rocksdb::Iterator> it(
      db->NewIterator(rocksdb::ReadOptions(), (*engine)->meta_cf_for_test()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    mcos::v1::ObjectRecord record;
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())) ||
        record.data_id() != data_id || !record.has_file_first_chunk() ||
        index < record.file_first_chunk() || index >= record.chunk_count()) {
      continue;
    }
    // The file holds the chunks back to back (their checksums are in the data column family).
    const uint64_t offset =
        (index - record.file_first_chunk()) * record.chunk_size() + record.chunk_size() / 4;
    std::fstream file((*engine)->DataFilePath(data_id),
                      std::ios::in | std::ios::out | std::ios::binary);
    char byte = 0;
    if (!file.seekg(static_cast<std::streamoff>(offset)) || !file.read(&byte, 1)) {
      return absl::NotFoundError(absl::StrCat("no chunk ", index, " in that object's data file"));
    }
    byte = static_cast<char>(byte ^ 0x40);
    if (!file.seekp(static_cast<std::streamoff>(offset)) || !file.write(&byte, 1) ||
        !file.flush()) {
      return absl::InternalError("cannot write the corrupted chunk back");
    }
    return absl::OkStatus();
  }
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
