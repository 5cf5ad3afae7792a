#include "labeling.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace icm {

Labeling::Labeling(const ClaimSet &set, const SearchParams &params, CachedScorer &scorer,
                   std::vector<Label> labels, ContextDraw draw)
    : set_(&set),
      params_(&params),
      scorer_(&scorer),
      labels_(std::move(labels)),
      tracker_(set, labels_),
      contexts_(set, params, std::move(draw)),
      score_(labels_.size()),
      term_(labels_.size(), 0),
      stale_flag_(labels_.size(), 0) {
    for (size_t c = 0; c < labels_.size(); ++c) {
        if (labels_[c] == Label::UNSET) continue;
        ++n_labeled_;
        contexts_.register_target(static_cast<int32_t>(c));
        stale_flag_[c] = 1;
        stale_.push_back(static_cast<int32_t>(c));
    }
}

void Labeling::make_stale(int32_t claim) {
    const auto c = static_cast<size_t>(claim);
    if (stale_flag_[c]) return;
    undo_.push_back({UndoKind::SCORE, claim, labels_[c], false, term_[c], score_[c]});
    term_sum_ -= term_[c];
    stale_flag_[c] = 1;
    stale_.push_back(claim);
}

void Labeling::set_clean(int32_t claim, const LabelScore &score) {
    const auto c = static_cast<size_t>(claim);
    undo_.push_back({UndoKind::SCORE, claim, labels_[c], stale_flag_[c] != 0, term_[c], score_[c]});
    if (!stale_flag_[c]) term_sum_ -= term_[c];
    score_[c]      = score;
    term_[c]       = mp_term(score, labels_[c], params_->mp_objective);
    stale_flag_[c] = 0;
    term_sum_ += term_[c];
}

void Labeling::set_label(int32_t claim, Label label) {
    const auto  c   = static_cast<size_t>(claim);
    const Label old = labels_[c];
    labels_[c]      = label;
    n_labeled_ += (label != Label::UNSET) - (old != Label::UNSET);
    tracker_.on_label_change(labels_, claim);
}

void Labeling::apply(int32_t claim, Label label) {
    if (claim < 0 || claim >= set_->n_claims()) {
        throw std::invalid_argument("claim: index " + std::to_string(claim) + " out of range");
    }
    if (label == Label::UNSET) throw std::invalid_argument("label: cannot unset a label");
    const auto  c   = static_cast<size_t>(claim);
    const Label old = labels_[c];
    if (old == label) return;
    undo_.push_back({UndoKind::LABEL, claim, old, stale_flag_[c] != 0, term_[c], score_[c]});
    if (old != Label::UNSET && !stale_flag_[c]) term_sum_ -= term_[c];
    set_label(claim, label);

    // The claim's own context never holds the claim, so a relabeled claim keeps its score
    // and only the sign of its term changes; a newly labeled claim needs a score.
    if (old != Label::UNSET && !stale_flag_[c]) {
        term_[c] = mp_term(score_[c], label, params_->mp_objective);
        term_sum_ += term_[c];
    } else if (!stale_flag_[c]) {
        stale_flag_[c] = 1;
        stale_.push_back(claim);
    }

    // Every target whose demonstrations hold this claim is now stale.
    if (contexts_.mode() == MpMode::EXACT) {
        for (size_t t = 0; t < labels_.size(); ++t) {
            if (t != c && labels_[t] != Label::UNSET) make_stale(static_cast<int32_t>(t));
        }
    } else {
        contexts_.register_target(claim);
        for (int32_t t : contexts_.holders(claim)) {
            if (labels_[static_cast<size_t>(t)] != Label::UNSET) make_stale(t);
        }
    }
}

void Labeling::undo(const Undo &entry) {
    const auto c = static_cast<size_t>(entry.claim);
    if (labels_[c] != Label::UNSET && !stale_flag_[c]) term_sum_ -= term_[c];
    if (entry.kind == UndoKind::LABEL) set_label(entry.claim, entry.old_label);
    score_[c]      = entry.old_score;
    term_[c]       = entry.old_term;
    stale_flag_[c] = entry.old_stale ? 1 : 0;
    if (labels_[c] != Label::UNSET && !entry.old_stale) term_sum_ += term_[c];
    if (entry.old_stale) stale_.push_back(entry.claim);
}

void Labeling::rollback(size_t mark) {
    if (mark > undo_.size()) throw std::logic_error("rollback: mark is ahead of the log");
    while (undo_.size() > mark) {
        const Undo entry = undo_.back();
        undo_.pop_back();
        undo(entry);
    }
}

std::vector<int32_t> Labeling::commit() {
    std::vector<int32_t> newly_labeled;
    for (const Undo &entry : undo_) {
        if (entry.kind == UndoKind::LABEL && entry.old_label == Label::UNSET &&
            labels_[static_cast<size_t>(entry.claim)] != Label::UNSET) {
            newly_labeled.push_back(entry.claim);
        }
    }
    std::sort(newly_labeled.begin(), newly_labeled.end());
    newly_labeled.erase(std::unique(newly_labeled.begin(), newly_labeled.end()), newly_labeled.end());
    undo_.clear();
    return newly_labeled;
}

ScoreRequest Labeling::request_for(int32_t target) const {
    ScoreRequest request;
    request.target = target;
    request.demos  = contexts_.context(target, labels_);
    request.demo_labels.reserve(request.demos.size());
    for (int32_t d : request.demos) {
        const Label l = labels_[static_cast<size_t>(d)];
        if (l == Label::UNSET) throw std::logic_error("context holds an unlabeled claim");
        request.demo_labels.push_back(l);
    }
    return request;
}

std::vector<int32_t> Labeling::stale_claims() const {
    std::vector<int32_t> out;
    for (int32_t c : stale_) {
        const auto i = static_cast<size_t>(c);
        if (stale_flag_[i] && labels_[i] != Label::UNSET) out.push_back(c);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

std::vector<ScoreRequest> Labeling::stale_requests() const {
    std::vector<ScoreRequest> requests;
    for (int32_t c : stale_claims()) requests.push_back(request_for(c));
    return requests;
}

void Labeling::evaluate() {
    std::vector<int32_t> claims = stale_claims();
    if (!claims.empty()) {
        std::vector<ScoreRequest> requests;
        requests.reserve(claims.size());
        for (int32_t c : claims) requests.push_back(request_for(c));
        const std::vector<LabelScore> scores = scorer_->score(std::move(requests));
        for (size_t i = 0; i < claims.size(); ++i) set_clean(claims[i], scores[i]);
    }
    stale_.clear();
}

double Labeling::mp() const {
    if (!stale_claims().empty()) throw std::logic_error("mp: stale scores; call evaluate() first");
    const double sum = static_cast<double>(term_sum_) / MP_TERM_SCALE;
    if (params_->mp_objective == MpObjective::MEAN_LOGIT_GAP) {
        return n_labeled_ == 0 ? 0.0 : sum / n_labeled_;
    }
    return sum;
}

double Labeling::utility() const {
    return params_->alpha * mp() - static_cast<double>(tracker_.count());
}

std::vector<double> Labeling::gaps() const {
    std::vector<double> out(labels_.size(), 0.0);
    for (size_t c = 0; c < labels_.size(); ++c) {
        if (labels_[c] != Label::UNSET && !stale_flag_[c]) out[c] = score_[c].gap();
    }
    return out;
}

bool Labeling::maybe_redraw() {
    if (contexts_.mode() != MpMode::SPARSE) return false;
    const auto pool_size = static_cast<double>(contexts_.draw().pool.size());
    const bool small     = pool_size < params_->context_k + 1;
    if (!(n_labeled_ > pool_size && (small || n_labeled_ >= params_->context_regrow * pool_size))) {
        return false;
    }
    if (!undo_.empty()) throw std::logic_error("maybe_redraw: uncommitted changes");
    std::vector<int32_t> pool;
    for (size_t c = 0; c < labels_.size(); ++c) {
        if (labels_[c] != Label::UNSET) pool.push_back(static_cast<int32_t>(c));
    }
    contexts_.redraw(std::move(pool));
    for (int32_t c : contexts_.draw().pool) {
        contexts_.register_target(c);
        const auto i = static_cast<size_t>(c);
        if (!stale_flag_[i]) {
            term_sum_ -= term_[i];
            stale_flag_[i] = 1;
            stale_.push_back(c);
        }
    }
    return true;
}

}  // namespace icm
