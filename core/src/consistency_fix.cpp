#include "consistency_fix.hpp"

#include <limits>
#include <vector>

namespace icm {

namespace {

using Changes = std::vector<std::pair<int32_t, Label>>;

struct Option {
    const Changes *changes = nullptr;
    double         utility = -std::numeric_limits<double>::infinity();
};

void apply_changes(Labeling &labeling, const Changes &changes) {
    for (const auto &[claim, label] : changes) labeling.apply(claim, label);
}

// Scores every option of one violated constraint, sending all their requests in one
// batch, and returns the best (the first one on ties, like numpy's argmax).
Option best_option(Labeling &labeling, const std::vector<Changes> &options, CachedScorer &scorer) {
    std::vector<ScoreRequest> prefetch;
    for (const Changes &changes : options) {
        const size_t mark = labeling.mark();
        apply_changes(labeling, changes);
        for (auto &r : labeling.stale_requests()) prefetch.push_back(std::move(r));
        labeling.rollback(mark);
    }
    scorer.score(std::move(prefetch));  // fills the cache; the loop below only reads it

    Option best;
    for (const Changes &changes : options) {
        const size_t mark = labeling.mark();
        apply_changes(labeling, changes);
        labeling.evaluate();
        const double u = labeling.utility();
        labeling.rollback(mark);
        if (u > best.utility) best = {&changes, u};
    }
    return best;
}

int32_t apply_option(Labeling &labeling, const Option &option) {
    int32_t changed = 0;
    for (const auto &[claim, label] : *option.changes) changed += labeling.label(claim) != label;
    apply_changes(labeling, *option.changes);
    labeling.evaluate();
    return changed;
}

}  // namespace

int32_t consistency_fix(Labeling &labeling, const SearchParams &params, RandomStream &rng,
                        CachedScorer &scorer, double baseline) {
    const ClaimSet &set       = labeling.claim_set();
    int32_t         n_changed = 0;
    for (int32_t round = 0; round < params.consistency_fix_k; ++round) {
        if (labeling.inconsistencies() == 0) break;
        if (params.fix_pair_search == FixPairSearch::SAMPLE) {
            // Algorithm 2: one sampled inconsistent pair (or group) per round.
            const auto options =
                constraint_fix_options(set, labeling.tracker().sample(rng), params.fix_options);
            const Option best = best_option(labeling, options, scorer);
            if (best.utility > baseline) {
                n_changed += apply_option(labeling, best);
                baseline = best.utility;
            }
        } else {
            // The original code: walk the inconsistent pairs in random order, take the first
            // whose best option does not lower U. Once a round has found one, the original
            // runs on to K rounds even through rounds that find none; such a round leaves the
            // labelling unchanged, so every later round sees the same pairs and scores and
            // finds none either: stopping here gives the same labels with fewer draws.
            std::vector<int32_t> order = labeling.tracker().sorted();
            for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.next_below(i)]);
            bool found = false;
            for (int32_t c : order) {
                const auto   options = constraint_fix_options(set, c, params.fix_options);
                const Option best    = best_option(labeling, options, scorer);
                if (best.utility >= baseline) {
                    n_changed += apply_option(labeling, best);
                    baseline = best.utility;
                    found    = true;
                    break;
                }
            }
            if (!found) break;
        }
    }
    return n_changed;
}

}  // namespace icm
