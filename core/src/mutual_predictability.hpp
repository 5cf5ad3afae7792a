// Mutual predictability: which demonstrations each claim is scored with, and what its
// score contributes to MP(D).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "icm/icm.hpp"

namespace icm {

// Fixed-point scale for MP terms. Terms are summed as integers so that MP(D) does not
// depend on the order in which claims were updated: a resumed search computes bit-for-bit
// the same U as an uninterrupted one. Resolution 2^-32 ~ 2.3e-10 nats.
inline constexpr double MP_TERM_SCALE = 4294967296.0;

// One labeled claim's contribution to MP, in fixed point.
int64_t mp_term(const LabelScore &score, Label label, MpObjective objective);

// The claims labeled when SPARSE contexts were last drawn, and the draw's number.
struct ContextDraw {
    int64_t              epoch = 0;
    std::vector<int32_t> pool;  // sorted claim indices
};

// Decides the demonstrations of each target claim.
//  EXACT: every other labeled claim, grouped by consistency group (groups in order of
//         first appearance, claims in index order), as the original code orders them.
//  SPARSE: min(context_k, |pool| - 1) claims drawn from the pool without replacement by a
//         stream seeded with (seed, epoch, target), in the same grouped order. Depends only
//         on the draw, never on the current labels, so a label change touches only the
//         targets whose context holds it.
class DemonstrationContexts {
  public:
    DemonstrationContexts(const ClaimSet &set, const SearchParams &params, ContextDraw draw);

    MpMode             mode() const { return mode_; }
    const ContextDraw &draw() const { return draw_; }

    // Demonstrations (claim indices, prompt order) of `target` under `labels`.
    std::vector<int32_t> context(int32_t target, std::span<const Label> labels) const;

    // SPARSE: targets registered so far whose context holds `claim` (labeled or not).
    // EXACT: not used (every labeled claim holds every other).
    const std::vector<int32_t> &holders(int32_t claim) const { return holders_[static_cast<size_t>(claim)]; }
    // SPARSE: remember `target`'s context in the holder index (idempotent).
    void register_target(int32_t target);

    // SPARSE: start a new draw from the given pool.
    void redraw(std::vector<int32_t> pool);

  private:
    std::vector<int32_t> draw_context(int32_t target) const;

    const ClaimSet                   *set_;
    MpMode                            mode_;
    int32_t                           context_k_;
    uint64_t                          seed_;
    ContextDraw                       draw_;
    std::vector<int32_t>              rank_;     // grouped prompt order of each claim
    std::vector<int32_t>              by_rank_;  // claims in grouped prompt order
    std::vector<uint8_t>              registered_;
    std::vector<std::vector<int32_t>> holders_;
};

}  // namespace icm
