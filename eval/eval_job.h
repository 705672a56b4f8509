#pragma once
// The eval job: one model, one tokenized split, several weight formats (FP16 reference, RTN,
// AWQ, quantized checkpoints), all run over the same windows in lockstep so that KL divergence
// and top-1 agreement compare the same positions. Produces the run document (kind "eval").
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/protocol.h"

namespace qb {

// One entry of --methods: "fp16", "rtn", "awq", optionally with ":w<bits>[g<group>]" (e.g.
// "awq:w3g128", "rtn:w4g-1" for per-channel), or a quantized checkpoint given by --load.
struct MethodSpec {
  std::string method;  // "fp16" | "rtn" | "awq"
  int bits = 4;
  int group_size = 128;
  std::string load_dir;  // set: weights come from this AutoAWQ-format directory
  std::string label() const;
};

std::vector<MethodSpec> parse_methods(const std::string& list, int default_bits, int default_group);

struct EvalOptions {
  std::string model_path;
  std::string tokenizer_path;  // "" -> tokenizer.model beside the model
  std::string dataset_path;
  std::string dataset_format = "auto";  // see datasets/dataset.h
  ProtocolOptions protocol;
  std::vector<MethodSpec> methods;  // the FP16 reference is always run first
  bool symmetric = false;
  bool clip = true;
  std::string calib_path;
  int calib_samples = 128;
  int calib_seq_len = 512;
  bool force_calib = false;
  std::string device = "auto";  // "cpu" | "cuda" | "auto" (the GPU when one is usable)
  // Model-shape catalog (bench/model_shapes.json) for the projected VRAM of 7B..70B models;
  // "" -> the catalog in the source tree.
  std::string catalog_path;
};

nlohmann::json run_eval(const EvalOptions& options);

}  // namespace qb
