#include "score_cache.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "random_stream.hpp"

namespace icm {

ScoreKey score_key(const ScoreRequest &request) {
    // Two differently seeded chains of SplitMix64 over the same word sequence.
    uint64_t a    = 0x243f6a8885a308d3ULL;
    uint64_t b    = 0x13198a2e03707344ULL;
    auto     feed = [&](uint64_t word) {
        a = mix_seed(a ^ word);
        b = mix_seed(b + word * 0xd1b54a32d192ed03ULL);
    };
    feed(static_cast<uint64_t>(static_cast<uint32_t>(request.target)));
    feed(request.demos.size());
    for (size_t i = 0; i < request.demos.size(); ++i) {
        const auto label = static_cast<uint64_t>(static_cast<uint8_t>(request.demo_labels[i]));
        feed((static_cast<uint64_t>(static_cast<uint32_t>(request.demos[i])) << 8) | label);
    }
    return {a, b};
}

const LabelScore *CachedScorer::find(const ScoreKey &key) const {
    if (const LabelScore *hit = cache_.find(key)) return hit;
    return parent_ != nullptr ? parent_->find(key) : nullptr;
}

const LabelScore *CachedScorer::lookup(const ScoreKey &key, const ScoreRequest &request) {
    const LabelScore *hit = find(key);
    if (hit == nullptr) return nullptr;
    if (!prefetched_unused_.empty() && prefetched_unused_.erase(key) > 0) {
        // Paid for by a prefetch: its first use is the request the search would have sent.
        ++n_prefetched_used_;
        ++n_requests_;
        n_prompt_claims_ += static_cast<int64_t>(request.demos.size()) + 1;
    } else {
        ++n_cache_hits_;
    }
    return hit;
}

std::vector<LabelScore> CachedScorer::score(std::vector<ScoreRequest> requests) {
    std::vector<LabelScore>   out(requests.size());
    std::vector<ScoreKey>     keys(requests.size());
    std::vector<size_t>       miss_of(requests.size(), SIZE_MAX);  // index into misses
    std::vector<ScoreRequest> misses;
    std::vector<ScoreKey>     miss_keys;
    std::unordered_map<ScoreKey, size_t, ScoreKeyHash> pending;
    const bool                                         render = scorer_->reads_prompt_text();
    for (size_t i = 0; i < requests.size(); ++i) {
        keys[i] = score_key(requests[i]);
        if (const LabelScore *hit = lookup(keys[i], requests[i])) {
            out[i] = *hit;
            continue;
        }
        auto [it, inserted] = pending.emplace(keys[i], misses.size());
        if (inserted) {
            if (render) requests[i].prompt = render_prompt(*set_, requests[i]);
            misses.push_back(std::move(requests[i]));
            miss_keys.push_back(keys[i]);
        } else {
            ++n_cache_hits_;
        }
        miss_of[i] = it->second;
    }
    if (misses.empty()) return out;

    // The search waits for this call anyway: send what it will probably ask next with it.
    const size_t n_needed = misses.size();
    if (prefetcher_) {
        PrefetchRequests next = prefetcher_();
        auto             add  = [&](ScoreRequest &r) {
            const ScoreKey key = score_key(r);
            if (find(key) != nullptr || !pending.emplace(key, misses.size()).second) return;
            if (render) r.prompt = render_prompt(*set_, r);
            misses.push_back(std::move(r));
            miss_keys.push_back(key);
        };
        for (ScoreRequest &r : next.sent) add(r);
        // The last wave's idle slots: as many fill requests as make whole waves.
        const size_t whole = wave_ == 0 ? 0 : (misses.size() + wave_ - 1) / wave_ * wave_;
        for (size_t i = 0; i < next.fill.size() && misses.size() < whole; ++i) add(next.fill[i]);
    }
    std::vector<LabelScore> scored = scorer_->score(misses);
    if (scored.size() != misses.size()) {
        throw std::runtime_error("scorer returned " + std::to_string(scored.size()) + " scores for " +
                                 std::to_string(misses.size()) + " requests");
    }
    for (size_t m = 0; m < misses.size(); ++m) {
        // Refused before it reaches the cache or the utility: one NaN or infinity
        // would make every later comparison of U meaningless. domain_error reaches
        // Python as a ValueError, which icm reports in one line.
        if (!std::isfinite(scored[m].logp_true) || !std::isfinite(scored[m].logp_false)) {
            throw std::domain_error("scorer: non-finite score for claim '" +
                                    set_->claim(misses[m].target).id + "' (logp_true " +
                                    std::to_string(scored[m].logp_true) + ", logp_false " +
                                    std::to_string(scored[m].logp_false) + ")");
        }
    }
    ++n_rounds_;
    n_requests_ += static_cast<int64_t>(n_needed);
    for (size_t m = 0; m < misses.size(); ++m) {
        cache_.insert(miss_keys[m], scored[m]);
        last_gap_[static_cast<size_t>(misses[m].target)] = scored[m].gap();
        if (m < n_needed) {
            n_prompt_claims_ += static_cast<int64_t>(misses[m].demos.size()) + 1;
        } else {
            prefetched_unused_.insert(miss_keys[m]);
            ++n_prefetched_;
        }
    }
    for (size_t i = 0; i < requests.size(); ++i) {
        if (miss_of[i] != SIZE_MAX) out[i] = scored[miss_of[i]];
    }
    return out;
}

}  // namespace icm
