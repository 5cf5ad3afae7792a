// ConsistencyFix (the paper's Algorithm 2): resolve inconsistent pairs by trying their
// consistent label options and keeping one when it raises U.
#pragma once

#include <cstdint>

#include "icm/icm.hpp"
#include "labeling.hpp"
#include "random_stream.hpp"

namespace icm {

// Runs up to params.consistency_fix_k rounds on `labeling` (evaluated on entry and on
// return). `baseline` is the U a change must beat; pass labeling.utility() for the paper,
// -infinity for the original code's dummy metric. Returns the number of labels changed.
int32_t consistency_fix(Labeling &labeling, const SearchParams &params, RandomStream &rng,
                        CachedScorer &scorer, double baseline);

}  // namespace icm
