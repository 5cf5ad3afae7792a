// Python bindings of the C++ core (the module icm._icm_core). One file, thin: every
// type and function here is documented in core/include/icm/icm.hpp.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>
#include <nanobind/trampoline.h>

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

    nb::class_<icm::Claim>(m, "Claim")
        .def(nb::init<std::string, std::string, std::string>(), "id"_a, "prompt"_a, "group"_a = "")
        .def_rw("id", &icm::Claim::id)
        .def_rw("prompt", &icm::Claim::prompt)
        .def_rw("group", &icm::Claim::group);

    nb::class_<icm::Relation>(m, "Relation")
        .def(nb::init<icm::RelationKind, int32_t, int32_t>(), "kind"_a, "a"_a, "b"_a)
        .def_rw("kind", &icm::Relation::kind)
        .def_rw("a", &icm::Relation::a)
        .def_rw("b", &icm::Relation::b);

    nb::class_<icm::GroupConstraint>(m, "GroupConstraint")
        .def(nb::init<icm::GroupKind, std::vector<int32_t>>(), "kind"_a, "members"_a)
        .def_rw("kind", &icm::GroupConstraint::kind)
        .def_rw("members", &icm::GroupConstraint::members);

    nb::class_<icm::ClaimSet>(m, "ClaimSet")
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
        .def("group_of", &icm::ClaimSet::group_of, "claim"_a)
        .def("group_members", &icm::ClaimSet::group_members, "group"_a)
        .def("label_word", &icm::ClaimSet::label_word, "label"_a)
        .def(
            "subset", [](const icm::ClaimSet &s, const std::vector<int32_t> &idx) { return s.subset(idx); },
            "indices"_a);

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

    nb::class_<icm::LabelScore>(m, "LabelScore")
        .def(nb::init<double, double>(), "logp_true"_a, "logp_false"_a)
        .def_rw("logp_true", &icm::LabelScore::logp_true)
        .def_rw("logp_false", &icm::LabelScore::logp_false)
        .def_prop_ro("gap", &icm::LabelScore::gap);

    m.def("render_prompt", &icm::render_prompt, "claims"_a, "request"_a);

    nb::class_<icm::Scorer, PyScorer>(m, "Scorer")
        .def(nb::init<>())
        .def("score", &icm::Scorer::score, "requests"_a)
        .def("reads_prompt_text", &icm::Scorer::reads_prompt_text);

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

    nb::class_<icm::SearchParams>(m, "SearchParams")
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
        .def("validate", &icm::SearchParams::validate);
    m.def("search_params_paper", &icm::search_params_paper);
    m.def("search_params_code", &icm::search_params_code);
    m.def("annealing_temperature", &icm::annealing_temperature, "params"_a, "n"_a);
    m.def("acceptance_probability", &icm::acceptance_probability, "delta"_a, "temperature"_a);

    nb::class_<icm::TraceRow>(m, "TraceRow")
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
        .def_ro("n_accepted", &icm::TraceRow::n_accepted);

    nb::class_<icm::SearchState>(m, "SearchState")
        .def(nb::init<>())
        .def_rw("labels", &icm::SearchState::labels)
        .def_rw("iteration", &icm::SearchState::iteration)
        .def_rw("n_accepted", &icm::SearchState::n_accepted)
        .def_rw("rng_state", &icm::SearchState::rng_state)
        .def_rw("initialized", &icm::SearchState::initialized)
        .def_rw("context_epoch", &icm::SearchState::context_epoch)
        .def_rw("context_pool", &icm::SearchState::context_pool);

    nb::class_<icm::Search>(m, "Search")
        .def(nb::init<icm::ClaimSet, icm::SearchParams, icm::Scorer &>(), "claims"_a, "params"_a, "scorer"_a,
             nb::keep_alive<1, 4>())
        .def("step", &icm::Search::step, nb::call_guard<nb::gil_scoped_release>())
        .def("run", &icm::Search::run, "n_steps"_a = nb::none(), nb::call_guard<nb::gil_scoped_release>())
        .def_prop_ro("done", &icm::Search::done)
        .def_prop_ro("iteration", &icm::Search::iteration)
        .def_prop_ro("claims", &icm::Search::claims, nb::rv_policy::reference_internal)
        .def_prop_ro("params", &icm::Search::params)
        .def_prop_ro("labels", &icm::Search::labels)
        .def_prop_ro("scores", &icm::Search::scores)
        .def_prop_ro("utility", &icm::Search::utility)
        .def_prop_ro("mutual_predictability", &icm::Search::mutual_predictability)
        .def_prop_ro("inconsistencies", &icm::Search::inconsistencies)
        .def("state", &icm::Search::state)
        .def("restore", &icm::Search::restore, "state"_a, nb::call_guard<nb::gil_scoped_release>());
}
