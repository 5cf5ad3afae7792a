// icm: Internal Coherence Maximization (Wen et al., 2025) -- the C++ core.
//
// This is the one public header. It holds plain data types, parameter structs with the
// paper's defaults, and the Search object. Everything else lives in core/src and may change.
//
// Contract:
//  - Invalid input (out-of-range index, bad parameter) throws std::invalid_argument whose
//    message names the field and the value. Nothing here prints; progress is returned as
//    TraceRow values from Search::step.
//  - No network, no Python: language-model scores come in through the Scorer interface.
//  - Gold labels never enter this library. The search can only read claims, relations,
//    and the scores the Scorer returns.
//  - Deterministic: the same ClaimSet, parameters, seed and scorer give the same labels.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace icm {

// ---------------------------------------------------------------------------------------
// Claims and consistency relations
// ---------------------------------------------------------------------------------------

enum class Label : int8_t {
    UNSET = -1,  // not (yet) labeled by the search
    FALSE = 0,
    TRUE  = 1,
};

struct Claim {
    std::string id;      // unique, stable across runs (used in outputs and checkpoints)
    std::string prompt;  // the rendered claim, e.g. "Question: ...\nClaim: ...\nI think this claim is "
    std::string group;   // consistency group (e.g. the question id); "" = a group of its own
};

enum class RelationKind : int8_t {
    SAME             = 0,  // both claims carry the same label (two solutions, same final answer)
    AT_MOST_ONE_TRUE = 1,  // not both true (different answers to one question)
    OPPOSITE         = 2,  // exactly one true (a comparison and its order-swapped twin)
};

struct Relation {
    RelationKind kind;
    int32_t      a;  // claim index
    int32_t      b;  // claim index
};

// true when labels (la, lb) satisfy the relation; a pair with an unset label always does.
bool relation_holds(RelationKind kind, Label la, Label lb);

// Every (la, lb) assignment that satisfies the relation (the options ConsistencyFix tries).
std::vector<std::pair<Label, Label>> relation_consistent_options(RelationKind kind);

// The options the original code tries: it treats every pair as either an "implication"
// (SAME: both 1 or both 0) or a "contradiction" (exactly one true), so for
// AT_MOST_ONE_TRUE it never tries (0, 0).
std::vector<std::pair<Label, Label>> relation_code_options(RelationKind kind);

// A constraint on a whole set of claims.
enum class GroupKind : int8_t {
    // Not all false. With AT_MOST_ONE_TRUE pairs between the same claims it makes "exactly
    // one true": a question whose correct answer is among its claims by construction.
    AT_LEAST_ONE_TRUE = 0,
};

struct GroupConstraint {
    GroupKind            kind = GroupKind::AT_LEAST_ONE_TRUE;
    std::vector<int32_t> members;  // claim indices
};

// true when the labels satisfy the constraint; while a member is unset it always does.
bool group_constraint_holds(GroupKind kind, std::span<const Label> member_labels);

// An immutable set of claims with their relations, validated on construction.
//
// Constraints are numbered: relation r is constraint r, group constraint g is constraint
// n_relations + g. I(D) counts violated constraints of both kinds.
class ClaimSet {
  public:
    // label_true / label_false: the words appended to demonstrations ("True" / "False").
    // demo_separator: what follows each demonstration's label ("\n\n" in the paper).
    ClaimSet(std::vector<Claim> claims, std::vector<Relation> relations, std::string label_true = "True",
             std::string label_false = "False", std::string demo_separator = "\n\n",
             std::vector<GroupConstraint> group_constraints = {});

    int32_t                      n_claims() const { return static_cast<int32_t>(claims_.size()); }
    int32_t                      n_groups() const { return static_cast<int32_t>(group_members_.size()); }
    const Claim                 &claim(int32_t i) const;
    const std::vector<Claim>    &claims() const { return claims_; }
    const std::vector<Relation> &relations() const { return relations_; }
    int32_t                      group_of(int32_t i) const { return group_of_[static_cast<size_t>(i)]; }
    const std::vector<int32_t>  &group_members(int32_t g) const {
        return group_members_[static_cast<size_t>(g)];
    }
    const std::vector<GroupConstraint> &group_constraints() const { return group_constraints_; }
    int32_t                             n_constraints() const {
        return static_cast<int32_t>(relations_.size() + group_constraints_.size());
    }
    // Relation indices touching claim i.
    const std::vector<int32_t> &relations_of(int32_t i) const {
        return relations_of_[static_cast<size_t>(i)];
    }
    // Constraint indices (relations and group constraints) touching claim i.
    const std::vector<int32_t> &constraints_of(int32_t i) const {
        return constraints_of_[static_cast<size_t>(i)];
    }
    const std::string &label_word(Label l) const;
    const std::string &demo_separator() const { return demo_separator_; }

    // The subset made of the given claims (relations between them are kept).
    ClaimSet subset(std::span<const int32_t> indices) const;

  private:
    std::vector<Claim>                claims_;
    std::vector<Relation>             relations_;
    std::string                       label_true_, label_false_, demo_separator_;
    std::vector<int32_t>              group_of_;
    std::vector<std::vector<int32_t>> group_members_;
    std::vector<std::vector<int32_t>> relations_of_;
    std::vector<GroupConstraint>      group_constraints_;
    std::vector<std::vector<int32_t>> constraints_of_;
};

// Whether constraint c (see ClaimSet) holds under the labels.
bool constraint_holds(const ClaimSet &set, int32_t c, std::span<const Label> labels);

// I(D): the number of constraints violated by the labels (unset labels violate nothing).
int64_t count_inconsistencies(const ClaimSet &set, std::span<const Label> labels);

// The violated constraints (relations first, then group constraints), in index order.
std::vector<int32_t> inconsistent_constraints(const ClaimSet &set, std::span<const Label> labels);

// The violated relations only, as indices into set.relations(), in index order.
std::vector<int32_t> inconsistent_relations(const ClaimSet &set, std::span<const Label> labels);

// Split the claims into batches of about batch_size claims, never splitting a consistency
// group (a group larger than batch_size becomes a batch of its own). Groups are shuffled
// with the seed first; claims keep their relative order inside a group.
std::vector<std::vector<int32_t>> make_batches(const ClaimSet &set, int32_t batch_size, uint64_t seed);

// ---------------------------------------------------------------------------------------
// Scoring: the only door through which a language model enters the search
// ---------------------------------------------------------------------------------------

// "Predict the label of claim `target`, given these labeled demonstrations."
struct ScoreRequest {
    int32_t              target = -1;
    std::vector<int32_t> demos;        // claim indices, in prompt order
    std::vector<Label>   demo_labels;  // same length as demos, TRUE or FALSE
    std::string          prompt;       // the rendered prompt (empty if the scorer reads no text)
};

// Log of the probability mass the model puts on each label word as the next token.
// The original rule: sum the probabilities of the top-k tokens that contain the word
// (case-insensitive), add a 1e-5 floor, take the log. When neither word appears both are
// log(1e-5), so the gap is 0.
struct LabelScore {
    double logp_true  = 0.0;
    double logp_false = 0.0;
    double gap() const { return logp_true - logp_false; }
};

// Render the prompt of a request: each demonstration's prompt, its label word and the
// separator, then the target's prompt.
std::string render_prompt(const ClaimSet &set, const ScoreRequest &request);

class Scorer {
  public:
    virtual ~Scorer() = default;
    // One LabelScore per request, in order. May throw; the search leaves its state as it
    // was before the step (nothing already computed is lost).
    virtual std::vector<LabelScore> score(const std::vector<ScoreRequest> &requests) = 0;
    // false: the scorer uses only the structured fields, so prompts are not rendered.
    virtual bool reads_prompt_text() const { return true; }
};

// A stand-in for a language model, for algorithm tests and overhead benchmarks only.
// Its gap for claim i given demonstrations D is
//     prior * s_i  +  demo_weight * s_i * agreement(D)  +  noise * n_i
// where s_i = +1/-1 from the hidden truth, agreement(D) in [-1, 1] is the mean over
// demonstrations of (+1 if the demo's label equals its hidden truth else -1), and n_i is a
// fixed standard-normal draw per claim (seeded). With ignore_truth it returns
// demo_weight * (fraction of TRUE demos - 1/2) + noise * n_i: it never looks at the claim.
// With demo_weight > prior, labelings that invert the truth are a second, stable optimum
// (the model then follows its demonstrations), as with weak language models.
struct SyntheticScorerParams {
    double   prior        = 1.5;
    double   demo_weight  = 1.0;
    double   noise        = 1.0;
    bool     ignore_truth = false;
    uint64_t seed         = 0;
};

class SyntheticScorer final : public Scorer {
  public:
    SyntheticScorer(std::vector<Label> hidden_truth, SyntheticScorerParams params);
    std::vector<LabelScore> score(const std::vector<ScoreRequest> &requests) override;
    bool                    reads_prompt_text() const override { return false; }
    int64_t                 n_requests() const { return n_requests_; }

  private:
    std::vector<Label>    truth_;
    std::vector<double>   noise_;
    SyntheticScorerParams params_;
    int64_t               n_requests_ = 0;
};

// ---------------------------------------------------------------------------------------
// Search parameters (defaults: the original code's command-line defaults)
// ---------------------------------------------------------------------------------------

enum class Schedule : int8_t {
    EXP = 0,  // T = max(final_T, initial_T * decay^n)
    LOG = 1,  // T = max(final_T, initial_T / (1 + log_beta * log(1 + n)))
};

enum class ScheduleCounter : int8_t {
    ITERATION = 0,  // n = search iterations so far (the paper's Algorithm 1)
    ACCEPTED  = 1,  // n = accepted label changes so far (the original code)
};

enum class MpObjective : int8_t {
    // Mean over labeled claims of the label-signed gap log P(True) - log P(False): the
    // original code, and the default (it is what produced the paper's numbers, and being
    // a mean keeps alpha's weight against I(D) independent of the batch size).
    MEAN_LOGIT_GAP = 0,
    // Sum over labeled claims of log P(assigned label): the paper's Eq. (1) as written.
    SUM_LOGPROB = 1,
};

enum class MpMode : int8_t {
    // Every labeled claim is scored with all other labeled claims of its batch in
    // context (the original code). The reference.
    EXACT = 0,
    // Every claim is scored with a fixed random set of at most `context_k` labeled
    // claims, redrawn when the labeled pool has grown by `context_regrow` since the last
    // draw. A label change re-scores only the claims whose context holds it.
    SPARSE = 1,
};

enum class FixOptions : int8_t {
    CONSISTENT = 0,  // every consistent option of the pair (the paper's Algorithm 2)
    CODE       = 1,  // the original code's two options (see relation_code_options)
};

enum class FixPairSearch : int8_t {
    // Each round samples one inconsistent pair and keeps its best option if U rises
    // (the paper's Algorithm 2).
    SAMPLE = 0,
    // Each round walks the inconsistent pairs in random order and applies the first one
    // whose best option does not lower U; stops when none does (the original code).
    SCAN = 1,
};

enum class SeedPlacement : int8_t {
    RANDOM      = 0,  // num_seed claims drawn uniformly from the batch (the paper's text)
    BATCH_START = 1,  // the first num_seed claims in batch order (the original code: its
                      // batches are whole groups, so the seeds are whole groups too)
};

enum class FixBaseline : int8_t {
    CURRENT = 0,  // ConsistencyFix after a proposal compares against U of the proposal
    DUMMY   = 1,  // the original code compares against a dummy -inf metric, so the first
                  // option tried is always applied
};

// The label changes ConsistencyFix tries for a violated constraint c: for a relation, each
// option of its pair (every consistent one, or the original code's two); for an
// AT_LEAST_ONE_TRUE group, making one member true (one option per member; the original
// code has no group constraints).
std::vector<std::vector<std::pair<int32_t, Label>>> constraint_fix_options(const ClaimSet &set, int32_t c,
                                                                           FixOptions options);

inline constexpr int32_t MAX_PREFETCH_DEPTH = 64;

struct SearchParams {
    double          alpha             = 30.0;  // weight of MP against I(D)
    uint64_t        seed              = 27565976;
    int32_t         num_seed          = 8;     // claims given random balanced initial labels
    int32_t         max_iterations    = 3000;  // K
    int32_t         consistency_fix_k = 10;    // rounds of ConsistencyFix
    double          initial_t         = 10.0;
    double          final_t           = 0.01;
    double          decay             = 0.99;  // exp schedule rate
    double          log_beta          = 0.99;  // log schedule beta (the paper's cooling rate)
    Schedule        schedule          = Schedule::LOG;
    ScheduleCounter schedule_counter  = ScheduleCounter::ITERATION;
    double          group_weight      = 100.0;  // sampling weight of unlabeled claims whose
                                                // group already holds a labeled claim
    MpObjective     mp_objective      = MpObjective::MEAN_LOGIT_GAP;
    MpMode          mp_mode           = MpMode::EXACT;
    int32_t         context_k         = 4;     // SPARSE: demonstrations per claim
    double          context_regrow    = 1.25;  // SPARSE: redraw when the pool grows by this factor
    FixOptions      fix_options       = FixOptions::CONSISTENT;
    FixPairSearch   fix_pair_search   = FixPairSearch::SAMPLE;
    FixBaseline     fix_baseline      = FixBaseline::CURRENT;
    SeedPlacement   seed_placement    = SeedPlacement::RANDOM;
    // Speculative prefetch: when a step must wait for the scorer, also send the requests
    // that the next prefetch_depth rounds of scorer calls would make, worked out on copies
    // of the search (its labels and random stream) that guess the missing scores. The
    // trajectory is exactly the one without prefetch; only the grouping of requests into
    // scorer calls changes. 0: no prefetch (one call per round, as before).
    int32_t prefetch_depth = 0;  // at most MAX_PREFETCH_DEPTH
    // Speculative calls of more requests than this are worked through on guesses but not
    // sent (0: no limit). Exact mode re-scores the whole batch after every label change, so
    // a speculated label change costs a batch of requests; a small limit sends only the
    // next steps' one-request calls (the sampled claim), which are cheap to guess wrong.
    int32_t prefetch_call_limit = 0;
    // With prefetch_call_limit: the scorer's concurrency (requests in flight), to fill the
    // last wave of each call. A call whose requests are not a whole number of waves leaves
    // slots idle while its last wave runs; the first requests of the speculated calls above
    // the limit (the next label change's re-scoring) go there, at most as many as leave the
    // call a multiple of prefetch_fill. Wrong guesses cost only slots that were idle. 0: off.
    int32_t prefetch_fill = 0;

    // Throws std::invalid_argument naming the first bad field.
    void validate() const;
};

// The paper's Algorithm 1 and 2 as written (the defaults above).
SearchParams search_params_paper();
// The original code's behaviour where it differs from the paper's text (docs/algorithm.md).
SearchParams search_params_code();

// Temperature at counter value n.
double annealing_temperature(const SearchParams &params, int64_t n);
// Metropolis acceptance probability min(1, exp(delta / T)).
double acceptance_probability(double delta, double temperature);

// ---------------------------------------------------------------------------------------
// The search (Algorithm 1)
// ---------------------------------------------------------------------------------------

enum class StepOutcome : int8_t {
    INIT      = 0,  // the initial random labels and their ConsistencyFix
    UNCHANGED = 1,  // the model's label for the sampled claim equals its current label
    ACCEPTED  = 2,
    REJECTED  = 3,
};

struct TraceRow {
    int64_t     iteration       = 0;
    StepOutcome outcome         = StepOutcome::INIT;
    int32_t     claim           = -1;  // the sampled claim
    Label       proposed        = Label::UNSET;
    double      temperature     = 0.0;
    double      delta           = 0.0;  // U(proposal after fix) - U(current)
    double      utility         = 0.0;  // U after the step
    double      mp              = 0.0;
    int64_t     inconsistent    = 0;
    int32_t     n_labeled       = 0;
    int32_t     n_fixed         = 0;  // labels changed by ConsistencyFix in this step
    int64_t     n_requests      = 0;  // scorer requests so far (cache misses)
    int64_t     n_cache_hits    = 0;  // requests served by the score cache so far
    int64_t     n_prompt_claims = 0;  // claims in the prompts sent so far (demos + target)
    int64_t     n_accepted      = 0;
    // How the requests travelled (they differ with prefetch_depth; everything above does not):
    int64_t n_rounds          = 0;  // scorer calls so far (each waits for the one before)
    int64_t n_prefetched      = 0;  // speculative requests sent so far
    int64_t n_prefetched_used = 0;  // of which the search has since needed
};

// Everything needed to continue a search exactly where it stopped.
struct SearchState {
    std::vector<Label> labels;
    int64_t            iteration  = 0;
    int64_t            n_accepted = 0;
    std::string        rng_state;  // textual mt19937_64 state
    bool               initialized = false;
    // SPARSE contexts: the draw number and the claims labeled at that draw.
    int64_t              context_epoch = 0;
    std::vector<int32_t> context_pool;
};

class Search {
  public:
    // The scorer must outlive the Search.
    Search(ClaimSet claims, SearchParams params, Scorer &scorer);
    ~Search();
    Search(const Search &)            = delete;
    Search &operator=(const Search &) = delete;

    // Start from these labels (one per claim; UNSET leaves a claim unlabeled) instead of
    // num_seed random ones, e.g. the model's zero-shot labels; the initialization still
    // runs ConsistencyFix on them. Only before the first step (std::logic_error after).
    void set_initial_labels(std::vector<Label> labels);
    // One iteration (the first call performs the initialization). Returns its trace row.
    TraceRow step();
    // Steps until max_iterations (or n more steps); returns the trace rows.
    std::vector<TraceRow> run(std::optional<int64_t> n_steps = std::nullopt);
    bool                  done() const;
    int64_t               iteration() const;

    const ClaimSet           &claims() const;
    const SearchParams       &params() const;
    const std::vector<Label> &labels() const;
    // Current per-claim gap log P(True) - log P(False) under the MP contexts (0 if unlabeled).
    std::vector<double> scores() const;
    double              utility() const;
    double              mutual_predictability() const;
    int64_t             inconsistencies() const;

    SearchState state() const;
    // Continue from a saved state (same claims and parameters). Scores are re-requested
    // through the scorer, so a response cache makes this free.
    void restore(const SearchState &state);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace icm
