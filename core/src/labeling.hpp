// A labeling D with its utility U(D) = alpha * MP(D) - I(D), kept up to date one label
// change at a time, with cheap trial changes: mark(), apply() ..., rollback(mark).
#pragma once

#include <cstdint>
#include <vector>

#include "consistency_group.hpp"
#include "icm/icm.hpp"
#include "mutual_predictability.hpp"
#include "score_cache.hpp"

namespace icm {

class Labeling {
  public:
    Labeling(const ClaimSet &set, const SearchParams &params, CachedScorer &scorer, std::vector<Label> labels,
             ContextDraw draw);

    // A copy that scores through another scorer (a speculative copy of the search).
    Labeling forked(CachedScorer &scorer) const {
        Labeling copy = *this;
        copy.scorer_  = &scorer;
        return copy;
    }

    Label                        label(int32_t claim) const { return labels_[static_cast<size_t>(claim)]; }
    const std::vector<Label>    &labels() const { return labels_; }
    int32_t                      n_labeled() const { return n_labeled_; }
    int64_t                      inconsistencies() const { return tracker_.count(); }
    const InconsistencyTracker  &tracker() const { return tracker_; }
    const DemonstrationContexts &contexts() const { return contexts_; }
    const ClaimSet              &claim_set() const { return *set_; }

    // Set one label. Scores that depend on it become stale until evaluate().
    void apply(int32_t claim, Label label);

    // Undo support: everything applied after mark() is undone by rollback(mark).
    size_t mark() const { return undo_.size(); }
    void   rollback(size_t mark);
    // Make the applied changes permanent; returns the claims that went from unset to set.
    std::vector<int32_t> commit();

    // The request that scores `target` under the current labels.
    ScoreRequest request_for(int32_t target) const;
    // The requests evaluate() would send now.
    std::vector<ScoreRequest> stale_requests() const;
    // Score every stale labeled claim in one batch.
    void evaluate();

    // Require a prior evaluate() after the last apply().
    double              mp() const;
    double              utility() const;
    std::vector<double> gaps() const;

    // SPARSE: draw new contexts from the labeled claims, if the pool has grown enough.
    // Returns true when it redrew (all labeled claims are then stale).
    bool maybe_redraw();

  private:
    enum class UndoKind : uint8_t { LABEL, SCORE };
    struct Undo {
        UndoKind   kind;
        int32_t    claim;
        Label      old_label;
        bool       old_stale;
        int64_t    old_term;
        LabelScore old_score;
    };

    void                 make_stale(int32_t claim);
    void                 set_clean(int32_t claim, const LabelScore &score);
    void                 set_label(int32_t claim, Label label);
    void                 undo(const Undo &entry);
    std::vector<int32_t> stale_claims() const;

    const ClaimSet       *set_;
    const SearchParams   *params_;
    CachedScorer         *scorer_;
    std::vector<Label>    labels_;
    int32_t               n_labeled_ = 0;
    InconsistencyTracker  tracker_;
    DemonstrationContexts contexts_;
    // Per claim: its last score and its fixed-point MP term. A labeled claim is either
    // clean (term counted in term_sum_) or stale (flagged, and listed in stale_, which
    // may hold duplicates and entries no longer stale).
    std::vector<LabelScore> score_;
    std::vector<int64_t>    term_;
    std::vector<uint8_t>    stale_flag_;
    std::vector<int32_t>    stale_;
    int64_t                 term_sum_ = 0;
    std::vector<Undo>       undo_;
};

}  // namespace icm
