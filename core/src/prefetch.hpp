// Speculative prefetch: what a speculative copy of the search scores with. The copy runs
// Algorithm 1 on from where the real search waits, reading the real score cache; where it
// lacks a score it records the request (one the real search will probably send) and goes
// on with a guess. Nothing it guesses ever reaches the real search.
#pragma once

#include <cstdint>
#include <vector>

#include "icm/icm.hpp"

namespace icm {

// Thrown by a GuessScorer asked for one more round than it may look ahead: the copy
// has seen far enough and is abandoned.
struct PrefetchHorizon {};

class GuessScorer final : public Scorer {
  public:
    // last_gaps: per claim, the gap of the scorer's last real answer for it (NaN: none);
    // a claim never scored is guessed `unknown` with the mean magnitude of the known gaps.
    // max_rounds: calls answered before PrefetchHorizon. call_limit: calls of more requests
    // than this are answered but not recorded (0: every call is recorded), or with
    // keep_fill recorded apart, as fill (take_fill).
    GuessScorer(const std::vector<double> &last_gaps, Label unknown, int32_t max_rounds,
                int32_t call_limit = 0, bool keep_fill = false);

    std::vector<LabelScore> score(const std::vector<ScoreRequest> &requests) override;
    bool                    reads_prompt_text() const override { return false; }

    // The requests recorded so far, in the order asked.
    std::vector<ScoreRequest> take_requests() { return std::move(requests_); }
    // The requests of the calls above call_limit, in the order asked.
    std::vector<ScoreRequest> take_fill() { return std::move(fill_); }

  private:
    const std::vector<double> *last_gaps_;
    Label                      unknown_;
    double                     magnitude_ = 1.0;
    int32_t                    rounds_left_;
    int32_t                    call_limit_;
    bool                       keep_fill_;
    std::vector<ScoreRequest>  requests_;
    std::vector<ScoreRequest>  fill_;
};

// What a search's copies would send next: requests worth a call of their own (sent with
// the call waiting now), and requests of larger speculated calls, sent only into slots the
// call would leave idle.
struct PrefetchRequests {
    std::vector<ScoreRequest> sent;
    std::vector<ScoreRequest> fill;
};

}  // namespace icm
