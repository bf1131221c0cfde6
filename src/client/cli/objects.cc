// mcos object list|create|update|stat|download|delete, and ls, put, get, stat, rm and watch.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/cli/cli_context.h"

namespace mcos::cli {
namespace {

class ObjectCommands final : public Commands {
 public:
  explicit ObjectCommands(CLI::App& cli) {
    object_cmd_ = cli.add_subcommand("object", "Manage objects");
    object_cmd_->require_subcommand(1);
    o_list_ = object_cmd_->add_subcommand("list", "List a container's objects");
    o_create_ = object_cmd_->add_subcommand("create", "Upload a new object (fails if it exists)");
    o_update_ = object_cmd_->add_subcommand("update", "Replace an existing object");
    o_stat_ = object_cmd_->add_subcommand("stat", "Show an object's info");
    o_download_ = object_cmd_->add_subcommand("download", "Download an object");
    o_delete_ = object_cmd_->add_subcommand("delete", "Delete an object");
    ls_ = cli.add_subcommand("ls", "List containers, or the objects of CONTAINER");
    put_ = cli.add_subcommand("put",
                              "Upload FILE ('-' = stdin) as CONTAINER/OBJECT (create or replace)");
    get_ = cli.add_subcommand("get", "Download CONTAINER/OBJECT to FILE ('-' = stdout)");
    stat_ = cli.add_subcommand("stat", "Show an object's info");
    rm_ = cli.add_subcommand("rm", "Delete an object");
    watch_ = cli.add_subcommand(
        "watch",
        "Print the changes of CONTAINER's objects (puts and deletes, at any cluster) as they are "
        "committed, until interrupted; one line each, or one JSON object per line with --json");
    watch_
        ->add_option("target", watch_target_,
                     "CONTAINER, CONTAINER/PREFIX or mcos://CONTAINER[/PREFIX]")
        ->required();
    for (auto* c : {o_list_}) c->add_option("container", container_, "Container")->required();
    ls_->add_option("container", container_, "Container (none: list containers)");
    for (auto* c : {o_list_, ls_}) {
      c->add_option("--prefix", prefix_, "Only names starting with this");
      c->add_option("--delimiter", delimiter_, "Roll names up to this delimiter (e.g. /)");
      c->add_option("--marker", marker_, "Start after this name");
      c->add_option("--limit", limit_,
                    "List one page of at most this many (default: every name, 1000 per request)")
          ->check(CLI::NonNegativeNumber);
      c->add_flag("--all", all_, "With --limit: follow next_marker through every page");
      c->add_flag("-l,--long", long_,
                  "One object a line: size, modification time (local) and name (a header row on "
                  "a terminal)");
      // -h is ls's human-readable sizes here, as in `ls -lh`; help is --help.
      c->set_help_flag("--help", "Print this help message and exit");
      c->add_flag("-h,--human-readable", human_, "With -l: sizes as 4.0K, 1.5M, 2.3G (base 1024)");
    }
    for (auto* c : {o_create_, o_update_, put_, o_download_, get_}) {
      c->add_option("container", container_, "Container")->required();
      c->add_option("object", object_, "Object name")->required();
      c->add_option("file", file_, "Local file, or '-'")->required();
    }
    for (auto* c : {o_create_, o_update_, put_}) {
      c->add_option("--content-type", content_type_, "Content type to store");
      c->add_option("--meta", meta_, "Metadata KEY=VALUE (repeatable)")
          ->check(CLI::Validator(
              [](std::string& kv) {
                const size_t eq = kv.find('=');
                return eq == std::string::npos || eq == 0
                           ? std::string("'") + kv + "' is not KEY=VALUE"
                           : std::string();
              },
              "KEY=VALUE"));
    }
    for (auto* c : {o_download_, get_}) {
      c->add_option("--offset", offset_, "First byte")->check(CLI::NonNegativeNumber);
      c->add_option("--length", length_, "Bytes (0 = to the end)")->check(CLI::NonNegativeNumber);
    }
    for (auto* c : {o_stat_, stat_, o_delete_, rm_}) {
      c->add_option("container", container_, "Container")->required();
      c->add_option("object", object_, "Object name")->required();
    }
  }

  std::optional<int> Run(const Globals& g, client::Client& client) override {
    if (ls_->parsed() && container_.empty()) {
      return ListContainers(g, client, prefix_, marker_, limit_, all_);
    }
    if (o_list_->parsed() || ls_->parsed()) {
      mcos::v1::ListObjectsRequest req;
      req.set_container(container_);
      req.set_prefix(prefix_);
      req.set_delimiter(delimiter_);
      req.set_limit(limit_);
      req.set_marker(marker_);
      std::optional<JsonArray> json;
      if (g.json) json.emplace();
      // -l: a header row on a terminal.
      if (long_ && !g.json && isatty(STDOUT_FILENO)) std::cout << "SIZE\tMODIFIED\t\tNAME\n";
      do {
        auto r = client.ListObjects(req);
        if (!r.ok()) {
          json.reset();  // the array is closed before the error is printed
          return Fail(r.status());
        }
        for (const auto& p : r->common_prefixes()) {
          if (json) {
            json->Add("{\"prefix\":" + JsonString(p) + "}");
          } else {
            std::cout << "PRE\t" << (long_ ? "\t\t" : "") << p << "\n";
          }
        }
        for (const auto& o : r->objects()) {
          if (json) {
            json->Add(ToJson(o));
          } else if (long_) {
            std::cout << (human_ ? HumanBytes(o.size()) : absl::StrCat(o.size())) << "\t"
                      << absl::FormatTime("%Y-%m-%d %H:%M",
                                          absl::FromUnixSeconds(o.modified().seconds()),
                                          absl::LocalTimeZone())
                      << "\t" << o.object() << "\n";
          } else {
            std::cout << o.size() << "\t" << o.etag() << "\t" << o.object() << "\n";
          }
        }
        req.set_marker(r->next_marker());
      } while ((all_ || limit_ == 0) && !req.marker().empty());
      // One page (--limit) of more: where the next starts.
      if (json && !req.marker().empty()) {
        json->Add("{\"next_marker\":" + JsonString(req.marker()) + "}");
      }
      return 0;
    }
    if (o_create_->parsed() || o_update_->parsed() || put_->parsed()) {
      mcos::client::PutOptions po;
      po.content_type = content_type_;
      for (const auto& kv : meta_) {  // (checked KEY=VALUE at parsing)
        const size_t eq = kv.find('=');
        po.metadata[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      std::ifstream in_file;
      std::istream* in = &std::cin;
      if (file_ != "-") {
        std::error_code dir_ec;
        if (std::filesystem::is_directory(file_, dir_ec)) {
          return Fail(absl::InvalidArgumentError(absl::StrCat(
              file_,
              " is a directory: uploading a directory needs --recursive (not available "
              "yet); name a file")));
        }
        in_file.open(file_, std::ios::binary);
        if (!in_file) return Fail(absl::NotFoundError(absl::StrCat("cannot open ", file_)));
        std::error_code ec;
        const auto size = std::filesystem::file_size(file_, ec);
        if (!ec) po.size = size;
        in = &in_file;
      }
      po.progress = MakeProgress(g.quiet, object_);
      // put: one atomic create-or-replace at the server (no stat first: concurrent puts of a new
      // name used to race into ALREADY_EXISTS).
      auto r = put_->parsed()        ? client.PutObject(container_, object_, *in, po)
               : o_create_->parsed() ? client.CreateObject(container_, object_, *in, po)
                                     : client.UpdateObject(container_, object_, *in, po);
      if (!r.ok()) return Fail(r.status());
      // A new object's created and modified times are its one version's.
      const bool created = r->created().seconds() == r->modified().seconds() &&
                           r->created().nanos() == r->modified().nanos();
      if (g.json)
        std::cout << ToJson(*r) << "\n";
      else
        std::cout << (created ? "created " : "updated ") << container_ << "/" << object_ << " ("
                  << r->size() << " bytes, etag " << r->etag() << ")\n";
      return 0;
    }
    if (o_download_->parsed() || get_->parsed()) {
      // Into a directory (existing, or named with a trailing '/'): the object's last path segment
      // there, as cp does.
      std::error_code dir_ec;
      if (file_ != "-" && (std::filesystem::is_directory(file_, dir_ec) || file_.back() == '/')) {
        const size_t slash = object_.rfind('/');
        const std::string base = slash == std::string::npos ? object_ : object_.substr(slash + 1);
        if (base.empty() || base == "." || base == "..") {
          return Fail(absl::InvalidArgumentError(absl::StrCat(
              "object '", object_, "' has no file name to use in ", file_, ": name the file")));
        }
        file_ = (std::filesystem::path(file_) / base).string();
      }
      std::ofstream out_file;
      std::ostream* out = &std::cout;
      const std::string tmp = file_ + ".mcos-part";
      if (file_ != "-") {
        const std::filesystem::path parent = std::filesystem::path(file_).parent_path();
        std::error_code parent_ec;
        if (!parent.empty() && !std::filesystem::is_directory(parent, parent_ec)) {
          return Fail(absl::NotFoundError(absl::StrCat(
              "no directory ", parent.string(), " to write ", file_, " in: create it first")));
        }
        // Ctrl-C or a kill leaves no partial file behind: set before the file exists, so that a
        // signal right after it was made removes it too.
        RemoveOnSignal(tmp);
        out_file.open(tmp, std::ios::binary | std::ios::trunc);
        if (!out_file) {
          const int err = errno;
          KeepOnSignal();
          const std::string why = absl::StrCat("cannot write ", tmp, ": ", std::strerror(err));
          return Fail(err == EACCES || err == EPERM || err == EROFS
                          ? absl::PermissionDeniedError(why)
                          : absl::UnavailableError(why));
        }
        out = &out_file;
      }
      mcos::client::GetOptions go;
      go.offset = offset_;
      go.length = length_;
      go.progress = file_ == "-" ? nullptr : MakeProgress(g.quiet, object_);
      auto r = client.DownloadObject(container_, object_, *out, go);
      if (file_ != "-") {
        out_file.close();
        if (!r.ok()) {
          std::filesystem::remove(tmp);
          KeepOnSignal();
          return Fail(r.status());
        }
        std::error_code rename_ec;
        std::filesystem::rename(tmp, file_, rename_ec);  // never a partial file under the real name
        KeepOnSignal();
        if (rename_ec) {
          std::filesystem::remove(tmp);
          return Fail(absl::UnavailableError(
              absl::StrCat("cannot rename ", tmp, " to ", file_, ": ", rename_ec.message())));
        }
      } else {
        std::cout.flush();
        if (!r.ok()) return Fail(r.status());
      }
      return 0;
    }
    if (o_stat_->parsed() || stat_->parsed()) {
      auto r = client.StatObject(container_, object_);
      if (!r.ok()) return Fail(r.status());
      PrintObject(g, *r);
      return 0;
    }
    if (watch_->parsed()) {
      std::string target = watch_target_;
      if (absl::StartsWith(target, "mcos://")) target = target.substr(7);
      const size_t slash = target.find('/');
      const std::string watched = target.substr(0, slash);
      const std::string under = slash == std::string::npos ? "" : target.substr(slash + 1);
      const absl::Status s = client.WatchObjects(
          watched, under,
          [&](const mcos::v1::ObjectChange& change) {
            if (g.json) {
              std::cout << ToJson(change) << std::endl;
              return true;
            }
            const auto& o = change.object();
            std::cout << absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ",
                                          absl::FromUnixSeconds(o.modified().seconds()) +
                                              absl::Nanoseconds(o.modified().nanos()),
                                          absl::UTCTimeZone())
                      << (change.kind() == mcos::v1::ObjectChange::KIND_DELETE ? " delete "
                                                                               : " put ")
                      << o.container() << "/" << o.object();
            if (change.kind() != mcos::v1::ObjectChange::KIND_DELETE) {
              std::cout << " " << o.size() << " bytes etag " << o.etag();
            }
            std::cout << " version " << o.version() << " at " << change.cluster() << std::endl;
            return true;
          },
          [&] {
            if (!g.json) {
              std::cerr << "watching " << watched << (under.empty() ? "" : "/") << under
                        << " (Ctrl-C ends)" << std::endl;
            }
          });
      if (!s.ok()) return Fail(s);
      return 0;
    }
    if (o_delete_->parsed() || rm_->parsed()) {
      auto r = client.DeleteObject(container_, object_);
      if (!r.ok()) return Fail(r.status());
      if (g.json)
        std::cout << R"({"version":")" << *r << "\"}\n";
      else
        std::cout << "deleted " << container_ << "/" << object_ << "\n";
      return 0;
    }
    return std::nullopt;
  }

 private:
  CLI::App* object_cmd_ = nullptr;
  CLI::App* o_list_ = nullptr;
  CLI::App* o_create_ = nullptr;
  CLI::App* o_update_ = nullptr;
  CLI::App* o_stat_ = nullptr;
  CLI::App* o_download_ = nullptr;
  CLI::App* o_delete_ = nullptr;
  CLI::App* ls_ = nullptr;
  CLI::App* put_ = nullptr;
  CLI::App* get_ = nullptr;
  CLI::App* stat_ = nullptr;
  CLI::App* rm_ = nullptr;
  CLI::App* watch_ = nullptr;
  std::string container_, object_, file_, prefix_, marker_, delimiter_, content_type_,
      watch_target_;
  std::vector<std::string> meta_;
  bool all_ = false;
  bool long_ = false;
  bool human_ = false;
  uint32_t limit_ = 0;
  uint64_t offset_ = 0, length_ = 0;
};

}  // namespace

std::unique_ptr<Commands> AddObjectCommands(CLI::App& cli) {
  return std::make_unique<ObjectCommands>(cli);
}

}  // namespace mcos::cli
