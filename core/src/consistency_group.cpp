// Consistency relations: what each kind allows, I(D), and its incremental tracker.
#include "consistency_group.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace icm {

bool relation_holds(RelationKind kind, Label la, Label lb) {
    if (la == Label::UNSET || lb == Label::UNSET) return true;
    switch (kind) {
        case RelationKind::SAME:
            return la == lb;
        case RelationKind::AT_MOST_ONE_TRUE:
            return !(la == Label::TRUE && lb == Label::TRUE);
        case RelationKind::OPPOSITE:
            return la != lb;
    }
    throw std::invalid_argument("relation kind: unknown value " + std::to_string(static_cast<int>(kind)));
}

std::vector<std::pair<Label, Label>> relation_consistent_options(RelationKind kind) {
    std::vector<std::pair<Label, Label>> options;
    for (Label a : {Label::FALSE, Label::TRUE}) {
        for (Label b : {Label::FALSE, Label::TRUE}) {
            if (relation_holds(kind, a, b)) options.emplace_back(a, b);
        }
    }
    return options;
}

std::vector<std::pair<Label, Label>> relation_code_options(RelationKind kind) {
    // The original code's decision "score" 0 then 1: an implication sets both claims to
    // the score, a contradiction sets (claim_1, claim_2) to (score, 1 - score).
    if (kind == RelationKind::SAME) return {{Label::FALSE, Label::FALSE}, {Label::TRUE, Label::TRUE}};
    return {{Label::FALSE, Label::TRUE}, {Label::TRUE, Label::FALSE}};
}

int64_t count_inconsistencies(const ClaimSet &set, std::span<const Label> labels) {
    return static_cast<int64_t>(inconsistent_relations(set, labels).size());
}

std::vector<int32_t> inconsistent_relations(const ClaimSet &set, std::span<const Label> labels) {
    if (labels.size() != static_cast<size_t>(set.n_claims())) {
        throw std::invalid_argument("labels: size " + std::to_string(labels.size()) +
                                    " != number of claims " + std::to_string(set.n_claims()));
    }
    std::vector<int32_t> out;
    const auto          &relations = set.relations();
    for (size_t r = 0; r < relations.size(); ++r) {
        const Relation &rel = relations[r];
        if (!relation_holds(rel.kind, labels[static_cast<size_t>(rel.a)],
                            labels[static_cast<size_t>(rel.b)])) {
            out.push_back(static_cast<int32_t>(r));
        }
    }
    return out;
}

InconsistencyTracker::InconsistencyTracker(const ClaimSet &set, std::span<const Label> labels)
    : set_(&set), slot_(set.relations().size(), -1) {
    for (int32_t r : inconsistent_relations(set, labels)) set_violated(r, true);
}

void InconsistencyTracker::set_violated(int32_t relation, bool violated) {
    int32_t &slot = slot_[static_cast<size_t>(relation)];
    if (violated && slot < 0) {
        slot = static_cast<int32_t>(violated_.size());
        violated_.push_back(relation);
    } else if (!violated && slot >= 0) {
        const int32_t last                   = violated_.back();
        violated_[static_cast<size_t>(slot)] = last;
        slot_[static_cast<size_t>(last)]     = slot;
        violated_.pop_back();
        slot = -1;
    }
}

void InconsistencyTracker::on_label_change(std::span<const Label> labels, int32_t claim) {
    for (int32_t r : set_->relations_of(claim)) {
        const Relation &rel = set_->relations()[static_cast<size_t>(r)];
        set_violated(r, !relation_holds(rel.kind, labels[static_cast<size_t>(rel.a)],
                                        labels[static_cast<size_t>(rel.b)]));
    }
}

int64_t InconsistencyTracker::delta_if(std::span<const Label>                     labels,
                                       std::span<const std::pair<int32_t, Label>> changes) const {
    auto label_after = [&](int32_t c) {
        Label l = labels[static_cast<size_t>(c)];
        for (const auto &[claim, label] : changes) {
            if (claim == c) l = label;
        }
        return l;
    };
    // Each touched relation is counted once even when both its claims change.
    std::vector<int32_t> touched;
    for (const auto &change : changes) {
        for (int32_t r : set_->relations_of(change.first)) touched.push_back(r);
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    int64_t delta = 0;
    for (int32_t r : touched) {
        const Relation &rel   = set_->relations()[static_cast<size_t>(r)];
        const bool      now   = slot_[static_cast<size_t>(r)] >= 0;
        const bool      after = !relation_holds(rel.kind, label_after(rel.a), label_after(rel.b));
        delta += static_cast<int64_t>(after) - static_cast<int64_t>(now);
    }
    return delta;
}

int32_t InconsistencyTracker::sample(RandomStream &rng) const {
    if (violated_.empty()) throw std::logic_error("sample: no inconsistent relation");
    // Sample from the sorted list so the draw does not depend on insertion history.
    const std::vector<int32_t> order = sorted();
    return order[rng.next_below(order.size())];
}

std::vector<int32_t> InconsistencyTracker::sorted() const {
    std::vector<int32_t> out = violated_;
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace icm
