#include "common/interrupt.h"

#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace qb {
namespace {

std::atomic<int> g_signal{0};

// Temporary files being written, for the second signal's handler: fixed storage and lock-free
// flags, since a handler may only make async-signal-safe calls (unlink, write, _exit).
constexpr int kTempSlots = 8;
constexpr size_t kTempPathMax = 4096;
char g_temp_paths[kTempSlots][kTempPathMax];
std::atomic<bool> g_temp_claimed[kTempSlots];  // owned by a TempFileGuard
std::atomic<bool> g_temp_used[kTempSlots];     // its path is complete: the handler may unlink it

// The first signal's unwinding takes milliseconds from a loop that polls the flag; a phase that
// polls nothing (a tokenizer library encoding a whole dataset, a model's conversion) would delay it,
// so the hard exit follows after this long regardless.
constexpr long kUnwindDeadlineUs = 500000;

// Removes the temporary files being written and exits; only async-signal-safe calls.
[[noreturn]] void exit_now(int signal) {
  for (int i = 0; i < kTempSlots; ++i)
    if (g_temp_used[i].load()) ::unlink(g_temp_paths[i]);
  static const char message[] = "quantbench: interrupted\n";
  ssize_t ignored = ::write(STDERR_FILENO, message, sizeof message - 1);
  (void)ignored;
  _exit(128 + signal);
}

void on_signal(int signal) {
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, signal)) exit_now(expected);  // the second
  const itimerval deadline{{0, 0}, {0, kUnwindDeadlineUs}};
  setitimer(ITIMER_REAL, &deadline, nullptr);  // a system call, safe here
}

void on_deadline(int) { exit_now(g_signal.load()); }

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // reads and writes carry on; the loops poll the flag
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  action.sa_handler = on_deadline;
  sigaction(SIGALRM, &action, nullptr);
  signal(SIGXFSZ, SIG_IGN);
}

int interrupt_signal() { return g_signal.load(std::memory_order_relaxed); }

void throw_if_interrupted() {
  if (const int signal = interrupt_signal()) throw Interrupted(signal);
}

TempFileGuard::TempFileGuard(const char* path) : slot_(-1) {
  if (std::strlen(path) >= kTempPathMax) return;
  for (int i = 0; i < kTempSlots; ++i) {
    bool expected = false;
    if (!g_temp_claimed[i].compare_exchange_strong(expected, true)) continue;
    std::strcpy(g_temp_paths[i], path);
    g_temp_used[i].store(true);
    slot_ = i;
    return;
  }
}

TempFileGuard::~TempFileGuard() {
  if (slot_ < 0) return;
  g_temp_used[slot_].store(false);
  g_temp_claimed[slot_].store(false);
}

}  // namespace qb
