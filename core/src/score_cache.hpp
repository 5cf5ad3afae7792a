// Scores already paid for, keyed by exactly what determines the prompt: the target claim,
// the demonstrations in order, and their labels. Revisiting a labeling costs nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "icm/icm.hpp"
#include "prefetch.hpp"

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
//
// Prefetch: a prefetcher, when set, is asked for speculative requests whenever a batch
// has misses (the search must wait for the scorer anyway), and those not already known
// travel in the same scorer call, with as many of its fill requests as fit the idle slots
// of the call's last wave. Their answers are cached, but counted as requests (not cache
// hits) when the search first asks for them, so every counter the trace shows is the one
// without prefetch; n_prefetched() and n_prefetched_used() say what it cost.
class CachedScorer {
  public:
    using Prefetcher = std::function<PrefetchRequests()>;

    // parent: a cache consulted (read only) before this one's own; a speculative copy of
    // the search reads the real search's cache through it.
    CachedScorer(Scorer &scorer, const ClaimSet &set, const CachedScorer *parent = nullptr)
        : scorer_(&scorer),
          set_(&set),
          parent_(parent),
          last_gap_(static_cast<size_t>(set.n_claims()), NO_GAP) {}

    static constexpr double NO_GAP = std::numeric_limits<double>::quiet_NaN();

    std::vector<LabelScore> score(std::vector<ScoreRequest> requests);

    // wave: requests the scorer has in flight at once (0: no fill).
    void set_prefetcher(Prefetcher prefetcher, int32_t wave = 0) {
        prefetcher_ = std::move(prefetcher);
        wave_       = static_cast<size_t>(wave);
    }

    int64_t n_requests() const { return n_requests_; }
    int64_t n_cache_hits() const { return n_cache_hits_; }
    // Claims in the prompts sent to the scorer (demonstrations + target): prompt length in
    // claims, a model-free proxy of prompt tokens.
    int64_t           n_prompt_claims() const { return n_prompt_claims_; }
    int64_t           n_rounds() const { return n_rounds_; }
    int64_t           n_prefetched() const { return n_prefetched_; }
    int64_t           n_prefetched_used() const { return n_prefetched_used_; }
    const ScoreCache &cache() const { return cache_; }
    // The cached score of a request's key, here or in the parent; nullptr if none.
    const LabelScore *find(const ScoreKey &key) const;
    // Per claim, the gap of the last answer the scorer gave for it (any demonstrations),
    // NO_GAP if none yet: what a speculative copy guesses for a score it lacks.
    const std::vector<double> &last_gaps() const { return last_gap_; }

  private:
    // A cached score for the search: counts a hit, or a request when it was prefetched.
    const LabelScore *lookup(const ScoreKey &key, const ScoreRequest &request);

    Scorer                                    *scorer_;
    const ClaimSet                            *set_;
    const CachedScorer                        *parent_;
    ScoreCache                                 cache_;
    Prefetcher                                 prefetcher_;
    size_t                                     wave_ = 0;
    std::unordered_set<ScoreKey, ScoreKeyHash> prefetched_unused_;
    std::vector<double>                        last_gap_;
    int64_t                                    n_requests_        = 0;
    int64_t                                    n_cache_hits_      = 0;
    int64_t                                    n_prompt_claims_   = 0;
    int64_t                                    n_rounds_          = 0;
    int64_t                                    n_prefetched_      = 0;
    int64_t                                    n_prefetched_used_ = 0;
};

}  // namespace icm
