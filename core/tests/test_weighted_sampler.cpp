#include "check.hpp"
#include "weighted_sampler.hpp"

TEST(sampling_frequencies_follow_weights) {
    icm::WeightedSampler sampler(5, 1.0);
    sampler.set(2, 100.0);
    sampler.set(4, 0.0);
    CHECK_NEAR(sampler.total(), 103.0, 0);
    CHECK_NEAR(sampler.prefix(3), 102.0, 0);
    icm::RandomStream rng(1);
    std::vector<int>  counts(5, 0);
    const int         n = 206000;
    for (int i = 0; i < n; ++i) ++counts[sampler.sample(rng)];
    CHECK_EQ(counts[4], 0);
    CHECK_NEAR(counts[2] / double(n), 100.0 / 103.0, 0.003);
    for (int i : {0, 1, 3}) CHECK_NEAR(counts[static_cast<size_t>(i)] / double(n), 1.0 / 103.0, 0.002);
}

TEST(updates_and_edges) {
    icm::WeightedSampler sampler(1000, 0.0);
    sampler.set(999, 3.0);
    icm::RandomStream rng(2);
    for (int i = 0; i < 100; ++i) CHECK_EQ(sampler.sample(rng), size_t{999});
    sampler.set(0, 3.0);
    sampler.set(999, 0.0);
    for (int i = 0; i < 100; ++i) CHECK_EQ(sampler.sample(rng), size_t{0});
    CHECK_THROWS(sampler.set(1, -1.0), std::invalid_argument);
    icm::WeightedSampler empty(3, 0.0);
    CHECK_THROWS(empty.sample(rng), std::logic_error);
}

TEST_MAIN()
