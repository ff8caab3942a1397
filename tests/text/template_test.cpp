// Prompt templates render exactly: the expected strings are written out by hand from the
// DeepSeek-R1 paper (Table 1), Qwen's ChatML and Meta's Llama-3 chat format.
#include <gtest/gtest.h>

#include "grpo/text/template.h"

namespace grpo::text {
namespace {

std::string render(const std::string& name, const std::string& prompt,
                   const std::string& system = "", const std::string& custom = "") {
  TemplateConfig config;
  config.name = name;
  config.system = system;
  config.custom = custom;
  return PromptTemplate(config).render(prompt);
}

TEST(Template, R1Zero) {
  EXPECT_EQ(render("r1_zero", "What is 2+3?"),
            "A conversation between User and Assistant. The user asks a question, and the "
            "Assistant solves it. The assistant first thinks about the reasoning process in the "
            "mind and then provides the user with the answer. The reasoning process and answer "
            "are enclosed within <think> </think> and <answer> </answer> tags, respectively, "
            "i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
            "User: What is 2+3?. Assistant: <think>");
}

TEST(Template, Plain) { EXPECT_EQ(render("plain", "12 + 30 ="), "12 + 30 ="); }

TEST(Template, ChatMl) {
  EXPECT_EQ(render("chatml", "Hi"), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render("chatml", "Hi", "Be brief."),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(Template, Llama3) {
  EXPECT_EQ(render("llama3", "Hi"),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render("llama3", "Hi", "Be brief."),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(Template, CustomReplacesPlaceholdersOnce) {
  EXPECT_EQ(render("custom", "x = {system}?", "S", "[{system}] Q: {prompt} \\boxed{} A:"),
            "[S] Q: x = {system}? \\boxed{} A:");
}

TEST(Template, BadConfigIsAConfigError) {
  EXPECT_THROW(render("custom", "p", "", "no placeholder"), std::exception);
  EXPECT_THROW(render("alpaca", "p"), std::exception);
  EXPECT_THROW(render("plain", "p", "", "{prompt}"), std::exception);
}

}  // namespace
}  // namespace grpo::text
