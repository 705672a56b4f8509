#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "test_support.h"

// Files that always run leave this undefined.
__attribute__((weak)) std::string qb_test_skip_reason() { return ""; }

int main(int argc, char** argv) {
  const std::string why = qb_test_skip_reason();
  if (!why.empty()) {
    std::printf("SKIPPED: %s\n", why.c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
