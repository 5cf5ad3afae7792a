// A stand-in language model for algorithm tests and overhead benchmarks (see icm.hpp).
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

#include "icm/icm.hpp"
#include "random_stream.hpp"

namespace icm {

SyntheticScorer::SyntheticScorer(std::vector<Label> hidden_truth, SyntheticScorerParams params)
    : truth_(std::move(hidden_truth)), noise_(truth_.size()), params_(params) {
    for (size_t i = 0; i < truth_.size(); ++i) {
        if (truth_[i] == Label::UNSET) {
            throw std::invalid_argument("hidden_truth[" + std::to_string(i) + "]: must be TRUE or FALSE");
        }
    }
    RandomStream rng(params.seed);
    for (double &n : noise_) {  // Box-Muller
        const double u1 = 1.0 - rng.next_unit();
        const double u2 = rng.next_unit();
        n               = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    }
}

std::vector<LabelScore> SyntheticScorer::score(const std::vector<ScoreRequest> &requests) {
    std::vector<LabelScore> out;
    out.reserve(requests.size());
    for (const ScoreRequest &r : requests) {
        if (r.target < 0 || static_cast<size_t>(r.target) >= truth_.size()) {
            throw std::invalid_argument("request.target: " + std::to_string(r.target) + " out of range");
        }
        const auto t   = static_cast<size_t>(r.target);
        double     gap = params_.noise * noise_[t];
        if (params_.ignore_truth) {
            double n_true = 0;
            for (Label l : r.demo_labels) n_true += l == Label::TRUE;
            const double frac =
                r.demo_labels.empty() ? 0.5 : n_true / static_cast<double>(r.demo_labels.size());
            gap += params_.demo_weight * (frac - 0.5);
        } else {
            const double sign      = truth_[t] == Label::TRUE ? 1.0 : -1.0;
            double       agreement = 0;
            for (size_t i = 0; i < r.demos.size(); ++i) {
                agreement += r.demo_labels[i] == truth_[static_cast<size_t>(r.demos[i])] ? 1.0 : -1.0;
            }
            if (!r.demos.empty()) agreement /= static_cast<double>(r.demos.size());
            gap += sign * (params_.prior + params_.demo_weight * agreement);
        }
        // Split the gap symmetrically into two log-probabilities of a two-way softmax.
        const double lt = -std::log1p(std::exp(-gap));
        const double lf = -std::log1p(std::exp(gap));
        out.push_back({lt, lf});
    }
    n_requests_ += static_cast<int64_t>(requests.size());
    return out;
}

}  // namespace icm
