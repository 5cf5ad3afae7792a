// Python bindings of the C++ core (the module icm._icm_core). One file, thin: every
// type and function here is documented in core/include/icm/icm.hpp.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>
#include <nanobind/trampoline.h>

#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>

#include "icm/icm.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

// Lets a Python class implement icm.Scorer (the language-model backends do).
struct PyScorer : icm::Scorer {
    NB_TRAMPOLINE(icm::Scorer, 2);
    std::vector<icm::LabelScore> score(const std::vector<icm::ScoreRequest> &requests) override {
        nb::gil_scoped_acquire gil;  // the search runs with the GIL released
        NB_OVERRIDE_PURE(score, requests);
    }
    bool reads_prompt_text() const override {
        nb::gil_scoped_acquire gil;
        NB_OVERRIDE(reads_prompt_text);
    }
};

// Python's repr of a value (strings quoted and escaped, enums by name).
template <typename T>
std::string py_repr(const T &value) {
    return nb::repr(nb::cast(value)).c_str();
}

// "Type(field=repr, ...)", the way a dataclass prints.
std::string fields_repr(const char                                                 *type,
                        std::initializer_list<std::pair<const char *, std::string>> fields) {
    std::string out   = std::string(type) + "(";
    bool        first = true;
    for (const auto &[name, value] : fields) {
        out += (first ? "" : ", ") + std::string(name) + "=" + value;
        first = false;
    }
    return out + ")";
}

// A long text (a prompt) cut for a repr.
std::string short_text(const std::string &text) {
    return text.size() <= 40 ? text : text.substr(0, 37) + "...";
}

// An index into a sequence of `size`, or std::out_of_range (IndexError in Python) naming the
// argument, its value and the valid range: the core's accessors do not check.
int32_t checked_index(const char *argument, int32_t value, int32_t size) {
    if (value < 0 || value >= size) {
        throw std::out_of_range(std::string(argument) + " " + std::to_string(value) + " out of range [0, " +
                                std::to_string(size) + ")");
    }
    return value;
}

}  // namespace

NB_MODULE(_icm_core, m) {
    m.doc() = "icm C++ core: claims, consistency, objective, annealing search";

    nb::enum_<icm::Label>(m, "Label")
        .value("UNSET", icm::Label::UNSET)
        .value("FALSE", icm::Label::FALSE)
        .value("TRUE", icm::Label::TRUE);
    nb::enum_<icm::RelationKind>(m, "RelationKind")
        .value("SAME", icm::RelationKind::SAME)
        .value("AT_MOST_ONE_TRUE", icm::RelationKind::AT_MOST_ONE_TRUE)
        .value("OPPOSITE", icm::RelationKind::OPPOSITE);
    nb::enum_<icm::GroupKind>(m, "GroupKind").value("AT_LEAST_ONE_TRUE", icm::GroupKind::AT_LEAST_ONE_TRUE);
    nb::enum_<icm::Schedule>(m, "Schedule").value("EXP", icm::Schedule::EXP).value("LOG", icm::Schedule::LOG);
    nb::enum_<icm::ScheduleCounter>(m, "ScheduleCounter")
        .value("ITERATION", icm::ScheduleCounter::ITERATION)
        .value("ACCEPTED", icm::ScheduleCounter::ACCEPTED);
    nb::enum_<icm::MpObjective>(m, "MpObjective")
        .value("MEAN_LOGIT_GAP", icm::MpObjective::MEAN_LOGIT_GAP)
        .value("SUM_LOGPROB", icm::MpObjective::SUM_LOGPROB);
    nb::enum_<icm::MpMode>(m, "MpMode")
        .value("EXACT", icm::MpMode::EXACT)
        .value("SPARSE", icm::MpMode::SPARSE);
    nb::enum_<icm::FixOptions>(m, "FixOptions")
        .value("CONSISTENT", icm::FixOptions::CONSISTENT)
        .value("CODE", icm::FixOptions::CODE);
    nb::enum_<icm::FixPairSearch>(m, "FixPairSearch")
        .value("SAMPLE", icm::FixPairSearch::SAMPLE)
        .value("SCAN", icm::FixPairSearch::SCAN);
    nb::enum_<icm::SeedPlacement>(m, "SeedPlacement")
        .value("RANDOM", icm::SeedPlacement::RANDOM)
        .value("BATCH_START", icm::SeedPlacement::BATCH_START);
    nb::enum_<icm::FixBaseline>(m, "FixBaseline")
        .value("CURRENT", icm::FixBaseline::CURRENT)
        .value("DUMMY", icm::FixBaseline::DUMMY);
    nb::enum_<icm::StepOutcome>(m, "StepOutcome")
        .value("INIT", icm::StepOutcome::INIT)
        .value("UNCHANGED", icm::StepOutcome::UNCHANGED)
        .value("ACCEPTED", icm::StepOutcome::ACCEPTED)
        .value("REJECTED", icm::StepOutcome::REJECTED);

    nb::class_<icm::Claim>(m, "Claim",
                           "A claim to label: a unique id, its rendered prompt, its consistency group.")
        .def(nb::init<std::string, std::string, std::string>(), "id"_a, "prompt"_a, "group"_a = "")
        .def_rw("id", &icm::Claim::id, "unique, stable across runs")
        .def_rw("prompt", &icm::Claim::prompt, "the rendered claim, ending where the label word goes")
        .def_rw("group", &icm::Claim::group, "consistency group; '' = a group of its own")
        .def("__repr__", [](const icm::Claim &c) {
            return fields_repr("Claim", {{"id", py_repr(c.id)},
                                         {"prompt", py_repr(short_text(c.prompt))},
                                         {"group", py_repr(c.group)}});
        });

    nb::class_<icm::Relation>(m, "Relation",
                              "A logical relation between two claims, by index into the ClaimSet.")
        .def(nb::init<icm::RelationKind, int32_t, int32_t>(), "kind"_a, "a"_a, "b"_a)
        .def_rw("kind", &icm::Relation::kind)
        .def_rw("a", &icm::Relation::a, "claim index")
        .def_rw("b", &icm::Relation::b, "claim index")
        .def("__repr__", [](const icm::Relation &r) {
            return fields_repr(
                "Relation",
                {{"kind", py_repr(r.kind)}, {"a", std::to_string(r.a)}, {"b", std::to_string(r.b)}});
        });

    nb::class_<icm::GroupConstraint>(m, "GroupConstraint")
        .def(nb::init<icm::GroupKind, std::vector<int32_t>>(), "kind"_a, "members"_a)
        .def_rw("kind", &icm::GroupConstraint::kind)
        .def_rw("members", &icm::GroupConstraint::members);

    nb::class_<icm::ClaimSet>(m, "ClaimSet",
                              "Claims, the relations between them and their groups; checked when built.")
        .def(nb::init<std::vector<icm::Claim>, std::vector<icm::Relation>, std::string, std::string,
                      std::string, std::vector<icm::GroupConstraint>>(),
             "claims"_a, "relations"_a, "label_true"_a = "True", "label_false"_a = "False",
             "demo_separator"_a = "\n\n", "group_constraints"_a = std::vector<icm::GroupConstraint>{})
        .def_prop_ro("group_constraints", &icm::ClaimSet::group_constraints)
        .def_prop_ro("n_constraints", &icm::ClaimSet::n_constraints)
        .def_prop_ro("n_claims", &icm::ClaimSet::n_claims)
        .def_prop_ro("n_groups", &icm::ClaimSet::n_groups)
        .def_prop_ro("claims", &icm::ClaimSet::claims)
        .def_prop_ro("relations", &icm::ClaimSet::relations)
        .def(
            "group_of",
            [](const icm::ClaimSet &s, int32_t claim) {
                return s.group_of(checked_index("claim", claim, s.n_claims()));
            },
            "claim"_a, "The group index of a claim (IndexError outside [0, n_claims)).")
        .def(
            "group_members",
            [](const icm::ClaimSet &s, int32_t group) {
                return s.group_members(checked_index("group", group, s.n_groups()));
            },
            "group"_a, "The claim indices of a group (IndexError outside [0, n_groups)).")
        .def("label_word", &icm::ClaimSet::label_word, "label"_a, "The word of a label in prompts ('True').")
        .def(
            "subset", [](const icm::ClaimSet &s, const std::vector<int32_t> &idx) { return s.subset(idx); },
            "indices"_a, "The claims at these indices, with the relations among them kept.")
        .def("__repr__", [](const icm::ClaimSet &s) {
            return fields_repr("ClaimSet",
                               {{"n_claims", std::to_string(s.n_claims())},
                                {"n_groups", std::to_string(s.n_groups())},
                                {"n_relations", std::to_string(s.relations().size())},
                                {"n_group_constraints", std::to_string(s.group_constraints().size())}});
        });

    m.def("relation_holds", &icm::relation_holds, "kind"_a, "a"_a, "b"_a);
    m.def("relation_consistent_options", &icm::relation_consistent_options, "kind"_a);
    m.def("relation_code_options", &icm::relation_code_options, "kind"_a);
    m.def(
        "count_inconsistencies",
        [](const icm::ClaimSet &s, const std::vector<icm::Label> &l) {
            return icm::count_inconsistencies(s, l);
        },
        "claims"_a, "labels"_a);
    m.def(
        "inconsistent_relations",
        [](const icm::ClaimSet &s, const std::vector<icm::Label> &l) {
            return icm::inconsistent_relations(s, l);
        },
        "claims"_a, "labels"_a);
    m.def(
        "inconsistent_constraints",
        [](const icm::ClaimSet &s, const std::vector<icm::Label> &l) {
            return icm::inconsistent_constraints(s, l);
        },
        "claims"_a, "labels"_a);
    m.def("constraint_fix_options", &icm::constraint_fix_options, "claims"_a, "constraint"_a, "options"_a);
    m.def(
        "group_constraint_holds",
        [](icm::GroupKind k, const std::vector<icm::Label> &l) { return icm::group_constraint_holds(k, l); },
        "kind"_a, "member_labels"_a);
    m.def("make_batches", &icm::make_batches, "claims"_a, "batch_size"_a, "seed"_a);

    nb::class_<icm::ScoreRequest>(m, "ScoreRequest")
        .def(nb::init<>())
        .def_rw("target", &icm::ScoreRequest::target)
        .def_rw("demos", &icm::ScoreRequest::demos)
        .def_rw("demo_labels", &icm::ScoreRequest::demo_labels)
        .def_rw("prompt", &icm::ScoreRequest::prompt);

    nb::class_<icm::LabelScore>(m, "LabelScore", "The model's log-probabilities of the two label words.")
        .def(nb::init<double, double>(), "logp_true"_a, "logp_false"_a)
        .def_rw("logp_true", &icm::LabelScore::logp_true)
        .def_rw("logp_false", &icm::LabelScore::logp_false)
        .def_prop_ro("gap", &icm::LabelScore::gap, "logp_true - logp_false")
        .def("__repr__", [](const icm::LabelScore &l) {
            return fields_repr("LabelScore",
                               {{"logp_true", py_repr(l.logp_true)}, {"logp_false", py_repr(l.logp_false)}});
        });

    m.def("render_prompt", &icm::render_prompt, "claims"_a, "request"_a);

    nb::class_<icm::Scorer, PyScorer>(m, "Scorer", "The model: subclass it and implement score(requests).")
        .def(nb::init<>())
        .def("score", &icm::Scorer::score, "requests"_a, "One LabelScore per ScoreRequest, in order.")
        .def("reads_prompt_text", &icm::Scorer::reads_prompt_text,
             "True if score() reads request.prompt (the search then renders it).");

    nb::class_<icm::SyntheticScorerParams>(m, "SyntheticScorerParams")
        .def(nb::init<>())
        .def_rw("prior", &icm::SyntheticScorerParams::prior)
        .def_rw("demo_weight", &icm::SyntheticScorerParams::demo_weight)
        .def_rw("noise", &icm::SyntheticScorerParams::noise)
        .def_rw("ignore_truth", &icm::SyntheticScorerParams::ignore_truth)
        .def_rw("seed", &icm::SyntheticScorerParams::seed);

    nb::class_<icm::SyntheticScorer, icm::Scorer>(m, "SyntheticScorer")
        .def(nb::init<std::vector<icm::Label>, icm::SyntheticScorerParams>(), "hidden_truth"_a, "params"_a)
        .def_prop_ro("n_requests", &icm::SyntheticScorer::n_requests);

    nb::class_<icm::SearchParams>(
        m, "SearchParams",
        "The search's parameters, with the paper's defaults (see core/include/icm/icm.hpp).")
        .def(nb::init<>())
        .def_rw("alpha", &icm::SearchParams::alpha)
        .def_rw("seed", &icm::SearchParams::seed)
        .def_rw("num_seed", &icm::SearchParams::num_seed)
        .def_rw("max_iterations", &icm::SearchParams::max_iterations)
        .def_rw("consistency_fix_k", &icm::SearchParams::consistency_fix_k)
        .def_rw("initial_t", &icm::SearchParams::initial_t)
        .def_rw("final_t", &icm::SearchParams::final_t)
        .def_rw("decay", &icm::SearchParams::decay)
        .def_rw("log_beta", &icm::SearchParams::log_beta)
        .def_rw("schedule", &icm::SearchParams::schedule)
        .def_rw("schedule_counter", &icm::SearchParams::schedule_counter)
        .def_rw("group_weight", &icm::SearchParams::group_weight)
        .def_rw("mp_objective", &icm::SearchParams::mp_objective)
        .def_rw("mp_mode", &icm::SearchParams::mp_mode)
        .def_rw("context_k", &icm::SearchParams::context_k)
        .def_rw("context_regrow", &icm::SearchParams::context_regrow)
        .def_rw("fix_options", &icm::SearchParams::fix_options)
        .def_rw("fix_pair_search", &icm::SearchParams::fix_pair_search)
        .def_rw("fix_baseline", &icm::SearchParams::fix_baseline)
        .def_rw("seed_placement", &icm::SearchParams::seed_placement)
        .def_rw("prefetch_depth", &icm::SearchParams::prefetch_depth)
        .def_rw("prefetch_call_limit", &icm::SearchParams::prefetch_call_limit)
        .def_rw("prefetch_fill", &icm::SearchParams::prefetch_fill)
        .def("validate", &icm::SearchParams::validate, "Raise ValueError naming the first bad field.")
        .def("__repr__", [](const icm::SearchParams &p) {
            return fields_repr("SearchParams",
                               {{"alpha", py_repr(p.alpha)},
                                {"seed", std::to_string(p.seed)},
                                {"num_seed", std::to_string(p.num_seed)},
                                {"max_iterations", std::to_string(p.max_iterations)},
                                {"consistency_fix_k", std::to_string(p.consistency_fix_k)},
                                {"initial_t", py_repr(p.initial_t)},
                                {"final_t", py_repr(p.final_t)},
                                {"schedule", py_repr(p.schedule)},
                                {"log_beta", py_repr(p.log_beta)},
                                {"decay", py_repr(p.decay)},
                                {"mp_mode", py_repr(p.mp_mode)},
                                {"mp_objective", py_repr(p.mp_objective)},
                                {"context_k", std::to_string(p.context_k)},
                                {"fix_options", py_repr(p.fix_options)},
                                {"seed_placement", py_repr(p.seed_placement)},
                                {"prefetch_depth", std::to_string(p.prefetch_depth)},
                                {"prefetch_call_limit", std::to_string(p.prefetch_call_limit)},
                                {"prefetch_fill", std::to_string(p.prefetch_fill)}});
        });
    m.attr("MAX_PREFETCH_DEPTH") = icm::MAX_PREFETCH_DEPTH;
    m.def("search_params_paper", &icm::search_params_paper);
    m.def("search_params_code", &icm::search_params_code);
    m.def("annealing_temperature", &icm::annealing_temperature, "params"_a, "n"_a);
    m.def("acceptance_probability", &icm::acceptance_probability, "delta"_a, "temperature"_a);

    nb::class_<icm::TraceRow>(m, "TraceRow", "What one search step did (a row of trace.jsonl).")
        .def_ro("iteration", &icm::TraceRow::iteration)
        .def_ro("outcome", &icm::TraceRow::outcome)
        .def_ro("claim", &icm::TraceRow::claim)
        .def_ro("proposed", &icm::TraceRow::proposed)
        .def_ro("temperature", &icm::TraceRow::temperature)
        .def_ro("delta", &icm::TraceRow::delta)
        .def_ro("utility", &icm::TraceRow::utility)
        .def_ro("mp", &icm::TraceRow::mp)
        .def_ro("inconsistent", &icm::TraceRow::inconsistent)
        .def_ro("n_labeled", &icm::TraceRow::n_labeled)
        .def_ro("n_fixed", &icm::TraceRow::n_fixed)
        .def_ro("n_requests", &icm::TraceRow::n_requests)
        .def_ro("n_cache_hits", &icm::TraceRow::n_cache_hits)
        .def_ro("n_prompt_claims", &icm::TraceRow::n_prompt_claims)
        .def_ro("n_accepted", &icm::TraceRow::n_accepted)
        .def_ro("n_rounds", &icm::TraceRow::n_rounds, "scorer calls so far")
        .def_ro("n_prefetched", &icm::TraceRow::n_prefetched, "speculative requests sent so far")
        .def_ro("n_prefetched_used", &icm::TraceRow::n_prefetched_used,
                "speculative requests the search has needed since")
        .def("__repr__", [](const icm::TraceRow &t) {
            return fields_repr("TraceRow", {{"iteration", std::to_string(t.iteration)},
                                            {"outcome", py_repr(t.outcome)},
                                            {"claim", std::to_string(t.claim)},
                                            {"proposed", py_repr(t.proposed)},
                                            {"temperature", py_repr(t.temperature)},
                                            {"delta", py_repr(t.delta)},
                                            {"utility", py_repr(t.utility)},
                                            {"mp", py_repr(t.mp)},
                                            {"inconsistent", std::to_string(t.inconsistent)},
                                            {"n_labeled", std::to_string(t.n_labeled)}});
        });

    nb::class_<icm::SearchState>(m, "SearchState",
                                 "Everything needed to continue a search exactly where it stopped.")
        .def(nb::init<>())
        .def_rw("labels", &icm::SearchState::labels)
        .def_rw("iteration", &icm::SearchState::iteration)
        .def_rw("n_accepted", &icm::SearchState::n_accepted)
        .def_rw("rng_state", &icm::SearchState::rng_state)
        .def_rw("initialized", &icm::SearchState::initialized)
        .def_rw("context_epoch", &icm::SearchState::context_epoch)
        .def_rw("context_pool", &icm::SearchState::context_pool)
        .def("__repr__", [](const icm::SearchState &s) {
            int64_t n_labeled = 0;
            for (icm::Label l : s.labels) n_labeled += l != icm::Label::UNSET;
            return fields_repr("SearchState", {{"n_claims", std::to_string(s.labels.size())},
                                               {"n_labeled", std::to_string(n_labeled)},
                                               {"iteration", std::to_string(s.iteration)},
                                               {"n_accepted", std::to_string(s.n_accepted)},
                                               {"initialized", s.initialized ? "True" : "False"},
                                               {"context_epoch", std::to_string(s.context_epoch)}});
        });

    nb::class_<icm::Search>(m, "Search", "ICM's annealing search over one batch of claims (Algorithm 1).")
        .def(nb::init<icm::ClaimSet, icm::SearchParams, icm::Scorer &>(), "claims"_a, "params"_a, "scorer"_a,
             nb::keep_alive<1, 4>())
        .def("set_initial_labels", &icm::Search::set_initial_labels, "labels"_a,
             "Start from these labels (one per claim, UNSET allowed) instead of num_seed random ones; "
             "before the first step only.")
        .def("step", &icm::Search::step, nb::call_guard<nb::gil_scoped_release>(), "One step; its TraceRow.")
        .def("run", &icm::Search::run, "n_steps"_a = nb::none(), nb::call_guard<nb::gil_scoped_release>(),
             "n_steps steps, or to the end; their TraceRows.")
        .def_prop_ro("done", &icm::Search::done)
        .def_prop_ro("iteration", &icm::Search::iteration)
        .def_prop_ro("claims", &icm::Search::claims, nb::rv_policy::reference_internal)
        .def_prop_ro("params", &icm::Search::params)
        .def_prop_ro("labels", &icm::Search::labels)
        .def_prop_ro("scores", &icm::Search::scores)
        .def_prop_ro("utility", &icm::Search::utility)
        .def_prop_ro("mutual_predictability", &icm::Search::mutual_predictability)
        .def_prop_ro("inconsistencies", &icm::Search::inconsistencies)
        .def("state", &icm::Search::state, "A SearchState to continue from later.")
        .def("restore", &icm::Search::restore, "state"_a, nb::call_guard<nb::gil_scoped_release>(),
             "Continue from a SearchState (ValueError naming the bad field).");
}
