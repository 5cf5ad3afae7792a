// The ICM search: Algorithm 1 of Wen et al. (2025), one step at a time.
//
//   Randomly label num_seed claims; D <- ConsistencyFix(D)                  (initialize)
//   for n = 1..K:                                                            (step)
//       T  <- schedule(n)
//       sample x_i, weighting unlabeled claims whose group holds a label x100
//       y_i <- argmax_y P(y | x_i, D \ {x_i})
//       D^ <- D + {(x_i, y_i)};  D^ <- ConsistencyFix(D^)
//       delta <- U(D^) - U(D);   accept D^ with probability min(1, exp(delta / T))
//
// Prefetch (prefetch_depth > 0) changes none of this: when a step waits for the scorer,
// speculative copies of the search run on from the start of the step with guessed scores,
// and the requests they would send travel in the same scorer call (prefetch()).
#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "consistency_fix.hpp"
#include "icm/icm.hpp"
#include "labeling.hpp"
#include "prefetch.hpp"
#include "random_stream.hpp"
#include "score_cache.hpp"
#include "weighted_sampler.hpp"

namespace icm {

struct Search::Impl {
    std::unique_ptr<const ClaimSet> owned_set;  // null in a speculative copy
    const ClaimSet                 &set;
    SearchParams                    params;
    CachedScorer                    scorer;
    RandomStream                    rng;
    Labeling                        labeling;
    WeightedSampler                 sampler;
    int64_t                         iteration   = 0;
    int64_t                         n_accepted  = 0;
    bool                            initialized = false;

    // Prefetch: where the step in progress started (set once its scores are refreshed).
    struct StepStart {
        RandomStream rng;
        int64_t      iteration;
        int64_t      n_accepted;
    };
    std::optional<StepStart> step_start;
    // Given by set_initial_labels: the labels to start from instead of random seeds.
    std::optional<std::vector<Label>> initial_labels;

    Impl(ClaimSet claims, const SearchParams &p, Scorer &s)
        : owned_set(std::make_unique<const ClaimSet>(std::move(claims))),
          set(*owned_set),
          params(p),
          scorer(s, set),
          rng(p.seed),
          labeling(set, params, scorer, std::vector<Label>(static_cast<size_t>(set.n_claims()), Label::UNSET),
                   ContextDraw{}),
          sampler(static_cast<size_t>(set.n_claims()), 1.0) {
        if (params.prefetch_depth > 0) {
            scorer.set_prefetcher([this] { return prefetch(); }, params.prefetch_fill);
        }
    }

    // A speculative copy of `real` at the start of its step in progress, scoring through
    // `guesser` (after the real cache).
    Impl(const Impl &real, Scorer &guesser)
        : set(real.set),
          params(real.params),
          scorer(guesser, set, &real.scorer),
          rng(real.step_start->rng),
          labeling(real.labeling.forked(scorer)),
          sampler(real.sampler),
          iteration(real.step_start->iteration),
          n_accepted(real.step_start->n_accepted),
          initialized(true) {
        params.prefetch_depth = 0;
        labeling.rollback(0);  // the step's trial changes, undone
    }

    TraceRow         initialize();
    void             seed_random_labels();
    TraceRow         step();
    void             commit_labels();
    void             refresh_scores();
    void             reset_sampling_weights();
    TraceRow         row(StepOutcome outcome) const;
    bool             done() const { return initialized && iteration >= params.max_iterations; }
    PrefetchRequests prefetch();
};

TraceRow Search::Impl::row(StepOutcome outcome) const {
    TraceRow r;
    r.iteration         = iteration;
    r.outcome           = outcome;
    r.utility           = labeling.utility();
    r.mp                = labeling.mp();
    r.inconsistent      = labeling.inconsistencies();
    r.n_labeled         = labeling.n_labeled();
    r.n_requests        = scorer.n_requests();
    r.n_cache_hits      = scorer.n_cache_hits();
    r.n_prompt_claims   = scorer.n_prompt_claims();
    r.n_accepted        = n_accepted;
    r.n_rounds          = scorer.n_rounds();
    r.n_prefetched      = scorer.n_prefetched();
    r.n_prefetched_used = scorer.n_prefetched_used();
    return r;
}

// Sampling weight of each claim: 1, or group_weight for an unlabeled claim whose
// consistency group already holds a labeled claim.
void Search::Impl::reset_sampling_weights() {
    for (int32_t c = 0; c < set.n_claims(); ++c) sampler.set(static_cast<size_t>(c), 1.0);
    for (int32_t c = 0; c < set.n_claims(); ++c) {
        if (labeling.label(c) == Label::UNSET) continue;
        for (int32_t m : set.group_members(set.group_of(c))) {
            if (labeling.label(m) == Label::UNSET) sampler.set(static_cast<size_t>(m), params.group_weight);
        }
    }
}

// Make the trial labels permanent and raise the sampling weight of the unlabeled
// claims that now share a group with a labeled one.
void Search::Impl::commit_labels() {
    for (int32_t c : labeling.commit()) {
        sampler.set(static_cast<size_t>(c), 1.0);
        for (int32_t m : set.group_members(set.group_of(c))) {
            if (labeling.label(m) == Label::UNSET) sampler.set(static_cast<size_t>(m), params.group_weight);
        }
    }
}

// Bring every score up to date: after a SPARSE redraw, or after a scorer failure left
// some stale. Deterministic in the labels alone, so safe to repeat after a failure.
void Search::Impl::refresh_scores() {
    labeling.maybe_redraw();
    labeling.evaluate();
    labeling.commit();
}

TraceRow Search::Impl::initialize() {
    if (initial_labels) {
        for (int32_t c = 0; c < set.n_claims(); ++c) {
            const Label l = (*initial_labels)[static_cast<size_t>(c)];
            if (l != Label::UNSET) labeling.apply(c, l);
        }
    } else {
        seed_random_labels();
    }
    labeling.commit();
    refresh_scores();

    // Resolve the initial inconsistencies.
    const int32_t n_fixed = consistency_fix(labeling, params, rng, scorer, labeling.utility());
    labeling.commit();
    reset_sampling_weights();
    initialized = true;
    TraceRow r  = row(StepOutcome::INIT);
    r.n_fixed   = n_fixed;
    return r;
}

void Search::Impl::seed_random_labels() {
    // Select num_seed claims (at random, or the first ones of the batch as the original
    // code does) and give them balanced random labels.
    const auto           n = static_cast<size_t>(set.n_claims());
    const size_t         k = std::min(n, static_cast<size_t>(params.num_seed));
    std::vector<int32_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
    if (params.seed_placement == SeedPlacement::RANDOM) {
        for (size_t i = 0; i < k; ++i) std::swap(order[i], order[i + rng.next_below(n - i)]);
    }
    std::vector<Label> seed_labels(k, Label::FALSE);
    std::fill(seed_labels.begin(), seed_labels.begin() + static_cast<std::ptrdiff_t>(k / 2), Label::TRUE);
    for (size_t i = k; i > 1; --i) std::swap(seed_labels[i - 1], seed_labels[rng.next_below(i)]);
    for (size_t i = 0; i < k; ++i) labeling.apply(order[i], seed_labels[i]);
}

TraceRow Search::Impl::step() {
    step_start.reset();
    refresh_scores();
    if (params.prefetch_depth > 0) step_start = StepStart{rng, iteration, n_accepted};
    const int64_t counter = params.schedule_counter == ScheduleCounter::ITERATION ? iteration : n_accepted;
    const double  temperature = annealing_temperature(params, counter);
    ++iteration;

    // Sample a claim, and ask the model for its label given all the others.
    const auto   claim    = static_cast<int32_t>(sampler.sample(rng));
    const double gap      = scorer.score({labeling.request_for(claim)}).front().gap();
    const Label  proposed = gap > 0 ? Label::TRUE : Label::FALSE;
    if (proposed == labeling.label(claim)) {
        TraceRow r    = row(StepOutcome::UNCHANGED);
        r.claim       = claim;
        r.proposed    = proposed;
        r.temperature = temperature;
        return r;
    }

    // Tentatively add the label, repair the inconsistencies it causes, compare U.
    const double u_current = labeling.utility();
    labeling.apply(claim, proposed);
    // The original code (DUMMY baseline) never scores the proposal before ConsistencyFix;
    // scoring it only when its U is the baseline keeps the same calls to the model.
    double baseline = -std::numeric_limits<double>::infinity();
    if (params.fix_baseline == FixBaseline::CURRENT) {
        labeling.evaluate();
        baseline = labeling.utility();
    }
    const int32_t n_fixed = consistency_fix(labeling, params, rng, scorer, baseline);
    labeling.evaluate();  // U of the repaired labeling (already scored when a fix applied)
    const double delta = labeling.utility() - u_current;

    const bool accept = rng.next_unit() < acceptance_probability(delta, temperature);
    if (accept) {
        ++n_accepted;
        commit_labels();
    } else {
        labeling.rollback(0);
    }
    TraceRow r    = row(accept ? StepOutcome::ACCEPTED : StepOutcome::REJECTED);
    r.claim       = claim;
    r.proposed    = proposed;
    r.temperature = temperature;
    r.delta       = delta;
    r.n_fixed     = n_fixed;
    return r;
}

// The requests the next prefetch_depth rounds of scorer calls would probably send, besides
// those of the call waiting now. Two copies of the search run on from the start of the
// step, one guessing True and one False for claims the model has never scored (others
// keep their last gap), until each has made prefetch_depth + 1 scorer calls of its own
// (or MAX_PREFETCH_STEPS steps); calls larger than prefetch_call_limit count but are not
// sent, except (prefetch_fill) into the idle slots of the call's last wave. The real
// search's random stream and labels are not touched: the copies have their own.
PrefetchRequests Search::Impl::prefetch() {
    constexpr int64_t MAX_PREFETCH_STEPS = 256;
    PrefetchRequests  out;
    if (!step_start) return out;  // initialization and score refreshes are not speculated
    for (Label unknown : {Label::TRUE, Label::FALSE}) {
        GuessScorer guesser(scorer.last_gaps(), unknown, params.prefetch_depth + 1,
                            params.prefetch_call_limit, params.prefetch_fill > 0);
        Impl        copy(*this, guesser);
        try {
            for (int64_t n = 0; n < MAX_PREFETCH_STEPS && !copy.done(); ++n) copy.step();
        } catch (const PrefetchHorizon &) {
            // looked far enough ahead
        }
        for (ScoreRequest &r : guesser.take_requests()) out.sent.push_back(std::move(r));
        for (ScoreRequest &r : guesser.take_fill()) out.fill.push_back(std::move(r));
    }
    return out;
}

Search::Search(ClaimSet claims, SearchParams params, Scorer &scorer) {
    params.validate();
    impl_ = std::make_unique<Impl>(std::move(claims), params, scorer);
}

Search::~Search() = default;

void Search::set_initial_labels(std::vector<Label> labels) {
    if (impl_->initialized) throw std::logic_error("set_initial_labels: the search has already started");
    if (labels.size() != static_cast<size_t>(impl_->set.n_claims())) {
        throw std::invalid_argument("initial_labels: size " + std::to_string(labels.size()) +
                                    " != number of claims " + std::to_string(impl_->set.n_claims()));
    }
    impl_->initial_labels = std::move(labels);
}

TraceRow Search::step() {
    if (done()) throw std::logic_error("step: the search is done (K iterations)");
    // A failing scorer leaves the search exactly as it was before the step (the scores
    // it did return stay in the cache).
    const RandomStream rng_before       = impl_->rng;
    const int64_t      iteration_before = impl_->iteration;
    const int64_t      accepted_before  = impl_->n_accepted;
    try {
        return impl_->initialized ? impl_->step() : impl_->initialize();
    } catch (...) {
        impl_->step_start.reset();
        impl_->labeling.rollback(0);
        impl_->rng        = rng_before;
        impl_->iteration  = iteration_before;
        impl_->n_accepted = accepted_before;
        throw;
    }
}

std::vector<TraceRow> Search::run(std::optional<int64_t> n_steps) {
    std::vector<TraceRow> rows;
    for (int64_t i = 0; !done() && (!n_steps || i < *n_steps); ++i) rows.push_back(step());
    return rows;
}

bool Search::done() const {
    return impl_->done();
}
int64_t Search::iteration() const {
    return impl_->iteration;
}
const ClaimSet &Search::claims() const {
    return impl_->set;
}
const SearchParams &Search::params() const {
    return impl_->params;
}
const std::vector<Label> &Search::labels() const {
    return impl_->labeling.labels();
}
std::vector<double> Search::scores() const {
    return impl_->labeling.gaps();
}
double Search::utility() const {
    return impl_->labeling.utility();
}
double Search::mutual_predictability() const {
    return impl_->labeling.mp();
}
int64_t Search::inconsistencies() const {
    return impl_->labeling.inconsistencies();
}

SearchState Search::state() const {
    SearchState s;
    s.labels        = impl_->labeling.labels();
    s.iteration     = impl_->iteration;
    s.n_accepted    = impl_->n_accepted;
    s.rng_state     = impl_->rng.save();
    s.initialized   = impl_->initialized;
    s.context_epoch = impl_->labeling.contexts().draw().epoch;
    s.context_pool  = impl_->labeling.contexts().draw().pool;
    return s;
}

void Search::restore(const SearchState &s) {
    auto &impl = *impl_;
    if (s.labels.size() != static_cast<size_t>(impl.set.n_claims())) {
        throw std::invalid_argument("state.labels: size " + std::to_string(s.labels.size()) +
                                    " != number of claims " + std::to_string(impl.set.n_claims()));
    }
    for (int32_t c : s.context_pool) {
        if (c < 0 || c >= impl.set.n_claims() || s.labels[static_cast<size_t>(c)] == Label::UNSET) {
            throw std::invalid_argument("state.context_pool: claim " + std::to_string(c) +
                                        " is not a labeled claim");
        }
    }
    if (s.iteration < 0 || s.n_accepted < 0 || s.n_accepted > s.iteration) {
        throw std::invalid_argument("state.iteration/n_accepted: inconsistent counters");
    }
    Labeling labeling(impl.set, impl.params, impl.scorer, s.labels,
                      ContextDraw{s.context_epoch, s.context_pool});
    labeling.evaluate();
    labeling.commit();
    impl.rng.load(s.rng_state);
    impl.labeling    = std::move(labeling);
    impl.iteration   = s.iteration;
    impl.n_accepted  = s.n_accepted;
    impl.initialized = s.initialized;
    impl.step_start.reset();
    impl.reset_sampling_weights();
}

}  // namespace icm
