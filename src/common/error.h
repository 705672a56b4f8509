#pragma once
// One error type for bad input and broken invariants: its message is one line that names the
// file (or tensor, or window) and what is wrong. The CLI prints it and exits non-zero.
#include <stdexcept>
#include <string>

namespace qb {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "<where>: <what>", e.g. "model.safetensors: tensor 'x': offsets [0, 9) out of range".
[[noreturn]] void fail(const std::string& where, const std::string& what);

}  // namespace qb
