#include "events/event_bus.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/hash.h"

namespace mcos::events {

std::string ObjectSubject(absl::string_view owner, absl::string_view container) {
  return absl::StrCat("mcos.object.", absl::Hex(common::Hash64(absl::StrCat(owner, "/", container)),
                                                absl::kZeroPad16));
}

std::string ServiceSubject(absl::string_view cluster) {
  return absl::StrCat("mcos.service.", absl::Hex(common::Hash64(cluster), absl::kZeroPad16));
}

bool SubjectMatches(absl::string_view filter, absl::string_view subject) {
  const std::vector<absl::string_view> f = absl::StrSplit(filter, '.');
  const std::vector<absl::string_view> s = absl::StrSplit(subject, '.');
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == ">") return i == f.size() - 1 && s.size() > i;
    if (i >= s.size()) return false;
    if (f[i] != "*" && f[i] != s[i]) return false;
  }
  return f.size() == s.size();
}

class MemoryEventBus::MemorySubscription final : public Subscription {
 public:
  MemorySubscription(MemoryEventBus& bus, uint64_t id) : bus_(bus), id_(id) {}
  ~MemorySubscription() override {
    absl::MutexLock lock(&bus_.mu_);
    bus_.subscriptions_.erase(id_);
  }

 private:
  MemoryEventBus& bus_;
  const uint64_t id_;
};

void MemoryEventBus::Publish(std::string subject, std::string payload) {
  std::vector<OnEvent> targets;
  {
    absl::MutexLock lock(&mu_);
    published_.emplace_back(subject, payload);
    for (const auto& [id, sub] : subscriptions_) {
      if (SubjectMatches(sub.first, subject)) targets.push_back(sub.second);
    }
  }
  for (const auto& on_event : targets) on_event(subject, payload);
}

absl::StatusOr<std::unique_ptr<Subscription>> MemoryEventBus::Subscribe(const Follow& follow,
                                                                        OnEvent on_event) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  subscriptions_[id] = {follow.filter, std::move(on_event)};
  return std::unique_ptr<Subscription>(new MemorySubscription(*this, id));
}

std::vector<std::pair<std::string, std::string>> MemoryEventBus::published() const {
  absl::MutexLock lock(&mu_);
  return published_;
}

}  // namespace mcos::events
