#include "placement/layout.h"

#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <map>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "placement/placement.h"

namespace mcos::placement {
namespace {

// Solves sum_j clamp(lambda * w_j, lo_j, hi_j) = total for lambda (bisection; the sum grows with
// lambda) and returns the clamped values. Needs sum(lo) <= total <= sum(hi).
std::vector<double> WaterFill(const std::vector<double>& w, const std::vector<double>& lo,
                              const std::vector<double>& hi, double total) {
  auto at = [&](double lambda, std::vector<double>* out) {
    double sum = 0;
    for (size_t j = 0; j < w.size(); ++j) {
      const double v = std::clamp(lambda * w[j], lo[j], hi[j]);
      if (out != nullptr) (*out)[j] = v;
      sum += v;
    }
    return sum;
  };
  double a = 0;
  double b = 1;
  while (at(b, nullptr) < total && b < 1e300) b *= 2;
  for (int i = 0; i < 200 && a < b; ++i) {
    const double mid = a + (b - a) / 2;
    if (mid <= a || mid >= b) break;
    (at(mid, nullptr) < total ? a : b) = mid;
  }
  std::vector<double> out(w.size());
  at(b, &out);
  return out;
}

// Integers within [lo_j, hi_j] close to x_j that add up to `total`: floors, then one more for the
// largest fractional parts (lower index first on ties).
std::vector<int64_t> RoundToTotal(const std::vector<double>& x, int64_t total,
                                  const std::vector<int64_t>& lo, const std::vector<int64_t>& hi) {
  std::vector<int64_t> out(x.size());
  int64_t sum = 0;
  for (size_t j = 0; j < x.size(); ++j) {
    out[j] = std::clamp(static_cast<int64_t>(std::floor(x[j])), lo[j], hi[j]);
    sum += out[j];
  }
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return x[a] - std::floor(x[a]) > x[b] - std::floor(x[b]);
  });
  for (int pass = 0; pass < 2 && sum != total; ++pass) {
    for (size_t k = 0; k < order.size() && sum != total; ++k) {
      // Adding: largest fractions first; removing: smallest fractions first.
      const size_t j = sum < total ? order[k] : order[order.size() - 1 - k];
      if (sum < total && out[j] < hi[j]) {
        ++out[j];
        ++sum;
      } else if (sum > total && out[j] > lo[j]) {
        --out[j];
        --sum;
      }
    }
  }
  return out;
}

// The members with weight, grouped by region; shared by the ideal shares and the builder.
struct Shape {
  uint64_t partitions = 0;
  uint32_t replicas = 0;
  std::vector<int> active;                          // indexes into ring.members() with weight > 0
  std::vector<int> region;                          // per active member: region index
  std::vector<std::vector<size_t>> region_members;  // per region: positions in `active`
  uint32_t spread = 0;                              // distinct regions each partition must have

  explicit Shape(const mcos::v1::Ring& ring) {
    partitions = uint64_t{1} << ring.partition_power();
    replicas = ring.replicas();
    std::map<std::string, int> regions;
    for (int i = 0; i < ring.members_size(); ++i) {
      const auto& m = ring.members(i);
      if (!(m.weight() > 0)) continue;
      auto [it, added] = regions.emplace(m.region(), static_cast<int>(regions.size()));
      if (added) region_members.emplace_back();
      region_members[static_cast<size_t>(it->second)].push_back(active.size());
      region.push_back(it->second);
      active.push_back(i);
    }
    spread = std::min<uint32_t>(replicas, static_cast<uint32_t>(region_members.size()));
  }

  // Lower and upper bounds of a region's replica count.
  std::pair<double, double> RegionBounds(size_t r) const {
    const auto n = static_cast<double>(partitions);
    const auto g = static_cast<uint32_t>(region_members.size());
    const auto k = static_cast<uint32_t>(region_members[r].size());
    if (g >= replicas) return {0, n};
    return {n, n * std::min(k, replicas - g + 1)};
  }

  // Real-valued ideal counts per active member.
  std::vector<double> Ideal(const mcos::v1::Ring& ring, std::vector<double>* region_ideal) const {
    const size_t g = region_members.size();
    std::vector<double> w(g, 0), lo(g), hi(g);
    for (size_t r = 0; r < g; ++r) {
      for (size_t a : region_members[r]) w[r] += ring.members(active[a]).weight();
      std::tie(lo[r], hi[r]) = RegionBounds(r);
    }
    *region_ideal = WaterFill(w, lo, hi, static_cast<double>(partitions) * replicas);
    std::vector<double> out(active.size(), 0);
    for (size_t r = 0; r < g; ++r) {
      std::vector<double> mw, mlo(region_members[r].size(), 0),
          mhi(region_members[r].size(), static_cast<double>(partitions));
      for (size_t a : region_members[r]) mw.push_back(ring.members(active[a]).weight());
      const auto shares = WaterFill(mw, mlo, mhi, (*region_ideal)[r]);
      for (size_t k = 0; k < shares.size(); ++k) out[region_members[r][k]] = shares[k];
    }
    return out;
  }

  // Integer targets per active member adding up to partitions x replicas.
  std::vector<int64_t> Targets(const mcos::v1::Ring& ring) const {
    std::vector<double> region_ideal;
    Ideal(ring, &region_ideal);
    const size_t g = region_members.size();
    std::vector<int64_t> lo(g), hi(g);
    for (size_t r = 0; r < g; ++r) {
      const auto [l, h] = RegionBounds(r);
      lo[r] = static_cast<int64_t>(l);
      hi[r] = static_cast<int64_t>(h);
    }
    const auto region_targets =
        RoundToTotal(region_ideal, static_cast<int64_t>(partitions) * replicas, lo, hi);
    std::vector<int64_t> out(active.size(), 0);
    for (size_t r = 0; r < g; ++r) {
      const size_t k = region_members[r].size();
      std::vector<double> mw, mlo(k, 0), mhi(k, static_cast<double>(partitions));
      for (size_t a : region_members[r]) mw.push_back(ring.members(active[a]).weight());
      const auto shares = WaterFill(mw, mlo, mhi, static_cast<double>(region_targets[r]));
      const auto rounded = RoundToTotal(shares, region_targets[r], std::vector<int64_t>(k, 0),
                                        std::vector<int64_t>(k, static_cast<int64_t>(partitions)));
      for (size_t j = 0; j < k; ++j) out[region_members[r][j]] = rounded[j];
    }
    return out;
  }
};

class Builder {
 public:
  Builder(const mcos::v1::Ring& ring, const Shape& shape)
      : shape_(shape), n_(shape.partitions), r_(shape.replicas), target_(shape.Targets(ring)) {
    for (int i : shape.active) {
      names_.push_back(ring.members(i).cluster());
      weights_.push_back(ring.members(i).weight());
    }
    count_.assign(names_.size(), 0);
    slots_.assign(n_ * r_, -1);
  }

  // Starts from the straw2 placement of every partition: the same choice as PlacePartition
  // (best score first, ties by cluster name; members of unused regions first), without its
  // allocations.
  void SeedFromStraw2() {
    const size_t g = shape_.region_members.size();
    std::vector<double> score(names_.size());
    std::vector<int> best(g), chosen, rest;
    auto better = [&](int a, int b) {
      const auto as = static_cast<size_t>(a), bs = static_cast<size_t>(b);
      return score[as] != score[bs] ? score[as] > score[bs] : names_[as] < names_[bs];
    };
    for (uint64_t p = 0; p < n_; ++p) {
      std::fill(best.begin(), best.end(), -1);
      for (size_t m = 0; m < names_.size(); ++m) {
        score[m] = Score(static_cast<int>(m), p);
        int& b = best[static_cast<size_t>(shape_.region[m])];
        if (b < 0 || better(static_cast<int>(m), b)) b = static_cast<int>(m);
      }
      // The best member of each region, best first; then, if regions run out, the best others.
      chosen.assign(best.begin(), best.end());
      std::sort(chosen.begin(), chosen.end(), better);
      if (chosen.size() > r_) chosen.resize(r_);
      if (chosen.size() < r_) {
        rest.clear();
        for (size_t m = 0; m < names_.size(); ++m) {
          if (std::find(chosen.begin(), chosen.end(), static_cast<int>(m)) == chosen.end()) {
            rest.push_back(static_cast<int>(m));
          }
        }
        const size_t more = std::min(rest.size(), r_ - chosen.size());
        std::partial_sort(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(more),
                          rest.end(), better);
        chosen.insert(chosen.end(), rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(more));
      }
      for (uint32_t i = 0; i < chosen.size(); ++i) Set(p, i, chosen[i]);
    }
  }

  // Starts from a previous layout: partitions map by their top bits, members by name; members
  // gone or without weight leave their slots empty; slots that keep a partition from spreading
  // over enough regions are emptied too.
  void SeedFromPrevious(const mcos::v1::Ring& previous) {
    const uint32_t old_power = previous.partition_power();
    const auto new_power = static_cast<uint32_t>(std::countr_zero(n_));
    const uint32_t old_r = previous.replicas();
    const auto& layout = previous.layout();
    std::map<std::string, int> index;
    for (size_t m = 0; m < names_.size(); ++m) index[names_[m]] = static_cast<int>(m);
    std::vector<int> map_old(static_cast<size_t>(layout.clusters_size()), -1);
    for (int k = 0; k < layout.clusters_size(); ++k) {
      auto it = index.find(layout.clusters(k));
      if (it != index.end()) map_old[static_cast<size_t>(k)] = it->second;
    }
    // A finer ring inherits each member's count times 2^(difference); do not move replicas only
    // to round those counts more tightly.
    if (new_power > old_power) slack_ = int64_t{1} << (new_power - old_power);
    const auto* bytes = reinterpret_cast<const uint8_t*>(layout.slots().data());
    for (uint64_t p = 0; p < n_; ++p) {
      const uint64_t old_p =
          new_power >= old_power ? p >> (new_power - old_power) : p << (old_power - new_power);
      for (uint32_t i = 0; i < std::min(r_, old_r); ++i) {
        const size_t at = (old_p * old_r + i) * 2;
        const auto k = static_cast<uint16_t>(bytes[at] | (bytes[at + 1] << 8));
        if (k >= map_old.size()) continue;  // a damaged previous layout: refill the slot
        const int m = map_old[k];
        if (m >= 0 && !Holds(p, m)) Set(p, i, m);
      }
      // Too few distinct regions (a member moved region, or a region was added): free the
      // least preferred of the duplicated ones until the spread is reachable again.
      while (!SpreadReachable(p)) {
        int victim = -1;
        double worst = 0;
        for (uint32_t i = 0; i < r_; ++i) {
          const int m = slot(p, i);
          if (m < 0 || RegionCount(p, shape_.region[static_cast<size_t>(m)]) < 2) continue;
          const double s = Score(m, p);
          if (victim < 0 || s < worst) {
            victim = static_cast<int>(i);
            worst = s;
          }
        }
        if (victim < 0) break;
        Clear(p, static_cast<uint32_t>(victim));
      }
    }
  }

  // Remembers the starting layout: a slot that still holds its starting member is "kept";
  // changing a kept slot moves a replica, changing a slot already changed costs nothing more.
  void MarkStart() { start_ = slots_; }

  // Fills every empty slot: the best-scored member under its target that fits, else the
  // best-scored member that fits.
  void FillEmpty() {
    std::vector<std::pair<double, int>> order;
    for (uint64_t p = 0; p < n_; ++p) {
      bool any_empty = false;
      for (uint32_t i = 0; i < r_; ++i) any_empty |= slot(p, i) < 0;
      if (!any_empty) continue;
      order.clear();
      for (size_t m = 0; m < names_.size(); ++m) {
        order.emplace_back(Score(static_cast<int>(m), p), static_cast<int>(m));
      }
      std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      });
      for (uint32_t i = 0; i < r_; ++i) {
        if (slot(p, i) >= 0) continue;
        int pick = -1;
        for (int pass = 0; pass < 2 && pick < 0; ++pass) {
          for (const auto& [score, m] : order) {
            if (pass == 0 && count_[static_cast<size_t>(m)] >= target_[static_cast<size_t>(m)]) {
              continue;
            }
            if (Fits(p, i, m)) {
              pick = m;
              break;
            }
          }
        }
        if (pick >= 0) Set(p, i, pick);
      }
    }
  }

  // Members under their target take slots from members over theirs, in their own score order.
  void Balance() {
    for (int round = 0; round < 16; ++round) {
      bool moved = false;
      for (int c : UnderTarget()) moved |= TakeFromOver(c);
      if (UnderTarget().empty()) return;
      for (int c : UnderTarget()) moved |= TakeThroughThird(c);
      if (!moved) return;
    }
  }

  absl::StatusOr<mcos::v1::RingLayout> Finish() const {
    mcos::v1::RingLayout layout;
    for (const auto& n : names_) layout.add_clusters(n);
    std::string bytes(n_ * r_ * 2, '\0');
    for (size_t s = 0; s < slots_.size(); ++s) {
      if (slots_[s] < 0) {
        return absl::InternalError(absl::StrCat("ring builder: partition ", s / r_,
                                                " could not be given ", r_, " replicas"));
      }
      bytes[2 * s] = static_cast<char>(slots_[s] & 0xFF);
      bytes[2 * s + 1] = static_cast<char>(slots_[s] >> 8);
    }
    layout.set_slots(std::move(bytes));
    return layout;
  }

 private:
  int slot(uint64_t p, uint32_t i) const { return slots_[p * r_ + i]; }
  void Set(uint64_t p, uint32_t i, int m) {
    if (slot(p, i) >= 0) --count_[static_cast<size_t>(slot(p, i))];
    slots_[p * r_ + i] = m;
    ++count_[static_cast<size_t>(m)];
  }
  void Clear(uint64_t p, uint32_t i) {
    --count_[static_cast<size_t>(slot(p, i))];
    slots_[p * r_ + i] = -1;
  }
  bool Holds(uint64_t p, int m) const {
    for (uint32_t i = 0; i < r_; ++i) {
      if (slot(p, i) == m) return true;
    }
    return false;
  }
  double Score(int m, uint64_t p) const {
    return MemberScore(names_[static_cast<size_t>(m)], weights_[static_cast<size_t>(m)],
                       static_cast<uint32_t>(p));
  }
  int RegionCount(uint64_t p, int region) const {
    int n = 0;
    for (uint32_t i = 0; i < r_; ++i) {
      n += slot(p, i) >= 0 && shape_.region[static_cast<size_t>(slot(p, i))] == region;
    }
    return n;
  }
  // Whether partition p, with member m in slot i (replacing what is there; m < 0 = as it is),
  // holds distinct clusters and can still reach the required number of distinct regions.
  bool Fits(uint64_t p, uint32_t i, int m) const {
    int regions[64];
    int distinct = 0;
    uint32_t empty = 0;
    for (uint32_t j = 0; j < r_; ++j) {
      const int x = j == i ? m : slot(p, j);
      if (x < 0) {
        ++empty;
        continue;
      }
      if (j != i && x == m) return false;
      const int g = shape_.region[static_cast<size_t>(x)];
      if (std::find(regions, regions + distinct, g) == regions + distinct) regions[distinct++] = g;
    }
    return static_cast<uint32_t>(distinct) + empty >= shape_.spread;
  }
  bool SpreadReachable(uint64_t p) const { return Fits(p, r_, -1); }

  std::vector<int> UnderTarget() const {
    std::vector<int> out;
    for (size_t m = 0; m < names_.size(); ++m) {
      if (Under(static_cast<int>(m))) out.push_back(static_cast<int>(m));
    }
    // Largest deficit first; then by index, for determinism.
    std::stable_sort(out.begin(), out.end(), [&](int a, int b) {
      return target_[static_cast<size_t>(a)] - count_[static_cast<size_t>(a)] >
             target_[static_cast<size_t>(b)] - count_[static_cast<size_t>(b)];
    });
    return out;
  }
  bool Under(int m) const {
    return count_[static_cast<size_t>(m)] < target_[static_cast<size_t>(m)] - slack_;
  }
  bool Over(int m) const {
    return count_[static_cast<size_t>(m)] > target_[static_cast<size_t>(m)] + slack_;
  }

  // A member's preference for partition p, as a sortable key: for one member the straw2 score
  // grows with its hash, so no logarithm is needed. Best first under PreferredFirst.
  using Keyed = std::pair<uint64_t, uint32_t>;  // (key, partition)
  Keyed PreferenceKey(int m, uint64_t p) const {
    const std::string& name = names_[static_cast<size_t>(m)];
    return {XXH3_64bits_withSeed(name.data(), name.size(), p) >> 11, static_cast<uint32_t>(p)};
  }
  static bool PreferredFirst(const Keyed& a, const Keyed& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  }

  // Partitions in m's order of preference, sorted lazily, a chunk at a time, since a walk usually
  // stops early.
  class Preference {
   public:
    Preference(const Builder& b, int m) {
      keyed_.resize(b.n_);
      for (uint64_t p = 0; p < b.n_; ++p) keyed_[p] = b.PreferenceKey(m, p);
    }
    bool Done(size_t i) const { return i >= keyed_.size(); }
    uint32_t At(size_t i) {
      if (i >= sorted_) {
        const size_t end = std::min(keyed_.size(), sorted_ + std::max<size_t>(1024, sorted_));
        const auto cmp = &Builder::PreferredFirst;
        const auto first = keyed_.begin() + static_cast<std::ptrdiff_t>(sorted_);
        const auto last = keyed_.begin() + static_cast<std::ptrdiff_t>(end);
        std::nth_element(first, last - 1, keyed_.end(), cmp);
        std::sort(first, last, cmp);
        sorted_ = end;
      }
      return keyed_[i].second;
    }

   private:
    std::vector<Keyed> keyed_;
    size_t sorted_ = 0;
  };

  bool Kept(uint64_t p, uint32_t i) const { return slot(p, i) == start_[p * r_ + i]; }

  // The slot of p that `taker` should take from a member satisfying `can_give`, or r_ if none:
  // the giver with the lowest score for p; with changed_only, only slots already changed.
  template <typename Pred>
  uint32_t SlotToTake(uint64_t p, int taker, Pred can_give, bool changed_only) const {
    uint32_t best = r_;
    double best_score = 0;
    for (uint32_t i = 0; i < r_; ++i) {
      const int d = slot(p, i);
      if (d < 0 || d == taker || !can_give(d) || (changed_only && Kept(p, i)) ||
          !Fits(p, i, taker)) {
        continue;
      }
      const double s = Score(d, p);
      if (best == r_ || s < best_score) {
        best = i;
        best_score = s;
      }
    }
    return best;
  }

  // Partitions holding a slot already changed from the start, in m's order of preference.
  std::vector<uint32_t> ChangedByPreference(int m) const {
    std::vector<Keyed> keyed;
    for (uint64_t p = 0; p < n_; ++p) {
      for (uint32_t i = 0; i < r_; ++i) {
        if (Kept(p, i)) continue;
        keyed.push_back(PreferenceKey(m, p));
        break;
      }
    }
    std::sort(keyed.begin(), keyed.end(), &Builder::PreferredFirst);
    std::vector<uint32_t> out;
    out.reserve(keyed.size());
    for (const auto& [key, p] : keyed) out.push_back(p);
    return out;
  }

  // The first partition in `taker`'s preference (other than `skip`) where it can take a slot
  // from a member satisfying `can_give`: slots already changed first (free), then kept ones.
  template <typename Pred>
  std::pair<uint64_t, uint32_t> FindTake(Preference& pref, int taker, Pred can_give,
                                         uint64_t skip) const {
    for (uint32_t p : ChangedByPreference(taker)) {
      if (p == skip || Holds(p, taker)) continue;
      const uint32_t i = SlotToTake(p, taker, can_give, true);
      if (i != r_) return {p, i};
    }
    for (size_t k = 0; !pref.Done(k); ++k) {
      const uint32_t p = pref.At(k);
      if (p == skip || Holds(p, taker)) continue;
      const uint32_t i = SlotToTake(p, taker, can_give, false);
      if (i != r_) return {p, i};
    }
    return {n_, r_};
  }

  bool TakeFromOver(int c) {
    bool moved = false;
    auto take = [&](uint32_t p, bool changed_only) {
      if (Holds(p, c)) return;
      const uint32_t i = SlotToTake(
          p, c, [&](int d) { return Over(d); }, changed_only);
      if (i == r_) return;
      Set(p, i, c);
      moved = true;
    };
    for (uint32_t p : ChangedByPreference(c)) {
      if (!Under(c)) return moved;
      take(p, true);
    }
    Preference pref(*this, c);
    for (size_t k = 0; !pref.Done(k) && Under(c); ++k) take(pref.At(k), false);
    return moved;
  }

  // c cannot take directly from any member over its target; find a member e that gives c a slot
  // and takes one from a member over its target elsewhere.
  bool TakeThroughThird(int c) {
    bool moved = false;
    Preference c_pref(*this, c);
    for (size_t es = 0; es < names_.size() && Under(c); ++es) {
      const int e = static_cast<int>(es);
      if (e == c || count_[es] < target_[es]) continue;
      Preference e_pref(*this, e);
      while (Under(c)) {
        const auto [q, qi] = FindTake(
            e_pref, e, [&](int d) { return Over(d); }, n_);
        if (q == n_) break;
        const auto [p, i] = FindTake(
            c_pref, c, [&](int d) { return d == e; }, q);
        if (p == n_) break;
        Set(q, qi, e);
        Set(p, i, c);
        moved = true;
      }
    }
    return moved;
  }

  std::vector<int> start_;
  int64_t slack_ = 0;  // members within target +- slack are balanced
  const Shape& shape_;
  uint64_t n_;
  uint32_t r_;
  std::vector<std::string> names_;
  std::vector<double> weights_;
  std::vector<int64_t> target_;
  std::vector<int64_t> count_;
  std::vector<int> slots_;
};

bool HasUsableLayout(const mcos::v1::Ring& ring) {
  const auto& l = ring.layout();
  return l.clusters_size() > 0 &&
         l.slots().size() == (size_t{2} << ring.partition_power()) * ring.replicas();
}

}  // namespace

std::vector<double> IdealReplicaCounts(const mcos::v1::Ring& ring) {
  const Shape shape(ring);
  std::vector<double> out(static_cast<size_t>(ring.members_size()), 0);
  if (shape.active.empty()) return out;
  std::vector<double> region_ideal;
  const auto ideal = shape.Ideal(ring, &region_ideal);
  for (size_t a = 0; a < shape.active.size(); ++a)
    out[static_cast<size_t>(shape.active[a])] = ideal[a];
  return out;
}

absl::StatusOr<mcos::v1::RingLayout> BuildLayout(const mcos::v1::Ring& ring,
                                                 const mcos::v1::Ring* previous) {
  const Shape shape(ring);
  if (ring.partition_power() > 24 || ring.replicas() == 0 || ring.replicas() > 64 ||
      shape.active.size() < ring.replicas() || shape.active.size() > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring '", ring.id(), "' cannot be laid out: ", shape.active.size(),
                     " members with weight for ", ring.replicas(), " replicas"));
  }
  Builder builder(ring, shape);
  if (previous != nullptr && HasUsableLayout(*previous)) {
    builder.SeedFromPrevious(*previous);
  } else {
    builder.SeedFromStraw2();
  }
  builder.MarkStart();
  builder.FillEmpty();
  builder.Balance();
  return builder.Finish();
}

absl::StatusOr<CompiledRing> CompiledRing::Make(const mcos::v1::Ring& ring) {
  CompiledRing out;
  out.power_ = ring.partition_power();
  out.replicas_ = ring.replicas();
  mcos::v1::RingLayout built;
  const mcos::v1::RingLayout* layout = &ring.layout();
  const bool has_layout = ring.layout().clusters_size() > 0 || !ring.layout().slots().empty();
  if (has_layout && !HasUsableLayout(ring)) {
    return absl::DataLossError(absl::StrCat(
        "ring '", ring.id(), "' version ", ring.version(), " has a layout of ",
        ring.layout().slots().size(), " bytes, which does not fit its partitions and replicas"));
  }
  if (!has_layout) {
    auto b = BuildLayout(ring, nullptr);
    if (!b.ok()) return b.status();
    built = *std::move(b);
    layout = &built;
  }
  std::map<std::string, double> weight;
  for (const auto& m : ring.members()) weight[m.cluster()] = m.weight();
  for (const auto& c : layout->clusters()) {
    out.clusters_.push_back(c);
    auto it = weight.find(c);
    out.weights_.push_back(it == weight.end() ? 0 : it->second);
  }
  // Members with weight the layout does not use still serve as handoffs.
  for (const auto& m : ring.members()) {
    if (m.weight() > 0 &&
        std::find(out.clusters_.begin(), out.clusters_.end(), m.cluster()) == out.clusters_.end()) {
      out.clusters_.push_back(m.cluster());
      out.weights_.push_back(m.weight());
    }
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(layout->slots().data());
  const size_t slots = layout->slots().size() / 2;
  out.slots_.resize(slots);
  for (size_t s = 0; s < slots; ++s) {
    const auto k = static_cast<uint16_t>(bytes[2 * s] | (bytes[2 * s + 1] << 8));
    if (k >= layout->clusters_size()) {
      return absl::DataLossError(absl::StrCat("ring '", ring.id(), "' layout names cluster #", k,
                                              " of ", layout->clusters_size()));
    }
    out.slots_[s] = k;
  }
  // A layout arrives through metadata (from other clusters too): check it before trusting it.
  if (out.replicas_ == 0 || slots != (size_t{1} << out.power_) * out.replicas_) {
    return absl::DataLossError(absl::StrCat("ring '", ring.id(), "' has a layout of ", slots,
                                            " slots for ", out.replicas_, " replicas at power ",
                                            out.power_));
  }
  for (uint32_t p = 0; p < out.partitions(); ++p) {
    const auto set = out.Replicas(p);
    for (size_t i = 0; i < set.size(); ++i) {
      if (std::find(set.begin(), set.begin() + static_cast<std::ptrdiff_t>(i), set[i]) !=
          set.begin() + static_cast<std::ptrdiff_t>(i)) {
        return absl::DataLossError(absl::StrCat("ring '", ring.id(), "' layout puts cluster '",
                                                out.clusters_[set[i]], "' twice in partition ", p));
      }
    }
  }
  size_t weighted = 0;
  for (double w : out.weights_) weighted += w > 0;
  if (weighted > out.replicas_) {
    out.handoff_width_ = weighted - out.replicas_;
    if (static_cast<size_t>(out.partitions()) * out.handoff_width_ <= kHandoffCacheEntries) {
      out.handoffs_ = std::make_shared<HandoffCache>(out.partitions(), out.handoff_width_);
    }
  }
  return out;
}

// Per partition: state 0 = not computed, 1 = being written by one thread, 2 = ready. A thread
// that finds 0 claims the partition and publishes its order; others compute their own meanwhile.
struct CompiledRing::HandoffCache {
  HandoffCache(size_t partitions, size_t width)
      : entries(partitions * width), state(new std::atomic<uint8_t>[partitions]) {
    for (size_t p = 0; p < partitions; ++p) state[p].store(0, std::memory_order_relaxed);
  }
  std::vector<uint16_t> entries;
  std::unique_ptr<std::atomic<uint8_t>[]> state;
};

std::vector<uint16_t> CompiledRing::HandoffIndexes(uint32_t partition) const {
  const size_t width = handoff_width_;
  if (handoffs_ && handoffs_->state[partition].load(std::memory_order_acquire) == 2) {
    const auto* first = handoffs_->entries.data() + static_cast<size_t>(partition) * width;
    return {first, first + width};
  }
  const auto replicas = Replicas(partition);
  std::vector<std::pair<double, uint16_t>> rest;
  for (size_t k = 0; k < clusters_.size(); ++k) {
    if (!(weights_[k] > 0)) continue;
    if (std::find(replicas.begin(), replicas.end(), k) != replicas.end()) continue;
    rest.emplace_back(MemberScore(clusters_[k], weights_[k], partition), static_cast<uint16_t>(k));
  }
  std::sort(rest.begin(), rest.end(), [&](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : clusters_[a.second] < clusters_[b.second];
  });
  std::vector<uint16_t> out;
  out.reserve(rest.size());
  for (const auto& [score, k] : rest) out.push_back(k);
  if (handoffs_ && out.size() == width) {
    uint8_t expected = 0;
    auto& state = handoffs_->state[partition];
    if (state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
      std::copy(out.begin(), out.end(),
                handoffs_->entries.begin() + static_cast<std::ptrdiff_t>(partition * width));
      state.store(2, std::memory_order_release);
    }
  }
  return out;
}

CompiledRing::Placement CompiledRing::Place(uint32_t partition) const {
  Placement out;
  for (uint16_t k : Replicas(partition)) out.replicas.push_back(clusters_[k]);
  const auto handoffs = HandoffIndexes(partition);
  out.handoffs.reserve(handoffs.size());
  for (uint16_t k : handoffs) out.handoffs.push_back(clusters_[k]);
  return out;
}

std::vector<uint64_t> CompiledRing::ReplicaCounts() const {
  std::vector<uint64_t> out(clusters_.size(), 0);
  for (uint16_t k : slots_) ++out[k];
  return out;
}

std::map<std::string, uint64_t> CompiledRing::ReplicaCountsByCluster() const {
  std::map<std::string, uint64_t> out;
  const auto counts = ReplicaCounts();
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] > 0) out[clusters_[i]] = counts[i];
  }
  return out;
}

}  // namespace mcos::placement
