// The resolver core: keeps the latest rings and options (from the controller) and places batches
// of objects. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "mcos/v1/controller.pb.h"
#include "mcos/v1/resolver.pb.h"
#include "placement/layout.h"

namespace mcos::resolver {

inline constexpr int kMaxResolveBatch = 10000;

class Resolver {
 public:
  // Looks up a container's option when a request does not name one; NOT_FOUND if no container.
  using ContainerLookup =
      std::function<absl::StatusOr<std::string>(const std::string& user, const std::string& name)>;
  // Reloads the snapshot now (called when a request names an option or ring not in it).
  using Refresh = std::function<void()>;
  explicit Resolver(ContainerLookup lookup, Refresh refresh = nullptr)
      : lookup_(std::move(lookup)), refresh_(std::move(refresh)) {}

  // Takes new rings and options; keeps the current ones for an `unchanged` answer. A ring whose
  // layout cannot be read is left out (its lookups fail with a message) and logged.
  void SetSnapshot(const mcos::v1::MetadataSnapshot& snapshot);
  bool has_snapshot();
  // The snapshot revision held (0 = none).
  uint64_t revision();
  // INVALID_ARGUMENT for bad names or too large a batch; UNAVAILABLE before the first snapshot.
  absl::StatusOr<mcos::v1::ResolveResponse> Resolve(const mcos::v1::ResolveRequest& request);

 private:
  ContainerLookup lookup_;
  Refresh refresh_;
  absl::Mutex mu_;
  struct RingEntry {
    uint64_t version = 0;
    std::string stamp;  // serialized Version: a rewrite of the same version is a new layout
    std::shared_ptr<const placement::CompiledRing> compiled;
    std::vector<std::string> members;
  };
  std::optional<uint64_t> revision_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, RingEntry> rings_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, mcos::v1::Option> options_ ABSL_GUARDED_BY(mu_);
  // Per option whose data moves: its former layouts (docs/placement.md, "Moving data"), by id.
  struct Former {
    std::string id;
    std::shared_ptr<const placement::CompiledRing> compiled;
    std::vector<std::string> members;
    // Clusters removed for good since (FormerLayout.dropped): left out of its sets.
    std::vector<std::string> dropped;
  };
  std::map<std::string, std::vector<Former>> formers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mcos::resolver
