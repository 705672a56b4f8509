#pragma once
// RTN with a fraction of each linear's input channels kept in FP16: the AWQ paper's Table 1
// experiment (llm-awq), which shows that the channels worth keeping are those with large
// activations, not large weights. The channels are chosen per block linear by
//   act:    mean |x| over the calibration inputs the linear sees (the FP16 model's, as AWQ's)
//   weight: mean |w| over the column of W [out, in]
//   random: a fixed-seed draw (kKeepSeed, a 64-bit Mersenne twister, one stream for the model)
// W is quantized whole with RTN; the kept columns' FP16 values replace it (model.h KeptColumns).
#include <cstdint>
#include <random>
#include <vector>

#include "model/model.h"

namespace qb {

enum class KeepBy { Act, Weight, Random };
const char* keep_by_name(KeepBy by);  // "act" | "weight" | "random"

constexpr uint64_t kKeepSeed = 0;  // the random selection's seed, recorded in the run document

// Channels kept of k: ceil(fraction * k), at least 1 and at most k.
int kept_channel_count(int k, double fraction);

// mean |x[r][j]| over the rows of x [rows, k], per column j.
std::vector<double> mean_abs_columns(const float* x, int64_t rows, int k);

// The `count` columns of largest importance (ties: the lower index), ascending.
std::vector<int32_t> top_channels(const std::vector<double>& importance, int count);

// `count` distinct columns of k drawn from rng (a partial Fisher-Yates shuffle), ascending.
std::vector<int32_t> random_channels(int k, int count, std::mt19937_64& rng);

// The FP16 values of columns `cols` of w [n, k].
KeptColumns keep_columns(const float* w, int n, int k, std::vector<int32_t> cols);

}  // namespace qb
