#include <random>
#include <set>

#include "check.hpp"
#include "labeling.hpp"
#include "mutual_predictability.hpp"
#include "test_helpers.hpp"

using icm::Label;

namespace {

icm::ClaimSet mixed_set() {
    // Interleaved groups so that grouped order differs from index order.
    std::vector<icm::Claim> claims;
    for (int i = 0; i < 14; ++i)
        claims.push_back({"c" + std::to_string(i), "claim " + std::to_string(i),
                          i % 5 == 4 ? "" : "g" + std::to_string(i % 3)});
    std::vector<icm::Relation> relations{{icm::RelationKind::AT_MOST_ONE_TRUE, 0, 3},
                                         {icm::RelationKind::SAME, 1, 4},
                                         {icm::RelationKind::OPPOSITE, 2, 5},
                                         {icm::RelationKind::AT_MOST_ONE_TRUE, 6, 9}};
    return icm::ClaimSet(claims, relations);
}

}  // namespace

TEST(mp_terms) {
    const icm::LabelScore s{-0.2, -1.9};
    CHECK_NEAR(icm::mp_term(s, Label::TRUE, icm::MpObjective::MEAN_LOGIT_GAP) / icm::MP_TERM_SCALE, 1.7,
               1e-9);
    CHECK_NEAR(icm::mp_term(s, Label::FALSE, icm::MpObjective::MEAN_LOGIT_GAP) / icm::MP_TERM_SCALE, -1.7,
               1e-9);
    CHECK_NEAR(icm::mp_term(s, Label::TRUE, icm::MpObjective::SUM_LOGPROB) / icm::MP_TERM_SCALE, -0.2, 1e-9);
    CHECK_NEAR(icm::mp_term(s, Label::FALSE, icm::MpObjective::SUM_LOGPROB) / icm::MP_TERM_SCALE, -1.9, 1e-9);
}

TEST(exact_context_is_every_other_labeled_claim_in_grouped_order) {
    const auto                 set = mixed_set();
    icm::SearchParams          p;
    icm::DemonstrationContexts contexts(set, p, {});
    std::vector<Label>         labels(14, Label::TRUE);
    labels[7] = Label::UNSET;
    std::vector<int32_t> expect;
    for (int32_t c : testing_helpers::grouped_order(set)) {
        if (c != 3 && c != 7) expect.push_back(c);
    }
    CHECK((contexts.context(3, labels) == expect));
    CHECK(expect.front() == 0 && expect[1] == 6);  // group g0 = {0, 6, 9, 12} first
}

TEST(sparse_contexts_are_drawn_from_the_pool) {
    const auto        set = mixed_set();
    icm::SearchParams p;
    p.mp_mode   = icm::MpMode::SPARSE;
    p.context_k = 4;
    icm::DemonstrationContexts     contexts(set, p, {3, {0, 1, 2, 5, 6, 8, 9, 10}});
    const std::vector<Label>       labels(14, Label::TRUE);
    std::set<std::vector<int32_t>> distinct;
    for (int32_t t = 0; t < 14; ++t) {
        const auto ctx = contexts.context(t, labels);
        CHECK_EQ(ctx.size(), size_t{4});
        std::set<int32_t> unique(ctx.begin(), ctx.end());
        CHECK_EQ(unique.size(), size_t{4});
        CHECK(!unique.count(t));
        for (int32_t c : ctx) CHECK((std::set<int32_t>{0, 1, 2, 5, 6, 8, 9, 10}.count(c) == 1));
        CHECK((ctx == contexts.context(t, labels)));  // deterministic
        distinct.insert(ctx);
    }
    CHECK(distinct.size() > 5);  // actually random across targets
    // A pool no larger than k + 1: the context is the whole pool but the target.
    icm::DemonstrationContexts small(set, p, {0, {1, 2, 3}});
    CHECK((small.context(2, labels) == std::vector<int32_t>{1, 3}) ||
          (small.context(2, labels) == std::vector<int32_t>{3, 1}));
}

TEST(incremental_utility_matches_from_scratch_reference) {
    // Property test: random applies, rollbacks and commits; after each evaluate, U from the
    // incremental Labeling equals U recomputed from scratch by the slow reference.
    const auto set = mixed_set();
    for (auto objective : {icm::MpObjective::MEAN_LOGIT_GAP, icm::MpObjective::SUM_LOGPROB}) {
        icm::SearchParams p;
        p.alpha        = 7.0;
        p.mp_objective = objective;
        testing_helpers::HashScorer model, oracle_model;
        icm::CachedScorer           cached(model, set);
        icm::Labeling               d(set, p, cached, std::vector<Label>(14, Label::UNSET), {});
        std::vector<Label>          mirror(14, Label::UNSET);
        std::mt19937                gen(11);
        std::vector<std::pair<size_t, std::vector<Label>>> marks;
        for (int step = 0; step < 300; ++step) {
            const unsigned op = gen() % 10;
            if (op < 6) {
                const int   c = static_cast<int>(gen() % 14);
                const Label l = static_cast<Label>(static_cast<int>(gen() % 2));
                d.apply(c, l);
                mirror[static_cast<size_t>(c)] = l;
            } else if (op < 8) {
                marks.emplace_back(d.mark(), mirror);
            } else if (op == 8 && !marks.empty()) {
                d.rollback(marks.back().first);
                mirror = marks.back().second;
                marks.pop_back();
            } else {
                d.commit();
                marks.clear();
            }
            d.evaluate();
            CHECK((d.labels() == mirror));
            CHECK_NEAR(d.utility(), testing_helpers::reference_utility(set, p, mirror, oracle_model), 1e-8);
            CHECK_EQ(d.inconsistencies(), icm::count_inconsistencies(set, mirror));
        }
    }
}

TEST(sparse_relabel_rescores_only_the_holders) {
    const auto        set = testing_helpers::question_set(50, 2);
    icm::SearchParams p;
    p.mp_mode   = icm::MpMode::SPARSE;
    p.context_k = 4;
    testing_helpers::HashScorer model;
    icm::CachedScorer           cached(model, set);
    std::vector<Label>          labels(100, Label::FALSE);
    std::vector<int32_t>        pool(100);
    for (int i = 0; i < 100; ++i) pool[static_cast<size_t>(i)] = i;
    icm::Labeling d(set, p, cached, labels, {1, pool});
    d.evaluate();
    CHECK_EQ(cached.n_requests(), 100);
    d.commit();
    const size_t holders = d.contexts().holders(17).size();
    d.apply(17, Label::TRUE);
    d.evaluate();
    CHECK_EQ(cached.n_requests(), 100 + static_cast<int64_t>(holders));
    CHECK(holders < 20);
    // Same result as scoring everything again from scratch with the same draw.
    labels[17] = Label::TRUE;
    testing_helpers::HashScorer model2;
    icm::CachedScorer           cached2(model2, set);
    icm::Labeling               fresh(set, p, cached2, labels, {1, pool});
    fresh.evaluate();
    CHECK_NEAR(d.utility(), fresh.utility(), 1e-12);
}

TEST_MAIN()
