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
  // A line of its own (e.g. one block's result) printed above the live line, on a terminal or not.
  void note(const std::string& line);
  void finish();
  static bool enabled();  // stderr is a terminal

 private:
  std::string label_;
  long total_, done_ = 0;
  std::string detail_;  // of the live line, redrawn after a note
  bool active_, finished_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace qb
