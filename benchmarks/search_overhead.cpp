// search_overhead: microseconds of search work per iteration (the model excluded), at
// N = 10^2 .. 10^5 claims, and the peak memory of the largest search.
//
// Claims come in groups of 4 (one question, four answers, pairwise AT_MOST_ONE_TRUE).
// Each search starts from a state with half the claims labeled (whole groups, consistent),
// as in the middle of a real search, then runs warm-up steps, then timed steps. The scorer
// is the synthetic stand-in wrapped in a stopwatch, so its time is subtracted.
//
// Prints one JSON object per line: {"n": ..., "mode": ..., "us_per_iter": ..., ...}.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "icm/icm.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct StopwatchScorer final : icm::Scorer {
    icm::Scorer &inner;
    double       seconds    = 0;
    int64_t      n_requests = 0;
    explicit StopwatchScorer(icm::Scorer &s) : inner(s) {}
    std::vector<icm::LabelScore> score(const std::vector<icm::ScoreRequest> &requests) override {
        const auto start = Clock::now();
        auto       out   = inner.score(requests);
        seconds += std::chrono::duration<double>(Clock::now() - start).count();
        n_requests += static_cast<int64_t>(requests.size());
        return out;
    }
    bool reads_prompt_text() const override { return false; }
};

struct Bed {
    icm::ClaimSet           set;
    std::vector<icm::Label> truth;
};

Bed make_bed(int32_t n_claims) {
    std::vector<icm::Claim>    claims;
    std::vector<icm::Relation> relations;
    std::vector<icm::Label>    truth;
    for (int32_t g = 0; g * 4 < n_claims; ++g) {
        const auto  first = static_cast<int32_t>(claims.size());
        std::string group = "q";
        group += std::to_string(g);
        for (int32_t a = 0; a < 4; ++a) {
            std::string id = group;  // built in steps: GCC 12 -O3 warns falsely on a + b + c
            id += 'a';
            id += std::to_string(a);
            claims.push_back({id, "", group});
            truth.push_back(a == g % 4 ? icm::Label::TRUE : icm::Label::FALSE);
        }
        for (int32_t a = 0; a < 4; ++a) {
            for (int32_t b = a + 1; b < 4; ++b) {
                relations.push_back({icm::RelationKind::AT_MOST_ONE_TRUE, first + a, first + b});
            }
        }
    }
    return {icm::ClaimSet(std::move(claims), std::move(relations)), std::move(truth)};
}

long peak_rss_kib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

void measure(int32_t n, icm::MpMode mode, int64_t warmup, int64_t steps) {
    const Bed            bed = make_bed(n);
    icm::SyntheticScorer synthetic(bed.truth, {});
    StopwatchScorer      scorer(synthetic);
    auto                 params = icm::search_params_paper();
    params.mp_mode              = mode;
    params.context_k            = 16;
    params.max_iterations       = static_cast<int32_t>(warmup + steps + 10);

    icm::Search          search(bed.set, params, scorer);
    icm::SearchState     state = search.state();
    std::vector<int32_t> pool;
    for (int32_t c = 0; c < bed.set.n_claims(); ++c) {
        if (c < bed.set.n_claims() / 2) {
            state.labels[static_cast<size_t>(c)] = bed.truth[static_cast<size_t>(c)];
            pool.push_back(c);
        }
    }
    state.initialized   = true;
    state.context_epoch = 1;
    state.context_pool  = pool;
    search.restore(state);
    search.run(warmup);

    scorer.seconds          = 0;
    scorer.n_requests       = 0;
    const auto   start      = Clock::now();
    const auto   rows       = search.run(steps);
    const double total      = std::chrono::duration<double>(Clock::now() - start).count();
    const double per_step   = 1e6 * (total - scorer.seconds) / static_cast<double>(rows.size());
    const double scorer_per = 1e6 * scorer.seconds / static_cast<double>(rows.size());
    int64_t      accepted   = 0;
    for (const auto &r : rows) accepted += r.outcome == icm::StepOutcome::ACCEPTED;
    std::printf(
        "{\"n\": %d, \"mode\": \"%s\", \"steps\": %zu, \"us_per_iter\": %.3f, \"scorer_us_per_iter\": %.3f, "
        "\"requests_per_iter\": %.2f, \"accepted\": %lld, \"n_labeled\": %d, \"peak_rss_kib\": %ld}\n",
        n, mode == icm::MpMode::EXACT ? "exact" : "sparse", rows.size(), per_step, scorer_per,
        static_cast<double>(scorer.n_requests) / static_cast<double>(rows.size()),
        static_cast<long long>(accepted), rows.empty() ? 0 : rows.back().n_labeled, peak_rss_kib());
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char **argv) {
    // Usage: search_overhead [steps] [max_n]
    const int64_t steps = argc > 1 ? std::atoll(argv[1]) : 3000;
    const int32_t max_n = argc > 2 ? std::atoi(argv[2]) : 100000;
    for (int32_t n = 100; n <= max_n; n *= 10) measure(n, icm::MpMode::SPARSE, 300, steps);
    // The original's exact mode for scale: every labeled claim re-scored with all the others.
    for (int32_t n = 100; n <= std::min(max_n, 1000); n *= 10) measure(n, icm::MpMode::EXACT, 20, 100);
    return 0;
}
