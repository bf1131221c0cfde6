#include "placement/placement.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace mcos::placement {
namespace {

void AppendPart(std::string* out, absl::string_view part) {
  const auto n = static_cast<uint32_t>(part.size());
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  out->append(part.data(), part.size());
}

}  // namespace

uint64_t ObjectHash(absl::string_view user, absl::string_view container, absl::string_view object) {
  std::string buf;
  buf.reserve(8 + user.size() + container.size() + object.size());
  AppendPart(&buf, user);
  AppendPart(&buf, container);
  buf.append(object.data(), object.size());
  return XXH3_64bits(buf.data(), buf.size());
}

uint32_t PartitionOf(uint64_t object_hash, uint32_t partition_power) {
  if (partition_power == 0) return 0;
  return static_cast<uint32_t>(object_hash >> (64 - partition_power));
}

double MemberScore(absl::string_view cluster, double weight, uint32_t partition) {
  if (!(weight > 0)) return -std::numeric_limits<double>::infinity();
  const uint64_t h = XXH3_64bits_withSeed(cluster.data(), cluster.size(), partition);
  const double u = static_cast<double>((h >> 11) + 1) / 9007199254740992.0;  // (0, 1]
  return std::log(u) / weight;
}

PlacementResult PlacePartition(const mcos::v1::Ring& ring, uint32_t partition) {
  struct Scored {
    double score;
    const mcos::v1::RingMember* member;
  };
  std::vector<Scored> scored;
  scored.reserve(static_cast<size_t>(ring.members_size()));
  for (const auto& m : ring.members()) {
    if (m.weight() <= 0) continue;
    scored.push_back({MemberScore(m.cluster(), m.weight(), partition), &m});
  }
  std::sort(scored.begin(), scored.end(), [](const Scored& a, const Scored& b) {
    return a.score != b.score ? a.score > b.score : a.member->cluster() < b.member->cluster();
  });
  PlacementResult result;
  std::vector<bool> taken(scored.size(), false);
  std::set<std::string> regions;
  const size_t want = std::min<size_t>(ring.replicas(), scored.size());
  // First pass: best member of each region not used yet; second pass: best of the rest.
  for (int pass = 0; pass < 2 && result.replicas.size() < want; ++pass) {
    for (size_t i = 0; i < scored.size() && result.replicas.size() < want; ++i) {
      if (taken[i]) continue;
      const std::string& region = scored[i].member->region();
      if (pass == 0 && regions.count(region) > 0) continue;
      taken[i] = true;
      regions.insert(region);
      result.replicas.push_back(scored[i].member->cluster());
    }
  }
  for (size_t i = 0; i < scored.size(); ++i) {
    if (!taken[i]) result.handoffs.push_back(scored[i].member->cluster());
  }
  return result;
}

}  // namespace mcos::placement
