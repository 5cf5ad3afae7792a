// Batches of about batch_size claims that never split a consistency group.
#include <numeric>
#include <stdexcept>
#include <string>

#include "icm/icm.hpp"
#include "random_stream.hpp"

namespace icm {

std::vector<std::vector<int32_t>> make_batches(const ClaimSet &set, int32_t batch_size, uint64_t seed) {
    if (batch_size < 1) {
        throw std::invalid_argument("batch_size: must be >= 1, got " + std::to_string(batch_size));
    }
    std::vector<int32_t> groups(static_cast<size_t>(set.n_groups()));
    std::iota(groups.begin(), groups.end(), 0);
    RandomStream rng(seed);
    for (size_t i = groups.size(); i > 1; --i) {  // Fisher-Yates
        std::swap(groups[i - 1], groups[rng.next_below(i)]);
    }
    std::vector<std::vector<int32_t>> batches;
    std::vector<int32_t>              current;
    for (int32_t g : groups) {
        const auto &members = set.group_members(g);
        // Close the batch when this group would overshoot the target by more than it
        // would undershoot without it.
        const auto size_with = current.size() + members.size();
        if (!current.empty() && size_with > static_cast<size_t>(batch_size) &&
            size_with - static_cast<size_t>(batch_size) > static_cast<size_t>(batch_size) - current.size()) {
            batches.push_back(std::move(current));
            current.clear();
        }
        current.insert(current.end(), members.begin(), members.end());
        if (current.size() >= static_cast<size_t>(batch_size)) {
            batches.push_back(std::move(current));
            current.clear();
        }
    }
    if (!current.empty()) batches.push_back(std::move(current));
    return batches;
}

}  // namespace icm
