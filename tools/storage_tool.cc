// mcos-storage-tool: talks to one mcos-storage node directly (for operators, the README's demo and
// debugging). Users go through mcos-server and the `mcos` CLI instead.
#include <google/protobuf/util/json_util.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "common/channel.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/token.h"
#include "common/version.h"
#include "storage/storage_client.h"

namespace {

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "error: %s: %s\n", std::string(absl::StatusCodeToString(s.code())).c_str(),
               std::string(s.message()).c_str());
  return 1;
}

mcos::v1::Version Stamp() {
  static mcos::common::HybridLogicalClock hlc(mcos::common::SystemClock::Get());
  mcos::v1::Version v;
  v.set_hlc(hlc.Now());
  v.set_cluster("tool");
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{
      "mcos-storage-tool: put, get, stat, delete and list objects on one mcos-storage node"};
  std::string endpoint = "127.0.0.1:7400";
  std::string user = "demo";
  cli.add_option("--endpoint", endpoint, "mcos-storage address HOST:PORT")->capture_default_str();
  std::string key_file;
  cli.add_option("--token-key-file", key_file,
                 "The cluster's token key (the storage service accepts only its own cluster's "
                 "services)")
      ->required();
  cli.add_option("--user", user, "Owner of the objects")->capture_default_str();
  cli.require_subcommand(1);

  std::string container, object, file, content_type, prefix, marker, delimiter;
  uint64_t offset = 0, length = 0;
  uint32_t limit = 0;
  bool tombstones = false;

  auto* put = cli.add_subcommand("put", "Upload FILE ('-' = stdin) as CONTAINER/OBJECT");
  put->add_option("container", container)->required();
  put->add_option("object", object)->required();
  put->add_option("file", file)->required();
  put->add_option("--content-type", content_type);

  auto* get = cli.add_subcommand("get", "Download CONTAINER/OBJECT to FILE ('-' = stdout)");
  get->add_option("container", container)->required();
  get->add_option("object", object)->required();
  get->add_option("file", file)->required();
  get->add_option("--offset", offset, "First byte to read");
  get->add_option("--length", length, "Bytes to read (0 = to the end)");

  auto* stat = cli.add_subcommand("stat", "Show an object's record as JSON");
  stat->add_option("container", container)->required();
  stat->add_option("object", object)->required();
  stat->add_flag("--tombstones", tombstones, "Show a tombstone too");

  auto* rm = cli.add_subcommand("rm", "Delete an object (writes a tombstone)");
  rm->add_option("container", container)->required();
  rm->add_option("object", object)->required();

  auto* ls = cli.add_subcommand("ls", "List a container's objects as JSON");
  ls->add_option("container", container)->required();
  ls->add_option("--prefix", prefix);
  ls->add_option("--marker", marker);
  ls->add_option("--delimiter", delimiter);
  ls->add_option("--limit", limit);
  ls->add_flag("--tombstones", tombstones, "Include tombstones");

  mcos::common::AddVersionFlag(cli, "mcos-storage-tool");
  MCOS_CLI_PARSE(cli, argc, argv);

  auto token_key = mcos::common::LoadOrCreateKeyFile(key_file);
  if (!token_key.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(token_key.status().message()).c_str());
    return 1;
  }
  mcos::common::ServiceAuth auth(*token_key, "storage-tool");
  mcos::storage::StorageClient client(mcos::common::ConnectInternal(endpoint, auth));
  mcos::v1::ObjectKey key;
  key.set_user(user);
  key.set_container(container);
  key.set_object(object);

  if (put->parsed()) {
    std::ifstream in_file;
    std::istream* in = &std::cin;
    if (file != "-") {
      in_file.open(file, std::ios::binary);
      if (!in_file) return Fail(absl::NotFoundError("cannot open " + file));
      in = &in_file;
    }
    mcos::v1::StoragePutHeader header;
    *header.mutable_key() = key;
    *header.mutable_version() = Stamp();
    header.set_content_type(content_type);
    auto r = client.Put(header, [&](char* buf, size_t cap) -> absl::StatusOr<size_t> {
      in->read(buf, static_cast<std::streamsize>(cap));
      if (in->bad()) return absl::DataLossError("cannot read " + file);
      return static_cast<size_t>(in->gcount());
    });
    if (!r.ok()) return Fail(r.status());
    std::cout << ToJson(*r);
    return 0;
  }
  if (get->parsed()) {
    std::ofstream out_file;
    std::ostream* out = &std::cout;
    if (file != "-") {
      out_file.open(file, std::ios::binary | std::ios::trunc);
      if (!out_file) return Fail(absl::PermissionDeniedError("cannot write " + file));
      out = &out_file;
    }
    mcos::v1::StorageGetRequest request;
    *request.mutable_key() = key;
    request.set_offset(offset);
    request.set_length(length);
    auto r = client.Get(request, [&](absl::string_view data) {
      out->write(data.data(), static_cast<std::streamsize>(data.size()));
      return out->good() ? absl::OkStatus() : absl::DataLossError("cannot write " + file);
    });
    if (!r.ok()) return Fail(r.status());
    out->flush();
    return 0;
  }
  if (stat->parsed()) {
    auto r = client.Stat(key, tombstones);
    if (!r.ok()) return Fail(r.status());
    std::cout << ToJson(*r);
    return 0;
  }
  if (rm->parsed()) {
    mcos::v1::StorageDeleteRequest request;
    *request.mutable_key() = key;
    *request.mutable_version() = Stamp();
    auto r = client.Delete(request);
    if (!r.ok()) return Fail(r.status());
    std::cout << ToJson(*r);
    return 0;
  }
  mcos::v1::StorageListRequest request;
  request.set_user(user);
  request.set_container(container);
  request.set_prefix(prefix);
  request.set_marker(marker);
  request.set_delimiter(delimiter);
  request.set_limit(limit);
  request.set_include_tombstones(tombstones);
  auto r = client.List(request);
  if (!r.ok()) return Fail(r.status());
  std::cout << ToJson(*r);
  return 0;
}
