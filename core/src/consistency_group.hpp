// Incremental bookkeeping of I(D): which relations the current labels violate.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "icm/icm.hpp"
#include "random_stream.hpp"

namespace icm {

// The set of violated constraints (relations and group constraints, numbered as in
// ClaimSet), kept up to date one label change at a time in O(constraints touching the
// claim), with uniform sampling of a violated constraint.
class InconsistencyTracker {
  public:
    InconsistencyTracker(const ClaimSet &set, std::span<const Label> labels);

    int64_t count() const { return static_cast<int64_t>(violated_.size()); }
    // Re-check the relations of `claim` after its label changed (labels already updated).
    void on_label_change(std::span<const Label> labels, int32_t claim);
    // How I(D) would change if `changes` were applied to `labels` (nothing is modified).
    int64_t delta_if(std::span<const Label> labels, std::span<const std::pair<int32_t, Label>> changes) const;

    int32_t sample(RandomStream &rng) const;
    // Violated constraint indices, sorted (deterministic order for the SCAN fix).
    std::vector<int32_t> sorted() const;

  private:
    void set_violated(int32_t relation, bool violated);

    const ClaimSet      *set_;
    std::vector<int32_t> violated_;  // constraint indices, unordered
    std::vector<int32_t> slot_;      // position in violated_ or -1
};

}  // namespace icm
