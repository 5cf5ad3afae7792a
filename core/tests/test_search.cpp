#include <stdexcept>
#include <tuple>
#include <utility>

#include "check.hpp"
#include "random_stream.hpp"
#include "test_helpers.hpp"

using icm::Label;

namespace {

// 100 questions x 3 answers, exactly one true answer per question at a varying position.
struct QuestionBed {
    icm::ClaimSet      set = testing_helpers::question_set(100, 3);
    std::vector<Label> truth;
    QuestionBed() {
        for (int g = 0; g < 100; ++g) {
            for (int a = 0; a < 3; ++a) truth.push_back(a == (g * 7) % 3 ? Label::TRUE : Label::FALSE);
        }
    }
};

double agreement(const std::vector<Label> &labels, const std::vector<Label> &truth) {
    int n = 0, same = 0;
    for (size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] == Label::UNSET) continue;
        ++n;
        same += labels[i] == truth[i];
    }
    return n == 0 ? 0.0 : static_cast<double>(same) / n;
}

int n_labeled(const std::vector<Label> &labels) {
    int n = 0;
    for (Label l : labels) n += l != Label::UNSET;
    return n;
}

// Throws on its n-th call, then behaves like the wrapped scorer.
struct FlakyScorer : icm::Scorer {
    icm::Scorer &inner;
    int          calls = 0, fail_at;
    FlakyScorer(icm::Scorer &s, int at) : inner(s), fail_at(at) {}
    std::vector<icm::LabelScore> score(const std::vector<icm::ScoreRequest> &r) override {
        if (++calls == fail_at) throw std::runtime_error("server went away");
        return inner.score(r);
    }
    bool reads_prompt_text() const override { return false; }
};

}  // namespace

TEST(recovers_hidden_labels_with_an_informative_scorer) {
    // The stand-in model knows the truth only noisily on its own (zero-shot accuracy
    // Phi(1.5) ~ 93%) and better with correct demonstrations (Phi(2.5) ~ 99%). ICM must
    // find labels that beat its zero-shot answers, from random initial labels, every seed.
    QuestionBed                      bed;
    const icm::SyntheticScorerParams sp{1.5, 1.0, 1.0, false, 3};
    {
        icm::SyntheticScorer           zero_shot(bed.truth, sp);
        std::vector<icm::ScoreRequest> requests(bed.truth.size());
        for (size_t i = 0; i < requests.size(); ++i) requests[i].target = static_cast<int32_t>(i);
        std::vector<Label> predicted;
        for (const auto &s : zero_shot.score(requests))
            predicted.push_back(s.gap() > 0 ? Label::TRUE : Label::FALSE);
        const double acc = agreement(predicted, bed.truth);
        std::fprintf(stderr, "  zero-shot agreement of the stand-in: %.3f\n", acc);
        CHECK(acc < 0.95);
    }
    for (auto mode : {icm::MpMode::EXACT, icm::MpMode::SPARSE}) {
        for (uint64_t seed : {1, 2, 3}) {
            icm::SyntheticScorer scorer(bed.truth, sp);
            auto                 p = icm::search_params_paper();
            p.mp_mode              = mode;
            p.seed                 = seed;
            p.max_iterations       = 1500;
            icm::Search search(bed.set, p, scorer);
            search.run();
            const auto &labels = search.labels();
            CHECK(n_labeled(labels) >= 290);
            const double acc = agreement(labels, bed.truth);
            std::fprintf(stderr, "  mode %d seed %d: %d labeled, agreement %.3f, I=%lld, requests %lld\n",
                         static_cast<int>(mode), static_cast<int>(seed), n_labeled(labels), acc,
                         static_cast<long long>(search.inconsistencies()),
                         static_cast<long long>(scorer.n_requests()));
            CHECK(acc >= 0.95);
        }
    }
}

TEST(a_scorer_that_ignores_the_claims_finds_chance_labels) {
    // No relations, balanced random truth: nothing but the scorer could carry the truth.
    std::vector<icm::Claim> claims;
    std::vector<Label>      truth;
    icm::RandomStream       coin(99);
    for (int i = 0; i < 300; ++i) {
        claims.push_back({"c" + std::to_string(i), "p", ""});
        truth.push_back(coin.next_unit() < 0.5 ? Label::TRUE : Label::FALSE);
    }
    const icm::ClaimSet set(claims, {});
    double              mean = 0;
    for (uint64_t seed : {1, 2, 3}) {
        icm::SyntheticScorerParams sp;
        sp.ignore_truth = true;
        sp.seed         = seed;
        icm::SyntheticScorer scorer(truth, sp);
        auto                 p = icm::search_params_paper();
        p.seed                 = seed;
        p.mp_mode              = icm::MpMode::SPARSE;
        p.max_iterations       = 1000;
        icm::Search search(set, p, scorer);
        search.run();
        const double acc = agreement(search.labels(), truth);
        CHECK(n_labeled(search.labels()) > 200);
        CHECK(acc > 0.38 && acc < 0.62);
        mean += acc / 3;
    }
    std::fprintf(stderr, "  mean agreement with a truth-blind scorer: %.3f\n", mean);
    CHECK(mean > 0.43 && mean < 0.57);
}

TEST(deterministic_for_a_seed) {
    QuestionBed bed;
    auto        run = [&](uint64_t seed, icm::MpMode mode) {
        icm::SyntheticScorer scorer(bed.truth, {});
        auto                 p = icm::search_params_paper();
        p.seed                 = seed;
        p.mp_mode              = mode;
        p.max_iterations       = 300;
        icm::Search         search(bed.set, p, scorer);
        std::vector<double> utilities;
        for (const auto &row : search.run()) utilities.push_back(row.utility);
        return std::make_pair(search.labels(), utilities);
    };
    for (auto mode : {icm::MpMode::EXACT, icm::MpMode::SPARSE}) {
        CHECK((run(1, mode) == run(1, mode)));
        CHECK(!(run(1, mode).first == run(2, mode).first));
    }
}

TEST(initialization_is_balanced_and_random) {
    QuestionBed          bed;
    icm::SyntheticScorer scorer(bed.truth, {});
    auto                 p = icm::search_params_paper();
    p.consistency_fix_k    = 0;  // look at the raw initial labels
    p.num_seed             = 10;
    icm::Search search(bed.set, p, scorer);
    const auto  row = search.step();
    CHECK(row.outcome == icm::StepOutcome::INIT);
    int n_true = 0;
    for (Label l : search.labels()) n_true += l == Label::TRUE;
    CHECK_EQ(n_labeled(search.labels()), 10);
    CHECK_EQ(n_true, 5);
}

TEST(sampling_prefers_unlabeled_claims_of_labeled_groups) {
    // One labeled claim among 100; its unlabeled groupmate weighs 100, the 99 others 1.
    const auto set       = testing_helpers::question_set(50, 2);
    const auto truth     = testing_helpers::first_answer_true(50, 2);
    int        groupmate = 0;
    const int  n_runs    = 600;
    for (int seed = 0; seed < n_runs; ++seed) {
        icm::SyntheticScorer scorer(truth, {});
        auto                 p = icm::search_params_paper();
        p.seed                 = static_cast<uint64_t>(seed);
        p.num_seed             = 1;
        icm::Search search(set, p, scorer);
        search.step();  // init
        int32_t labeled = -1;
        for (int32_t c = 0; c < set.n_claims(); ++c) {
            if (search.labels()[static_cast<size_t>(c)] != Label::UNSET) labeled = c;
        }
        const auto row = search.step();
        groupmate += row.claim != labeled && set.group_of(row.claim) == set.group_of(labeled);
    }
    const double share = static_cast<double>(groupmate) / n_runs;
    std::fprintf(stderr, "  share of first samples that are the groupmate: %.3f (expect %.3f)\n", share,
                 100.0 / 199.0);
    CHECK_NEAR(share, 100.0 / 199.0, 0.07);
}

TEST(restore_continues_exactly) {
    QuestionBed bed;
    for (auto mode : {icm::MpMode::EXACT, icm::MpMode::SPARSE}) {
        auto p           = icm::search_params_paper();
        p.mp_mode        = mode;
        p.context_k      = 4;
        p.max_iterations = 250;
        icm::SyntheticScorer s1(bed.truth, {});
        icm::Search          whole(bed.set, p, s1);
        whole.run();

        icm::SyntheticScorer s2(bed.truth, {});
        icm::Search          first(bed.set, p, s2);
        first.run(97);
        const icm::SearchState saved = first.state();
        icm::SyntheticScorer   s3(bed.truth, {});
        icm::Search            resumed(bed.set, p, s3);
        resumed.restore(saved);
        CHECK_EQ(resumed.iteration(), saved.iteration);
        resumed.run();
        CHECK((resumed.labels() == whole.labels()));
        CHECK_NEAR(resumed.utility(), whole.utility(), 0);
        CHECK_EQ(resumed.state().n_accepted, whole.state().n_accepted);
    }
}

TEST(a_failing_scorer_loses_nothing) {
    QuestionBed bed;
    auto        p    = icm::search_params_paper();
    p.max_iterations = 120;
    icm::SyntheticScorer clean(bed.truth, {});
    icm::Search          reference(bed.set, p, clean);
    reference.run();

    icm::SyntheticScorer inner(bed.truth, {});
    FlakyScorer          flaky(inner, 40);
    icm::Search          search(bed.set, p, flaky);
    int                  failures = 0;
    while (!search.done()) {
        const auto before = search.state();
        try {
            search.step();
        } catch (const std::runtime_error &) {
            ++failures;
            const auto after = search.state();
            CHECK((after.labels == before.labels));
            CHECK_EQ(after.iteration, before.iteration);
            CHECK(after.rng_state == before.rng_state);
        }
    }
    CHECK_EQ(failures, 1);
    CHECK((search.labels() == reference.labels()));
}

TEST(edge_cases) {
    QuestionBed          bed;
    icm::SyntheticScorer scorer(bed.truth, {});
    auto                 p = icm::search_params_paper();
    p.num_seed             = 0;
    p.max_iterations       = 20;
    icm::Search search(bed.set, p, scorer);
    search.run();
    CHECK(search.done());
    CHECK_EQ(search.iteration(), 20);
    CHECK_THROWS(search.step(), std::logic_error);
    p.alpha = -1;
    CHECK_THROWS(icm::Search(bed.set, p, scorer), std::invalid_argument);
    // An empty claim set.
    const icm::ClaimSet empty({}, {});
    auto                q = icm::search_params_paper();
    q.max_iterations      = 0;
    icm::Search nothing(empty, q, scorer);
    nothing.run();
    CHECK(nothing.done());
}

TEST_MAIN()

TEST(prefetch_keeps_the_trajectory_and_saves_rounds) {
    QuestionBed bed;
    for (auto mode : {icm::MpMode::EXACT, icm::MpMode::SPARSE}) {
        auto p           = icm::search_params_paper();
        p.mp_mode        = mode;
        p.max_iterations = 200;
        icm::SyntheticScorer s0(bed.truth, {});
        icm::Search          plain(bed.set, p, s0);
        const auto           want = plain.run();
        // {depth, call limit, fill}: the limit speculates only calls of that many requests;
        // fill sends the larger ones' first requests into the last wave's idle slots.
        int64_t limited_prefetched = 0;
        for (auto [depth, call_limit, fill] :
             {std::tuple{1, 0, 0}, std::tuple{3, 0, 0}, std::tuple{3, 1, 0}, std::tuple{3, 1, 8}}) {
            p.prefetch_depth      = depth;
            p.prefetch_call_limit = call_limit;
            p.prefetch_fill       = fill;
            icm::SyntheticScorer s1(bed.truth, {});
            icm::Search          ahead(bed.set, p, s1);
            const auto           got = ahead.run();
            CHECK_EQ(got.size(), want.size());
            for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
                CHECK(got[i].outcome == want[i].outcome);
                CHECK_EQ(got[i].claim, want[i].claim);
                CHECK_NEAR(got[i].utility, want[i].utility, 0);
                CHECK_EQ(got[i].n_requests, want[i].n_requests);
                CHECK_EQ(got[i].n_cache_hits, want[i].n_cache_hits);
                CHECK_EQ(got[i].n_prompt_claims, want[i].n_prompt_claims);
            }
            CHECK((ahead.labels() == plain.labels()));
            const icm::TraceRow &last = got.back();
            CHECK(last.n_rounds < want.back().n_rounds);
            CHECK(last.n_prefetched_used > 0);
            CHECK(last.n_prefetched_used <= last.n_prefetched);
            // Every request the scorer saw: the search's own, plus the prefetched unused.
            CHECK_EQ(s1.n_requests(), last.n_requests + last.n_prefetched - last.n_prefetched_used);
            if (call_limit == 1 && fill == 0) limited_prefetched = last.n_prefetched;
            if (fill > 0) CHECK(last.n_prefetched > limited_prefetched);  // the fill was sent
        }
    }
    auto p           = icm::search_params_paper();
    p.prefetch_depth = -1;
    icm::SyntheticScorer s(bed.truth, {});
    CHECK_THROWS(icm::Search(bed.set, p, s), std::invalid_argument);
    p.prefetch_depth      = 2;
    p.prefetch_call_limit = -1;
    CHECK_THROWS(icm::Search(bed.set, p, s), std::invalid_argument);
    p.prefetch_call_limit = 1;
    p.prefetch_fill       = -1;
    CHECK_THROWS(icm::Search(bed.set, p, s), std::invalid_argument);
}
