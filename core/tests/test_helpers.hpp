// Small builders shared by the C++ tests.
#pragma once

#include <string>
#include <vector>

#include "icm/icm.hpp"

namespace testing_helpers {

// n_groups questions with `per_group` answers each; answers of one question are pairwise
// AT_MOST_ONE_TRUE. Claim ids "g<q>c<a>".
inline icm::ClaimSet question_set(int n_groups, int per_group,
                                  icm::RelationKind kind = icm::RelationKind::AT_MOST_ONE_TRUE) {
    std::vector<icm::Claim>    claims;
    std::vector<icm::Relation> relations;
    for (int g = 0; g < n_groups; ++g) {
        const int first = static_cast<int>(claims.size());
        for (int a = 0; a < per_group; ++a) {
            const std::string id = "g" + std::to_string(g) + "c" + std::to_string(a);
            claims.push_back({id, "Q" + std::to_string(g) + " answer " + std::to_string(a) + "? ",
                              "g" + std::to_string(g)});
        }
        for (int a = 0; a < per_group; ++a) {
            for (int b = a + 1; b < per_group; ++b) relations.push_back({kind, first + a, first + b});
        }
    }
    return icm::ClaimSet(std::move(claims), std::move(relations));
}

// Hidden truth for question_set: answer 0 of each question is the true one.
inline std::vector<icm::Label> first_answer_true(int n_groups, int per_group) {
    std::vector<icm::Label> truth;
    for (int g = 0; g < n_groups; ++g) {
        for (int a = 0; a < per_group; ++a) truth.push_back(a == 0 ? icm::Label::TRUE : icm::Label::FALSE);
    }
    return truth;
}

}  // namespace testing_helpers

#include <cmath>

#include "score_cache.hpp"

namespace testing_helpers {

// A scorer whose answer is an arbitrary (hash) function of the whole request: any change
// of target, demonstration, order or label changes the score. It counts its requests.
struct HashScorer : icm::Scorer {
    int64_t                      n = 0;
    std::vector<icm::LabelScore> score(const std::vector<icm::ScoreRequest> &requests) override {
        std::vector<icm::LabelScore> out;
        for (const auto &r : requests) {
            const auto   key = icm::score_key(r);
            const double gap = static_cast<double>(key.lo % 2001) / 200.0 - 5.0;
            out.push_back({-std::log1p(std::exp(-gap)), -std::log1p(std::exp(gap))});
        }
        n += static_cast<int64_t>(requests.size());
        return out;
    }
    bool reads_prompt_text() const override { return false; }
};

// The grouped prompt order, computed the slow obvious way: groups in order of their first
// claim, claims in index order.
inline std::vector<int32_t> grouped_order(const icm::ClaimSet &set) {
    std::vector<int32_t> order;
    std::vector<bool>    done(static_cast<size_t>(set.n_claims()), false);
    for (int32_t i = 0; i < set.n_claims(); ++i) {
        if (done[static_cast<size_t>(i)]) continue;
        for (int32_t j = i; j < set.n_claims(); ++j) {
            if (set.claim(j).group == set.claim(i).group && !set.claim(i).group.empty() &&
                !done[static_cast<size_t>(j)]) {
                order.push_back(j);
                done[static_cast<size_t>(j)] = true;
            }
        }
        if (!done[static_cast<size_t>(i)]) {
            order.push_back(i);
            done[static_cast<size_t>(i)] = true;
        }
    }
    return order;
}

// U(D) in EXACT mode, from scratch: every labeled claim scored with all the others.
inline double reference_utility(const icm::ClaimSet &set, const icm::SearchParams &params,
                                const std::vector<icm::Label> &labels, icm::Scorer &scorer) {
    const auto                     order = grouped_order(set);
    std::vector<icm::ScoreRequest> requests;
    for (int32_t i = 0; i < set.n_claims(); ++i) {
        if (labels[static_cast<size_t>(i)] == icm::Label::UNSET) continue;
        icm::ScoreRequest r;
        r.target = i;
        for (int32_t j : order) {
            if (j != i && labels[static_cast<size_t>(j)] != icm::Label::UNSET) {
                r.demos.push_back(j);
                r.demo_labels.push_back(labels[static_cast<size_t>(j)]);
            }
        }
        requests.push_back(r);
    }
    const auto scores = scorer.score(requests);
    double     sum    = 0;
    for (size_t k = 0; k < requests.size(); ++k) {
        const bool t = labels[static_cast<size_t>(requests[k].target)] == icm::Label::TRUE;
        if (params.mp_objective == icm::MpObjective::MEAN_LOGIT_GAP) {
            sum += t ? scores[k].gap() : -scores[k].gap();
        } else {
            sum += t ? scores[k].logp_true : scores[k].logp_false;
        }
    }
    double mp = sum;
    if (params.mp_objective == icm::MpObjective::MEAN_LOGIT_GAP)
        mp = requests.empty() ? 0.0 : sum / static_cast<double>(requests.size());
    return params.alpha * mp - static_cast<double>(icm::count_inconsistencies(set, labels));
}

}  // namespace testing_helpers
