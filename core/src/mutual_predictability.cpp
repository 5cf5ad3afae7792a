#include "mutual_predictability.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <unordered_set>

#include "random_stream.hpp"

namespace icm {

int64_t mp_term(const LabelScore &score, Label label, MpObjective objective) {
    double term = 0;
    switch (objective) {
        case MpObjective::MEAN_LOGIT_GAP:
            term = label == Label::TRUE ? score.gap() : -score.gap();
            break;
        case MpObjective::SUM_LOGPROB:
            term = label == Label::TRUE ? score.logp_true : score.logp_false;
            break;
    }
    return static_cast<int64_t>(std::llround(term * MP_TERM_SCALE));
}

DemonstrationContexts::DemonstrationContexts(const ClaimSet &set, const SearchParams &params,
                                             ContextDraw draw)
    : set_(&set),
      mode_(params.mp_mode),
      context_k_(params.context_k),
      seed_(params.seed),
      draw_(std::move(draw)),
      rank_(static_cast<size_t>(set.n_claims())),
      registered_(static_cast<size_t>(set.n_claims()), 0),
      holders_(mode_ == MpMode::SPARSE ? static_cast<size_t>(set.n_claims()) : 0) {
    by_rank_.reserve(static_cast<size_t>(set.n_claims()));
    for (int32_t g = 0; g < set.n_groups(); ++g) {
        for (int32_t c : set.group_members(g)) {
            rank_[static_cast<size_t>(c)] = static_cast<int32_t>(by_rank_.size());
            by_rank_.push_back(c);
        }
    }
    std::sort(draw_.pool.begin(), draw_.pool.end());
}

std::vector<int32_t> DemonstrationContexts::context(int32_t target, std::span<const Label> labels) const {
    if (mode_ == MpMode::EXACT) {
        std::vector<int32_t> demos;
        for (int32_t c : by_rank_) {
            if (c != target && labels[static_cast<size_t>(c)] != Label::UNSET) demos.push_back(c);
        }
        return demos;
    }
    return draw_context(target);
}

std::vector<int32_t> DemonstrationContexts::draw_context(int32_t target) const {
    const auto          &pool         = draw_.pool;
    const bool           in_pool      = std::binary_search(pool.begin(), pool.end(), target);
    const size_t         n_candidates = pool.size() - (in_pool ? 1 : 0);
    const size_t         k            = std::min(static_cast<size_t>(context_k_), n_candidates);
    std::vector<int32_t> demos;
    demos.reserve(k);
    if (k == n_candidates) {
        for (int32_t c : pool) {
            if (c != target) demos.push_back(c);
        }
    } else {
        // Floyd's algorithm: k distinct positions among the candidates in O(k).
        SplitMixStream rng(
            mix_seed(mix_seed(seed_ + static_cast<uint64_t>(draw_.epoch)) ^ static_cast<uint64_t>(target)));
        std::unordered_set<size_t> chosen;
        for (size_t j = n_candidates - k; j < n_candidates; ++j) {
            const size_t t = rng.next_below(j + 1);
            chosen.insert(chosen.count(t) ? j : t);
        }
        // Candidate position p maps to pool[p], skipping the target itself.
        const auto target_pos =
            static_cast<size_t>(std::lower_bound(pool.begin(), pool.end(), target) - pool.begin());
        for (size_t p : chosen) {
            const size_t q = (in_pool && p >= target_pos) ? p + 1 : p;
            demos.push_back(pool[q]);
        }
    }
    std::sort(demos.begin(), demos.end(), [&](int32_t x, int32_t y) {
        return rank_[static_cast<size_t>(x)] < rank_[static_cast<size_t>(y)];
    });
    return demos;
}

void DemonstrationContexts::register_target(int32_t target) {
    if (mode_ != MpMode::SPARSE || registered_[static_cast<size_t>(target)]) return;
    registered_[static_cast<size_t>(target)] = 1;
    for (int32_t c : draw_context(target)) holders_[static_cast<size_t>(c)].push_back(target);
}

void DemonstrationContexts::redraw(std::vector<int32_t> pool) {
    if (mode_ != MpMode::SPARSE) throw std::logic_error("redraw: contexts are exact");
    std::sort(pool.begin(), pool.end());
    draw_.pool = std::move(pool);
    ++draw_.epoch;
    std::fill(registered_.begin(), registered_.end(), 0);
    for (auto &h : holders_) h.clear();
}

}  // namespace icm
