#include "common/progress.h"

#include <unistd.h>

#include <cstdio>

#include "common/interrupt.h"

namespace qb {

bool Progress::enabled() { return isatty(fileno(stderr)) != 0; }

Progress::Progress(std::string label, long total)
    : label_(std::move(label)), total_(total), active_(enabled()), start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() { finish(); }

void Progress::advance(long n, const std::string& detail) {
  throw_if_interrupted();
  done_ += n;
  detail_ = detail;
  if (!active_) return;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = done_ > 0 ? s * (total_ - done_) / done_ : 0.0;
  std::fprintf(stderr, "\r%s %ld/%ld (%.0f%%) %.1fs, eta %.1fs %s\x1b[K", label_.c_str(), done_, total_,
               total_ ? 100.0 * done_ / total_ : 100.0, s, eta, detail.c_str());
  std::fflush(stderr);
}

void Progress::note(const std::string& line) {
  if (!active_ || finished_) {
    std::fprintf(stderr, "%s\n", line.c_str());
    return;
  }
  std::fprintf(stderr, "\r\x1b[K%s\n", line.c_str());
  if (done_ > 0) advance(0, detail_);
}

void Progress::finish() {
  if (active_ && !finished_) std::fprintf(stderr, "\n");
  finished_ = true;
}

}  // namespace qb
