// Simulated-annealing temperature, Metropolis acceptance and the parameter presets.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

#include "icm/icm.hpp"

namespace icm {

namespace {

[[noreturn]] void bad(const std::string &field, const std::string &why) {
    throw std::invalid_argument(field + ": " + why);
}

std::string num(double v) {
    // Shortest round-trip text, so the message shows exactly the value given.
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

}  // namespace

void SearchParams::validate() const {
    if (!std::isfinite(alpha) || alpha < 0) bad("alpha", "must be finite and >= 0, got " + num(alpha));
    if (num_seed < 0) bad("num_seed", "must be >= 0, got " + std::to_string(num_seed));
    if (max_iterations < 0) bad("K", "must be >= 0, got " + std::to_string(max_iterations));
    if (consistency_fix_k < 0) {
        bad("consistency_fix_K", "must be >= 0, got " + std::to_string(consistency_fix_k));
    }
    if (!std::isfinite(final_t) || final_t <= 0) bad("final_T", "must be > 0, got " + num(final_t));
    if (!std::isfinite(initial_t) || initial_t < final_t) {
        bad("initial_T", "must be >= final_T (" + num(final_t) + "), got " + num(initial_t));
    }
    if (!(decay > 0 && decay <= 1)) bad("decay", "must be in (0, 1], got " + num(decay));
    if (!std::isfinite(log_beta) || log_beta < 0) bad("log_beta", "must be >= 0, got " + num(log_beta));
    if (!std::isfinite(group_weight) || group_weight <= 0) {
        bad("group_weight", "must be > 0, got " + num(group_weight));
    }
    if (context_k < 1) bad("context_k", "must be >= 1, got " + std::to_string(context_k));
    if (!std::isfinite(context_regrow) || context_regrow <= 1) {
        bad("context_regrow", "must be > 1, got " + num(context_regrow));
    }
    if (prefetch_depth < 0 || prefetch_depth > MAX_PREFETCH_DEPTH) {
        bad("prefetch_depth", "must be in [0, " + std::to_string(MAX_PREFETCH_DEPTH) + "], got " +
                                  std::to_string(prefetch_depth));
    }
    if (prefetch_call_limit < 0) {
        bad("prefetch_call_limit", "must be >= 0, got " + std::to_string(prefetch_call_limit));
    }
    if (prefetch_fill < 0) bad("prefetch_fill", "must be >= 0, got " + std::to_string(prefetch_fill));
    if (static_cast<int>(schedule) < 0 || static_cast<int>(schedule) > 1) bad("scheduler", "unknown value");
}

SearchParams search_params_paper() {
    return SearchParams{};
}

SearchParams search_params_code() {
    SearchParams p;
    p.schedule_counter = ScheduleCounter::ACCEPTED;
    p.log_beta         = 2.0;
    p.fix_options      = FixOptions::CODE;
    p.fix_pair_search  = FixPairSearch::SCAN;
    p.fix_baseline     = FixBaseline::DUMMY;
    p.seed_placement   = SeedPlacement::BATCH_START;
    return p;
}

double annealing_temperature(const SearchParams &params, int64_t n) {
    if (n < 0) bad("n", "must be >= 0, got " + std::to_string(n));
    const double x = static_cast<double>(n);
    double       t = 0;
    switch (params.schedule) {
        case Schedule::EXP:
            t = params.initial_t * std::pow(params.decay, x);
            break;
        case Schedule::LOG:
            t = params.initial_t / (1.0 + params.log_beta * std::log1p(x));
            break;
    }
    return std::max(params.final_t, t);
}

double acceptance_probability(double delta, double temperature) {
    if (!(temperature > 0)) bad("temperature", "must be > 0, got " + num(temperature));
    if (delta >= 0) return 1.0;
    return std::exp(delta / temperature);
}

}  // namespace icm
