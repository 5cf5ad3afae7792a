// Sampling an index in proportion to its weight, with O(log n) updates (a Fenwick tree).
// The original code rebuilds the weight list with a quadratic loop every step.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "random_stream.hpp"

namespace icm {

class WeightedSampler {
  public:
    explicit WeightedSampler(size_t n, double initial_weight = 1.0) : tree_(n + 1, 0.0), weight_(n, 0.0) {
        for (size_t i = 0; i < n; ++i) set(i, initial_weight);
    }

    size_t size() const { return weight_.size(); }
    double weight(size_t i) const { return weight_.at(i); }

    void set(size_t i, double w) {
        if (!(w >= 0)) throw std::invalid_argument("weight: must be >= 0");
        const double d = w - weight_.at(i);
        weight_[i]     = w;
        for (size_t k = i + 1; k < tree_.size(); k += k & (0 - k)) tree_[k] += d;
    }

    double total() const { return prefix(weight_.size()); }

    // Sum of the weights of indices [0, n).
    double prefix(size_t n) const {
        double s = 0;
        for (size_t k = n; k > 0; k -= k & (0 - k)) s += tree_[k];
        return s;
    }

    size_t sample(RandomStream &rng) const {
        const double total_weight = total();
        if (!(total_weight > 0)) throw std::logic_error("sample: all weights are zero");
        double target = rng.next_unit() * total_weight;
        // Descend the implicit tree: find the smallest index whose prefix sum exceeds target.
        size_t pos  = 0;
        size_t step = 1;
        while (step * 2 < tree_.size()) step *= 2;
        for (; step > 0; step /= 2) {
            if (pos + step < tree_.size() && tree_[pos + step] <= target) {
                pos += step;
                target -= tree_[pos];
            }
        }
        // Floating-point slack can land on a zero-weight tail; step back to a real one.
        size_t i = pos < weight_.size() ? pos : weight_.size() - 1;
        while (weight_[i] <= 0 && i > 0) --i;
        return i;
    }

  private:
    std::vector<double> tree_;
    std::vector<double> weight_;
};

}  // namespace icm
