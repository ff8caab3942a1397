// Rollout engine tests on tiny random models: log-prob identity with a trainer-style full forward,
// prefix sharing / compaction / waves giving the same outputs as their absence, greedy = argmax
// of the full forward, stop strings across token boundaries, seeds, and input validation.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <string>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/model/checkpoint.h"
#include "grpo/rollout/engine.h"
#include "grpo/rollout/sampling.h"

namespace gm = grpo::model;
namespace gr = grpo::rollout;

namespace {

// 2 layers, hidden 32, GQA 4/2 heads. initializer_range 0.2 (not 0.02) so that the logits and
// attention are far from uniform and the identity test compares non-trivial numbers.
gm::CausalLM tiny_model(int64_t vocab, uint64_t seed = 7, int context = 128) {
  grpo::config::ModelArchitecture a;
  a.hidden_size = 32;
  a.intermediate_size = 64;
  a.num_hidden_layers = 2;
  a.num_attention_heads = 4;
  a.num_key_value_heads = 2;
  a.max_position_embeddings = context;
  a.tie_word_embeddings = false;
  gm::ModelArch arch = gm::arch_from_config(a, vocab);
  arch.source["initializer_range"] = 0.2;
  return gm::random_model(arch, seed, at::kFloat);
}

std::vector<std::vector<int32_t>> make_prompts(const std::vector<int>& lengths, int32_t vocab) {
  std::vector<std::vector<int32_t>> prompts;
  for (size_t i = 0; i < lengths.size(); ++i) {
    std::vector<int32_t> p;
    for (int j = 0; j < lengths[i]; ++j)
      p.push_back(static_cast<int32_t>((i * 31 + j * 7 + 3) % vocab));
    prompts.push_back(p);
  }
  return prompts;
}

// What the trainer computes: one forward over prompt + completion (no cache, no padding), then
// log_softmax(logits / T) at the completion tokens. Returns (N) fp32 and (N) argmax ids.
std::pair<at::Tensor, at::Tensor> full_forward(gm::CausalLM& model, const gr::Rollout& r,
                                               double temperature) {
  std::vector<int64_t> ids(r.prompt_ids.begin(), r.prompt_ids.end());
  ids.insert(ids.end(), r.completion_ids.begin(), r.completion_ids.end());
  const int64_t p = static_cast<int64_t>(r.prompt_ids.size());
  const int64_t n = static_cast<int64_t>(r.completion_ids.size());
  torch::NoGradGuard no_grad;
  const at::Tensor input = at::tensor(ids, at::kLong).unsqueeze(0);
  const at::Tensor logits = model->forward(input).logits[0].narrow(0, p - 1, n);  // (N, V)
  const at::Tensor target = at::tensor(ids, at::kLong).narrow(0, p, n);
  const at::Tensor lp =
      at::log_softmax(logits.to(at::kFloat) / temperature, -1).gather(1, target.unsqueeze(1));
  return {lp.squeeze(1), logits.argmax(-1)};
}

void expect_same(const std::vector<gr::Rollout>& a, const std::vector<gr::Rollout>& b,
                 double logprob_tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].prompt_index, b[i].prompt_index);
    EXPECT_EQ(a[i].sample_index, b[i].sample_index);
    ASSERT_EQ(a[i].completion_ids, b[i].completion_ids) << "rollout " << i;
    EXPECT_EQ(a[i].finish_reason, b[i].finish_reason) << "rollout " << i;
    EXPECT_EQ(a[i].text, b[i].text);
    for (size_t t = 0; t < a[i].logprobs.size(); ++t) {
      EXPECT_NEAR(a[i].logprobs[t], b[i].logprobs[t], logprob_tol) << "rollout " << i << " t " << t;
    }
  }
}

gr::SamplingParams params(double temperature, int max_new, uint64_t seed) {
  gr::SamplingParams p;
  p.temperature = temperature;
  p.max_new_tokens = max_new;
  p.seed = seed;
  return p;
}

}  // namespace

// SamplingParams::record_entropy: each token's entropy is that of softmax(logits / T) of a full
// forward at its position, summed over the vocabulary here by hand; the tokens themselves do not
// change, and without the flag there are none.
TEST(Rollout, RecordedEntropiesMatchAFullForward) {
  const int64_t vocab = 97;
  gm::CausalLM model = tiny_model(vocab);
  gr::RolloutEngine engine(model, nullptr);
  const auto prompts = make_prompts({5, 11, 2}, vocab);
  auto sp = params(0.7, 16, 4);
  sp.top_p = 0.9;
  const auto plain = engine.generate(prompts, 2, sp);
  sp.record_entropy = true;
  const auto with = engine.generate(prompts, 2, sp);
  double max_diff = 0;
  for (size_t i = 0; i < with.size(); ++i) {
    EXPECT_TRUE(plain[i].entropies.empty());
    ASSERT_EQ(with[i].completion_ids, plain[i].completion_ids);
    ASSERT_EQ(with[i].entropies.size(), with[i].completion_ids.size());
    std::vector<int64_t> ids(with[i].prompt_ids.begin(), with[i].prompt_ids.end());
    ids.insert(ids.end(), with[i].completion_ids.begin(), with[i].completion_ids.end());
    const int64_t p = static_cast<int64_t>(with[i].prompt_ids.size());
    torch::NoGradGuard no_grad;
    const at::Tensor logits =
        model->forward(at::tensor(ids, at::kLong).unsqueeze(0)).logits[0].to(at::kDouble);
    for (size_t t = 0; t < with[i].entropies.size(); ++t) {
      const at::Tensor z = logits[p - 1 + static_cast<int64_t>(t)] / 0.7;
      const at::Tensor q = at::softmax(z, 0);
      const double h = -(q * at::log(q)).sum().item<double>();
      max_diff = std::max(max_diff, std::abs(h - static_cast<double>(with[i].entropies[t])));
    }
  }
  std::printf("recorded entropy vs full forward: max abs diff %.3g\n", max_diff);
  EXPECT_LE(max_diff, 1e-4);
}

TEST(Rollout, LogprobsMatchTrainerForward) {
  const int64_t vocab = 97;
  gm::CausalLM model = tiny_model(vocab);
  gr::RolloutEngine engine(model, nullptr);
  const auto prompts = make_prompts({5, 11, 2, 8}, vocab);  // different lengths: left padding
  std::vector<gr::SamplingParams> cases = {params(1.0, 24, 1), params(0.7, 24, 2),
                                           params(0.0, 24, 3)};
  cases[1].top_p = 0.9;
  cases[1].top_k = 20;
  cases[1].min_p = 0.05;
  for (const auto& sp : cases) {
    const auto rollouts = engine.generate(prompts, 3, sp);
    double max_diff = 0;
    for (const auto& r : rollouts) {
      ASSERT_EQ(r.completion_ids.size(), 24u);
      const auto [ref, argmax] = full_forward(model, r, gr::logprob_temperature(sp));
      const at::Tensor got = at::tensor(r.logprobs, at::kFloat);
      max_diff = std::max(max_diff, (got - ref).abs().max().item<double>());
      if (sp.temperature == 0) {
        // Greedy: every token is the argmax of the full forward at its position.
        const at::Tensor ids =
            at::tensor(std::vector<int64_t>(r.completion_ids.begin(), r.completion_ids.end()));
        EXPECT_TRUE(ids.equal(argmax)) << "greedy rollout differs from the full-forward argmax";
      }
    }
    std::printf("log-prob identity (T=%.1f top_p=%.1f top_k=%d): max abs diff %.3g\n",
                sp.temperature, sp.top_p, sp.top_k, max_diff);
    EXPECT_LE(max_diff, 1e-5);
  }
}

TEST(Rollout, PrefixSharingMatchesNoSharing) {
  const int64_t vocab = 97;
  gm::CausalLM model = tiny_model(vocab);
  gr::EngineOptions off;
  off.share_prefix = false;
  gr::RolloutEngine shared(model, nullptr), unshared(model, nullptr, off);
  auto prompts = make_prompts({6, 13, 4}, vocab);
  prompts.push_back(prompts[0]);  // a duplicate prompt is prefilled once as well
  auto sp = params(0.9, 16, 11);
  sp.top_p = 0.95;
  sp.stop_token_ids = {5};
  const auto a = shared.generate(prompts, 4, sp);
  const auto b = unshared.generate(prompts, 4, sp);
  expect_same(a, b, 1e-5);
  EXPECT_EQ(shared.last_stats().prefill_tokens, 6 + 13 + 4);
  EXPECT_EQ(unshared.last_stats().prefill_tokens, 4 * (6 + 13 + 4 + 6));
}

TEST(Rollout, TransposedOutputCopyFollowsWeightUpdates) {
  // The copy is made per generate() call: after an in-place update of the weights (as an
  // optimizer step), generating with it matches generating without it, and both see the update.
  const int64_t vocab = 97;
  gm::CausalLM model = tiny_model(vocab);
  gr::EngineOptions off;
  off.transposed_output_copy = false;
  gr::RolloutEngine with_copy(model, nullptr), without(model, nullptr, off);
  const auto prompts = make_prompts({6, 9}, vocab);
  const auto sp = params(1.0, 12, 5);
  const auto before = with_copy.generate(prompts, 3, sp);
  // Not bitwise: the two layouts may round the output products differently.
  expect_same(before, without.generate(prompts, 3, sp), 1e-5);
  {
    torch::NoGradGuard no_grad;
    model->output_embedding().mul_(1.7).add_(0.05);
  }
  const auto after = with_copy.generate(prompts, 3, sp);
  expect_same(after, without.generate(prompts, 3, sp), 1e-5);
  bool changed = false;
  for (size_t i = 0; i < after.size(); ++i) {
    changed |= after[i].completion_ids != before[i].completion_ids;
    changed |= after[i].logprobs != before[i].logprobs;
  }
  EXPECT_TRUE(changed) << "the weight update did not reach the rollouts";
  // The trainer's forward (no copy) still reproduces the recorded log-probs.
  for (const auto& r : after) {
    const at::Tensor ref = full_forward(model, r, 1.0).first;
    EXPECT_LE((at::tensor(r.logprobs, at::kFloat) - ref).abs().max().item<double>(), 1e-5);
  }
}

TEST(Rollout, CompactionFollowsLiveCount) {
  const int64_t vocab = 16;  // small vocabulary: the stop token comes up often, lengths vary
  gm::CausalLM model = tiny_model(vocab, 3);
  gr::EngineOptions eager, never;
  eager.compact_fraction = 0.0;
  never.compact_fraction = 1.0;
  gr::RolloutEngine a(model, nullptr, eager), b(model, nullptr, never);
  const auto prompts = make_prompts({3, 7, 5}, vocab);
  auto sp = params(1.0, 40, 5);
  sp.stop_token_ids = {2, 9};
  const auto ra = a.generate(prompts, 5, sp);
  const auto rb = b.generate(prompts, 5, sp);
  expect_same(ra, rb, 1e-5);
  std::set<size_t> lengths;
  int64_t needed = 0, eos = 0;
  for (const auto& r : ra) {
    lengths.insert(r.completion_ids.size());
    needed += static_cast<int64_t>(r.completion_ids.size()) - 1;  // the last token is not fed
    if (r.finish_reason == gr::FinishReason::eos) {
      ++eos;
      EXPECT_TRUE(r.completion_ids.back() == 2 || r.completion_ids.back() == 9);
    }
  }
  ASSERT_GE(lengths.size(), 3u) << "lengths must vary for this test to mean anything";
  ASSERT_GT(eos, 0);
  // Eager compaction decodes exactly the live rows; without it every row runs every step.
  EXPECT_EQ(a.last_stats().decode_rows, needed);
  EXPECT_EQ(b.last_stats().decode_rows, b.last_stats().decode_steps * 15);
  EXPECT_LT(a.last_stats().decode_rows, b.last_stats().decode_rows);
}

TEST(Rollout, WavesMatchOneWave) {
  const int64_t vocab = 97;
  gm::CausalLM model = tiny_model(vocab);
  gr::EngineOptions capped;
  capped.max_tokens_in_flight = 3 * (12 + 10);  // three rows of the longest prompt at a time
  gr::RolloutEngine one(model, nullptr), waves(model, nullptr, capped);
  const auto prompts = make_prompts({12, 3, 9, 5}, vocab);
  const auto sp = params(1.0, 10, 21);
  expect_same(one.generate(prompts, 4, sp), waves.generate(prompts, 4, sp), 1e-5);
  EXPECT_EQ(one.last_stats().waves, 1);
  EXPECT_GE(waves.last_stats().waves, 5);
}

TEST(Rollout, SeedDeterminism) {
  const int64_t vocab = 97;
  gm::CausalLM model = tiny_model(vocab);
  gr::RolloutEngine engine(model, nullptr);
  const auto prompts = make_prompts({4, 9}, vocab);
  auto sp = params(1.0, 20, 42);
  sp.top_k = 30;
  const auto a = engine.generate(prompts, 3, sp);
  const auto b = engine.generate(prompts, 3, sp);
  expect_same(a, b, 0.0);
  sp.seed = 43;
  const auto c = engine.generate(prompts, 3, sp);
  int differ = 0;
  for (size_t i = 0; i < a.size(); ++i) differ += a[i].completion_ids != c[i].completion_ids;
  EXPECT_EQ(differ, static_cast<int>(a.size())) << "another seed should change every sample";
  // The G samples of one prompt differ from each other too.
  EXPECT_NE(a[0].completion_ids, a[1].completion_ids);
}

// A rank samples its shard of a global batch with first_prompt_index = the shard's first global
// index: each prompt then gets the samples it gets when the whole batch is sampled at once.
TEST(Rollout, ShardSamplesWhatTheWholeBatchSamples) {
  const int64_t vocab = 97;
  gm::CausalLM model = tiny_model(vocab);
  gr::RolloutEngine engine(model, nullptr);
  const auto prompts = make_prompts({4, 9, 6, 3}, vocab);
  auto sp = params(1.0, 12, 5);
  const auto whole = engine.generate(prompts, 2, sp);
  sp.first_prompt_index = 2;
  auto shard = engine.generate({prompts[2], prompts[3]}, 2, sp);
  for (auto& r : shard) r.prompt_index += 2;
  expect_same(std::vector<gr::Rollout>(whole.begin() + 4, whole.end()), shard, 1e-5);
  sp.first_prompt_index = 0;  // without the offset the shard samples other tokens
  const auto unshifted = engine.generate({prompts[2], prompts[3]}, 2, sp);
  EXPECT_NE(unshifted[0].completion_ids, whole[4].completion_ids);
}

TEST(Rollout, BadInputFailsBeforeWork) {
  const int64_t vocab = 50;
  gm::CausalLM model = tiny_model(vocab, 7, /*context=*/32);
  gr::RolloutEngine engine(model, nullptr);
  int calls = 0;
  engine.set_progress_callback([&](const gr::Progress&) { ++calls; });
  const auto ok = make_prompts({4}, vocab);
  const auto sp = params(1.0, 8, 0);
  const auto fails = [&](const std::vector<std::vector<int32_t>>& prompts, int64_t g,
                         const gr::SamplingParams& p, const std::string& needle) {
    try {
      engine.generate(prompts, g, p);
      ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
    } catch (const grpo::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  fails(ok, 0, sp, "G (samples per prompt)");
  fails({}, 2, sp, "no prompts");
  fails({{1, 2}, {}}, 2, sp, "prompt 1 is empty");
  fails(make_prompts({4, 32}, vocab), 2, sp, "prompt 1 has 32 tokens");
  fails({{1, 50}}, 2, sp, "token id 50");
  auto bad = sp;
  bad.temperature = -1;
  fails(ok, 1, bad, "temperature");
  bad = sp;
  bad.temperature = std::nan("");
  fails(ok, 1, bad, "temperature");
  bad = sp;
  bad.top_p = 0;
  fails(ok, 1, bad, "top_p");
  bad.top_p = 1.5;
  fails(ok, 1, bad, "top_p");
  bad = sp;
  bad.top_k = -1;
  fails(ok, 1, bad, "top_k");
  bad = sp;
  bad.min_p = 2;
  fails(ok, 1, bad, "min_p");
  bad = sp;
  bad.max_new_tokens = 0;
  fails(ok, 1, bad, "max_new_tokens");
  bad = sp;
  bad.stop = {"</answer>"};
  fails(ok, 1, bad, "need a tokenizer");
  bad = sp;
  bad.stop_token_ids = {77};
  fails(ok, 1, bad, "stop token id 77");
  EXPECT_EQ(calls, 0);
  // A prompt that fits generates up to the context and stops with `length`.
  const auto r = engine.generate(make_prompts({28}, vocab), 1, params(1.0, 100, 0));
  EXPECT_EQ(r[0].completion_ids.size(), 4u);
  EXPECT_EQ(r[0].finish_reason, gr::FinishReason::length);
}

// Hand-derived filter sets on probabilities (0.4, 0.25, 0.15, 0.1, 0.06, 0.04), and sampling
// frequencies against the renormalised survivors.
TEST(Sampling, FiltersAndFrequencies) {
  const std::vector<double> probs = {0.4, 0.25, 0.15, 0.1, 0.06, 0.04};
  const at::Tensor logits = at::log(at::tensor(probs, at::kDouble)).to(at::kFloat).unsqueeze(0);
  const auto kept = [&](const gr::SamplingParams& p) {
    const at::Tensor f = gr::filtered_probs(logits, p)[0];
    std::vector<int> out;
    for (int i = 0; i < f.size(0); ++i) {
      if (f[i].item<float>() > 0) out.push_back(i);
    }
    return out;
  };
  gr::SamplingParams p = params(1.0, 1, 0);
  EXPECT_EQ(kept(p), (std::vector<int>{0, 1, 2, 3, 4, 5}));
  p.top_k = 3;
  EXPECT_EQ(kept(p), (std::vector<int>{0, 1, 2}));
  p.top_k = 0;
  p.top_p = 0.7;  // mass before token 2 is 0.65 < 0.7, before token 3 it is 0.8
  EXPECT_EQ(kept(p), (std::vector<int>{0, 1, 2}));
  p.top_p = 0.6;
  EXPECT_EQ(kept(p), (std::vector<int>{0, 1}));
  p.top_p = 1.0;
  p.min_p = 0.3;  // threshold 0.12
  EXPECT_EQ(kept(p), (std::vector<int>{0, 1, 2}));
  p.min_p = 0.0;
  p.top_k = 4;
  p.top_p = 0.7;  // top-4 mass 0.9, threshold 0.63: before token 2 is 0.65 -> dropped
  EXPECT_EQ(kept(p), (std::vector<int>{0, 1}));

  // 40000 draws from the top-3 distribution: frequencies within 4 standard errors.
  const int64_t n = 40000;
  p = params(1.0, 1, 9);
  p.top_k = 3;
  std::vector<double> u(n);
  for (int64_t i = 0; i < n; ++i) u[i] = gr::sequence_uniform(p.seed, 0, i, 0);
  const auto s = gr::sample_next(logits.expand({n, 6}), at::tensor(u, at::kDouble), p);
  const at::Tensor counts = at::bincount(s.tokens, {}, 6).to(at::kDouble) / n;
  for (int i = 0; i < 6; ++i) {
    const double expected = i < 3 ? probs[i] / 0.8 : 0.0;
    const double se = std::sqrt(std::max(expected * (1 - expected), 1e-12) / n);
    EXPECT_NEAR(counts[i].item<double>(), expected, 4 * se + 1e-12) << "token " << i;
  }
  // The recorded log-prob is under the full distribution, not the truncated one.
  EXPECT_NEAR(s.logprobs[0].item<float>(), std::log(probs[s.tokens[0].item<int64_t>()]), 1e-6);
}

// The CPU inverse CDF (block sums) draws what the fp64 cumsum reference draws, never a token with
// probability 0, the first positive token at u = 0 and the last one at the largest uniform.
TEST(Sampling, InverseCdfMatchesReference) {
  at::manual_seed(3);
  for (const int64_t vocab : {1, 7, 256, 1000, 4099}) {
    const int64_t rows = 600;
    at::Tensor probs = at::rand({rows, vocab}, at::kFloat);
    probs.narrow(0, 0, 200).masked_fill_(at::rand({200, vocab}) < 0.9, 0);  // filtered rows
    probs.narrow(0, 200, 200).pow_(40);                                     // peaked rows
    probs.select(1, 0).clamp_min_(1e-3);  // every row keeps a positive token
    std::vector<double> u(rows);
    for (int64_t r = 0; r < rows; ++r) u[r] = gr::sequence_uniform(5, vocab, r, 0);
    u[0] = 0.0;
    u[1] = 1.0 - 1.0 / 4294967296.0;  // the largest uniform sequence_uniform returns
    const at::Tensor ut = at::tensor(u, at::kDouble);
    const at::Tensor fast = gr::inverse_cdf(probs, ut);
    const at::Tensor ref = gr::inverse_cdf_reference(probs, ut);
    EXPECT_TRUE(fast.equal(ref)) << "vocab " << vocab << ": " << fast.ne(ref).sum().item<int64_t>()
                                 << " rows differ";
    EXPECT_TRUE(probs.gather(1, fast.unsqueeze(1)).gt(0).all().item<bool>()) << "vocab " << vocab;
    const at::Tensor positive = probs.gt(0).to(at::kLong);
    EXPECT_EQ(fast[0].item<int64_t>(), positive[0].argmax().item<int64_t>());
    const at::Tensor last = vocab - 1 - positive[1].flip(0).argmax();
    EXPECT_EQ(fast[1].item<int64_t>(), last.item<int64_t>());
  }
}

// A stop string that straddles two tokens is found once the second arrives; the completion keeps
// both tokens and the text is cut where the stop string starts (or ends, with include_stop_str).
TEST(Rollout, StopStringAcrossTokens) {
  auto tok =
      grpo::text::load_tokenizer(std::string(GRPO_SOURCE_DIR) + "/tests/fixtures/text/small_gpt2");
  const int64_t vocab = tok->vocab_size();
  gm::CausalLM model = tiny_model(vocab, 5);
  gr::RolloutEngine engine(model, tok.get());
  const std::vector<std::vector<int32_t>> prompts = {tok->encode("The answer is")};
  const auto sp = params(1.0, 40, 17);
  const auto free_run = engine.generate(prompts, 4, sp);
  bool tested = false;
  for (const auto& r : free_run) {
    const std::string full = tok->decode(r.completion_ids, true);
    ASSERT_EQ(r.text, full);
    // Byte length of the decoded prefix ids[0..i] for each i.
    std::vector<size_t> len;
    for (size_t i = 1; i <= r.completion_ids.size(); ++i) {
      const std::vector<int32_t> prefix(r.completion_ids.begin(), r.completion_ids.begin() + i);
      const std::string text = tok->decode(prefix, true);
      len.push_back(full.compare(0, text.size(), text) == 0 ? text.size() : std::string::npos);
    }
    for (size_t k = 1; k + 1 < len.size() && !tested; ++k) {
      // Token k ends at len[k]; the stop string takes its last 2 bytes and the next token's
      // first 2.
      const size_t npos = std::string::npos;
      if (len[k - 1] == npos || len[k] == npos || len[k + 1] == npos) continue;
      if (len[k] < len[k - 1] + 2 || len[k + 1] < len[k] + 2) continue;
      const std::string stop = full.substr(len[k] - 2, 4);
      bool ascii = true;
      for (const char c : stop) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
      if (!ascii || full.find(stop) != len[k] - 2) continue;
      auto with_stop = sp;
      with_stop.stop = {"never-seen", stop};
      const auto stopped = engine.generate(prompts, 4, with_stop)[r.sample_index];
      EXPECT_EQ(stopped.finish_reason, gr::FinishReason::stop);
      EXPECT_EQ(stopped.completion_ids,
                std::vector<int32_t>(r.completion_ids.begin(), r.completion_ids.begin() + k + 2));
      EXPECT_EQ(stopped.text, full.substr(0, len[k] - 2));
      // include_stop_str keeps the stop string whole, and nothing after it.
      with_stop.include_stop_str = true;
      const auto kept = engine.generate(prompts, 4, with_stop)[r.sample_index];
      EXPECT_EQ(kept.completion_ids, stopped.completion_ids);
      EXPECT_EQ(kept.text, full.substr(0, len[k] + 2));
      tested = true;
    }
  }
  EXPECT_TRUE(tested) << "no completion had a usable token boundary";
}
