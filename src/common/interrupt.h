#pragma once
// Ctrl-C and SIGTERM (a killed Slurm job gets SIGTERM first): the first signal only sets a flag,
// which long loops poll through throw_if_interrupted(); the exception unwinds the run, so
// temporary files and directories are removed by their owners, and the CLI exits 128 + signal
// (130 for Ctrl-C) with "quantbench: interrupted". A second signal exits at once, after removing
// the temporary files that are being written (TempFileGuard), and so does the first 0.5 s after it
// arrived if the run has not unwound by then (it was in a phase that polls nothing).
#include <exception>

namespace qb {

// Not a qb::Error, so that no handler meant for bad input turns an interrupt into an error.
struct Interrupted : std::exception {
  explicit Interrupted(int signal) : signal(signal) {}
  const char* what() const noexcept override { return "interrupted"; }
  int signal;  // SIGINT or SIGTERM
};

// Installs the SIGINT/SIGTERM handlers, and ignores SIGXFSZ so that a file-size limit (ulimit -f)
// makes write(2) fail with EFBIG, an error naming the file, instead of killing the process.
void install_interrupt_handlers();

// The signal received (SIGINT, SIGTERM) or 0.
int interrupt_signal();
// Throws Interrupted once a signal has arrived; cheap enough to call per layer.
void throw_if_interrupted();

// Registers a temporary file for the second signal's cleanup (unlink) while it is being written.
// At most a few at a time; beyond that the file is simply not registered (the next run removes it).
class TempFileGuard {
 public:
  explicit TempFileGuard(const char* path);
  ~TempFileGuard();
  TempFileGuard(const TempFileGuard&) = delete;
  TempFileGuard& operator=(const TempFileGuard&) = delete;

 private:
  int slot_;
};

}  // namespace qb
