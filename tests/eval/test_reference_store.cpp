// The sequential reference store (eval/reference_store.h): decoded rows give KL within the stated
// bound of the exact float64 KL (eval/metrics.h's kl_divergence on the same rows), top-1 exactly,
// and the file is gone afterwards.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "eval/metrics.h"
#include "eval/reference_store.h"
#include "random_model.h"
#include "test_support.h"

using namespace qb;

namespace {

// Logits rows shaped like a language model's: a peaked few, a long low tail, some far below the
// stored range (more than 32 nats under the maximum).
std::vector<float> lm_rows(int rows, int vocab, std::mt19937& rng, float temperature) {
  std::normal_distribution<float> z(0.0f, 1.0f);
  std::vector<float> x(size_t(rows) * vocab);
  for (int r = 0; r < rows; ++r)
    for (int v = 0; v < vocab; ++v)
      x[size_t(r) * vocab + v] = temperature * z(rng) + (v % 97 == 0 ? 8.0f : 0.0f) - (v % 13 == 0 ? 40.0f : 0.0f);
  return x;
}

}  // namespace

TEST_CASE("stored rows give KL within the bound, top-1 exactly") {
  const int vocab = GENERATE(512, 32000);
  const int rows = 24;
  std::mt19937 rng(7);
  const std::vector<float> p = lm_rows(rows, vocab, rng, 3.0f);
  std::vector<float> q = p;  // a perturbed model: small and large differences
  std::normal_distribution<float> noise(0.0f, 1.0f);
  for (size_t i = 0; i < q.size(); ++i) q[i] += (i / vocab % 2 ? 0.05f : 1.0f) * noise(rng);
  q[5 * vocab + 3] = p[5 * vocab + argmax(&p[5 * vocab], vocab)];  // a tie in q: the first maximum counts

  std::string path;
  {
    ReferenceStore store(test::temp_dir("reference-store"), vocab);
    path = store.path();
    CHECK(std::filesystem::exists(path));
    store.append(p.data(), rows / 2);
    store.append(p.data() + size_t(rows / 2) * vocab, rows - rows / 2);
    CHECK(store.records() == size_t(rows));
    store.rewind();
    CHECK(std::filesystem::file_size(path) == size_t(rows) * (4 + 2 * size_t(vocab)));
    StoredScores s;
    store.score(q.data(), rows, "test", s);
    double worst_error = 0.0;
    for (int r = 0; r < rows; ++r) {
      const float* pr = &p[size_t(r) * vocab];
      const float* qr = &q[size_t(r) * vocab];
      const double exact = kl_divergence(pr, qr, vocab);
      INFO("row " << r << " exact " << exact << " stored " << s.kl[r] << " bound " << s.kl_error_bound[r]);
      CHECK(std::fabs(s.kl[r] - exact) <= s.kl_error_bound[r]);
      CHECK(s.kl_error_bound[r] < 0.03 * exact + 1e-5);  // tight enough to matter
      CHECK(s.top1_same[r] == (argmax(pr, vocab) == argmax(qr, vocab)));
      worst_error = std::max(worst_error, std::fabs(s.kl[r] - exact));
    }
    WARN("vocab " << vocab << ": worst |KL stored - exact| " << worst_error);
    // The same rows against themselves: KL 0 within the bound, agreement everywhere.
    store.rewind();
    store.score(p.data(), rows, "test", s);
    for (int r = 0; r < rows; ++r) {
      CHECK(s.kl[r] <= s.kl_error_bound[r]);
      CHECK(s.top1_same[r] == 1);
    }
    CHECK_THROWS_WITH(store.score(p.data(), 1, "window 9 (rtn)", s), Catch::Contains("window 9 (rtn)") &&
                                                                          Catch::Contains("ends early"));
  }
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("the argmax is stored exactly, also where two logits are within a step") {
  const int vocab = 8;
  std::vector<float> row = {0.0f, 5.0f, 5.0f + 1e-6f, -3.0f, 5.0f, 1.0f, 2.0f, -50.0f};
  std::vector<uint8_t> record(4 + 2 * vocab);
  encode_reference_row(row.data(), vocab, record.data());
  int32_t stored_argmax;
  std::memcpy(&stored_argmax, record.data(), 4);
  CHECK(stored_argmax == 2);
  const uint16_t* code = reinterpret_cast<const uint16_t*>(record.data() + 4);
  CHECK(code[2] == 65535);
  CHECK(code[1] == 65535);  // within half a step: same code, which is why the argmax is stored
  CHECK(code[7] == 0);      // 55 nats below the maximum: left out
  CHECK(code[0] == 65535 - std::lround(5.0 / (32.0 / 65535)));
}
