#pragma once
// Progress for long work (evaluation, AWQ search, sweeps): a live line on a terminal, nothing
// when stderr is not a TTY (CI logs stay quiet).
#include <chrono>
#include <string>

namespace qb {

class Progress {
 public:
  Progress(std::string label, long total);
  ~Progress();
  void advance(long n = 1, const std::string& detail = "");
  void finish();
  static bool enabled();  // stderr is a terminal

 private:
  std::string label_;
  long total_, done_ = 0;
  bool active_, finished_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace qb
