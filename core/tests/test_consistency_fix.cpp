#include <limits>

#include "check.hpp"
#include "consistency_fix.hpp"
#include "test_helpers.hpp"

using icm::Label;

namespace {

// Each claim's gap is fixed, whatever the demonstrations: U is then easy to predict.
struct FixedGapScorer : icm::Scorer {
    std::vector<double> gap;
    explicit FixedGapScorer(std::vector<double> g) : gap(std::move(g)) {}
    std::vector<icm::LabelScore> score(const std::vector<icm::ScoreRequest> &requests) override {
        std::vector<icm::LabelScore> out;
        for (const auto &r : requests) out.push_back({gap[static_cast<size_t>(r.target)], 0.0});
        return out;
    }
    bool reads_prompt_text() const override { return false; }
};

struct Fixture {
    icm::ClaimSet     set;
    icm::SearchParams params;
    FixedGapScorer    model;
    icm::CachedScorer cached;
    icm::Labeling     labeling;
    icm::RandomStream rng{5};
    Fixture(icm::RelationKind kind, std::vector<double> gaps, std::vector<Label> labels, icm::SearchParams p)
        : set(testing_helpers::question_set(1, static_cast<int>(gaps.size()), kind)),
          params(p),
          model(std::move(gaps)),
          cached(model, set),
          labeling(set, params, cached, std::move(labels), {}) {
        labeling.evaluate();
    }
};

}  // namespace

TEST(paper_fix_tries_every_consistent_option_and_keeps_the_best) {
    // Both claims prefer FALSE and both are labeled TRUE: (F, F) is the best option,
    // and only the paper's enumeration tries it.
    Fixture      f(icm::RelationKind::AT_MOST_ONE_TRUE, {-2.0, -3.0}, {Label::TRUE, Label::TRUE},
                   icm::search_params_paper());
    const double before = f.labeling.utility();
    CHECK_NEAR(before, 30.0 * (-2.5) - 1.0, 1e-9);
    const int32_t changed = icm::consistency_fix(f.labeling, f.params, f.rng, f.cached, before);
    CHECK_EQ(changed, 2);
    CHECK((f.labeling.labels() == std::vector<Label>{Label::FALSE, Label::FALSE}));
    CHECK_NEAR(f.labeling.utility(), 30.0 * 2.5, 1e-9);
}

TEST(code_fix_only_tries_its_two_options) {
    Fixture f(icm::RelationKind::AT_MOST_ONE_TRUE, {-2.0, -3.0}, {Label::TRUE, Label::TRUE},
              icm::search_params_code());
    icm::consistency_fix(f.labeling, f.params, f.rng, f.cached, f.labeling.utility());
    // (T, F) scores 30 * (-2 + 3) / 2 = 15 > (F, T) = -15; (F, F) is never tried.
    CHECK((f.labeling.labels() == std::vector<Label>{Label::TRUE, Label::FALSE}));
}

TEST(fix_keeps_labels_when_no_option_raises_u) {
    // An inconsistent SAME pair whose labels the model strongly holds: changing either
    // costs more MP than the one inconsistency it removes (alpha * 10 / 2 > 1).
    Fixture f(icm::RelationKind::SAME, {10.0, -10.0}, {Label::TRUE, Label::FALSE},
              icm::search_params_paper());
    CHECK_EQ(f.labeling.inconsistencies(), 1);
    const int32_t changed = icm::consistency_fix(f.labeling, f.params, f.rng, f.cached, f.labeling.utility());
    CHECK_EQ(changed, 0);
    CHECK((f.labeling.labels() == std::vector<Label>{Label::TRUE, Label::FALSE}));
    // With the code's dummy baseline the best option is applied anyway.
    Fixture g(icm::RelationKind::SAME, {10.0, -10.0}, {Label::TRUE, Label::FALSE}, icm::search_params_code());
    icm::consistency_fix(g.labeling, g.params, g.rng, g.cached, -std::numeric_limits<double>::infinity());
    CHECK_EQ(g.labeling.inconsistencies(), 0);
}

TEST(fix_of_an_all_false_group_makes_the_most_predictable_member_true) {
    // Exactly one of four answers is true; all four are labeled false (consistent pairwise,
    // but the group is violated). The fix must make claim 2, the model's answer, true.
    for (auto p : {icm::search_params_paper(), icm::search_params_code()}) {
        const auto          base = testing_helpers::question_set(1, 4);
        const icm::ClaimSet set(base.claims(), base.relations(), "True", "False", "\n\n",
                                {{icm::GroupKind::AT_LEAST_ONE_TRUE, {0, 1, 2, 3}}});
        FixedGapScorer      model({-1.0, -1.5, 0.5, -0.5});
        icm::CachedScorer   cached(model, set);
        icm::Labeling       labeling(set, p, cached, std::vector<Label>(4, Label::FALSE), {});
        icm::RandomStream   rng(3);
        labeling.evaluate();
        CHECK_EQ(labeling.inconsistencies(), 1);
        // A lenient baseline: the best option is taken even if U drops a little.
        icm::consistency_fix(labeling, p, rng, cached, labeling.utility() - 100);
        CHECK_EQ(labeling.inconsistencies(), 0);
        CHECK(
            (labeling.labels() == std::vector<Label>{Label::FALSE, Label::FALSE, Label::TRUE, Label::FALSE}));
    }
}

TEST(fix_resolves_many_pairs_within_k_rounds) {
    // Four answers, all labeled TRUE (6 violated pairs). Claim 2 is the model's answer.
    for (auto p : {icm::search_params_paper(), icm::search_params_code()}) {
        p.consistency_fix_k = 20;
        Fixture f(icm::RelationKind::AT_MOST_ONE_TRUE, {-1.0, -1.5, 4.0, -0.5},
                  std::vector<Label>(4, Label::TRUE), p);
        CHECK_EQ(f.labeling.inconsistencies(), 6);
        icm::consistency_fix(f.labeling, f.params, f.rng, f.cached, f.labeling.utility());
        CHECK_EQ(f.labeling.inconsistencies(), 0);
        CHECK(f.labeling.label(2) == Label::TRUE);
        // The fix evaluated the objective at the state it left.
        CHECK_NEAR(f.labeling.utility(),
                   testing_helpers::reference_utility(f.set, f.params, f.labeling.labels(), f.model), 1e-9);
    }
    // K = 0 rounds: nothing happens.
    auto p              = icm::search_params_paper();
    p.consistency_fix_k = 0;
    Fixture f(icm::RelationKind::AT_MOST_ONE_TRUE, {-1.0, -1.5, 4.0, -0.5},
              std::vector<Label>(4, Label::TRUE), p);
    CHECK_EQ(icm::consistency_fix(f.labeling, f.params, f.rng, f.cached, f.labeling.utility()), 0);
}

TEST_MAIN()
