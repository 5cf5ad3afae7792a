#include "prefetch.hpp"

#include <cmath>

namespace icm {

namespace {
constexpr double MAX_GUESS_GAP = 30.0;
}  // namespace

GuessScorer::GuessScorer(const std::vector<double> &last_gaps, Label unknown, int32_t max_rounds,
                         int32_t call_limit, bool keep_fill)
    : last_gaps_(&last_gaps),
      unknown_(unknown),
      rounds_left_(max_rounds),
      call_limit_(call_limit),
      keep_fill_(keep_fill) {
    double  sum = 0;
    int64_t n   = 0;
    for (double g : last_gaps) {
        if (std::isnan(g)) continue;
        sum += std::fabs(g);
        ++n;
    }
    if (n > 0 && sum > 0) magnitude_ = sum / static_cast<double>(n);
}

std::vector<LabelScore> GuessScorer::score(const std::vector<ScoreRequest> &requests) {
    if (rounds_left_ <= 0) throw PrefetchHorizon{};
    --rounds_left_;
    const bool              record = call_limit_ == 0 || requests.size() <= static_cast<size_t>(call_limit_);
    std::vector<LabelScore> out;
    out.reserve(requests.size());
    for (const ScoreRequest &r : requests) {
        if (record) {
            requests_.push_back(r);
        } else if (keep_fill_) {
            fill_.push_back(r);
        }
        double gap = (*last_gaps_)[static_cast<size_t>(r.target)];
        if (std::isnan(gap)) gap = unknown_ == Label::TRUE ? magnitude_ : -magnitude_;
        gap = std::fmax(-MAX_GUESS_GAP, std::fmin(MAX_GUESS_GAP, gap));  // finite logs
        // log P(True), log P(False) of a two-way softmax with this gap.
        out.push_back({-std::log1p(std::exp(-gap)), -std::log1p(std::exp(gap))});
    }
    return out;
}

}  // namespace icm
