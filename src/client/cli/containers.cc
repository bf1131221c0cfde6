// mcos container list|create|delete, mb and rb.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/cli/cli_context.h"

namespace mcos::cli {
namespace {

class ContainerCommands final : public Commands {
 public:
  explicit ContainerCommands(CLI::App& cli) {
    container_cmd_ = cli.add_subcommand("container", "Manage containers");
    container_cmd_->require_subcommand(1);
    c_list_ = container_cmd_->add_subcommand("list", "List your containers");
    c_create_ = container_cmd_->add_subcommand("create", "Create a container");
    c_delete_ = container_cmd_->add_subcommand("delete", "Delete an empty container");
    mb_ = cli.add_subcommand("mb", "Make a container (= container create)");
    rb_ = cli.add_subcommand("rb", "Remove a container (= container delete)");
    for (auto* c : {c_create_, mb_}) {
      c->add_option("container", container_, "Container name")->required();
      c->add_option("--option", option_, "Storage option (default: the federation's default)");
    }
    for (auto* c : {c_delete_, rb_})
      c->add_option("container", container_, "Container")->required();
    c_list_->add_option("--prefix", prefix_, "Only names starting with this");
  }

  std::optional<int> Run(const Globals& g, client::Client& client) override {
    if (c_create_->parsed() || mb_->parsed()) {
      auto r = client.CreateContainer(container_, option_);
      if (!r.ok()) return Fail(r.status());
      if (g.json)
        std::cout << ToJson(*r) << "\n";
      else
        std::cout << "created container " << r->name() << " (option " << r->option() << ")\n";
      return 0;
    }
    if (c_delete_->parsed() || rb_->parsed()) {
      if (auto s = client.DeleteContainer(container_); !s.ok()) return Fail(s);
      if (!g.json) std::cout << "deleted container " << container_ << "\n";
      return 0;
    }
    if (c_list_->parsed()) return ListContainers(g, client, prefix_, "", 0, false);
    return std::nullopt;
  }

 private:
  CLI::App* container_cmd_ = nullptr;
  CLI::App* c_list_ = nullptr;
  CLI::App* c_create_ = nullptr;
  CLI::App* c_delete_ = nullptr;
  CLI::App* mb_ = nullptr;
  CLI::App* rb_ = nullptr;
  std::string container_, option_, prefix_;
};

}  // namespace

std::unique_ptr<Commands> AddContainerCommands(CLI::App& cli) {
  return std::make_unique<ContainerCommands>(cli);
}

int ListContainers(const Globals& g, client::Client& client, const std::string& prefix,
                   const std::string& marker, uint32_t limit, bool all) {
  std::string next = marker;
  std::optional<JsonArray> json;
  if (g.json) json.emplace();
  do {
    auto r = client.ListContainers(prefix, next, limit);
    if (!r.ok()) {
      json.reset();  // the array is closed before the error is printed
      return Fail(r.status());
    }
    for (const auto& c : r->containers()) {
      if (json) {
        json->Add(ToJson(c));
      } else {
        std::cout << c.name() << "\t" << c.option() << "\t" << c.object_count() << " objects\t"
                  << c.bytes_used() << " bytes\n";
      }
    }
    next = r->next_marker();
  } while ((all || limit == 0) && !next.empty());
  // One page (--limit) of more: where the next starts.
  if (json && !next.empty()) json->Add("{\"next_marker\":" + JsonString(next) + "}");
  return 0;
}

}  // namespace mcos::cli
