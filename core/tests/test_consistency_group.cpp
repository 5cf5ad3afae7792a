#include <random>

#include "check.hpp"
#include "consistency_group.hpp"
#include "test_helpers.hpp"

using icm::Label;
using icm::RelationKind;

TEST(relation_truth_tables) {
    const Label F = Label::FALSE, T = Label::TRUE, U = Label::UNSET;
    CHECK(icm::relation_holds(RelationKind::SAME, T, T));
    CHECK(icm::relation_holds(RelationKind::SAME, F, F));
    CHECK(!icm::relation_holds(RelationKind::SAME, T, F));
    CHECK(!icm::relation_holds(RelationKind::SAME, F, T));
    CHECK(!icm::relation_holds(RelationKind::AT_MOST_ONE_TRUE, T, T));
    CHECK(icm::relation_holds(RelationKind::AT_MOST_ONE_TRUE, T, F));
    CHECK(icm::relation_holds(RelationKind::AT_MOST_ONE_TRUE, F, T));
    CHECK(icm::relation_holds(RelationKind::AT_MOST_ONE_TRUE, F, F));
    CHECK(!icm::relation_holds(RelationKind::OPPOSITE, T, T));
    CHECK(!icm::relation_holds(RelationKind::OPPOSITE, F, F));
    CHECK(icm::relation_holds(RelationKind::OPPOSITE, T, F));
    CHECK(icm::relation_holds(RelationKind::OPPOSITE, F, T));
    for (auto kind : {RelationKind::SAME, RelationKind::AT_MOST_ONE_TRUE, RelationKind::OPPOSITE}) {
        for (Label l : {F, T, U}) {
            CHECK(icm::relation_holds(kind, U, l));
            CHECK(icm::relation_holds(kind, l, U));
        }
    }
}

TEST(consistent_options_are_exactly_the_consistent_pairs) {
    using P       = std::vector<std::pair<Label, Label>>;
    const Label F = Label::FALSE, T = Label::TRUE;
    CHECK((icm::relation_consistent_options(RelationKind::SAME) == P{{F, F}, {T, T}}));
    CHECK((icm::relation_consistent_options(RelationKind::AT_MOST_ONE_TRUE) == P{{F, F}, {F, T}, {T, F}}));
    CHECK((icm::relation_consistent_options(RelationKind::OPPOSITE) == P{{F, T}, {T, F}}));
    // The original code never tries "both false" for mutually exclusive answers.
    CHECK((icm::relation_code_options(RelationKind::AT_MOST_ONE_TRUE) == P{{F, T}, {T, F}}));
    CHECK((icm::relation_code_options(RelationKind::SAME) == P{{F, F}, {T, T}}));
}

TEST(count_inconsistencies_per_kind) {
    // Three claims per kind: pairs (0,1), (0,2), (1,2).
    for (auto kind : {RelationKind::SAME, RelationKind::AT_MOST_ONE_TRUE, RelationKind::OPPOSITE}) {
        const auto               set = testing_helpers::question_set(1, 3, kind);
        const std::vector<Label> all_true(3, Label::TRUE);
        const std::vector<Label> mixed{Label::TRUE, Label::FALSE, Label::UNSET};
        const int64_t            expect_all_true = kind == RelationKind::SAME ? 0 : 3;
        CHECK_EQ(icm::count_inconsistencies(set, all_true), expect_all_true);
        const int64_t expect_mixed = kind == RelationKind::SAME ? 1 : 0;
        CHECK_EQ(icm::count_inconsistencies(set, mixed), expect_mixed);
    }
    const auto               set = testing_helpers::question_set(2, 2, RelationKind::OPPOSITE);
    const std::vector<Label> labels{Label::TRUE, Label::TRUE, Label::FALSE, Label::TRUE};
    CHECK((icm::inconsistent_relations(set, labels) == std::vector<int32_t>{0}));
    CHECK_THROWS(icm::count_inconsistencies(set, std::vector<Label>(3, Label::TRUE)), std::invalid_argument);
}

TEST(at_least_one_true_groups) {
    const Label F = Label::FALSE, T = Label::TRUE, U = Label::UNSET;
    using K = icm::GroupKind;
    CHECK(!icm::group_constraint_holds(K::AT_LEAST_ONE_TRUE, std::vector<Label>{F, F, F}));
    CHECK(icm::group_constraint_holds(K::AT_LEAST_ONE_TRUE, std::vector<Label>{F, T, F}));
    CHECK(icm::group_constraint_holds(K::AT_LEAST_ONE_TRUE, std::vector<Label>{T, T, T}));
    CHECK(icm::group_constraint_holds(K::AT_LEAST_ONE_TRUE, std::vector<Label>{F, U, F}));  // may still be
    // Exactly one of three: pairwise at most one, plus the group.
    const auto          base = testing_helpers::question_set(1, 3);
    const icm::ClaimSet set(base.claims(), base.relations(), "True", "False", "\n\n",
                            {{K::AT_LEAST_ONE_TRUE, {0, 1, 2}}});
    CHECK_EQ(set.n_constraints(), 4);
    CHECK_EQ(icm::count_inconsistencies(set, std::vector<Label>{F, F, F}), 1);
    CHECK_EQ(icm::count_inconsistencies(set, std::vector<Label>{F, T, F}), 0);
    CHECK_EQ(icm::count_inconsistencies(set, std::vector<Label>{T, T, F}), 1);
    CHECK((icm::inconsistent_constraints(set, std::vector<Label>{F, F, F}) == std::vector<int32_t>{3}));
    CHECK((icm::inconsistent_relations(set, std::vector<Label>{F, F, F}).empty()));
    const auto options = icm::constraint_fix_options(set, 3, icm::FixOptions::CONSISTENT);
    CHECK_EQ(options.size(), size_t{3});
    CHECK((options[1] == std::vector<std::pair<int32_t, Label>>{{1, T}}));
    CHECK_EQ(icm::constraint_fix_options(set, 0, icm::FixOptions::CONSISTENT).size(), size_t{3});
    CHECK_EQ(icm::constraint_fix_options(set, 0, icm::FixOptions::CODE).size(), size_t{2});
}

TEST(incremental_tracker_matches_full_recount) {
    // Property test: random relations of every kind, random label changes.
    std::mt19937 gen(7);
    for (int trial = 0; trial < 50; ++trial) {
        const int               n = 12;
        std::vector<icm::Claim> claims;
        for (int i = 0; i < n; ++i)
            claims.push_back({"c" + std::to_string(i), "p", "g" + std::to_string(i % 3)});
        std::vector<icm::Relation> relations;
        for (int a = 0; a < n; ++a) {
            for (int b = a + 1; b < n; ++b) {
                if (gen() % 3 == 0) relations.push_back({static_cast<RelationKind>(gen() % 3), a, b});
            }
        }
        std::vector<icm::GroupConstraint> groups;
        for (int g = 0; g < 3; ++g) {
            icm::GroupConstraint group{icm::GroupKind::AT_LEAST_ONE_TRUE, {}};
            for (int i = g; i < n; i += 3) {
                if (gen() % 2) group.members.push_back(i);
            }
            if (!group.members.empty()) groups.push_back(group);
        }
        const icm::ClaimSet       set(claims, relations, "True", "False", "\n\n", groups);
        std::vector<Label>        labels(n, Label::UNSET);
        icm::InconsistencyTracker tracker(set, labels);
        for (int step = 0; step < 200; ++step) {
            const int                                    c = static_cast<int>(gen() % n);
            const Label                                  l = static_cast<Label>(static_cast<int>(gen() % 2));
            const std::vector<std::pair<int32_t, Label>> change{{c, l}};
            const int64_t predicted        = tracker.count() + tracker.delta_if(labels, change);
            labels[static_cast<size_t>(c)] = l;
            tracker.on_label_change(labels, c);
            CHECK_EQ(tracker.count(), icm::count_inconsistencies(set, labels));
            CHECK_EQ(predicted, tracker.count());
            CHECK((tracker.sorted() == icm::inconsistent_constraints(set, labels)));
        }
        // Two simultaneous changes, possibly on one relation's both ends.
        const std::vector<std::pair<int32_t, Label>> both{{0, Label::TRUE}, {1, Label::FALSE}};
        auto                                         after = labels;
        after[0]                                           = Label::TRUE;
        after[1]                                           = Label::FALSE;
        CHECK_EQ(tracker.count() + tracker.delta_if(labels, both), icm::count_inconsistencies(set, after));
    }
}

TEST_MAIN()
