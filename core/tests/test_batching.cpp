#include <algorithm>
#include <set>

#include "check.hpp"
#include "test_helpers.hpp"

TEST(batches_never_split_a_group_and_cover_every_claim_once) {
    // Groups of varied sizes: 1..6 claims.
    std::vector<icm::Claim> claims;
    int                     n = 0;
    for (int g = 0; g < 60; ++g) {
        for (int k = 0; k < 1 + g % 6; ++k)
            claims.push_back({"c" + std::to_string(n++), "p", "g" + std::to_string(g)});
    }
    const icm::ClaimSet set(claims, {});
    for (int32_t batch_size : {1, 5, 16, 64, 1000}) {
        const auto       batches = icm::make_batches(set, batch_size, 3);
        std::vector<int> seen(static_cast<size_t>(set.n_claims()), 0);
        for (const auto &batch : batches) {
            std::set<int32_t> groups;
            for (int32_t c : batch) {
                ++seen[static_cast<size_t>(c)];
                groups.insert(set.group_of(c));
            }
            // Every group in the batch is there in full.
            size_t members = 0;
            for (int32_t g : groups) members += set.group_members(g).size();
            CHECK_EQ(members, batch.size());
            // About batch_size: never more than batch_size + largest group - 1.
            CHECK(batch.size() <= static_cast<size_t>(batch_size) + 5);
        }
        CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
        if (batch_size == 1000) CHECK_EQ(batches.size(), size_t{1});
    }
}

TEST(batching_is_seeded) {
    const auto set = testing_helpers::question_set(40, 4);
    CHECK((icm::make_batches(set, 32, 1) == icm::make_batches(set, 32, 1)));
    CHECK(!(icm::make_batches(set, 32, 1) == icm::make_batches(set, 32, 2)));
    CHECK_EQ(icm::make_batches(set, 32, 1).size(), size_t{5});
    CHECK_THROWS(icm::make_batches(set, 0, 1), std::invalid_argument);
}

TEST_MAIN()
