#include "consistency_fix.hpp"

#include <limits>
#include <vector>

namespace icm {

namespace {

struct Option {
    Label  a, b;
    double utility = -std::numeric_limits<double>::infinity();
};

// Scores every option of one relation, sending all their requests in one batch, and
// returns the best (the first one on ties, like numpy's argmax).
Option best_option(Labeling &labeling, const Relation &rel, const SearchParams &params,
                   CachedScorer &scorer) {
    const auto pairs = params.fix_options == FixOptions::CONSISTENT ? relation_consistent_options(rel.kind)
                                                                    : relation_code_options(rel.kind);
    std::vector<ScoreRequest> prefetch;
    for (const auto &[la, lb] : pairs) {
        const size_t mark = labeling.mark();
        labeling.apply(rel.a, la);
        labeling.apply(rel.b, lb);
        for (auto &r : labeling.stale_requests()) prefetch.push_back(std::move(r));
        labeling.rollback(mark);
    }
    scorer.score(std::move(prefetch));  // fills the cache; the loop below only reads it

    Option best;
    for (const auto &[la, lb] : pairs) {
        const size_t mark = labeling.mark();
        labeling.apply(rel.a, la);
        labeling.apply(rel.b, lb);
        labeling.evaluate();
        const double u = labeling.utility();
        labeling.rollback(mark);
        if (u > best.utility) best = {la, lb, u};
    }
    return best;
}

int32_t apply_option(Labeling &labeling, const Relation &rel, const Option &option) {
    const int32_t changed = (labeling.label(rel.a) != option.a) + (labeling.label(rel.b) != option.b);
    labeling.apply(rel.a, option.a);
    labeling.apply(rel.b, option.b);
    labeling.evaluate();
    return changed;
}

}  // namespace

int32_t consistency_fix(Labeling &labeling, const SearchParams &params, RandomStream &rng,
                        CachedScorer &scorer, double baseline) {
    const auto &relations = labeling.tracker();
    int32_t     n_changed = 0;
    for (int32_t round = 0; round < params.consistency_fix_k; ++round) {
        if (labeling.inconsistencies() == 0) break;
        if (params.fix_pair_search == FixPairSearch::SAMPLE) {
            // Algorithm 2: one sampled inconsistent pair per round.
            const Relation &rel  = labeling.claims_relation(relations.sample(rng));
            const Option    best = best_option(labeling, rel, params, scorer);
            if (best.utility > baseline) {
                n_changed += apply_option(labeling, rel, best);
                baseline = best.utility;
            }
        } else {
            // The original code: walk the pairs in random order, take the first whose
            // best option does not lower U; stop when none does.
            std::vector<int32_t> order = relations.sorted();
            for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.next_below(i)]);
            bool found = false;
            for (int32_t r : order) {
                const Relation &rel  = labeling.claims_relation(r);
                const Option    best = best_option(labeling, rel, params, scorer);
                if (best.utility >= baseline) {
                    n_changed += apply_option(labeling, rel, best);
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
