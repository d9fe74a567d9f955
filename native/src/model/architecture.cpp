// The four families as descriptions, and their parameters under Hugging Face names.
#include "architecture.h"

namespace napo::model {

// Indexed by napo_model_family (the config was validated).
const Architecture& architectureOf(napo_model_family family) {
  static const Architecture table[] = {
      {"gpt2", true, true, false, false},
      {"llama", false, false, false, true},
      {"qwen2", false, false, false, true},
      {"qwen3", false, false, true, true},
  };
  return table[family];
}

namespace {

class RegistryBuilder {
 public:
  explicit RegistryBuilder(Registry& registry) : r_(registry) {}

  int64_t add(const std::string& name, int64_t d0, int64_t d1, bool checkpointTransposed = false) {
    const int32_t ndim = d1 > 0 ? 2 : 1;
    ParamSpec spec{name, ndim, {d0, d1}, r_.floats, ndim == 2 ? d0 * d1 : d0, ndim == 2, checkpointTransposed};
    r_.floats += (spec.numel + 15) / 16 * 16;
    r_.specs.push_back(spec);
    return spec.offset;
  }

  Linear linear(const std::string& name, int64_t out, int64_t in, bool bias, bool conv1d = false) {
    Linear l;
    l.out = out;
    l.in = in;
    l.weight = add(name + ".weight", out, in, conv1d);
    if (bias) l.bias = add(name + ".bias", out, 0);
    return l;
  }

  Norm norm(const std::string& name, int64_t d, bool bias) {
    Norm n;
    n.weight = add(name + ".weight", d, 0);
    if (bias) n.bias = add(name + ".bias", d, 0);
    return n;
  }

 private:
  Registry& r_;
};

void gpt2Layers(const napo_model_config& c, RegistryBuilder& add, Registry& r) {
  const int64_t D = c.hidden_size, I = c.intermediate_size;
  r.embed = add.add("transformer.wte.weight", c.vocab_size, D);
  r.positions = add.add("transformer.wpe.weight", c.max_positions, D);
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "transformer.h." + std::to_string(l) + ".";
    LayerParams layer;
    layer.attentionNorm = add.norm(p + "ln_1", D, true);
    layer.qkv = {add.linear(p + "attn.c_attn", 3 * D, D, c.qkv_bias, true)};
    layer.output = add.linear(p + "attn.c_proj", D, D, c.output_bias, true);
    layer.mlpNorm = add.norm(p + "ln_2", D, true);
    layer.mlpIn = {add.linear(p + "mlp.c_fc", I, D, c.mlp_bias, true)};
    layer.mlpOut = add.linear(p + "mlp.c_proj", D, I, c.mlp_bias, true);
    r.layers.push_back(layer);
  }
  r.finalNorm = add.norm("transformer.ln_f", D, true);
}

void llamaLayers(const napo_model_config& c, const Architecture& arch, RegistryBuilder& add, Registry& r) {
  const int64_t D = c.hidden_size, I = c.intermediate_size, hd = c.head_dim;
  const int64_t qWidth = c.num_heads * hd, kvWidth = c.num_kv_heads * hd;
  r.embed = add.add("model.embed_tokens.weight", c.vocab_size, D);
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerParams layer;
    layer.attentionNorm = add.norm(p + "input_layernorm", D, false);
    layer.qkv = {add.linear(p + "self_attn.q_proj", qWidth, D, c.qkv_bias),
                 add.linear(p + "self_attn.k_proj", kvWidth, D, c.qkv_bias),
                 add.linear(p + "self_attn.v_proj", kvWidth, D, c.qkv_bias)};
    layer.output = add.linear(p + "self_attn.o_proj", D, qWidth, c.output_bias);
    if (arch.qkNorm) {
      layer.qNorm = add.norm(p + "self_attn.q_norm", hd, false);
      layer.kNorm = add.norm(p + "self_attn.k_norm", hd, false);
    }
    layer.mlpNorm = add.norm(p + "post_attention_layernorm", D, false);
    layer.mlpIn = {add.linear(p + "mlp.gate_proj", I, D, c.mlp_bias), add.linear(p + "mlp.up_proj", I, D, c.mlp_bias)};
    layer.mlpOut = add.linear(p + "mlp.down_proj", D, I, c.mlp_bias);
    r.layers.push_back(layer);
  }
  r.finalNorm = add.norm("model.norm", D, false);
}

}  // namespace

Registry buildRegistry(const napo_model_config& config) {
  Registry registry;
  RegistryBuilder builder(registry);
  const Architecture& arch = architectureOf(napo_model_family(config.family));
  if (config.family == NAPO_MODEL_GPT2) gpt2Layers(config, builder, registry);
  else llamaLayers(config, arch, builder, registry);
  registry.lmHead = config.tie_word_embeddings ? registry.embed
                                               : builder.add("lm_head.weight", config.vocab_size, config.hidden_size);
  return registry;
}

}  // namespace napo::model
