#include "check.hpp"
#include "score_cache.hpp"
#include "test_helpers.hpp"

namespace {

icm::ScoreRequest request(int32_t target, std::vector<int32_t> demos, std::vector<icm::Label> labels) {
    icm::ScoreRequest r;
    r.target      = target;
    r.demos       = std::move(demos);
    r.demo_labels = std::move(labels);
    return r;
}

// Records what reaches the "model".
struct CountingScorer : icm::Scorer {
    std::vector<icm::ScoreRequest> seen;
    std::vector<icm::LabelScore>   score(const std::vector<icm::ScoreRequest> &requests) override {
        std::vector<icm::LabelScore> out;
        for (const auto &r : requests) {
            seen.push_back(r);
            out.push_back({-0.1 * r.target, -1.0 - static_cast<double>(r.demos.size())});
        }
        return out;
    }
};

}  // namespace

TEST(key_changes_with_any_part_of_the_prompt) {
    using icm::Label;
    const auto base = icm::score_key(request(3, {1, 2}, {Label::TRUE, Label::FALSE}));
    CHECK(base == icm::score_key(request(3, {1, 2}, {Label::TRUE, Label::FALSE})));
    CHECK(!(base == icm::score_key(request(3, {1, 2}, {Label::TRUE, Label::TRUE}))));   // one label
    CHECK(!(base == icm::score_key(request(3, {2, 1}, {Label::TRUE, Label::FALSE}))));  // order
    CHECK(!(base == icm::score_key(request(4, {1, 2}, {Label::TRUE, Label::FALSE}))));  // target
    CHECK(!(base == icm::score_key(request(3, {1}, {Label::TRUE}))));                   // fewer demos
    CHECK(!(base == icm::score_key(request(3, {1, 5}, {Label::TRUE, Label::FALSE}))));  // other demo
}

TEST(cached_scorer_sends_only_misses_once) {
    using icm::Label;
    const auto        set = testing_helpers::question_set(2, 3);
    CountingScorer    model;
    icm::CachedScorer cached(model, set);
    auto              a     = request(0, {1}, {Label::TRUE});
    auto              b     = request(0, {1}, {Label::FALSE});
    const auto        first = cached.score({a, b, a});  // the duplicate miss is sent once
    CHECK_EQ(model.seen.size(), size_t{2});
    CHECK_EQ(cached.n_requests(), 2);
    CHECK_EQ(cached.n_cache_hits(), 1);
    CHECK_NEAR(first[0].logp_true, first[2].logp_true, 0);
    // The model got rendered prompts.
    CHECK(model.seen[0].prompt == "Q0 answer 1? True\n\nQ0 answer 0? ");
    const auto second = cached.score({b, request(2, {}, {})});
    CHECK_EQ(model.seen.size(), size_t{3});
    CHECK_EQ(cached.n_cache_hits(), 2);
    CHECK_NEAR(second[0].logp_false, first[1].logp_false, 0);
}

TEST(bad_scorer_output_is_an_error) {
    struct Short : icm::Scorer {
        std::vector<icm::LabelScore> score(const std::vector<icm::ScoreRequest> &) override { return {}; }
    } short_scorer;
    struct NotFinite : icm::Scorer {
        std::vector<icm::LabelScore> score(const std::vector<icm::ScoreRequest> &r) override {
            return std::vector<icm::LabelScore>(r.size(), {std::nan(""), 0.0});
        }
    } nan_scorer;
    const auto        set = testing_helpers::question_set(1, 2);
    icm::CachedScorer a(short_scorer, set), b(nan_scorer, set);
    CHECK_THROWS(a.score({request(0, {}, {})}), std::runtime_error);
    CHECK_THROWS(b.score({request(0, {}, {})}), std::domain_error);
    CHECK_EQ(b.cache().size(), size_t{0});  // nothing wrong is remembered
}

TEST_MAIN()
