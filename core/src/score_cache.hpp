// Scores already paid for, keyed by exactly what determines the prompt: the target claim,
// the demonstrations in order, and their labels. Revisiting a labeling costs nothing.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "icm/icm.hpp"

namespace icm {

// A 128-bit fingerprint of (target, demos, demo_labels). Two independent 64-bit hashes,
// so a collision between two different prompts has probability about 2^-128 per pair.
struct ScoreKey {
    uint64_t hi = 0;
    uint64_t lo = 0;
    bool     operator==(const ScoreKey &o) const { return hi == o.hi && lo == o.lo; }
};

struct ScoreKeyHash {
    size_t operator()(const ScoreKey &k) const {
        return static_cast<size_t>(k.hi ^ (k.lo * 0x9e3779b97f4a7c15ULL));
    }
};

ScoreKey score_key(const ScoreRequest &request);

class ScoreCache {
  public:
    const LabelScore *find(const ScoreKey &key) const {
        auto it = map_.find(key);
        return it == map_.end() ? nullptr : &it->second;
    }
    void   insert(const ScoreKey &key, const LabelScore &score) { map_[key] = score; }
    size_t size() const { return map_.size(); }
    void   clear() { map_.clear(); }

  private:
    std::unordered_map<ScoreKey, LabelScore, ScoreKeyHash> map_;
};

// Scores requests through the cache: only misses reach the scorer, in one batch, and
// duplicate misses within the batch are sent once.
class CachedScorer {
  public:
    CachedScorer(Scorer &scorer, const ClaimSet &set) : scorer_(&scorer), set_(&set) {}

    std::vector<LabelScore> score(std::vector<ScoreRequest> requests);

    int64_t n_requests() const { return n_requests_; }
    int64_t n_cache_hits() const { return n_cache_hits_; }
    // Claims in the prompts sent to the scorer (demonstrations + target): prompt length in
    // claims, a model-free proxy of prompt tokens.
    int64_t           n_prompt_claims() const { return n_prompt_claims_; }
    const ScoreCache &cache() const { return cache_; }

  private:
    Scorer         *scorer_;
    const ClaimSet *set_;
    ScoreCache      cache_;
    int64_t         n_requests_      = 0;
    int64_t         n_cache_hits_    = 0;
    int64_t         n_prompt_claims_ = 0;
};

}  // namespace icm
