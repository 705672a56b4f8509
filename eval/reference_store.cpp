#include "eval/reference_store.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "eval/metrics.h"

namespace qb {
namespace {

constexpr int kTopCode = 65535;
constexpr double kStep = kStoredRangeNats / kTopCode;

int32_t read_argmax(const uint8_t* record) {
  int32_t a;
  std::memcpy(&a, record, 4);
  return a;
}

// KL(decoded reference || q), top-1 and the error bound of reference_store.h for one target.
void score_row(const uint8_t* record, const std::vector<double>& prob_of_code, const float* q_logits, int vocab,
               double& kl, uint8_t& top1_same, double& bound) {
  const uint16_t* code = reinterpret_cast<const uint16_t*>(record + 4);
  const double q_max = *std::max_element(q_logits, q_logits + vocab);
  double q_sum = 0.0, p_sum = 0.0;
  int left_out = 0;
  for (int v = 0; v < vocab; ++v) {
    q_sum += std::exp(double(q_logits[v]) - q_max);
    p_sum += prob_of_code[code[v]];  // 0 for code 0
    left_out += code[v] == 0;
  }
  const double log_q_norm = q_max + std::log(q_sum), log_p_norm = std::log(p_sum);
  double sum = 0.0, abs_sum = 0.0, left_out_log_q = 0.0;
  for (int v = 0; v < vocab; ++v) {
    const double log_q = double(q_logits[v]) - log_q_norm;
    if (code[v] == 0) {
      left_out_log_q += std::fabs(log_q);
      continue;
    }
    const double log_p = (code[v] - kTopCode) * kStep - log_p_norm;
    const double p = std::exp(log_p);
    sum += p * (log_p - log_q);
    abs_sum += p * std::fabs(log_p - log_q);
  }
  kl = std::max(sum, 0.0);  // a KL of two distributions: rounding can give -1e-17
  top1_same = read_argmax(record) == argmax(q_logits, vocab);
  const double floor_prob = std::exp(-kStoredRangeNats + kStep / 2);  // of any token left out
  const double mass = left_out * floor_prob;
  const double eta = kStep + 2 * mass, e_eta = std::expm1(eta), e_renorm = std::expm1(eta + 2 * mass);
  bound = e_eta * std::exp(eta) * (abs_sum + eta) + e_renorm * e_renorm + 2 * mass +
          floor_prob * (left_out * (kStoredRangeNats - kStep / 2) + left_out_log_q);
}

}  // namespace

void encode_reference_row(const float* logits, int vocab, uint8_t* record) {
  const int32_t top = argmax(logits, vocab);
  std::memcpy(record, &top, 4);
  const double max_logit = logits[top];
  uint16_t* code = reinterpret_cast<uint16_t*>(record + 4);
  for (int v = 0; v < vocab; ++v) {
    // Steps above the range's floor; log p_v - log p_max = logit_v - max_logit.
    const double t = (double(logits[v]) - max_logit) / kStep + kTopCode;
    code[v] = t <= 0.5 ? 0 : static_cast<uint16_t>(std::min<long>(kTopCode, std::lround(t)));
  }
}

std::string reference_store_dir(const std::string& dir) {
  if (!dir.empty()) return dir;
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? tmp : "/tmp";
}

ReferenceStore::ReferenceStore(const std::string& dir, int vocab) : vocab_(vocab) {
  const std::string folder = reference_store_dir(dir);
  std::string name = folder + "/quantbench-reference-XXXXXX";
  const int fd = mkstemp(name.data());
  if (fd < 0) fail(folder, std::string("cannot create the sequential reference store: ") + std::strerror(errno));
  file_ = fdopen(fd, "w+b");
  if (!file_) {
    ::close(fd);
    std::remove(name.c_str());
    fail(name, "cannot open the sequential reference store");
  }
  path_ = name;
  prob_of_code_.resize(kTopCode + 1);
  prob_of_code_[0] = 0.0;
  for (int c = 1; c <= kTopCode; ++c) prob_of_code_[c] = std::exp((c - kTopCode) * kStep);
}

ReferenceStore::~ReferenceStore() {
  std::fclose(file_);
  std::remove(path_.c_str());
}

void ReferenceStore::append(const float* logits, int count) {
  if (reading_) fail(path_, "append after reading started");
  const size_t record = record_bytes(vocab_);
  buffer_.resize(record * count);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < count; ++i) encode_reference_row(logits + size_t(i) * vocab_, vocab_, &buffer_[record * i]);
  if (count > 0 && std::fwrite(buffer_.data(), record, count, file_) != size_t(count))
    fail(path_, std::string("writing the sequential reference store: ") + std::strerror(errno) +
                    " (it needs " + std::to_string(record) + " bytes per scored token)");
  records_ += count;
}

void ReferenceStore::rewind() {
  if (std::fflush(file_) != 0 || std::fseek(file_, 0, SEEK_SET) != 0)
    fail(path_, std::string("rewinding the sequential reference store: ") + std::strerror(errno));
  reading_ = true;
}

void ReferenceStore::score(const float* logits, int count, const std::string& where, StoredScores& out) {
  if (!reading_) fail(path_, "score before rewind");
  const size_t record = record_bytes(vocab_);
  buffer_.resize(record * count);
  if (count > 0 && std::fread(buffer_.data(), record, count, file_) != size_t(count))
    fail(where, "the sequential reference store " + path_ + " ends early (another window list than the reference's?)");
  out.kl.assign(count, 0.0);
  out.top1_same.assign(count, 0);
  out.kl_error_bound.assign(count, 0.0);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < count; ++i)
    score_row(&buffer_[record * i], prob_of_code_, logits + size_t(i) * vocab_, vocab_, out.kl[i], out.top1_same[i],
              out.kl_error_bound[i]);
}

std::string ReferenceStore::description() {
  return "per scored token: the reference's argmax (int32, exact) and its log-probabilities as uint16 steps of " +
         std::to_string(kStep) + " nats over [max - 32, max] (llama.cpp's KL base file, wider range), on disk";
}

}  // namespace qb
