#include <stdexcept>
#include <string>

#include "check.hpp"
#include "icm/icm.hpp"

using icm::Claim;
using icm::Relation;
using icm::RelationKind;

static bool message_has(const std::function<void()> &fn, const std::string &needle) {
    try {
        fn();
    } catch (const std::invalid_argument &e) {
        return std::string(e.what()).find(needle) != std::string::npos;
    }
    return false;
}

TEST(groups_and_relations_are_indexed) {
    const icm::ClaimSet set({{"a", "A", "q1"}, {"b", "B", "q1"}, {"c", "C", ""}, {"d", "D", ""}},
                            {{RelationKind::OPPOSITE, 0, 1}});
    CHECK_EQ(set.n_claims(), 4);
    CHECK_EQ(set.n_groups(), 3);  // q1, and one own group each for c and d
    CHECK_EQ(set.group_of(0), set.group_of(1));
    CHECK(set.group_of(2) != set.group_of(3));
    CHECK_EQ(set.relations_of(0).size(), size_t{1});
    CHECK_EQ(set.relations_of(2).size(), size_t{0});
    CHECK(set.label_word(icm::Label::TRUE) == "True");
}

TEST(invalid_input_names_the_field) {
    CHECK(message_has([] { icm::ClaimSet({{"a", "", ""}, {"a", "", ""}}, {}); }, "claims[1].id: duplicate"));
    CHECK(message_has([] { icm::ClaimSet({{"", "", ""}}, {}); }, "claims[0].id: empty"));
    CHECK(message_has([] { icm::ClaimSet({{"a", "", ""}}, {{RelationKind::SAME, 0, 3}}); },
                      "relations[0].b: claim index 3 out of range"));
    CHECK(message_has([] { icm::ClaimSet({{"a", "", ""}, {"b", "", ""}}, {{RelationKind::SAME, 1, 1}}); },
                      "relations[0].b: relates claim 1 to itself"));
    CHECK(message_has(
        [] {
            icm::ClaimSet({{"a", "", ""}, {"b", "", ""}},
                          {{RelationKind::SAME, 0, 1}, {RelationKind::OPPOSITE, 1, 0}});
        },
        "relations[1].a"));
    CHECK(message_has([] { icm::ClaimSet({{"a", "", ""}}, {}, "Yes", "Yes"); }, "label words"));
    CHECK(message_has([] { icm::ClaimSet({{"a", "", ""}}, {{static_cast<RelationKind>(9), 0, 0}}); },
                      "relations[0].kind"));
}

TEST(group_constraints_are_validated_and_subset_whole) {
    using K = icm::GroupKind;
    CHECK(message_has(
        [] { icm::ClaimSet({{"a", "", ""}}, {}, "True", "False", "\n\n", {{K::AT_LEAST_ONE_TRUE, {}}}); },
        "group_constraints[0].members: empty"));
    CHECK(message_has(
        [] { icm::ClaimSet({{"a", "", ""}}, {}, "True", "False", "\n\n", {{K::AT_LEAST_ONE_TRUE, {0, 4}}}); },
        "group_constraints[0].members: claim index 4 out of range"));
    CHECK(message_has(
        [] { icm::ClaimSet({{"a", "", ""}}, {}, "True", "False", "\n\n", {{K::AT_LEAST_ONE_TRUE, {0, 0}}}); },
        "listed twice"));
    const icm::ClaimSet set({{"a", "A", "q"}, {"b", "B", "q"}, {"c", "C", "r"}, {"d", "D", "r"}}, {}, "True",
                            "False", "\n\n",
                            {{K::AT_LEAST_ONE_TRUE, {0, 1}}, {K::AT_LEAST_ONE_TRUE, {2, 3}}});
    CHECK_EQ(set.constraints_of(2).size(), size_t{1});
    CHECK_EQ(set.constraints_of(2)[0], 1);
    const std::vector<int32_t> keep{3, 1, 0};  // all of the first group, half of the second
    const icm::ClaimSet        sub = set.subset(keep);
    CHECK_EQ(sub.group_constraints().size(), size_t{1});
    CHECK((sub.group_constraints()[0].members == std::vector<int32_t>{2, 1}));
}

TEST(subset_keeps_relations_inside_it) {
    const icm::ClaimSet set({{"a", "A", "q"}, {"b", "B", "q"}, {"c", "C", "q"}},
                            {{RelationKind::AT_MOST_ONE_TRUE, 0, 1}, {RelationKind::AT_MOST_ONE_TRUE, 1, 2}},
                            "Yes", "No", "\n");
    const std::vector<int32_t> keep{2, 1};
    const icm::ClaimSet        sub = set.subset(keep);
    CHECK_EQ(sub.n_claims(), 2);
    CHECK(sub.claim(0).id == "c");
    CHECK_EQ(sub.relations().size(), size_t{1});
    CHECK_EQ(sub.relations()[0].a, 1);
    CHECK_EQ(sub.relations()[0].b, 0);
    CHECK(sub.label_word(icm::Label::FALSE) == "No");
    CHECK(sub.demo_separator() == "\n");
}

TEST(prompt_renders_demonstrations_then_target) {
    const icm::ClaimSet set({{"a", "Claim A. I think this claim is ", ""},
                             {"b", "Claim B. I think this claim is ", ""},
                             {"c", "Claim C. I think this claim is ", ""}},
                            {});
    icm::ScoreRequest   r;
    r.target      = 2;
    r.demos       = {1, 0};
    r.demo_labels = {icm::Label::TRUE, icm::Label::FALSE};
    CHECK(icm::render_prompt(set, r) ==
          "Claim B. I think this claim is True\n\nClaim A. I think this claim is False\n\n"
          "Claim C. I think this claim is ");
}

TEST_MAIN()
