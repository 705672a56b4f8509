#!/usr/bin/env python3
"""Writes the fuzz seed corpus (tests/fuzz/corpus/<target>/): small hand-made files and small cuts of
real ones from ../shared/data and this repository (tests/fuzz/README.md lists them).
A seed whose name starts with "refused-" is meant to be refused (the replay test checks that every
other one is read). Run from anywhere: python3 tests/fuzz/make_corpus.py [shared-data-dir]."""
import json
import os
import sqlite3
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "..", "shared", "data")
SEP = b"\n#qb-fuzz-file#\n"  # kFileSeparator of fuzz_support.h


def put(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < 64 * 1024, (target, name, len(data))
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, bytes)] -> file bytes."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def f16(n, start=0):
    return b"".join(struct.pack("<e", 0.01 * (start + i)) for i in range(n))


def i32(n, start=0):
    return b"".join(struct.pack("<i", (0x12345678 * (start + i + 1)) & 0x7FFFFFFF) for i in range(n))


def tiny_config(**extra):
    c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16, "intermediate_size": 32,
         "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 8,
         "max_position_embeddings": 16, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True}
    c.update(extra)
    return c


# ---- safetensors -------------------------------------------------------------------------------
put("safetensors", "all-dtypes.safetensors", safetensors(
    [("a.f32", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)), ("b.f16", "F16", [3], f16(3)),
     ("c.bf16", "BF16", [1, 2], b"\x80\x3f\x00\x40"), ("d.i32", "I32", [2], i32(2)), ("e.empty", "F32", [0], b""),
     ("f.scalar", "F16", [], f16(1))], {"format": "pt"}))
put("safetensors", "empty-header.safetensors", safetensors([]))
real = open(os.path.join(DATA, "models/stories-d256-l2/model.safetensors"), "rb")
(n,) = struct.unpack("<Q", real.read(8))
real_header = json.loads(real.read(n))
base = 8 + n
norms = []
for name, e in sorted(real_header.items()):
    if name != "__metadata__" and len(e["shape"]) == 1:
        real.seek(base + e["data_offsets"][0])
        norms.append((name, e["dtype"], e["shape"], real.read(e["data_offsets"][1] - e["data_offsets"][0])))
real_norms = safetensors(norms, real_header.get("__metadata__"))
put("safetensors", "stories-d256-l2-norms.safetensors", real_norms)
real.seek(0)
put("safetensors", "refused-stories-d256-l2-header-truncated.safetensors", real.read(8 + n + 64))

# ---- safetensors index -------------------------------------------------------------------------
shard1 = safetensors([("model.embed_tokens.weight", "F16", [4, 2], f16(8)), ("model.norm.weight", "F32", [2], struct.pack("<2f", 1, 1))])
shard2 = safetensors([("lm_head.weight", "BF16", [4, 2], b"\x80\x3f" * 8)])
index = {"metadata": {"total_size": 64}, "weight_map": {"model.embed_tokens.weight": "model-00001.safetensors",
         "model.norm.weight": "model-00001.safetensors", "lm_head.weight": "model-00002.safetensors"}}
put("safetensors_index", "two-shards", json.dumps(index, indent=2).encode() + SEP + shard1 + SEP + shard2)
put("safetensors_index", "real-norms-one-shard", json.dumps(
    {"weight_map": {name: "model-00001.safetensors" for name, *_ in norms}}).encode() + SEP + real_norms)

# ---- HF config.json ----------------------------------------------------------------------------
put("hf_config", "stories-d256-l2-config.json", open(os.path.join(DATA, "models/stories-d256-l2/config.json"), "rb").read())
catalog = json.load(open(os.path.join(REPO, "bench/model_shapes.json")))
for entry in catalog["models"][:6]:
    put("hf_config", entry["name"] + ".json", json.dumps(entry["config"], indent=2))
put("hf_config", "llama3-rope.json", json.dumps(tiny_config(rope_scaling={
    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192})))
put("hf_config", "qwen2-sliding.json", json.dumps(tiny_config(model_type="qwen2", use_sliding_window=True, sliding_window=8, head_dim=8)))
put("hf_config", "mistral.json", json.dumps(tiny_config(model_type="mistral", sliding_window=4, rope_scaling=None)))

# ---- llama2.c ----------------------------------------------------------------------------------
def llama2c(dim, hidden, layers, heads, kv_heads, vocab, seq):
    hd = dim // heads
    n = (abs(vocab) * dim + layers * dim + layers * dim * dim + 2 * layers * dim * kv_heads * hd + layers * dim * dim
         + layers * dim + 3 * layers * dim * hidden + dim + seq * hd + (0 if vocab > 0 else abs(vocab) * dim))
    return struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab, seq) + struct.pack("<%df" % n, *[0.001 * (i % 97) for i in range(n)])

put("llama2c", "refused-stories260K-header.bin", open(os.path.join(DATA, "models/stories260K/stories260K.bin"), "rb").read(28))
put("llama2c", "tiny-tied.bin", llama2c(8, 16, 1, 2, 2, 8, 4))
put("llama2c", "tiny-untied-gqa.bin", llama2c(8, 12, 2, 2, 1, -6, 2))

# ---- AutoAWQ checkpoint ------------------------------------------------------------------------
def awq_checkpoint(group_size, tied=True):
    config = tiny_config(tie_word_embeddings=tied, torch_dtype="float16", quantization_config={
        "quant_method": "awq", "bits": 4, "group_size": group_size, "zero_point": True, "version": "gemm",
        "modules_to_not_convert": None})
    dims = {"self_attn.q_proj": (16, 16), "self_attn.k_proj": (16, 16), "self_attn.v_proj": (16, 16),
            "self_attn.o_proj": (16, 16), "mlp.gate_proj": (32, 16), "mlp.up_proj": (32, 16), "mlp.down_proj": (16, 32)}
    t = [("model.embed_tokens.weight", "F16", [8, 16], f16(128)), ("model.norm.weight", "F16", [16], f16(16, 100)),
         ("model.layers.0.input_layernorm.weight", "F16", [16], f16(16, 1)),
         ("model.layers.0.post_attention_layernorm.weight", "F16", [16], f16(16, 2))]
    for name, (n_out, k) in dims.items():
        groups = 1 if group_size == -1 else k // group_size
        base = "model.layers.0." + name
        t += [(base + ".qweight", "I32", [k, n_out // 8], i32(k * n_out // 8)),
              (base + ".qzeros", "I32", [groups, n_out // 8], i32(groups * n_out // 8, 7)),
              (base + ".scales", "F16", [groups, n_out], f16(groups * n_out, 3))]
    if not tied:
        t.append(("lm_head.weight", "F16", [8, 16], f16(128, 5)))
    return json.dumps(config, indent=1).encode() + SEP + safetensors(t)

put("awq_checkpoint", "tiny-g8", awq_checkpoint(8))
put("awq_checkpoint", "tiny-per-channel-untied", awq_checkpoint(-1, tied=False))

# ---- model-shape catalog -----------------------------------------------------------------------
put("model_catalog", "model_shapes.json", open(os.path.join(REPO, "bench/model_shapes.json"), "rb").read())

# ---- run documents -----------------------------------------------------------------------------
runs = sorted(f for f in os.listdir(os.path.join(REPO, "reports/runs")) if f.endswith(".json"))
for f in runs:
    put("run_document", f, open(os.path.join(REPO, "reports/runs", f), "rb").read())
fixtures = os.path.join(REPO, "tests/reports/fixtures")
h100 = open(os.path.join(fixtures, "bench-h100-fixture.json"), "rb").read()
h200 = open(os.path.join(fixtures, "bench-h200-fixture.json"), "rb").read()
slower = json.loads(h100)  # the H100 run again, 10 % slower: compare's regression verdicts
for case in slower["bench"]["cases"]:
    case["time_s"] = {k: v if k == "samples" else v * 1.1 for k, v in case["time_s"].items()}
put("run_document", "bench-h100-h200-h100-slower", h100 + SEP + h200 + SEP + json.dumps(slower, indent=1).encode())
shards = []
for i in range(2):
    doc = json.loads(h100)
    doc["bench"]["shard"] = "%d/2" % i
    doc["bench"]["cases"] = doc["bench"]["cases"][i::2]
    shards.append(json.dumps(doc, indent=1).encode())
put("run_document", "bench-two-shards", SEP.join(shards))
put("run_document", "eval-fixture.json", open(os.path.join(fixtures, "eval-fixture.json"), "rb").read())

# ---- history database --------------------------------------------------------------------------
def history_db(version):
    """A database as append_history writes it (schema of reports/history.cpp), one run stored."""
    path = os.path.join(HERE, "history.tmp")
    if os.path.exists(path):
        os.remove(path)
    src = open(os.path.join(REPO, "reports/history.cpp")).read()
    schema = src[src.index('R"sql(') + 6:src.index(')sql"')]
    if version == 1:
        schema = schema.replace("series", "method").replace("kernel_family", "method")
    db = sqlite3.connect(path)
    db.executescript(schema + "PRAGMA user_version = %d;" % version)
    doc = open(os.path.join(fixtures, "eval-fixture.json")).read()
    run = json.loads(doc)
    db.execute("INSERT INTO run (created, kind, tool_version, git_revision, hostname, device, model, dataset_sha256, "
               "protocol, document, document_sha256) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
               (run["created"], "eval", "0.1.0", "abc", "host", "cpu", run["model"]["path"], run["dataset"]["sha256"],
                "%s ctx %d stride %d" % (run["protocol"]["name"], run["protocol"]["ctx"], run["protocol"]["stride"]),
                "{}", "0" * 64))
    for name, value in (("ppl", 9.5), ("kl_mean", None)):
        db.execute("INSERT INTO metric VALUES (1, 'fp16', ?, ?)", (name, value))
    db.commit()
    db.close()
    data = open(path, "rb").read()
    os.remove(path)
    return data

put("history", "v2-one-run.sqlite", history_db(2))
put("history", "v1-one-run.sqlite", history_db(1))
put("history", "empty.sqlite", b"")

# ---- HF tokenizer.json -------------------------------------------------------------------------
def cut_tokenizer(family, keep):
    """The real tokenizer.json with its vocabulary cut to the first `keep` ids (merges among them kept)."""
    j = json.load(open(os.path.join(DATA, "tokenizers/hf", family, "tokenizer.json")))
    vocab = {t: i for t, i in j["model"]["vocab"].items() if i < keep}
    for added in j["added_tokens"]:
        if added["id"] >= keep:
            added["id"] = len(vocab)
            vocab[added["content"]] = added["id"]
    merges = []
    for m in j["model"]["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    j["model"]["vocab"], j["model"]["merges"] = vocab, merges
    return json.dumps(j, ensure_ascii=False, separators=(",", ":"))

put("hf_tokenizer", "gpt2-cut.json", cut_tokenizer("gpt2", 400))
put("hf_tokenizer", "llama2-cut.json", cut_tokenizer("llama2", 600))
put("hf_tokenizer", "llama3-cut.json", cut_tokenizer("llama3", 400))

# ---- GPTQ checkpoint ---------------------------------------------------------------------------
def gptq_checkpoint(group_size, split_config=False, v2=False):
    qc = {"quant_method": "gptq", "bits": 4, "group_size": group_size, "desc_act": False, "sym": True,
          "static_groups": False, "true_sequential": True, "damp_percent": 0.01,
          "checkpoint_format": "gptq_v2" if v2 else "gptq"}
    config = tiny_config(torch_dtype="float16", tie_word_embeddings=False)
    if not split_config:
        config["quantization_config"] = qc
    dims = {"self_attn.q_proj": (16, 16), "self_attn.k_proj": (16, 16), "self_attn.v_proj": (16, 16),
            "self_attn.o_proj": (16, 16), "mlp.gate_proj": (32, 16), "mlp.up_proj": (32, 16), "mlp.down_proj": (16, 32)}
    t = [("model.embed_tokens.weight", "F16", [8, 16], f16(128)), ("model.norm.weight", "F16", [16], f16(16, 100)),
         ("model.layers.0.input_layernorm.weight", "F16", [16], f16(16, 1)),
         ("model.layers.0.post_attention_layernorm.weight", "F16", [16], f16(16, 2)),
         ("lm_head.weight", "F16", [8, 16], f16(128, 5))]
    for name, (n_out, k) in dims.items():
        g = k if group_size == -1 else group_size
        groups = k // g
        base = "model.layers.0." + name
        t += [(base + ".qweight", "I32", [k // 8, n_out], i32(k * n_out // 8)),
              (base + ".qzeros", "I32", [groups, n_out // 8], i32(groups * n_out // 8, 7)),
              (base + ".scales", "F16", [groups, n_out], f16(groups * n_out, 3)),
              (base + ".g_idx", "I32", [k], b"".join(struct.pack("<i", i // g) for i in range(k)))]
    out = json.dumps(config, indent=1).encode() + SEP + safetensors(t)
    return out + SEP + json.dumps(qc).encode() if split_config else out

put("gptq_checkpoint", "tiny-g8", gptq_checkpoint(8))
put("gptq_checkpoint", "tiny-per-channel-v2", gptq_checkpoint(-1, v2=True))
put("gptq_checkpoint", "tiny-quantize-config-json", gptq_checkpoint(8, split_config=True))

# ---- GGUF --------------------------------------------------------------------------------------
def gguf_string(s):
    s = s.encode()
    return struct.pack("<Q", len(s)) + s


def gguf_value(v):
    """(type, value) -> bytes after the key; types as in src/model/gguf.h."""
    kind, value = v
    scalar = {"u32": (4, "<I"), "i32": (5, "<i"), "f32": (6, "<f"), "bool": (7, "<?"), "u64": (10, "<Q")}
    if kind in scalar:
        code, fmt = scalar[kind]
        return struct.pack("<I", code) + struct.pack(fmt, value)
    if kind == "str":
        return struct.pack("<I", 8) + gguf_string(value)
    element, items = value  # array
    if element == "str":
        body = b"".join(gguf_string(x) for x in items)
        return struct.pack("<IIQ", 9, 8, len(items)) + body
    code, fmt = scalar[element]
    return struct.pack("<IIQ", 9, code, len(items)) + b"".join(struct.pack(fmt, x) for x in items)


def gguf(metadata, tensors, alignment=32):
    """tensors: [(name, ggml_type, ne, bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, v in metadata:
        out += gguf_string(key) + gguf_value(v)
    data, offset = b"", 0
    for name, ggml_type, ne, blob in tensors:
        out += gguf_string(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
        out += struct.pack("<IQ", ggml_type, offset)
        pad = b"\0" * ((alignment - len(blob) % alignment) % alignment)
        data += blob + pad
        offset += len(blob) + len(pad)
    out += b"\0" * ((alignment - len(out) % alignment) % alignment)
    return out + data


def q4_0(n):
    """n/32 Q4_0 blocks: FP16 scale, then 16 bytes of 4-bit codes."""
    return b"".join(struct.pack("<e", 0.01 * (b + 1)) + bytes((i * 7 + b) & 0xFF for i in range(16)) for b in range(n // 32))


def tiny_gguf(linear_type):
    dim, ff, vocab = 32, 64, 8
    F32, F16, Q4_0 = 0, 1, 2
    tokens = ["<unk>", "<s>", "</s>", "a", "b", "\u2581a", "\u2581b", "ab"]
    metadata = [("general.architecture", ("str", "llama")), ("general.name", ("str", "tiny")),
                ("llama.context_length", ("u32", 16)), ("llama.embedding_length", ("u32", dim)),
                ("llama.block_count", ("u32", 1)), ("llama.feed_forward_length", ("u32", ff)),
                ("llama.attention.head_count", ("u32", 2)), ("llama.attention.head_count_kv", ("u32", 1)),
                ("llama.rope.freq_base", ("f32", 10000.0)), ("llama.attention.layer_norm_rms_epsilon", ("f32", 1e-5)),
                ("llama.rope.dimension_count", ("u32", 16)), ("general.alignment", ("u32", 32)),
                ("tokenizer.ggml.model", ("str", "llama")), ("tokenizer.ggml.tokens", ("arr", ("str", tokens))),
                ("tokenizer.ggml.scores", ("arr", ("f32", [0.0] * vocab))),
                ("tokenizer.ggml.token_type", ("arr", ("i32", [2, 3, 3, 1, 1, 1, 1, 1]))),
                ("tokenizer.ggml.bos_token_id", ("u32", 1)), ("tokenizer.ggml.eos_token_id", ("u32", 2)),
                ("tokenizer.ggml.add_bos_token", ("bool", True))]
    def f32s(n, start=0):
        return struct.pack("<%df" % n, *[0.01 * ((start + i) % 13) for i in range(n)])
    def linear(name, n_out, k):
        blob = q4_0(n_out * k) if linear_type == Q4_0 else f16(n_out * k) if linear_type == F16 else f32s(n_out * k)
        return (name, linear_type, [k, n_out], blob)
    kv = dim // 2
    tensors = [("token_embd.weight", F16, [dim, vocab], f16(dim * vocab)), ("output_norm.weight", F32, [dim], f32s(dim, 1)),
               ("blk.0.attn_norm.weight", F32, [dim], f32s(dim, 2)), ("blk.0.ffn_norm.weight", F32, [dim], f32s(dim, 3)),
               linear("blk.0.attn_q.weight", dim, dim), linear("blk.0.attn_k.weight", kv, dim),
               linear("blk.0.attn_v.weight", kv, dim), linear("blk.0.attn_output.weight", dim, dim),
               linear("blk.0.ffn_gate.weight", ff, dim), linear("blk.0.ffn_up.weight", ff, dim),
               linear("blk.0.ffn_down.weight", dim, ff)]
    return gguf(metadata, tensors)

put("gguf", "tiny-f32.gguf", tiny_gguf(0))
put("gguf", "tiny-q4_0.gguf", tiny_gguf(2))
real_gguf = open(os.path.join(DATA, "models/stories260K/gguf/stories260K-F16.gguf"), "rb").read()
put("gguf", "refused-stories260K-F16-head.gguf", real_gguf[:40000])
