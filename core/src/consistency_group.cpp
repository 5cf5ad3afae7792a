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

bool group_constraint_holds(GroupKind kind, std::span<const Label> member_labels) {
    if (kind != GroupKind::AT_LEAST_ONE_TRUE) {
        throw std::invalid_argument("group kind: unknown value " + std::to_string(static_cast<int>(kind)));
    }
    for (Label l : member_labels) {
        if (l != Label::FALSE) return true;  // a true member, or one still unset
    }
    return member_labels.empty();
}

bool constraint_holds(const ClaimSet &set, int32_t c, std::span<const Label> labels) {
    const auto n_relations = static_cast<int32_t>(set.relations().size());
    if (c < n_relations) {
        const Relation &rel = set.relations()[static_cast<size_t>(c)];
        return relation_holds(rel.kind, labels[static_cast<size_t>(rel.a)],
                              labels[static_cast<size_t>(rel.b)]);
    }
    const GroupConstraint &group = set.group_constraints().at(static_cast<size_t>(c - n_relations));
    for (int32_t m : group.members) {
        if (labels[static_cast<size_t>(m)] != Label::FALSE) return true;
    }
    return false;
}

std::vector<std::vector<std::pair<int32_t, Label>>> constraint_fix_options(const ClaimSet &set, int32_t c,
                                                                           FixOptions options) {
    std::vector<std::vector<std::pair<int32_t, Label>>> out;
    const auto n_relations = static_cast<int32_t>(set.relations().size());
    if (c < n_relations) {
        const Relation &rel   = set.relations()[static_cast<size_t>(c)];
        const auto      pairs = options == FixOptions::CONSISTENT ? relation_consistent_options(rel.kind)
                                                                  : relation_code_options(rel.kind);
        for (const auto &[la, lb] : pairs) out.push_back({{rel.a, la}, {rel.b, lb}});
        return out;
    }
    for (int32_t m : set.group_constraints().at(static_cast<size_t>(c - n_relations)).members) {
        out.push_back({{m, Label::TRUE}});
    }
    return out;
}

int64_t count_inconsistencies(const ClaimSet &set, std::span<const Label> labels) {
    return static_cast<int64_t>(inconsistent_constraints(set, labels).size());
}

std::vector<int32_t> inconsistent_constraints(const ClaimSet &set, std::span<const Label> labels) {
    if (labels.size() != static_cast<size_t>(set.n_claims())) {
        throw std::invalid_argument("labels: size " + std::to_string(labels.size()) +
                                    " != number of claims " + std::to_string(set.n_claims()));
    }
    std::vector<int32_t> out;
    for (int32_t c = 0; c < set.n_constraints(); ++c) {
        if (!constraint_holds(set, c, labels)) out.push_back(c);
    }
    return out;
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
    : set_(&set), slot_(static_cast<size_t>(set.n_constraints()), -1) {
    for (int32_t c : inconsistent_constraints(set, labels)) set_violated(c, true);
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
    for (int32_t c : set_->constraints_of(claim)) set_violated(c, !constraint_holds(*set_, c, labels));
}

int64_t InconsistencyTracker::delta_if(std::span<const Label>                     labels,
                                       std::span<const std::pair<int32_t, Label>> changes) const {
    // Each touched constraint is counted once even when several of its claims change.
    std::vector<int32_t> touched;
    for (const auto &change : changes) {
        for (int32_t c : set_->constraints_of(change.first)) touched.push_back(c);
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    std::vector<Label> after(labels.begin(), labels.end());
    for (const auto &[claim, label] : changes) after[static_cast<size_t>(claim)] = label;
    int64_t delta = 0;
    for (int32_t c : touched) {
        const bool now   = slot_[static_cast<size_t>(c)] >= 0;
        const bool later = !constraint_holds(*set_, c, after);
        delta += static_cast<int64_t>(later) - static_cast<int64_t>(now);
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
