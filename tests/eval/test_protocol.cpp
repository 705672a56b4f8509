// Windowing of the perplexity protocols: which tokens each window runs and scores.
#include <catch2/catch.hpp>

#include <numeric>

#include "common/error.h"
#include "eval/protocol.h"

using namespace qb;

static std::vector<int> iota_tokens(int n) {
  std::vector<int> t(n);
  std::iota(t.begin(), t.end(), 10);
  return t;
}

TEST_CASE("paper: one BOS, non-overlapping windows, tail dropped, ctx-1 scored each") {
  ProtocolOptions p;
  p.ctx = 8;
  const auto w = plan_windows(iota_tokens(30), 1, p, "d.txt");  // 31 stream tokens -> 3 windows
  REQUIRE(w.size() == 3);
  CHECK(w[0].tokens == std::vector<int>{1, 10, 11, 12, 13, 14, 15, 16});
  CHECK(w[1].tokens.front() == 17);
  CHECK(w[2].tokens.back() == 10 + 22);
  for (const auto& x : w) CHECK(x.first_scored == 1);
  p.max_windows = 2;
  CHECK(plan_windows(iota_tokens(30), 1, p, "d.txt").size() == 2);
}

TEST_CASE("a tokenizer without BOS (bos_id -1) gets no BOS in the stream; BOS per window is refused") {
  ProtocolOptions p;
  p.ctx = 4;
  const auto w = plan_windows(iota_tokens(9), -1, p, "d.txt");
  REQUIRE(w.size() == 2);
  CHECK(w[0].tokens == std::vector<int>{10, 11, 12, 13});
  CHECK(w[1].tokens == std::vector<int>{14, 15, 16, 17});
  p.bos = BosPlacement::Window;
  CHECK_THROWS_WITH(plan_windows(iota_tokens(9), -1, p, "d.txt"), Catch::Contains("d.txt: BOS placement 'window' needs"));
}

TEST_CASE("paper with BOS per window scores every text token of the window") {
  ProtocolOptions p;
  p.ctx = 5;
  p.bos = BosPlacement::Window;
  const auto w = plan_windows(iota_tokens(9), 1, p, "d.txt");
  REQUIRE(w.size() == 2);
  CHECK(w[0].tokens == std::vector<int>{1, 10, 11, 12, 13});
  CHECK(w[1].tokens == std::vector<int>{1, 14, 15, 16, 17});
  CHECK(w[1].first_scored == 1);
}

TEST_CASE("sliding: later windows score only the tokens past the overlap") {
  ProtocolOptions p;
  p.kind = ProtocolKind::Sliding;
  p.ctx = 8;
  p.stride = 3;
  const auto w = plan_windows(iota_tokens(15), 1, p, "d.txt");  // stream of 16: starts 0, 3, 6
  REQUIRE(w.size() == 3);
  CHECK(w[0].first_scored == 1);
  CHECK(w[1].first_scored == 5);
  CHECK(w[1].tokens.front() == 12);  // stream[3]
  // Every stream position 1..13 is scored exactly once.
  std::vector<int> scored;
  for (size_t i = 0; i < w.size(); ++i)
    for (size_t j = w[i].first_scored; j < w[i].tokens.size(); ++j) scored.push_back(w[i].tokens[j]);
  std::vector<int> expected(13);
  std::iota(expected.begin(), expected.end(), 10);
  CHECK(scored == expected);
}

TEST_CASE("a split shorter than one window and bad options are refused") {
  ProtocolOptions p;
  p.ctx = 64;
  CHECK_THROWS_WITH(plan_windows(iota_tokens(10), 1, p, "tiny.txt"),
                    Catch::Contains("tiny.txt") && Catch::Contains("shorter than one window of 64"));
  p.kind = ProtocolKind::Sliding;
  p.stride = 64;
  CHECK_THROWS_WITH(validate_protocol(p), Catch::Contains("stride must be between 1 and ctx - 1 (63), got 64"));
  p.stride = 63;
  CHECK_NOTHROW(validate_protocol(p));
  p.ctx = 1;
  CHECK_THROWS_WITH(validate_protocol(p), Catch::Contains("ctx must be at least 2"));
  p.ctx = 64;
  p.max_windows = -1;
  CHECK_THROWS_WITH(validate_protocol(p), Catch::Contains("max_windows must be >= 0"));
}

TEST_CASE("llama.cpp: disjoint chunks of the BOS-prefixed stream, first token overwritten, second half scored") {
  // As llama-perplexity (b4747): tokens = [BOS] + text; chunk i = tokens[i*ctx, (i+1)*ctx) with
  // tokens[i*ctx] replaced by BOS; logits at ctx/2 .. ctx-2 predict targets ctx/2+1 .. ctx-1.
  ProtocolOptions p;
  p.kind = ProtocolKind::LlamaCpp;
  p.ctx = 8;
  const auto w = plan_windows(iota_tokens(30), 1, p, "d.txt");  // stream [1, 10..39] of 31 -> 3 chunks, 7 dropped
  REQUIRE(w.size() == 3);
  CHECK(w[0].tokens == std::vector<int>{1, 10, 11, 12, 13, 14, 15, 16});
  CHECK(w[1].tokens == std::vector<int>{1, 18, 19, 20, 21, 22, 23, 24});  // 17 overwritten, not shifted
  CHECK(w[2].tokens == std::vector<int>{1, 26, 27, 28, 29, 30, 31, 32});  // 33..39 (the tail) dropped
  for (const auto& x : w) CHECK(x.first_scored == 5);                     // targets 5, 6, 7: ctx/2 - 1 per chunk
  p.max_windows = 2;  // --chunks 2
  CHECK(plan_windows(iota_tokens(30), 1, p, "d.txt").size() == 2);
  p.max_windows = 0;
  p.ctx = 9;  // odd: first = 4, targets 5..8
  CHECK(plan_windows(iota_tokens(30), 1, p, "d.txt").front().first_scored == 5);

  const nlohmann::json j = protocol_json(p, 1);
  CHECK(j["name"] == "llama.cpp");
  CHECK(j["stride"] == 9);
  CHECK(j["scored"].get<std::string>().find("targets 5..8 of each chunk (4 per chunk)") != std::string::npos);
  CHECK(j["bos"].get<std::string>().find("overwritten with BOS") != std::string::npos);
}

TEST_CASE("llama.cpp: no BOS to overwrite without one; short splits and foreign options refused") {
  ProtocolOptions p;
  p.kind = ProtocolKind::LlamaCpp;
  p.ctx = 4;
  const auto w = plan_windows(iota_tokens(9), -1, p, "d.txt");
  REQUIRE(w.size() == 2);
  CHECK(w[1].tokens == std::vector<int>{14, 15, 16, 17});
  CHECK(w[1].first_scored == 3);
  // llama-perplexity needs 2 * n_ctx tokens (BOS included).
  CHECK_THROWS_WITH(plan_windows(iota_tokens(6), 1, p, "short.txt"),
                    Catch::Contains("short.txt: 7 tokens (BOS included); the llama.cpp protocol needs at least 2 * ctx = 8"));
  CHECK(plan_windows(iota_tokens(7), 1, p, "d.txt").size() == 2);
  p.stride = 2;
  CHECK_THROWS_WITH(validate_protocol(p), Catch::Contains("llama.cpp: chunks are disjoint"));
  p.stride = 0;
  p.bos = BosPlacement::Window;
  CHECK_THROWS_WITH(validate_protocol(p), Catch::Contains("llama.cpp: BOS is its own"));
  p.bos = BosPlacement::Split;
  p.ctx = 3;
  CHECK_THROWS_WITH(validate_protocol(p), Catch::Contains("llama.cpp: ctx must be at least 4"));
}
