// The resolver core: keeps the latest rings and options (from the controller) and places batches
// of objects. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "mcos/v1/controller.pb.h"
#include "mcos/v1/resolver.pb.h"

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

  void SetSnapshot(const mcos::v1::MetadataSnapshot& snapshot);
  bool has_snapshot();
  // INVALID_ARGUMENT for bad names or too large a batch; UNAVAILABLE before the first snapshot.
  absl::StatusOr<mcos::v1::ResolveResponse> Resolve(const mcos::v1::ResolveRequest& request);

 private:
  ContainerLookup lookup_;
  Refresh refresh_;
  absl::Mutex mu_;
  std::optional<mcos::v1::MetadataSnapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, mcos::v1::Ring> rings_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, mcos::v1::Option> options_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mcos::resolver
