// ClaimSet: claims, their consistency groups and relations, validated once.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "icm/icm.hpp"

namespace icm {

namespace {

std::string relation_field(size_t r, const char *field) {
    return "relations[" + std::to_string(r) + "]." + field;
}

}  // namespace

ClaimSet::ClaimSet(std::vector<Claim> claims, std::vector<Relation> relations, std::string label_true,
                   std::string label_false, std::string demo_separator,
                   std::vector<GroupConstraint> group_constraints)
    : claims_(std::move(claims)),
      relations_(std::move(relations)),
      label_true_(std::move(label_true)),
      label_false_(std::move(label_false)),
      demo_separator_(std::move(demo_separator)),
      group_constraints_(std::move(group_constraints)) {
    if (label_true_.empty() || label_false_.empty() || label_true_ == label_false_) {
        throw std::invalid_argument("label words: need two different non-empty words, got '" + label_true_ +
                                    "' and '" + label_false_ + "'");
    }
    const size_t                             n = claims_.size();
    std::unordered_set<std::string>          ids;
    std::unordered_map<std::string, int32_t> group_index;
    group_of_.resize(n);
    for (size_t i = 0; i < n; ++i) {
        const Claim &c = claims_[i];
        if (c.id.empty()) {
            throw std::invalid_argument("claims[" + std::to_string(i) + "].id: empty");
        }
        if (!ids.insert(c.id).second) {
            throw std::invalid_argument("claims[" + std::to_string(i) + "].id: duplicate id '" + c.id + "'");
        }
        // An empty group means a group of its own; the key cannot clash with a real
        // group name because real names never contain '\0'.
        const std::string key = c.group.empty() ? std::string("\0own:", 5) + c.id : c.group;
        auto [it, inserted]   = group_index.emplace(key, static_cast<int32_t>(group_members_.size()));
        if (inserted) group_members_.emplace_back();
        group_of_[i] = it->second;
        group_members_[static_cast<size_t>(it->second)].push_back(static_cast<int32_t>(i));
    }

    relations_of_.resize(n);
    std::unordered_set<uint64_t> pairs;
    for (size_t r = 0; r < relations_.size(); ++r) {
        const Relation &rel  = relations_[r];
        const auto      kind = static_cast<int>(rel.kind);
        if (kind < 0 || kind > 2) {
            throw std::invalid_argument(relation_field(r, "kind") + ": unknown kind " + std::to_string(kind));
        }
        for (auto [field, idx] : {std::pair{"a", rel.a}, std::pair{"b", rel.b}}) {
            if (idx < 0 || static_cast<size_t>(idx) >= n) {
                throw std::invalid_argument(relation_field(r, field) + ": claim index " +
                                            std::to_string(idx) + " out of range [0, " + std::to_string(n) +
                                            ")");
            }
        }
        if (rel.a == rel.b) {
            throw std::invalid_argument(relation_field(r, "b") + ": relates claim " + std::to_string(rel.a) +
                                        " to itself");
        }
        const auto lo = static_cast<uint64_t>(std::min(rel.a, rel.b));
        const auto hi = static_cast<uint64_t>(std::max(rel.a, rel.b));
        if (!pairs.insert((lo << 32) | hi).second) {
            throw std::invalid_argument(relation_field(r, "a") + ": claims " + std::to_string(lo) + " and " +
                                        std::to_string(hi) + " are already related (one relation per pair)");
        }
        relations_of_[static_cast<size_t>(rel.a)].push_back(static_cast<int32_t>(r));
        relations_of_[static_cast<size_t>(rel.b)].push_back(static_cast<int32_t>(r));
    }

    constraints_of_ = relations_of_;
    for (size_t g = 0; g < group_constraints_.size(); ++g) {
        const GroupConstraint &group = group_constraints_[g];
        const std::string      where = "group_constraints[" + std::to_string(g) + "]";
        if (static_cast<int>(group.kind) != 0) {
            throw std::invalid_argument(where + ".kind: unknown kind " +
                                        std::to_string(static_cast<int>(group.kind)));
        }
        if (group.members.empty()) throw std::invalid_argument(where + ".members: empty");
        std::unordered_set<int32_t> seen;
        for (int32_t m : group.members) {
            if (m < 0 || static_cast<size_t>(m) >= n) {
                throw std::invalid_argument(where + ".members: claim index " + std::to_string(m) +
                                            " out of range [0, " + std::to_string(n) + ")");
            }
            if (!seen.insert(m).second) {
                throw std::invalid_argument(where + ".members: claim " + std::to_string(m) + " listed twice");
            }
            constraints_of_[static_cast<size_t>(m)].push_back(static_cast<int32_t>(relations_.size() + g));
        }
    }
}

const Claim &ClaimSet::claim(int32_t i) const {
    if (i < 0 || i >= n_claims()) {
        throw std::out_of_range("claim index " + std::to_string(i) + " out of range [0, " +
                                std::to_string(n_claims()) + ")");
    }
    return claims_[static_cast<size_t>(i)];
}

const std::string &ClaimSet::label_word(Label l) const {
    if (l == Label::TRUE) return label_true_;
    if (l == Label::FALSE) return label_false_;
    throw std::invalid_argument("label: an unset label has no word");
}

ClaimSet ClaimSet::subset(std::span<const int32_t> indices) const {
    std::vector<int32_t> position(claims_.size(), -1);
    std::vector<Claim>   claims;
    claims.reserve(indices.size());
    for (size_t k = 0; k < indices.size(); ++k) {
        const int32_t i = indices[k];
        claim(i);  // range check
        if (position[static_cast<size_t>(i)] >= 0) {
            throw std::invalid_argument("subset: claim index " + std::to_string(i) + " given twice");
        }
        position[static_cast<size_t>(i)] = static_cast<int32_t>(k);
        claims.push_back(claims_[static_cast<size_t>(i)]);
    }
    std::vector<Relation> relations;
    for (const Relation &rel : relations_) {
        const int32_t a = position[static_cast<size_t>(rel.a)];
        const int32_t b = position[static_cast<size_t>(rel.b)];
        if (a >= 0 && b >= 0) relations.push_back({rel.kind, a, b});
    }
    // A group constraint is kept only if all its members are: on part of a group,
    // "at least one true" no longer holds by construction.
    std::vector<GroupConstraint> groups;
    for (const GroupConstraint &group : group_constraints_) {
        GroupConstraint kept{group.kind, {}};
        for (int32_t m : group.members) {
            if (position[static_cast<size_t>(m)] >= 0)
                kept.members.push_back(position[static_cast<size_t>(m)]);
        }
        if (kept.members.size() == group.members.size()) groups.push_back(std::move(kept));
    }
    return ClaimSet(std::move(claims), std::move(relations), label_true_, label_false_, demo_separator_,
                    std::move(groups));
}

}  // namespace icm
